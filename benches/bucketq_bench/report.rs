//! Printing: aligned tables on stdout as each section finishes, every figure also kept as JSON,
//! and the statistics (median, percentiles) the tables show.

use std::io::Write as _;

use serde_json::{Map, Value};

/// Median of `values` (mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The `p`th percentile (0–100) by nearest rank; NaN when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// A table printed with aligned columns.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row (as many cells as columns).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text.
    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut widths = vec![0usize; cols];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |row: &Vec<String>| {
            row.iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let mut out = line(&self.header);
        out.push('\n');
        out.push_str(
            &widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("  "),
        );
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }
}

/// Everything printed so far, also as JSON.
#[derive(Debug, Default)]
pub struct Report {
    json: Map<String, Value>,
}

impl Report {
    /// Print a section heading.
    pub fn heading(&self, title: &str) {
        println!("\n== {title} ==");
        flush();
    }

    /// Print a line of text.
    pub fn note(&self, text: &str) {
        println!("{text}");
        flush();
    }

    /// Print a table.
    pub fn table(&self, table: &Table) {
        print!("{}", table.render());
        flush();
    }

    /// Keep `value` under `section.key` for the JSON output.
    pub fn record(&mut self, section: &str, key: &str, value: Value) {
        let entry = self
            .json
            .entry(section.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(map) = entry {
            map.insert(key.to_owned(), value);
        }
    }

    /// Every recorded figure.
    pub fn json(&self) -> Value {
        Value::Object(self.json.clone())
    }
}

fn flush() {
    std::io::stdout().flush().ok();
}

/// `12.3` or `-` for NaN.
pub fn num(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "-".into()
    }
}

/// `1.234 s` / `56 ms` for a duration in seconds.
pub fn secs(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x >= 1.0 {
        format!("{x:.2} s")
    } else {
        format!("{:.0} ms", x * 1000.0)
    }
}
