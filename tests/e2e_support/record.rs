//! An `exec` handler that records every run in an append-only file, and the reading of it.
//!
//! The command is `bash -c` (bash for `$EPOCHREALTIME`, a clock read without a fork). Each run
//! appends `S <key> <worker pid> <attempt> <time>` when it starts and `E ...` when it ends;
//! each line is one `write(2)` on an `O_APPEND` file, so lines of concurrent runs never mix.
//! The worker pid comes from `$BUCKETQ_WORKER` (`host-pid-random`), which is how a run is
//! attributed to a worker (and to a killed one). Not `$PPID`: a worker killed between spawning
//! the handler and bash starting leaves an orphan whose parent is already init.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

const SCRIPT: &str = r#"t=${EPOCHREALTIME/,/.}
w=${BUCKETQ_WORKER%-*}; w=${w##*-}
printf 'S %s %s %s %s\n' "$BUCKETQ_KEY" "$w" "$BUCKETQ_ATTEMPT" "$t" >> "$BQ_LOG"
[ "$BQ_SLEEP" = 0 ] || sleep "$BQ_SLEEP"
t=${EPOCHREALTIME/,/.}
printf 'E %s %s %s %s\n' "$BUCKETQ_KEY" "$w" "$BUCKETQ_ATTEMPT" "$t" >> "$BQ_LOG"
"#;

/// Where runs are recorded.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// The record file.
    pub path: PathBuf,
}

/// One run of the handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Pending key of the task (`q/t0001.task`).
    pub key: String,
    /// The bucketq process that ran it.
    pub pid: u32,
    /// `BUCKETQ_ATTEMPT`.
    pub attempt: u32,
    /// Start, seconds since the epoch.
    pub start: f64,
    /// End, when the handler got that far.
    pub end: Option<f64>,
}

/// Seconds since the epoch now, on the clock the handler's `$EPOCHREALTIME` reads.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64()
}

impl Recorder {
    /// A recorder writing to `dir/<name>.log`.
    pub fn new(dir: &Path, name: &str) -> Recorder {
        let path = dir.join(format!("{name}.log"));
        std::fs::write(&path, "").expect("the temp dir is writable");
        Recorder { path }
    }

    /// The `handler` table of a queue running the recording script, each run sleeping
    /// `sleep` (a `sleep(1)` argument like `"0.1"`, or `"0"` for none).
    pub fn handler(&self, sleep: &str) -> Value {
        json!({
            "type": "exec",
            "command": ["/bin/bash", "-c", SCRIPT],
            "env": { "BQ_LOG": self.path.display().to_string(), "BQ_SLEEP": sleep },
        })
    }

    /// Every run so far, in start order; an `E` line is paired with the earliest unpaired
    /// `S` line of the same key and worker.
    pub fn runs(&self) -> Vec<Run> {
        let text = std::fs::read_to_string(&self.path).expect("the record file is readable");
        let mut runs: Vec<Run> = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let [kind, key, pid, attempt, time] = fields[..] else {
                panic!("malformed record line {line:?} in {}", self.path.display());
            };
            let parse_err = |what: &str| format!("bad {what} in record line {line:?}");
            let pid: u32 = pid
                .parse()
                .unwrap_or_else(|_| panic!("{}", parse_err("pid")));
            let attempt: u32 = attempt
                .parse()
                .unwrap_or_else(|_| panic!("{}", parse_err("attempt")));
            let time: f64 = time
                .parse()
                .unwrap_or_else(|_| panic!("{}", parse_err("time")));
            match kind {
                "S" => runs.push(Run {
                    key: key.to_owned(),
                    pid,
                    attempt,
                    start: time,
                    end: None,
                }),
                "E" => {
                    let run = runs
                        .iter_mut()
                        .find(|r| r.key == key && r.pid == pid && r.end.is_none())
                        .unwrap_or_else(|| panic!("end without a start: {line:?}"));
                    run.end = Some(time);
                }
                _ => panic!("{}", parse_err("kind")),
            }
        }
        runs
    }

    /// Keys whose handler ran to its end at least once.
    pub fn finished(&self) -> BTreeSet<String> {
        self.runs()
            .into_iter()
            .filter(|r| r.end.is_some())
            .map(|r| r.key)
            .collect()
    }
}

/// Runs grouped by key.
pub fn by_key(runs: &[Run]) -> BTreeMap<String, Vec<Run>> {
    let mut map: BTreeMap<String, Vec<Run>> = BTreeMap::new();
    for run in runs {
        map.entry(run.key.clone()).or_default().push(run.clone());
    }
    map
}

/// Keys run more than once, with their runs.
pub fn duplicates(runs: &[Run]) -> BTreeMap<String, Vec<Run>> {
    by_key(runs)
        .into_iter()
        .filter(|(_, runs)| runs.len() > 1)
        .collect()
}
