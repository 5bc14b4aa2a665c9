//! Wire formats for MCPGuard: JSON-RPC 2.0 envelopes over the original bytes, the MCP
//! vocabulary the gateway needs to route and judge calls, newline-delimited stdio framing
//! and the Server-Sent Events codec.
//!
//! Pure logic: nothing here touches sockets, files or clocks.

pub mod codes;
pub mod framing;
pub mod json;
pub mod jsonrpc;
pub mod mcp;
pub mod sse;

pub use jsonrpc::{Kind, Message, ParseError, RpcError};
