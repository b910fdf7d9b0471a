//! Plain-text tables for operators: aligned columns under a header, two spaces apart.

/// `rows` under `header`, each column as wide as its widest cell.
pub fn render<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header);
    for row in rows {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = [
            ["a-long-id".to_owned(), "x".to_owned()],
            ["b".to_owned(), "ünïcode".to_owned()],
        ];
        assert_eq!(
            super::render(["ID", "NAME"], &rows),
            "ID         NAME\na-long-id  x\nb          ünïcode\n"
        );
    }
}
