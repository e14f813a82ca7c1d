//! The existing-producers story on an S3 store (LocalStack, a fresh bucket per run): boto3
//! puts pickles (written by Python 3 and by Python 2.7) and JSON exactly as an `oss2`
//! producer would, and `bucketq run` on that bucket mails them over STARTTLS with AUTH, sends a
//! bad payload to `failed/` with its reason in the object's metadata, and runs an FC handler
//! through the shim with the event of the uploaded object.

mod cli_support;
mod flow_support;
mod support;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bucketq::handlers::mail::message_id;
use serde_json::{json, Value};

use cli_support::S3Server;
use flow_support::{
    fc_handler, fc_record, id_of, mail_handler, produce_bytes, produce_s3, queue, spec, spec_bytes,
    start_daemon, stop, wait_until, FAST_WORKER, SMTP_PASSWORD, SMTP_USER, SOON,
};
use support::smtp::{SmtpServer, TestCerts};

fn localstack() -> S3Server {
    let endpoint = std::env::var("BUCKETQ_TEST_LOCALSTACK_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "BUCKETQ_TEST_LOCALSTACK_ENDPOINT is not set: run ./scripts/test, which starts the test servers"
        )
    });
    S3Server {
        endpoint,
        // LocalStack takes any key.
        key_id: "test".into(),
        secret: "test".into(),
        python: support::test_venv_python(),
    }
}

/// Keys under `prefix`, as boto3 lists them.
fn keys(s3: &S3Server, bucket: &str, prefix: &str) -> Vec<String> {
    let out = s3.boto3(
        bucket,
        &format!(
            "import json\n\
             pages = s3.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix={prefix:?})\n\
             print(json.dumps([o['Key'] for p in pages for o in p.get('Contents', [])]))"
        ),
    );
    serde_json::from_str(out.trim()).expect("a JSON list of keys")
}

#[test]
fn boto3_producers_on_s3_are_mailed_failed_and_run_through_the_fc_shim() {
    let s3 = localstack();
    let bucket = s3.new_bucket("bq-flow");
    let certs = TestCerts::make();
    let auth = format!("{SMTP_USER}:{SMTP_PASSWORD}");
    let smtp = SmtpServer::start(&[
        "--starttls",
        &certs.path("leaf.pem"),
        &certs.path("leaf.key"),
        "--auth",
        &auth,
    ]);
    let dir = tempfile::tempdir().expect("temp dir");
    let fc_out: PathBuf = dir.path().join("fc.json");
    let config = cli_support::write_file(
        dir.path(),
        "bucketq.toml",
        &format!(
            "[store]\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"{bucket}\"\nregion = \"us-east-1\"\n\
             path_style = true\naccess_key_id = \"test\"\naccess_key_secret = \"test\"\n\n{FAST_WORKER}\n{}\n{}",
            s3.endpoint,
            queue("mail", &mail_handler(smtp.port, Some(&certs)), 3),
            queue("fc", &fc_handler(&support::python3(), &fc_out, &bucket), 2),
        ),
    );

    // Python 2.7 pickles its dicts; the upload goes through boto3 like the rest.
    let py2 = produce_bytes(
        &support::python2(),
        &[
            spec("mail/py2-p0.task", "issue", 0),
            spec("mail/py2-str-p2.task", "issue-str", 2),
        ],
    );
    let before = SystemTime::now();
    let mut specs = vec![
        spec("mail/py3-p0.task", "issue", 0),
        spec("mail/py3-p2.task", "issue", 2),
        spec("mail/py3-p4.task", "issue", 4),
        spec("mail/py3-p5.task", "issue", 5),
        spec("mail/json.task", "json", 0),
        spec("mail/json-utf8.task", "json-utf8", 0),
        spec("mail/zz-list.task", "list", 4),
        spec("fc/one.task", "issue", 4),
    ];
    specs.extend(py2.iter().map(|p| spec_bytes(&p.key, &p.bytes)));
    let tasks = produce_s3(&s3.endpoint, &bucket, &specs);
    let after = SystemTime::now();

    let daemon = start_daemon(dir.path(), &config);
    wait_until("every task settled", &daemon, SOON, || {
        keys(&s3, &bucket, "mail/").is_empty()
            && keys(&s3, &bucket, "fc/").is_empty()
            && keys(&s3, &bucket, "failed/mail/").len() == 1
    });
    let output = stop(daemon);

    // Every good mail task delivered once, as a mail client would show it.
    let good: Vec<_> = tasks
        .iter()
        .filter(|t| t.key.starts_with("mail/") && !t.key.contains("list"))
        .collect();
    let mails = smtp.mails(good.len());
    assert_eq!(mails.len(), good.len(), "one mail per task: {mails:#?}");
    for t in &good {
        let want = message_id("mail", id_of(&t.key), "example.com");
        let mail = mails
            .iter()
            .find(|m| m["message_id"] == want.as_str())
            .unwrap_or_else(|| panic!("no mail for {}", t.key));
        assert_eq!(
            mail["rcpt_tos"],
            json!(["someone@example.com"]),
            "{}",
            t.key
        );
        assert_eq!(mail["to"], "Testing <someone@example.com>", "{}", t.key);
        assert_eq!(mail["subject"], "测试邮件", "{}", t.key);
        assert_eq!(
            mail["html"].as_str().map(str::trim_end),
            Some("仅仅是测试"),
            "{}",
            t.key
        );
        assert_eq!(mail["tls"], true);
        assert_eq!(mail["login"], SMTP_USER);
    }

    // The bad payload: in failed/ with its bytes and the reason in the S3 metadata.
    assert_eq!(
        keys(&s3, &bucket, "failed/mail/"),
        ["failed/mail/zz-list.task"]
    );
    let failed: Value = serde_json::from_str(
        s3.boto3(
            &bucket,
            "import json\n\
             o = s3.get_object(Bucket=bucket, Key='failed/mail/zz-list.task')\n\
             print(json.dumps({'meta': o['Metadata'], 'hex': o['Body'].read().hex()}))",
        )
        .trim(),
    )
    .expect("JSON");
    let error = failed["meta"]["bq-error"].as_str().expect("bq-error");
    assert!(
        error.contains("mail/zz-list.task") && error.contains("pickle of a list"),
        "{error}"
    );
    let list = tasks
        .iter()
        .find(|t| t.key == "mail/zz-list.task")
        .expect("list");
    let hex: String = list.bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(failed["hex"], hex, "payload intact");

    // The FC handler got the event of the uploaded object.
    let fc = tasks
        .iter()
        .find(|t| t.key == "fc/one.task")
        .expect("fc task");
    let seen = fc_record(&fc_out).expect("the FC handler ran");
    let e = &seen["event"]["events"][0];
    assert_eq!(e["oss"]["bucket"]["name"], bucket.as_str());
    assert_eq!(e["oss"]["object"]["key"], "fc/one.task");
    assert_eq!(e["oss"]["object"]["size"], fc.size);
    assert_eq!(
        e["oss"]["object"]["eTag"].as_str(),
        fc.etag.as_deref(),
        "the ETag S3 gave the upload"
    );
    let event_time =
        humantime::parse_rfc3339(e["eventTime"].as_str().expect("eventTime")).expect("RFC 3339");
    // S3 keeps LastModified to the second.
    assert!(
        event_time + Duration::from_secs(1) >= before && event_time <= after,
        "eventTime {} is not when the object was written",
        e["eventTime"]
    );
    assert_eq!(seen["data"]["subject"], "测试邮件");
    assert_eq!(seen["init_calls"], 1);
    assert!(!output.contains("will retry"), "{output}");
}
