//! `exec` with `event = "fc"` through the real daemon, on the local store: the FC shim
//! (`contrib/fc-shim`) runs an unmodified FC-style Python handler (`init(context)` then
//! `handler(event, context)`, reading the task with `oss2`) on Python 3 and 2.7; the event's
//! fields match the object the producer dropped, and a handler that raises is retried until its
//! attempts are spent, then the task is in `failed/` with the traceback's message.

mod cli_support;
mod flow_support;
mod support;

use std::path::Path;

use bucketq::queue::meta;
use serde_json::Value;

use flow_support::{
    fc_handler, fc_record, local_config, local_keys, local_object, produce_local, queue, spec,
    start_daemon, stop, wait_until, Produced, SOON,
};

fn left(dir: &Path, queue: &str) -> Vec<String> {
    let mut keys = local_keys(dir, &format!("{queue}/"));
    keys.extend(local_keys(dir, &format!("failed/{queue}/")));
    keys
}

/// The event the handler got describes `task` as the store holds it.
fn assert_event_matches(seen: &Value, task: &Produced, bucket: &str, mtime: &str, label: &str) {
    let e = &seen["event"]["events"][0];
    assert_eq!(e["eventName"], "ObjectCreated:PutObject", "{label}");
    assert_eq!(e["eventSource"], "acs:oss", "{label}");
    assert_eq!(e["region"], "cn-hongkong", "{label}");
    assert_eq!(e["oss"]["bucket"]["name"], bucket, "{label}");
    assert_eq!(
        e["oss"]["bucket"]["arn"],
        format!("acs:oss:cn-hongkong:1234567890:{bucket}"),
        "{label}"
    );
    assert_eq!(e["oss"]["object"]["key"], task.key.as_str(), "{label}");
    assert_eq!(e["oss"]["object"]["size"], task.size, "{label}");
    assert_eq!(e["oss"]["object"]["eTag"], task.md5.as_str(), "{label}");
    assert_eq!(e["eventTime"], mtime, "{label}: the object's LastModified");
    // The handler read the claimed task through oss2 (served by the shim) and unpickled it.
    assert_eq!(seen["data"]["subject"], "测试邮件", "{label}");
    assert_eq!(seen["data"]["to_email"], "someone@example.com", "{label}");
    assert_eq!(seen["init_calls"], 1, "{label}: init(context) ran once");
    assert_eq!(seen["key_id"], "LTAI-flow", "{label}: context.credentials");
}

#[test]
fn fc_shim_runs_an_fc_handler_whose_event_matches_the_object() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    // The local store names its bucket by its absolute directory.
    let bucket = std::fs::canonicalize(&data)
        .expect("canonical")
        .display()
        .to_string();
    let out3 = dir.path().join("fc3.json");
    let out2 = dir.path().join("fc2.json");
    let config = local_config(
        dir.path(),
        &format!(
            "{}\n{}",
            queue("fc3", &fc_handler(&support::python3(), &out3, &bucket), 2),
            queue("fc2", &fc_handler(&support::python2(), &out2, &bucket), 2),
        ),
    );
    let tasks = produce_local(
        &support::python3(),
        &data,
        &[
            spec("fc3/one.task", "issue", 4),
            spec("fc2/two.task", "issue", 2),
        ],
    );
    let mtime = |t: &Produced| {
        let modified = std::fs::metadata(data.join(&t.key))
            .and_then(|m| m.modified())
            .expect("the dropped file has an mtime");
        humantime::format_rfc3339_millis(modified).to_string()
    };
    let mtimes: Vec<String> = tasks.iter().map(mtime).collect();

    let daemon = start_daemon(dir.path(), &config);
    wait_until("both tasks handled", &daemon, SOON, || {
        left(dir.path(), "fc3").is_empty() && left(dir.path(), "fc2").is_empty()
    });
    for (out, (task, mtime)) in [&out3, &out2].into_iter().zip(tasks.iter().zip(&mtimes)) {
        let seen = fc_record(out).unwrap_or_else(|| panic!("{} did not run", task.key));
        assert_event_matches(&seen, task, &bucket, mtime, &task.key);
    }
    assert_eq!(
        fc_record(&out2).expect("ran")["event_type"],
        "str",
        "Python 2 gets the event as bytes (str)"
    );
    assert_eq!(fc_record(&out3).expect("ran")["event_type"], "bytes");

    // A handler that raises fails the attempt; after max_attempts (2) the task is failed.
    let raised = produce_local(
        &support::python3(),
        &data,
        &[spec("fc3/boom.task", "raise", 2)],
    );
    wait_until("the raising task failed", &daemon, SOON, || {
        left(dir.path(), "fc3") == ["failed/fc3/boom.task"]
    });
    let output = stop(daemon);
    let failed = local_object(dir.path(), "failed/fc3/boom.task");
    assert_eq!(failed.body.as_ref(), raised[0].bytes.as_slice(), "intact");
    let error = failed.head.user_meta.get(meta::ERROR).expect("bq-error");
    assert!(
        error.contains("attempt 2 of 2") && error.contains("raised on purpose"),
        "{error}"
    );
    assert_eq!(meta::attempt(&failed.head.user_meta), 2);
    let retries = output
        .lines()
        .filter(|l| l.contains("will retry") && l.contains("fc3/boom.task"))
        .count();
    assert_eq!(retries, 1, "one retry, then failed:\n{output}");
    assert!(
        !output.contains("flow-secret"),
        "env secrets stay out of logs"
    );
}
