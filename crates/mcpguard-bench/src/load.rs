//! A load generator: N concurrent clients calling `tools/call echo` over Streamable HTTP
//! for a fixed time, each waiting for its answer before the next call.

use std::time::{Duration, Instant};

use serde_json::json;

/// Which protocol era the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// `initialize` once per client, then calls with `Mcp-Session-Id`.
    Handshake,
    /// 2026-07-28: every call carries the `_meta` envelope and `Mcp-*` headers.
    Stateless,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Calls answered successfully.
    pub calls: usize,
    /// Calls that failed.
    pub errors: usize,
    /// Wall time of the measured part.
    pub elapsed: Duration,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
}

impl Report {
    /// Calls per second.
    pub fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

/// One client: a session (handshake era) and a loop of calls. With several URLs (comma
/// separated: replicas of one gateway), the session opens on the first and the calls
/// take the URLs in turn.
pub struct Client {
    http: reqwest::Client,
    urls: Vec<String>,
    turn: std::sync::atomic::AtomicUsize,
    era: Era,
    session: Option<String>,
}

impl Client {
    /// Connects (and for the handshake era, initializes).
    pub async fn connect(url: &str, era: Era) -> Result<Client, String> {
        // reqwest needs a TLS crypto provider even for plain http.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| e.to_string())?;
        let mut client = Client {
            http,
            urls: url.split(',').map(str::to_string).collect(),
            turn: std::sync::atomic::AtomicUsize::new(0),
            era,
            session: None,
        };
        if era == Era::Handshake {
            let body = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"loadgen","version":"1"}}});
            let response = client
                .http
                .post(&client.urls[0])
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let session = response
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or("no session id")?;
            let _ = response.bytes().await;
            client.session = Some(session);
            let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
            let _ = client
                .post(note.to_string(), "notifications/initialized")
                .await?;
        }
        Ok(client)
    }

    async fn post(&self, body: String, method: &str) -> Result<bytes::Bytes, String> {
        let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut request = self
            .http
            .post(&self.urls[turn % self.urls.len()])
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        match self.era {
            Era::Handshake => {
                if let Some(session) = &self.session {
                    request = request
                        .header("mcp-session-id", session)
                        .header("mcp-protocol-version", "2025-11-25");
                }
            }
            Era::Stateless => {
                request = request
                    .header("mcp-protocol-version", "2026-07-28")
                    .header("mcp-method", method);
                if method == "tools/call" {
                    request = request.header("mcp-name", "echo");
                }
            }
        }
        let response = request.body(body).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("http {}", response.status()));
        }
        response.bytes().await.map_err(|e| e.to_string())
    }

    /// One `tools/call echo`; true when the answer echoes the message.
    pub async fn call(&self, id: u64) -> Result<(), String> {
        let message = format!("hello {id}");
        let mut params = json!({"name": "echo", "arguments": {"message": message}});
        if self.era == Era::Stateless {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "loadgen", "version": "1"}
            });
        }
        let body =
            json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":params}).to_string();
        let answer = self.post(body, "tools/call").await?;
        if memchr_find(&answer, message.as_bytes()) {
            Ok(())
        } else {
            Err(format!(
                "unexpected answer: {}",
                String::from_utf8_lossy(&answer)
            ))
        }
    }
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs `clients` concurrent clients against `url` for `warmup` then `duration`.
pub async fn run(
    url: &str,
    era: Era,
    clients: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Report, String> {
    let mut connected = Vec::with_capacity(clients);
    for _ in 0..clients {
        connected.push(Client::connect(url, era).await?);
    }
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let tasks = connected.into_iter().enumerate().map(|(n, client)| {
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut id = (n as u64) << 32;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                id += 1;
                let result = client.call(id).await;
                let took = now.elapsed();
                if now >= measure_from {
                    match result {
                        Ok(()) => latencies.push(took.as_nanos() as u64),
                        Err(_) => errors += 1,
                    }
                }
            }
            (latencies, errors)
        })
    });
    let mut all = Vec::new();
    let mut errors = 0;
    for result in futures::future::join_all(tasks).await {
        let (latencies, e) = result.map_err(|e| e.to_string())?;
        all.extend(latencies);
        errors += e;
    }
    all.sort_unstable();
    Ok(Report {
        calls: all.len(),
        errors,
        elapsed: duration,
        p50_us: percentile(&all, 50.0),
        p99_us: percentile(&all, 99.0),
    })
}
