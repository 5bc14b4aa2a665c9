//! The gateway: upstreams, router, sessions and pipeline wired together, and the one entry
//! point every transport calls with each message from an agent.

use std::sync::Arc;
use std::time::Duration;

use mcpguard_protocol::{Kind, Message, RpcError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::caller::Caller;
use crate::config::Config;
use crate::pipeline::forward::Forward;
use crate::pipeline::logging::CallLog;
use crate::pipeline::{CallContext, Pipeline, Plugin};
use crate::relay::BroadcastRelay;
use crate::router::Router;
use crate::session::{Session, SessionStore};
use crate::upstream::Relay;
use crate::upstream::registry::Upstream;

/// How many agents the gateway serves: it decides who may answer a question an upstream
/// shared by all of them asks outside any call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agents {
    /// Exactly one (`mcpguard stdio`): everything the upstreams say is for that agent.
    One,
    /// Any number (`mcpguard serve`): what cannot be attributed to a call is not guessed.
    Many,
}

/// With shared state, how long a replica serves a session it holds before asking Redis
/// again whether it still lives (an end on another replica arrives at once by message;
/// this bounds the delay when that message is lost).
const SESSION_RECHECK: Duration = Duration::from_secs(1);

/// The message replicas pass each other when a session ends (never from an agent: only
/// answers and cancellations of agents are passed on).
const SESSION_ENDED: &str = "mcpguard/session_ended";

/// JSON-RPC code for a request the agent cancelled (the LSP convention).
pub const REQUEST_CANCELLED: i64 = -32800;

/// The running gateway.
pub struct Gateway {
    config: Arc<Config>,
    router: Arc<Router>,
    pipeline: Pipeline,
    sessions: Arc<SessionStore>,
    shutdown: CancellationToken,
    draining: CancellationToken,
    calls: TaskTracker,
    /// Resolve each named call's upstream before the pipeline (plugins judge by it).
    locate_targets: bool,
    /// Who may call.
    auth: Arc<crate::auth::Authenticator>,
    /// The counters and histograms of `/metrics`.
    metrics: Arc<crate::metrics::Metrics>,
    /// State shared with other replicas (sessions), when configured.
    shared: Option<Arc<crate::shared::SharedState>>,
    /// Balancers whose `X-Forwarded-For` is believed.
    proxies: crate::forwarded::TrustedProxies,
}

impl Gateway {
    /// Starts the upstreams and builds the pipeline: `plugins` plus the built-in call log
    /// and forwarder. Upstreams with `sandbox` settings run confined in `sandboxes`.
    /// Must run inside a Tokio runtime.
    pub fn start(
        config: Config,
        plugins: Vec<Arc<dyn Plugin>>,
        agents: Agents,
        sandboxes: Option<Arc<crate::sandboxing::SandboxHub>>,
    ) -> Result<Arc<Gateway>, String> {
        let auth = Arc::new(
            crate::auth::Authenticator::new(&config.auth).map_err(|e| format!("auth: {e}"))?,
        );
        let shared = crate::shared::SharedState::from_config(&config)?;
        let proxies = crate::forwarded::TrustedProxies::parse(&config.proxy.trusted_proxies)
            .map_err(|e| format!("proxy.trusted_proxies: {e}"))?;
        let shutdown = CancellationToken::new();
        let sessions = Arc::new(SessionStore::new());
        let listeners = Arc::new(crate::listeners::Listeners::new());
        let broadcast: Arc<dyn Relay> =
            Arc::new(BroadcastRelay::new(&sessions, &listeners, agents));
        let mut upstreams = Vec::new();
        for (name, upstream) in &config.upstreams {
            if !upstream.enabled {
                continue;
            }
            upstreams.push(
                Upstream::start(
                    name,
                    upstream,
                    &config.proxy,
                    &config.federation.separator,
                    broadcast.clone(),
                    shutdown.clone(),
                    sandboxes.clone(),
                )
                .map_err(|e| format!("upstreams.{name}: {e}"))?,
            );
        }
        let router = Arc::new(
            Router::new(
                upstreams,
                config.federation.default_upstream.as_deref(),
                sessions.clone(),
                listeners,
                agents,
            )
            .with_shared(shared.clone()),
        );
        let locate_targets = !plugins.is_empty();
        let mut all: Vec<Arc<dyn Plugin>> = plugins;
        all.push(Arc::new(CallLog));
        let metrics = Arc::new(crate::metrics::Metrics::new());
        all.push(Arc::new(crate::metrics::MetricsPlugin::new(
            metrics.clone(),
        )));
        all.push(Arc::new(Forward::new(router.clone())));
        let gateway = Arc::new(Gateway {
            config: Arc::new(config),
            router,
            pipeline: Pipeline::new(all).with_metrics(metrics.clone()),
            sessions,
            shutdown,
            draining: CancellationToken::new(),
            calls: TaskTracker::new(),
            locate_targets,
            auth,
            metrics,
            shared,
            proxies,
        });
        gateway.spawn_housekeeping();
        Ok(gateway)
    }

    /// The OpenMetrics exposition of the gateway's metrics, as of now.
    pub fn render_metrics(&self) -> String {
        let upstreams: Vec<(String, bool, u64)> = self
            .router
            .upstreams()
            .iter()
            .map(|u| (u.name.clone(), u.health().0, u.restarts()))
            .collect();
        self.metrics.render(&upstreams)
    }

    /// Who may call.
    pub fn auth(&self) -> &crate::auth::Authenticator {
        &self.auth
    }

    /// Writes the log phase (the audit event) for a call refused before the pipeline
    /// (authentication), with `answer` as its answer.
    pub async fn record_refusal(&self, caller: Caller, request: Message, answer: Message) {
        let mut ctx = CallContext::new(caller, request, Arc::new(crate::upstream::NoRelay));
        ctx.response = Some(answer);
        ctx.answered_in = Some((crate::pipeline::Phase::Access, "auth"));
        self.pipeline.log_only(&ctx).await;
    }

    /// The client of a request from `peer` with `headers` (see [`crate::forwarded`]).
    pub fn client_address(
        &self,
        peer: std::net::SocketAddr,
        headers: &http::HeaderMap,
    ) -> std::net::SocketAddr {
        if self.proxies.is_empty() {
            return peer;
        }
        self.proxies.client(
            peer,
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )
    }

    /// Passes an agent's message in `session` that nothing here waits for (an answer to a
    /// server→client request, a cancellation) to the other replicas. False without
    /// shared state or when it could not be sent.
    pub async fn pass_on(&self, session: &Session, message: &Message) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        match shared.send_to_session(session.id(), message.bytes()).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(session = session.log_id(), error = %e, "a message for another replica was lost");
                false
            }
        }
    }

    /// Delivers what other replicas pass on to this replica's sessions.
    fn spawn_mail(&self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let sessions = Arc::downgrade(&self.sessions);
        let router = Arc::downgrade(&self.router);
        let stop = self.shutdown.clone();
        let answering = shared.clone();
        let resume = move |resume: crate::shared::ResumeRequest| {
            let (Some(router), shared) = (router.upgrade(), answering.clone()) else {
                return;
            };
            tokio::spawn(async move {
                let answer = router.resume_parked(&resume.request).await;
                if let Err(e) = shared.answer_resume(&resume, &answer).await {
                    tracing::warn!(error = %e, "the answer of a resumed call could not reach its replica");
                }
            });
        };
        tokio::spawn(async move {
            shared
                .listen(
                    stop,
                    move |tag, bytes| {
                        let Some(sessions) = sessions.upgrade() else {
                            return;
                        };
                        let Some(session) = sessions.all().into_iter().find(|s| s.tag() == tag)
                        else {
                            return;
                        };
                        let Ok(message) = Message::parse(bytes::Bytes::copy_from_slice(bytes))
                        else {
                            return;
                        };
                        if message.method() == Some(SESSION_ENDED) {
                            let sessions = sessions.clone();
                            tokio::spawn(async move {
                                if sessions.end(session.id()).await {
                                    tracing::info!(
                                        session = session.log_id(),
                                        "session ended on another replica"
                                    );
                                }
                            });
                        } else if message.is_reply() {
                            if session.deliver_answer(message) {
                                tracing::debug!(
                                    session = session.log_id(),
                                    "an answer arrived through another replica"
                                );
                            }
                        } else if message.method()
                            == Some(mcpguard_protocol::mcp::method::CANCELLED)
                            && let Some(id) = message
                                .params()
                                .and_then(|p| mcpguard_protocol::json::member(p, "requestId"))
                            && session.cancel(id)
                        {
                            tracing::debug!(
                                session = session.log_id(),
                                "a call was cancelled through another replica"
                            );
                        }
                    },
                    resume,
                )
                .await;
        });
    }

    fn spawn_housekeeping(self: &Arc<Self>) {
        self.spawn_mail();
        if let Some(interval) = self.auth.jwt().and_then(|j| j.refresh_interval()) {
            let auth = self.auth.clone();
            let shutdown = self.shutdown.clone();
            tokio::spawn(async move {
                loop {
                    if let Some(jwt) = auth.jwt() {
                        match jwt.refresh().await {
                            Ok(keys) => tracing::debug!(keys, "JWKS fetched"),
                            Err(error) => {
                                tracing::warn!(%error, "fetching the JWKS failed; the previous keys stay in force")
                            }
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            });
        }
        if self.auth.enabled() {
            let auth = self.auth.clone();
            let shutdown = self.shutdown.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    let auth = auth.clone();
                    let _ = tokio::task::spawn_blocking(move || auth.reload_if_changed()).await;
                }
            });
        }
        // Probe HTTP upstreams now so /readyz and the first call do not wait.
        for upstream in self.router.upstreams().iter().cloned() {
            let shutdown = self.shutdown.clone();
            tokio::spawn(async move {
                let mut delay = Duration::from_millis(250);
                loop {
                    match upstream.probe().await {
                        Ok(()) => return,
                        Err(e) => {
                            tracing::warn!(upstream = %upstream.name, "not reachable yet: {e}")
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            });
        }
        let sessions = self.sessions.clone();
        let router = self.router.clone();
        let idle = Duration::from_secs_f64(self.config.proxy.session_idle_timeout_seconds);
        let shutdown = self.shutdown.clone();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                    _ = shutdown.cancelled() => return,
                }
                router.expire_parked();
                if let Some(shared) = &shared {
                    // A session busy here (a call running, a GET stream attached) is in
                    // use however long since its last request: keep it alive in Redis.
                    for session in sessions.all().into_iter().filter(|s| s.is_busy()) {
                        if let Err(e) = shared.load_session(session.id()).await {
                            tracing::warn!(session = session.log_id(), error = %e, "could not keep a busy session alive in the shared state");
                        }
                    }
                }
                let ended = sessions.expire(idle).await;
                if ended > 0 {
                    tracing::info!(ended, "ended idle sessions");
                }
            }
        });
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The session `id`: this replica's, or with shared state one that another replica
    /// opened (served here from now on). `Ok(None)` when it is unknown or has ended
    /// anywhere; `Err` when the shared state cannot answer.
    pub async fn find_session(&self, id: &str) -> Result<Option<Arc<Session>>, String> {
        let local = self.sessions.get(id);
        let Some(shared) = &self.shared else {
            return Ok(local);
        };
        if let Some(session) = &local
            && session.confirmed_within(SESSION_RECHECK)
        {
            return Ok(local);
        }
        match (local, shared.load_session(id).await?) {
            (Some(session), Some(_)) => {
                session.confirm();
                Ok(Some(session))
            }
            (Some(_), None) => {
                // Ended on another replica, or expired: end this replica's part too.
                self.sessions.end(id).await;
                Ok(None)
            }
            (None, Some(record)) => {
                let limit = self.config.proxy.max_sessions;
                if self.sessions.len() >= limit {
                    return Err(format!(
                        "this replica holds its maximum of {limit} sessions (`proxy.max_sessions`)"
                    ));
                }
                let session = Arc::new(Session::restore(
                    id.to_string(),
                    &record.initialize_params,
                    &record.protocol_version,
                    record.owner,
                    self.config.proxy.replay_buffer_events,
                ));
                tracing::info!(
                    session = session.log_id(),
                    "serving a session another replica opened"
                );
                session.confirm();
                Ok(Some(self.sessions.adopt(session)))
            }
            (None, None) => Ok(None),
        }
    }

    /// Publishes a new session to the other replicas (nothing without shared state).
    pub async fn publish_session(&self, session: &Session) -> Result<(), String> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let record = crate::shared::SessionRecord {
            protocol_version: session.protocol_version.clone(),
            initialize_params: session.initialize_params.clone(),
            owner: session.owner().map(str::to_string),
        };
        shared.save_session(session.id(), &record).await
    }

    /// Ends the session `id` here and on every replica. False when it was unknown.
    pub async fn end_session(&self, id: &str) -> Result<bool, String> {
        let Some(shared) = &self.shared else {
            return Ok(self.sessions.end(id).await);
        };
        // Redis first: if it cannot take the end, the session stays whole everywhere.
        let in_redis = shared.end_session(id).await?;
        let anywhere = self.sessions.end(id).await || in_redis;
        // Replicas holding it end it now rather than at their next check.
        let ended = Message::notification(SESSION_ENDED, None);
        if let Err(e) = shared.send_to_session(id, ended.bytes()).await {
            tracing::warn!(error = %e, "other replicas will notice the ended session within a second");
        }
        Ok(anywhere)
    }

    /// The sessions.
    pub fn sessions(&self) -> &Arc<SessionStore> {
        &self.sessions
    }

    /// The router.
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// The pipeline's plugin names, in running order.
    pub fn plugin_names(&self) -> Vec<&'static str> {
        self.pipeline.names()
    }

    /// Fires when shutdown begins (new calls are refused from then on).
    pub fn draining(&self) -> CancellationToken {
        self.draining.clone()
    }

    /// Handles one message from an agent: runs it through the pipeline and returns the
    /// answer for a request (`None` for a notification). Messages about the call on the
    /// way go to `relay`.
    pub async fn handle(
        &self,
        caller: Caller,
        message: Message,
        relay: Arc<dyn Relay>,
    ) -> Option<Message> {
        if self.draining.is_cancelled() && message.kind() == Kind::Request {
            return Some(Message::error_response(
                message.id(),
                &crate::error::CallError::ShuttingDown.to_rpc(),
            ));
        }
        if let Some(session) = caller.session.as_ref().filter(|s| s.is_closed()) {
            return (message.kind() == Kind::Request).then(|| {
                transport_error(
                    message.id(),
                    mcpguard_protocol::codes::INVALID_REQUEST,
                    format!(
                        "session `{}` has ended; send `initialize` to start a new one",
                        session.id()
                    ),
                )
            });
        }
        let request_id = (message.kind() == Kind::Request)
            .then(|| message.id().map(str::to_string))
            .flatten();
        let cancel = match (&caller.session, &request_id) {
            (Some(session), Some(id)) => match session.track(id) {
                Some(token) => Some((session.clone(), token)),
                None => {
                    return Some(transport_error(
                        Some(id),
                        mcpguard_protocol::codes::INVALID_REQUEST,
                        format!(
                            "request id {id} is already used by a request in progress in this session; give every request its own id"
                        ),
                    ));
                }
            },
            _ => None,
        };
        // Kept to record the call if the agent cancels it before the pipeline finishes.
        let cancelled_call = cancel
            .as_ref()
            .map(|_| (caller.clone(), message.clone(), relay.clone()));
        let mut ctx = CallContext::new(caller, message, relay);
        let recorded = crate::pipeline::Recorded::default();
        ctx.extensions.insert(recorded.clone());
        if self.locate_targets {
            if crate::pipeline::guard::GUARDED.contains(&ctx.method()) {
                ctx.target = self.router.locate(&ctx).await;
            }
            ctx.extensions.insert(self.router.clone());
        }
        let run = self.calls.track_future(self.pipeline.run(ctx));
        let answer = match &cancel {
            Some((_, token)) => {
                tokio::select! {
                    ctx = run => ctx.response,
                    _ = token.cancelled() => {
                        let answer = Message::error_response(
                            request_id.as_deref(),
                            &RpcError::new(REQUEST_CANCELLED, "the request was cancelled"),
                        );
                        if let Some((caller, message, relay)) = cancelled_call
                            && !recorded.is_marked()
                        {
                            let mut ctx = CallContext::new(caller, message, relay);
                            ctx.response = Some(answer.clone());
                            self.pipeline.log_only(&ctx).await;
                        }
                        Some(answer)
                    }
                }
            }
            None => run.await.response,
        };
        if let (Some((session, _)), Some(id)) = (&cancel, &request_id) {
            session.untrack(id);
        }
        answer
    }

    /// Health of each upstream: (name, usable, required, detail).
    pub fn upstream_health(&self) -> Vec<(String, bool, bool, String)> {
        self.router
            .upstreams()
            .iter()
            .map(|u| {
                let (ok, detail) = u.health();
                (u.name.clone(), ok, u.required, detail)
            })
            .collect()
    }

    /// True when every required upstream is usable.
    pub fn is_ready(&self) -> bool {
        self.upstream_health()
            .iter()
            .all(|(_, ok, required, _)| *ok || !*required)
    }

    /// Stops: refuses new calls, lets calls in flight finish within `grace`, ends the
    /// sessions and stops the upstreams.
    pub async fn shutdown(&self, grace: Duration) {
        self.draining.cancel();
        self.calls.close();
        let drained = tokio::time::timeout(grace, self.calls.wait()).await.is_ok();
        if !drained {
            tracing::warn!(
                in_flight = self.calls.len(),
                "calls still running after the shutdown grace period; cutting them off"
            );
        }
        self.shutdown.cancel();
        for session in self.sessions.all() {
            self.sessions.end(session.id()).await;
        }
        let stops = self.router.upstreams().iter().map(|u| u.stop());
        let _ =
            tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(stops)).await;
    }
}

/// A JSON-RPC error answer for a transport-level fault.
pub fn transport_error(id: Option<&str>, code: i64, message: impl Into<String>) -> Message {
    Message::error_response(id, &RpcError::new(code, message))
}
