//! Aligned text tables for people (`detect`, `audit-query`, `trace-list`).

use std::io::Write;

/// Writes `header` and `rows` as left-aligned columns two spaces apart.
pub fn write_table<const N: usize>(
    out: &mut impl Write,
    header: [&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        cells
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(out, "{}", line(&mut header.iter().copied()))?;
    for row in rows {
        writeln!(out, "{}", line(&mut row.iter().map(String::as_str)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_and_lines_have_no_trailing_space() {
        let mut out = Vec::new();
        super::write_table(
            &mut out,
            ["A", "LONGER"],
            &[["xyz".into(), "1".into()], ["é".into(), "".into()]],
        )
        .unwrap_or_default();
        assert_eq!(String::from_utf8_lossy(&out), "A    LONGER\nxyz  1\né\n");
    }
}
