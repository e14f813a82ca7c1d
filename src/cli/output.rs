//! Plain-text tables and ages for people; commands print JSON for scripts instead.

use std::time::Duration;

/// A column's alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// Lay out `rows` under `headers`, columns padded to their widest cell, two spaces apart.
pub fn table(headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(headers)
            .zip(&widths)
            .map(|((cell, (_, align)), &w)| match align {
                Align::Left => format!("{cell:<w$}"),
                Align::Right => format!("{cell:>w$}"),
            })
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = line(headers.iter().map(|(h, _)| *h).collect());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out.push('\n');
    out
}

/// `3m 20s` for an age in seconds, `-` for none.
pub fn age(secs: Option<f64>) -> String {
    match secs {
        Some(s) => humantime::format_duration(Duration::from_secs(s.max(0.0) as u64)).to_string(),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_columns_and_aligns_numbers() {
        let t = table(
            &[("QUEUE", Align::Left), ("PENDING", Align::Right)],
            &[
                vec!["mail".into(), "3".into()],
                vec!["hooks-out".into(), "120".into()],
            ],
        );
        assert_eq!(
            t,
            "QUEUE      PENDING\nmail             3\nhooks-out      120\n"
        );
        assert_eq!(age(Some(200.4)), "3m 20s");
        assert_eq!(age(None), "-");
    }
}
