//! The agent-facing stdio transport: `mcpguard stdio`, started by a desktop client as its
//! MCP server. One agent, newline-delimited JSON-RPC on stdin/stdout; logs go to stderr.

use std::sync::Arc;

use mcpguard_protocol::framing::{LineDecoder, encode_line};
use mcpguard_protocol::mcp::{self, Era};
use mcpguard_protocol::{Kind, Message, RpcError, codes, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::caller::{Caller, Downstream};
use crate::gateway::Gateway;
use crate::relay::{CallRelay, Outbound};
use crate::session::Session;
use crate::upstream::Relay;
use crate::upstream::setup::meta_key;

/// Serves one agent on `input`/`output` until `input` ends or the gateway drains.
pub async fn serve<R, W>(gateway: Arc<Gateway>, mut input: R, output: W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::unbounded_channel::<Outbound>();
    let writer = tokio::spawn(write_messages(output, out_rx));
    let limit = gateway.config().proxy.max_body_bytes;
    let mut decoder = LineDecoder::new(limit);
    let mut session: Option<Arc<Session>> = None;
    let calls = tokio_util::task::TaskTracker::new();
    let draining = gateway.draining();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = input.read(&mut buf) => read?,
            _ = draining.cancelled() => 0,
        };
        if n == 0 {
            break;
        }
        for line in decoder.push(&buf[..n]) {
            let message = match line {
                Ok(line) => Message::parse(line),
                Err(e) => {
                    let _ = out_tx.send(Outbound::Message(error(
                        None,
                        codes::INVALID_REQUEST,
                        format!("{e}; the line was dropped"),
                    )));
                    continue;
                }
            };
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    let _ = out_tx.send(Outbound::Message(error(None, e.code(), e.to_string())));
                    continue;
                }
            };
            if let Some(session) = &session {
                session.touch();
            }
            if message.is_reply() {
                match &session {
                    Some(s) if s.deliver_answer(message) => {}
                    _ => tracing::debug!("an answer arrived for no pending request"),
                }
                continue;
            }
            let Some(caller) = caller_for(&gateway, &message, &mut session, &out_tx) else {
                if message.kind() == Kind::Request {
                    let _ = out_tx.send(Outbound::Message(error(
                        message.id(),
                        codes::INVALID_REQUEST,
                        "send `initialize` first, or use protocol revision 2026-07-28 (requests carrying its `_meta` envelope)".into(),
                    )));
                }
                continue;
            };
            let relay: Arc<dyn Relay> = Arc::new(CallRelay::new(session.clone(), out_tx.clone()));
            let gateway = gateway.clone();
            let out = out_tx.clone();
            let is_initialize = message.method() == Some(mcp::method::INITIALIZE);
            let pending_session = session.clone();
            let task = async move {
                if let Some(answer) = gateway.handle(caller, message, relay).await {
                    if is_initialize
                        && answer.kind() == Kind::Response
                        && let Some(session) = pending_session
                    {
                        gateway.sessions().insert(session);
                    }
                    let _ = out.send(Outbound::Message(answer));
                }
            };
            if is_initialize {
                // The session must exist before the next message is read.
                task.await;
            } else {
                calls.spawn(task);
            }
        }
    }
    calls.close();
    let grace = std::time::Duration::from_secs_f64(gateway.config().proxy.shutdown_grace_seconds);
    let _ = tokio::time::timeout(grace, calls.wait()).await;
    if let Some(session) = session {
        gateway.sessions().end(session.id()).await;
    }
    drop(out_tx);
    let _ = writer.await;
    Ok(())
}

/// Works out who is calling; opens the session on `initialize`.
fn caller_for(
    gateway: &Arc<Gateway>,
    message: &Message,
    session: &mut Option<Arc<Session>>,
    out: &mpsc::UnboundedSender<Outbound>,
) -> Option<Caller> {
    let params = message.params();
    let envelope_version = mcp::meta(params)
        .and_then(|meta| json::member_str(meta, meta_key::PROTOCOL_VERSION))
        .map(|v| v.into_owned());
    if session.is_none() && message.method() != Some(mcp::method::INITIALIZE) {
        if let Some(version) = envelope_version.filter(|v| Era::of(v) == Some(Era::Stateless)) {
            let meta = mcp::meta(params).unwrap_or("{}");
            return Some(Caller {
                era: Era::Stateless,
                forwarded_headers: Vec::new(),
                protocol_version: version.into(),
                session: None,
                client_info: json::member(meta, meta_key::CLIENT_INFO).map(Into::into),
                client_capabilities: json::member(meta, meta_key::CLIENT_CAPABILITIES)
                    .map(Into::into),
                downstream: Downstream::Stdio,
                remote: None,
                identity: None,
                trace_parent: None,
            });
        }
        return None;
    }
    if message.method() == Some(mcp::method::INITIALIZE) && session.is_none() {
        let params = params.unwrap_or("{}");
        let requested = json::member_str(params, "protocolVersion").unwrap_or_default();
        let version = if Era::of(&requested) == Some(Era::Handshake) {
            requested.into_owned()
        } else {
            mcp::LATEST_HANDSHAKE_VERSION.to_string()
        };
        let new = Arc::new(Session::new(
            params,
            &version,
            gateway.config().proxy.replay_buffer_events,
        ));
        // Messages outside any call go straight to stdout.
        let mut events = new.standalone_stream().attach_fresh();
        let out = out.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let Some(message) = event.message
                    && out.send(Outbound::Message(message)).is_err()
                {
                    break;
                }
            }
        });
        *session = Some(new);
    }
    let session = session.as_ref()?;
    Some(Caller::of_session(session, Downstream::Stdio, None))
}

fn error(id: Option<&str>, code: i64, message: String) -> Message {
    Message::error_response(id, &RpcError::new(code, message))
}

async fn write_messages<W: AsyncWrite + Unpin>(
    mut output: W,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
) {
    while let Some(item) = rx.recv().await {
        let Outbound::Message(message) = item else {
            continue;
        };
        if output
            .write_all(&encode_line(message.bytes()))
            .await
            .is_err()
        {
            break;
        }
        if rx.is_empty() && output.flush().await.is_err() {
            break;
        }
    }
    let _ = output.flush().await;
}
