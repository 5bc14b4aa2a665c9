#!/usr/bin/env python3
"""Generate the labeled secret/PII detection corpus (bench/detect/corpus.jsonl).

Deterministic: a fixed seed, no network, standard library only. Every secret is fake but
format-valid (random characters of the right alphabet and length; Luhn / mod-97 / SSN
rules where the type has them). Each line of the output is

    {"id": ..., "kind": "positive"|"obfuscated"|"negative", "labels": [...], "text": ...}

where `text` is a single line: compact JSON (tool-call arguments, multi-line content inside
JSON strings as \\n escapes) or plain text (a shell command, a log line, a .env line).

    python3 bench/detect/make_corpus.py [--out-dir bench/detect] [--seed N]
"""

import argparse
import base64
import collections
import json
import os
import random
import string
import struct

DEFAULT_SEED = 20251124

UP = string.ascii_uppercase
LO = string.ascii_lowercase
DIG = string.digits
ALNUM = UP + LO + DIG
B64URL = ALNUM + "_-"
HEX = "0123456789abcdef"
B32 = UP + "234567"

R = random.Random(DEFAULT_SEED)


def rs(alpha, n):
    return "".join(R.choice(alpha) for _ in range(n))


def pick(seq):
    return R.choice(seq)


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def b64(data):
    return base64.b64encode(data).decode()


def b64url_nopad(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def rbytes(n):
    return bytes(R.getrandbits(8) for _ in range(n))


# --------------------------------------------------------------------------- secrets


def gen_aws_access_key():
    return pick(["AKIA", "AKIA", "ASIA"]) + rs(B32, 16)


def gen_aws_secret_key():
    return rs(ALNUM + "/+", 40)


def pem_wrap(kind, der, width=64):
    body = b64(der)
    lines = [body[i:i + width] for i in range(0, len(body), width)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (kind, "\n".join(lines), kind)


def der_len(n):
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    return bytes([0x82, n >> 8, n & 0xFF])


def rsa_pkcs1_der(bits):
    # SEQUENCE { INTEGER 0, INTEGER n, ... } — a real header, then random filler.
    n_len = bits // 8
    inner = b"\x02\x01\x00" + b"\x02" + der_len(n_len + 1) + b"\x00" + rbytes(n_len)
    inner += rbytes(int(n_len * 3.5))
    return b"\x30" + der_len(len(inner)) + inner


def pkcs8_der(bits):
    pk = rsa_pkcs1_der(bits)
    alg = bytes.fromhex("300d06092a864886f70d0101010500")
    inner = b"\x02\x01\x00" + alg + b"\x04" + der_len(len(pk)) + pk
    return b"\x30" + der_len(len(inner)) + inner


def ec_der():
    inner = (b"\x02\x01\x01\x04\x20" + rbytes(32)
             + bytes.fromhex("a00a06082a8648ce3d030107a14403420004") + rbytes(64))
    return b"\x30" + der_len(len(inner)) + inner


def gen_private_key():
    kind = pick(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY"])
    if kind == "RSA PRIVATE KEY":
        return pem_wrap(kind, rsa_pkcs1_der(pick([1024, 2048])))
    if kind == "PRIVATE KEY":
        return pem_wrap(kind, pkcs8_der(pick([1024, 2048])))
    return pem_wrap(kind, ec_der())


def pkcs8_pem_for_gcp():
    return pem_wrap("PRIVATE KEY", pkcs8_der(2048))


def ssh_str(b):
    return struct.pack(">I", len(b)) + b


def gen_openssh_private_key():
    pub = ssh_str(b"ssh-ed25519") + ssh_str(rbytes(32))
    blob = (b"openssh-key-v1\x00" + ssh_str(b"none") + ssh_str(b"none") + ssh_str(b"")
            + struct.pack(">I", 1) + ssh_str(pub) + ssh_str(rbytes(R.randint(140, 160))))
    return pem_wrap("OPENSSH PRIVATE KEY", blob, width=70)


GCP_PROJECTS = ["billing-prod-4821", "acme-analytics", "ml-pipeline-dev", "warehouse-392811",
                "payments-staging", "edge-cache-77"]


def gen_gcp_service_account():
    project = pick(GCP_PROJECTS)
    name = pick(["deployer", "ci-runner", "etl", "backup-bot", "terraform"])
    return dumps({
        "type": "service_account",
        "project_id": project,
        "private_key_id": rs(HEX, 40),
        "private_key": pkcs8_pem_for_gcp(),
        "client_email": "%s@%s.iam.gserviceaccount.com" % (name, project),
        "client_id": rs(DIG, 21),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    })


def gen_gcp_api_key():
    return "AIza" + rs(B64URL, 35)


def gen_azure_connection_string():
    account = pick(["prodlogs", "acmebackups", "mediastore01", "tfstate", "uploadsdev"]) + rs(DIG, 2)
    return ("DefaultEndpointsProtocol=https;AccountName=%s;AccountKey=%s;"
            "EndpointSuffix=core.windows.net" % (account, b64(rbytes(64))))


def gen_github_token():
    return pick(["ghp_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + rs(ALNUM, 36)


def gen_github_fine_grained():
    return "github_pat_" + rs(ALNUM, 22) + "_" + rs(ALNUM, 59)


def gen_gitlab_token():
    return "glpat-" + rs(B64URL, 20)


def gen_slack_token():
    if R.random() < 0.6:
        return "xoxb-%s-%s-%s" % (rs(DIG, R.randint(10, 13)), rs(DIG, R.randint(10, 13)),
                                  rs(ALNUM, 24))
    return "xoxp-%s-%s-%s-%s" % (rs(DIG, R.randint(10, 13)), rs(DIG, R.randint(10, 13)),
                                 rs(DIG, R.randint(10, 13)), rs(HEX, 32))


def gen_slack_webhook():
    return "https://hooks.slack.com/services/T%s/B%s/%s" % (
        rs(UP + DIG, R.randint(8, 10)), rs(UP + DIG, R.randint(8, 10)), rs(ALNUM, 24))


def gen_stripe_key():
    return pick(["sk_live_", "sk_live_", "rk_live_", "sk_test_"]) + rs(ALNUM, pick([24, 34, 99]))


def gen_twilio_api_key():
    return "SK" + rs(HEX, 32)


def gen_sendgrid():
    return "SG." + rs(B64URL, 22) + "." + rs(B64URL, 43)


def gen_openai():
    if R.random() < 0.6:
        return "sk-proj-" + rs(B64URL, 74) + "T3BlbkFJ" + rs(B64URL, 74)
    return "sk-" + rs(ALNUM, 20) + "T3BlbkFJ" + rs(ALNUM, 20)


def gen_anthropic():
    return "sk-ant-api03-" + rs(B64URL, 93) + "AA"


def gen_huggingface():
    return "hf_" + rs(UP + LO, 34)


def gen_npm():
    return "npm_" + rs(ALNUM, 36)


def gen_pypi():
    return "pypi-AgEIcHlwaS5vcmc" + rs(B64URL, R.randint(70, 180))


def gen_jwt():
    alg = pick(["HS256", "HS256", "RS256", "ES256"])
    header = {"alg": alg, "typ": "JWT"}
    if R.random() < 0.3:
        header["kid"] = rs(HEX, 16)
    now = R.randint(1_700_000_000, 1_760_000_000)
    payload = {"sub": rs(DIG, R.randint(6, 12)), "iat": now, "exp": now + pick([900, 3600, 86400])}
    if R.random() < 0.5:
        payload["scope"] = pick(["read:all", "repo admin", "openid profile"])
    if R.random() < 0.5:
        payload["iss"] = pick(["https://auth.acme-corp.io", "api-gateway", "https://login.contoso.net"])
    return "%s.%s.%s" % (b64url_nopad(dumps(header).encode()), b64url_nopad(dumps(payload).encode()),
                         b64url_nopad(rbytes(32)))


DB_HOSTS = ["db.internal.acme-corp.io", "pg-primary.prod.svc.cluster.local", "mysql.billing.local",
            "orders-db.c9akciq32.eu-west-1.rds.amazonaws.com", "cache.prod.internal", "mq.internal.net"]


def gen_database_url():
    user = pick(["app", "admin", "svc_orders", "readonly", "etl_user", "postgres"])
    pw = rs(ALNUM, R.randint(12, 24))
    db = pick(["orders", "billing", "analytics", "app_prod", "users"])
    scheme = pick(["postgres", "postgresql", "mysql", "mongodb+srv", "redis", "amqp"])
    if scheme in ("postgres", "postgresql"):
        return "%s://%s:%s@%s:5432/%s" % (scheme, user, pw, pick(DB_HOSTS), db)
    if scheme == "mysql":
        return "mysql://%s:%s@%s:3306/%s" % (user, pw, pick(DB_HOSTS), db)
    if scheme == "mongodb+srv":
        return "mongodb+srv://%s:%s@cluster0.%s.mongodb.net/%s?retryWrites=true" % (user, pw, rs(LO + DIG, 5), db)
    if scheme == "redis":
        return "redis://:%s@%s:6379/0" % (pw, pick(DB_HOSTS))
    return "amqp://%s:%s@%s:5672/%s" % (user, pw, pick(DB_HOSTS), pick(["vhost", "jobs", "events"]))


def gen_generic_value():
    return rs(ALNUM, 2) + rs(ALNUM + "!*-_", R.randint(18, 62))


def gen_google_oauth():
    return "GOCSPX-" + rs(B64URL, 28)


def gen_digitalocean():
    return "dop_v1_" + rs(HEX, 64)


def gen_vault():
    return "hvs." + rs(B64URL, R.randint(90, 100))


def gen_databricks():
    return "dapi" + rs(HEX, 32)


def gen_dockerhub():
    return "dckr_pat_" + rs(B64URL, 27)


def gen_shopify():
    return "shpat_" + rs(HEX, 32)


def gen_mailgun():
    return "key-" + rs(HEX, 32)


def gen_telegram():
    return str(R.randint(1, 9)) + rs(DIG, R.randint(7, 9)) + ":AA" + rs(B64URL, 33)


def gen_discord_webhook():
    return "https://discord.com/api/webhooks/%s/%s" % (str(R.randint(1, 9)) + rs(DIG, R.randint(16, 18)),
                                                       rs(B64URL, 68))


def gen_linear():
    return "lin_api_" + rs(ALNUM, 40)


def gen_age():
    return "AGE-SECRET-KEY-1" + rs("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58)


def gen_groq():
    return "gsk_" + rs(ALNUM, 52)


def gen_postman():
    return "PMAK-" + rs(HEX, 24) + "-" + rs(HEX, 34)


def gen_grafana():
    return "glsa_" + rs(ALNUM, 32) + "_" + rs(HEX, 8)


def gen_new_relic():
    return "NRAK-" + rs(UP + DIG, 27)


def gen_azure_ad():
    return rs(ALNUM + "_~.", 3) + pick(DIG) + "Q~" + rs(ALNUM + "_~.-", 34)


def gen_sentry():
    if R.random() < 0.3:
        claims = dumps({"iat": R.randint(1_700_000_000, 1_760_000_000), "url": "https://sentry.io",
                        "region_url": "https://us.sentry.io", "org": pick(["acme", "contoso", "initech"])})
        return "sntrys_" + b64(claims.encode()).rstrip("=") + "_" + rs(ALNUM + "+/", 43)
    return "sntrys_" + rs(ALNUM + "_=+/", R.randint(60, 200))


# --------------------------------------------------------------------------- PII


def luhn_ok(digits):
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_complete(body):
    for c in DIG:
        if luhn_ok(body + c):
            return body + c
    raise AssertionError


def card_number(brand):
    if brand == "visa":
        return luhn_complete("4" + rs(DIG, 14))
    if brand == "mastercard":
        if R.random() < 0.6:
            return luhn_complete(str(R.randint(51, 55)) + rs(DIG, 13))
        return luhn_complete(str(R.randint(2221, 2720)) + rs(DIG, 11))
    if brand == "amex":
        return luhn_complete(pick(["34", "37"]) + rs(DIG, 12))
    if R.random() < 0.5:
        return luhn_complete("6011" + rs(DIG, 11))
    return luhn_complete("65" + rs(DIG, 13))


def format_card(num, style):
    if style == "plain":
        return num
    sep = " " if style == "spaces" else "-"
    groups = [4, 6, 5] if len(num) == 15 else [4, 4, 4, 4]
    out, i = [], 0
    for g in groups:
        out.append(num[i:i + g])
        i += g
    return sep.join(out)


def ssn_parts():
    while True:
        area = R.randint(1, 899)
        if area == 666:
            continue
        group, serial = R.randint(1, 99), R.randint(1, 9999)
        digits = "%03d%02d%04d" % (area, group, serial)
        if digits in ("123456789", "078051120") or len(set(digits)) == 1:
            continue
        return "%03d" % area, "%02d" % group, "%04d" % serial


def iban_check(country, bban):
    s = bban + country + "00"
    num = "".join(str(int(c, 36)) for c in s)
    return "%02d" % (98 - int(num) % 97)


def iban_bban(country):
    if country == "DE":
        return rs(DIG, 18)
    if country == "GB":
        return pick(["NWBK", "BARC", "LOYD", "MIDL", "HBUK"]) + rs(DIG, 14)
    if country == "FR":
        return rs(DIG, 23)
    return pick(["ABNA", "RABO", "INGB", "TRIO"]) + rs(DIG, 10)  # NL


def make_iban(country, valid=True):
    bban = iban_bban(country)
    check = iban_check(country, bban)
    if not valid:
        good = check
        while check == good:
            check = "%02d" % R.randint(2, 98)
    return country + check + bban


def group4(s):
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


FIRST = ["alice", "bob", "carol", "dmitri", "emma", "farid", "grace", "hiro", "ines", "jamal",
         "kate", "liam", "mei", "nora", "oscar", "priya", "quentin", "rosa", "sven", "tariq"]
LAST = ["smith", "garcia", "nguyen", "mueller", "rossi", "kowalski", "tanaka", "okafor",
        "dubois", "larsen", "silva", "cohen", "patel", "ivanova", "brown"]
MAIL_DOMAINS = ["gmail.com", "outlook.com", "proton.me", "acme-corp.com", "contoso.org",
                "mail.example.co.uk", "uni-heidelberg.de", "fastmail.fm", "yahoo.co.jp", "initech.io"]


def gen_email():
    f, l = pick(FIRST), pick(LAST)
    local = pick(["%s.%s" % (f, l), "%s%s" % (f[0], l), "%s_%s%d" % (f, l, R.randint(1, 99)),
                  "%s+billing" % f, "%s.%s" % (l, f)])
    return "%s@%s" % (local, pick(MAIL_DOMAINS))


US_AREAS = ["201", "212", "213", "305", "312", "404", "415", "503", "512", "617", "646", "702", "718", "206"]


def us_exchange():
    while True:
        e = R.randint(200, 999)
        if e % 100 != 11 and e != 555:
            return "%03d" % e


def gen_phone():
    style = pick(["e164", "us_paren", "uk", "de", "us_dash", "fr", "uk_mobile"])
    if style == "e164":
        return "+1" + pick(US_AREAS) + us_exchange() + rs(DIG, 4)
    if style == "us_paren":
        return "(%s) %s-%s" % (pick(US_AREAS), us_exchange(), rs(DIG, 4))
    if style == "us_dash":
        return "+1 %s-%s-%s" % (pick(US_AREAS), us_exchange(), rs(DIG, 4))
    if style == "uk":
        return "+44 20 7%s %s" % (rs(DIG, 3), rs(DIG, 4))
    if style == "uk_mobile":
        return "+44 7%s %s" % (pick(["400", "700", "800", "900"])[0] + rs(DIG, 2), rs(DIG, 6))
    if style == "de":
        return "+49 30 %s" % (str(R.randint(2, 9)) + rs(DIG, R.randint(5, 7)))
    return "+33 %d %d%s %s %s %s" % (R.randint(1, 4), R.randint(2, 9), pick(DIG), rs(DIG, 2), rs(DIG, 2), rs(DIG, 2))


def public_ipv4():
    while True:
        a = R.randint(1, 223)
        if a in (10, 127, 100, 169, 172, 192, 198, 0):
            continue
        return "%d.%d.%d.%d" % (a, R.randint(0, 255), R.randint(0, 255), R.randint(1, 254))


def gen_ip():
    r = R.random()
    if r < 0.45:
        return public_ipv4()
    if r < 0.65:
        return pick(["203.0.113.", "198.51.100.", "192.0.2."]) + str(R.randint(1, 254))
    if r < 0.8:
        return pick(["2001:db8::", "2001:db8:85a3::8a2e:370:"]) + "%x" % R.randint(1, 0xFFFF)
    prefix = pick(["2a03:2880", "2606:4700", "2a00:1450", "2604:a880", "2a01:4f8"])
    if R.random() < 0.5:  # all eight groups
        return prefix + ":" + ":".join("%x" % R.randint(0, 0xFFFF) for _ in range(6))
    return prefix + "::" + ":".join("%x" % R.randint(1, 0xFFFF) for _ in range(R.randint(1, 4)))


# --------------------------------------------------------------------------- contexts

DOMAINS = ["acme-corp.io", "contoso.net", "initech.dev", "globex.app"]


def ts():
    return "2025-%02d-%02dT%02d:%02d:%02d.%03dZ" % (R.randint(1, 12), R.randint(1, 28), R.randint(0, 23),
                                                   R.randint(0, 59), R.randint(0, 59), R.randint(0, 999))


def camel(key):
    parts = key.lower().split("_")
    return parts[0] + "".join(p.title() for p in parts[1:])


def c_env_line(v, env, key):
    return "%s=%s" % (env, v)


def c_export(v, env, key):
    return 'export %s="%s"' % (env, v)


def c_json_write_env(v, env, key):
    return dumps({"path": pick([".env", "deploy/.env.production", "config/secrets.env", "/srv/app/.env"]),
                  "content": "# generated by setup\n%s=%s\nLOG_LEVEL=info\nPORT=8080\n" % (env, v)})


def c_json_args(v, env, key):
    return dumps({"name": pick(["set_secret", "store_credential", "configure_integration"]),
                  "arguments": {"name": pick(["prod", "default", "ci"]), key: v}})


def c_json_config(v, env, key):
    return dumps({"service": pick(["billing", "search", "notifier", "ingest"]),
                  "env": {env: v, "REGION": pick(["eu-west-1", "us-east-2"]), "WORKERS": "4"}})


def c_yaml(v, env, key):
    return dumps({"path": pick(["config.yaml", "values.prod.yaml", "app/settings.yml"]),
                  "content": "service:\n  name: api\n  %s: %s\n  timeout: 30\n" % (key, v)})


def c_py(v, env, key):
    return dumps({"path": pick(["app/client.py", "scripts/sync.py", "tests/conftest.py"]),
                  "content": "import os\n\n\nclient = Client(%s=\"%s\")\nprint(client.ping())\n" % (key, v)})


def c_js(v, env, key):
    return dumps({"path": pick(["src/index.js", "lib/config.ts"]),
                  "content": "const %s = '%s';\nexport default { %s };\n" % (camel(key), v, camel(key))})


def c_log(v, env, key):
    return "%s WARN client: request rejected, retrying with %s %s" % (ts(), pick(["credential", "key", "value"]), v)


def c_bearer_log(v, env, key):
    return "%s DEBUG outgoing headers={Authorization: Bearer %s, Accept: application/json}" % (ts(), v)


def c_prose(v, env, key):
    return pick(["Here is the key you asked for: %s (rotate it after the demo)",
                 "Hey, can you check why %s stopped working this morning?",
                 "I pasted %s into the settings page but nothing happened."]) % v


def c_curl(v, env, key):
    return dumps({"command": "curl -s -H 'Authorization: Bearer %s' https://api.%s/v1/me" % (v, pick(DOMAINS))})


def c_stdout(v, env, key):
    return dumps({"stdout": "%s=%s\nPATH=/usr/local/bin:/usr/bin:/bin\nHOME=/home/dev\n" % (env, v), "exit_code": 0})


def c_md(v, env, key):
    return dumps({"text": "To reproduce, set `%s` to `%s` and run `make test`." % (env, v)})


CONTEXTS = {
    "env": c_env_line, "export": c_export, "write_env": c_json_write_env, "args": c_json_args,
    "config": c_json_config, "yaml": c_yaml, "py": c_py, "js": c_js, "log": c_log,
    "bearer": c_bearer_log, "prose": c_prose, "curl": c_curl, "stdout": c_stdout, "md": c_md,
}
ALL_CTX = list(CONTEXTS)
KEYED_CTX = ["env", "export", "write_env", "args", "config", "yaml", "py", "js", "stdout", "md"]
TOKEN_CTX = ALL_CTX
NOBEARER_CTX = [c for c in ALL_CTX if c not in ("bearer", "curl")]

EXTRA_PER_TYPE = 2
# type id -> (generator, ENV_NAME, key_name, contexts, count)
SECRET_TYPES = {
    "secret.aws_access_key": (gen_aws_access_key, "AWS_ACCESS_KEY_ID", "aws_access_key_id", NOBEARER_CTX, 12),
    "secret.aws_secret_key": (gen_aws_secret_key, "AWS_SECRET_ACCESS_KEY", "aws_secret_access_key", KEYED_CTX, 12),
    "secret.gcp_api_key": (gen_gcp_api_key, "GOOGLE_API_KEY", "api_key", TOKEN_CTX, 11),
    "secret.azure_connection_string": (gen_azure_connection_string, "AZURE_STORAGE_CONNECTION_STRING",
                                       "connection_string", NOBEARER_CTX, 11),
    "secret.github_token": (gen_github_token, "GITHUB_TOKEN", "token", TOKEN_CTX, 12),
    "secret.github_fine_grained_token": (gen_github_fine_grained, "GH_TOKEN", "token", TOKEN_CTX, 11),
    "secret.gitlab_token": (gen_gitlab_token, "GITLAB_TOKEN", "private_token", TOKEN_CTX, 11),
    "secret.slack_token": (gen_slack_token, "SLACK_BOT_TOKEN", "bot_token", TOKEN_CTX, 11),
    "secret.slack_webhook": (gen_slack_webhook, "SLACK_WEBHOOK_URL", "webhook_url", NOBEARER_CTX, 11),
    "secret.stripe_key": (gen_stripe_key, "STRIPE_SECRET_KEY", "api_key", TOKEN_CTX, 12),
    "secret.twilio_api_key": (gen_twilio_api_key, "TWILIO_API_KEY", "api_key_sid", NOBEARER_CTX, 10),
    "secret.sendgrid_api_key": (gen_sendgrid, "SENDGRID_API_KEY", "api_key", TOKEN_CTX, 11),
    "secret.openai_api_key": (gen_openai, "OPENAI_API_KEY", "api_key", TOKEN_CTX, 12),
    "secret.anthropic_api_key": (gen_anthropic, "ANTHROPIC_API_KEY", "api_key", TOKEN_CTX, 11),
    "secret.huggingface_token": (gen_huggingface, "HF_TOKEN", "token", TOKEN_CTX, 11),
    "secret.npm_token": (gen_npm, "NPM_TOKEN", "auth_token", TOKEN_CTX, 10),
    "secret.pypi_token": (gen_pypi, "TWINE_PASSWORD", "password", NOBEARER_CTX, 10),
    "secret.jwt": (gen_jwt, "ACCESS_TOKEN", "access_token", TOKEN_CTX, 12),
    "secret.database_url": (gen_database_url, "DATABASE_URL", "database_url", NOBEARER_CTX, 12),
    "secret.generic_high_entropy": (gen_generic_value, None, None, KEYED_CTX, 14),
    "secret.google_oauth_client_secret": (gen_google_oauth, "GOOGLE_CLIENT_SECRET", "client_secret",
                                          NOBEARER_CTX, 10),
    "secret.digitalocean_token": (gen_digitalocean, "DIGITALOCEAN_TOKEN", "token", TOKEN_CTX, 10),
    "secret.hashicorp_vault_token": (gen_vault, "VAULT_TOKEN", "token", TOKEN_CTX, 10),
    "secret.databricks_token": (gen_databricks, "DATABRICKS_TOKEN", "token", TOKEN_CTX, 10),
    "secret.dockerhub_token": (gen_dockerhub, "DOCKERHUB_TOKEN", "password", NOBEARER_CTX, 10),
    "secret.shopify_token": (gen_shopify, "SHOPIFY_ACCESS_TOKEN", "access_token", TOKEN_CTX, 10),
    "secret.mailgun_api_key": (gen_mailgun, "MAILGUN_API_KEY", "api_key", NOBEARER_CTX, 10),
    "secret.telegram_bot_token": (gen_telegram, "TELEGRAM_BOT_TOKEN", "bot_token", NOBEARER_CTX, 10),
    "secret.discord_webhook": (gen_discord_webhook, "DISCORD_WEBHOOK_URL", "webhook", NOBEARER_CTX, 10),
    "secret.linear_api_key": (gen_linear, "LINEAR_API_KEY", "api_key", TOKEN_CTX, 10),
    "secret.age_secret_key": (gen_age, "SOPS_AGE_KEY", "age_key", NOBEARER_CTX, 10),
    "secret.groq_api_key": (gen_groq, "GROQ_API_KEY", "api_key", TOKEN_CTX, 10),
    "secret.postman_api_key": (gen_postman, "POSTMAN_API_KEY", "api_key", NOBEARER_CTX, 10),
    "secret.grafana_token": (gen_grafana, "GRAFANA_SERVICE_ACCOUNT_TOKEN", "token", TOKEN_CTX, 10),
    "secret.new_relic_key": (gen_new_relic, "NEW_RELIC_API_KEY", "api_key", NOBEARER_CTX, 10),
    "secret.azure_ad_client_secret": (gen_azure_ad, "AZURE_CLIENT_SECRET", "client_secret", KEYED_CTX, 10),
    "secret.sentry_token": (gen_sentry, "SENTRY_AUTH_TOKEN", "auth_token", TOKEN_CTX, 10),
}

GENERIC_NAMES = [("DB_PASSWORD", "password"), ("API_KEY", "api_key"), ("APP_SECRET", "secret"),
                 ("OAUTH_CLIENT_SECRET", "client_secret"), ("AUTH_TOKEN", "token"),
                 ("SESSION_SECRET", "session_secret"), ("ADMIN_PASSWORD", "admin_password"),
                 ("SIGNING_KEY", "signing_key")]

# Multi-line secrets, wrapped by their own contexts.
PEM_TYPES = {
    "secret.private_key": (gen_private_key, 12),
    "secret.openssh_private_key": (gen_openssh_private_key, 10),
    "secret.gcp_service_account": (gen_gcp_service_account, 10),
}


def gcp_labels():
    return ["secret.gcp_service_account", "secret.private_key", "pii.email"]


def wrap_pem(t, v):
    """Contexts for a PEM key or a service-account JSON; returns the one-line text."""
    if t == "secret.gcp_service_account":
        style = pick(["raw", "write", "env", "args"])
        if style == "raw":
            return v
        if style == "write":
            return dumps({"path": pick(["gcp-sa.json", "secrets/credentials.json", "/tmp/key.json"]), "content": v})
        if style == "env":
            return "GOOGLE_CREDENTIALS='%s'" % v
        return dumps({"name": "deploy", "arguments": {"credentials": json.loads(v), "region": "europe-west1"}})
    style = pick(["write", "write", "stdout", "env_escaped", "args", "cat"])
    if style == "write":
        path = "~/.ssh/id_ed25519" if "OPENSSH" in v else pick(["certs/server.key", "deploy/key.pem", "/etc/ssl/private/api.key"])
        return dumps({"path": path, "content": v})
    if style == "stdout":
        return dumps({"command": "cat ~/.ssh/id_rsa" if "OPENSSH" in v else "cat server.key", "stdout": v, "exit_code": 0})
    if style == "env_escaped":
        return 'PRIVATE_KEY="%s"' % v.replace("\n", "\\n")
    if style == "cat":
        return dumps({"tool": "read_file", "result": {"content": [{"type": "text", "text": v}]}})
    return dumps({"name": "add_deploy_key", "arguments": {"title": "ci", "key": v, "read_only": True}})


def wrap_secret(t, v, ctx=None):
    gen, env, key, ctxs, _ = SECRET_TYPES[t]
    if env is None:  # generic: pick a secret-like name
        env, key = pick(GENERIC_NAMES)
    ctx = ctx or pick(ctxs)
    if t == "secret.aws_secret_key" and R.random() < 0.2:
        return "aws configure set aws_secret_access_key %s --profile %s" % (v, pick(["prod", "dev"]))
    if t == "secret.npm_token" and R.random() < 0.4:
        return dumps({"path": ".npmrc", "content": "//registry.npmjs.org/:_authToken=%s\nalways-auth=true\n" % v})
    if t == "secret.generic_high_entropy" and R.random() < 0.2:
        return pick(["mysql -u app --password=%s -h db.internal orders",
                     "docker login -u deploy --password %s registry.acme-corp.io"]) % v
    return CONTEXTS[ctx](v, env, key)


# PII contexts: (template taking the value) per type.
def pii_text(t, v):
    name = "%s %s" % (pick(FIRST).title(), pick(LAST).title())
    if t == "pii.ssn":
        nodash = v.replace("-", "")
        return pick([
            lambda: dumps({"employee": {"name": name, "ssn": v, "dept": "finance"}}),
            lambda: dumps({"employee": {"name": name, "ssn": nodash, "dept": "ops"}}),
            lambda: "SSN: %s" % v,
            lambda: dumps({"text": "Applicant %s, social security number %s, requests a refund." % (name, v)}),
            lambda: "%s INFO kyc: verified applicant ssn=%s" % (ts(), v),
            lambda: dumps({"path": "hr/export.csv", "content": "name,ssn,start\n%s,%s,2021-04-01\n" % (name, v)}),
        ])()
    if t == "pii.credit_card":
        return pick([
            lambda: dumps({"payment": {"card_number": v, "exp": "%02d/%02d" % (R.randint(1, 12), R.randint(26, 31)), "holder": name}}),
            lambda: "card=%s" % v,
            lambda: dumps({"text": "Please charge my card %s for the renewal." % v}),
            lambda: "%s ERROR payments: gateway declined %s (insufficient funds)" % (ts(), v),
            lambda: dumps({"query": "SELECT * FROM orders WHERE pan = '%s'" % v}),
        ])()
    if t == "pii.iban":
        return pick([
            lambda: dumps({"payee": name, "iban": v, "amount": "%d.00" % R.randint(10, 9000)}),
            lambda: "IBAN: %s" % v,
            lambda: dumps({"text": "Bitte überweisen Sie den Betrag auf %s bis Freitag." % v}),
            lambda: dumps({"path": "payouts.csv", "content": "name,iban\n%s,%s\n" % (name, v)}),
        ])()
    if t == "pii.email":
        return pick([
            lambda: dumps({"to": v, "subject": "Your invoice", "body": "Hi, please find the invoice attached."}),
            lambda: "%s INFO auth: login ok user=%s" % (ts(), v),
            lambda: dumps({"text": "Contact %s at %s for access." % (name, v)}),
            lambda: "git config user.email %s" % v,
            lambda: dumps({"customer": {"name": name, "email": v, "plan": "pro"}}),
        ])()
    if t == "pii.phone":
        return pick([
            lambda: dumps({"customer": {"name": name, "phone": v}}),
            lambda: "Call me at %s after 5pm." % v,
            lambda: dumps({"text": "Tel: %s" % v}),
            lambda: dumps({"sms": {"to": v, "body": "Your code expires soon."}}),
        ])()
    # ip
    return pick([
        lambda: '%s - - [04/Mar/2025:10:12:%02d +0000] "GET /api/v1/orders HTTP/1.1" 200 512' % (v, R.randint(0, 59)),
        lambda: dumps({"remote_addr": v, "path": "/login", "status": 401}),
        lambda: "%s WARN ratelimit: client %s exceeded 100 req/s" % (ts(), v),
        lambda: dumps({"command": "ssh deploy@%s uptime" % v if ":" not in v else "ping -6 -c 1 %s" % v}),
        lambda: "Failed password for invalid user admin from %s port %d ssh2" % (v, R.randint(1024, 65535)),
    ])()


def gen_pii(t):
    if t == "pii.ssn":
        a, g, s = ssn_parts()
        return "%s-%s-%s" % (a, g, s)
    if t == "pii.credit_card":
        return format_card(card_number(pick(["visa", "mastercard", "amex", "discover"])),
                           pick(["plain", "spaces", "dashes"]))
    if t == "pii.iban":
        v = make_iban(pick(["DE", "GB", "FR", "NL"]))
        return group4(v) if R.random() < 0.4 else v
    if t == "pii.email":
        return gen_email()
    if t == "pii.phone":
        return gen_phone()
    return gen_ip()


PII_COUNTS = {"pii.ssn": 14, "pii.credit_card": 18, "pii.iban": 14, "pii.email": 14, "pii.phone": 16,
              "pii.ip_address": 16}


# --------------------------------------------------------------------------- obfuscation

ZW = ["\u200b", "\u200c", "\u200d", "\ufeff"]
HOMO = {"A": "АΑ", "B": "ВΒ", "E": "ЕΕ", "K": "КΚ", "M": "М", "H": "Н", "O": "ОΟ", "P": "Р", "C": "С",
        "T": "Т", "X": "Х", "a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х"}
HOMO.update({d: chr(0xFF10 + int(d)) for d in DIG})


def ob_homoglyph(v):
    idx = [i for i, c in enumerate(v) if c in HOMO]
    chosen = set(R.sample(idx, min(len(idx), R.randint(2, 4))))
    return "".join(pick(HOMO[c]) if i in chosen else c for i, c in enumerate(v))


def ob_zero_width(v):
    if R.random() < 0.5:
        return pick(ZW).join(v) if R.random() < 0.5 else "".join(c + pick(ZW) for c in v[:-1]) + v[-1]
    out = []
    for i, c in enumerate(v):
        out.append(c)
        if i < len(v) - 1 and R.random() < 0.3:
            out.append(pick(ZW))
    if not any(z in "".join(out) for z in ZW):
        out.insert(len(out) // 2, ZW[0])
    return "".join(out)


def ob_html(v):
    return "".join(("&#%d;" % ord(c)) if R.random() < 0.5 else ("&#x%X;" % ord(c)) for c in v)


def ob_pct(v):
    return "".join("%%%02X" % b for b in v.encode())


def json_with_raw(obj, placeholder, raw):
    """Serialize obj, then splice `raw` (already JSON-escaped string content) in place of placeholder."""
    text = dumps(obj)
    assert text.count(placeholder) == 1
    return text.replace(placeholder, raw)


def ob_json_u(v):
    return "".join("\\u%04x" % ord(c) if R.random() < 0.6 else "\\u%04X" % ord(c) for c in v)


def split_parts(v):
    n = R.randint(2, 4) if len(v) >= 16 else 2
    cuts = sorted(R.sample(range(2, len(v) - 1), n - 1))
    parts, prev = [], 0
    for c in cuts + [len(v)]:
        parts.append(v[prev:c])
        prev = c
    return parts


def obfuscated_text(transform, t, v):
    if transform == "base64":
        enc = b64(v.encode())
        return pick([
            lambda: dumps({"data": enc, "encoding": "base64"}),
            lambda: "echo %s | base64 -d > /tmp/cred" % enc,
            lambda: dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app"},
                           "data": {pick(["value", "credentials", "tls.key", "token"]): enc}}),
            lambda: dumps({"arguments": {"blob": enc}}),
        ])()
    if transform == "base64url":
        enc = b64url_nopad(v.encode())
        return pick([
            lambda: "https://app.%s/callback?state=%s" % (pick(DOMAINS), enc),
            lambda: dumps({"payload": enc}),
            lambda: dumps({"arguments": {"note": "restore with base64url", "value": enc}}),
        ])()
    if transform == "hex":
        enc = v.encode().hex()
        return pick([
            lambda: dumps({"hex": enc}),
            lambda: "xxd -r -p <<< %s" % enc,
            lambda: dumps({"arguments": {"bytes": enc, "format": "hex"}}),
        ])()
    if transform == "percent":
        enc = ob_pct(v)
        return pick([
            lambda: "https://collect.%s/log?v=%s&src=agent" % (pick(DOMAINS), enc),
            lambda: dumps({"url": "https://hooks.%s/ingest?d=%s" % (pick(DOMAINS), enc)}),
            lambda: dumps({"form": "user=dev&secret=%s" % enc}),
        ])()
    if transform == "json_unicode":
        raw = ob_json_u(v)
        ph = "@@PLACEHOLDER@@"
        return pick([
            lambda: json_with_raw({"value": ph}, ph, raw),
            lambda: json_with_raw({"name": "store", "arguments": {"content": ph}}, ph, raw),
            lambda: json_with_raw({"path": "notes.txt", "content": ph}, ph, raw),
        ])()
    if transform == "html":
        enc = ob_html(v)
        return pick([
            lambda: dumps({"html": "<p>key: <code>%s</code></p>" % enc}),
            lambda: "<input type=\"hidden\" name=\"k\" value=\"%s\">" % enc,
            lambda: dumps({"body": "<div>%s</div>" % enc}),
        ])()
    if transform == "zero_width":
        enc = ob_zero_width(v)
        return plain_context(t, enc)
    if transform == "homoglyph":
        enc = ob_homoglyph(v)
        return plain_context(t, enc)
    # split
    parts = split_parts(v)
    style = pick(["fields", "array", "named"])
    if style == "fields":
        return dumps({"part%d" % (i + 1): p for i, p in enumerate(parts)})
    if style == "array":
        return dumps({"chunks": parts, "join": ""})
    names = ["prefix", "middle", "rest", "tail"][:len(parts)]
    if len(parts) == 2:
        names = ["head", "tail"]
    return dumps({"arguments": {n: p for n, p in zip(names, parts)}})


def plain_context(t, v):
    if t.startswith("pii."):
        return pii_text(t, v)
    return wrap_secret(t, v)


OBF_TYPES = [t for t in SECRET_TYPES] + ["secret.private_key", "secret.openssh_private_key",
                                          "secret.gcp_service_account",
                                          "pii.credit_card", "pii.ssn", "pii.email", "pii.iban", "pii.phone"]
# Values that are a secret only because of the name they are assigned to: obfuscate them in place.
CONTEXT_ONLY = {"secret.aws_secret_key", "secret.generic_high_entropy"}
PEM_ONLY_TRANSFORMS = ["base64", "base64url", "hex", "json_unicode"]
OBF_PLAN = [("base64", 45), ("base64url", 30), ("hex", 35), ("percent", 35), ("json_unicode", 35),
            ("html", 35), ("zero_width", 40), ("homoglyph", 40), ("split", 40)]


def gen_value(t):
    if t in SECRET_TYPES:
        return SECRET_TYPES[t][0]()
    if t in PEM_TYPES:
        return PEM_TYPES[t][0]()
    return gen_pii(t)


def labels_for(t):
    return gcp_labels() if t == "secret.gcp_service_account" else [t]


# --------------------------------------------------------------------------- negatives


def hexdigest(n):
    return rs(HEX, n)


def uuid4():
    h = rs(HEX, 32)
    h = h[:12] + "4" + h[13:16] + pick("89ab") + h[17:]
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


WORDS = ("the of and to in is was for on that with as by at from this be are have it not or which "
         "release build deploy cache index report weekly summary meeting agenda notes draft review "
         "service worker queue retry backoff latency budget quarter roadmap feature migration").split()
PROSE = [
    "The deployment finished without errors and the cache was warmed before traffic shifted.",
    "Please review the migration plan before Thursday; we still need sign-off from the data team.",
    "Latency improved by twelve percent after the connection pool was resized.",
    "Remember to rotate credentials regularly and never commit them to the repository.",
    "The quarterly report is attached; the summary is on page three.",
    "We agreed to postpone the launch until the accessibility audit is complete.",
    "The worker retries failed jobs with exponential backoff, up to five attempts.",
    "Our token bucket allows short bursts but limits the sustained request rate.",
    "Use a password manager and enable two-factor authentication on every account.",
    "The API key field is optional; when it is empty the client uses anonymous access.",
]
CODE = [
    "def get_token(self):\n    return self._token\n",
    "password = os.environ[\"DB_PASSWORD\"]\n",
    "const apiKey = process.env.API_KEY;\n",
    "if not secret:\n    raise ValueError(\"missing secret\")\n",
    "token = request.headers.get(\"Authorization\", \"\").removeprefix(\"Bearer \")\n",
    "let key = std::env::var(\"OPENAI_API_KEY\")?;\n",
    "for i in range(10):\n    print(i * i)\n",
    "SELECT id, created_at FROM orders WHERE status = 'paid' LIMIT 100;\n",
    "func (c *Client) SetPassword(p string) { c.password = p }\n",
    "secret_key = settings.SECRET_KEY  # loaded from vault at startup\n",
    "@app.route(\"/health\")\ndef health():\n    return {\"ok\": True}\n",
    "import { useState } from 'react';\nconst [token, setToken] = useState(null);\n",
]
PATHS = ["/home/dev/.aws/credentials", "~/.ssh/id_rsa.pub", "C:\\Users\\alice\\AppData\\Local\\Temp\\build.log",
         "/etc/nginx/sites-enabled/default", "src/secrets/manager.rs", "/var/log/auth.log",
         "./node_modules/.bin/tsc", "/usr/lib/python3.11/site-packages/requests/auth.py",
         "deploy/k8s/secret-template.yaml", "/opt/app/config/credentials.example.json"]
PLACEHOLDERS = [
    lambda: dumps({"password": ""}),
    lambda: dumps({"password": "${PASSWORD}"}),
    lambda: dumps({"api_key": "<your-api-key>"}),
    lambda: "API_KEY=YOUR_API_KEY_HERE",
    lambda: "token: ${{ secrets.GITHUB_TOKEN }}",
    lambda: "password=$DB_PASSWORD",
    lambda: dumps({"client_secret": "********"}),
    lambda: dumps({"secret": "REDACTED"}),
    lambda: "OPENAI_API_KEY=sk-...",
    lambda: dumps({"token": "{{ vault_token }}"}),
    lambda: "export AWS_SECRET_ACCESS_KEY=<secret>",
    lambda: dumps({"env": {"STRIPE_SECRET_KEY": "sk_live_XXXXXXXXXXXXXXXXXXXXXXXX"}}),
    lambda: "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    lambda: dumps({"password": "null"}),
    lambda: "DATABASE_URL=postgres://user:password@localhost:5432/db",
    lambda: dumps({"api_key": "process.env.API_KEY"}),
    lambda: "SLACK_BOT_TOKEN=xoxb-your-token",
]


def neg_luhn_invalid():
    while True:
        n = pick(["4", "5" + str(R.randint(1, 5)), "6011"])
        n += rs(DIG, 16 - len(n))
        if not luhn_ok(n):
            return format_card(n, pick(["plain", "spaces", "dashes"]))


def neg_ssn():
    return pick([
        lambda: "000-%02d-%04d" % (R.randint(1, 99), R.randint(1, 9999)),
        lambda: "666-%02d-%04d" % (R.randint(1, 99), R.randint(1, 9999)),
        lambda: "9%02d-%02d-%04d" % (R.randint(0, 99), R.randint(1, 99), R.randint(1, 9999)),
        lambda: "%03d-00-%04d" % (R.randint(1, 665), R.randint(1, 9999)),
        lambda: "%03d-%02d-0000" % (R.randint(1, 665), R.randint(1, 99)),
    ])()


def negative_samples():
    out = []  # (category, text)

    def add(cat, n, fn):
        for _ in range(n):
            out.append((cat, fn()))

    add("sha1", 20, lambda: pick([
        lambda: dumps({"checksum": {"sha1": hexdigest(40)}, "file": "release.tar.gz"}),
        lambda: "%s  dist/app-%d.%d.%d.whl" % (hexdigest(40), R.randint(0, 3), R.randint(0, 20), R.randint(0, 9)),
    ])())
    add("sha256", 25, lambda: pick([
        lambda: "%s  node-v20.11.1-linux-x64.tar.xz" % hexdigest(64),
        lambda: dumps({"image": "ghcr.io/acme/api@sha256:%s" % hexdigest(64)}),
        lambda: dumps({"artifact": "build.zip", "sha256": hexdigest(64), "size": R.randint(1000, 9_000_000)}),
        lambda: "Digest: sha256:%s" % hexdigest(64),
    ])())
    add("md5", 20, lambda: pick([
        lambda: dumps({"etag": "\"%s\"" % hexdigest(32)}),
        lambda: "MD5 (backup.sql.gz) = %s" % hexdigest(32),
        lambda: dumps({"content_md5": hexdigest(32), "key": "uploads/photo.jpg"}),
    ])())
    add("git_sha", 25, lambda: pick([
        lambda: "commit %s Author: CI Bot" % hexdigest(40),
        lambda: dumps({"command": "git checkout %s" % hexdigest(40)}),
        lambda: "%s Merge pull request #%d from feature/retry" % (hexdigest(7), R.randint(100, 9999)),
        lambda: dumps({"sha": hexdigest(40), "message": "fix: handle empty response", "parents": [hexdigest(40)]}),
        lambda: "HEAD is now at %s Bump version" % hexdigest(7),
    ])())
    add("uuid", 25, lambda: pick([
        lambda: dumps({"request_id": uuid4()}),
        lambda: "%s INFO handled request id=%s in 12ms" % (ts(), uuid4()),
        lambda: dumps({"tenant": uuid4(), "user": uuid4()}),
        lambda: "kubectl delete pod worker-%s" % uuid4()[:8],
    ])())
    add("luhn_invalid", 25, lambda: pick([
        lambda: dumps({"tracking_number": neg_luhn_invalid()}),
        lambda: "Order reference %s" % neg_luhn_invalid(),
        lambda: dumps({"account_no": neg_luhn_invalid().replace(" ", "").replace("-", "")}),
    ])())
    add("ssn_invalid", 25, lambda: pick([
        lambda: dumps({"employee": {"ssn": neg_ssn()}}),
        lambda: "SSN: %s" % neg_ssn(),
        lambda: dumps({"text": "Test fixture uses SSN %s which is never issued." % neg_ssn()}),
    ])())
    add("iban_invalid", 20, lambda: pick([
        lambda: dumps({"iban": make_iban(pick(["DE", "GB", "FR", "NL"]), valid=False)}),
        lambda: "IBAN: %s" % group4(make_iban(pick(["DE", "GB", "FR", "NL"]), valid=False)),
    ])())
    add("base64_harmless", 25, lambda: pick([
        lambda: dumps({"image": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAA" + rs(ALNUM + "+/", R.randint(60, 200))}),
        lambda: dumps({"content": b64(pick(PROSE).encode()), "encoding": "base64"}),
        lambda: dumps({"integrity": "sha512-" + b64(rbytes(64))}),
        lambda: dumps({"font": "data:font/woff2;base64,d09GMgABAAAAA" + rs(ALNUM + "+/", R.randint(60, 160))}),
        lambda: "echo %s | base64 -d" % b64(pick(PROSE).encode()),
    ])())
    add("akia_wrong_length", 15, lambda: pick([
        lambda: dumps({"key_id": "AKIA" + rs(B32, R.randint(8, 13))}),
        lambda: "id=AKIA%s" % rs(B32, R.randint(20, 24)),
        lambda: "ASIA" + rs(B32, R.randint(10, 14)),
    ])())
    add("version", 3, lambda: pick([
        lambda: dumps({"name": "agent", "version": "%d.%d.%d.%d" % tuple(R.randint(1, 20) for _ in range(4))}),
        lambda: "Version: %d.%d.%d.%d" % tuple(R.randint(1, 20) for _ in range(4)),
    ])())
    add("timestamp", 20, lambda: pick([
        lambda: ts() + " INFO server started",
        lambda: dumps({"created_at": ts(), "updated_at": ts()}),
        lambda: dumps({"epoch": R.randint(1_600_000_000, 1_800_000_000), "epoch_ms": R.randint(1_600_000_000_000, 1_800_000_000_000)}),
        lambda: "Mon, %02d Mar 2025 %02d:%02d:%02d GMT" % (R.randint(1, 28), R.randint(0, 23), R.randint(0, 59), R.randint(0, 59)),
        lambda: dumps({"date": "2025-%02d-%02d" % (R.randint(1, 12), R.randint(1, 28)), "duration_ms": R.randint(1, 99999)}),
    ])())
    add("placeholder", 34, lambda: pick(PLACEHOLDERS)())
    add("prose", 30, lambda: pick([
        lambda: pick(PROSE),
        lambda: dumps({"text": pick(PROSE) + " " + pick(PROSE)}),
        lambda: " ".join(pick(WORDS) for _ in range(R.randint(6, 20))),
    ])())
    add("code", 35, lambda: pick([
        lambda: dumps({"path": pick(["app/auth.py", "src/main.rs", "web/login.ts"]), "content": pick(CODE)}),
        lambda: pick(CODE).replace("\n", " "),
    ])())
    add("path", 20, lambda: pick([
        lambda: dumps({"path": pick(PATHS)}),
        lambda: "open %s: permission denied" % pick(PATHS),
        lambda: dumps({"command": "ls -la %s" % pick(PATHS)}),
    ])())
    add("order_number", 20, lambda: pick([
        lambda: "ORD-%d-%06d" % (R.randint(2019, 2025), R.randint(1, 999999)),
        lambda: dumps({"order_id": R.randint(10_000, 99_999_999), "items": R.randint(1, 9)}),
        lambda: dumps({"invoice": "INV-%05d" % R.randint(1, 99999), "total": "%d.%02d" % (R.randint(1, 999), R.randint(0, 99))}),
        lambda: "Ticket #%d was closed" % R.randint(1000, 99999),
    ])())
    add("short_words", 20, lambda: pick([
        lambda: pick(WORDS),
        lambda: dumps({"status": pick(["ok", "error", "pending", "done"]), "count": R.randint(0, 99)}),
        lambda: "%s-%s-%d" % (pick(WORDS), pick(WORDS), R.randint(1, 99)),
    ])())
    add("package_refs", 15, lambda: pick([
        lambda: "npm install %s@%d.%d.%d" % (pick(["lodash", "react", "@types/node", "express"]), R.randint(1, 20), R.randint(0, 30), R.randint(0, 30)),
        lambda: "ISBN 978-%d-%02d-%06d-%d" % (R.randint(0, 9), R.randint(10, 99), R.randint(0, 999999), R.randint(0, 9)),
        lambda: dumps({"dependencies": {"@babel/core": "^7.%d.0" % R.randint(0, 24), "typescript": "5.%d.2" % R.randint(0, 6)}}),
        lambda: "@pytest.fixture(scope=\"session\") def db(): ...",
    ])())
    add("loopback_ip", 6, lambda: pick([
        lambda: dumps({"listen": "127.0.0.1:%d" % R.randint(1024, 65535)}),
        lambda: "server bound to 0.0.0.0:%d" % R.randint(1024, 65535),
        lambda: dumps({"command": "curl http://localhost:%d/healthz" % R.randint(1024, 65535)}),
    ])())
    add("identifiers", 20, lambda: pick([
        lambda: dumps({"pod": "api-%s-%s" % (rs(LO + DIG, 10), rs(LO + DIG, 5))}),
        lambda: dumps({"channel": "C" + rs(UP + DIG, 10), "user": "U" + rs(UP + DIG, 10)}),
        lambda: dumps({"video_id": rs(B64URL, 11)}),
        lambda: "color: #%s; background: #%s;" % (rs(HEX, 6), rs(HEX, 6)),
        lambda: dumps({"trace_id": rs(HEX, 32), "span_id": rs(HEX, 16)}),
    ])())
    return out


# --------------------------------------------------------------------------- mixed positives


def mixed_samples():
    out = []  # (labels, text)
    for _ in range(8):  # ~/.aws/credentials
        ak, sk = gen_aws_access_key(), gen_aws_secret_key()
        out.append((["secret.aws_access_key", "secret.aws_secret_key"],
                    dumps({"path": "~/.aws/credentials",
                           "content": "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\nregion = eu-west-1\n" % (ak, sk)})))
    for _ in range(5):  # STS output
        ak, sk = "ASIA" + rs(B32, 16), gen_aws_secret_key()
        out.append((["secret.aws_access_key", "secret.aws_secret_key"],
                    dumps({"stdout": dumps({"Credentials": {"AccessKeyId": ak, "SecretAccessKey": sk,
                                                            "Expiration": ts()}}), "exit_code": 0})))
    pool = [t for t in SECRET_TYPES if t not in ("secret.aws_secret_key", "secret.generic_high_entropy")]
    for _ in range(12):  # .env with several secrets
        types = R.sample(pool, R.randint(2, 4))
        lines = ["NODE_ENV=production"]
        for t in types:
            lines.append("%s=%s" % (SECRET_TYPES[t][1], SECRET_TYPES[t][0]()))
        lines.append("PORT=3000")
        out.append((sorted(types), dumps({"path": ".env", "content": "\n".join(lines) + "\n"})))
    for _ in range(10):  # customer records
        name = "%s %s" % (pick(FIRST).title(), pick(LAST).title())
        rec = {"name": name, "email": gen_email(), "phone": gen_phone()}
        labels = ["pii.email", "pii.phone"]
        if R.random() < 0.5:
            a, g, s = ssn_parts()
            rec["ssn"] = "%s-%s-%s" % (a, g, s)
            labels.append("pii.ssn")
        if R.random() < 0.5:
            rec["card"] = format_card(card_number(pick(["visa", "mastercard", "amex"])), pick(["plain", "spaces"]))
            labels.append("pii.credit_card")
        out.append((sorted(labels), dumps({"customer": rec})))
    for _ in range(8):  # access logs: ip + email
        out.append((["pii.email", "pii.ip_address"],
                    "%s INFO auth: login ok user=%s ip=%s" % (ts(), gen_email(), public_ipv4())))
    for _ in range(7):  # support ticket prose
        out.append((["pii.credit_card", "pii.email", "pii.phone"],
                    dumps({"text": "Customer %s (phone %s) says card %s was charged twice." % (
                        gen_email(), gen_phone(), format_card(card_number("visa"), "spaces"))})))
    for _ in range(5):  # secret + PII in one tool call
        t = pick(pool)
        out.append((sorted([t, "pii.email"]),
                    dumps({"name": "send_email", "arguments": {"to": gen_email(), "subject": "creds",
                                                               "body": "the key is %s" % SECRET_TYPES[t][0]()}})))
    return out


# --------------------------------------------------------------------------- main


def main():
    global R
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args()
    R = random.Random(args.seed)

    samples = []

    def emit(prefix, kind, labels, text, tag):
        sid = "%s-%s-%04d" % (prefix, tag, len(samples))
        samples.append({"id": sid, "kind": kind, "labels": sorted(set(labels)), "text": text})

    # positives
    for t, (gen, env, key, ctxs, count) in SECRET_TYPES.items():
        for i in range(count + EXTRA_PER_TYPE):
            ctx = ctxs[i % len(ctxs)] if i < len(ctxs) else None
            emit("pos", "positive", [t], wrap_secret(t, gen(), ctx), t.split(".", 1)[1])
    for t, (gen, count) in PEM_TYPES.items():
        for _ in range(count):
            emit("pos", "positive", labels_for(t), wrap_pem(t, gen()), t.split(".", 1)[1])
    for t, count in PII_COUNTS.items():
        for _ in range(count):
            emit("pos", "positive", [t], pii_text(t, gen_pii(t)), t.split(".", 1)[1])
    for labels, text in mixed_samples():
        emit("pos", "positive", labels, text, "mixed")

    # obfuscated positives
    rot = list(OBF_TYPES)
    R.shuffle(rot)
    k = 0
    for transform, count in OBF_PLAN:
        for _ in range(count):
            while True:
                t = rot[k % len(rot)]
                k += 1
                if t in PEM_TYPES and transform not in PEM_ONLY_TRANSFORMS:
                    continue
                if t in CONTEXT_ONLY and transform not in ("zero_width", "homoglyph"):
                    continue
                v = gen_value(t)
                if transform == "homoglyph" and sum(c in HOMO for c in v) < 2:
                    continue
                break
            emit("obf", "obfuscated", labels_for(t), obfuscated_text(transform, t, v), transform)

    # hard negatives
    for cat, text in negative_samples():
        emit("neg", "negative", [], text, cat)

    for s in samples:
        assert "\n" not in s["text"] and "\r" not in s["text"], s["id"]
        for ch in ("\u2028", "\u2029", "\x85", "\x0b", "\x0c"):
            assert ch not in s["text"], s["id"]

    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "corpus.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")

    write_stats(args.out_dir, samples)
    print("wrote %d samples to %s" % (len(samples), path))


def write_stats(out_dir, samples):
    per = collections.defaultdict(collections.Counter)
    kinds = collections.Counter()
    neg_cats = collections.Counter()
    nbytes = 0
    for s in samples:
        kinds[s["kind"]] += 1
        nbytes += len(s["text"].encode())
        for label in s["labels"]:
            per[label][s["kind"]] += 1
        if s["kind"] == "negative":
            neg_cats[s["id"].split("-", 1)[1].rsplit("-", 1)[0]] += 1
        elif s["kind"] == "obfuscated":
            neg_cats["(obfuscation) " + s["id"].split("-", 1)[1].rsplit("-", 1)[0]] += 1
    lines = ["corpus.jsonl: %d samples, %d text bytes" % (len(samples), nbytes),
             "kinds: " + ", ".join("%s %d" % kv for kv in sorted(kinds.items())),
             "",
             "%-40s %9s %11s %6s" % ("type", "positive", "obfuscated", "total")]
    for t in sorted(per):
        c = per[t]
        lines.append("%-40s %9d %11d %6d" % (t, c["positive"], c["obfuscated"], c["positive"] + c["obfuscated"]))
    lines += ["", "%-40s %6s" % ("category (negatives; obfuscation transforms)", "count")]
    for cat, n in sorted(neg_cats.items()):
        lines.append("%-40s %6d" % (cat, n))
    with open(os.path.join(out_dir, "corpus_stats.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
