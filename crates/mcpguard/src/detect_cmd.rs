//! `mcpguard detect`: the detectors on any text or JSON.

use std::io::{Read, Write};
use std::time::Instant;

use mcpguard_detect::{Finding, Limits};

use crate::cli::{DetectArgs, DetectFormat};

/// Largest input read.
const MAX_INPUT: u64 = 1 << 30;

/// Runs the command; exits 0 (nothing found), 1 (found), 2 (error).
pub fn run(args: &DetectArgs) -> anyhow::Result<()> {
    if args.list {
        for (detector, kind) in mcpguard_detect::all_types() {
            println!("{kind:<40} {detector}");
        }
        return Ok(());
    }
    let code = match scan(args) {
        Ok(found) => i32::from(found),
        Err(e) => {
            eprintln!("mcpguard detect: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn read_input(args: &DetectArgs) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    match args.input.as_deref() {
        None => std::io::stdin().take(MAX_INPUT).read_to_end(&mut bytes)?,
        Some(p) if p.as_os_str() == "-" => {
            std::io::stdin().take(MAX_INPUT).read_to_end(&mut bytes)?
        }
        Some(p) => std::fs::File::open(p)
            .map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", p.display()))?
            .take(MAX_INPUT)
            .read_to_end(&mut bytes)?,
    };
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "the input is not UTF-8 (first bad byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn scan(args: &DetectArgs) -> anyhow::Result<bool> {
    let input = read_input(args)?;
    let detector = crate::guard_setup::detector(Limits {
        max_bytes: MAX_INPUT as usize,
        ..Limits::default()
    })?;
    let started = Instant::now();
    let mut found = false;
    let mut out = std::io::stdout().lock();
    let scan_one = |doc: &str| -> Result<Vec<Finding>, mcpguard_detect::ScanError> {
        let trimmed = doc.trim_start();
        if !args.text
            && (trimmed.starts_with('{') || trimmed.starts_with('['))
            && serde_json::from_str::<serde::de::IgnoredAny>(doc).is_ok()
        {
            detector.scan_json(doc)
        } else {
            detector.scan_text(doc)
        }
    };
    if args.each_line {
        let mut rows = Vec::new();
        for (n, line) in input.lines().enumerate() {
            let findings = scan_one(line).map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
            found |= !findings.is_empty();
            match args.format {
                DetectFormat::Json => {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({"line": n + 1, "findings": findings})
                    )?;
                }
                DetectFormat::Table => {
                    rows.extend(findings.into_iter().map(|f| (format!("line {}", n + 1), f)))
                }
            }
        }
        if args.format == DetectFormat::Table {
            table(&mut out, &rows)?;
        }
    } else {
        let findings = scan_one(&input)?;
        found = !findings.is_empty();
        match args.format {
            DetectFormat::Json => writeln!(
                out,
                "{}",
                serde_json::json!({"findings": findings, "bytes": input.len()})
            )?,
            DetectFormat::Table => {
                let rows: Vec<(String, Finding)> =
                    findings.into_iter().map(|f| (String::new(), f)).collect();
                table(&mut out, &rows)?;
            }
        }
    }
    eprintln!(
        "scanned {} bytes in {:.6} s",
        input.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(found)
}

fn table(out: &mut impl Write, rows: &[(String, Finding)]) -> anyhow::Result<()> {
    if rows.is_empty() {
        writeln!(out, "no findings")?;
        return Ok(());
    }
    let header = [
        "TYPE",
        "DETECTOR",
        "LOCATION",
        "ENCODING",
        "CONFIDENCE",
        "DIGEST",
    ];
    let lines: Vec<[String; 6]> = rows
        .iter()
        .map(|(prefix, f)| {
            let location = if prefix.is_empty() {
                f.location.clone()
            } else {
                format!("{prefix}: {}", f.location)
            };
            [
                f.kind.to_string(),
                f.detector.to_string(),
                location,
                f.encoding.clone().unwrap_or_else(|| "-".into()),
                format!("{:.2}", f.confidence),
                f.digest.clone(),
            ]
        })
        .collect();
    crate::table::write_table(out, header, &lines)?;
    writeln!(out, "{} finding(s)", lines.len())?;
    Ok(())
}
