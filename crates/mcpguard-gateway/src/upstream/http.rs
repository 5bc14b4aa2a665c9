//! Streamable HTTP upstreams, in both protocol eras.
//!
//! An [`HttpLink`] is one client link: stateless (2026-07-28: every POST stands alone) or a
//! handshake session (`Mcp-Session-Id` from the `initialize` answer). Answers come as JSON
//! or as an SSE stream; messages on the stream before the answer belong to the call and go
//! to its relay. When a stream breaks before the answer, the link resumes it with `GET` and
//! `Last-Event-ID`. Handshake sessions also keep a `GET` stream open for messages that
//! belong to no call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use mcpguard_protocol::mcp::{self, Era, header};
use mcpguard_protocol::{Kind, Message, sse};
use parking_lot::Mutex;

use super::client::{UpstreamClient, UpstreamResponse};
use tokio_util::sync::CancellationToken;

use super::setup::{self, Exchange};
use super::{Connection, Relay, ServerInfo};
use crate::config::UpstreamProtocol;
use crate::error::CallError;

const RESUME_ATTEMPTS: u32 = 3;
const ERROR_BODY_PREVIEW: usize = 200;

/// What every link to one HTTP upstream shares.
pub struct HttpEndpoint {
    name: Arc<str>,
    headers: HeaderMap,
    url: reqwest::Url,
    ca_file: Option<std::path::PathBuf>,
    /// One client (and connection pool) per thread: a call never waits on a connection
    /// driven by another thread's runtime.
    clients: thread_local::ThreadLocal<UpstreamClient>,
    max_message: usize,
}

impl HttpEndpoint {
    /// An endpoint for upstream `name` at `url`, sending `headers` on every request and
    /// trusting the extra certificate authorities in `ca_file` (PEM) for `https://`.
    pub fn new(
        name: &str,
        url: &str,
        headers: &BTreeMap<String, String>,
        ca_file: Option<&std::path::Path>,
        max_message: usize,
    ) -> Result<Arc<HttpEndpoint>, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a url: {e}"))?;
        let mut map = HeaderMap::new();
        for (key, value) in headers {
            let key = HeaderName::from_bytes(key.as_bytes())
                .map_err(|_| format!("`{key}` is not a valid http header name"))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| format!("the value of header `{key}` is not valid"))?;
            value.set_sensitive(true);
            map.insert(key, value);
        }
        // Built once here so a bad url or ca_file is reported at start-up.
        let first = UpstreamClient::new(&url, ca_file)?;
        let clients = thread_local::ThreadLocal::new();
        let _ = clients.get_or(|| first);
        Ok(Arc::new(HttpEndpoint {
            name: name.into(),
            headers: map,
            url,
            ca_file: ca_file.map(std::path::Path::to_path_buf),
            clients,
            max_message,
        }))
    }

    fn unavailable(&self, reason: impl Into<String>) -> CallError {
        CallError::Unavailable {
            upstream: self.name.to_string(),
            reason: reason.into(),
        }
    }

    fn protocol_error(&self, reason: impl Into<String>) -> CallError {
        CallError::Protocol {
            upstream: self.name.to_string(),
            reason: reason.into(),
        }
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn send(
        &self,
        method: Method,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamResponse, CallError> {
        let client = self
            .clients
            .get_or_try(|| UpstreamClient::new(&self.url, self.ca_file.as_deref()))
            .map_err(|e| self.unavailable(e))?;
        client
            .send(method, headers, body)
            .await
            .map_err(|e| self.unavailable(e))
    }
}

/// One client link to an HTTP upstream.
pub struct HttpLink {
    endpoint: Arc<HttpEndpoint>,
    session_id: Mutex<Option<HeaderValue>>,
    protocol_version: Mutex<Option<String>>,
    info: Mutex<Option<ServerInfo>>,
    next_id: AtomicU64,
    unsolicited: Arc<dyn Relay>,
    closed: CancellationToken,
    expired: std::sync::atomic::AtomicBool,
}

impl HttpLink {
    /// True once the upstream said it no longer knows this link's session.
    pub fn is_expired(&self) -> bool {
        self.expired.load(Ordering::Relaxed)
    }

    /// A link not yet set up.
    pub fn new(endpoint: Arc<HttpEndpoint>, unsolicited: Arc<dyn Relay>) -> Arc<HttpLink> {
        Arc::new(HttpLink {
            endpoint,
            session_id: Mutex::new(None),
            protocol_version: Mutex::new(None),
            info: Mutex::new(None),
            next_id: AtomicU64::new(0),
            unsolicited,
            closed: CancellationToken::new(),
            expired: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Sets the link up as `protocol` says, with the gateway's own identity.
    pub async fn establish(
        self: &Arc<Self>,
        protocol: &UpstreamProtocol,
    ) -> Result<ServerInfo, String> {
        let info = setup::establish(&**self, protocol).await?;
        self.adopt(info.clone());
        Ok(info)
    }

    /// Sets the link up as a handshake session on behalf of an agent, with the agent's own
    /// `initialize` params (so the upstream sees the real client and its capabilities).
    pub async fn establish_for_agent(
        self: &Arc<Self>,
        initialize_params: &str,
    ) -> Result<ServerInfo, String> {
        let request = Message::request("0", mcp::method::INITIALIZE, Some(initialize_params));
        let reply = self
            .exchange(request, Arc::new(super::NoRelay), Duration::from_secs(30))
            .await
            .map_err(|e| e.to_string())?;
        let info = setup::read_initialize_result(setup::result_of(&reply)?)?;
        self.notify_link(Message::notification(mcp::method::INITIALIZED, None))
            .await
            .map_err(|e| e.to_string())?;
        self.adopt(info.clone());
        Ok(info)
    }

    fn adopt(self: &Arc<Self>, info: ServerInfo) {
        *self.protocol_version.lock() = Some(info.protocol_version.clone());
        let has_session = self.session_id.lock().is_some();
        *self.info.lock() = Some(info);
        if has_session {
            tokio::spawn(self.clone().listen());
        }
    }

    /// Ends the link: for a handshake session, `DELETE` it upstream.
    pub async fn close(&self) {
        self.closed.cancel();
        let session = self.session_id.lock().clone();
        if let Some(session) = session {
            let mut headers = self.endpoint.headers.clone();
            headers.insert(header::SESSION_ID, session);
            let request = self.endpoint.send(Method::DELETE, headers, Bytes::new());
            if let Err(e) = tokio::time::timeout(Duration::from_secs(5), request)
                .await
                .unwrap_or_else(|_| Err(self.endpoint.unavailable("timed out")))
            {
                tracing::debug!(upstream = %self.endpoint.name, "ending the upstream session failed: {e}");
            }
        }
    }

    fn request_headers(&self, message: &Message) -> HeaderMap {
        let mut headers = self.endpoint.headers.clone();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        if let Some(session) = self.session_id.lock().clone() {
            headers.insert(header::SESSION_ID, session);
        }
        let version = self.protocol_version.lock().clone().or_else(|| {
            // During setup the version header follows the request itself.
            (message.method() == Some(mcp::method::DISCOVER))
                .then(|| mcp::LATEST_VERSION.to_string())
        });
        if let Some(version) = version {
            if let Ok(value) = HeaderValue::from_str(&version) {
                headers.insert(header::PROTOCOL_VERSION, value);
            }
            if Era::of(&version) == Some(Era::Stateless) {
                for (name, value) in mcp::stateless_headers(message) {
                    // The names are the protocol's constants: no copy needed.
                    if let Ok(value) = HeaderValue::from_str(&value) {
                        headers.insert(HeaderName::from_static(name), value);
                    }
                }
            }
        }
        headers
    }

    async fn post(&self, message: &Message) -> Result<UpstreamResponse, CallError> {
        self.post_with(message, &[]).await
    }

    async fn post_with(
        &self,
        message: &Message,
        extra: &[(String, String)],
    ) -> Result<UpstreamResponse, CallError> {
        let mut headers = self.request_headers(message);
        for (name, value) in extra {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(name, value);
            }
        }
        self.endpoint
            .send(Method::POST, headers, message.bytes().clone())
            .await
    }

    /// Sends a reply to a server→client request back upstream.
    async fn answer_server(&self, reply: Message) {
        match self.post(&reply).await {
            Ok(response) if response.status.is_success() => {}
            Ok(response) => tracing::debug!(
                upstream = %self.endpoint.name,
                status = response.status.as_u16(),
                "the upstream refused our answer to its request"
            ),
            Err(e) => {
                tracing::debug!(upstream = %self.endpoint.name, "answering the upstream failed: {e}")
            }
        }
    }

    /// Reads an answer to a POSTed request: JSON, or an SSE stream ending with the answer.
    async fn read_answer(
        &self,
        response: UpstreamResponse,
        link_id: &str,
        relay: &Arc<dyn Relay>,
    ) -> Result<Message, CallError> {
        let status = response.status;
        if status == StatusCode::NOT_FOUND && self.session_id.lock().is_some() {
            self.expired.store(true, Ordering::Relaxed);
            return Err(CallError::SessionExpired {
                upstream: self.endpoint.name.to_string(),
            });
        }
        let content_type = response
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !status.is_success() {
            let body = read_limited(response, 4096).await.unwrap_or_default();
            // A JSON-RPC error in the body is an answer; anything else is a transport fault.
            if let Ok(message) = Message::parse(body.clone())
                && message.kind() == Kind::Error
            {
                return Ok(message);
            }
            return Err(self.endpoint.unavailable(format!(
                "http {} ({})",
                status.as_u16(),
                preview(&body)
            )));
        }
        if content_type.starts_with("text/event-stream") {
            return self.read_stream(response, link_id, relay).await;
        }
        if !content_type.starts_with("application/json") {
            return Err(self.endpoint.protocol_error(format!(
                "unexpected content type `{content_type}` (http {})",
                status.as_u16()
            )));
        }
        let body = read_limited(response, self.endpoint.max_message)
            .await
            .map_err(|e| self.endpoint.protocol_error(e))?;
        let message =
            Message::parse(body).map_err(|e| self.endpoint.protocol_error(e.to_string()))?;
        if !message.is_reply() || message.id() != Some(link_id) {
            return Err(self
                .endpoint
                .protocol_error("the answer does not reply to the request that was sent"));
        }
        Ok(message)
    }

    async fn read_stream(
        &self,
        response: UpstreamResponse,
        link_id: &str,
        relay: &Arc<dyn Relay>,
    ) -> Result<Message, CallError> {
        let mut last_event_id: Option<String> = None;
        let mut response = response;
        let mut attempts = 0;
        loop {
            match self
                .drain_stream(response, link_id, relay, &mut last_event_id)
                .await?
            {
                Some(answer) => return Ok(answer),
                None => {
                    let Some(event_id) = last_event_id.clone() else {
                        return Err(self
                            .endpoint
                            .unavailable("the answer stream ended before the answer, and cannot be resumed (no event id)"));
                    };
                    attempts += 1;
                    relay.signal(super::StreamSignal::Interrupted).await;
                    if attempts > RESUME_ATTEMPTS {
                        return Err(self.endpoint.unavailable(format!(
                            "the answer stream broke {RESUME_ATTEMPTS} times; giving up"
                        )));
                    }
                    tracing::debug!(upstream = %self.endpoint.name, attempts, "resuming an answer stream");
                    response = self.resume(&event_id).await?;
                }
            }
        }
    }

    /// Headers of a `GET` for an SSE stream (the session's, or one resumed after
    /// `last_event_id`).
    fn stream_headers(&self, last_event_id: Option<&str>) -> HeaderMap {
        let mut headers = self.endpoint.headers.clone();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Some(session) = self.session_id.lock().clone() {
            headers.insert(header::SESSION_ID, session);
        }
        if let Some(version) = self.protocol_version.lock().clone()
            && let Ok(value) = HeaderValue::from_str(&version)
        {
            headers.insert(header::PROTOCOL_VERSION, value);
        }
        if let Some(value) = last_event_id.and_then(|id| HeaderValue::from_str(id).ok()) {
            headers.insert(header::LAST_EVENT_ID, value);
        }
        headers
    }

    async fn resume(&self, event_id: &str) -> Result<UpstreamResponse, CallError> {
        let headers = self.stream_headers(Some(event_id));
        let response = self
            .endpoint
            .send(Method::GET, headers, Bytes::new())
            .await?;
        if !response.status.is_success() {
            return Err(self.endpoint.unavailable(format!(
                "resuming the answer stream failed: http {}",
                response.status.as_u16()
            )));
        }
        Ok(response)
    }

    /// Reads events until the answer arrives (`Some`) or the stream ends (`None`).
    async fn drain_stream(
        &self,
        response: UpstreamResponse,
        link_id: &str,
        relay: &Arc<dyn Relay>,
        last_event_id: &mut Option<String>,
    ) -> Result<Option<Message>, CallError> {
        let mut decoder = sse::Decoder::new(self.endpoint.max_message);
        let mut body = response.body;
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else {
                return Ok(None);
            };
            let events = decoder
                .push(&chunk)
                .map_err(|e| self.endpoint.protocol_error(e.to_string()))?;
            for event in events {
                if let Some(id) = event.id.clone() {
                    if last_event_id.is_none() {
                        relay
                            .signal(super::StreamSignal::Opened {
                                retry_ms: event.retry,
                            })
                            .await;
                    }
                    *last_event_id = Some(id);
                }
                if !event.is_message() {
                    continue;
                }
                let message = Message::parse(event.data.into_bytes()).map_err(|e| {
                    self.endpoint
                        .protocol_error(format!("in the answer stream: {e}"))
                })?;
                match message.kind() {
                    Kind::Response | Kind::Error if message.id() == Some(link_id) => {
                        return Ok(Some(message));
                    }
                    Kind::Response | Kind::Error => {
                        tracing::debug!(upstream = %self.endpoint.name, "ignored a reply to another request in an answer stream");
                    }
                    Kind::Notification => relay.notify(message).await,
                    Kind::Request => {
                        let reply = relay.request(message).await;
                        self.answer_server(reply).await;
                    }
                }
            }
        }
        Ok(None)
    }

    /// Keeps the session's `GET` stream open and relays what arrives on it.
    async fn listen(self: Arc<Self>) {
        let mut last_event_id: Option<String> = None;
        let mut failures = 0u32;
        while !self.closed.is_cancelled() {
            let headers = self.stream_headers(last_event_id.as_deref());
            let request = self.endpoint.send(Method::GET, headers, Bytes::new());
            let response = tokio::select! {
                r = request => r,
                _ = self.closed.cancelled() => return,
            };
            match response {
                Ok(response) if response.status.is_success() => {
                    failures = 0;
                    let relay = self.unsolicited.clone();
                    let drained = tokio::select! {
                        r = self.drain_stream(response, "", &relay, &mut last_event_id) => r,
                        _ = self.closed.cancelled() => return,
                    };
                    if let Err(e) = drained {
                        tracing::debug!(upstream = %self.endpoint.name, "session stream failed: {e}");
                    }
                }
                // 405: the server offers no GET stream; that is allowed.
                Ok(response) if response.status == StatusCode::METHOD_NOT_ALLOWED => {
                    return;
                }
                Ok(response) if response.status == StatusCode::NOT_FOUND => return,
                Ok(_) | Err(_) => failures += 1,
            }
            if failures > 5 {
                tracing::debug!(upstream = %self.endpoint.name, "giving up on the session stream");
                return;
            }
            let delay = Duration::from_millis(200 * u64::from(failures.max(1)));
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.closed.cancelled() => return,
            }
        }
    }
}

impl HttpLink {
    async fn exchange_with(
        &self,
        request: Message,
        relay: Arc<dyn Relay>,
        timeout: Duration,
        extra: &[(String, String)],
    ) -> Result<Message, CallError> {
        let original_id = request.id().unwrap_or("null").to_string();
        let link_id = (self.next_id.fetch_add(1, Ordering::Relaxed) + 1).to_string();
        let outgoing = request.with_id(&link_id);
        let deadline = super::deadline::Deadline::new(timeout);
        let relay = deadline.pausing(super::remap::RestoreIds::wrap(
            relay,
            &link_id,
            &original_id,
        ));
        let mut guard = HttpCancelOnDrop {
            link: self,
            link_id: link_id.clone(),
            armed: true,
        };
        let work = async {
            let response = self.post_with(&outgoing, extra).await?;
            if outgoing.method() == Some(mcp::method::INITIALIZE)
                && let Some(session) = response.headers.get(header::SESSION_ID)
            {
                *self.session_id.lock() = Some(session.clone());
            }
            self.read_answer(response, &link_id, &relay).await
        };
        let result = tokio::select! {
            result = work => {
                guard.armed = false;
                result
            }
            () = deadline.expired() => Err(CallError::Timeout {
                upstream: self.endpoint.name.to_string(),
                seconds: timeout.as_secs_f64(),
                detail: String::new(),
            }),
        };
        result.map(|reply| {
            super::remap::restore_quoted_id(reply, &link_id, &original_id).with_id(&original_id)
        })
    }
}

#[async_trait]
impl Exchange for HttpLink {
    async fn exchange(
        &self,
        request: Message,
        relay: Arc<dyn Relay>,
        timeout: Duration,
    ) -> Result<Message, CallError> {
        self.exchange_with(request, relay, timeout, &[]).await
    }

    async fn notify_link(&self, notification: Message) -> Result<(), CallError> {
        let response = self.post(&notification).await?;
        if response.status.is_success() {
            Ok(())
        } else {
            Err(self.endpoint.unavailable(format!(
                "the upstream refused a notification: http {}",
                response.status.as_u16()
            )))
        }
    }
}

#[async_trait]
impl Connection for HttpLink {
    async fn call(
        &self,
        request: Message,
        relay: Arc<dyn Relay>,
        options: &super::CallOptions,
    ) -> Result<Message, CallError> {
        self.exchange_with(request, relay, options.timeout, &options.headers)
            .await
    }

    async fn notify(&self, notification: Message) -> Result<(), CallError> {
        self.notify_link(notification).await
    }

    fn info(&self) -> Option<ServerInfo> {
        self.info.lock().clone()
    }
}

/// Cancels a call upstream when nobody waits for it any more.
struct HttpCancelOnDrop<'a> {
    link: &'a HttpLink,
    link_id: String,
    armed: bool,
}

impl Drop for HttpCancelOnDrop<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let note = super::cancelled(&self.link_id, "the call was cancelled at the gateway");
        let endpoint = self.link.endpoint.clone();
        let headers = self.link.request_headers(&note);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = endpoint
                    .send(Method::POST, headers, note.into_bytes())
                    .await;
            });
        }
    }
}

async fn read_limited(response: UpstreamResponse, limit: usize) -> Result<Bytes, String> {
    let mut body = response.body;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > limit {
            return Err(format!("the answer exceeds the limit of {limit} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

fn preview(body: &[u8]) -> String {
    // Control characters would let an upstream forge extra log lines.
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return "empty body".into();
    }
    match text.char_indices().nth(ERROR_BODY_PREVIEW) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}
