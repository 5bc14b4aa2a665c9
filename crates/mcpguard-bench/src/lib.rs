//! Benchmark support for MCPGuard: a minimal, fast MCP echo server (so the gateway's own
//! cost is visible), and a load generator that measures latency and throughput of
//! `tools/call` over Streamable HTTP.

pub mod echo;
pub mod guard_inputs;
pub mod load;
