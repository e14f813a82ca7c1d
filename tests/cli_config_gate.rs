//! `bucketq config check` is the gate a unit's `ExecStartPre` (or an operator) relies on: every
//! config `run` refuses before touching the network, `config check` refuses too, with 78, and
//! neither prints a secret. Each case runs the real binary both ways.

mod cli_support;

use cli_support::{bucketq, run, write_file};

const EX_CONFIG: i32 = 78;

fn store(endpoint: &str) -> String {
    format!("[store]\nkind = \"s3\"\nendpoint = \"{endpoint}\"\nbucket = \"b\"\naccess_key_id = \"AKIDGATE\"\naccess_key_secret = \"gate-secret-value\"\n")
}

const LOG_QUEUE: &str = "[[queue]]\nname = \"q\"\nprefix = \"q/\"\nhandler = { type = \"log\" }\n";

#[test]
fn config_check_refuses_what_run_refuses() {
    let good = store("http://127.0.0.1:9");
    let cases: Vec<(&str, String)> = vec![
        ("an endpoint without a host", format!("{}{LOG_QUEUE}", store("http://"))),
        ("a port out of range", format!("{}{LOG_QUEUE}", store("http://127.0.0.1:99999"))),
        ("credentials in the endpoint", format!("{}{LOG_QUEUE}", store("http://user:pw-in-url@127.0.0.1:9000"))),
        ("an empty exec command", format!("{good}[[queue]]\nname = \"q\"\nprefix = \"q/\"\nhandler = {{ type = \"exec\", command = [] }}\n")),
        ("a missing program", format!("{good}[[queue]]\nname = \"q\"\nprefix = \"q/\"\nhandler = {{ type = \"exec\", command = [\"/no/such/program\"] }}\n")),
        ("an ftp webhook", format!("{good}[[queue]]\nname = \"q\"\nprefix = \"q/\"\nhandler = {{ type = \"webhook\", url = \"ftp://example.com/x\" }}\n")),
        ("a mail handler without host", format!("{good}[[queue]]\nname = \"q\"\nprefix = \"q/\"\nhandler = {{ type = \"mail\", from = \"a@example.com\" }}\n")),
        ("a missing ca_file", format!("{}ca_file = \"/no/such/ca.pem\"\n{LOG_QUEUE}", store("https://s3.example.com"))),
        ("a bad connect_to", format!("{}connect_to = \"nowhere\"\n{LOG_QUEUE}", store("https://s3.example.com"))),
    ];
    for (what, text) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = write_file(dir.path(), "bucketq.toml", &text);
        let check = run(bucketq(dir.path())
            .arg("--config")
            .arg(&config)
            .args(["config", "check"]));
        assert_eq!(
            check.code,
            EX_CONFIG,
            "config check with {what}: {}",
            check.all()
        );
        let daemon = run(bucketq(dir.path()).arg("--config").arg(&config).arg("run"));
        assert_eq!(daemon.code, EX_CONFIG, "run with {what}: {}", daemon.all());
        for out in [&check, &daemon] {
            assert!(
                !out.all().contains("pw-in-url") && !out.all().contains("gate-secret-value"),
                "{what} printed a secret: {}",
                out.all()
            );
        }
    }
    // And a good config passes, without a network.
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(dir.path(), "bucketq.toml", &format!("{good}{LOG_QUEUE}"));
    let check = run(bucketq(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["config", "check"]));
    assert_eq!(check.code, 0, "{}", check.all());
}

#[test]
fn every_problem_is_reported_at_once_in_the_users_words() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "bucketq.toml",
        "[store]\nkind = \"gcs\"\ncolour = \"blue\"\n[worker]\nconcurrency = -5\n[[queue]]\nname = \"q\"\nprefix = \"q/\"\nhandler = { type = \"log\" }\n",
    );
    let out = run(bucketq(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["config", "check"])
        .env("BUCKETQ_WORKER__LEASE", "soon"));
    assert_eq!(out.code, EX_CONFIG, "{}", out.all());
    for needle in [
        r#"store.kind: "gcs" is not one of "oss", "s3", "local""#,
        r#"store.colour: unknown key "colour""#,
        "worker.concurrency: must be 0 or more; got -5",
        "BUCKETQ_WORKER__LEASE",
    ] {
        assert!(
            out.stderr.contains(needle),
            "missing {needle:?} in:\n{}",
            out.stderr
        );
    }
    assert!(
        !out.stderr.contains("StoreBackend"),
        "no Rust type names: {}",
        out.stderr
    );
}
