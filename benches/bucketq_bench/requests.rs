//! Store request counts by operation and result, summed over clients and differenced over a
//! window.

use std::collections::BTreeMap;

use bucketq::store::{Op, RequestStats};

/// Requests by (operation, result), as [`RequestStats`] counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests(pub BTreeMap<(Op, String), u64>);

impl Requests {
    /// A copy of one client's counters.
    pub fn of(stats: &RequestStats) -> Requests {
        Requests(stats.snapshot())
    }

    /// Parse `bucketq_store_requests_total{op="list",result="ok"} 3` lines of a `/metrics` page.
    pub fn from_metrics(text: &str) -> Requests {
        let mut out = Requests::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("bucketq_store_requests_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            let label = |name: &str| {
                labels.split(',').find_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    (k == name).then(|| v.trim_matches('"').to_owned())
                })
            };
            let (Some(op), Some(result), Ok(n)) =
                (label("op"), label("result"), value.trim().parse::<f64>())
            else {
                continue;
            };
            if let Some(op) = Op::ALL.into_iter().find(|o| o.as_str() == op) {
                *out.0.entry((op, result)).or_default() += n as u64;
            }
        }
        out
    }

    /// Add another client's counts.
    pub fn add(&mut self, other: &Requests) {
        for (k, n) in &other.0 {
            *self.0.entry(k.clone()).or_default() += n;
        }
    }

    /// Counts made after `earlier` was taken.
    pub fn since(&self, earlier: &Requests) -> Requests {
        Requests(
            self.0
                .iter()
                .map(|(k, n)| {
                    (
                        k.clone(),
                        n - earlier.0.get(k).copied().unwrap_or(0).min(*n),
                    )
                })
                .filter(|(_, n)| *n > 0)
                .collect(),
        )
    }

    /// Requests of one operation, any result.
    pub fn op(&self, op: Op) -> u64 {
        self.0
            .iter()
            .filter(|((o, _), _)| *o == op)
            .map(|(_, n)| n)
            .sum()
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Requests whose result was not `ok` (lost claims, missing keys, errors), by label.
    pub fn non_ok(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((op, result), n) in &self.0 {
            if result != "ok" {
                *out.entry(format!("{op} {result}")).or_default() += n;
            }
        }
        out
    }

    /// `list 0.01 · get 1.00 · ...`: requests per task by operation, operations that occurred.
    pub fn per_task_breakdown(&self, tasks: f64) -> String {
        Op::ALL
            .into_iter()
            .filter(|op| self.op(*op) > 0)
            .map(|op| format!("{op} {:.3}", self.op(op) as f64 / tasks))
            .collect::<Vec<_>>()
            .join(" · ")
    }

    /// `list 12 · get 3`: counts by operation, operations that occurred.
    pub fn counts(&self) -> String {
        Op::ALL
            .into_iter()
            .filter(|op| self.op(*op) > 0)
            .map(|op| format!("{op} {}", self.op(op)))
            .collect::<Vec<_>>()
            .join(" · ")
    }

    /// Per-operation counts as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let by_op: serde_json::Map<String, serde_json::Value> = Op::ALL
            .into_iter()
            .filter(|op| self.op(*op) > 0)
            .map(|op| (op.as_str().to_owned(), self.op(op).into()))
            .collect();
        serde_json::json!({ "total": self.total(), "by_op": by_op, "not_ok": self.non_ok() })
    }
}
