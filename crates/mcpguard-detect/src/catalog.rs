//! The catalogue of pattern detectors: each one a literal anchor (found with one
//! Aho-Corasick pass), a regular expression confirmed around the anchor, and an optional
//! validator. Adding a detector is adding one entry here (and a test in `tests.rs`).

use crate::validate;

/// Where a finding's type belongs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// A credential: key, token, password, private key.
    Secret,
    /// Personal data: SSN, card, IBAN, e-mail, phone, IP address.
    Pii,
}

impl Label {
    /// `secret` or `pii`.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Secret => "secret",
            Label::Pii => "pii",
        }
    }
}

/// One anchored pattern detector.
#[derive(Debug, Clone, Copy)]
pub struct PatternRule {
    /// Stable detector id (`aws_access_key`).
    pub detector: &'static str,
    /// Finding type (`secret.aws_access_key`).
    pub kind: &'static str,
    /// Literals one of which every match contains (case-sensitive).
    pub anchors: &'static [&'static str],
    /// How many bytes before the anchor a match may start.
    pub back: usize,
    /// The pattern (matched on bytes; must contain the anchor).
    pub pattern: &'static str,
    /// Reject a match unless it is delimited by non-token characters on both sides.
    pub bounded: bool,
    /// Extra check on the matched text.
    pub validate: Option<fn(&str) -> bool>,
    /// How sure a validated match is (0–1).
    pub confidence: f32,
}

const fn rule(
    detector: &'static str,
    kind: &'static str,
    anchors: &'static [&'static str],
    pattern: &'static str,
) -> PatternRule {
    PatternRule {
        detector,
        kind,
        anchors,
        back: 0,
        pattern,
        bounded: true,
        validate: None,
        confidence: 0.95,
    }
}

fn not_anthropic(m: &str) -> bool {
    !m.starts_with("sk-ant-")
}

fn openai_marker(m: &str) -> bool {
    not_anthropic(m) && (m.contains("T3BlbkFJ") || m.starts_with("sk-proj-") && m.len() >= 60)
}

fn slack_shape(m: &str) -> bool {
    m.matches('-').count() >= 2 && !validate::placeholder(m)
}

fn url_password_real(m: &str) -> bool {
    // scheme://user:password@host — the password is between the first ':' after "//"
    // and the last '@'.
    let Some(rest) = m.split_once("://").map(|(_, r)| r) else {
        return false;
    };
    let Some((userinfo, _)) = rest.rsplit_once('@') else {
        return false;
    };
    let Some((_, password)) = userinfo.split_once(':') else {
        return false;
    };
    !password.is_empty() && !validate::placeholder(password) && password != "password"
}

fn pem_body(m: &str) -> bool {
    m.contains("-----END") || m.len() >= 64
}

/// All pattern detectors. Ids and types are part of the public contract (policies name
/// them): change them only with a migration note.
pub static PATTERN_RULES: &[PatternRule] = &[
    rule(
        "aws_access_key",
        "secret.aws_access_key",
        &["AKIA", "ASIA", "ABIA", "ACCA"],
        r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}",
    ),
    PatternRule {
        back: 40,
        ..rule(
            "gcp_service_account",
            "secret.gcp_service_account",
            &["service_account"],
            r#""type"\s*:\s*"service_account""#,
        )
    },
    rule(
        "gcp_api_key",
        "secret.gcp_api_key",
        &["AIza"],
        r"AIza[0-9A-Za-z_\-]{35}",
    ),
    PatternRule {
        bounded: false,
        back: 12,
        ..rule(
            "azure_connection_string",
            "secret.azure_connection_string",
            &["Key="],
            r"(?:AccountKey=[A-Za-z0-9+/]{86}==|SharedAccessKey=[A-Za-z0-9+/]{42,43}=)",
        )
    },
    PatternRule {
        back: 4,
        ..rule(
            "azure_ad_client_secret",
            "secret.azure_ad_client_secret",
            &["Q~"],
            r"[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34}",
        )
    },
    rule(
        "github_token",
        "secret.github_token",
        &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        r"gh[pousr]_[A-Za-z0-9]{36}",
    ),
    rule(
        "github_fine_grained_token",
        "secret.github_fine_grained_token",
        &["github_pat_"],
        r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}",
    ),
    rule(
        "gitlab_token",
        "secret.gitlab_token",
        &["glp", "glrt-", "gldt-", "glsoat-"],
        r"gl(?:pat|ptt|rt|dt|soat)-[0-9A-Za-z_\-]{20,64}",
    ),
    PatternRule {
        validate: Some(slack_shape),
        ..rule(
            "slack_token",
            "secret.slack_token",
            &["xox", "xapp-"],
            r"(?:xox[bpares]|xapp)-[0-9A-Za-z\-]{10,250}",
        )
    },
    PatternRule {
        back: 8,
        bounded: false,
        ..rule(
            "slack_webhook",
            "secret.slack_webhook",
            &["hooks.slack.com/"],
            r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_\-]{30,120}",
        )
    },
    PatternRule {
        back: 1,
        ..rule(
            "stripe_key",
            "secret.stripe_key",
            &["k_live_", "k_test_"],
            r"[sr]k_(?:live|test)_[0-9a-zA-Z]{24,99}",
        )
    },
    rule(
        "twilio_api_key",
        "secret.twilio_api_key",
        &["SK"],
        r"SK[0-9a-fA-F]{32}",
    ),
    rule(
        "sendgrid_api_key",
        "secret.sendgrid_api_key",
        &["SG."],
        r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",
    ),
    PatternRule {
        confidence: 0.98,
        ..rule(
            "anthropic_api_key",
            "secret.anthropic_api_key",
            &["sk-"],
            r"sk-ant-(?:api|admin|oat)[0-9]{2}-[A-Za-z0-9_\-]{80,120}",
        )
    },
    PatternRule {
        validate: Some(openai_marker),
        ..rule(
            "openai_api_key",
            "secret.openai_api_key",
            &["sk-"],
            r"sk-[A-Za-z0-9_\-]{40,250}",
        )
    },
    rule(
        "huggingface_token",
        "secret.huggingface_token",
        &["hf_", "api_org_"],
        r"(?:hf_|api_org_)[A-Za-z]{34}",
    ),
    rule(
        "npm_token",
        "secret.npm_token",
        &["npm_"],
        r"npm_[A-Za-z0-9]{36}",
    ),
    rule(
        "pypi_token",
        "secret.pypi_token",
        &["pypi-AgEIcHlwaS5vcmc"],
        r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,400}",
    ),
    PatternRule {
        validate: Some(validate::jwt),
        confidence: 0.9,
        ..rule(
            "jwt",
            "secret.jwt",
            &["eyJ"],
            r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
        )
    },
    PatternRule {
        bounded: false,
        validate: Some(pem_body),
        confidence: 0.99,
        ..rule(
            "openssh_private_key",
            "secret.openssh_private_key",
            &["-----BEGIN "],
            r"-----BEGIN OPENSSH PRIVATE KEY-----(?:(?s:.)+?-----END OPENSSH PRIVATE KEY-----)?",
        )
    },
    PatternRule {
        bounded: false,
        validate: Some(pem_body),
        confidence: 0.99,
        ..rule(
            "pgp_private_key",
            "secret.pgp_private_key",
            &["-----BEGIN "],
            r"-----BEGIN PGP PRIVATE KEY BLOCK-----(?:(?s:.)+?-----END PGP PRIVATE KEY BLOCK-----)?",
        )
    },
    PatternRule {
        bounded: false,
        validate: Some(pem_body),
        confidence: 0.99,
        ..rule(
            "private_key",
            "secret.private_key",
            &["-----BEGIN "],
            r"-----BEGIN (?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY-----(?:(?s:.)+?-----END (?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY-----)?",
        )
    },
    PatternRule {
        back: 24,
        bounded: false,
        validate: Some(url_password_real),
        confidence: 0.9,
        ..rule(
            "database_url",
            "secret.database_url",
            &["://"],
            r"(?i:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|clickhouse|cockroachdb)://[^\s:/@'\x22]{0,128}:[^\s@/'\x22]{1,128}@[^\s/'\x22?#]{1,255}",
        )
    },
    PatternRule {
        back: 8,
        bounded: false,
        validate: Some(url_password_real),
        confidence: 0.8,
        ..rule(
            "url_credentials",
            "secret.url_credentials",
            &["://"],
            r"(?i:https?|ftps?|sftp|ssh|git)://[^\s:/@'\x22]{1,128}:[^\s@/'\x22]{1,128}@[^\s/'\x22?#]{1,255}",
        )
    },
    rule(
        "google_oauth_client_secret",
        "secret.google_oauth_client_secret",
        &["GOCSPX-"],
        r"GOCSPX-[A-Za-z0-9_\-]{28}",
    ),
    rule(
        "google_oauth_token",
        "secret.google_oauth_token",
        &["ya29."],
        r"ya29\.[A-Za-z0-9_\-]{30,512}",
    ),
    PatternRule {
        back: 3,
        ..rule(
            "digitalocean_token",
            "secret.digitalocean_token",
            &["_v1_"],
            r"do[por]_v1_[a-f0-9]{64}",
        )
    },
    rule(
        "hashicorp_vault_token",
        "secret.hashicorp_vault_token",
        &["hvs.", "hvb.", "hvr."],
        r"hv[sbr]\.[A-Za-z0-9_\-]{24,256}",
    ),
    rule(
        "databricks_token",
        "secret.databricks_token",
        &["dapi"],
        r"dapi[a-f0-9]{32}(?:-[0-9])?",
    ),
    rule(
        "dockerhub_token",
        "secret.dockerhub_token",
        &["dckr_pat_"],
        r"dckr_pat_[A-Za-z0-9_\-]{27}",
    ),
    rule(
        "shopify_token",
        "secret.shopify_token",
        &["shp"],
        r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",
    ),
    rule(
        "mailgun_api_key",
        "secret.mailgun_api_key",
        &["key-"],
        r"key-[0-9a-f]{32}",
    ),
    PatternRule {
        back: 32,
        ..rule(
            "mailchimp_api_key",
            "secret.mailchimp_api_key",
            &["-us"],
            r"[0-9a-f]{32}-us[0-9]{1,2}",
        )
    },
    PatternRule {
        back: 10,
        ..rule(
            "telegram_bot_token",
            "secret.telegram_bot_token",
            &[":AA"],
            r"[0-9]{8,10}:AA[0-9A-Za-z_\-]{33}",
        )
    },
    PatternRule {
        back: 40,
        bounded: false,
        ..rule(
            "discord_webhook",
            "secret.discord_webhook",
            &["/api/webhooks/"],
            r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/[A-Za-z0-9_\-]{60,68}",
        )
    },
    rule(
        "linear_api_key",
        "secret.linear_api_key",
        &["lin_api_"],
        r"lin_api_[A-Za-z0-9]{40}",
    ),
    rule(
        "age_secret_key",
        "secret.age_secret_key",
        &["AGE-SECRET-KEY-1"],
        r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
    ),
    rule(
        "groq_api_key",
        "secret.groq_api_key",
        &["gsk_"],
        r"gsk_[A-Za-z0-9]{52}",
    ),
    rule(
        "postman_api_key",
        "secret.postman_api_key",
        &["PMAK-"],
        r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}",
    ),
    rule(
        "grafana_token",
        "secret.grafana_token",
        &["glsa_", "glc_"],
        r"(?:glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,400}={0,2})",
    ),
    rule(
        "new_relic_key",
        "secret.new_relic_key",
        &["NRAK-"],
        r"NRAK-[A-Z0-9]{27}",
    ),
    rule(
        "sentry_token",
        "secret.sentry_token",
        &["sntry"],
        r"(?:sntrys_[A-Za-z0-9_=+/]{60,400}|sntryu_[a-f0-9]{64})",
    ),
    rule(
        "square_token",
        "secret.square_token",
        &["sq0", "EAAA"],
        r"(?:sq0(?:atp|csp)-[0-9A-Za-z_\-]{22,43}|EAAA[A-Za-z0-9_\-]{60})",
    ),
    rule(
        "pulumi_token",
        "secret.pulumi_token",
        &["pul-"],
        r"pul-[a-f0-9]{40}",
    ),
    rule(
        "doppler_token",
        "secret.doppler_token",
        &["dp."],
        r"dp\.(?:pt|st|sa|ct)\.[A-Za-z0-9]{40,44}",
    ),
    rule(
        "atlassian_token",
        "secret.atlassian_token",
        &["ATATT3"],
        r"ATATT3[A-Za-z0-9_=\-]{180,220}",
    ),
    rule(
        "replicate_token",
        "secret.replicate_token",
        &["r8_"],
        r"r8_[A-Za-z0-9]{37}",
    ),
    rule(
        "perplexity_api_key",
        "secret.perplexity_api_key",
        &["pplx-"],
        r"pplx-[A-Za-z0-9]{48}",
    ),
];

/// Detectors of secrets recognised by the name they are assigned to (`password = ...`,
/// `"api_key": "..."`) rather than by their own shape.
#[derive(Debug, Clone, Copy)]
pub struct KeyedRule {
    /// Stable detector id.
    pub detector: &'static str,
    /// Finding type.
    pub kind: &'static str,
    /// True when a name fits: given the name as written and [squashed](SquashedName)
    /// (computed once for all rules).
    pub name: fn(&str, &str) -> bool,
    /// True when the value fits.
    pub value: fn(&str) -> bool,
    /// Check the name before the value (when the value check is the costlier one).
    pub name_first: bool,
    /// How sure a match is.
    pub confidence: f32,
}

/// Name fragments that mark a secret (matched in lower case, `-` and `_` ignored).
pub const SECRET_NAME_HINTS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "credential",
    "authkey",
    "signingkey",
    "encryptionkey",
    "masterkey",
    "sessionkey",
    "clientkey",
    "bearer",
    "connectionstring",
];

/// Name fragments that mark something that is not a secret despite a hint above.
const NOT_SECRET_NAME_HINTS: &[&str] = &[
    "hash", "digest", "checksum", "sha", "md5", "count", "type", "url", "uri", "file", "path",
    "length", "expir", "ttl", "name", "policy", "header", "field", "format", "id", "usage",
    "limit", "rotat", "created", "updated", "hint", "prompt", "question",
];

/// A name in lower case with `_`, `-` and `.` removed (`DB_Password` → `dbpassword`),
/// kept on the stack when it is short ASCII (names are squashed for every JSON member).
pub enum SquashedName {
    /// Up to `SHORT_NAME` ASCII bytes.
    Short([u8; SHORT_NAME], usize),
    /// Anything longer, or not ASCII.
    Long(String),
}

/// Longest name squashed on the stack.
const SHORT_NAME: usize = 64;

impl SquashedName {
    /// Squashes `name`.
    pub fn new(name: &str) -> SquashedName {
        let dropped = |c: u8| c == b'_' || c == b'-' || c == b'.';
        if name.len() <= SHORT_NAME && name.is_ascii() {
            let mut buf = [0u8; SHORT_NAME];
            let mut len = 0;
            for c in name.bytes().filter(|c| !dropped(*c)) {
                buf[len] = c.to_ascii_lowercase();
                len += 1;
            }
            return SquashedName::Short(buf, len);
        }
        SquashedName::Long(
            name.chars()
                .filter(|c| *c != '_' && *c != '-' && *c != '.')
                .flat_map(char::to_lowercase)
                .collect(),
        )
    }

    /// The squashed name.
    pub fn as_str(&self) -> &str {
        match self {
            SquashedName::Short(buf, len) => std::str::from_utf8(&buf[..*len]).unwrap_or_default(),
            SquashedName::Long(s) => s,
        }
    }
}

/// `hay.contains(needle)` for short texts such as names, without the set-up of a
/// substring searcher (which costs more than the search on a name).
fn contains_short(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// [`SECRET_NAME_HINTS`] as one automaton (one pass over a name instead of one per hint).
static SECRET_HINTS: std::sync::LazyLock<Option<aho_corasick::AhoCorasick>> =
    std::sync::LazyLock::new(|| {
        aho_corasick::AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(SECRET_NAME_HINTS)
            .ok()
    });

/// True when a name (given squashed) names a secret (`db_password`, `API-Key`,
/// `clientSecret`).
fn secret_name(_name: &str, squashed: &str) -> bool {
    let hinted = match SECRET_HINTS.as_ref() {
        Some(hints) => hints.is_match(squashed),
        None => SECRET_NAME_HINTS.iter().any(|h| squashed.contains(h)),
    };
    hinted
        && !NOT_SECRET_NAME_HINTS
            .iter()
            .any(|h| squashed.ends_with(h) || squashed.starts_with(h))
}

fn aws_secret_name(_name: &str, squashed: &str) -> bool {
    contains_short(squashed, "aws") && contains_short(squashed, "secret")
        || squashed == "secretaccesskey"
        || squashed.ends_with("secretaccesskey")
}

fn aws_secret_value(value: &str) -> bool {
    value.len() == 40
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+')
        && validate::char_classes(value) >= 3
}

fn ssn_name(_name: &str, squashed: &str) -> bool {
    squashed == "ssn" || squashed.ends_with("ssn") || contains_short(squashed, "socialsecurity")
}

fn ssn_digits(value: &str) -> bool {
    if value.len() > 11 || value.bytes().filter(u8::is_ascii_digit).count() != 9 {
        return false;
    }
    let digits: String = value.chars().filter(|c| c.is_ascii_digit()).collect();
    value.len() <= 11
        && digits.len() == 9
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == ' ')
        && validate::ssn(&digits[..3], &digits[3..5], &digits[5..])
}

fn type_name(name: &str, _squashed: &str) -> bool {
    name == "type"
}

fn service_account(value: &str) -> bool {
    value == "service_account"
}

/// All name-driven detectors, most specific first.
pub static KEYED_RULES: &[KeyedRule] = &[
    KeyedRule {
        detector: "gcp_service_account_json",
        kind: "secret.gcp_service_account",
        name: type_name,
        value: service_account,
        name_first: false,
        confidence: 0.85,
    },
    KeyedRule {
        detector: "aws_secret_key",
        kind: "secret.aws_secret_key",
        name: aws_secret_name,
        value: aws_secret_value,
        name_first: false,
        confidence: 0.95,
    },
    KeyedRule {
        detector: "ssn_by_name",
        kind: "pii.ssn",
        name: ssn_name,
        value: ssn_digits,
        name_first: false,
        confidence: 0.9,
    },
    KeyedRule {
        detector: "generic_high_entropy",
        kind: "secret.generic_high_entropy",
        name: secret_name,
        value: validate::random_secret,
        name_first: true,
        confidence: 0.7,
    },
];

/// Every detector id with its type, for `--help` output and policy validation.
pub fn all_types() -> Vec<(&'static str, &'static str)> {
    let mut types: Vec<(&str, &str)> = PATTERN_RULES
        .iter()
        .map(|r| (r.detector, r.kind))
        .chain(KEYED_RULES.iter().map(|r| (r.detector, r.kind)))
        .chain(crate::pii::PII_DETECTORS.iter().copied())
        .collect();
    types.sort_unstable();
    types.dedup();
    types
}
