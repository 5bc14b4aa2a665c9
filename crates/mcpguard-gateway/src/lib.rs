//! MCPGuard's gateway: the agent-facing transports (Streamable HTTP and stdio), sessions,
//! upstream connectors (stdio children and Streamable HTTP servers, both protocol eras),
//! federation of several upstreams behind one endpoint, and the plugin pipeline every
//! message passes through.
//!
//! Start with [`gateway::Gateway::start`], then serve it with [`server::http::serve`] or
//! [`server::stdio::serve`]. `docs/life-of-a-call.md` walks one call through the code.

pub mod auth;
pub mod bridge;
pub mod caller;
pub mod config;
pub mod error;
pub mod forwarded;
pub mod gateway;
pub mod listeners;
pub mod metrics;
pub mod parking;
pub mod pipeline;
pub mod ratelimit;
pub mod redis_link;
pub mod relay;
pub mod router;
pub mod sandboxing;
pub mod server;
pub mod session;
pub mod shared;
pub mod trace;
pub mod upstream;

pub use config::Config;
pub use gateway::Gateway;
