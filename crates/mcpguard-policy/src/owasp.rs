//! The OWASP ids a rule can carry.
//!
//! OWASP Top 10 for Agentic Applications (2026): ASI01 Agent Goal Hijack, ASI02 Tool
//! Misuse and Exploitation, ASI03 Identity and Privilege Abuse, ASI04 Agentic Supply Chain
//! Vulnerabilities, ASI05 Unexpected Code Execution, ASI06 Memory & Context Poisoning,
//! ASI07 Insecure Inter-Agent Communication, ASI08 Cascading Failures, ASI09 Human-Agent
//! Trust Exploitation, ASI10 Rogue Agents. OWASP MCP Top 10: `MCP01:2025`..`MCP10:2025`.

/// The ten ASI entries: id and title.
pub const ASI: [(&str, &str); 10] = [
    ("ASI01", "Agent Goal Hijack"),
    ("ASI02", "Tool Misuse and Exploitation"),
    ("ASI03", "Identity and Privilege Abuse"),
    ("ASI04", "Agentic Supply Chain Vulnerabilities"),
    ("ASI05", "Unexpected Code Execution"),
    ("ASI06", "Memory & Context Poisoning"),
    ("ASI07", "Insecure Inter-Agent Communication"),
    ("ASI08", "Cascading Failures"),
    ("ASI09", "Human-Agent Trust Exploitation"),
    ("ASI10", "Rogue Agents"),
];

/// True for `ASI01`..`ASI10`.
pub fn is_asi(id: &str) -> bool {
    ASI.iter().any(|(a, _)| *a == id)
}

/// The title of an ASI id.
pub fn asi_title(id: &str) -> Option<&'static str> {
    ASI.iter().find(|(a, _)| *a == id).map(|(_, t)| *t)
}

/// The right spelling of a near-miss (`ASI-03` → `ASI03`).
pub fn fix_asi(id: &str) -> Option<String> {
    let digits: String = id.chars().filter(char::is_ascii_digit).collect();
    let n: u32 = digits.parse().ok()?;
    let fixed = format!("ASI{n:02}");
    (id.to_ascii_uppercase().starts_with("ASI") && is_asi(&fixed)).then_some(fixed)
}

/// True for `MCP01:2025`..`MCP10:2025`.
pub fn is_mcp(id: &str) -> bool {
    id.strip_prefix("MCP")
        .and_then(|rest| rest.strip_suffix(":2025"))
        .and_then(|n| (n.len() == 2).then(|| n.parse::<u32>().ok()).flatten())
        .is_some_and(|n| (1..=10).contains(&n))
}

/// The right spelling of a near-miss (`MCP-01` → `MCP01:2025`).
pub fn fix_mcp(id: &str) -> Option<String> {
    let digits: String = id
        .split(':')
        .next()?
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let n: u32 = digits.parse().ok()?;
    let fixed = format!("MCP{n:02}:2025");
    (id.to_ascii_uppercase().starts_with("MCP") && is_mcp(&fixed)).then_some(fixed)
}
