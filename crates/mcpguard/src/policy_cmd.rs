//! `mcpguard validate-policy` and `mcpguard policy test`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use mcpguard_detect::{Limits, Provenance, TaintLedger};
use mcpguard_policy::{Action, Call, SessionFacts};
use serde::Deserialize;

use crate::cli::{PolicyTestArgs, ValidatePolicyArgs};
use crate::guard_setup;

/// `validate-policy`: exit 0 when the files form a valid policy, 1 when not.
pub fn validate(args: &ValidatePolicyArgs) -> anyhow::Result<()> {
    let files = guard_setup::policy_files(&args.paths)?;
    let files: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| !guard_setup::is_fixture(f))
        .collect();
    if files.is_empty() {
        anyhow::bail!(
            "no policy files found in the given paths (directories are searched for *.yaml)"
        );
    }
    let sources = guard_setup::read_policy_files(&files)?;
    match mcpguard_policy::compile(&sources, Action::Deny) {
        Ok(policy) => {
            println!(
                "ok: {} file(s), {} rule(s), default action {}",
                files.len(),
                policy.rules().len(),
                policy.default_action().as_str()
            );
            Ok(())
        }
        Err(errors) => {
            for e in &errors {
                println!("{e}");
            }
            eprintln!("{} error(s)", errors.len());
            std::process::exit(1);
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    /// Policy files, relative to the fixture.
    policies: Vec<PathBuf>,
    tests: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    call: TestCall,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    session: TestSession,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCall {
    #[serde(default = "tools_call")]
    method: String,
    tool: String,
    #[serde(default)]
    exposed: Option<String>,
    #[serde(default)]
    server: Option<String>,
    #[serde(default)]
    arguments: Option<serde_json::Value>,
    #[serde(default)]
    identity: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

fn tools_call() -> String {
    "tools/call".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestSession {
    #[serde(default)]
    untrusted: bool,
    /// Calls made so far (default: the number of outputs).
    #[serde(default)]
    calls: Option<u64>,
    /// Calls in the last minute (default: as `calls`).
    #[serde(default)]
    recent_calls: Option<u64>,
    /// Earlier tool outputs, scanned into the taint ledger.
    #[serde(default)]
    outputs: Vec<Output>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Output {
    tool: String,
    #[serde(default)]
    server: String,
    result: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    action: Action,
    #[serde(default)]
    rule: Option<String>,
    /// Modifier rules that must match.
    #[serde(default)]
    modifiers: Vec<String>,
    /// Modifier rules that must not match.
    #[serde(default)]
    no_modifiers: Vec<String>,
}

fn fixtures(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list `{}`", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml")
                && guard_setup::is_fixture(&p)
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// `policy test`: exit 0 when every test passes, 1 otherwise.
pub fn test(args: &PolicyTestArgs) -> anyhow::Result<()> {
    let files = fixtures(&args.paths)?;
    if files.is_empty() {
        anyhow::bail!("no policy test fixtures found (YAML files with a top-level `tests:` list)");
    }
    let detector = guard_setup::detector(Limits::default())?;
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in &files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read `{}`", file.display()))?;
        let options =
            serde_saphyr::options! { duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error };
        let fixture: Fixture =
            serde_saphyr::from_str_with_options(&text, options).map_err(|e| {
                anyhow::anyhow!(
                    "{}: {}",
                    file.display(),
                    e.to_string().lines().next().unwrap_or_default()
                )
            })?;
        let base = file.parent().unwrap_or(Path::new("."));
        let policy_files: Vec<PathBuf> = fixture.policies.iter().map(|p| base.join(p)).collect();
        let policy =
            guard_setup::load_policy(&guard_setup::policy_files(&policy_files)?, Action::Deny)
                .with_context(|| {
                    format!("{}: the policies under test do not compile", file.display())
                })?;
        for case in &fixture.tests {
            let outcome = run_case(&policy, &detector, case);
            match outcome {
                Ok(()) => {
                    passed += 1;
                    if args.verbose {
                        println!("ok    {}: {}", file.display(), case.name);
                    }
                }
                Err(why) => {
                    failed += 1;
                    println!("FAIL  {}: {}: {why}", file.display(), case.name);
                }
            }
        }
    }
    println!(
        "{passed} passed, {failed} failed ({} fixture file(s))",
        files.len()
    );
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn run_case(
    policy: &mcpguard_policy::Policy,
    detector: &mcpguard_detect::Detector,
    case: &TestCase,
) -> Result<(), String> {
    let mut ledger = TaintLedger::new(4096);
    for (i, output) in case.session.outputs.iter().enumerate() {
        let json = output.result.to_string();
        let findings = detector
            .scan_json(&json)
            .map_err(|e| format!("scanning output {i}: {e}"))?;
        ledger.record(
            &findings,
            Provenance {
                tool: output.tool.clone(),
                server: output.server.clone(),
                call: i.to_string(),
            },
        );
    }
    let args_json = case.call.arguments.as_ref().map(|a| a.to_string());
    let (findings, flows) = match &args_json {
        Some(j) => (
            detector
                .scan_json(j)
                .map_err(|e| format!("scanning arguments: {e}"))?,
            ledger
                .flows(detector, j)
                .map_err(|e| format!("checking taint: {e}"))?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    let mut labels: BTreeSet<String> =
        mcpguard_gateway::pipeline::guard::labels_of(&findings, &flows);
    labels.extend(case.labels.iter().cloned());
    if case.session.untrusted {
        labels.insert("untrusted".into());
    }
    let facts = SessionFacts {
        untrusted: case.session.untrusted,
        sensitive: !ledger.is_empty(),
        calls: case
            .session
            .calls
            .unwrap_or(case.session.outputs.len() as u64),
        recent_calls: case
            .session
            .recent_calls
            .or(case.session.calls)
            .unwrap_or(case.session.outputs.len() as u64),
        tools: case
            .session
            .outputs
            .iter()
            .map(|o| o.tool.clone())
            .collect(),
    };
    let decision = policy.evaluate(&Call {
        method: &case.call.method,
        target: Some(&case.call.tool),
        exposed: Some(case.call.exposed.as_deref().unwrap_or(&case.call.tool)),
        server: case.call.server.as_deref(),
        arguments: case.call.arguments.as_ref(),
        labels: &labels,
        identity: case.call.identity.as_deref(),
        roles: &case.call.roles,
        session: &facts,
    });
    let action_ok = decision.action == case.expect.action;
    let rule_ok = case
        .expect
        .rule
        .as_deref()
        .is_none_or(|r| r == decision.rule_id());
    let modifiers: Vec<&str> = decision.modifiers.iter().map(|r| r.id.as_str()).collect();
    if let Some(missing) = case
        .expect
        .modifiers
        .iter()
        .find(|m| !modifiers.contains(&m.as_str()))
    {
        return Err(format!(
            "expected modifier `{missing}` to match; matched modifiers: [{}]",
            modifiers.join(", ")
        ));
    }
    if let Some(extra) = case
        .expect
        .no_modifiers
        .iter()
        .find(|m| modifiers.contains(&m.as_str()))
    {
        return Err(format!("modifier `{extra}` matched but should not have"));
    }
    if action_ok && rule_ok {
        Ok(())
    } else {
        Err(format!(
            "expected {}{}, got {} by `{}` (labels: {})",
            case.expect.action.as_str(),
            case.expect
                .rule
                .as_deref()
                .map(|r| format!(" by `{r}`"))
                .unwrap_or_default(),
            decision.action.as_str(),
            decision.rule_id(),
            labels.iter().cloned().collect::<Vec<_>>().join(", ")
        ))
    }
}
