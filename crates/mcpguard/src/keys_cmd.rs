//! `mcpguard keys create|list|revoke`: API keys for callers of the HTTP endpoint. The
//! keys file keeps only each key's SHA-256; a key is shown once, when it is made.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use mcpguard_gateway::Config;
use mcpguard_gateway::auth::api_keys::{self, KeyRecord, KeysFile};
use rand::RngCore as _;

use crate::cli::{KeysCreateArgs, KeysRevokeArgs};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The keys file: `--file`, else `auth.api_keys_file`.
fn keys_path(config: &Config, file: Option<&Path>) -> anyhow::Result<PathBuf> {
    file.map(Path::to_path_buf)
        .or_else(|| config.auth.api_keys_file.clone())
        .context("no keys file: pass --file PATH or set `auth.api_keys_file` in the configuration")
}

fn read(path: &Path) -> anyhow::Result<KeysFile> {
    if !path.exists() {
        return Ok(KeysFile {
            version: 1,
            keys: Vec::new(),
        });
    }
    mcpguard_gateway::auth::read_keys_file(path).map_err(anyhow::Error::msg)
}

/// Writes the file whole, through a temporary file and a rename (a gateway reloading it
/// never sees half a file), mode 0600.
fn write(path: &Path, file: &KeysFile) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let text = format!(
        "# MCPGuard API keys (written by `mcpguard keys`): SHA-256 digests, never the keys.\n{}",
        serde_saphyr::to_string(file).context("serializing the keys file")?
    );
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let temporary = path.with_extension("tmp");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("writing {}", temporary.display()))?;
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// `keys create`.
pub fn create(config: &Config, args: &KeysCreateArgs) -> anyhow::Result<()> {
    if args.identity.trim().is_empty() {
        bail!("--identity must name someone");
    }
    let mut random = [0u8; 38];
    rand::rng().fill_bytes(&mut random);
    let created = now();
    let expires = args
        .expires_in_days
        .map(|days| created + u64::from(days) * 86_400);
    let new = api_keys::generate(
        &random,
        args.identity.trim(),
        args.role.clone(),
        args.description.clone(),
        created,
        expires,
    );
    if args.print_record {
        // For `auth.api_keys` in the configuration instead of a keys file.
        eprintln!("add this record under `auth.api_keys`:");
        print!(
            "{}",
            serde_saphyr::to_string(&vec![new.record.clone()]).context("serializing the record")?
        );
    } else {
        let path = keys_path(config, args.file.as_deref())?;
        let mut file = read(&path)?;
        file.keys.push(new.record.clone());
        write(&path, &file)?;
        eprintln!(
            "created key {} for identity `{}` in {} (a running gateway picks it up within a second)",
            new.record.id,
            new.record.identity,
            path.display()
        );
    }
    eprintln!("the key is shown only now; give it to the agent as `Authorization: Bearer <key>`:");
    println!("{}", new.key);
    Ok(())
}

fn format_time(seconds: u64) -> String {
    mcpguard_audit::event::format_time(
        i64::try_from(seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000),
    )
    .chars()
    .take(19)
    .collect::<String>()
        + "Z"
}

fn state(record: &KeyRecord, now: u64) -> &'static str {
    if record.revoked.is_some() {
        "revoked"
    } else if record.expires.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    }
}

/// `keys list`.
pub fn list(config: &Config, file: Option<&Path>) -> anyhow::Result<()> {
    let path = keys_path(config, file)?;
    let keys = read(&path)?.keys;
    let now = now();
    let rows: Vec<[String; 6]> = keys
        .iter()
        .map(|k| {
            [
                k.id.clone(),
                k.identity.clone(),
                k.roles.join(","),
                format_time(k.created),
                k.expires.map_or("never".into(), format_time),
                state(k, now).to_string(),
            ]
        })
        .collect();
    let mut out = std::io::stdout().lock();
    crate::table::write_table(
        &mut out,
        ["ID", "IDENTITY", "ROLES", "CREATED", "EXPIRES", "STATE"],
        &rows,
    )?;
    Ok(())
}

/// `keys revoke`.
pub fn revoke(config: &Config, args: &KeysRevokeArgs) -> anyhow::Result<()> {
    let path = keys_path(config, args.file.as_deref())?;
    let mut file = read(&path)?;
    let Some(record) = file.keys.iter_mut().find(|k| k.id == args.id) else {
        bail!(
            "no key `{}` in {} (`mcpguard keys list` shows the ids)",
            args.id,
            path.display()
        );
    };
    if record.revoked.is_some() {
        eprintln!("key {} was already revoked", args.id);
        return Ok(());
    }
    record.revoked = Some(now());
    let identity = record.identity.clone();
    write(&path, &file)?;
    eprintln!(
        "revoked key {} of `{identity}` (a running gateway refuses it within a second)",
        args.id
    );
    Ok(())
}
