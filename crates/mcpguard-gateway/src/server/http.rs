//! The agent-facing Streamable HTTP endpoint (`/mcp`), plus `/healthz` and `/readyz`.
//!
//! One JSON-RPC message per POST. A request is answered with JSON when the upstream's
//! answer is the first thing to arrive, and with an SSE stream when messages about the call
//! come first (progress, logs, server→client requests). Handshake-era sessions are named by
//! `Mcp-Session-Id`; their streams can be resumed with `Last-Event-ID`. Requests of the
//! stateless 2026-07-28 revision carry no session and must agree with their `Mcp-*`
//! headers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router as AxumRouter;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use mcpguard_protocol::mcp::{self, Era};
use mcpguard_protocol::{Kind, Message, ParseError, RpcError, codes, json};
use tokio::sync::mpsc;

use crate::caller::{Caller, Downstream};
use crate::gateway::Gateway;
use crate::relay::{CallRelay, Outbound};
use crate::session::{LIVE_QUEUE, Session, Stream, StreamEvent, parse_event_id};
use crate::upstream::setup::meta_key;
use crate::upstream::{Relay, StreamSignal};

/// Suggested reconnection delay sent in priming events, in milliseconds.
const RETRY_MS: u64 = 1000;

/// Builds the HTTP application.
pub fn app(gateway: Arc<Gateway>) -> AxumRouter {
    AxumRouter::new()
        .route("/mcp", get(get_mcp).post(post_mcp).delete(delete_mcp))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/{*path}",
            get(resource_metadata),
        )
        .route("/readyz", get(readyz))
        .with_state(gateway)
}

/// The metrics: OpenMetrics when the scraper asks for it, else the Prometheus text
/// format 0.0.4.
async fn metrics(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = check_origin(&gateway, &headers) {
        return refusal;
    }
    let openmetrics = gateway.render_metrics();
    // Asked for by name (Prometheus does), not through `*/*`.
    let wants_openmetrics = header_str(&headers, "accept")
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    if wants_openmetrics {
        return (
            [(
                http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            openmetrics,
        )
            .into_response();
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::to_prometheus_text(&openmetrics),
    )
        .into_response()
}

/// The protected-resource metadata (RFC 9728), when `auth.resource` is configured.
async fn resource_metadata(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.auth().metadata() {
        Some(metadata) => (
            [(http::header::CONTENT_TYPE, "application/json")],
            metadata.to_string(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn healthz(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = check_origin(&gateway, &headers) {
        return refusal;
    }
    "ok\n".into_response()
}

async fn readyz(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = check_origin(&gateway, &headers) {
        return refusal;
    }
    let upstreams: Vec<serde_json::Value> = gateway
        .upstream_health()
        .into_iter()
        .map(|(name, ok, required, detail)| {
            serde_json::json!({"name": name, "ready": ok, "required": required, "detail": detail})
        })
        .collect();
    let ready = gateway.is_ready();
    let body = serde_json::json!({"ready": ready, "upstreams": upstreams}).to_string();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A JSON-RPC error as an HTTP response.
fn rpc_error(
    status: StatusCode,
    id: Option<&str>,
    code: i64,
    message: impl Into<String>,
) -> Response {
    rpc_error_with(status, id, RpcError::new(code, message))
}

fn rpc_error_with(status: StatusCode, id: Option<&str>, error: RpcError) -> Response {
    let body = Message::error_response(id, &error).into_bytes();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json_response(message: &Message, era: Era, extra: &[(&'static str, HeaderValue)]) -> Response {
    let status = match (era, message.kind()) {
        (Era::Stateless, Kind::Error) => {
            let code = message
                .error()
                .and_then(|e| json::member(e, "code"))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            StatusCode::from_u16(codes::http_status_for(code)).unwrap_or(StatusCode::OK)
        }
        _ => StatusCode::OK,
    };
    let mut response = Response::new(Body::from(message.bytes().clone()));
    *response.status_mut() = status;
    if message.kind() == Kind::Error {
        rate_limit_headers(message, &mut response);
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in extra {
        response.headers_mut().insert(*name, value.clone());
    }
    response
}

/// A rate-limited answer sent as JSON: HTTP 429 with `Retry-After` and `X-RateLimit-*`.
fn rate_limit_headers(message: &Message, response: &mut Response) {
    let Some(error) = message.error() else {
        return;
    };
    if json::member(error, "code").and_then(|c| c.parse::<i64>().ok()) != Some(codes::RATE_LIMITED)
    {
        return;
    }
    let data = json::member(error, "data").unwrap_or("{}");
    let number = |key: &str| {
        json::member(data, key)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let retry_ms = number("retry_after_ms");
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let headers = response.headers_mut();
    let seconds = ((retry_ms / 1000.0).ceil() as u64).max(1).to_string();
    for (name, value) in [
        ("retry-after", seconds.clone()),
        ("x-ratelimit-limit", (number("burst") as u64).to_string()),
        ("x-ratelimit-remaining", "0".to_string()),
        ("x-ratelimit-reset", seconds),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The host part of a `Host` header or an origin URL's authority.
fn host_of(authority: &str) -> &str {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// DNS-rebinding defence: a browser page on another origin must not reach the gateway.
/// Returns the refusal, if any.
fn check_origin(gateway: &Gateway, headers: &HeaderMap) -> Option<Response> {
    let proxy = &gateway.config().proxy;
    if let Some(origin) = header_str(headers, "origin") {
        let allowed = proxy.allowed_origins.iter().any(|o| o == origin) || {
            let authority = origin.split("://").nth(1).unwrap_or("");
            let scheme_ok = origin.starts_with("http://") || origin.starts_with("https://");
            scheme_ok && is_loopback_host(host_of(authority))
        };
        if !allowed {
            return Some(rpc_error(
                StatusCode::FORBIDDEN,
                None,
                codes::INVALID_REQUEST,
                format!(
                    "origin `{origin}` is not allowed; add it to `proxy.allowed_origins` if it is trusted"
                ),
            ));
        }
    }
    let bound_to_loopback = is_loopback_host(&proxy.host);
    if (bound_to_loopback || !proxy.allowed_hosts.is_empty())
        && let Some(host) = header_str(headers, "host")
    {
        let name = host_of(host);
        let allowed = (bound_to_loopback && is_loopback_host(name))
            || proxy
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name));
        if !allowed {
            return Some(rpc_error(
                StatusCode::FORBIDDEN,
                None,
                codes::INVALID_REQUEST,
                format!(
                    "host `{host}` is not allowed; add it to `proxy.allowed_hosts` if it is trusted"
                ),
            ));
        }
    }
    None
}

/// Reads a body of at most `proxy.max_body_bytes`; the refusal (413) otherwise.
async fn read_body(
    gateway: &Gateway,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, Box<Response>> {
    let limit = gateway.config().proxy.max_body_bytes;
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && length > limit
    {
        return Err(Box::new(too_large(limit)));
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| Box::new(too_large(limit)))
}

fn too_large(limit: usize) -> Response {
    rpc_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
        codes::INVALID_REQUEST,
        format!("the message exceeds the limit of {limit} bytes (`proxy.max_body_bytes`)"),
    )
}

fn accepts(headers: &HeaderMap, media: &str) -> bool {
    match header_str(headers, "accept") {
        None => true,
        Some(accept) => accept.split(',').any(|part| {
            let part = part.split(';').next().unwrap_or("").trim();
            part == media
                || part == "*/*"
                || (part.ends_with("/*") && media.starts_with(&part[..part.len() - 1]))
        }),
    }
}

// Futures of async functions nest: a caller's future holds its callee's, and each layer
// can double the size (the callee's arguments live in both). The router boxes the
// handler's future and so copies it whole for every request; boxing the callees here
// keeps that future small (it was 29 KB, copied on every call).
async fn post_mcp(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    if let Some(refusal) = check_origin(&gateway, &headers) {
        return refusal;
    }
    let remote = gateway.client_address(remote, &headers);
    let content_type = header_str(&headers, "content-type").unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    {
        return rpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            codes::INVALID_REQUEST,
            format!("content type must be `application/json`, not `{content_type}`"),
        );
    }
    if !accepts(&headers, "application/json") && !accepts(&headers, "text/event-stream") {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            codes::INVALID_REQUEST,
            "the client must accept `application/json` and `text/event-stream`",
        );
    }
    let body = match read_body(&gateway, &headers, body).await {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let message = match Message::parse(body) {
        Ok(message) => message,
        Err(error) => {
            let hint = match &error {
                ParseError::Batch => String::new(),
                _ => String::new(),
            };
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                error.code(),
                format!("{error}{hint}"),
            );
        }
    };
    let identity = match gateway.auth().authenticate(&headers).await {
        Ok(identity) => identity,
        Err(error) => return Box::pin(unauthenticated(&gateway, remote, message, &error)).await,
    };
    if let Some(identity) = &identity
        && let Some(method) = message.method()
    {
        let tool = message
            .params()
            .and_then(|p| json::member_str(p, "name"))
            .map(|n| n.into_owned());
        let missing = gateway
            .auth()
            .missing_scopes(identity, method, tool.as_deref());
        if !missing.is_empty() {
            return Box::pin(insufficient_scope(
                &gateway, remote, message, identity, &missing,
            ))
            .await;
        }
    }
    let version_header = header_str(&headers, mcp::header::PROTOCOL_VERSION).map(str::to_string);
    let session_header = header_str(&headers, mcp::header::SESSION_ID).map(str::to_string);

    // An agent answering one of our server→client requests.
    if message.is_reply() {
        let session = match lookup_session(&gateway, session_header.as_deref()).await {
            Ok(session) => session,
            Err(problem) => return *problem,
        };
        if !session.belongs_to(identity.as_deref()) {
            return Box::pin(foreign_session(&gateway, remote, message, identity.clone())).await;
        }
        adopt_identity(&session, identity.as_ref());
        session.touch();
        let copy = message.clone();
        if !session.deliver_answer(message) && !Box::pin(gateway.pass_on(&session, &copy)).await {
            tracing::debug!(
                session = session.log_id(),
                "an answer arrived for no pending request"
            );
        }
        return StatusCode::ACCEPTED.into_response();
    }

    let is_initialize = message.method() == Some(mcp::method::INITIALIZE);
    if is_initialize && version_header.as_deref().and_then(Era::of) != Some(Era::Stateless) {
        return Box::pin(initialize(gateway, remote, message, &headers, identity)).await;
    }
    if let Some(id) = session_header.as_deref() {
        let session = match lookup_session(&gateway, Some(id)).await {
            Ok(session) => session,
            Err(problem) => return *problem,
        };
        if !session.belongs_to(identity.as_deref()) {
            return Box::pin(foreign_session(&gateway, remote, message, identity.clone())).await;
        }
        adopt_identity(&session, identity.as_ref());
        if let Some(version) = version_header.as_deref()
            && Era::of(version) != Some(Era::Handshake)
        {
            return unsupported_version(message.id(), version, Era::Handshake);
        }
        session.touch();
        if message.method() == Some(mcp::method::CANCELLED)
            && let Some(request) = message.params().and_then(|p| json::member(p, "requestId"))
            && !session.is_tracking(request)
        {
            // The call runs on another replica (or no longer runs anywhere).
            Box::pin(gateway.pass_on(&session, &message)).await;
        }
        let caller = Caller::of_session(&session, Downstream::Http, Some(remote));
        return Box::pin(dispatch(gateway, caller, message, &headers, Some(session))).await;
    }
    match version_header.as_deref() {
        Some(version) if Era::of(version) == Some(Era::Stateless) => {
            Box::pin(stateless(
                gateway, remote, message, &headers, version, identity,
            ))
            .await
        }
        Some(version) if Era::of(version).is_none() => {
            unsupported_version(message.id(), version, Era::Stateless)
        }
        _ => rpc_error(
            StatusCode::BAD_REQUEST,
            message.id(),
            codes::INVALID_REQUEST,
            "missing `Mcp-Session-Id` header: send `initialize` first, or use protocol revision 2026-07-28 (which needs no session)",
        ),
    }
}

/// The caller of a request refused before the pipeline, for its audit event.
fn refused_caller(remote: SocketAddr, identity: Option<Arc<crate::auth::Identity>>) -> Caller {
    Caller {
        era: Era::Handshake,
        protocol_version: mcp::LATEST_HANDSHAKE_VERSION.into(),
        session: None,
        client_info: None,
        client_capabilities: None,
        downstream: Downstream::Http,
        remote: Some(remote),
        forwarded_headers: Vec::new(),
        identity,
        trace_parent: None,
    }
}

/// The answer to a caller that did not authenticate (HTTP 401 with a `WWW-Authenticate`
/// challenge, RFC 6750); the refusal is audited.
async fn unauthenticated(
    gateway: &Gateway,
    remote: SocketAddr,
    message: Message,
    error: &crate::auth::AuthError,
) -> Response {
    tracing::warn!(%remote, method = message.method().unwrap_or("-"), reason = %error, "caller refused: not authenticated");
    let rpc = RpcError::new(codes::UNAUTHENTICATED, error.to_string());
    let answer = Message::error_response(message.id(), &rpc);
    gateway
        .record_refusal(refused_caller(remote, None), message.clone(), answer)
        .await;
    let mut response = rpc_error_with(StatusCode::UNAUTHORIZED, message.id(), rpc);
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        challenge(gateway, error.challenge_error(), None),
    );
    response
}

/// The answer to a token without the scopes a call needs (HTTP 403, RFC 6750
/// `insufficient_scope`); audited.
async fn insufficient_scope(
    gateway: &Gateway,
    remote: SocketAddr,
    message: Message,
    identity: &Arc<crate::auth::Identity>,
    missing: &[String],
) -> Response {
    let needed = missing.join(" ");
    tracing::warn!(%remote, identity = %identity.name, scopes = %needed, "call refused: insufficient scope");
    let rpc = RpcError::new(
        codes::FORBIDDEN,
        format!("the token lacks the scope this call needs: {needed}"),
    );
    let answer = Message::error_response(message.id(), &rpc);
    gateway
        .record_refusal(
            refused_caller(remote, Some(identity.clone())),
            message.clone(),
            answer,
        )
        .await;
    let mut response = rpc_error_with(StatusCode::FORBIDDEN, message.id(), rpc);
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        challenge(gateway, Some("insufficient_scope"), Some(&needed)),
    );
    response
}

/// The `WWW-Authenticate` challenge (RFC 6750; with `resource_metadata`, RFC 9728, when
/// the gateway has a resource URI).
fn challenge(gateway: &Gateway, error: Option<&str>, scope: Option<&str>) -> HeaderValue {
    let mut text = "Bearer realm=\"mcpguard\"".to_string();
    if let Some(url) = gateway.auth().metadata_url() {
        text.push_str(&format!(", resource_metadata=\"{url}\""));
    }
    if let Some(code) = error {
        text.push_str(&format!(", error=\"{code}\""));
    }
    if let Some(scope) = scope {
        text.push_str(&format!(", scope=\"{scope}\""));
    }
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("Bearer"))
}

/// Refuses (and audits) a call in a session that another identity opened.
async fn foreign_session(
    gateway: &Gateway,
    remote: SocketAddr,
    message: Message,
    identity: Option<Arc<crate::auth::Identity>>,
) -> Response {
    tracing::warn!(%remote, identity = identity.as_ref().map_or("", |i| i.name.as_str()), "call refused: the session belongs to another identity");
    let rpc = RpcError::new(
        codes::FORBIDDEN,
        "this session was opened by another identity; start your own with `initialize`",
    );
    let answer = Message::error_response(message.id(), &rpc);
    let id = message.id().map(str::to_string);
    gateway
        .record_refusal(refused_caller(remote, identity), message, answer)
        .await;
    not_your_session(id.as_deref())
}

/// A session another replica opened knows its owner's name only: the first call its
/// owner makes here gives it the owner's identity (roles, scopes) for policy and audit.
fn adopt_identity(session: &Session, identity: Option<&Arc<crate::auth::Identity>>) {
    if session.identity().is_none()
        && let Some(identity) = identity
    {
        session.set_identity(identity.clone());
    }
}

/// The answer to a caller using a session another identity opened.
fn not_your_session(id: Option<&str>) -> Response {
    rpc_error(
        StatusCode::FORBIDDEN,
        id,
        codes::FORBIDDEN,
        "this session was opened by another identity; start your own with `initialize`",
    )
}

/// Authenticates a GET or DELETE (no message to audit: the refusal is logged).
async fn authenticate_stream(
    gateway: &Gateway,
    headers: &HeaderMap,
) -> Result<Option<Arc<crate::auth::Identity>>, Box<Response>> {
    gateway.auth().authenticate(headers).await.map_err(|error| {
        tracing::warn!(reason = %error, "stream request refused: not authenticated");
        let mut response = rpc_error(
            StatusCode::UNAUTHORIZED,
            None,
            codes::UNAUTHENTICATED,
            error.to_string(),
        );
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            challenge(gateway, error.challenge_error(), None),
        );
        Box::new(response)
    })
}

fn session_problem(id: Option<&str>) -> Response {
    match id {
        Some(id) => rpc_error(
            StatusCode::NOT_FOUND,
            None,
            codes::INVALID_REQUEST,
            format!("session `{id}` is unknown or has ended; send `initialize` to start a new one"),
        ),
        None => rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            codes::INVALID_REQUEST,
            "missing `Mcp-Session-Id` header",
        ),
    }
}

fn unsupported_version(id: Option<&str>, version: &str, era: Era) -> Response {
    let supported: Vec<&str> = mcp::SUPPORTED_VERSIONS
        .iter()
        .copied()
        .filter(|v| Era::of(v) == Some(era))
        .collect();
    rpc_error_with(
        StatusCode::BAD_REQUEST,
        id,
        RpcError::new(
            codes::UNSUPPORTED_PROTOCOL_VERSION,
            format!("unsupported protocol version `{version}`"),
        )
        .with_data(serde_json::json!({
            "supported": supported,
            "requested": version,
        })),
    )
}

async fn initialize(
    gateway: Arc<Gateway>,
    remote: SocketAddr,
    message: Message,
    headers: &HeaderMap,
    identity: Option<Arc<crate::auth::Identity>>,
) -> Response {
    let limit = gateway.config().proxy.max_sessions;
    if gateway.sessions().len() >= limit {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            message.id(),
            codes::INTERNAL_ERROR,
            format!(
                "the gateway holds its maximum of {limit} sessions (`proxy.max_sessions`); end an unused session or retry later"
            ),
        );
    }
    let params = message.params().unwrap_or("{}").to_string();
    let requested = json::member_str(&params, "protocolVersion").unwrap_or_default();
    let version = if Era::of(&requested) == Some(Era::Handshake) {
        requested.into_owned()
    } else {
        mcp::LATEST_HANDSHAKE_VERSION.to_string()
    };
    let session = Arc::new(Session::new(
        &params,
        &version,
        gateway.config().proxy.replay_buffer_events,
    ));
    if let Some(identity) = identity {
        session.set_identity(identity);
    }
    let mut caller = Caller::of_session(&session, Downstream::Http, Some(remote));
    caller.trace_parent = crate::trace::TraceParent::from_headers(headers).map(Arc::new);
    let relay: Arc<dyn Relay> = Arc::new(CallRelay::new(
        Some(session.clone()),
        mpsc::unbounded_channel().0,
    ));
    let answer = gateway.handle(caller, message.clone(), relay).await;
    let Some(answer) = answer else {
        return rpc_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            message.id(),
            codes::INTERNAL_ERROR,
            "initialize got no answer",
        );
    };
    if answer.kind() != Kind::Response {
        session.close().await;
        return json_response(&answer, Era::Handshake, &[]);
    }
    if let Err(e) = gateway.publish_session(&session).await {
        session.close().await;
        return shared_state_down(&e);
    }
    gateway.sessions().insert(session.clone());
    tracing::info!(session = session.log_id(), version = %version, "session started");
    let Ok(id) = HeaderValue::from_str(session.id()) else {
        return rpc_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            message.id(),
            codes::INTERNAL_ERROR,
            "bad session id",
        );
    };
    if accepts_only_json(headers) {
        return json_response(&answer, Era::Handshake, &[(mcp::header::SESSION_ID, id)]);
    }
    json_response(&answer, Era::Handshake, &[(mcp::header::SESSION_ID, id)])
}

fn accepts_only_json(headers: &HeaderMap) -> bool {
    !accepts(headers, "text/event-stream")
}

/// Checks a 2026-07-28 request against its headers and envelope, then dispatches it.
async fn stateless(
    gateway: Arc<Gateway>,
    remote: SocketAddr,
    message: Message,
    headers: &HeaderMap,
    header_version: &str,
    identity: Option<Arc<crate::auth::Identity>>,
) -> Response {
    let id = message.id();
    let mismatch =
        |text: String| rpc_error(StatusCode::BAD_REQUEST, id, codes::HEADER_MISMATCH, text);
    for name in [
        mcp::header::PROTOCOL_VERSION,
        mcp::header::METHOD,
        mcp::header::NAME,
    ] {
        if headers.get_all(name).iter().count() > 1 {
            return mismatch(format!("the `{name}` header appears more than once"));
        }
    }
    let method = message.method().unwrap_or_default();
    let meta = message.param("_meta");
    let (envelope_version, client_info, capabilities) = match meta {
        Some(meta) => (
            json::member(meta, meta_key::PROTOCOL_VERSION),
            json::member(meta, meta_key::CLIENT_INFO),
            json::member(meta, meta_key::CLIENT_CAPABILITIES),
        ),
        None => (None, None, None),
    };
    if message.kind() == Kind::Request && (envelope_version.is_none() || capabilities.is_none()) {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            codes::INVALID_PARAMS,
            format!(
                "params._meta must carry `{}` and `{}` in protocol revision 2026-07-28",
                meta_key::PROTOCOL_VERSION,
                meta_key::CLIENT_CAPABILITIES
            ),
        );
    }
    let envelope_version = envelope_version.and_then(json::string_value);
    if message.kind() == Kind::Request && envelope_version.as_deref() != Some(header_version) {
        return mismatch(format!(
            "the `{}` header does not match the request's `_meta` protocol version",
            mcp::header::PROTOCOL_VERSION
        ));
    }
    if header_str(headers, mcp::header::METHOD) != Some(method) {
        return mismatch(format!(
            "the `{}` header does not match the body's method",
            mcp::header::METHOD
        ));
    }
    if let Some(key) = mcp::stateless_name_param(method)
        && let Some(body_value) = message.param_str(key)
    {
        let header_value =
            header_str(headers, mcp::header::NAME).and_then(mcp::decode_header_value);
        if header_value.as_deref() != Some(body_value.as_ref()) {
            return mismatch(format!(
                "the `{}` header does not match the body's `{key}`",
                mcp::header::NAME
            ));
        }
    }
    if method == mcp::method::TOOLS_CALL
        && let Err(text) = check_param_headers(&gateway, &message, headers)
    {
        return mismatch(text);
    }
    if !mcp::is_supported(header_version) {
        return unsupported_version(id, header_version, Era::Stateless);
    }
    // For methods whose name parameter the gateway does not know (extensions such as
    // `tasks/*`), the agent's `Mcp-Name` travels on unchanged.
    let forwarded = match (
        mcp::stateless_name_param(method),
        header_str(headers, mcp::header::NAME),
    ) {
        (None, Some(name)) => vec![(mcp::header::NAME.to_string(), name.to_string())],
        _ => Vec::new(),
    };
    let caller = Caller {
        era: Era::Stateless,
        protocol_version: header_version.into(),
        forwarded_headers: forwarded,
        client_info: client_info.map(Into::into),
        client_capabilities: capabilities.map(Into::into),
        session: None,
        downstream: Downstream::Http,
        remote: Some(remote),
        identity,
        trace_parent: None,
    };
    Box::pin(dispatch(gateway, caller, message, headers, None)).await
}

/// Compares `Mcp-Param-*` headers with the arguments they mirror, for tools whose schema
/// declares them.
fn check_param_headers(
    gateway: &Gateway,
    message: &Message,
    headers: &HeaderMap,
) -> Result<(), String> {
    let Some(name) = message.param_str("name") else {
        return Ok(());
    };
    let Some(declared) = gateway.router().tool_header_params(&name) else {
        return Ok(());
    };
    let expected = crate::router::param_headers(&declared, message.param("arguments"));
    for (_, token) in &declared {
        let header_name = format!(
            "{}{}",
            mcp::header::PARAM_PREFIX,
            token.to_ascii_lowercase()
        );
        let values: Vec<&str> = headers
            .get_all(header_name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.len() > 1 {
            return Err(format!("the `{header_name}` header appears more than once"));
        }
        let want = expected
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&header_name))
            .map(|(_, v)| v.as_str());
        let got = values.first().copied();
        let agree = match (want, got) {
            (None, None) => true,
            (Some(want), Some(got)) => {
                mcp::decode_header_value(got) == mcp::decode_header_value(want)
                    || numeric_equal(want, got)
            }
            _ => false,
        };
        if !agree {
            return Err(format!(
                "the `{header_name}` header does not match the tool argument it mirrors"
            ));
        }
    }
    Ok(())
}

fn numeric_equal(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y && !b.contains(['e', 'E']),
        _ => false,
    }
}

/// Runs a call and answers with JSON or SSE, whichever fits what arrives first: the
/// answer itself (JSON), or messages about the call or an upstream that streams (SSE).
async fn dispatch(
    gateway: Arc<Gateway>,
    caller: Caller,
    message: Message,
    headers: &HeaderMap,
    session: Option<Arc<Session>>,
) -> Response {
    let mut caller = caller;
    caller.trace_parent = crate::trace::TraceParent::from_headers(headers).map(Arc::new);
    let era = caller.era;
    if message.kind() == Kind::Notification {
        if era == Era::Stateless {
            // The 2026-07-28 revision has no client notifications over HTTP.
            return StatusCode::ACCEPTED.into_response();
        }
        let relay: Arc<dyn Relay> = Arc::new(CallRelay::new(session, mpsc::unbounded_channel().0));
        gateway.handle(caller, message, relay).await;
        return StatusCode::ACCEPTED.into_response();
    }
    let request_id = message.id().unwrap_or("null").to_string();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outbound>();
    let relay: Arc<dyn Relay> = Arc::new(CallRelay::new(session.clone(), tx.clone()));
    let call = {
        let gateway = gateway.clone();
        async move {
            if let Some(answer) = gateway.handle(caller, message, relay).await {
                let _ = tx.send(Outbound::Message(answer));
            }
        }
    };
    // The call runs right here until its first message: most calls answer at once, and
    // staying on this task saves a hand-off between threads. If the agent hangs up first,
    // a stateless agent's call is cancelled (that is how 2026-07-28 cancels); a session's
    // call runs on, as the transport asks.
    let mut call = CallSlot {
        future: Some(Box::pin(call)),
        detach_on_drop: era == Era::Handshake,
    };
    let first = match call.drive(&mut rx).await {
        Some(first) => first,
        None => return no_answer(&request_id),
    };
    // Whatever is left of the call goes on in the background.
    let abort_on_drop = call
        .spawn_rest()
        .filter(|_| era == Era::Stateless)
        .map(AbortOnDrop);
    let answered = matches!(&first, Outbound::Message(m) if is_final(m, &request_id));
    if answered || !accepts(headers, "text/event-stream") {
        // JSON: the answer came first, or the agent cannot take a stream (then whatever
        // else arrives is dropped).
        let mut next = Some(first);
        while let Some(item) = match next.take() {
            Some(item) => Some(item),
            None => rx.recv().await,
        } {
            if let Outbound::Message(m) = item
                && is_final(&m, &request_id)
            {
                return json_response(&m, era, &[]);
            }
        }
        return no_answer(&request_id);
    }
    let draining = gateway.draining();
    match session {
        Some(session) => {
            let stream = session.open_stream();
            let retry = match &first {
                Outbound::Signal(StreamSignal::Opened { retry_ms }) => *retry_ms,
                _ => None,
            };
            stream.prime(retry.or(Some(RETRY_MS)));
            let events = stream.attach(None);
            tokio::spawn(pump(stream, first, rx, request_id));
            match events {
                Some(events) => sse_response(events, draining, None),
                None => no_answer(""),
            }
        }
        None => {
            // Stateless: a plain stream for this call only, no ids, no resumption.
            let (events_tx, events_rx) = mpsc::channel::<StreamEvent>(LIVE_QUEUE);
            tokio::spawn(super::call_stream::pump(first, rx, request_id, events_tx));
            sse_response(events_rx, draining, abort_on_drop)
        }
    }
}

fn no_answer(request_id: &str) -> Response {
    rpc_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        (!request_id.is_empty()).then_some(request_id),
        codes::INTERNAL_ERROR,
        "the call ended without an answer",
    )
}

/// True when `message` is the answer to request `request_id`.
pub(super) fn is_final(message: &Message, request_id: &str) -> bool {
    message.is_reply() && message.id() == Some(request_id)
}

/// Moves a call's messages into its session stream until the answer. When the upstream
/// cut its stream to make the client poll, the agent's response is cut too; the agent
/// resumes from the session stream with `Last-Event-ID`.
async fn pump(
    stream: Arc<Stream>,
    first: Outbound,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    request_id: String,
) {
    let mut next = Some(first);
    while let Some(item) = match next.take() {
        Some(item) => Some(item),
        None => rx.recv().await,
    } {
        match item {
            Outbound::Message(message) => {
                let last = is_final(&message, &request_id);
                stream.push(&message);
                if last {
                    break;
                }
            }
            Outbound::Signal(StreamSignal::Interrupted) => stream.detach(),
            Outbound::Signal(StreamSignal::Opened { .. }) => {}
        }
    }
    stream.finish();
}

/// A call future being driven by the request handler.
struct CallSlot {
    future: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    detach_on_drop: bool,
}

impl CallSlot {
    /// Drives the call until the first message for the agent; `None` when the call ended
    /// without one.
    async fn drive(&mut self, rx: &mut mpsc::UnboundedReceiver<Outbound>) -> Option<Outbound> {
        let Some(future) = self.future.as_mut() else {
            return rx.recv().await;
        };
        tokio::select! {
            biased;
            item = rx.recv() => item,
            () = future => {
                self.future = None;
                rx.recv().await
            }
        }
    }

    /// Moves an unfinished call onto its own task.
    fn spawn_rest(&mut self) -> Option<tokio::task::AbortHandle> {
        self.future
            .take()
            .map(|future| tokio::spawn(future).abort_handle())
    }
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        if let (true, Some(future)) = (self.detach_on_drop, self.future.take()) {
            tokio::spawn(future);
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An SSE response of `events`: a session stream's (a stalled agent is cut off and
/// resumes) or one stateless call's (ends with the call; a stalled agent misses
/// notifications). Both queues are bounded.
fn sse_response(
    events: mpsc::Receiver<StreamEvent>,
    draining: tokio_util::sync::CancellationToken,
    guard: Option<AbortOnDrop>,
) -> Response {
    let body = futures::stream::unfold(
        (events, draining, guard),
        |(mut events, draining, guard)| async move {
            tokio::select! {
                event = events.recv() => event.map(|e| (Ok::<_, Infallible>(e.to_sse()), (events, draining, guard))),
                _ = draining.cancelled() => None,
            }
        },
    );
    let mut response = Response::new(Body::from_stream(body.boxed()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

async fn get_mcp(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let headers = request.headers();
    if let Some(refusal) = check_origin(&gateway, headers) {
        return refusal;
    }
    if header_str(headers, mcp::header::PROTOCOL_VERSION).and_then(Era::of) == Some(Era::Stateless)
    {
        return rpc_error(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            codes::INVALID_REQUEST,
            "protocol revision 2026-07-28 has no GET stream; use `subscriptions/listen`",
        );
    }
    if !accepts(headers, "text/event-stream") {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            codes::INVALID_REQUEST,
            "GET /mcp serves only `text/event-stream`",
        );
    }
    let identity = match authenticate_stream(&gateway, headers).await {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let session_id = header_str(headers, mcp::header::SESSION_ID);
    let session = match lookup_session(&gateway, session_id).await {
        Ok(session) => session,
        Err(problem) => return *problem,
    };
    if !session.belongs_to(identity.as_deref()) {
        tracing::warn!(
            session = session.log_id(),
            "stream refused: the session belongs to another identity"
        );
        return not_your_session(None);
    }
    adopt_identity(&session, identity.as_ref());
    session.touch();
    let events = match header_str(headers, mcp::header::LAST_EVENT_ID) {
        Some(last) => {
            let resumed = parse_event_id(last)
                .and_then(|(number, seq)| session.stream(number).map(|s| (s, seq)))
                .and_then(|(stream, seq)| stream.attach(Some(seq)));
            match resumed {
                Some(events) => events,
                None => {
                    return rpc_error(
                        StatusCode::BAD_REQUEST,
                        None,
                        codes::INVALID_REQUEST,
                        format!("cannot resume after event `{last}`: it is unknown or too old"),
                    );
                }
            }
        }
        None => session.standalone_stream().attach_fresh(),
    };
    sse_response(events, gateway.draining(), None)
}

async fn delete_mcp(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = check_origin(&gateway, &headers) {
        return refusal;
    }
    let identity = match authenticate_stream(&gateway, &headers).await {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let session_id = header_str(&headers, mcp::header::SESSION_ID);
    let session = match lookup_session(&gateway, session_id).await {
        Ok(session) => session,
        Err(problem) => return *problem,
    };
    if !session.belongs_to(identity.as_deref()) {
        return not_your_session(None);
    }
    match gateway.end_session(session.id()).await {
        Ok(true) => {
            tracing::info!(session = session.log_id(), "session ended by the agent");
            StatusCode::OK.into_response()
        }
        Ok(false) => session_problem(session_id),
        Err(e) => shared_state_down(&e),
    }
}

/// The session the agent names: 400 without a name, 404 when unknown or ended, 503 when
/// the shared state of the replicas cannot answer.
async fn lookup_session(
    gateway: &Gateway,
    id: Option<&str>,
) -> Result<Arc<Session>, Box<Response>> {
    let Some(id) = id else {
        return Err(Box::new(session_problem(None)));
    };
    match gateway.find_session(id).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(Box::new(session_problem(Some(id)))),
        Err(e) => Err(Box::new(shared_state_down(&e))),
    }
}

/// 503 for a session this replica cannot serve now; the reason goes to the log only
/// (it may name internal hosts), the agent learns to retry.
fn shared_state_down(error: &str) -> Response {
    tracing::error!(reason = %error, "a session cannot be served: the state replicas share is unavailable");
    rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        codes::INTERNAL_ERROR,
        "the gateway cannot serve this session right now: the state its replicas share is unavailable; retry later",
    )
}

/// Serves `app` on `listener` until `gateway` starts draining.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let draining = gateway.draining();
    // Small JSON-RPC answers must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(
        listener,
        app(gateway).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { draining.cancelled().await })
    .await
}
