//! Export formats for SIEMs: JSON Lines (the stored records, byte for byte), CSV, ArcSight
//! CEF and OCSF (API Activity, class 6003). Pure: formatting only.

use std::io::Write;

use serde_json::json;

use crate::event::{AuditEvent, Outcome};
use crate::record::Record;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One stored record per line, exactly as hashed (re-verifiable).
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// ArcSight Common Event Format, one event per line.
    Cef,
    /// OCSF 1.x API Activity (6003) objects, one per line.
    Ocsf,
}

impl Format {
    /// Reads `jsonl`, `csv`, `cef` or `ocsf`.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "jsonl" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            "cef" => Some(Format::Cef),
            "ocsf" => Some(Format::Ocsf),
            _ => None,
        }
    }
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 24] = [
    "seq",
    "event_id",
    "time",
    "session",
    "identity",
    "client",
    "client_address",
    "era",
    "upstream",
    "method",
    "tool",
    "outcome",
    "action",
    "rule",
    "owasp_asi",
    "owasp_mcp",
    "reason",
    "labels",
    "findings",
    "arguments_digest",
    "result_digest",
    "error_code",
    "latency_us",
    "envelope_id",
];

/// Writes records in one format.
pub struct Exporter<W: Write> {
    format: Format,
    csv: Option<csv::Writer<W>>,
    out: Option<W>,
    version: String,
}

impl<W: Write> Exporter<W> {
    /// An exporter writing `format` to `out`; `version` is the gateway's version (CEF
    /// header, OCSF metadata).
    pub fn new(format: Format, out: W, version: &str) -> std::io::Result<Exporter<W>> {
        let (csv, out) = if format == Format::Csv {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(CSV_COLUMNS).map_err(std::io::Error::other)?;
            (Some(w), None)
        } else {
            (None, Some(out))
        };
        Ok(Exporter {
            format,
            csv,
            out,
            version: version.to_string(),
        })
    }

    /// Writes one record; `data` is its stored bytes.
    pub fn write(&mut self, data: &str, record: &Record) -> std::io::Result<()> {
        if let Some(w) = &mut self.csv {
            return w
                .write_record(csv_row(record))
                .map_err(std::io::Error::other);
        }
        let Some(out) = &mut self.out else {
            return Ok(());
        };
        match self.format {
            Format::Jsonl => writeln!(out, "{data}"),
            Format::Cef => writeln!(out, "{}", cef(record, &self.version)),
            Format::Ocsf => writeln!(out, "{}", ocsf(record, &self.version)),
            Format::Csv => Ok(()),
        }
    }

    /// Flushes the output.
    pub fn finish(mut self) -> std::io::Result<()> {
        if let Some(w) = &mut self.csv {
            w.flush()?;
        }
        if let Some(out) = &mut self.out {
            out.flush()?;
        }
        Ok(())
    }
}

fn findings_text(event: &AuditEvent) -> String {
    event
        .findings
        .iter()
        .chain(&event.result_findings)
        .map(|f| format!("{}@{}#{}", f.kind, f.location, f.digest))
        .collect::<Vec<_>>()
        .join(" ")
}

fn csv_row(record: &Record) -> Vec<String> {
    let e = &record.event;
    let d = e.decision.clone().unwrap_or_default();
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    vec![
        record.seq.to_string(),
        e.event_id.clone(),
        e.time.clone(),
        opt(&e.session),
        opt(&e.identity),
        opt(&e.client),
        opt(&e.client_address),
        e.era.clone(),
        opt(&e.upstream),
        e.method.clone(),
        opt(&e.tool),
        e.outcome.as_str().to_string(),
        d.action,
        d.rule.unwrap_or_default(),
        d.owasp_asi.join(";"),
        d.owasp_mcp.join(";"),
        d.reason,
        e.labels.join(";"),
        findings_text(e),
        opt(&e.arguments_digest),
        opt(&e.result_digest),
        e.error_code.map(|c| c.to_string()).unwrap_or_default(),
        e.latency_us.to_string(),
        opt(&e.envelope_id),
    ]
}

/// Escapes a CEF header field: `\` and `|` get a backslash; line breaks become `\n`/`\r`.
pub fn cef_header_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a CEF extension value: `\` and `=` get a backslash; line breaks become
/// `\n`/`\r`. Pipes are left alone, as the spec says.
pub fn cef_value_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// CEF severity 0-10 for an event.
fn severity(event: &AuditEvent) -> u8 {
    match event.outcome {
        Outcome::Denied | Outcome::Unauthenticated => 8,
        Outcome::RateLimited | Outcome::ApprovalRequested | Outcome::UpstreamFailure => 5,
        _ if !event.findings.is_empty() || !event.flows.is_empty() => 6,
        Outcome::Sandboxed => 4,
        _ => 3,
    }
}

/// One event as a CEF line (without a syslog header).
pub fn cef(record: &Record, version: &str) -> String {
    let e = &record.event;
    let d = e.decision.clone().unwrap_or_default();
    let name = match (&e.tool, &d.rule) {
        (Some(t), Some(r)) => format!("{} {} {} by {}", e.method, t, e.outcome.as_str(), r),
        (Some(t), None) => format!("{} {} {}", e.method, t, e.outcome.as_str()),
        (None, _) => format!("{} {}", e.method, e.outcome.as_str()),
    };
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", (e.time_unix_us / 1000).to_string()),
        ("externalId", e.event_id.clone()),
        ("act", e.outcome.as_str().into()),
        ("app", e.method.clone()),
        ("cn1Label", "seq".into()),
        ("cn1", record.seq.to_string()),
        ("cn2Label", "latencyMicros".into()),
        ("cn2", e.latency_us.to_string()),
    ];
    let mut push = |k: &'static str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            ext.push((k, v));
        }
    };
    push("suser", e.identity.clone());
    push(
        "src",
        e.client_address.as_ref().map(|a| {
            a.rsplit_once(':')
                .map(|(ip, _)| ip.trim_matches(['[', ']']).to_string())
                .unwrap_or_else(|| a.clone())
        }),
    );
    push("requestClientApplication", e.client.clone());
    push("msg", Some(d.reason.clone()));
    push("reason", d.rule.clone());
    push("cs1Label", d.rule.as_ref().map(|_| "rule".into()));
    push("cs1", d.rule.clone());
    push(
        "cs2Label",
        (!d.owasp_asi.is_empty()).then(|| "owaspAsi".into()),
    );
    push("cs2", Some(d.owasp_asi.join(",")));
    push("cs3Label", e.session.as_ref().map(|_| "session".into()));
    push("cs3", e.session.clone());
    push("cs4Label", (!e.labels.is_empty()).then(|| "labels".into()));
    push("cs4", Some(e.labels.join(",")));
    push("cs5Label", e.tool.as_ref().map(|_| "tool".into()));
    push("cs5", e.tool.clone());
    push("cs6Label", e.upstream.as_ref().map(|_| "upstream".into()));
    push("cs6", e.upstream.clone());
    let extension = ext
        .iter()
        .map(|(k, v)| format!("{k}={}", cef_value_escape(v)))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "CEF:0|MCPGuard|MCPGuard|{}|{}|{}|{}|{}",
        cef_header_escape(version),
        cef_header_escape(&format!("mcpguard:{}", e.outcome.as_str())),
        cef_header_escape(&name),
        severity(e),
        extension
    )
}

/// One event as an OCSF API Activity (class 6003) object.
pub fn ocsf(record: &Record, version: &str) -> serde_json::Value {
    let e = &record.event;
    let d = e.decision.clone();
    let (activity_id, activity_name) = match e.method.as_str() {
        "resources/read" | "prompts/get" | "tools/list" | "resources/list" | "prompts/list" => {
            (2, "Read")
        }
        _ => (99, "Other"),
    };
    let blocked = matches!(
        e.outcome,
        Outcome::Denied | Outcome::RateLimited | Outcome::Unauthenticated
    );
    let failed = blocked || matches!(e.outcome, Outcome::UpstreamFailure | Outcome::Error);
    let severity_id = match severity(e) {
        0..=3 => 1,
        4..=5 => 2,
        6..=7 => 3,
        _ => 4,
    };
    let ip = e.client_address.as_ref().map(|a| {
        a.rsplit_once(':')
            .map(|(ip, _)| ip.trim_matches(['[', ']']).to_string())
            .unwrap_or_else(|| a.clone())
    });
    json!({
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": 6003 * 100 + activity_id,
        "time": e.time_unix_us / 1000,
        "severity_id": severity_id,
        "status_id": if failed { 2 } else { 1 },
        "status": if failed { "Failure" } else { "Success" },
        "status_code": e.error_code.map(|c| c.to_string()),
        "disposition_id": if blocked { 2 } else { 1 },
        "disposition": if blocked { "Blocked" } else { "Allowed" },
        "message": d.as_ref().map(|d| d.reason.clone()),
        "duration": e.latency_us / 1000,
        "metadata": {
            "version": "1.3.0",
            "uid": e.event_id,
            "sequence": record.seq,
            "product": {"name": "MCPGuard", "vendor_name": "MCPGuard", "version": version},
            "log_name": "audit",
        },
        "actor": {
            "user": e.identity.as_ref().map(|i| json!({"name": i, "groups": e.roles.iter().map(|r| json!({"name": r})).collect::<Vec<_>>()})),
            "session": e.session.as_ref().map(|s| json!({"uid": s})),
            "app_name": e.client,
        },
        "api": {
            "operation": e.method,
            "service": {"name": e.upstream},
            "request": {"uid": e.request_id},
            "response": {"code": e.error_code},
        },
        "resources": e.tool.as_ref().map(|t| vec![json!({"name": t, "type": "mcp_tool"})]),
        "src_endpoint": {"ip": ip},
        "cloud": {"provider": "self-hosted"},
        "enrichments": e.decision.as_ref().and_then(|d| d.rule.as_ref()).map(|rule| vec![json!({
            "name": "policy_rule", "value": rule, "data": {"owasp_asi": d.as_ref().map(|d| d.owasp_asi.clone()), "owasp_mcp": d.as_ref().map(|d| d.owasp_mcp.clone())}
        })]),
        "unmapped": {
            "outcome": e.outcome.as_str(),
            "labels": e.labels,
            "findings": e.findings,
            "flows": e.flows,
            "result_findings": e.result_findings,
            "arguments_digest": e.arguments_digest,
            "result_digest": e.result_digest,
            "envelope_id": e.envelope_id,
            "era": e.era,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DecisionRecord, FindingRecord};

    fn record() -> Record {
        Record {
            schema: 1,
            seq: 7,
            prev: "00".repeat(32),
            event: AuditEvent {
                event_id: "e1".into(),
                time: "2026-11-24T10:00:00.000000Z".into(),
                time_unix_us: 1_795_000_000_000_000,
                method: "tools/call".into(),
                tool: Some("fs__read|file".into()),
                upstream: Some("fs".into()),
                client_address: Some("127.0.0.1:5555".into()),
                outcome: Outcome::Denied,
                decision: Some(DecisionRecord {
                    action: "deny".into(),
                    rule: Some("ASI02-001".into()),
                    owasp_asi: vec!["ASI02".into()],
                    owasp_mcp: vec![],
                    reason: "path a=b\\c\nnext line".into(),
                    modifiers: vec![],
                }),
                findings: vec![FindingRecord {
                    kind: "aws_access_key".into(),
                    detector: "aws".into(),
                    location: "/arguments/k".into(),
                    encoding: None,
                    digest: "d1".into(),
                }],
                ..AuditEvent::default()
            },
        }
    }

    #[test]
    fn cef_escapes_header_and_extension_per_the_spec() {
        assert_eq!(cef_header_escape(r"a|b\c"), r"a\|b\\c");
        assert_eq!(cef_value_escape("a=b\\c|d\ne"), r"a\=b\\c|d\ne");
        let line = cef(&record(), "0.1.0");
        assert!(
            line.starts_with(
                r"CEF:0|MCPGuard|MCPGuard|0.1.0|mcpguard:denied|tools/call fs__read\|file denied by ASI02-001|8|"
            ),
            "{line}"
        );
        assert!(line.contains(r"msg=path a\=b\\c\nnext line"), "{line}");
        assert!(line.contains("src=127.0.0.1 "), "{line}");
        assert!(line.contains("cs5=fs__read|file"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn ocsf_is_an_api_activity_with_a_blocked_disposition() {
        let v = ocsf(&record(), "0.1.0");
        assert_eq!(v["class_uid"], 6003);
        assert_eq!(v["type_uid"], 600399);
        assert_eq!(v["disposition_id"], 2);
        assert_eq!(v["status_id"], 2);
        assert_eq!(v["time"], 1_795_000_000_000i64);
        assert_eq!(v["metadata"]["sequence"], 7);
        assert_eq!(v["unmapped"]["findings"][0]["digest"], "d1");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut out = Vec::new();
        let mut x = Exporter::new(Format::Csv, &mut out, "0.1.0").unwrap();
        x.write("{}", &record()).unwrap();
        x.finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), CSV_COLUMNS.join(","));
        assert!(text.contains("\"path a=b\\c\nnext line\""), "{text}");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(&row[0], "7");
        assert_eq!(&row[13], "ASI02-001");
    }
}
