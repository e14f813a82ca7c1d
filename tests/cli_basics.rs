//! The command line without a store: help, version, configuration errors and their exit
//! codes, and `config check` never printing a secret.

mod cli_support;

use cli_support::{bucketq, run, write_file};

const EX_CONFIG: i32 = 78;

#[test]
fn version_and_help_on_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let v = run(bucketq(dir.path()).arg("--version"));
    assert_eq!(v.code, 0);
    assert_eq!(
        v.stdout.trim(),
        format!("bucketq {}", env!("CARGO_PKG_VERSION"))
    );

    let commands: [&[&str]; 10] = [
        &[],
        &["run"],
        &["enqueue"],
        &["status"],
        &["failed"],
        &["failed", "list"],
        &["failed", "retry"],
        &["doctor"],
        &["config"],
        &["config", "check"],
    ];
    for args in commands {
        let out = run(bucketq(dir.path()).args(args).arg("--help"));
        assert_eq!(out.code, 0, "{args:?} --help: {}", out.all());
        assert!(
            out.stdout.contains("Usage: bucketq"),
            "{args:?}: {}",
            out.stdout
        );
    }
    let top = run(bucketq(dir.path()).arg("--help"));
    for word in [
        "run", "enqueue", "status", "failed", "doctor", "config", "78", "77", "69",
    ] {
        assert!(
            top.stdout.contains(word),
            "--help lacks {word}:\n{}",
            top.stdout
        );
    }
}

#[test]
fn usage_errors_exit_2_with_clap_messages() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bucketq(dir.path()).args(["enqueue", "demo"]));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("--json"), "{}", out.stderr);
    let out = run(bucketq(dir.path()).args(["failed", "retry", "--all", "a", "b"]));
    assert_eq!(out.code, 2, "{}", out.all());
}

#[test]
fn a_bad_config_names_the_key_and_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[worker]\nconcurrency = \"many\"\n", "worker.concurrency"),
        ("[worker]\nconcurency = 4\n", "concurency"),
        (
            "[[queue]]\nname = \"q\"\nprefix = \"q/\"\nhandler = { type = \"smtp\" }\n",
            "queue[0].handler",
        ),
        (
            "[worker]\nlease = \"1m\"\n[[queue]]\nname = \"q\"\nprefix = \"q/\"\ntimeout = \"45s\"\nhandler = { type = \"log\" }\n",
            "worker.lease",
        ),
        (
            "[store]\nkind = \"oss\"\nendpoint = \"http://oss-cn-hangzhou.aliyuncs.com\"\nbucket = \"b\"\naccess_key_id = \"i\"\naccess_key_secret = \"s\"\n[[queue]]\nname = \"q\"\nprefix = \"q/\"\nhandler = { type = \"log\" }\n",
            "store.endpoint",
        ),
        ("[store\n", "line 1"),
    ];
    for (text, key) in cases {
        let path = write_file(dir.path(), "bad.toml", text);
        for cmd in [&["config", "check"][..], &["status"], &["run"], &["doctor"]] {
            let out = run(bucketq(dir.path()).arg("--config").arg(&path).args(cmd));
            assert_eq!(out.code, EX_CONFIG, "{cmd:?} with {text:?}: {}", out.all());
            assert!(
                out.all().contains(key),
                "{cmd:?} with {text:?} does not name {key}: {}",
                out.all()
            );
        }
    }
}

#[test]
fn a_missing_config_file_exits_78_but_no_file_at_all_is_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bucketq(dir.path()).args(["--config", "nope.toml", "config", "check"]));
    assert_eq!(out.code, EX_CONFIG);
    assert!(out.stderr.contains("nope.toml"), "{}", out.stderr);

    assert!(
        !std::path::Path::new("/etc/bucketq/bucketq.toml").exists(),
        "this test needs a machine without /etc/bucketq/bucketq.toml"
    );
    let demo = run(bucketq(dir.path()).args(["config", "check"]));
    assert_eq!(demo.code, 0, "{}", demo.all());
    assert!(demo.stdout.contains("built-in demo"), "{}", demo.stdout);
    assert!(
        demo.stdout.contains("prefix = \"demo/\""),
        "{}",
        demo.stdout
    );
    assert!(demo.stdout.contains("type = \"log\""), "{}", demo.stdout);
}

#[test]
fn env_overrides_and_fc_names_show_in_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "c.toml",
        "[store]\nkind = \"oss\"\n[[queue]]\nname = \"mail\"\nprefix = \"mail/\"\nhandler = { type = \"log\" }\n",
    );
    let out = run(bucketq(dir.path())
        .arg("--config")
        .arg(&path)
        .args(["config", "check", "--format", "json"])
        .env("OSS_BUCKET", "fc-bucket")
        .env("OSS_KEYID", "LTAI5tFakeKeyId")
        .env("OSS_SECRET", "FakeSecretValue123")
        .env("OSS_LINK", "oss-cn-hongkong.aliyuncs.com")
        .env("BUCKETQ_WORKER__CONCURRENCY", "3")
        .env("BUCKETQ_QUEUE__MAIL__TIMEOUT", "7s"));
    assert_eq!(out.code, 0, "{}", out.all());
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["store"]["bucket"], "fc-bucket");
    assert_eq!(
        v["store"]["endpoint"],
        "https://oss-cn-hongkong.aliyuncs.com"
    );
    assert_eq!(v["worker"]["concurrency"], 3);
    assert_eq!(v["queue"][0]["timeout"], "7s");
    assert_eq!(v["store"]["access_key_secret"], "******");
    assert!(!out.all().contains("FakeSecretValue123"));
    assert!(!out.all().contains("LTAI5tFakeKeyId"));
}

#[test]
fn config_check_never_prints_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = [
        "AKIAQSECRETKEYID01",
        "s3-secret-Zx9!f00",
        "smtp-pass-Q7#wd",
        "env-pass-8812x",
        "hook-token-5551",
        "Bearer hdr-tok-4411",
        "exec-env-secret-77",
    ];
    let text = format!(
        r#"[store]
kind = "s3"
endpoint = "http://127.0.0.1:9000"
bucket = "b"
path_style = true
access_key_id = "{}"
access_key_secret = "{}"

[[queue]]
name = "mail"
prefix = "mail/"
handler = {{ type = "mail", host = "smtp.example.com", port = 587, username = "bot", password = "{}", from = "A <a@example.com>" }}

[[queue]]
name = "hooks"
prefix = "hooks/"
handler = {{ type = "webhook", url = "https://hooks.example.com/services/{}", headers = {{ Authorization = "{}" }} }}

[[queue]]
name = "jobs"
prefix = "jobs/"
handler = {{ type = "exec", command = ["/bin/true"], env = {{ API = "{}" }} }}
"#,
        secrets[0], secrets[1], secrets[2], secrets[4], secrets[5], secrets[6]
    );
    let path = write_file(dir.path(), "secret.toml", &text);
    for format in ["toml", "json"] {
        let out = run(bucketq(dir.path())
            .arg("--config")
            .arg(&path)
            .args(["config", "check", "--format", format])
            .env("BUCKETQ_QUEUE__MAIL__HANDLER__PASSWORD", secrets[3])
            .env("BUCKETQ_LOG", "trace"));
        // Whatever the handlers make of these configs, nothing printed may hold a secret.
        for s in secrets {
            assert!(
                !out.all().contains(s),
                "{format}: {s} leaked:\n{}",
                out.all()
            );
        }
        if out.code == 0 {
            assert!(out.stdout.contains("******"), "{}", out.stdout);
            assert!(out.stdout.contains("smtp.example.com"), "{}", out.stdout);
        }
    }
}

#[test]
fn enqueue_checks_its_input_before_touching_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bucketq(dir.path()).args(["enqueue", "demo", "--json", "{not json"]));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("not valid JSON"), "{}", out.stderr);
    let out = run(bucketq(dir.path()).args(["enqueue", "nope", "--json", "{}"]));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("\"demo\""), "{}", out.stderr);
    let out = run(bucketq(dir.path()).args(["enqueue", "demo", "--file", "missing.json"]));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("missing.json"), "{}", out.stderr);
    assert!(!dir.path().join("bucketq-data").join("demo").exists());
}

#[test]
fn bad_log_settings_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bucketq(dir.path())
        .args(["config", "check"])
        .env("BUCKETQ_LOG_FORMAT", "xml"));
    assert_eq!(out.code, EX_CONFIG, "{}", out.all());
    assert!(out.stderr.contains("BUCKETQ_LOG_FORMAT"), "{}", out.stderr);
}
