//! The audit log at start-up (`audit:` in the configuration) and the `keygen` and
//! `audit-*` commands.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use mcpguard_audit::export::{Exporter, Format};
use mcpguard_audit::record::Record;
use mcpguard_audit::{
    AuditStore, AuditWriter, Durability, Filter, NoteSigner, NoteVerifier, SqliteStore,
    WriterConfig, keys, proof, verify,
};
use mcpguard_gateway::Config;
use mcpguard_gateway::config::{AuditBackend, AuditDurability, SyslogFormat, SyslogTransport};

use crate::cli::{
    AuditCheckProofArgs, AuditDbArgs, AuditExportArgs, AuditFilterArgs, AuditKeyArgs,
    AuditProofArgs, AuditQueryArgs, AuditVerifyArgs, ExportFormat, KeyAlgorithm, KeygenArgs,
    QueryFormat,
};

/// Opens the audit log and starts its writer, when `audit.enabled`.
pub fn start(config: &Config) -> anyhow::Result<Option<Arc<AuditWriter>>> {
    let audit = &config.audit;
    if !audit.enabled {
        tracing::warn!("the audit log is off (`audit.enabled: false`): calls are not recorded");
        return Ok(None);
    }
    let Some(key_path) = &audit.signing_key else {
        bail!("`audit.signing_key` is not set: run `mcpguard keygen` and point it at the key");
    };
    let key = keys::load_signing_key(key_path)?;
    let signer = NoteSigner::new(&audit.origin, key)
        .with_context(|| "`audit.origin` is the checkpoints' key name")?;
    if let Some(dir) = audit
        .path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && audit.backend == AuditBackend::Sqlite)
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}` for `audit.path`", dir.display()))?;
    }
    let durability = match audit.durability {
        AuditDurability::Full => Durability::Full,
        AuditDurability::Process => Durability::Process,
    };
    let store: Box<dyn AuditStore> = match audit.backend {
        AuditBackend::Sqlite => Box::new(SqliteStore::open(&audit.path, durability)?),
        AuditBackend::Postgres => Box::new(mcpguard_audit::PostgresStore::open(
            audit.postgres_url.as_deref().unwrap_or_default(),
            &audit.postgres_schema,
        )?),
    };
    let mut sinks: Vec<Box<dyn mcpguard_audit::writer::Sink>> = Vec::new();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "-".into());
    for (i, sink) in audit.syslog.iter().enumerate() {
        let config = mcpguard_audit::syslog::SyslogConfig {
            address: sink.address.clone(),
            transport: match sink.transport {
                SyslogTransport::Udp => mcpguard_audit::syslog::Transport::Udp,
                SyslogTransport::Tcp => mcpguard_audit::syslog::Transport::Tcp,
            },
            payload: match sink.format {
                SyslogFormat::Cef => mcpguard_audit::syslog::Payload::Cef,
                SyslogFormat::Json => mcpguard_audit::syslog::Payload::Json,
            },
            facility: sink.facility.code(),
            app_name: sink.app_name.clone(),
            hostname: hostname.clone(),
            queue: sink.queue,
        };
        let started = mcpguard_audit::syslog::SyslogSink::start(config, env!("CARGO_PKG_VERSION"))
            .with_context(|| format!("audit.syslog[{i}]"))?;
        tracing::info!(address = %sink.address, transport = ?sink.transport, format = ?sink.format, "audit records also go to syslog");
        sinks.push(Box::new(started));
    }
    let (writer, state) = AuditWriter::start_with_sinks(
        store,
        signer,
        WriterConfig {
            max_batch: audit.max_batch,
            checkpoint_interval: Duration::from_secs_f64(audit.checkpoint_interval_seconds),
            origin: audit.origin.clone(),
        },
        sinks,
    )?;
    tracing::info!(
        store = %writer.location(),
        records = state.size,
        checkpoint = state.checkpoint.unwrap_or(0),
        durability = ?audit.durability,
        fail_open = audit.fail_open,
        "audit log open"
    );
    Ok(Some(Arc::new(writer)))
}

/// The envelope maker of `envelopes:` (when on).
pub fn envelope_maker(
    config: &Config,
) -> anyhow::Result<Option<mcpguard_gateway::pipeline::envelope::EnvelopeMaker>> {
    use mcpguard_gateway::config::PayloadMode;
    use mcpguard_gateway::pipeline::envelope::{EnvelopeMaker, Keep};
    let envelopes = &config.envelopes;
    if !envelopes.enabled {
        return Ok(None);
    }
    let path = envelopes
        .signing_key
        .as_ref()
        .or(config.audit.signing_key.as_ref())
        .context(
            "`envelopes` needs a signing key: set `envelopes.signing_key` or `audit.signing_key`",
        )?;
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the envelope key `{}`", path.display()))?;
    let key = mcpguard_envelope::SigningKey::from_pem(&pem)
        .with_context(|| format!("`{}`", path.display()))?;
    let keep = match envelopes.payloads {
        PayloadMode::Drop => Keep::Nothing,
        PayloadMode::Plain => Keep::Plain,
        PayloadMode::Encrypt => {
            let path = envelopes
                .payload_key
                .as_ref()
                .context("`payloads: encrypt` needs `envelopes.payload_key`")?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the payload key `{}`", path.display()))?;
            Keep::Sealed(
                mcpguard_envelope::seal::PayloadKey::from_file_text(&text)
                    .with_context(|| format!("`{}`", path.display()))?,
            )
        }
    };
    tracing::info!(
        algorithm = key.algorithm().as_str(),
        key_id = %key.public().key_id(),
        payloads = ?envelopes.payloads,
        "executed tool calls get signed execution envelopes"
    );
    Ok(Some(EnvelopeMaker::new(key, keep)))
}

/// Writes `text` to a new file readable by its owner only; never overwrites.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create `{}` (keys are never overwritten: move the old one aside first)",
                path.display()
            )
        })?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// A new key file's text (payload or digest key): 32 random bytes, base64.
pub fn payload_key_text() -> String {
    use base64::Engine as _;
    let (bytes, _) = mcpguard_envelope::seal::PayloadKey::generate();
    format!(
        "{}\n",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// `mcpguard keygen`.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create `{}`", args.dir.display()))?;
    let private = args.dir.join(format!("{}.key", args.name));
    let public = args.dir.join(format!("{}.pub", args.name));
    let algorithm = match args.algorithm {
        KeyAlgorithm::Ed25519 => mcpguard_envelope::Algorithm::Ed25519,
        KeyAlgorithm::EcdsaP256 => mcpguard_envelope::Algorithm::EcdsaP256,
    };
    let key = mcpguard_envelope::SigningKey::generate(algorithm);
    write_private(&private, &key.to_pem()?)?;
    std::fs::write(&public, key.public().to_pem()?)
        .with_context(|| format!("cannot write `{}`", public.display()))?;
    println!(
        "wrote {} ({} private key, mode 0600)",
        private.display(),
        algorithm.as_str()
    );
    println!(
        "wrote {} (public key; give it to auditors)",
        public.display()
    );
    if args.payload_key {
        let path = args.dir.join("payload.key");
        write_private(&path, &payload_key_text())?;
        println!(
            "wrote {} (payload encryption key, mode 0600)",
            path.display()
        );
    }
    if args.digest_key {
        let path = args.dir.join("digest.key");
        write_private(&path, &payload_key_text())?;
        println!(
            "wrote {} (finding digest key for `taint.digest_key`, mode 0600)",
            path.display()
        );
    }
    if algorithm == mcpguard_envelope::Algorithm::Ed25519 {
        println!(
            "next: set `audit.signing_key: {}` and `audit.enabled: true`",
            private.display()
        );
    } else {
        println!(
            "next: set `envelopes.signing_key: {}` (audit checkpoints need an ed25519 key)",
            private.display()
        );
    }
    Ok(())
}

/// The log to read: `--db` (a SQLite path or a `postgres://` URL), else the
/// configuration's.
pub fn open(config: &Config, args: &AuditDbArgs) -> anyhow::Result<Box<dyn AuditStore>> {
    let schema = args
        .schema
        .as_deref()
        .unwrap_or(&config.audit.postgres_schema);
    let url = match &args.db {
        Some(db) => {
            let text = db.to_string_lossy();
            (text.starts_with("postgres://") || text.starts_with("postgresql://"))
                .then(|| text.into_owned())
        }
        None => (config.audit.backend == AuditBackend::Postgres)
            .then(|| config.audit.postgres_url.clone().unwrap_or_default()),
    };
    Ok(match url {
        Some(url) => Box::new(mcpguard_audit::PostgresStore::open_existing(&url, schema)?),
        None => Box::new(SqliteStore::open_read_only(
            args.db.as_deref().unwrap_or(&config.audit.path),
        )?),
    })
}

fn verifier(config: &Config, args: &AuditKeyArgs) -> anyhow::Result<NoteVerifier> {
    let path = args
        .public_key
        .clone()
        .or_else(|| config.audit.signing_key.clone())
        .context("no key to check signatures with: pass --public-key or set `audit.signing_key`")?;
    let key = keys::load_verifying_key(&path)?;
    let name = args.key_name.as_deref().unwrap_or(&config.audit.origin);
    Ok(NoteVerifier::new(name, key)?)
}

/// `mcpguard audit-verify`; Ok(false) when the log is not intact.
pub fn verify(config: &Config, args: &AuditVerifyArgs) -> anyhow::Result<bool> {
    let mut store = open(config, &args.db)?;
    let verifier = verifier(config, &args.key)?;
    let started = std::time::Instant::now();
    let report = verify::verify(store.as_mut(), &verifier, &mut |n| {
        eprintln!("  ... {n} records checked");
    })?;
    let intact = report.problems.is_empty();
    if args.json {
        let problems: Vec<serde_json::Value> = report
            .problems
            .iter()
            .map(
                |p| serde_json::json!({"kind": p.kind(), "seq": p.seq(), "message": p.to_string()}),
            )
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "intact": intact,
                "records": report.events,
                "root": hex(&report.root),
                "checkpoints_verified": report.checkpoints_verified,
                "newest_checkpoint": report.newest_checkpoint.as_ref().map(|c| c.size),
                "problems": problems,
                "verifier_key": verifier.encode(),
            })
        );
    } else if intact {
        println!(
            "ok: {} records, chain intact, root {}",
            report.events,
            hex(&report.root)
        );
        match &report.newest_checkpoint {
            Some(cp) => println!(
                "    {} signed checkpoint(s) verified; the newest covers records 1..{}{}",
                report.checkpoints_verified,
                cp.size,
                if cp.size < report.events {
                    format!(
                        " (records {}..{} await the next checkpoint)",
                        cp.size + 1,
                        report.events
                    )
                } else {
                    String::new()
                }
            ),
            None => println!("    no signed checkpoint yet: only the hash chain was checked"),
        }
        println!(
            "    checked in {:.2?} with key {}",
            started.elapsed(),
            verifier.encode()
        );
    } else {
        for p in &report.problems {
            println!("error: {p}");
        }
        println!(
            "the audit log at `{}` is NOT intact ({} record(s) read before the first problem)",
            store.location(),
            report.events
        );
    }
    Ok(intact)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `mcpguard audit-proof`.
pub fn proof(config: &Config, args: &AuditProofArgs) -> anyhow::Result<()> {
    let mut store = open(config, &args.db)?;
    let p = match (args.seq, args.consistency_from) {
        (_, Some(old)) => proof::consistency(store.as_mut(), old)?,
        (Some(seq), None) => proof::inclusion(store.as_mut(), seq)?,
        (None, None) => bail!("give a record number, or --consistency-from SIZE"),
    };
    println!("{}", serde_json::to_string_pretty(&p)?);
    Ok(())
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))
}

/// `mcpguard audit-check-proof`; Ok(false) when the proof does not hold.
pub fn check_proof(config: &Config, args: &AuditCheckProofArgs) -> anyhow::Result<bool> {
    let text = read_input(&args.proof)?;
    let p: proof::Proof = serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` is not a proof from `mcpguard audit-proof`",
            args.proof.display()
        )
    })?;
    let old = args.old_checkpoint.as_deref().map(read_input).transpose()?;
    let verifier = verifier(config, &args.key)?;
    match proof::check(&p, &verifier, old.as_deref()) {
        Ok(cp) => {
            match &p {
                proof::Proof::Inclusion { seq, .. } => println!(
                    "ok: record {seq} is in the log `{}` of {} records signed by {}",
                    cp.origin,
                    cp.size,
                    verifier.name()
                ),
                proof::Proof::Consistency { old_size, .. } => println!(
                    "ok: the log `{}` of {} records extends the one of {old_size} records{}",
                    cp.origin,
                    cp.size,
                    if old.is_some() {
                        " in the kept checkpoint"
                    } else {
                        " whose root the proof states (pass --old-checkpoint with a checkpoint you kept to check it)"
                    }
                ),
            }
            Ok(true)
        }
        Err(e) => {
            println!("error: {e}");
            Ok(false)
        }
    }
}

/// `mcpguard audit-checkpoint`.
pub fn checkpoint(config: &Config, args: &AuditDbArgs) -> anyhow::Result<()> {
    let mut store = open(config, args)?;
    match store.checkpoints()?.pop() {
        Some(cp) => {
            print!("{}", cp.note);
            Ok(())
        }
        None => bail!("the log has no signed checkpoint yet"),
    }
}

fn filter_of(args: &AuditFilterArgs) -> anyhow::Result<Filter> {
    let time = |flag: &str, value: &Option<String>| -> anyhow::Result<Option<i64>> {
        value
            .as_deref()
            .map(|v| {
                mcpguard_audit::event::parse_time(v).with_context(|| {
                    format!("--{flag} `{v}` is not a time: use RFC 3339 (2026-11-24T10:00:00Z) or a date (2026-11-24)")
                })
            })
            .transpose()
    };
    if let Some(a) = &args.action
        && mcpguard_audit::Outcome::parse(a).is_none()
        && !["allow", "deny", "sandbox", "require_approval"].contains(&a.as_str())
    {
        bail!("--action `{a}` is neither an outcome nor a policy action (see --help)");
    }
    Ok(Filter {
        since_us: time("since", &args.since)?,
        until_us: time("until", &args.until)?,
        identity: args.identity.clone(),
        tool: args.tool.clone(),
        server: args.server.clone(),
        action: args.action.clone(),
        rule: args.rule.clone(),
        owasp_asi: args.asi.clone(),
        label: args.label.clone(),
        session: args.session.clone(),
        limit: None,
        newest_first: false,
    })
}

/// `mcpguard audit-query`.
pub fn query(config: &Config, args: &AuditQueryArgs) -> anyhow::Result<()> {
    let mut store = open(config, &args.db)?;
    let mut filter = filter_of(&args.filter)?;
    filter.newest_first = !args.oldest_first;
    filter.limit = (args.limit > 0).then_some(args.limit);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.format {
        QueryFormat::Json => {
            mcpguard_audit::query(store.as_mut(), &filter, &mut |data, _| {
                writeln!(out, "{data}").is_ok()
            })?;
        }
        QueryFormat::Table => {
            let mut rows: Vec<[String; 8]> = Vec::new();
            mcpguard_audit::query(store.as_mut(), &filter, &mut |_, r: &Record| {
                let e = &r.event;
                rows.push([
                    r.seq.to_string(),
                    e.time.get(..19).unwrap_or(&e.time).replace('T', " "),
                    e.method.clone(),
                    e.tool.clone().unwrap_or_default(),
                    e.outcome.as_str().to_string(),
                    e.rule().unwrap_or("").to_string(),
                    e.labels.join(","),
                    e.decision
                        .as_ref()
                        .map(|d| d.reason.chars().take(60).collect())
                        .unwrap_or_default(),
                ]);
                true
            })?;
            let header = [
                "SEQ",
                "TIME (UTC)",
                "METHOD",
                "TOOL",
                "OUTCOME",
                "RULE",
                "LABELS",
                "REASON",
            ];
            crate::table::write_table(&mut out, header, &rows)?;
            if rows.is_empty() {
                eprintln!("no matching events");
            }
        }
    }
    Ok(())
}

/// `mcpguard audit-export`.
pub fn export(config: &Config, args: &AuditExportArgs) -> anyhow::Result<()> {
    let mut store = open(config, &args.db)?;
    let filter = filter_of(&args.filter)?;
    let format = match args.format {
        ExportFormat::Jsonl => Format::Jsonl,
        ExportFormat::Csv => Format::Csv,
        ExportFormat::Cef => Format::Cef,
        ExportFormat::Ocsf => Format::Ocsf,
    };
    let out: Box<dyn std::io::Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create `{}`", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut exporter = Exporter::new(format, out, env!("CARGO_PKG_VERSION"))?;
    let mut failure = None;
    let count = mcpguard_audit::query(store.as_mut(), &filter, &mut |data, record| match exporter
        .write(data, record)
    {
        Ok(()) => true,
        Err(e) => {
            failure = Some(e);
            false
        }
    })?;
    if let Some(e) = failure {
        return Err(e).context("cannot write the export");
    }
    exporter.finish()?;
    if let Some(path) = &args.output {
        eprintln!("exported {count} events to {}", path.display());
    }
    Ok(())
}
