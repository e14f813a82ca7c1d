//! The binary on the network as deployments meet it, against the OSS signature oracle: through
//! an HTTPS proxy (`HTTPS_PROXY`, `NO_PROXY`) to the cloud's virtual-hosted endpoint over TLS
//! with a private CA, a versioned bucket refused at once, and wrong keys refused with what to
//! check. All traffic stays on 127.0.0.1.

mod cli_support;
#[path = "support/connect_proxy.rs"]
mod connect_proxy;
#[path = "support/oss_oracle.rs"]
mod oss_oracle;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cli_support::{bucketq, run, write_file, Daemon};
use oss_oracle::{Key, Options, Oracle, BUCKET, KEY_ID, SECRET};

const ALIYUN_HOST: &str = "oss-cn-hangzhou.aliyuncs.com";
const EX_UNAVAILABLE: i32 = 69;
const EX_NOPERM: i32 = 77;

fn config(dir: &Path, store: &str) -> std::path::PathBuf {
    let text = format!(
        "[store]\nkind = \"oss\"\nbucket = \"{BUCKET}\"\nrequest_timeout = \"5s\"\n{store}\n\n[worker]\npoll_interval = \"100ms\"\nmax_poll_interval = \"1s\"\n\n[[queue]]\nname = \"q\"\nprefix = \"q/\"\nhandler = {{ type = \"log\" }}\n"
    );
    write_file(dir, "bucketq.toml", &text)
}

fn cli(dir: &Path, config: &Path, secret: &str) -> Command {
    let mut c = bucketq(dir);
    c.arg("--config")
        .arg(config)
        .env("BUCKETQ_STORE__ACCESS_KEY_ID", KEY_ID)
        .env("BUCKETQ_STORE__ACCESS_KEY_SECRET", secret);
    c
}

#[test]
fn https_proxy_is_honoured_and_no_proxy_bypasses_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    oss_oracle::make_test_ca(dir.path(), &[&format!("*.{ALIYUN_HOST}"), ALIYUN_HOST]);
    let oracle = Oracle::start(
        &[Key::long_lived()],
        Options {
            virtual_host: Some(ALIYUN_HOST.into()),
            tls_dir: Some(dir.path().to_owned()),
            ..Options::default()
        },
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let proxy = rt.block_on(connect_proxy::ConnectProxy::start(oracle.port()));
    let ca = dir.path().join("ca.pem");
    let config = config(
        dir.path(),
        &format!(
            "endpoint = \"https://{ALIYUN_HOST}\"\nca_file = \"{}\"\nconnect_to = \"127.0.0.1:{}\"",
            ca.display(),
            oracle.port()
        ),
    );

    let out = run(cli(dir.path(), &config, SECRET)
        .arg("doctor")
        .env("HTTPS_PROXY", proxy.url()));
    assert_eq!(out.code, 0, "{}", out.all());
    let targets = proxy.targets();
    assert!(!targets.is_empty(), "the proxy was not used");
    assert!(
        targets
            .iter()
            .all(|t| t == &format!("{BUCKET}.{ALIYUN_HOST}:443")),
        "{targets:?}"
    );

    let before = proxy.targets().len();
    let out = run(cli(dir.path(), &config, SECRET)
        .arg("status")
        .env("HTTPS_PROXY", proxy.url())
        .env("NO_PROXY", ".aliyuncs.com"));
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        proxy.targets().len(),
        before,
        "NO_PROXY must bypass the proxy"
    );
    oracle.assert_all_sound(&[404, 409]);
    assert!(oracle
        .log()
        .iter()
        .all(|e| e["host"] == format!("{BUCKET}.{ALIYUN_HOST}")));
}

#[test]
fn a_versioned_bucket_stops_the_daemon_at_once_with_69() {
    let oracle = Oracle::plain();
    oracle.set_versioning("Enabled");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(
        dir.path(),
        &format!(
            "endpoint = \"{}\"\nregion = \"cn-hangzhou\"",
            oracle.endpoint()
        ),
    );
    let started = Instant::now();
    let mut daemon = Daemon::start(cli(dir.path(), &config, SECRET).arg("run"));
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(20)),
        EX_UNAVAILABLE,
        "{}",
        daemon.output()
    );
    let out = daemon.output();
    assert!(out.contains("versioning enabled"), "{out}");
    assert!(
        !out.contains("probing again"),
        "versioning is a definite answer: {out}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn wrong_keys_exit_77_naming_what_to_check() {
    let oracle = Oracle::plain();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(
        dir.path(),
        &format!(
            "endpoint = \"{}\"\nregion = \"cn-hangzhou\"",
            oracle.endpoint()
        ),
    );
    let wrong = "NotTheSecret/123";
    let mut daemon = Daemon::start(cli(dir.path(), &config, wrong).arg("run"));
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(20)),
        EX_NOPERM,
        "{}",
        daemon.output()
    );
    let out = daemon.output();
    assert!(
        out.contains("SignatureDoesNotMatch") && out.contains("store.access_key_secret"),
        "{out}"
    );
    assert!(!out.contains(": :"), "no empty field: {out}");
    assert_eq!(
        out.matches("store rejected the credentials").count(),
        1,
        "the cause said once: {out}"
    );
    assert!(!out.contains(wrong), "the secret reached the log");
}

#[test]
fn a_default_chain_that_finds_nothing_exits_77_listing_what_it_tried() {
    let oracle = Oracle::plain();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(
        dir.path(),
        &format!("endpoint = \"{}\"\nregion = \"cn-hangzhou\"\n\n[store.credentials]\nsource = \"default\"\nmetadata_endpoint = \"http://127.0.0.1:9\"", oracle.endpoint()),
    );
    let mut daemon = Daemon::start(
        bucketq(dir.path())
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("HOME", dir.path())
            .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true"),
    );
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(20)),
        EX_NOPERM,
        "{}",
        daemon.output()
    );
    let out = daemon.output();
    assert!(
        out.contains("ALIBABA_CLOUD_ACCESS_KEY_ID") && out.contains("config.json"),
        "{out}"
    );
    assert!(out.contains("store.credentials"), "the hint: {out}");
    assert!(oracle.log().is_empty(), "nothing was sent unsigned");
}

#[test]
fn a_missing_bucket_is_named_and_exits_78() {
    let oracle = Oracle::plain();
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(config(
        dir.path(),
        &format!(
            "endpoint = \"{}\"\nregion = \"cn-hangzhou\"",
            oracle.endpoint()
        ),
    ))
    .unwrap()
    .replace(
        &format!("bucket = \"{BUCKET}\""),
        "bucket = \"no-such-bucket\"",
    );
    let config = write_file(dir.path(), "bucketq.toml", &text);
    let mut daemon = Daemon::start(cli(dir.path(), &config, SECRET).arg("run"));
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(20)),
        78,
        "{}",
        daemon.output()
    );
    let out = daemon.output();
    assert!(
        out.contains("bucket \"no-such-bucket\" does not exist"),
        "{out}"
    );
    assert!(
        !out.contains("exclusive") && !out.contains("--single-worker"),
        "not a probe failure: {out}"
    );
    let doctor = run(cli(dir.path(), &config, SECRET).arg("doctor"));
    let line = doctor
        .stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("bucket"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        line.starts_with("FAIL") && line.contains("does not exist"),
        "{line}"
    );
    let status = run(cli(dir.path(), &config, SECRET).arg("status"));
    assert_eq!(status.code, 78, "{}", status.all());
}
