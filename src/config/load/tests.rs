//! Loading: files, overrides, the FC and cloud variables, systemd credentials.

use super::*;
use crate::config::{HandlerConfig, StoreBackend, WorkerConfig};
use std::time::Duration;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file() -> ConfigSource {
    ConfigSource::File(PathBuf::from("test.toml"))
}

const OSS: &str = r#"
[store]
kind = "oss"
endpoint = "https://oss-cn-hongkong.aliyuncs.com"

[worker]
lease = "5m"

[[queue]]
name = "mail"
prefix = "mail/"
timeout = "60s"
handler = { type = "mail", from = "x@example.com" }

[[queue]]
name = "hook-out"
prefix = "hooks/"
handler = { type = "log" }
"#;

#[test]
fn demo_config_is_local_with_one_log_queue() {
    let loaded = load_text(ConfigSource::BuiltinDemo, DEMO_CONFIG, &env(&[])).unwrap();
    let c = &loaded.config;
    assert_eq!(c.store.kind, StoreBackend::Local);
    assert_eq!(c.store.path, PathBuf::from("./bucketq-data"));
    assert_eq!(c.queues.len(), 1);
    assert_eq!(c.queues[0].prefix, "demo/");
    assert!(matches!(c.queues[0].handler, HandlerConfig::Log));
}

#[test]
fn missing_explicit_file_is_an_error_but_missing_default_is_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let err = load_with_env(Some(&missing), &env(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("nope.toml"));
}

#[test]
fn overrides_reach_nested_keys_and_queues_by_name_with_string_numbers() {
    let e = env(&[
        ("BUCKETQ_STORE__BUCKET", "2024"),
        ("BUCKETQ_STORE__ACCESS_KEY_ID", "id"),
        ("BUCKETQ_STORE__ACCESS_KEY_SECRET", "sec"),
        ("BUCKETQ_WORKER__CONCURRENCY", "8"),
        ("BUCKETQ_QUEUE__HOOK_OUT__TIMEOUT", "5s"),
        ("BUCKETQ_QUEUE__0__MAX_ATTEMPTS", "7"),
        ("BUCKETQ_LOG", "debug"),
        ("BUCKETQ_TEST_VENV", "/x"),
    ]);
    let loaded = load_text(file(), OSS, &e).unwrap();
    let c = &loaded.config;
    assert_eq!(c.store.bucket, "2024");
    assert_eq!(c.worker.concurrency, 8);
    assert_eq!(c.queues[1].timeout, Duration::from_secs(5));
    assert_eq!(c.queues[0].max_attempts, 7);
    assert!(loaded
        .env_applied
        .contains(&"BUCKETQ_WORKER__CONCURRENCY".to_string()));
    assert!(!loaded.env_applied.contains(&"BUCKETQ_LOG".to_string()));
}

#[test]
fn override_of_an_unknown_queue_names_the_variable() {
    let e = env(&[("BUCKETQ_QUEUE__NOPE__TIMEOUT", "5s")]);
    let err = load_text(file(), OSS, &e).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("BUCKETQ_QUEUE__NOPE__TIMEOUT"), "{text}");
    assert!(text.contains("hook-out"), "{text}");
}

#[test]
fn fc_names_fill_unset_oss_keys_and_mail_fields_only() {
    let e = env(&[
        ("OSS_BUCKET", "tasks"),
        ("OSS_KEYID", "LTAIid"),
        ("OSS_SECRET", "s3cr3t"),
        ("OSS_LINK", "oss-cn-hongkong.aliyuncs.com"),
        ("EMAIL_SERVER_HOST", "smtp.example.com"),
        ("EMAIL_SERVER_PORT", "465"),
        ("EMAIL_PASSWORD", "mailpw"),
    ]);
    let loaded = load_text(file(), OSS, &e).unwrap();
    let c = &loaded.config.store;
    assert_eq!(c.bucket, "tasks");
    assert_eq!(c.access_key_id.expose(), "LTAIid");
    assert_eq!(c.access_key_secret.expose(), "s3cr3t");
    // The file's endpoint wins over OSS_LINK.
    assert_eq!(
        c.endpoint.as_deref(),
        Some("https://oss-cn-hongkong.aliyuncs.com")
    );
    let mail = loaded.raw["queue"][0]["handler"].as_table().unwrap();
    assert_eq!(mail["host"].as_str(), Some("smtp.example.com"));
    assert_eq!(mail["port"].as_str(), Some("465"));
    assert_eq!(mail["password"].as_str(), Some("mailpw"));
    assert_eq!(mail["from"].as_str(), Some("x@example.com"));
    let log = loaded.raw["queue"][1]["handler"].as_table().unwrap();
    assert!(!log.contains_key("host"));
    assert!(loaded.env_applied.contains(&"OSS_SECRET".to_string()));
}

#[test]
fn fc_names_do_not_touch_a_local_store() {
    let e = env(&[("OSS_BUCKET", "tasks")]);
    let loaded = load_text(ConfigSource::BuiltinDemo, DEMO_CONFIG, &e).unwrap();
    assert_eq!(loaded.config.store.bucket, "");
    assert_eq!(loaded.config.store.kind, StoreBackend::Local);
}

#[test]
fn oss_link_without_scheme_gets_https() {
    let text = OSS.replace("endpoint = \"https://oss-cn-hongkong.aliyuncs.com\"\n", "");
    let e = env(&[
        ("OSS_BUCKET", "tasks"),
        ("OSS_KEYID", "id"),
        ("OSS_SECRET", "secret"),
        ("OSS_LINK", "oss-cn-beijing.aliyuncs.com"),
    ]);
    let loaded = load_text(file(), &text, &e).unwrap();
    assert_eq!(
        loaded.config.store.endpoint.as_deref(),
        Some("https://oss-cn-beijing.aliyuncs.com")
    );
}

#[test]
fn unknown_handler_type_names_the_key_and_the_choices() {
    let text = DEMO_CONFIG.replace("type = \"log\"", "type = \"smtp\"");
    let err = load_text(file(), &text, &env(&[])).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("queue[0].handler"), "{msg}");
    assert!(msg.contains("\"smtp\""), "{msg}");
    assert!(
        msg.contains(r#""mail", "webhook", "exec", "log", "custom""#),
        "{msg}"
    );
}

#[test]
fn wrong_type_and_unknown_key_name_the_key() {
    let text = format!("{DEMO_CONFIG}\n[worker]\nconcurrency = \"lots\"\n");
    let msg = load_text(file(), &text, &env(&[])).unwrap_err().to_string();
    assert!(msg.contains("worker.concurrency"), "{msg}");

    let text = format!("{DEMO_CONFIG}\n[worker]\nconcurency = 3\n");
    let msg = load_text(file(), &text, &env(&[])).unwrap_err().to_string();
    assert!(
        msg.contains("concurency") && msg.contains("worker"),
        "{msg}"
    );

    let text = format!("{DEMO_CONFIG}\n[worker]\nlease = \"5 fortnights\"\n");
    let msg = load_text(file(), &text, &env(&[])).unwrap_err().to_string();
    assert!(msg.contains("worker.lease") && msg.contains("30s"), "{msg}");
}

#[test]
fn toml_syntax_errors_carry_the_position() {
    let text = "[store\nkind = 1";
    let msg = load_text(file(), text, &env(&[])).unwrap_err().to_string();
    assert!(msg.contains("line 1"), "{msg}");
}

#[test]
fn the_example_config_is_valid() {
    let text = include_str!("../../../examples/bucketq.toml");
    let e = env(&[
        ("BUCKETQ_STORE__ACCESS_KEY_ID", "id"),
        ("BUCKETQ_STORE__ACCESS_KEY_SECRET", "secret"),
    ]);
    let loaded = load_text(file(), text, &e).unwrap();
    assert_eq!(loaded.config.store.kind, StoreBackend::Oss);
    assert_eq!(loaded.config.queues[0].name, "mail");
    assert!(matches!(
        loaded.config.queues[0].handler,
        HandlerConfig::Mail(_)
    ));
}

#[test]
fn systemd_credentials_become_variables() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("OSS_SECRET"), "s3cr3t\n").unwrap();
    std::fs::write(dir.path().join("BUCKETQ_STORE__BUCKET"), "tasks").unwrap();
    std::fs::write(dir.path().join("unrelated"), "x").unwrap();
    let env = credentials_env(dir.path()).unwrap();
    assert_eq!(env.get("OSS_SECRET").map(String::as_str), Some("s3cr3t"));
    assert_eq!(
        env.get("BUCKETQ_STORE__BUCKET").map(String::as_str),
        Some("tasks")
    );
    assert!(!env.contains_key("unrelated"));
}

#[test]
fn inline_toml_values_in_overrides() {
    let e = env(&[(
        "BUCKETQ_QUEUE__DEMO__HANDLER",
        "{ type = \"custom\", name = \"x\" }",
    )]);
    let loaded = load_text(ConfigSource::BuiltinDemo, DEMO_CONFIG, &e).unwrap();
    assert!(matches!(
        &loaded.config.queues[0].handler,
        HandlerConfig::Custom { name } if name == "x"
    ));
    let e = env(&[("BUCKETQ_QUEUE__DEMO__HANDLER", "{ type = ")]);
    let err = load_text(ConfigSource::BuiltinDemo, DEMO_CONFIG, &e).unwrap_err();
    assert!(err.to_string().contains("BUCKETQ_QUEUE__DEMO__HANDLER"));
}

#[test]
fn the_clouds_key_variables_fill_empty_keys_of_their_kind_only() {
    let oss = "[store]\nkind = \"oss\"\nendpoint = \"https://oss-cn-hangzhou.aliyuncs.com\"\nbucket = \"b\"\n[[queue]]\nname = \"q\"\nprefix = \"q/\"\nhandler = { type = \"log\" }\n";
    let e = env(&[
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIenv"),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret"),
        ("ALIBABA_CLOUD_SECURITY_TOKEN", "env-token"),
        ("AWS_ACCESS_KEY_ID", "AKIAenv"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
    ]);
    let loaded = load_text(file(), oss, &e).unwrap();
    let store = &loaded.config.store;
    assert_eq!(store.access_key_id.expose(), "LTAIenv");
    assert_eq!(store.security_token.expose(), "env-token");
    assert!(loaded
        .env_applied
        .contains(&"ALIBABA_CLOUD_ACCESS_KEY_ID".to_string()));

    let s3 = oss.replace("\"oss\"", "\"s3\"");
    let loaded = load_text(file(), &s3, &e).unwrap();
    assert_eq!(loaded.config.store.access_key_id.expose(), "AKIAenv");
    assert!(loaded.config.store.security_token.is_empty());

    // Keys in the file win under "auto"; half a pair in the environment is ignored.
    let with_keys = oss.replace(
        "bucket = \"b\"",
        "bucket = \"b\"\naccess_key_id = \"LTAIfile\"\naccess_key_secret = \"f\"",
    );
    let loaded = load_text(file(), &with_keys, &e).unwrap();
    assert_eq!(loaded.config.store.access_key_id.expose(), "LTAIfile");
    let half = env(&[("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIenv")]);
    let err = load_text(file(), oss, &half).unwrap_err().to_string();
    assert!(
        err.contains("store.access_key_id") && err.contains("credentials.source"),
        "{err}"
    );

    // A source that finds its own keys needs none in the file.
    let chain = oss.replace(
        "[[queue]]",
        "[store.credentials]\nsource = \"default\"\n\n[[queue]]",
    );
    let loaded = load_text(file(), &chain, &env(&[])).unwrap();
    assert!(loaded.config.store.access_key_id.is_empty());
}

#[test]
fn an_empty_variable_unsets_a_file_setting() {
    let text = format!("{DEMO_CONFIG}\n[worker]\nconcurrency = 3\n");
    let loaded = load_text(file(), &text, &env(&[("BUCKETQ_WORKER__CONCURRENCY", "")])).unwrap();
    assert_eq!(
        loaded.config.worker.concurrency,
        WorkerConfig::default().concurrency
    );
    let loaded = load_text(file(), &text, &env(&[])).unwrap();
    assert_eq!(loaded.config.worker.concurrency, 3);
}
