#!/usr/bin/env python3
"""Score `mcpguard detect` and two peers (detect-secrets, presidio-analyzer) on the labeled
corpus, and measure their scan throughput. Prints markdown tables for BENCHMARKS.md.

    compare.py --corpus bench/detect/corpus.jsonl --mcpguard target/release/mcpguard
    compare.py --corpus bench/detect/corpus.jsonl --skip-mcpguard     # peers only

Scoring (per sample, per type):
  * a label counts as found (TP) when the tool reports that type in the sample; a tool's
    generic secret finding (detect-secrets "Secret Keyword" / "... High Entropy String",
    mcpguard's secret.generic_high_entropy) counts as finding ANY secret.* label of the
    sample — "typed recall" is the stricter number that gives no such credit;
  * a reported type that is not among the sample's labels is a false positive (a generic
    finding is one only when the sample has no secret.* label);
  * precision is per reported finding (sample, type), recall per label.
A type a tool has no detector for shows its recall in parentheses (hits, if any, come only
from generic findings) and is left out of the tool's "supported types" recall.
"""

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
GENERIC = "secret.generic_high_entropy"

# detect-secrets plugin `type` -> our type. A callable picks the type from the matched value
# (one plugin covers two of our types); "generic" marks a detector without a counterpart.
DS_MAP = {
    "AWS Access Key": lambda v: ("secret.aws_access_key"
                                 if re.fullmatch(r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}", v or "")
                                 else "secret.aws_secret_key"),
    "Azure Storage Account access key": "secret.azure_connection_string",
    "Basic Auth Credentials": "secret.database_url",
    "GitHub Token": "secret.github_token",
    "GitLab Token": "secret.gitlab_token",
    "JSON Web Token": "secret.jwt",
    "NPM tokens": "secret.npm_token",
    "OpenAI Token": "secret.openai_api_key",
    "Private Key": lambda v: ("secret.openssh_private_key" if "OPENSSH" in (v or "")
                              else "secret.private_key"),
    "PyPI Token": "secret.pypi_token",
    "SendGrid API Key": "secret.sendgrid_api_key",
    "Slack Token": lambda v: ("secret.slack_webhook" if (v or "").startswith("https://")
                              else "secret.slack_token"),
    "Stripe Access Key": "secret.stripe_key",
    "Telegram Bot Token": "secret.telegram_bot_token",
    "Twilio API Key": "secret.twilio_api_key",
    "Public IP (ipv4)": "pii.ip_address",
    "Secret Keyword": GENERIC,
    "Base64 High Entropy String": GENERIC,
    "Hex High Entropy String": GENERIC,
    "Artifactory Credentials": GENERIC,
    "Cloudant Credentials": GENERIC,
    "Discord Bot Token": GENERIC,
    "IBM Cloud IAM Key": GENERIC,
    "IBM COS HMAC Credentials": GENERIC,
    "Mailchimp Access Key": GENERIC,
    "SoftLayer Credentials": GENERIC,
    "Square OAuth Secret": GENERIC,
}
DS_SUPPORTED = {
    "secret.aws_access_key", "secret.aws_secret_key", "secret.azure_connection_string",
    "secret.database_url", "secret.github_token", "secret.gitlab_token", "secret.jwt",
    "secret.npm_token", "secret.openai_api_key", "secret.openssh_private_key", "secret.private_key",
    "secret.pypi_token", "secret.sendgrid_api_key", "secret.slack_webhook", "secret.slack_token",
    "secret.stripe_key", "secret.telegram_bot_token", "secret.twilio_api_key", "pii.ip_address",
    GENERIC,
}

# presidio entity -> our type. Only these entities are requested; presidio's other
# recognizers (URL, DATE_TIME, US_DRIVER_LICENSE, ...) detect things outside our taxonomy.
PRESIDIO_MAP = {
    "CREDIT_CARD": "pii.credit_card",
    "US_SSN": "pii.ssn",
    "IBAN_CODE": "pii.iban",
    "EMAIL_ADDRESS": "pii.email",
    "PHONE_NUMBER": "pii.phone",
    "IP_ADDRESS": "pii.ip_address",
}
PRESIDIO_SUPPORTED = set(PRESIDIO_MAP.values())

SCANNED_RE = re.compile(r"scanned\s+(\d+)\s+bytes\s+in\s+([0-9.eE+-]+)\s*s")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def dist_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001 - only for display
        return "?"


def mb(nbytes):
    return nbytes / 1e6


# --------------------------------------------------------------------------- tools


class Tool:
    name = "?"
    supported = set()
    init_seconds = 0.0
    note = ""

    def scan_corpus(self, texts, texts_path):
        """Return (list of sets of our type ids, per sample; scan seconds)."""
        raise NotImplementedError

    def throughput(self, big):
        """Scan (a prefix of) the big input; return (bytes scanned, seconds, note)."""
        raise NotImplementedError


class DetectSecrets(Tool):
    """detect-secrets, all plugins and default filters, through `scan_file` — the code path
    of `detect-secrets scan FILE` — over a file with one sample per line."""

    name = "detect-secrets"
    supported = DS_SUPPORTED

    def __init__(self, workdir):
        t0 = time.perf_counter()
        from detect_secrets.core.scan import scan_file
        from detect_secrets.settings import default_settings
        self._scan_file = scan_file
        self._settings_cm = default_settings()
        self._settings_cm.__enter__()
        self.version = dist_version("detect-secrets")
        self.workdir = workdir
        self.unmapped = collections.Counter()
        self.init_seconds = time.perf_counter() - t0

    def _map(self, secret):
        target = DS_MAP.get(secret.type)
        if target is None:
            self.unmapped[secret.type] += 1
            return GENERIC
        return target(secret.secret_value) if callable(target) else target

    def _scan(self, path):
        return list(self._scan_file(path))

    def scan_corpus(self, texts, texts_path):
        t0 = time.perf_counter()
        secrets = self._scan(texts_path)
        elapsed = time.perf_counter() - t0
        found = [set() for _ in texts]
        for s in secrets:
            found[s.line_number - 1].add(self._map(s))
        return found, elapsed

    def throughput(self, big):
        # The big input is whole copies of the corpus; scan copy files until the budget is spent.
        scanned, elapsed, copies = 0, 0.0, 0
        while elapsed < big.budget and copies < big.copies:
            t0 = time.perf_counter()
            self._scan(big.copy_path)
            elapsed += time.perf_counter() - t0
            scanned += big.copy_bytes
            copies += 1
        return scanned, elapsed, "%d of %d corpus copies" % (copies, big.copies)


class Presidio(Tool):
    """presidio-analyzer's AnalyzerEngine with its NoOpNlpEngine: the predefined pattern
    recognizers only, no spaCy model, no NER, no context enhancement from the text."""

    name = "presidio"
    supported = PRESIDIO_SUPPORTED

    def __init__(self, threshold):
        t0 = time.perf_counter()
        # tldextract (used by the e-mail recognizer) would try to download the public suffix
        # list; an empty URL list makes it use the snapshot it ships.
        os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NoOpNlpEngine
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.engine = AnalyzerEngine(
                nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "noop"}]),
                supported_languages=["en"])
        self.version = dist_version("presidio-analyzer")
        self.threshold = threshold
        self.entities = list(PRESIDIO_MAP)
        loaded = sorted(m for m in sys.modules if m.startswith(("en_core", "spacy_models")))
        if loaded:
            raise RuntimeError("a spaCy model was loaded: %s" % loaded)
        self.init_seconds = time.perf_counter() - t0

    def _analyze(self, text):
        return self.engine.analyze(text=text, language="en", entities=self.entities,
                                   score_threshold=self.threshold)

    def scan_corpus(self, texts, texts_path):
        found, elapsed = [], 0.0
        for text in texts:
            t0 = time.perf_counter()
            results = self._analyze(text)
            elapsed += time.perf_counter() - t0
            found.append({PRESIDIO_MAP[r.entity_type] for r in results if r.entity_type in PRESIDIO_MAP})
        return found, elapsed

    def throughput(self, big):
        scanned, elapsed, n = 0, 0.0, 0
        for text, nbytes in big.lines():
            if elapsed >= big.budget:
                break
            t0 = time.perf_counter()
            self._analyze(text)
            elapsed += time.perf_counter() - t0
            scanned += nbytes
            n += 1
        return scanned, elapsed, "%d of %d lines" % (n, big.total_lines)


class McpGuard(Tool):
    """`mcpguard detect --format json --each-line FILE`, one run per measurement."""

    name = "mcpguard"

    def __init__(self, binary, types):
        self.binary = binary
        self.supported = set(types)
        self.version = ""
        self.unknown = collections.Counter()
        try:
            out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
            self.version = (out.stdout.strip().split() or [""])[-1]
        except (OSError, subprocess.SubprocessError):
            pass

    def _run(self, path, capture):
        t0 = time.perf_counter()
        proc = subprocess.run([self.binary, "detect", "--format", "json", "--each-line", path],
                              stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        wall = time.perf_counter() - t0
        stderr = proc.stderr.decode("utf-8", "replace")
        if proc.returncode not in (0, 1):
            raise RuntimeError("mcpguard detect exited %d: %s" % (proc.returncode, stderr.strip()[-2000:]))
        m = None
        for m in SCANNED_RE.finditer(stderr):
            pass
        own = (int(m.group(1)), float(m.group(2))) if m else None
        return proc.stdout if capture else None, wall, own

    def scan_corpus(self, texts, texts_path):
        stdout, wall, own = self._run(texts_path, capture=True)
        found = [None] * len(texts)
        for raw in stdout.decode("utf-8").splitlines():
            if not raw.strip():
                continue
            obj = json.loads(raw)
            n = int(obj["line"])
            if not 1 <= n <= len(texts):
                raise RuntimeError("mcpguard reported line %d of %d" % (n, len(texts)))
            types = set()
            for f in obj.get("findings", []):
                t = f.get("type", "")
                if t in self.supported:
                    types.add(t)
                elif t.startswith("secret."):
                    self.unknown[t] += 1
                    types.add(GENERIC)
                else:
                    self.unknown[t] += 1  # outside the taxonomy: not scored
            found[n - 1] = types
        missing = [i + 1 for i, f in enumerate(found) if f is None]
        if missing:
            raise RuntimeError("mcpguard printed no result for %d lines (first: %s)" % (len(missing), missing[:5]))
        self.corpus_wall = wall
        self.corpus_own = own
        return found, (own[1] if own else wall)

    def throughput(self, big):
        _, wall, own = self._run(big.path, capture=False)
        if own:
            return own[0], own[1], "tool-reported time (wall %.2f s incl. start-up)" % wall
        return big.total_bytes, wall, "wall time incl. process start"


# --------------------------------------------------------------------------- big input


class BigInput:
    """The corpus texts repeated to about `target_mb` MB (whole copies)."""

    def __init__(self, texts, workdir, target_mb, budget):
        self.texts = texts
        self.budget = budget
        self.copy_bytes = sum(len(t.encode("utf-8")) for t in texts)
        self.copies = max(1, int(round(target_mb * 1e6 / self.copy_bytes)))
        self.total_bytes = self.copy_bytes * self.copies
        self.total_lines = len(texts) * self.copies
        self.copy_path = os.path.join(workdir, "corpus_texts.txt")
        self.path = os.path.join(workdir, "corpus_texts_big.txt")
        block = ("\n".join(texts) + "\n").encode("utf-8")
        with open(self.path, "wb") as f:
            for _ in range(self.copies):
                f.write(block)

    def lines(self):
        sizes = [len(t.encode("utf-8")) for t in self.texts]
        for _ in range(self.copies):
            yield from zip(self.texts, sizes)


# --------------------------------------------------------------------------- scoring


def score(samples, found, supported):
    kinds = ("positive", "obfuscated")
    support = collections.defaultdict(collections.Counter)  # type -> kind -> n
    tp = collections.defaultdict(collections.Counter)
    typed = collections.defaultdict(collections.Counter)
    reported = collections.Counter()
    correct = collections.Counter()
    neg_flagged = 0
    for s, F in zip(samples, found):
        labels = set(s["labels"])
        has_secret = any(l.startswith("secret.") for l in labels)
        for l in labels:
            support[l][s["kind"]] += 1
            if l in F:
                tp[l][s["kind"]] += 1
                typed[l][s["kind"]] += 1
            elif GENERIC in F and l.startswith("secret."):
                tp[l][s["kind"]] += 1
        for f in F:
            reported[f] += 1
            if f in labels or (f == GENERIC and has_secret):
                correct[f] += 1
        if s["kind"] == "negative" and F:
            neg_flagged += 1

    def recall(counter, types, kind_list):
        sup = sum(support[t][k] for t in types for k in kind_list)
        hit = sum(counter[t][k] for t in types for k in kind_list)
        return (hit / sup if sup else None), hit, sup

    all_types = sorted(support)
    sup_types = [t for t in all_types if t in supported]
    n_reported = sum(reported.values())
    overall = {
        "precision": (sum(correct.values()) / n_reported) if n_reported else None,
        "findings": n_reported,
        "false_positives": n_reported - sum(correct.values()),
        "negatives_flagged": neg_flagged,
        "negatives": sum(1 for s in samples if s["kind"] == "negative"),
    }
    for label, kl in (("pos", ["positive"]), ("obf", ["obfuscated"]), ("all", list(kinds))):
        overall["recall_%s_all" % label] = recall(tp, all_types, kl)[0]
        overall["recall_%s_supported" % label] = recall(tp, sup_types, kl)[0]
        overall["typed_recall_%s_all" % label] = recall(typed, all_types, kl)[0]
    per_type = {}
    for t in sorted(set(all_types) | set(reported)):
        per_type[t] = {
            "support_pos": support[t]["positive"], "support_obf": support[t]["obfuscated"],
            "tp_pos": tp[t]["positive"], "tp_obf": tp[t]["obfuscated"],
            "typed_tp_pos": typed[t]["positive"], "typed_tp_obf": typed[t]["obfuscated"],
            "reported": reported[t], "fp": reported[t] - correct[t],
            "supported": t in supported,
        }
    return overall, per_type


# --------------------------------------------------------------------------- output


def pct(x, digits=0):
    return "—" if x is None else ("%.*f%%" % (digits, 100 * x))


def recall_cell(tp_, sup, supported):
    if sup == 0:
        return "·"
    r = pct(tp_ / sup)
    if supported:
        return r
    return "n/a" if tp_ == 0 else "(%s)" % r


def precision_cell(row):
    if row["reported"] == 0:
        return "·"
    return "%s" % pct((row["reported"] - row["fp"]) / row["reported"]) + ("" if row["fp"] == 0 else " (%d FP)" % row["fp"])


def render(results, samples, speeds, corpus_bytes, args):
    out = []
    tools = [r["tool"] for r in results]
    kinds = collections.Counter(s["kind"] for s in samples)
    out.append("### Detection quality: `bench/detect/corpus.jsonl`\n")
    out.append("%d samples (%d positive, %d obfuscated, %d hard negatives), %.2f MB of text. "
               "Tools: %s.\n" % (len(samples), kinds["positive"], kinds["obfuscated"], kinds["negative"],
                                mb(corpus_bytes), ", ".join("%s %s" % (r["tool"].name, r["tool"].version or "?")
                                                           for r in results)))
    out.append("| tool | precision | FP findings | negatives flagged | recall plain (all types) | "
               "recall plain (supported) | recall obfuscated (all) | recall obfuscated (supported) | "
               "typed recall (all, plain+obf) |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        o = r["overall"]
        out.append("| %s | %s | %d of %d | %d of %d | %s | %s | %s | %s | %s |" % (
            r["tool"].name, pct(o["precision"], 1), o["false_positives"], o["findings"],
            o["negatives_flagged"], o["negatives"],
            pct(o["recall_pos_all"], 1), pct(o["recall_pos_supported"], 1),
            pct(o["recall_obf_all"], 1), pct(o["recall_obf_supported"], 1), pct(o["typed_recall_all_all"], 1)))
    out.append("")
    out.append("Per type: P = precision of the tool's findings of that type (FP count if any); "
               "R = recall on plain / obfuscated samples. `(x%)` = the tool has no detector for the "
               "type (hits come from its generic findings only), `n/a` = none at all, `·` = nothing to score.\n")
    head = "| type | n plain/obf |" + "".join(" %s P | %s R plain | %s R obf |" % (t.name, t.name, t.name) for t in tools)
    out.append(head)
    out.append("|---|---|" + "---|---|---|" * len(tools))
    all_types = sorted({t for r in results for t in r["per_type"]})
    for t in all_types:
        rows = [r["per_type"].get(t) for r in results]
        base = next(x for x in rows if x)
        cells = []
        for r, row in zip(results, rows):
            if row is None:
                cells += ["·", "·", "·"]
                continue
            cells += [precision_cell(row), recall_cell(row["tp_pos"], row["support_pos"], row["supported"]),
                      recall_cell(row["tp_obf"], row["support_obf"], row["supported"])]
        out.append("| %s | %d/%d | %s |" % (t, base["support_pos"], base["support_obf"], " | ".join(cells)))
    out.append("")
    if speeds:
        out.append("### Detection speed\n")
        out.append("Scan time only (no process start-up or import for the Python peers). Big input: the "
                   "corpus texts repeated to %.0f MB; peers scan a prefix within a %.0f s budget.\n"
                   % (args.big_mb, args.budget))
        ref = next((s for s in speeds if s["tool"] == "mcpguard"), None)
        out.append("| tool | corpus pass MB/s | big input: bytes scanned | seconds | MB/s | mcpguard ÷ tool | how |")
        out.append("|---|---|---|---|---|---|---|")
        for s in speeds:
            ratio = ""
            if ref and s["tool"] != "mcpguard" and s["mbps"] > 0:
                x = ref["mbps"] / s["mbps"]
                ratio = ("%.0f×" if x >= 10 else "%.1f×") % x
            out.append("| %s | %.3f | %d | %.2f | %.3f | %s | %s |" % (
                s["tool"], s["corpus_mbps"], s["bytes"], s["seconds"], s["mbps"], ratio, s["how"]))
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus.jsonl"))
    ap.add_argument("--mcpguard", default="target/release/mcpguard", help="path to the mcpguard binary")
    ap.add_argument("--skip-mcpguard", action="store_true", help="run the peers only")
    ap.add_argument("--skip-peers", action="store_true", help="run mcpguard only")
    ap.add_argument("--repeat", type=int, default=1,
                    help="time the corpus pass (and mcpguard's big-input run) N times, keep the fastest")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds each peer may spend on the big input")
    ap.add_argument("--big-mb", type=float, default=50.0, help="size of the big input in MB")
    ap.add_argument("--no-throughput", action="store_true", help="skip the big-input throughput runs")
    ap.add_argument("--presidio-threshold", type=float, default=0.0,
                    help="presidio score_threshold (0 = AnalyzerEngine's default)")
    ap.add_argument("--workdir", help="where to write the texts files (default: a temp dir, removed)")
    ap.add_argument("--json-out", help="also write the scores as JSON here")
    ap.add_argument("--misses", type=int, default=0, help="print up to N missed / false-positive sample ids per tool")
    args = ap.parse_args()

    samples = [json.loads(l) for l in open(args.corpus, encoding="utf-8") if l.strip()]
    texts = [s["text"] for s in samples]
    for s in samples:
        if "\n" in s["text"] or "\r" in s["text"]:
            raise SystemExit("sample %s has a raw newline" % s["id"])
    corpus_bytes = sum(len(t.encode("utf-8")) for t in texts)
    types = sorted({l for s in samples for l in s["labels"]})

    workdir = args.workdir or tempfile.mkdtemp(prefix="mcpguard-detect-bench-")
    os.makedirs(workdir, exist_ok=True)
    texts_path = os.path.join(workdir, "corpus_texts.txt")
    with open(texts_path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(texts) + "\n")

    tools = []
    if not args.skip_mcpguard:
        if not (os.path.isfile(args.mcpguard) and os.access(args.mcpguard, os.X_OK)):
            raise SystemExit("no mcpguard binary at %s (build it: cargo build --release -p mcpguard, "
                             "or pass --skip-mcpguard)" % args.mcpguard)
        tools.append(McpGuard(args.mcpguard, types))
    if not args.skip_peers:
        for ctor in (lambda: DetectSecrets(workdir), lambda: Presidio(args.presidio_threshold)):
            try:
                tools.append(ctor())
            except ImportError as e:
                log("skipping a peer: %s (pip install detect-secrets presidio-analyzer)" % e)

    results, speeds = [], []
    big = None
    try:
        for tool in tools:
            log("%s: scanning %d samples (%.2f MB)..." % (tool.name, len(texts), mb(corpus_bytes)))
            found, best = None, None
            for i in range(max(1, args.repeat)):
                f, secs = tool.scan_corpus(texts, texts_path)
                found = found or f
                best = secs if best is None else min(best, secs)
            overall, per_type = score(samples, found, tool.supported)
            results.append({"tool": tool, "overall": overall, "per_type": per_type, "found": found})
            log("  corpus pass %.2f s (%.3f MB/s), init %.2f s" % (best, mb(corpus_bytes) / best, tool.init_seconds))
            speed = {"tool": tool.name, "corpus_mbps": mb(corpus_bytes) / best, "bytes": 0, "seconds": 0.0,
                     "mbps": 0.0, "how": ""}
            if not args.no_throughput:
                if big is None:
                    big = BigInput(texts, workdir, args.big_mb, args.budget)
                    log("big input: %d copies, %.1f MB" % (big.copies, mb(big.total_bytes)))
                log("  throughput on the big input...")
                nbytes, secs, how = tool.throughput(big)
                # The binary scans all of it in seconds: repeat and keep the fastest run.
                for _ in range(max(1, args.repeat) - 1 if isinstance(tool, McpGuard) else 0):
                    nb2, secs2, how2 = tool.throughput(big)
                    if secs2 and nb2 / secs2 > nbytes / secs:
                        nbytes, secs, how = nb2, secs2, how2
                speed.update(bytes=nbytes, seconds=secs, mbps=mb(nbytes) / secs if secs else 0.0, how=how)
                log("  %d bytes in %.2f s = %.3f MB/s (%s)" % (nbytes, secs, speed["mbps"], how))
            speeds.append(speed)
            if isinstance(tool, McpGuard) and tool.unknown:
                log("  mcpguard types outside the corpus taxonomy: %s" % dict(tool.unknown))
            if isinstance(tool, DetectSecrets) and tool.unmapped:
                log("  detect-secrets types without a mapping (scored as generic): %s" % dict(tool.unmapped))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    print(render(results, samples, speeds if not args.no_throughput else [], corpus_bytes, args))

    if args.misses:
        for r in results:
            fn, fp = [], []
            for s, F in zip(samples, r["found"]):
                labels = set(s["labels"])
                has_secret = any(l.startswith("secret.") for l in labels)
                missed = [l for l in labels if l in r["tool"].supported and l not in F
                          and not (GENERIC in F and l.startswith("secret."))]
                wrong = [f for f in F if f not in labels and not (f == GENERIC and has_secret)]
                if missed:
                    fn.append("%s %s" % (s["id"], ",".join(missed)))
                if wrong:
                    fp.append("%s %s" % (s["id"], ",".join(wrong)))
            log("\n%s: %d samples with misses (supported types), %d with false positives" % (r["tool"].name, len(fn), len(fp)))
            for line in fn[:args.misses]:
                log("  miss " + line)
            for line in fp[:args.misses]:
                log("  fp   " + line)

    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump({"corpus": os.path.basename(args.corpus), "samples": len(samples),
                       "corpus_bytes": corpus_bytes,
                       "tools": {r["tool"].name: {"version": r["tool"].version, "overall": r["overall"],
                                                  "per_type": r["per_type"]} for r in results},
                       "speed": speeds}, f, indent=2)


if __name__ == "__main__":
    main()
