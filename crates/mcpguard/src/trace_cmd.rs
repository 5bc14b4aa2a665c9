//! `trace-list`, `trace-export`, `trace-verify` and `replay`: execution envelopes kept
//! beside the audit log.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mcpguard_audit::{AuditStore, Payloads, Trace};
use mcpguard_envelope::canonical::{canonicalize, sha256_hex};
use mcpguard_envelope::seal::PayloadKey;
use mcpguard_envelope::statement::{REQUEST, RESULT};
use mcpguard_envelope::{Bundle, PublicKey, Statement};
use mcpguard_gateway::Config;
use serde_json::{Value, json};

use crate::audit_cmd::open;
use crate::cli::{TraceArgs, TraceListArgs, TraceVerifyArgs};

/// The public key that checks envelopes: `--public-key`, else the configured signing key.
fn public_key(config: &Config, explicit: Option<&Path>) -> anyhow::Result<PublicKey> {
    let path = explicit
        .map(Path::to_path_buf)
        .or_else(|| config.envelopes.signing_key.clone())
        .or_else(|| config.audit.signing_key.clone())
        .context(
            "no key to check envelopes with: pass --public-key or set `envelopes.signing_key`",
        )?;
    let pem = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    PublicKey::from_pem(&pem).with_context(|| format!("`{}`", path.display()))
}

fn trace_of(store: &mut dyn AuditStore, id: &str) -> anyhow::Result<Trace> {
    store.trace(id)?.with_context(|| {
        format!(
            "no trace `{id}` in the audit log at {}; see `mcpguard trace-list`",
            store.location()
        )
    })
}

/// `mcpguard trace-list`.
pub fn list(config: &Config, args: &TraceListArgs) -> anyhow::Result<()> {
    let mut store = open(config, &args.db)?;
    let traces = store.traces(args.tool.as_deref(), args.limit)?;
    if traces.is_empty() {
        eprintln!("no traces");
        return Ok(());
    }
    let rows: Vec<[String; 6]> = traces
        .into_iter()
        .map(|t| {
            let time = mcpguard_audit::event::format_time(t.time_unix_us);
            [
                t.id,
                t.seq.to_string(),
                time.get(..19).unwrap_or(&time).replace('T', " "),
                t.tool.unwrap_or_default(),
                t.upstream.unwrap_or_default(),
                t.payloads.mode().to_string(),
            ]
        })
        .collect();
    crate::table::write_table(
        &mut std::io::stdout().lock(),
        [
            "ENVELOPE",
            "SEQ",
            "TIME (UTC)",
            "TOOL",
            "UPSTREAM",
            "PAYLOADS",
        ],
        &rows,
    )?;
    Ok(())
}

/// `mcpguard trace-export`.
pub fn export(config: &Config, args: &TraceArgs) -> anyhow::Result<()> {
    let mut store = open(config, &args.db)?;
    println!("{}", trace_of(store.as_mut(), &args.id)?.bundle);
    Ok(())
}

/// The kept request and result of a trace, opened with the payload key when sealed.
fn payloads(config: &Config, trace: &Trace) -> anyhow::Result<Option<(String, String)>> {
    let (request, result) = match &trace.payloads {
        Payloads::Dropped => return Ok(None),
        Payloads::Plain { request, result } => (request.clone(), result.clone()),
        Payloads::Sealed { request, result } => {
            let path = config.envelopes.payload_key.as_ref().context(
                "the payloads are encrypted: set `envelopes.payload_key` to the key that sealed them",
            )?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            let key = PayloadKey::from_file_text(&text)?;
            (
                key.open(&format!("{}/request", trace.id), request)?,
                key.open(&format!("{}/result", trace.id), result)?,
            )
        }
    };
    Ok(Some((
        String::from_utf8(request).context("the kept request is not UTF-8")?,
        String::from_utf8(result).context("the kept result is not UTF-8")?,
    )))
}

/// `mcpguard trace-verify`; Ok(false) when something does not hold.
pub fn verify(config: &Config, args: &TraceVerifyArgs) -> anyhow::Result<bool> {
    let key = public_key(config, args.public_key.as_deref())?;
    let from_file = Path::new(&args.target).is_file();
    let (bundle_json, trace) = if from_file {
        (std::fs::read_to_string(&args.target)?, None)
    } else {
        let mut store = open(config, &args.db)?;
        let trace = trace_of(store.as_mut(), &args.target)?;
        // The trace must belong to the tamper-evident log: its audit record names it.
        let mut linked = false;
        store.scan(trace.seq, &mut |row| {
            linked = row.seq == trace.seq
                && row
                    .data
                    .contains(&format!("\"envelope_id\":\"{}\"", trace.id));
            false
        })?;
        if !linked {
            println!(
                "error: audit record {} does not name envelope {} (the trace was added or moved)",
                trace.seq, trace.id
            );
            return Ok(false);
        }
        (trace.bundle.clone(), Some((trace, store)))
    };
    let statement: Statement = match Bundle::from_json(&bundle_json).and_then(|b| b.verify(&key)) {
        Ok(s) => s,
        Err(e) => {
            println!("error: {e}");
            return Ok(false);
        }
    };
    let p = &statement.predicate;
    println!(
        "ok: signature by key {} verifies; envelope {} of `{}` on upstream `{}` at {} ({} by {})",
        key.key_id(),
        p.envelope_id,
        p.tool,
        p.upstream.name,
        p.timings.started,
        p.policy.action,
        p.policy.rule.as_deref().unwrap_or("the default action"),
    );
    if let Some((trace, _store)) = trace {
        if p.envelope_id != trace.id {
            println!(
                "error: the statement is for envelope {}, stored as {}",
                p.envelope_id, trace.id
            );
            return Ok(false);
        }
        match payloads(config, &trace)? {
            None => println!(
                "    payloads were not kept: only the signature and the audit link were checked"
            ),
            Some((request, result)) => {
                for (name, text) in [(REQUEST, &request), (RESULT, &result)] {
                    let have = sha256_hex(text.as_bytes());
                    if statement.digest_of(name) != Some(have.as_str()) {
                        println!(
                            "error: the kept {name} does not match the signed digest (it was altered)"
                        );
                        return Ok(false);
                    }
                }
                println!("    the kept request and result match the signed digests");
            }
        }
        println!("    linked to audit record {}", trace.seq);
    }
    Ok(true)
}

/// Where the configuration is, for the replaying child.
fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("MCPGUARD_CONFIG").map(PathBuf::from))
        .or_else(|| {
            let default = PathBuf::from(".mcpguard/config.yaml");
            default.exists().then_some(default)
        })
}

/// A line-delimited JSON-RPC conversation with `mcpguard stdio`.
struct Child {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Child {
    fn start(config: Option<&Path>) -> anyhow::Result<Child> {
        let mut command =
            Command::new(std::env::current_exe().context("cannot find mcpguard itself")?);
        command.arg("stdio");
        if let Some(path) = config {
            command.arg("--config").arg(path);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start `mcpguard stdio` for the replay")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Child {
            child,
            stdin,
            lines,
        })
    }

    fn send(&mut self, message: &Value) -> anyhow::Result<()> {
        writeln!(self.stdin, "{message}").context("the replaying gateway stopped")?;
        Ok(())
    }

    /// The answer to request `id`; other messages are skipped (requests from the server
    /// are refused: a replay has no user to ask).
    fn answer(&mut self, id: u64, deadline: Instant) -> anyhow::Result<Value> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .map_err(|_| anyhow::anyhow!("no answer from the replaying gateway in time"))?;
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if message.get("method").is_some() {
                if let Some(request_id) = message.get("id") {
                    self.send(&json!({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "a replay cannot answer server requests"}}))?;
                }
                continue;
            }
            if message.get("id") == Some(&json!(id)) {
                return Ok(message);
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mcpguard replay`: 0 identical, 1 drift, 2 cannot replay.
pub fn replay(
    config: &Config,
    config_file: Option<&Path>,
    args: &TraceArgs,
) -> anyhow::Result<i32> {
    let mut store = open(config, &args.db)?;
    let trace = trace_of(store.as_mut(), &args.id)?;
    let key = public_key(config, None)?;
    let statement = Bundle::from_json(&trace.bundle)
        .and_then(|b| b.verify(&key))
        .context("the trace's envelope does not verify; run `mcpguard trace-verify`")?;
    let Some((request, old_result)) = payloads(config, &trace)? else {
        println!(
            "cannot replay {}: its payloads were not kept (`envelopes.payloads: drop`); the envelope proves what ran but holds no arguments",
            trace.id
        );
        return Ok(2);
    };
    if statement.digest_of(REQUEST) != Some(sha256_hex(request.as_bytes()).as_str()) {
        bail!("the kept request does not match the signed digest; run `mcpguard trace-verify`");
    }
    let request: Value = serde_json::from_str(&request)?;
    let config_file = config_path(config_file);
    let mut child = Child::start(config_file.as_deref())?;
    let deadline = Instant::now() + Duration::from_secs(120);
    child.send(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "mcpguard-replay", "version": env!("CARGO_PKG_VERSION")}}}),
    )?;
    let init = child.answer(1, deadline)?;
    if init.get("error").is_some() {
        bail!(
            "the replaying gateway refused to start a session: {}",
            init["error"]
        );
    }
    child.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
    child.send(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": request["params"]}),
    )?;
    let answer = child.answer(2, deadline)?;
    let new_result = match answer.get("result") {
        Some(result) => result.to_string(),
        None => json!({"error": answer.get("error").cloned().unwrap_or(Value::Null)}).to_string(),
    };
    let new_result = canonicalize(&new_result)?;
    let digest = sha256_hex(new_result.as_bytes());
    println!(
        "replayed {} (`{}` on `{}`, first run {})",
        trace.id,
        statement.predicate.tool,
        statement.predicate.upstream.name,
        statement.predicate.timings.started
    );
    if statement.digest_of(RESULT) == Some(digest.as_str()) {
        println!("identical: the result digest sha256:{digest} matches the signed one");
        return Ok(0);
    }
    println!(
        "drift: the result differs (signed sha256:{}, now sha256:{digest})",
        statement.digest_of(RESULT).unwrap_or("?")
    );
    let old: Value = serde_json::from_str(&old_result)?;
    let new: Value = serde_json::from_str(&new_result)?;
    for change in mcpguard_envelope::diff::diff(&old, &new) {
        println!("  {change}");
    }
    Ok(1)
}
