//! A minimal MCP server over Streamable HTTP with one tool, `echo`, answering with JSON.
//! It speaks both eras: the `initialize` handshake with `Mcp-Session-Id`, and the
//! stateless 2026-07-28 revision (`server/discover`, no session). It validates almost
//! nothing: it exists to be faster than any real server, so that a benchmark measures the
//! gateway.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// Serves the echo server on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let app = Router::new().route("/mcp", post(handle).get(not_allowed).delete(ok));
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app).await
}

/// Binds `127.0.0.1:port` (0 = any free port) and serves in the background; returns the
/// bound address.
pub async fn spawn(port: u16) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let address = listener.local_addr()?;
    tokio::spawn(serve(listener));
    Ok(address)
}

async fn not_allowed() -> StatusCode {
    StatusCode::METHOD_NOT_ALLOWED
}

async fn ok() -> StatusCode {
    StatusCode::OK
}

fn json_response(value: Value, session: Option<&str>) -> Response {
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response();
    if let Some(id) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        response.headers_mut().insert("mcp-session-id", id);
    }
    response
}

async fn handle(headers: HeaderMap, body: Bytes) -> Response {
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Some(id) = message.get("id").cloned() else {
        return StatusCode::ACCEPTED.into_response();
    };
    let stateless = headers
        .get("mcp-protocol-version")
        .is_some_and(|v| v == "2026-07-28");
    let session =
        (message["method"] == "initialize").then(|| uuid::Uuid::new_v4().simple().to_string());
    json_response(answer(&message, id, stateless), session.as_deref())
}

/// The answer to one request (`id` is its id); `stateless` for the 2026-07-28 revision.
pub fn answer(message: &Value, id: Value, stateless: bool) -> Value {
    let method = message["method"].as_str().unwrap_or_default();
    let mut result = match method {
        "initialize" => {
            let version = message["params"]["protocolVersion"]
                .as_str()
                .unwrap_or("2025-11-25")
                .to_string();
            json!({
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "bench-echo", "version": "1"}
            })
        }
        "server/discover" => json!({
            "supportedVersions": ["2026-07-28"],
            "capabilities": {"tools": {}},
            "ttlMs": 0,
            "cacheScope": "private",
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "bench-echo", "version": "1"}}
        }),
        "tools/list" => json!({"tools": [{
            "name": "echo",
            "description": "Echoes `message`.",
            "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}}
        }]}),
        "tools/call" => {
            let text = message["params"]["arguments"]["message"].clone();
            json!({"content": [{"type": "text", "text": text}]})
        }
        "ping" => json!({}),
        _ => {
            let error = json!({"code": -32601, "message": "Method not found"});
            return json!({"jsonrpc": "2.0", "id": id, "error": error});
        }
    };
    if stateless && method != "initialize" {
        result["resultType"] = json!("complete");
    }
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// Serves the echo tool over stdio (one JSON-RPC message per line), until stdin ends.
pub async fn serve_stdio() -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let Some(id) = message.get("id").cloned() else {
            continue;
        };
        let stateless =
            message["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28";
        let mut out = answer(&message, id, stateless).to_string();
        out.push('\n');
        stdout.write_all(out.as_bytes()).await?;
        stdout.flush().await?;
    }
    Ok(())
}
