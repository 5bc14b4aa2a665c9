//! Egress through the gateway: a sandbox with `network: egress` has no network of its
//! own, only a forwarder to the gateway's proxy ([`EgressProxy`]), which opens tunnels to
//! the destinations its [`EgressPolicy`] allows and records every attempt.

mod policy;
mod proxy;

pub use policy::{DEFAULT_PORT, EgressPolicy, EgressRule, HostPattern, Target, is_public};
pub use proxy::{EgressAttempt, EgressProxy};

/// The proxy's address inside a sandbox (what `HTTPS_PROXY` and friends point at).
pub const PROXY_INSIDE: &str = "127.0.0.1:3128";

/// The environment that points a program's HTTP clients at the proxy.
pub fn proxy_env() -> [(&'static str, String); 6] {
    let url = format!("http://{PROXY_INSIDE}");
    [
        ("HTTPS_PROXY", url.clone()),
        ("https_proxy", url.clone()),
        ("HTTP_PROXY", url.clone()),
        ("http_proxy", url.clone()),
        ("ALL_PROXY", url.clone()),
        ("all_proxy", url),
    ]
}
