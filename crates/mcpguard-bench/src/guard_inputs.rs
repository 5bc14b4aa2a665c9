//! Inputs for the guard benchmarks (criterion bench `guard` and the `scan-latency` bin):
//! realistic tool arguments and policies of a chosen size.

use std::collections::BTreeSet;

use mcpguard_policy::{Action, Call, Policy, PolicyError, SessionFacts};

/// Tool arguments of about `size` bytes: a path, options and a body of prose with
/// numbers, dates, paths and identifiers — and no secrets.
pub fn arguments(size: usize) -> String {
    let words = [
        "the",
        "report",
        "shows",
        "revenue",
        "for",
        "quarter",
        "3",
        "was",
        "12.5%",
        "higher",
        "see",
        "/srv/data/q3.csv",
        "and",
        "ticket",
        "OPS-4821",
        "updated",
        "2026-11-24",
        "by",
        "build",
        "a3f9c2e",
        "version",
        "1.4.2",
        "order",
        "#88231",
        "total",
        "$4,120.00",
    ];
    let mut body = String::new();
    let mut i = 0;
    while body.len() < size.saturating_sub(120) {
        body.push_str(words[i % words.len()]);
        body.push(' ');
        i += 7;
    }
    serde_json::json!({"path": "/srv/data/out.txt", "mode": "append", "content": body}).to_string()
}

/// A policy of `n` rules shaped like real ones (tool globs, label conditions, argument
/// patterns, `re:` patterns), with the one that allows `read_*` last.
pub fn policy_of(n: usize) -> Result<Policy, Vec<PolicyError>> {
    let mut yaml = String::from("default_action: deny\nrules:\n");
    for i in 0..n.saturating_sub(1) {
        let rule = match i % 4 {
            0 => format!(
                "  - {{ id: r{i}, action: deny, priority: {i}, tool_patterns: [\"tool{i}_*\", \"other{i}\"] }}\n"
            ),
            1 => format!(
                "  - {{ id: r{i}, action: deny, priority: {i}, tool_patterns: [\"http_{i}*\"], taint_labels: [secret, pii] }}\n"
            ),
            2 => format!(
                "  - {{ id: r{i}, action: deny, priority: {i}, tool_patterns: [\"fs{i}_*\"], argument_patterns: [{{ key: \"*path*\", match: \"^/etc/\" }}] }}\n"
            ),
            _ => format!(
                "  - {{ id: r{i}, action: sandbox, priority: {i}, servers: [\"srv{i}\"], tool_patterns: [\"re:^exec{i}\"] }}\n"
            ),
        };
        yaml.push_str(&rule);
    }
    yaml.push_str(&format!(
        "  - {{ id: allow, action: allow, priority: {n}, tool_patterns: [\"read_*\"] }}\n"
    ));
    mcpguard_policy::compile(&[("bench.yaml".into(), yaml)], Action::Deny)
}

/// A `tools/call` of `fs__read_file` (upstream `fs`, tool `read_file`): the call that the
/// policies of [`policy_of`] allow, after every other rule was looked at.
pub fn read_file_call<'a>(
    arguments: &'a serde_json::Value,
    labels: &'a BTreeSet<String>,
    session: &'a SessionFacts,
) -> Call<'a> {
    Call {
        method: "tools/call",
        target: Some("read_file"),
        exposed: Some("fs__read_file"),
        server: Some("fs"),
        arguments: Some(arguments),
        labels,
        identity: None,
        roles: &[],
        session,
    }
}

/// A small deterministic generator (xorshift64*), so that corpora are the same in every
/// run without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16)]))
            .collect()
    }
}

const WORDS: &[&str] = &[
    "the",
    "service",
    "returned",
    "an",
    "empty",
    "list",
    "after",
    "retrying",
    "three",
    "times",
    "because",
    "cache",
    "was",
    "stale",
    "deploy",
    "window",
    "opens",
    "at",
    "noon",
    "customer",
    "asked",
    "for",
    "refund",
    "on",
    "order",
    "shipment",
    "arrived",
    "late",
    "quarterly",
    "numbers",
    "look",
    "better",
    "than",
    "expected",
    "migration",
    "finished",
    "without",
    "errors",
    "please",
    "review",
    "pull",
    "request",
    "before",
    "Friday",
    "and",
    "merge",
    "it",
    "into",
    "main",
    "branch",
    "team",
    "meeting",
    "moved",
    "to",
    "Tuesday",
];

fn prose(rng: &mut Rng, out: &mut String) {
    for sentence in 0..4 + rng.below(6) {
        for word in 0..6 + rng.below(12) {
            if word > 0 {
                out.push(' ');
            }
            match rng.below(14) {
                0 => out.push_str(&format!("{}", rng.below(5000))),
                1 => out.push_str(&format!(
                    "2026-{:02}-{:02}",
                    1 + rng.below(12),
                    1 + rng.below(28)
                )),
                2 => out.push_str(&format!("{}.{}%", rng.below(100), rng.below(10))),
                _ => out.push_str(rng.pick(WORDS)),
            }
        }
        out.push_str(if sentence % 3 == 2 { ".\n" } else { ". " });
    }
}

fn code(rng: &mut Rng, out: &mut String) {
    let names = [
        "items", "total", "result", "buffer", "config", "handler", "offset", "count",
    ];
    let calls = [
        "parse",
        "load_rows",
        "render",
        "fetch_page",
        "merge",
        "validate",
        "flush",
    ];
    out.push_str(&format!(
        "fn {}(input: &[u8]) -> Result<usize, Error> {{\n",
        rng.pick(&calls)
    ));
    for _ in 0..5 + rng.below(10) {
        match rng.below(5) {
            0 => out.push_str(&format!(
                "    // {} the {} before {}\n",
                rng.pick(WORDS),
                rng.pick(&names),
                rng.pick(WORDS)
            )),
            1 => out.push_str(&format!(
                "    let {} = {}(&{}, {})?;\n",
                rng.pick(&names),
                rng.pick(&calls),
                rng.pick(&names),
                rng.below(1024)
            )),
            2 => out.push_str(&format!(
                "    if {}.len() > {} {{ return Err(Error::TooLong); }}\n",
                rng.pick(&names),
                rng.below(65536)
            )),
            3 => out.push_str(&format!(
                "    tracing::debug!(\"{} {{}} {}\", {});\n",
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.pick(&names)
            )),
            _ => out.push_str(&format!(
                "    {}.push({}::new());\n",
                rng.pick(&names),
                "Entry"
            )),
        }
    }
    out.push_str("    Ok(0)\n}\n");
}

fn log_lines(rng: &mut Rng, out: &mut String) {
    let levels = ["INFO", "INFO", "INFO", "WARN", "DEBUG", "ERROR"];
    let paths = [
        "/api/v1/items",
        "/api/v1/orders",
        "/healthz",
        "/api/v2/search",
        "/static/app.js",
    ];
    for _ in 0..4 + rng.below(8) {
        let id = rng.hex(32);
        out.push_str(&format!(
            "2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z {} request_id={}-{}-4{}-a{}-{} method=GET path={}/{} status={} duration_ms={} commit={}\n",
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(60),
            rng.below(1000),
            rng.pick(&levels),
            &id[..8],
            &id[8..12],
            &id[13..16],
            &id[17..20],
            &id[20..32],
            rng.pick(&paths),
            rng.below(100_000),
            [200, 200, 201, 204, 404, 500][rng.below(6)],
            rng.below(900),
            rng.hex(40),
        ));
    }
}

fn listing(rng: &mut Rng, out: &mut String) {
    let dirs = ["src", "docs", "target", "tests", "assets", "vendor"];
    let files = [
        "main.rs",
        "lib.rs",
        "README.md",
        "index.html",
        "data.csv",
        "build.log",
    ];
    for _ in 0..4 + rng.below(8) {
        out.push_str(&format!(
            "-rw-r--r-- 1 build build {:>8} Nov {:>2} {:02}:{:02} /srv/{}/{}/{}\n",
            rng.below(2_000_000),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.pick(&dirs),
            rng.pick(&dirs),
            rng.pick(&files)
        ));
    }
}

fn markdown(rng: &mut Rng, out: &mut String) {
    out.push_str(&format!("## {} {}\n\n", rng.pick(WORDS), rng.pick(WORDS)));
    prose(rng, out);
    out.push_str(&format!(
        "\nSee [the guide](https://docs.example.com/{}/{}?page={}#section-{}) and `cargo {} --{}`.\n\n| name | count |\n|---|---|\n| {} | {} |\n",
        rng.pick(WORDS),
        rng.pick(WORDS),
        rng.below(40),
        rng.below(9),
        rng.pick(&["build", "test", "run"]),
        rng.pick(&["release", "workspace", "locked"]),
        rng.pick(WORDS),
        rng.below(1000)
    ));
}

fn record(rng: &mut Rng) -> serde_json::Value {
    serde_json::json!({
        "id": rng.below(10_000_000),
        "sku": format!("{}-{}-{}", ["AB", "QX", "ZT"][rng.below(3)], rng.below(10_000), ["XY", "LM"][rng.below(2)]),
        "name": format!("{} {}", rng.pick(WORDS), rng.pick(WORDS)),
        "price": rng.below(100_000) as f64 / 100.0,
        "created_at": format!("2026-{:02}-{:02}T{:02}:00:00Z", 1 + rng.below(12), 1 + rng.below(28), rng.below(24)),
        "tags": [rng.pick(WORDS), rng.pick(WORDS)],
        "digest": format!("sha256:{}", rng.hex(64)),
        "in_stock": rng.below(2) == 1,
    })
}

/// A mixed JSON corpus of about `size` bytes without sensitive data: MCP tool results
/// (`content` text items and `structuredContent`) holding prose, source code, log lines
/// with request ids and commit hashes, directory listings, Markdown with links, and
/// records with SKUs, timestamps and digests. Deterministic for a given `seed`.
pub fn mixed_corpus(size: usize, seed: u64) -> String {
    let mut rng = Rng(seed | 1);
    let mut results = Vec::new();
    let mut total = 0;
    while total < size {
        let mut text = String::new();
        match rng.below(5) {
            0 => prose(&mut rng, &mut text),
            1 => code(&mut rng, &mut text),
            2 => log_lines(&mut rng, &mut text),
            3 => listing(&mut rng, &mut text),
            _ => markdown(&mut rng, &mut text),
        }
        let records: Vec<serde_json::Value> = (0..rng.below(4)).map(|_| record(&mut rng)).collect();
        let result = serde_json::json!({
            "content": [{"type": "text", "text": text}],
            "structuredContent": {"records": records},
            "isError": false,
        });
        total += result.to_string().len();
        results.push(result);
    }
    serde_json::Value::Array(results).to_string()
}
