//! Agent-facing transports.

pub mod http;
pub mod stdio;
