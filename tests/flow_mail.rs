//! The existing-producers story through the real daemon, on the local store: Python 2.7 and 3
//! drop pickles and JSON as plain files into the store's directory (the "producer drops a
//! file" path), `bucketq run` with a `mail` queue delivers them to a real SMTP server
//! (aiosmtpd with STARTTLS and AUTH), SMTP 4xx retries once and delivers once, 5xx and bad
//! payloads end in `failed/` with their reason, and `bucketq failed retry` brings a task back.

mod cli_support;
mod flow_support;
mod support;

use std::collections::BTreeSet;
use std::path::Path;

use bucketq::handlers::mail::message_id;
use bucketq::queue::meta;
use serde_json::{json, Value};

use cli_support::{bucketq, run};
use flow_support::{
    failed_list_json, id_of, local_config, local_keys, local_object, mail_handler, produce_local,
    queue, span_attempt, spec, start_daemon, stop, wait_until, Produced, SMTP_PASSWORD, SMTP_USER,
    SOON,
};
use support::smtp::{SmtpServer, TestCerts};

/// What a mail client shows for the issue's producer dict.
fn assert_issue_mail(mail: &Value, label: &str) {
    assert_eq!(mail["rcpt_tos"], json!(["someone@example.com"]), "{label}");
    assert_eq!(mail["to"], "Testing <someone@example.com>", "{label}");
    assert_eq!(mail["from"], "Trotter <noreply@example.com>", "{label}");
    assert_eq!(mail["subject"], "测试邮件", "{label}");
    assert_eq!(mail["content_type"], "text/html", "{label}");
    assert_eq!(
        mail["html"].as_str().map(str::trim_end),
        Some("仅仅是测试"),
        "{label}"
    );
}

/// The mail of each task, found by the task's stable `Message-ID`; panics on a task mailed
/// twice or not at all, or a mail that belongs to no task.
fn mails_by_task<'a>(mails: &'a [Value], tasks: &[Produced]) -> Vec<(&'a Value, String)> {
    let ids: Vec<String> = mails
        .iter()
        .map(|m| m["message_id"].as_str().expect("message id").to_owned())
        .collect();
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "a task was mailed twice: {ids:?}"
    );
    assert_eq!(mails.len(), tasks.len(), "one mail per task: {mails:#?}");
    tasks
        .iter()
        .map(|t| {
            let want = message_id("mail", id_of(&t.key), "example.com");
            let i = ids
                .iter()
                .position(|id| *id == want)
                .unwrap_or_else(|| panic!("no mail for {} ({want}) in {ids:?}", t.key));
            (&mails[i], t.key.clone())
        })
        .collect()
}

fn secure_smtp(certs: &TestCerts, script: &str) -> SmtpServer {
    let auth = format!("{SMTP_USER}:{SMTP_PASSWORD}");
    let mut args = vec![
        "--starttls",
        &certs.path("leaf.pem"),
        &certs.path("leaf.key"),
        "--auth",
        &auth,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    if !script.is_empty() {
        args.extend(["--script".to_owned(), script.to_owned()]);
    }
    SmtpServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The queue's keys left in the store: pending, locked and failed.
fn left(dir: &Path) -> Vec<String> {
    let mut keys = local_keys(dir, "mail/");
    keys.extend(local_keys(dir, "failed/mail/"));
    keys
}

fn nothing_left(dir: &Path) -> bool {
    left(dir).is_empty()
}

#[test]
fn python_producers_drop_pickles_and_json_and_each_is_mailed_once_over_starttls() {
    let certs = TestCerts::make();
    let smtp = secure_smtp(&certs, "");
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let config = local_config(
        dir.path(),
        &queue("mail", &mail_handler(smtp.port, Some(&certs)), 3),
    );

    // Python 3 producers wrote before the daemon started ...
    let mut tasks = produce_local(
        &support::python3(),
        &data,
        &[
            spec("mail/py3-p0.task", "issue", 0),
            spec("mail/py3-p2.task", "issue", 2),
            spec("mail/py3-p4.task", "issue", 4),
            spec("mail/py3-p5.task", "issue", 5),
            spec("mail/py3-json.task", "json", 0),
            spec("mail/py3-json-utf8.task", "json-utf8", 0),
        ],
    );
    assert!(tasks[0].bytes.starts_with(b"(dp0"), "protocol 0 is text");
    assert!(tasks[3].bytes.starts_with(b"\x80\x05"), "protocol 5 header");
    let daemon = start_daemon(dir.path(), &config);
    // ... and the Python 2.7 ones while it runs: `unicode` and plain `str` literals.
    tasks.extend(produce_local(
        &support::python2(),
        &data,
        &[
            spec("mail/py2-p0.task", "issue", 0),
            spec("mail/py2-p2.task", "issue", 2),
            spec("mail/py2-str-p0.task", "issue-str", 0),
            spec("mail/py2-str-p2.task", "issue-str", 2),
            spec("mail/py2-json.task", "json", 0),
        ],
    ));

    wait_until("every task settled", &daemon, SOON, || {
        nothing_left(dir.path())
    });
    let mails = smtp.mails(tasks.len());
    for (mail, key) in mails_by_task(&mails, &tasks) {
        assert_issue_mail(mail, &key);
        assert_eq!(mail["tls"], true, "{key}: STARTTLS was in force");
        assert_eq!(mail["login"], SMTP_USER, "{key}: AUTH was in force");
    }
    let output = stop(daemon);
    assert!(!output.contains("will retry"), "no retries:\n{output}");
    assert!(
        !output.contains(SMTP_PASSWORD),
        "the SMTP password leaked:\n{output}"
    );
    assert_eq!(smtp.mails(tasks.len()).len(), tasks.len(), "no late mail");
}

#[test]
fn smtp_451_then_250_retries_once_and_delivers_once() {
    let certs = TestCerts::make();
    let smtp = secure_smtp(&certs, "451,250");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = local_config(
        dir.path(),
        &queue("mail", &mail_handler(smtp.port, Some(&certs)), 3),
    );
    let tasks = produce_local(
        &support::python3(),
        &dir.path().join("data"),
        &[spec("mail/t451.task", "issue", 4)],
    );
    let daemon = start_daemon(dir.path(), &config);
    wait_until("the task settled", &daemon, SOON, || {
        nothing_left(dir.path())
    });
    let output = stop(daemon);

    let mails = smtp.mails(1);
    for (mail, key) in mails_by_task(&mails, &tasks) {
        assert_issue_mail(mail, &key);
    }
    let retries: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("will retry"))
        .collect();
    assert_eq!(retries.len(), 1, "exactly one retry:\n{output}");
    assert!(
        retries[0].contains("451") && span_attempt(retries[0]) == Some(1),
        "{}",
        retries[0]
    );
    let succeeded: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("task succeeded"))
        .collect();
    assert_eq!(succeeded.len(), 1, "one success:\n{output}");
    assert!(
        succeeded[0].contains("mail/t451.task") && span_attempt(succeeded[0]) == Some(2),
        "the second attempt delivered: {}",
        succeeded[0]
    );
}

#[test]
fn smtp_550_moves_the_task_to_failed_and_failed_retry_delivers_it() {
    let smtp = SmtpServer::start(&["--script", "550"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = local_config(
        dir.path(),
        &queue("mail", &mail_handler(smtp.port, None), 3),
    );
    let tasks = produce_local(
        &support::python2(),
        &dir.path().join("data"),
        &[spec("mail/t550.task", "issue-str", 2)],
    );
    let daemon = start_daemon(dir.path(), &config);
    let failed_key = "failed/mail/t550.task";
    wait_until("the task failed", &daemon, SOON, || {
        left(dir.path()) == [failed_key]
    });

    // Payload intact, the reason and one attempt recorded.
    let failed = local_object(dir.path(), failed_key);
    assert_eq!(
        failed.body.as_ref(),
        tasks[0].bytes.as_slice(),
        "payload intact"
    );
    let error = failed.head.user_meta.get(meta::ERROR).expect("bq-error");
    assert!(
        error.contains("550") && error.contains("Mailbox unavailable"),
        "{error}"
    );
    assert_eq!(
        meta::attempt(&failed.head.user_meta),
        1,
        "5xx is not retried"
    );
    assert!(failed.head.user_meta.contains_key(meta::FAILED_AT));

    // The operator sees it ...
    let table = run(bucketq(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["failed", "list"]));
    assert_eq!(table.code, 0, "{}", table.all());
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with(failed_key))
        .unwrap_or_else(|| panic!("no row for {failed_key}:\n{}", table.stdout));
    assert!(row.contains("550"), "{row}");
    let rows = failed_list_json(dir.path(), &config);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["key"], failed_key);
    assert_eq!(rows[0]["attempts"], 1);
    assert_eq!(rows[0]["size"], tasks[0].size);
    assert_eq!(rows[0]["error"].as_str(), Some(error.as_str()));
    assert!(smtp.mails(0).is_empty(), "nothing was delivered yet");

    // ... and sends it back while the daemon runs; the server now accepts it.
    let retry = run(bucketq(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["failed", "retry", failed_key]));
    assert_eq!(retry.code, 0, "{}", retry.all());
    assert!(retry.stdout.contains("mail/t550.task"), "{}", retry.stdout);
    wait_until("the retried task delivered", &daemon, SOON, || {
        !smtp.mails(0).is_empty() && nothing_left(dir.path())
    });
    let output = stop(daemon);
    let mails = smtp.mails(1);
    for (mail, key) in mails_by_task(&mails, &tasks) {
        assert_issue_mail(mail, &key);
    }
    assert!(
        output
            .lines()
            .any(|l| l.contains("task succeeded") && span_attempt(l) == Some(1)),
        "the redriven task starts again at attempt 1:\n{output}"
    );
}

#[test]
fn bad_payloads_end_in_failed_with_their_reason_while_good_tasks_keep_flowing() {
    let smtp = SmtpServer::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = local_config(
        dir.path(),
        &queue("mail", &mail_handler(smtp.port, None), 3),
    );
    let data = dir.path().join("data");
    // Interleaved in key order, so the bad ones are claimed between the good ones.
    let mut all = produce_local(
        &support::python3(),
        &data,
        &[
            spec("mail/a-good.task", "issue", 4),
            spec("mail/b-list.task", "list", 4),
            spec("mail/c-instance.task", "instance", 2),
            spec("mail/d-good.task", "json", 0),
            spec("mail/e-truncated.task", "truncated", 5),
            spec("mail/f-random.task", "random", 0),
            spec("mail/g-json-array.task", "json-array", 0),
        ],
    );
    all.extend(produce_local(
        &support::python2(),
        &data,
        &[
            spec("mail/h-instance-py2.task", "instance", 0),
            spec("mail/i-good-py2.task", "issue", 2),
        ],
    ));
    let daemon = start_daemon(dir.path(), &config);
    let expect: [(&str, &str); 6] = [
        ("b-list", "the payload is a pickle of a list, not of a dict"),
        ("c-instance", "only plain data"),
        ("e-truncated", "truncated"),
        ("f-random", "neither a JSON object nor a Python pickle"),
        (
            "g-json-array",
            "the payload is a JSON array, not a JSON object",
        ),
        ("h-instance-py2", "only plain data"),
    ];
    let want_failed: Vec<String> = expect
        .iter()
        .map(|(id, _)| format!("failed/mail/{id}.task"))
        .collect();
    wait_until("every task settled", &daemon, SOON, || {
        left(dir.path()) == want_failed
    });
    let output = stop(daemon);

    for (id, phrase) in expect {
        let key = format!("mail/{id}.task");
        let failed = local_object(dir.path(), &format!("failed/{key}"));
        let error = failed.head.user_meta.get(meta::ERROR).expect("bq-error");
        assert!(
            error.contains(&key),
            "{id}: the reason names the key: {error}"
        );
        assert!(error.contains(phrase), "{id}: {error}");
        assert_eq!(
            meta::attempt(&failed.head.user_meta),
            1,
            "{id}: not retried"
        );
        let produced = all.iter().find(|t| t.key == key).expect("produced");
        assert_eq!(
            failed.body.as_ref(),
            produced.bytes.as_slice(),
            "{id}: intact"
        );
    }
    assert!(
        !output.contains("will retry"),
        "permanent failures:\n{output}"
    );

    let good: Vec<Produced> = all.into_iter().filter(|t| t.key.contains("good")).collect();
    let mails = smtp.mails(good.len());
    for (mail, key) in mails_by_task(&mails, &good) {
        assert_issue_mail(mail, &key);
    }
}
