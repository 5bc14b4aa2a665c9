//! The shared store for several gateway replicas: PostgreSQL. One head row, locked with
//! `SELECT … FOR UPDATE` inside each append transaction, serialises the replicas'
//! commits, so the log stays one chain and one tree with no gaps or forks however many
//! replicas write. Triggers refuse UPDATE, DELETE and TRUNCATE of events and
//! checkpoints.

use postgres::{Client, NoTls};

use crate::AuditError;
use crate::record::{self, GENESIS, Head};
use crate::store::{Appended, AuditStore, Entry, Filter, StoredCheckpoint, StoredRow, Trace};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS audit_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_head(id INT PRIMARY KEY CHECK (id = 1), size BIGINT NOT NULL, last_hash BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS audit_events(
    seq BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL,
    data TEXT NOT NULL,
    time_us BIGINT NOT NULL,
    session TEXT,
    identity TEXT,
    tool TEXT,
    server TEXT,
    outcome TEXT NOT NULL,
    rule TEXT
);
CREATE TABLE IF NOT EXISTS audit_checkpoints(size BIGINT PRIMARY KEY, note TEXT NOT NULL, time_us BIGINT NOT NULL);
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only: % is refused', TG_OP; END $$;
CREATE OR REPLACE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE OR REPLACE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE OR REPLACE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE OR REPLACE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TABLE IF NOT EXISTS audit_traces(
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    time_us BIGINT NOT NULL,
    tool TEXT,
    server TEXT,
    bundle TEXT NOT NULL,
    payloads TEXT NOT NULL,
    request BYTEA,
    result BYTEA
);
CREATE OR REPLACE TRIGGER audit_traces_append_only BEFORE UPDATE OR DELETE ON audit_traces
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE OR REPLACE TRIGGER audit_traces_no_truncate BEFORE TRUNCATE ON audit_traces
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
INSERT INTO audit_meta(key, value) VALUES ('schema', '1') ON CONFLICT DO NOTHING;
"#;

/// The PostgreSQL store.
pub struct PostgresStore {
    client: Client,
    location: String,
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

impl PostgresStore {
    /// Checks `schema` and connects; the location names the server without a password.
    fn connect(url: &str, schema: &str) -> Result<(Client, String), AuditError> {
        let location = format!("{} (schema {schema})", redact_url(url));
        if !is_identifier(schema) {
            return Err(AuditError::Store {
                location,
                detail: format!("schema `{schema}` must be lowercase letters, digits and `_`"),
            });
        }
        match Client::connect(url, NoTls) {
            Ok(client) => Ok((client, location)),
            Err(e) => Err(AuditError::Store {
                location,
                detail: format!(
                    "cannot connect ({e}); check `audit.postgres_url` and that the server is up"
                ),
            }),
        }
    }

    /// Connects to `url` (`postgres://user@host:port/db`), uses (and creates) `schema`,
    /// and creates the tables when missing. Safe when several replicas start at once.
    pub fn open(url: &str, schema: &str) -> Result<PostgresStore, AuditError> {
        let (mut client, location) = PostgresStore::connect(url, schema)?;
        let fail = |detail: String| AuditError::Store {
            location: location.clone(),
            detail,
        };
        let mut tx = client.transaction().map_err(|e| fail(pg_detail(&e)))?;
        // One replica creates the schema at a time.
        tx.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock(7320194501); CREATE SCHEMA IF NOT EXISTS {schema}; SET LOCAL search_path TO {schema}; {SCHEMA} INSERT INTO audit_head(id, size, last_hash) VALUES (1, 0, '\\x{}') ON CONFLICT DO NOTHING;",
            hex::encode(GENESIS)
        ))
        .map_err(|e| fail(pg_detail(&e)))?;
        tx.commit().map_err(|e| fail(pg_detail(&e)))?;
        PostgresStore::finish(client, location, schema)
    }

    /// Connects to an existing log without creating anything (for verify, query and
    /// export).
    pub fn open_existing(url: &str, schema: &str) -> Result<PostgresStore, AuditError> {
        let (mut client, location) = PostgresStore::connect(url, schema)?;
        let exists: bool = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("{schema}.audit_meta")],
            )
            .map_err(|e| AuditError::Store {
                location: location.clone(),
                detail: pg_detail(&e),
            })?
            .get(0);
        if !exists {
            return Err(AuditError::Store {
                location,
                detail: "no audit log here (no `audit_meta` table); check the URL and --schema"
                    .into(),
            });
        }
        PostgresStore::finish(client, location, schema)
    }

    /// Points the connection at `schema` and checks the schema version.
    fn finish(
        mut client: Client,
        location: String,
        schema: &str,
    ) -> Result<PostgresStore, AuditError> {
        client
            .batch_execute(&format!("SET search_path TO {schema}"))
            .map_err(|e| AuditError::Store {
                location: location.clone(),
                detail: pg_detail(&e),
            })?;
        let mut store = PostgresStore { client, location };
        store.check_schema()?;
        Ok(store)
    }

    fn check_schema(&mut self) -> Result<(), AuditError> {
        let row = self
            .client
            .query_opt("SELECT value FROM audit_meta WHERE key = 'schema'", &[])
            .map_err(|e| self.error(&e))?;
        match row.map(|r| r.get::<_, String>(0)).as_deref() {
            Some("1") => Ok(()),
            other => Err(AuditError::Store {
                location: self.location.clone(),
                detail: format!(
                    "audit schema version {other:?} is not one this mcpguard reads (1)"
                ),
            }),
        }
    }

    fn error(&self, e: &postgres::Error) -> AuditError {
        AuditError::Store {
            location: self.location.clone(),
            detail: pg_detail(e),
        }
    }
}

/// The server's message when there is one (it says what the constraint or trigger was).
fn pg_detail(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Where a connection string points, without its password (in whatever form the string
/// carried it: `user:password@`, `?password=` or `password=` in key-value form).
pub fn redact_url(url: &str) -> String {
    use std::str::FromStr as _;
    let Ok(config) = postgres::Config::from_str(url) else {
        return "<a PostgreSQL connection string that does not parse>".into();
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
            postgres::config::Host::Unix(p) => format!("{}:{port}", p.display()),
        })
        .collect();
    format!(
        "postgres://{}{}/{}",
        config
            .get_user()
            .map(|u| format!("{u}@"))
            .unwrap_or_default(),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// A side column as PostgreSQL TEXT takes it: NUL replaced (the record itself keeps the
/// exact text, JSON-escaped), so one odd tool name cannot fail a whole batch.
fn text_column(value: &Option<String>) -> Option<String> {
    value.as_ref().map(|v| v.replace('\0', "\u{fffd}"))
}

const TRACE_COLUMNS: &str = "id, seq, time_us, tool, server, bundle, payloads, request, result";

fn trace_of(r: &postgres::Row) -> Trace {
    let mode: String = r.get(6);
    Trace {
        id: r.get(0),
        seq: r.get::<_, i64>(1) as u64,
        time_unix_us: r.get(2),
        tool: r.get(3),
        upstream: r.get(4),
        bundle: r.get(5),
        payloads: crate::store::payloads_of(&mode, r.get(7), r.get(8)),
    }
}

fn row_of(r: &postgres::Row) -> StoredRow {
    StoredRow {
        seq: r.get::<_, i64>(0) as u64,
        hash: r.get(1),
        data: r.get(2),
    }
}

impl AuditStore for PostgresStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn commits_inline(&self) -> bool {
        false
    }

    fn head(&mut self) -> Result<Head, AuditError> {
        let row = self
            .client
            .query_one("SELECT size, last_hash FROM audit_head WHERE id = 1", &[])
            .map_err(|e| self.error(&e))?;
        let size = row.get::<_, i64>(0) as u64;
        let last: Vec<u8> = row.get(1);
        Ok(Head {
            size,
            last: last.try_into().map_err(|_| AuditError::Record {
                seq: size,
                detail: "the head's hash is not 32 bytes; run `mcpguard audit-verify`".into(),
            })?,
        })
    }

    fn append(&mut self, entries: &[Entry]) -> Result<Vec<Appended>, AuditError> {
        let location = self.location.clone();
        let err = |e: postgres::Error| AuditError::Store {
            location: location.clone(),
            detail: pg_detail(&e),
        };
        let mut tx = self.client.transaction().map_err(err)?;
        let head = tx
            .query_one(
                "SELECT size, last_hash FROM audit_head WHERE id = 1 FOR UPDATE",
                &[],
            )
            .map_err(err)?;
        let mut size = head.get::<_, i64>(0) as u64;
        let last: Vec<u8> = head.get(1);
        let mut last: [u8; 32] = last.try_into().map_err(|_| AuditError::Record {
            seq: size,
            detail: "the head's hash is not 32 bytes".into(),
        })?;
        let insert = tx
            .prepare("INSERT INTO audit_events(seq, hash, data, time_us, session, identity, tool, server, outcome, rule) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
            .map_err(err)?;
        let insert_trace = tx
            .prepare("INSERT INTO audit_traces(id, seq, time_us, tool, server, bundle, payloads, request, result) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .map_err(err)?;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let event = &entry.event;
            let seq = size + 1;
            let (data, hash) =
                record::encode(seq, &last, event).map_err(|e| AuditError::Record {
                    seq,
                    detail: e.to_string(),
                })?;
            tx.execute(
                &insert,
                &[
                    &(seq as i64),
                    &&hash[..],
                    &data,
                    &event.time_unix_us,
                    &text_column(&event.session),
                    &text_column(&event.identity),
                    &text_column(&event.tool),
                    &text_column(&event.upstream),
                    &event.outcome.as_str(),
                    &event.rule(),
                ],
            )
            .map_err(err)?;
            if let Some(t) = &entry.trace {
                let (request, result) = crate::store::trace_payloads(&t.payloads);
                tx.execute(
                    &insert_trace,
                    &[
                        &t.id,
                        &(seq as i64),
                        &t.time_unix_us,
                        &text_column(&t.tool),
                        &text_column(&t.upstream),
                        &t.bundle,
                        &t.payloads.mode(),
                        &request,
                        &result,
                    ],
                )
                .map_err(err)?;
            }
            size = seq;
            last = hash;
            out.push(Appended { seq, hash, data });
        }
        tx.execute(
            "UPDATE audit_head SET size = $1, last_hash = $2 WHERE id = 1",
            &[&(size as i64), &&last[..]],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(out)
    }

    fn scan(
        &mut self,
        from: u64,
        each: &mut dyn FnMut(StoredRow) -> bool,
    ) -> Result<(), AuditError> {
        // Pages of rows, so a huge log is not read into memory at once.
        let mut next = from as i64;
        loop {
            let rows = self
                .client
                .query(
                    "SELECT seq, hash, data FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT 10000",
                    &[&next],
                )
                .map_err(|e| self.error(&e))?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            next = last.get::<_, i64>(0) + 1;
            for r in &rows {
                if !each(row_of(r)) {
                    return Ok(());
                }
            }
        }
    }

    fn trace(&mut self, id: &str) -> Result<Option<Trace>, AuditError> {
        let row = self
            .client
            .query_opt(
                &format!("SELECT {TRACE_COLUMNS} FROM audit_traces WHERE id = $1"),
                &[&id],
            )
            .map_err(|e| self.error(&e))?;
        Ok(row.as_ref().map(trace_of))
    }

    fn traces(&mut self, tool: Option<&str>, limit: usize) -> Result<Vec<Trace>, AuditError> {
        let rows = self
            .client
            .query(
                &format!("SELECT {TRACE_COLUMNS} FROM audit_traces WHERE $1::TEXT IS NULL OR tool = $1 ORDER BY seq DESC LIMIT $2"),
                &[&tool, &(limit as i64)],
            )
            .map_err(|e| self.error(&e))?;
        Ok(rows.iter().map(trace_of).collect())
    }

    fn add_checkpoint(
        &mut self,
        size: u64,
        note: &str,
        time_unix_us: i64,
    ) -> Result<(), AuditError> {
        self.client
            .execute(
                "INSERT INTO audit_checkpoints(size, note, time_us) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&(size as i64), &note, &time_unix_us],
            )
            .map_err(|e| self.error(&e))?;
        Ok(())
    }

    fn checkpoints(&mut self) -> Result<Vec<StoredCheckpoint>, AuditError> {
        let rows = self
            .client
            .query(
                "SELECT size, note, time_us FROM audit_checkpoints ORDER BY size",
                &[],
            )
            .map_err(|e| self.error(&e))?;
        Ok(rows
            .iter()
            .map(|r| StoredCheckpoint {
                size: r.get::<_, i64>(0) as u64,
                note: r.get(1),
                time_unix_us: r.get(2),
            })
            .collect())
    }

    fn candidates(
        &mut self,
        filter: &Filter,
        each: &mut dyn FnMut(StoredRow) -> bool,
    ) -> Result<(), AuditError> {
        // As in SQLite: every filter is checked on the hash-covered record.
        let sql = if filter.newest_first {
            "SELECT seq, hash, data FROM audit_events ORDER BY seq DESC"
        } else {
            "SELECT seq, hash, data FROM audit_events ORDER BY seq"
        };
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = Vec::new();
        let location = self.location.clone();
        let err = |e: postgres::Error| AuditError::Store {
            location: location.clone(),
            detail: pg_detail(&e),
        };
        let mut rows = self.client.query_raw(sql, params).map_err(err)?;
        use postgres::fallible_iterator::FallibleIterator as _;
        while let Some(r) = rows.next().map_err(err)? {
            if !each(row_of(&r)) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://audit:s3cret@db:5432/mcp"),
            "postgres://audit@db:5432/mcp"
        );
        assert_eq!(redact_url("postgres://db/mcp"), "postgres://db:5432/mcp");
        for url in [
            "postgres://audit@db/mcp?password=s3cret",
            "host=db user=audit password=s3cret dbname=mcp",
            "postgres://audit:s3cret@db/mcp?sslmode=disable",
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains("s3cret"), "{url} -> {shown}");
            assert!(shown.contains("db:5432/mcp"), "{url} -> {shown}");
        }
        assert!(!redact_url("postgres://a:s3cret@[bad").contains("s3cret"));
    }
}
