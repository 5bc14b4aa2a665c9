//! JSON-RPC error codes: the standard ones, MCP's, and MCPGuard's own.
//!
//! MCPGuard's codes sit in the implementation-defined server range (-32000..-32099), away
//! from the codes MCP itself uses (-32002 resource not found, -32020 header mismatch,
//! -32042 URL elicitation required). Every gateway error also carries
//! `data.mcpguard = {"blame": ..., "retryable": ...}` so a client can tell whose fault it was.

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist or cannot be routed.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal error.
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP: resource not found.
pub const RESOURCE_NOT_FOUND: i64 = -32002;
/// MCP 2026-07-28: an `Mcp-*` header disagrees with the body, or a required one is missing.
pub const HEADER_MISMATCH: i64 = -32020;

/// MCP 2026-07-28: the request needs a client capability the client did not declare.
pub const MISSING_CLIENT_CAPABILITY: i64 = -32021;
/// MCP 2026-07-28: the request's protocol revision is not supported.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// MCP: the request was cancelled or the connection closed.
pub const CONNECTION_CLOSED: i64 = -32000;

/// The HTTP status a 2026-07-28 server sends with a JSON-RPC error code (200 when none).
pub fn http_status_for(code: i64) -> u16 {
    match code {
        PARSE_ERROR
        | INVALID_REQUEST
        | INVALID_PARAMS
        | HEADER_MISMATCH
        | MISSING_CLIENT_CAPABILITY
        | UNSUPPORTED_PROTOCOL_VERSION => 400,
        METHOD_NOT_FOUND => 404,
        _ => 200,
    }
}

/// MCPGuard: the upstream server could not be reached or died.
pub const UPSTREAM_UNAVAILABLE: i64 = -32050;
/// MCPGuard: the upstream did not answer within the per-call timeout.
pub const UPSTREAM_TIMEOUT: i64 = -32051;
/// MCPGuard: the upstream answered with something that is not valid MCP.
pub const UPSTREAM_PROTOCOL_ERROR: i64 = -32052;
/// MCPGuard: the call cannot be bridged between the client's and the upstream's protocol
/// revisions.
pub const ERA_BRIDGE_UNSUPPORTED: i64 = -32053;
/// MCPGuard: a plugin refused the call (policy, rate limit, authentication).
pub const DENIED: i64 = -32054;
/// MCPGuard: the gateway is shutting down.
pub const SHUTTING_DOWN: i64 = -32055;
/// MCPGuard: the caller did not authenticate, or its credential was refused (HTTP 401).
pub const UNAUTHENTICATED: i64 = -32056;
/// MCPGuard: the caller may not use this session (it belongs to another identity).
pub const FORBIDDEN: i64 = -32057;
/// MCPGuard: a rate limit was exceeded (HTTP 429 when the answer is sent as JSON);
/// `data.retry_after_ms` says when to retry.
pub const RATE_LIMITED: i64 = -32058;
