//! Agent-facing transports.

pub mod call_stream;
pub mod http;
pub mod stdio;
