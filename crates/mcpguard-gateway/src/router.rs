//! Federation: one agent session in front of many upstreams.
//!
//! Tools and prompts are exposed as `<prefix><separator><name>` (or unprefixed when an
//! upstream's prefix is empty) and routed back by that prefix, or by the table built from
//! the last listing. Resources keep their URIs and are routed by the listing's table, the
//! upstreams' templates, or by asking each upstream in turn. Lists fan out to every
//! upstream in parallel and are merged; a paged upstream's cursor is folded into a
//! composite cursor. With a single unprefixed upstream, answers pass through untouched.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine;
use mcpguard_protocol::json;
use mcpguard_protocol::mcp::{self, Era, method};
use mcpguard_protocol::{Message, RpcError, codes};
use parking_lot::RwLock;
use serde_json::value::RawValue;

use crate::bridge;
use crate::caller::Caller;
use crate::error::CallError;
use crate::pipeline::CallContext;
use crate::relay::SessionRelay;
use crate::session::SessionStore;
use crate::upstream::registry::{Link, Upstream};
use crate::upstream::{CallOptions, Relay, ServerInfo};

const CURSOR_PREFIX: &str = "mcpguard1.";

/// Least time between two listings made to route a name the tables do not know.
const REFRESH_SPACING: std::time::Duration = std::time::Duration::from_secs(5);

/// How long `initialize` and `server/discover` wait for upstreams still starting.
const UPSTREAM_READY_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Methods the stateless revision removed; a stateless agent gets "method not found".
const REMOVED_IN_STATELESS: &[&str] = &[
    method::INITIALIZE,
    method::PING,
    method::LOGGING_SET_LEVEL,
    method::RESOURCES_SUBSCRIBE,
    method::RESOURCES_UNSUBSCRIBE,
];

/// Where an exposed tool or prompt lives.
#[derive(Debug, Clone)]
struct Entry {
    upstream: usize,
    name: String,
    /// `(path, token)` pairs of `x-mcp-header` annotations in a tool's input schema.
    header_params: Vec<(Vec<String>, String)>,
    /// A tool's declared output schema (JSON), if any.
    output_schema: Option<String>,
}

#[derive(Default)]
struct Tables {
    tools: HashMap<String, Entry>,
    prompts: HashMap<String, Entry>,
    resources: HashMap<String, usize>,
    templates: Vec<(usize, String)>,
}

/// Which list a fan-out builds.
#[derive(Debug, Clone, Copy)]
struct ListKind {
    method: &'static str,
    capability: &'static str,
    array: &'static str,
    /// The member holding the routable name (`name`), or `None` for resources.
    name_key: Option<&'static str>,
}

const TOOLS: ListKind = ListKind {
    method: method::TOOLS_LIST,
    capability: "tools",
    array: "tools",
    name_key: Some("name"),
};
const PROMPTS: ListKind = ListKind {
    method: method::PROMPTS_LIST,
    capability: "prompts",
    array: "prompts",
    name_key: Some("name"),
};
const RESOURCES: ListKind = ListKind {
    method: method::RESOURCES_LIST,
    capability: "resources",
    array: "resources",
    name_key: None,
};
const TEMPLATES: ListKind = ListKind {
    method: method::RESOURCES_TEMPLATES_LIST,
    capability: "resources",
    array: "resourceTemplates",
    name_key: None,
};

/// Routes agent messages to upstreams.
pub struct Router {
    upstreams: Vec<Arc<Upstream>>,
    default_upstream: Option<usize>,
    tables: RwLock<Tables>,
    sessions: Arc<SessionStore>,
    parking: crate::parking::Parking,
    /// State shared with other replicas (to pass on retries of calls parked elsewhere).
    shared: Option<Arc<crate::shared::SharedState>>,
    listeners: Arc<crate::listeners::Listeners>,
    agents: crate::gateway::Agents,
    last_refresh: parking_lot::Mutex<HashMap<&'static str, Option<std::time::Instant>>>,
}

impl Router {
    /// A router over `upstreams`.
    pub fn new(
        upstreams: Vec<Arc<Upstream>>,
        default_upstream: Option<&str>,
        sessions: Arc<SessionStore>,
        listeners: Arc<crate::listeners::Listeners>,
        agents: crate::gateway::Agents,
    ) -> Router {
        let default_upstream =
            default_upstream.and_then(|name| upstreams.iter().position(|u| u.name == name));
        Router {
            upstreams,
            default_upstream,
            tables: RwLock::new(Tables::default()),
            sessions,
            parking: crate::parking::Parking::new(),
            shared: None,
            listeners,
            agents,
            last_refresh: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Shares parked calls with other replicas through `shared` (tokens name this replica;
    /// a retry of a call parked elsewhere is passed to its holder).
    pub fn with_shared(mut self, shared: Option<Arc<crate::shared::SharedState>>) -> Router {
        if let Some(shared) = &shared {
            self.parking = crate::parking::Parking::of_replica(shared.replica());
        }
        self.shared = shared;
        self
    }

    /// Resumes a call parked here for a retry another replica received; the answer, or
    /// an error answer.
    pub async fn resume_parked(&self, request: &Message) -> Message {
        match self
            .parking
            .resume(request, Arc::new(crate::upstream::NoRelay))
            .await
        {
            Ok(reply) => reply,
            Err(e) => Message::error_response(request.id(), &e.to_rpc()),
        }
    }

    /// The upstreams.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// The single upstream with no prefix, when that is the whole federation: then
    /// answers pass through untouched.
    fn passthrough(&self) -> Option<usize> {
        (self.upstreams.len() == 1 && self.upstreams[0].prefix.is_empty()).then_some(0)
    }

    /// The upstream that gets methods the gateway cannot route by name.
    fn fallback(&self) -> Option<usize> {
        if self.upstreams.len() == 1 {
            Some(0)
        } else {
            self.default_upstream
        }
    }

    /// Answers a request (or handles a notification, returning `None`).
    pub async fn execute(&self, ctx: &mut CallContext) -> Option<Message> {
        let request = ctx.request.clone();
        let method = request.method().unwrap_or_default();
        if request.kind() == mcpguard_protocol::Kind::Notification {
            self.notification(ctx).await;
            return None;
        }
        let result = if ctx.caller.era == Era::Stateless && REMOVED_IN_STATELESS.contains(&method) {
            Err(CallError::BadRequest {
                code: codes::METHOD_NOT_FOUND,
                message: format!("`{method}` does not exist in protocol revision 2026-07-28"),
            })
        } else if ctx.caller.era == Era::Handshake && method == method::SUBSCRIPTIONS_LISTEN {
            Err(CallError::BadRequest {
                code: codes::METHOD_NOT_FOUND,
                message: format!(
                    "`{method}` belongs to protocol revision 2026-07-28; this session speaks {}",
                    ctx.caller.protocol_version
                ),
            })
        } else {
            match method {
                method::INITIALIZE => Ok(self.initialize(ctx).await),
                method::DISCOVER => {
                    self.wait_for_upstreams().await;
                    Ok(self.discover(ctx))
                }
                method::PING => Ok(Message::response(request.id().unwrap_or("null"), "{}")),
                method::TOOLS_LIST => self.list(ctx, TOOLS).await,
                method::PROMPTS_LIST => self.list(ctx, PROMPTS).await,
                method::RESOURCES_LIST => self.list(ctx, RESOURCES).await,
                method::RESOURCES_TEMPLATES_LIST => self.list(ctx, TEMPLATES).await,
                method::TOOLS_CALL => self.named(ctx, TOOLS).await,
                method::PROMPTS_GET => self.named(ctx, PROMPTS).await,
                method::RESOURCES_READ => self.by_uri(ctx).await,
                method::RESOURCES_SUBSCRIBE | method::RESOURCES_UNSUBSCRIBE => {
                    let reply = self.by_uri(ctx).await;
                    // Remember who subscribed: updates from a shared upstream go only there.
                    if let (Ok(answer), Some(session), Some(uri)) = (
                        &reply,
                        ctx.caller.session.as_ref(),
                        request.param_str("uri"),
                    ) && answer.result().is_some()
                    {
                        session.set_subscribed(&uri, method == method::RESOURCES_SUBSCRIBE);
                    }
                    reply
                }
                method::COMPLETION_COMPLETE => self.completion(ctx).await,
                method::LOGGING_SET_LEVEL => self.set_level(ctx).await,
                method::SUBSCRIPTIONS_LISTEN if self.passthrough().is_none() => {
                    self.listen(ctx).await
                }
                _ => self.other(ctx).await,
            }
        };
        Some(result.unwrap_or_else(|error| {
            tracing::debug!(method, error = %error, "call failed");
            Message::error_response(request.id(), &error.to_rpc())
        }))
    }

    /// Calls one upstream with `request` (which carries the agent's id and the upstream's
    /// own names), bridging eras as needed.
    async fn call(
        &self,
        ctx: &CallContext,
        index: usize,
        request: Message,
        headers: Vec<(String, String)>,
    ) -> Result<Message, CallError> {
        match self
            .call_once(ctx, index, request.clone(), headers.clone())
            .await
        {
            // The upstream forgot the session (it restarted): the call did not run there,
            // so open a new session and send it once more.
            Err(CallError::SessionExpired { upstream }) => {
                tracing::info!(upstream = %upstream, "the upstream ended its session; opening a new one");
                self.call_once(ctx, index, request, headers).await
            }
            other => other,
        }
    }

    async fn call_once(
        &self,
        ctx: &CallContext,
        index: usize,
        request: Message,
        headers: Vec<(String, String)>,
    ) -> Result<Message, CallError> {
        let upstream = &self.upstreams[index];
        let link = self.link(&ctx.caller, upstream).await?;
        let mut headers = headers;
        headers.extend(ctx.caller.forwarded_headers.iter().cloned());
        crate::trace::inject_current(&mut headers);
        let options = CallOptions {
            timeout: if request.method() == Some(method::SUBSCRIPTIONS_LISTEN) {
                // A subscription stream lasts as long as the agent keeps it open.
                crate::upstream::OPEN_ENDED
            } else {
                upstream.timeout
            },
            headers,
        };
        match (ctx.caller.era, link.era) {
            (Era::Handshake, Era::Stateless)
                if matches!(
                    request.method(),
                    Some(method::RESOURCES_SUBSCRIBE | method::RESOURCES_UNSUBSCRIBE)
                ) =>
            {
                bridge::resource_subscription(
                    &link.connection,
                    &request,
                    &ctx.caller,
                    &upstream.name,
                )
                .await
            }
            (Era::Handshake, Era::Stateless) => {
                let request = bridge::add_envelope(&request, &ctx.caller);
                bridge::call_with_input_rounds(&link.connection, request, &ctx.relay, &options)
                    .await
            }
            (Era::Stateless, Era::Handshake) => {
                let method = request.method().unwrap_or_default().to_string();
                let holder = crate::parking::replica_of(request.params())
                    .filter(|r| Some(r.as_str()) != self.parking.replica());
                let reply = if let (Some(holder), Some(shared)) = (holder, &self.shared) {
                    // The agent answers a question asked in a call another replica holds.
                    shared.resume_elsewhere(&holder, &request).await
                } else if crate::parking::is_parked_state(request.params()) {
                    // The agent answers a question the upstream asked mid-call.
                    self.parking.resume(&request, ctx.relay.clone()).await?
                } else {
                    let request = bridge::strip_envelope(&request);
                    self.parking
                        .start(link.connection.clone(), request, ctx.relay.clone(), options)
                        .await?
                };
                Ok(bridge::mark_complete(reply, &method))
            }
            (Era::Stateless, Era::Stateless) => {
                // Requests the gateway makes on the agent's behalf (listings to route a
                // name) carry no envelope yet: give them the agent's.
                let request = match request.param("_meta") {
                    Some(meta)
                        if json::member(
                            meta,
                            crate::upstream::setup::meta_key::PROTOCOL_VERSION,
                        )
                        .is_some() =>
                    {
                        request
                    }
                    _ => bridge::add_envelope(&request, &ctx.caller),
                };
                link.connection
                    .call(request, ctx.relay.clone(), &options)
                    .await
            }
            (Era::Handshake, Era::Handshake) => {
                link.connection
                    .call(request, ctx.relay.clone(), &options)
                    .await
            }
        }
    }

    async fn link(&self, caller: &Caller, upstream: &Upstream) -> Result<Link, CallError> {
        let session = caller.session.clone();
        upstream
            .link(caller, move || match session {
                Some(session) => Arc::new(SessionRelay::new(&session)) as Arc<dyn Relay>,
                None => Arc::new(crate::upstream::NoRelay),
            })
            .await
    }

    // ----- the gateway's own answers -----

    fn infos(&self) -> Vec<(usize, ServerInfo)> {
        self.upstreams
            .iter()
            .enumerate()
            .filter_map(|(i, u)| u.info().map(|info| (i, info)))
            .collect()
    }

    /// Waits (bounded) until every upstream is set up, so the gateway announces what they
    /// really offer.
    async fn wait_for_upstreams(&self) {
        let waits = self
            .upstreams
            .iter()
            .map(|u| u.wait_ready(UPSTREAM_READY_WAIT));
        futures::future::join_all(waits).await;
    }

    /// Capabilities, server info and instructions to announce.
    fn announce(&self) -> (String, String, Option<String>) {
        let infos = self.infos();
        if let (Some(_), [(_, info)]) = (self.passthrough(), infos.as_slice()) {
            return (
                info.capabilities.clone(),
                info.server_info.clone(),
                info.instructions.clone(),
            );
        }
        let mut capabilities = serde_json::Map::new();
        for (_, info) in &infos {
            if let Ok(serde_json::Value::Object(caps)) = serde_json::from_str(&info.capabilities) {
                merge_capabilities(&mut capabilities, caps);
            }
        }
        // The gateway itself always answers these.
        for key in ["tools", "prompts", "resources"] {
            capabilities
                .entry(key)
                .or_insert_with(|| serde_json::json!({}));
        }
        let server_info = serde_json::json!({
            "name": "mcpguard",
            "title": "MCPGuard security gateway",
            "version": env!("CARGO_PKG_VERSION"),
        })
        .to_string();
        let instructions: Vec<String> = infos
            .iter()
            .filter_map(|(i, info)| {
                info.instructions
                    .as_ref()
                    .map(|text| format!("[{}] {text}", self.upstreams[*i].name))
            })
            .collect();
        let instructions = (!instructions.is_empty()).then(|| instructions.join("\n\n"));
        (
            serde_json::Value::Object(capabilities).to_string(),
            server_info,
            instructions,
        )
    }

    async fn initialize(&self, ctx: &CallContext) -> Message {
        let params = ctx.request.params().unwrap_or("{}");
        let requested = json::member_str(params, "protocolVersion").unwrap_or_default();
        let version = if mcp::Era::of(&requested) == Some(Era::Handshake) {
            requested.into_owned()
        } else {
            mcp::LATEST_HANDSHAKE_VERSION.to_string()
        };
        self.wait_for_upstreams().await;
        // Open the agent's own upstream sessions now, so the first call does not wait.
        let links = self
            .upstreams
            .iter()
            .map(|u| async move { (u.name.clone(), self.link(&ctx.caller, u).await) });
        for (name, link) in futures::future::join_all(links).await {
            if let Err(e) = link {
                tracing::warn!(upstream = %name, "could not open an upstream session for the agent: {e}");
            }
        }
        let (capabilities, server_info, instructions) = self.announce();
        let mut result = format!(
            r#"{{"protocolVersion":{},"capabilities":{capabilities},"serverInfo":{server_info}"#,
            serde_json::Value::from(version)
        );
        if let Some(text) = instructions {
            result.push_str(r#","instructions":"#);
            result.push_str(&serde_json::Value::from(text).to_string());
        }
        result.push('}');
        Message::response(ctx.request.id().unwrap_or("null"), &result)
    }

    fn discover(&self, ctx: &CallContext) -> Message {
        let (capabilities, server_info, instructions) = self.announce();
        let mut result = format!(
            r#"{{"supportedVersions":["{}"],"capabilities":{capabilities}"#,
            mcp::LATEST_VERSION
        );
        if let Some(text) = instructions {
            result.push_str(r#","instructions":"#);
            result.push_str(&serde_json::Value::from(text).to_string());
        }
        result.push_str(&format!(
            r#","resultType":"complete","ttlMs":0,"cacheScope":"private","_meta":{{"{}":{server_info}}}}}"#,
            crate::upstream::setup::meta_key::SERVER_INFO
        ));
        Message::response(ctx.request.id().unwrap_or("null"), &result)
    }

    // ----- lists -----

    fn participants(&self, kind: ListKind) -> Vec<usize> {
        (0..self.upstreams.len())
            .filter(|i| {
                self.upstreams[*i]
                    .info()
                    .is_none_or(|info| info.has_capability(kind.capability))
            })
            .collect()
    }

    async fn list(&self, ctx: &CallContext, kind: ListKind) -> Result<Message, CallError> {
        let request = &ctx.request;
        let params = request.params();
        if let Some(index) = self.passthrough() {
            let reply = self.call(ctx, index, request.clone(), Vec::new()).await?;
            if let Some(result) = reply.result() {
                self.learn(
                    kind,
                    index,
                    result,
                    params.is_none_or(|p| json::member(p, "cursor").is_none()),
                );
            }
            return Ok(reply);
        }
        // Which upstreams, with which cursors.
        let cursor = params.and_then(|p| json::member_str(p, "cursor"));
        let targets: Vec<(usize, Option<String>)> = match cursor {
            Some(cursor) => decode_cursor(&cursor)
                .ok_or_else(|| CallError::BadRequest {
                    code: codes::INVALID_PARAMS,
                    message: "the cursor was not issued by this gateway, or has been altered"
                        .into(),
                })?
                .into_iter()
                .filter_map(|(name, c)| {
                    self.upstreams
                        .iter()
                        .position(|u| u.name == name)
                        .map(|i| (i, Some(c)))
                })
                .collect(),
            None => self
                .participants(kind)
                .into_iter()
                .map(|i| (i, None))
                .collect(),
        };
        let first_page = cursor_is_absent(params);
        let calls = targets.iter().map(|(index, cursor)| {
            let mut params = params.unwrap_or("{}").to_string();
            params = match cursor {
                Some(c) => json::set_member(
                    &params,
                    "cursor",
                    &serde_json::Value::from(c.clone()).to_string(),
                ),
                None => json::remove_member(&params, "cursor"),
            };
            let upstream_request = request.with_params(&params);
            async move {
                (
                    *index,
                    self.call(ctx, *index, upstream_request, Vec::new()).await,
                )
            }
        });
        let replies = futures::future::join_all(calls).await;
        let mut items: Vec<String> = Vec::new();
        let mut next: BTreeMap<String, String> = BTreeMap::new();
        let mut failures: Vec<String> = Vec::new();
        let mut ttl: Option<u64> = None;
        let mut private = false;
        for (index, reply) in replies {
            let upstream = &self.upstreams[index];
            let result = match reply {
                Ok(reply) => match reply.result() {
                    Some(result) => result.to_string(),
                    None => {
                        failures.push(format!(
                            "{}: {}",
                            upstream.name,
                            reply.error().unwrap_or("error")
                        ));
                        continue;
                    }
                },
                Err(e) => {
                    tracing::warn!(upstream = %upstream.name, "listing failed: {e}");
                    failures.push(e.to_string());
                    continue;
                }
            };
            self.learn(kind, index, &result, first_page);
            if let Some(array) = json::member(&result, kind.array) {
                let elements: Vec<&RawValue> = serde_json::from_str(array).unwrap_or_default();
                for element in elements {
                    items.push(self.expose(kind, index, element.get()));
                }
            }
            if let Some(cursor) = json::member_str(&result, "nextCursor") {
                next.insert(upstream.name.clone(), cursor.into_owned());
            }
            if let Some(t) = json::member(&result, "ttlMs").and_then(|t| t.parse::<u64>().ok()) {
                ttl = Some(ttl.map_or(t, |old| old.min(t)));
            }
            if json::member_str(&result, "cacheScope").is_some_and(|s| s == "private") {
                private = true;
            }
        }
        if items.is_empty() && !failures.is_empty() && failures.len() == targets.len() {
            return Err(CallError::Unavailable {
                upstream: "all".into(),
                reason: failures.join("; "),
            });
        }
        let mut result = format!(r#"{{"{}":[{}]"#, kind.array, items.join(","));
        if !next.is_empty() {
            result.push_str(r#","nextCursor":"#);
            result.push_str(&serde_json::Value::from(encode_cursor(&next)).to_string());
        }
        if ctx.caller.era == Era::Stateless {
            result.push_str(r#","resultType":"complete""#);
            result.push_str(&format!(r#","ttlMs":{}"#, ttl.unwrap_or(0)));
            result.push_str(if private {
                r#","cacheScope":"private""#
            } else {
                r#","cacheScope":"public""#
            });
        }
        result.push('}');
        Ok(Message::response(request.id().unwrap_or("null"), &result))
    }

    /// An element of `kind` from upstream `index` as the agent sees it.
    fn expose(&self, kind: ListKind, index: usize, element: &str) -> String {
        let prefix = &self.upstreams[index].prefix;
        match kind.name_key {
            Some(key) if !prefix.is_empty() => match json::member_str(element, key) {
                Some(name) => json::set_member(
                    element,
                    key,
                    &serde_json::Value::from(format!("{prefix}{name}")).to_string(),
                ),
                None => element.to_string(),
            },
            _ => element.to_string(),
        }
    }

    /// Records what a listing says about where names and URIs live.
    fn learn(&self, kind: ListKind, index: usize, result: &str, replace: bool) {
        let Some(array) = json::member(result, kind.array) else {
            return;
        };
        let elements: Vec<&RawValue> = serde_json::from_str(array).unwrap_or_default();
        let prefix = self.upstreams[index].prefix.clone();
        let mut tables = self.tables.write();
        match kind.array {
            "tools" | "prompts" => {
                let table = if kind.array == "tools" {
                    &mut tables.tools
                } else {
                    &mut tables.prompts
                };
                if replace {
                    table.retain(|_, entry| entry.upstream != index);
                }
                for element in elements {
                    let Some(name) = json::member_str(element.get(), "name") else {
                        continue;
                    };
                    let exposed = format!("{prefix}{name}");
                    let header_params = json::member(element.get(), "inputSchema")
                        .map(header_params)
                        .unwrap_or_default();
                    if let Some(existing) = table.get(&exposed)
                        && existing.upstream != index
                    {
                        tracing::warn!(
                            name = %exposed,
                            first = %self.upstreams[existing.upstream].name,
                            second = %self.upstreams[index].name,
                            "two upstreams expose the same name; calls go to the first. Give one of them a prefix"
                        );
                        continue;
                    }
                    table.insert(
                        exposed,
                        Entry {
                            upstream: index,
                            name: name.into_owned(),
                            header_params,
                            output_schema: json::member(element.get(), "outputSchema")
                                .map(str::to_string),
                        },
                    );
                }
            }
            "resources" => {
                if replace {
                    tables.resources.retain(|_, i| *i != index);
                }
                for element in elements {
                    if let Some(uri) = json::member_str(element.get(), "uri") {
                        tables.resources.insert(uri.into_owned(), index);
                    }
                }
            }
            _ => {
                if replace {
                    tables.templates.retain(|(i, _)| *i != index);
                }
                for element in elements {
                    if let Some(template) = json::member_str(element.get(), "uriTemplate") {
                        let entry = (index, template.into_owned());
                        if !tables.templates.contains(&entry) {
                            tables.templates.push(entry);
                        }
                    }
                }
            }
        }
    }

    // ----- named calls -----

    /// Finds the upstream and upstream-side name for an exposed tool or prompt name.
    async fn resolve(
        &self,
        ctx: &CallContext,
        kind: ListKind,
        exposed: &str,
    ) -> Result<Entry, CallError> {
        if let Some(entry) = self.lookup_table(kind, exposed) {
            return Ok(entry);
        }
        // Not listed yet (a stateless agent may call without listing): list once, so the
        // call gets its routing and the tool's `Mcp-Param-*` headers, then look again.
        // Refreshes are spaced out, so calls to unknown names cannot flood the upstreams.
        if self.refresh_due(kind) {
            let list_request = Message::request("\"mcpguard-refresh\"", kind.method, None);
            let refresh = CallContext::new(
                ctx.caller.clone(),
                list_request,
                Arc::new(crate::upstream::NoRelay),
            );
            if let Err(e) = self.list(&refresh, kind).await {
                tracing::debug!(
                    listing = kind.method,
                    "refreshing the routing table failed: {e}"
                );
            }
            if let Some(entry) = self.lookup_table(kind, exposed) {
                return Ok(entry);
            }
        }
        if let Some(entry) = self.lookup_fallback(exposed) {
            return Ok(entry);
        }
        let noun = if kind.array == "tools" {
            "tool"
        } else {
            "prompt"
        };
        Err(CallError::BadRequest {
            code: codes::INVALID_PARAMS,
            message: format!("unknown {noun} `{exposed}`: no upstream lists it"),
        })
    }

    fn lookup_table(&self, kind: ListKind, exposed: &str) -> Option<Entry> {
        let tables = self.tables.read();
        let table = if kind.array == "tools" {
            &tables.tools
        } else {
            &tables.prompts
        };
        table.get(exposed).cloned()
    }

    /// Routing without a listing: by prefix, or to the single unprefixed upstream.
    fn lookup_fallback(&self, exposed: &str) -> Option<Entry> {
        for (index, upstream) in self.upstreams.iter().enumerate() {
            if !upstream.prefix.is_empty()
                && let Some(name) = exposed.strip_prefix(upstream.prefix.as_str())
            {
                return Some(Entry {
                    upstream: index,
                    name: name.to_string(),
                    header_params: Vec::new(),
                    output_schema: None,
                });
            }
        }
        self.passthrough().map(|index| Entry {
            upstream: index,
            name: exposed.to_string(),
            header_params: Vec::new(),
            output_schema: None,
        })
    }

    /// True when a listing of `kind` may be refreshed now (at most every few seconds).
    fn refresh_due(&self, kind: ListKind) -> bool {
        let mut last = self.last_refresh.lock();
        let entry = last.entry(kind.method).or_insert(None);
        let due = entry.is_none_or(|at: std::time::Instant| at.elapsed() >= REFRESH_SPACING);
        if due {
            *entry = Some(std::time::Instant::now());
        }
        due
    }

    /// The `x-mcp-header` parameters of an exposed tool, for header validation.
    pub fn tool_header_params(&self, exposed: &str) -> Option<Vec<(Vec<String>, String)>> {
        self.tables
            .read()
            .tools
            .get(exposed)
            .map(|entry| entry.header_params.clone())
    }

    async fn named(&self, ctx: &mut CallContext, kind: ListKind) -> Result<Message, CallError> {
        let request = ctx.request.clone();
        let params = request.params().unwrap_or("{}");
        let exposed = request
            .param_str("name")
            .ok_or_else(|| CallError::BadRequest {
                code: codes::INVALID_PARAMS,
                message: format!("`{}` needs a string `name`", kind.method),
            })?;
        let entry = self.resolve(ctx, kind, &exposed).await?;
        let upstream_request = if entry.name == exposed {
            request.clone()
        } else {
            request.with_params(&json::set_member(
                params,
                "name",
                &serde_json::Value::from(entry.name.clone()).to_string(),
            ))
        };
        let headers = param_headers(&entry.header_params, request.param("arguments"));
        ctx.upstream = Some(self.upstreams[entry.upstream].name.clone());
        self.call(ctx, entry.upstream, upstream_request, headers)
            .await
    }

    /// The output schema an upstream declared for an exposed tool (as of the last listing).
    pub fn tool_output_schema(&self, exposed: &str) -> Option<String> {
        self.tables.read().tools.get(exposed)?.output_schema.clone()
    }

    /// The upstream and upstream-side name of an exposed tool name, from the routing
    /// tables (as of the last listing) or the prefix.
    pub fn tool_target(&self, exposed: &str) -> Option<crate::pipeline::Target> {
        let entry = self
            .lookup_table(TOOLS, exposed)
            .or_else(|| self.lookup_fallback(exposed))?;
        Some(crate::pipeline::Target {
            server: self.upstreams[entry.upstream].name.clone(),
            name: entry.name,
        })
    }

    /// Where a named call goes, as `(upstream, name the upstream knows)`: the tool or
    /// prompt of `tools/call`/`prompts/get`, or the owner of a `resources/read` URI.
    /// `None` when the gateway cannot tell (the call will fail with its own error).
    pub async fn locate(&self, ctx: &CallContext) -> Option<crate::pipeline::Target> {
        let method = ctx.request.method()?;
        let (index, name) = match method {
            method::TOOLS_CALL | method::PROMPTS_GET => {
                let kind = if method == method::TOOLS_CALL {
                    TOOLS
                } else {
                    PROMPTS
                };
                let exposed = ctx.request.param_str("name")?;
                let entry = self.resolve(ctx, kind, &exposed).await.ok()?;
                (entry.upstream, entry.name)
            }
            method::RESOURCES_READ => {
                let uri = ctx.request.param_str("uri")?;
                (self.resource_owner(&uri)?, uri.into_owned())
            }
            _ => return None,
        };
        Some(crate::pipeline::Target {
            server: self.upstreams[index].name.clone(),
            name,
        })
    }

    // ----- resources -----

    fn resource_owner(&self, uri: &str) -> Option<usize> {
        if let Some(index) = self.passthrough() {
            return Some(index);
        }
        let tables = self.tables.read();
        if let Some(index) = tables.resources.get(uri) {
            return Some(*index);
        }
        tables
            .templates
            .iter()
            .find(|(_, template)| template_matches(template, uri))
            .map(|(index, _)| *index)
    }

    async fn by_uri(&self, ctx: &mut CallContext) -> Result<Message, CallError> {
        let request = ctx.request.clone();
        let uri = request
            .params()
            .and_then(|p| json::member_str(p, "uri"))
            .ok_or_else(|| CallError::BadRequest {
                code: codes::INVALID_PARAMS,
                message: "the request needs a string `uri`".into(),
            })?
            .into_owned();
        if let Some(index) = self.resource_owner(&uri) {
            ctx.upstream = Some(self.upstreams[index].name.clone());
            return self.call(ctx, index, request, Vec::new()).await;
        }
        // Unknown URI: ask each upstream that serves resources until one knows it.
        let mut last: Option<Message> = None;
        for index in self.participants(RESOURCES) {
            match self.call(ctx, index, request.clone(), Vec::new()).await {
                Ok(reply) if reply.result().is_some() => {
                    ctx.upstream = Some(self.upstreams[index].name.clone());
                    self.tables.write().resources.insert(uri.clone(), index);
                    return Ok(reply);
                }
                Ok(reply) => last = Some(reply),
                Err(e) => {
                    tracing::debug!(upstream = %self.upstreams[index].name, "resource lookup failed: {e}")
                }
            }
        }
        Ok(last.unwrap_or_else(|| {
            Message::error_response(
                request.id(),
                &RpcError::new(
                    codes::RESOURCE_NOT_FOUND,
                    format!("no upstream serves `{uri}`"),
                )
                .with_data(serde_json::json!({ "uri": uri })),
            )
        }))
    }

    async fn completion(&self, ctx: &mut CallContext) -> Result<Message, CallError> {
        let request = ctx.request.clone();
        let params = request.params().unwrap_or("{}");
        let reference = json::member(params, "ref").unwrap_or("{}");
        let ref_type = json::member_str(reference, "type").unwrap_or_default();
        if ref_type == "ref/prompt" {
            let exposed = json::member_str(reference, "name")
                .unwrap_or_default()
                .into_owned();
            let entry = self.resolve(ctx, PROMPTS, &exposed).await?;
            let new_ref = json::set_member(
                reference,
                "name",
                &serde_json::Value::from(entry.name).to_string(),
            );
            let upstream_request = request.with_params(&json::set_member(params, "ref", &new_ref));
            ctx.upstream = Some(self.upstreams[entry.upstream].name.clone());
            return self
                .call(ctx, entry.upstream, upstream_request, Vec::new())
                .await;
        }
        let uri = json::member_str(reference, "uri")
            .unwrap_or_default()
            .into_owned();
        let index = self
            .resource_owner(&uri)
            .or_else(|| self.fallback())
            .ok_or_else(|| {
                CallError::NotRoutable(format!("no upstream serves completions for `{uri}`"))
            })?;
        ctx.upstream = Some(self.upstreams[index].name.clone());
        self.call(ctx, index, request, Vec::new()).await
    }

    async fn set_level(&self, ctx: &CallContext) -> Result<Message, CallError> {
        let request = ctx.request.clone();
        if let Some(index) = self.passthrough() {
            let upstream = &self.upstreams[index];
            let link = self.link(&ctx.caller, upstream).await?;
            if link.era == Era::Handshake && !link.shared {
                return self.call(ctx, index, request, Vec::new()).await;
            }
        }
        // Remember the level (it rides in `_meta` to stateless upstreams, and filters what
        // this agent gets), and tell every handshake upstream that logs. An upstream shared
        // by several agents is set to the lowest level any of them asked for: one agent
        // never silences or floods another.
        if let (Some(session), Some(level)) = (
            ctx.caller.session.as_ref(),
            request.params().and_then(|p| json::member_str(p, "level")),
        ) {
            *session.log_level.lock() = Some(level.into_owned());
        }
        let lowest = self
            .sessions
            .all()
            .iter()
            .filter_map(|s| s.log_level.lock().clone())
            .min_by_key(|l| crate::relay::log_rank(l).unwrap_or(0));
        let calls = (0..self.upstreams.len()).map(|index| {
            let mut request = request.clone();
            let lowest = lowest.clone();
            async move {
                let upstream = &self.upstreams[index];
                let logs = upstream
                    .info()
                    .is_some_and(|info| info.has_capability("logging"));
                let link = self.link(&ctx.caller, upstream).await.ok();
                if let (Some(link), Some(lowest)) = (&link, &lowest)
                    && link.shared
                {
                    let params = json::set_member(
                        request.params().unwrap_or("{}"),
                        "level",
                        &serde_json::Value::from(lowest.as_str()).to_string(),
                    );
                    request = request.with_params(&params);
                }
                if logs
                    && link.is_some_and(|l| l.era == Era::Handshake)
                    && let Err(e) = self.call(ctx, index, request, Vec::new()).await
                {
                    tracing::debug!(upstream = %upstream.name, "setting the log level failed: {e}");
                }
            }
        });
        futures::future::join_all(calls).await;
        Ok(Message::response(request.id().unwrap_or("null"), "{}"))
    }

    /// `subscriptions/listen` across several upstreams: one acknowledgement from the
    /// gateway, a listen stream to every stateless upstream, and the list changes of
    /// handshake-era upstreams; it lasts until the agent hangs up.
    async fn listen(&self, ctx: &CallContext) -> Result<Message, CallError> {
        let request = ctx.request.clone();
        let id = request.id().unwrap_or("null").to_string();
        let notifications = request
            .params()
            .and_then(|p| json::member(p, "notifications"));
        ctx.relay
            .notify(crate::listeners::acknowledgement(&id, notifications))
            .await;
        let filter = crate::listeners::Filter::parse(notifications);
        let _registration = self.listeners.add(ctx.relay.clone(), &id, filter);
        let relay: Arc<dyn Relay> =
            Arc::new(crate::listeners::DropAcknowledgement(ctx.relay.clone()));
        let streams = self.upstreams.iter().map(|upstream| {
            let request = request.clone();
            let relay = relay.clone();
            async move {
                let Ok(link) = self.link(&ctx.caller, upstream).await else {
                    return;
                };
                if link.era != Era::Stateless {
                    return;
                }
                let options = CallOptions::with_timeout(crate::upstream::OPEN_ENDED);
                if let Err(e) = link.connection.call(request, relay, &options).await {
                    tracing::debug!(upstream = %upstream.name, "a listen stream ended: {e}");
                }
            }
        });
        futures::future::join_all(streams).await;
        // Handshake-era upstreams' changes keep coming through the registration.
        futures::future::pending::<()>().await;
        Ok(Message::response(&id, r#"{"resultType":"complete"}"#))
    }

    async fn other(&self, ctx: &mut CallContext) -> Result<Message, CallError> {
        let method = ctx.method().to_string();
        let index = self.fallback().ok_or_else(|| {
            CallError::NotRoutable(format!(
                "`{method}` cannot be routed: several upstreams are configured and none is `federation.default_upstream`"
            ))
        })?;
        ctx.upstream = Some(self.upstreams[index].name.clone());
        let request = ctx.request.clone();
        self.call(ctx, index, request, Vec::new()).await
    }

    // ----- notifications -----

    async fn notification(&self, ctx: &CallContext) {
        let request = &ctx.request;
        match request.method().unwrap_or_default() {
            method::INITIALIZED => {}
            method::CANCELLED => {
                let id = request.params().and_then(|p| json::member(p, "requestId"));
                if let (Some(session), Some(id)) = (ctx.caller.session.as_ref(), id)
                    && !session.cancel(id)
                {
                    tracing::debug!("cancellation for a request that is not running");
                }
            }
            method::ROOTS_LIST_CHANGED => {
                // Roots belong to one agent: an upstream shared by several would apply one
                // agent's roots to all of them (a filesystem server replaces its allowed
                // folders with them), so only the agent's own upstream sessions hear it.
                for upstream in &self.upstreams {
                    let own = match self.link(&ctx.caller, upstream).await {
                        Ok(link) => !link.shared,
                        Err(_) => false,
                    };
                    if own || self.agents == crate::gateway::Agents::One {
                        self.forward_notification(ctx, upstream, request.clone())
                            .await;
                    }
                }
            }
            _ => {
                if let Some(index) = self.fallback() {
                    self.forward_notification(ctx, &self.upstreams[index], request.clone())
                        .await;
                }
            }
        }
    }

    async fn forward_notification(&self, ctx: &CallContext, upstream: &Upstream, message: Message) {
        let link = match self.link(&ctx.caller, upstream).await {
            Ok(link) => link,
            Err(e) => {
                tracing::debug!(upstream = %upstream.name, "dropped a notification: {e}");
                return;
            }
        };
        if let Err(e) = link.connection.notify(message).await {
            tracing::debug!(upstream = %upstream.name, "forwarding a notification failed: {e}");
        }
    }

    /// Drops parked calls whose agents never came back.
    pub fn expire_parked(&self) {
        self.parking.expire();
    }

    /// The session store (for relays).
    pub fn sessions(&self) -> &Arc<SessionStore> {
        &self.sessions
    }
}

fn cursor_is_absent(params: Option<&str>) -> bool {
    params.is_none_or(|p| json::member(p, "cursor").is_none())
}

fn encode_cursor(next: &BTreeMap<String, String>) -> String {
    let text = serde_json::to_string(next).unwrap_or_default();
    format!(
        "{CURSOR_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    )
}

fn decode_cursor(cursor: &str) -> Option<BTreeMap<String, String>> {
    let encoded = cursor.strip_prefix(CURSOR_PREFIX)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Merges one upstream's capabilities into the union.
fn merge_capabilities(
    into: &mut serde_json::Map<String, serde_json::Value>,
    from: serde_json::Map<String, serde_json::Value>,
) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(serde_json::Value::Object(existing)), serde_json::Value::Object(more)) => {
                for (k, v) in more {
                    match (existing.get(&k), &v) {
                        (Some(serde_json::Value::Bool(true)), _) => {}
                        _ => {
                            existing.insert(k, v);
                        }
                    }
                }
            }
            (Some(_), _) => {}
            (None, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// True when `uri` fits the RFC 6570 template `template`: `{var}` matches a run of
/// characters without `/`; `{+var}`, `{#var}` and `{/var}` match anything.
pub fn template_matches(template: &str, uri: &str) -> bool {
    enum Token {
        Literal(char),
        NoSlash,
        Any,
    }
    let mut tokens = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        tokens.extend(rest[..open].chars().map(Token::Literal));
        let Some(close) = rest[open..].find('}') else {
            return false;
        };
        let expr = &rest[open + 1..open + close];
        tokens.push(if expr.starts_with(['+', '#', '/']) {
            Token::Any
        } else {
            Token::NoSlash
        });
        rest = &rest[open + close + 1..];
    }
    tokens.extend(rest.chars().map(Token::Literal));
    // Dynamic programming over (token, position): linear in tokens × URI length, whatever
    // the template (backtracking would be exponential with adjacent expressions).
    let text: Vec<char> = uri.chars().collect();
    // reach[j]: the tokens so far can consume exactly text[..j].
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    for token in &tokens {
        let mut next = vec![false; text.len() + 1];
        match token {
            Token::Literal(c) => {
                for j in 0..text.len() {
                    if reach[j] && text[j] == *c {
                        next[j + 1] = true;
                    }
                }
            }
            Token::NoSlash | Token::Any => {
                let mut open = false;
                for j in 0..=text.len() {
                    open = open || reach[j];
                    next[j] = open;
                    if j < text.len() && matches!(token, Token::NoSlash) && text[j] == '/' {
                        open = false;
                    }
                }
            }
        }
        reach = next;
    }
    reach[text.len()]
}

/// The `(path, token)` pairs of `x-mcp-header` annotations reachable through `properties`.
fn header_params(schema: &str) -> Vec<(Vec<String>, String)> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(schema) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut stack: Vec<(Vec<String>, &serde_json::Value)> = vec![(Vec::new(), &value)];
    while let Some((path, node)) = stack.pop() {
        if !path.is_empty()
            && let Some(token) = node.get("x-mcp-header").and_then(|t| t.as_str())
        {
            out.push((path.clone(), token.to_string()));
        }
        if let Some(properties) = node.get("properties").and_then(|p| p.as_object()) {
            for (name, sub) in properties {
                let mut sub_path = path.clone();
                sub_path.push(name.clone());
                stack.push((sub_path, sub));
            }
        }
    }
    out.sort();
    out
}

/// The `Mcp-Param-*` headers for a `tools/call` with `arguments`.
pub fn param_headers(
    params: &[(Vec<String>, String)],
    arguments: Option<&str>,
) -> Vec<(String, String)> {
    if params.is_empty() {
        return Vec::new();
    }
    let Some(arguments) = arguments.and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
    else {
        return Vec::new();
    };
    let mut headers = Vec::new();
    for (path, token) in params {
        let mut node = &arguments;
        let mut found = true;
        for key in path {
            match node.get(key) {
                Some(next) => node = next,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        let rendered = match node {
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s.clone(),
            _ => continue,
        };
        headers.push((
            format!("{}{token}", mcp::header::PARAM_PREFIX),
            mcp::encode_header_value(&rendered),
        ));
    }
    headers
}

#[cfg(test)]
mod tests;
