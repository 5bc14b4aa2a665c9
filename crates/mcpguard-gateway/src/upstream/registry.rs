//! The configured upstreams and how a call picks its link to one.
//!
//! Stdio upstreams have one shared, supervised process. HTTP upstreams have one shared
//! link (stateless, or a gateway-owned handshake session) and, for agents of the handshake
//! era, a session of their own per agent session, set up with the agent's own
//! `initialize` params so the upstream sees the real client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mcpguard_protocol::mcp::Era;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::http::{HttpEndpoint, HttpLink};
use super::stdio::{LinkStatus, StdioUpstream};
use super::{Connection, Relay, ServerInfo};
use crate::caller::Caller;
use crate::config::{ProxyConfig, Transport, UpstreamConfig, UpstreamProtocol};
use crate::error::CallError;

/// The link a call should use.
#[derive(Clone)]
pub struct Link {
    /// The connection.
    pub connection: Arc<dyn Connection>,
    /// The era the connection speaks.
    pub era: Era,
    /// Whether other agents share the connection (a stdio child, the gateway's own HTTP
    /// session) rather than it being this agent's own upstream session.
    pub shared: bool,
}

enum Kind {
    Stdio(Arc<StdioUpstream>, Box<OwnStdio>),
    Http(Box<HttpUpstream>),
}

/// What it takes to start a session's own copy of a stdio server (`isolation: session`).
struct OwnStdio {
    isolation: crate::config::Isolation,
    config: UpstreamConfig,
    max_message: usize,
    sandboxes: Option<Arc<crate::sandboxing::SandboxHub>>,
}

struct HttpUpstream {
    endpoint: Arc<HttpEndpoint>,
    protocol: UpstreamProtocol,
    shared: tokio::sync::Mutex<Option<Arc<HttpLink>>>,
    /// The established shared link, readable without waiting (the hot path).
    ready: parking_lot::RwLock<Option<Arc<HttpLink>>>,
    shared_info: Mutex<Option<ServerInfo>>,
    last_error: Mutex<Option<String>>,
    handshake_unsupported: AtomicBool,
    unsolicited: Arc<dyn Relay>,
}

/// One configured upstream.
pub struct Upstream {
    /// Its name in the configuration.
    pub name: String,
    /// The prefix of its tool and prompt names, including the separator; empty for none.
    pub prefix: String,
    /// Per-call timeout.
    pub timeout: Duration,
    /// Whether `/readyz` waits for it.
    pub required: bool,
    kind: Kind,
}

impl Upstream {
    /// Starts an upstream (spawns a stdio child; HTTP links are set up on first use or by
    /// [`Upstream::probe`]).
    pub fn start(
        name: &str,
        config: &UpstreamConfig,
        proxy: &ProxyConfig,
        separator: &str,
        unsolicited: Arc<dyn Relay>,
        shutdown: CancellationToken,
        sandboxes: Option<Arc<crate::sandboxing::SandboxHub>>,
    ) -> Result<Arc<Upstream>, String> {
        if config.sandbox.is_some() && sandboxes.is_none() {
            return Err("`sandbox` is set, and this gateway was started without sandboxes".into());
        }
        let prefix = match config.effective_prefix(name) {
            "" => String::new(),
            prefix => format!("{prefix}{separator}"),
        };
        let timeout =
            Duration::from_secs_f64(config.timeout_seconds.unwrap_or(proxy.call_timeout_seconds));
        let kind = match config.transport {
            Transport::Stdio => Kind::Stdio(
                StdioUpstream::start(
                    name,
                    config.clone(),
                    proxy.max_upstream_message_bytes,
                    unsolicited,
                    shutdown,
                    sandboxes.clone(),
                ),
                Box::new(OwnStdio {
                    isolation: config.isolation,
                    config: config.clone(),
                    max_message: proxy.max_upstream_message_bytes,
                    sandboxes,
                }),
            ),
            Transport::Http => Kind::Http(Box::new(HttpUpstream {
                endpoint: HttpEndpoint::new(
                    name,
                    config.url.as_deref().unwrap_or_default(),
                    &config.headers,
                    config.ca_file.as_deref(),
                    proxy.max_upstream_message_bytes,
                )?,
                protocol: config.protocol.clone(),
                shared: tokio::sync::Mutex::new(None),
                ready: parking_lot::RwLock::new(None),
                shared_info: Mutex::new(None),
                last_error: Mutex::new(None),
                handshake_unsupported: AtomicBool::new(false),
                unsolicited,
            })),
        };
        Ok(Arc::new(Upstream {
            name: name.to_string(),
            prefix,
            timeout,
            required: config.required,
            kind,
        }))
    }

    /// What the upstream said about itself on its shared link, once known.
    pub fn info(&self) -> Option<ServerInfo> {
        match &self.kind {
            Kind::Stdio(stdio, _) => stdio.info(),
            Kind::Http(http) => http.shared_info.lock().clone(),
        }
    }

    /// How many times a stdio upstream was restarted (0 for HTTP upstreams).
    pub fn restarts(&self) -> u64 {
        match &self.kind {
            Kind::Stdio(stdio, _) => stdio.restarts(),
            Kind::Http(_) => 0,
        }
    }

    /// Whether the upstream is usable now, and a one-line description.
    pub fn health(&self) -> (bool, String) {
        match &self.kind {
            Kind::Stdio(stdio, _) => match stdio.status() {
                LinkStatus::Ready(info) => (true, format!("ready ({})", info.protocol_version)),
                LinkStatus::Starting => (false, "starting".into()),
                LinkStatus::Restarting { reason, attempt } => {
                    (false, format!("down ({reason}); restart attempt {attempt}"))
                }
                LinkStatus::Stopped => (false, "stopped".into()),
            },
            Kind::Http(http) => match (&*http.shared_info.lock(), &*http.last_error.lock()) {
                (Some(info), _) => (true, format!("ready ({})", info.protocol_version)),
                (None, Some(error)) => (false, format!("unreachable ({error})")),
                (None, None) => (false, "not probed yet".into()),
            },
        }
    }

    /// Sets up the shared link of an HTTP upstream now (stdio upstreams set up on their
    /// own). Returns the error when it cannot be reached.
    pub async fn probe(&self) -> Result<(), String> {
        match &self.kind {
            Kind::Stdio(..) => Ok(()),
            Kind::Http(http) => http
                .shared_link()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }

    /// Waits up to `wait` for the upstream to be usable (its shared link set up), so that
    /// what it offers is known. Returns whether it is.
    pub async fn wait_ready(&self, wait: Duration) -> bool {
        match &self.kind {
            Kind::Stdio(stdio, _) => stdio.wait_ready(wait).await,
            Kind::Http(http) => {
                if http.shared_info.lock().is_some() {
                    return true;
                }
                tokio::time::timeout(wait, http.shared_link())
                    .await
                    .is_ok_and(|r| r.is_ok())
            }
        }
    }

    /// The link a call from `caller` should use. `session_relay` builds the relay for a
    /// per-session link's unsolicited messages.
    pub async fn link(
        &self,
        caller: &Caller,
        session_relay: impl FnOnce() -> Arc<dyn Relay>,
    ) -> Result<Link, CallError> {
        match &self.kind {
            Kind::Stdio(shared, own) => {
                let (stdio, is_shared) = match (&caller.session, own.isolation) {
                    (Some(session), crate::config::Isolation::Session) => {
                        let relay = session_relay();
                        let stdio = session.own_stdio(&self.name, || {
                            tracing::info!(upstream = %self.name, session = session.log_id(), "starting a server of the session's own");
                            StdioUpstream::start(
                                &self.name,
                                own.config.clone(),
                                own.max_message,
                                relay,
                                session.ending(),
                                own.sandboxes.clone(),
                            )
                        });
                        (stdio, false)
                    }
                    _ => (shared.clone(), true),
                };
                // The era is known once the child is set up; wait for that (bounded).
                if stdio.info().is_none() {
                    stdio
                        .wait_ready(self.timeout.min(Duration::from_secs(30)))
                        .await;
                }
                let era = stdio.info().map_or(Era::Handshake, |info| info.era);
                Ok(Link {
                    connection: stdio,
                    era,
                    shared: is_shared,
                })
            }
            Kind::Http(http) => http.link(caller, session_relay).await,
        }
    }

    /// Stops the upstream (waits for a stdio child to exit).
    pub async fn stop(&self) {
        match &self.kind {
            Kind::Stdio(stdio, _) => stdio.stopped().await,
            Kind::Http(http) => http.reset_shared().await,
        }
    }
}

impl HttpUpstream {
    async fn shared_link(&self) -> Result<Arc<HttpLink>, CallError> {
        let ready = self.ready.read().clone();
        match ready {
            Some(link) if !link.is_expired() => return Ok(link),
            Some(_) => self.reset_shared().await,
            None => {}
        }
        let mut shared = self.shared.lock().await;
        if let Some(link) = shared.as_ref() {
            return Ok(link.clone());
        }
        let link = HttpLink::new(self.endpoint.clone(), self.unsolicited.clone());
        match link.establish(&self.protocol).await {
            Ok(info) => {
                tracing::info!(
                    upstream = %self.endpoint.name(),
                    protocol = %info.protocol_version,
                    "http upstream ready"
                );
                *self.shared_info.lock() = Some(info);
                *self.last_error.lock() = None;
                *shared = Some(link.clone());
                *self.ready.write() = Some(link.clone());
                Ok(link)
            }
            Err(reason) => {
                *self.last_error.lock() = Some(reason.clone());
                Err(CallError::Unavailable {
                    upstream: self.endpoint.name().to_string(),
                    reason,
                })
            }
        }
    }

    /// Drops the shared link after a failure so the next call sets up a new one.
    async fn reset_shared(&self) {
        *self.ready.write() = None;
        if let Some(link) = self.shared.lock().await.take() {
            link.close().await;
        }
        *self.shared_info.lock() = None;
    }

    async fn link(
        &self,
        caller: &Caller,
        session_relay: impl FnOnce() -> Arc<dyn Relay>,
    ) -> Result<Link, CallError> {
        let wants_own_session = caller.session.is_some()
            && self.protocol != UpstreamProtocol::Stateless
            && !self.handshake_unsupported.load(Ordering::Relaxed);
        if let (true, Some(session)) = (wants_own_session, caller.session.as_ref()) {
            let mut slot = session.link_slot(self.endpoint.name());
            if slot.get().is_some_and(|link| link.is_expired()) {
                session.reset_link(self.endpoint.name());
                slot = session.link_slot(self.endpoint.name());
            }
            let relay = session_relay();
            let result = slot
                .get_or_try_init(|| async {
                    let link = HttpLink::new(self.endpoint.clone(), relay);
                    link.establish_for_agent(&session.initialize_params)
                        .await
                        .map(|_| link)
                })
                .await;
            match result {
                Ok(link) => {
                    return Ok(Link {
                        connection: link.clone(),
                        era: Era::Handshake,
                        shared: false,
                    });
                }
                Err(reason) => {
                    // A stateless-only server refuses `initialize`: use the shared link and
                    // bridge. Any other failure is the answer.
                    let shared = self.shared_link().await?;
                    if shared.info().is_some_and(|info| info.era == Era::Stateless) {
                        self.handshake_unsupported.store(true, Ordering::Relaxed);
                    } else {
                        session.reset_link(self.endpoint.name());
                        return Err(CallError::Unavailable {
                            upstream: self.endpoint.name().to_string(),
                            reason: format!("opening a session for this agent failed: {reason}"),
                        });
                    }
                }
            }
        }
        let link = match self.shared_link().await {
            Ok(link) => link,
            Err(e) => {
                self.reset_shared().await;
                return Err(e);
            }
        };
        let era = link.info().map_or(Era::Handshake, |info| info.era);
        Ok(Link {
            connection: link,
            era,
            shared: true,
        })
    }
}
