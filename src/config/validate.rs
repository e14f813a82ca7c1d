//! Checks that a well-typed configuration would actually work, each problem naming the key
//! and the fix. All problems are reported at once, so one edit fixes them all.

use std::fmt;
use std::time::Duration;

use super::{Config, OnSuccess, QueueConfig, StoreBackend, StoreConfig, WorkerConfig};
use crate::queue::layout::LOCK_SUFFIX;

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key at fault, as written in TOML (`worker.lease`, `queue[1].prefix`).
    pub key: String,
    /// What is wrong and how to fix it. Never contains a secret.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Hosts of public clouds that must be reached over TLS.
const CLOUD_HOST_SUFFIXES: [&str; 3] = ["aliyuncs.com", "amazonaws.com", "amazonaws.com.cn"];

/// Every problem in `cfg`; empty when it is usable.
pub fn validate(cfg: &Config) -> Vec<Problem> {
    let mut out = Problems::default();
    check_store(&cfg.store, &mut out);
    check_worker(&cfg.worker, &mut out);
    check_http(cfg, &mut out);
    check_queues(cfg, &mut out);
    out.0
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }
}

fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn check_store(store: &StoreConfig, out: &mut Problems) {
    let kind = match store.kind {
        StoreBackend::Local => {
            if store.path.as_os_str().is_empty() {
                out.add(
                    "store.path",
                    "the local store needs a directory; set path = \"/var/lib/bucketq\"",
                );
            }
            return;
        }
        StoreBackend::Oss => "oss",
        StoreBackend::S3 => "s3",
    };
    let fc_hint = |var: &str| {
        if kind == "oss" {
            format!(", {var}")
        } else {
            String::new()
        }
    };
    if store.bucket.is_empty() {
        out.add(
            "store.bucket",
            format!(
                "required for kind = \"{kind}\"; set it in the file or with BUCKETQ_STORE__BUCKET{}",
                fc_hint("OSS_BUCKET")
            ),
        );
    }
    let keys_hint = if kind == "oss" {
        "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET"
    } else {
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    };
    let needs_keys = store.credentials.source.uses_static_keys();
    if needs_keys && store.access_key_id.is_empty() {
        out.add(
            "store.access_key_id",
            format!(
                "required for kind = \"{kind}\"; set it with BUCKETQ_STORE__ACCESS_KEY_ID{} or {keys_hint} (an environment file keeps it out of the config), or let store.credentials.source = \"default\" find keys as the SDKs do (profiles, instance role, RRSA/web identity)",
                fc_hint("OSS_KEYID")
            ),
        );
    }
    if needs_keys && store.access_key_secret.is_empty() {
        out.add(
            "store.access_key_secret",
            format!(
                "required for kind = \"{kind}\"; set it with BUCKETQ_STORE__ACCESS_KEY_SECRET{} or {keys_hint} (an environment file keeps it out of the config)",
                fc_hint("OSS_SECRET")
            ),
        );
    }
    match &store.endpoint {
        None => out.add(
            "store.endpoint",
            if kind == "oss" {
                "required for kind = \"oss\"; e.g. \"https://oss-cn-hongkong.aliyuncs.com\" (or OSS_LINK)"
            } else {
                "required for kind = \"s3\"; e.g. \"https://s3.us-east-1.amazonaws.com\" or \"http://127.0.0.1:9000\" for MinIO"
            },
        ),
        Some(endpoint) => check_endpoint(endpoint, out),
    }
    if store.request_timeout.is_zero() {
        out.add("store.request_timeout", "must be above zero; e.g. \"30s\"");
    }
}

/// The fix for an endpoint written without a scheme: only its host (and port) after
/// `https://`, since a path or user-info would be refused in turn.
fn no_scheme_fix(endpoint: &str) -> String {
    let host_part = endpoint.split('/').next().unwrap_or(endpoint);
    let host = host_part.rsplit('@').next().unwrap_or(host_part);
    // Not echoed when it carries user-info: that may be a password.
    let shown = if host_part.contains('@') {
        "the endpoint".to_owned()
    } else {
        format!("{endpoint:?}")
    };
    let mut fix = format!("{shown} has no scheme; write \"https://{host}\"");
    if host_part.contains('@') {
        fix.push_str(" (keys go in store.access_key_id and store.access_key_secret, not the URL)");
    }
    if endpoint.len() > host_part.len() + 1 {
        fix.push_str(" (the bucket goes in store.bucket, not the URL)");
    }
    fix
}

/// A queue prefix for `name` that lies neither under nor above the archive prefixes.
fn suggested_prefix(name: &str, w: &WorkerConfig) -> String {
    let clashes = |p: &str| {
        [&w.failed_prefix, &w.done_prefix]
            .iter()
            .any(|a| !a.is_empty() && (p.starts_with(a.as_str()) || a.starts_with(p)))
    };
    let plain = format!("{name}/");
    if !clashes(&plain) {
        return plain;
    }
    let queued = format!("queue-{name}/");
    if !clashes(&queued) {
        return queued;
    }
    "tasks/".to_owned()
}

fn check_endpoint(endpoint: &str, out: &mut Problems) {
    let (scheme, rest) = match endpoint.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => {
            out.add("store.endpoint", no_scheme_fix(endpoint));
            return;
        }
    };
    if scheme != "http" && scheme != "https" {
        out.add(
            "store.endpoint",
            format!("scheme {scheme:?} is not supported; use https:// (or http:// for a local test server)"),
        );
        return;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    }
    .to_ascii_lowercase();
    let is_cloud = CLOUD_HOST_SUFFIXES
        .iter()
        .any(|suffix| host == *suffix || host.ends_with(&format!(".{suffix}")));
    if scheme == "http" && is_cloud {
        out.add(
            "store.endpoint",
            format!(
                "uses http:// for the public cloud host {host}: requests and payloads would cross the network unencrypted; write \"https://{rest}\""
            ),
        );
    }
}

fn check_worker(w: &WorkerConfig, out: &mut Problems) {
    if w.concurrency == 0 {
        out.add(
            "worker.concurrency",
            "must be at least 1 (handler slots across all queues)",
        );
    }
    if w.poll_interval.is_zero() {
        out.add("worker.poll_interval", "must be above zero; e.g. \"1s\"");
    }
    if w.poll_interval > w.max_poll_interval {
        out.add(
            "worker.poll_interval",
            format!(
                "{} is longer than worker.max_poll_interval ({}); idle polls back off from poll_interval up to max_poll_interval, so raise max_poll_interval or lower poll_interval",
                show(w.poll_interval),
                show(w.max_poll_interval)
            ),
        );
    }
    if w.lease.is_zero() {
        out.add("worker.lease", "must be above zero; e.g. \"5m\"");
    }
    if w.failed_prefix.is_empty() {
        out.add(
            "worker.failed_prefix",
            "must not be empty: failed tasks would land on their pending keys; use \"failed/\"",
        );
    }
    if w.on_success == OnSuccess::Move && w.done_prefix.is_empty() {
        out.add(
            "worker.done_prefix",
            "must not be empty when on_success = \"move\"; use \"done/\"",
        );
    }
    if !w.failed_prefix.is_empty()
        && !w.done_prefix.is_empty()
        && (w.failed_prefix.starts_with(&w.done_prefix)
            || w.done_prefix.starts_with(&w.failed_prefix))
    {
        out.add(
            "worker.done_prefix",
            format!(
                "{:?} overlaps worker.failed_prefix {:?}: `bucketq failed` would count succeeded tasks; give them separate prefixes like \"failed/\" and \"done/\"",
                w.done_prefix, w.failed_prefix
            ),
        );
    }
    if w.max_payload_bytes == 0 {
        out.add(
            "worker.max_payload_bytes",
            "must be above zero; e.g. 1048576",
        );
    }
}

fn check_http(cfg: &Config, out: &mut Problems) {
    if let Some(listen) = &cfg.http.listen {
        if listen.parse::<std::net::SocketAddr>().is_err() {
            out.add(
                "http.listen",
                format!("{listen:?} is not an address; write it like \"127.0.0.1:9464\" (or remove it to turn the listener off)"),
            );
        }
    }
}

fn check_queues(cfg: &Config, out: &mut Problems) {
    if cfg.queues.is_empty() {
        out.add(
            "queue",
            "no queues are configured; add a [[queue]] table with name, prefix and handler",
        );
    }
    for (i, q) in cfg.queues.iter().enumerate() {
        check_queue(i, q, &cfg.worker, out);
        for (j, other) in cfg.queues.iter().enumerate().take(i) {
            check_pair(j, other, i, q, out);
        }
    }
    if let Some((i, longest)) = cfg.queues.iter().enumerate().max_by_key(|(_, q)| q.timeout) {
        if cfg.worker.lease < longest.timeout * 2 {
            out.add(
                "worker.lease",
                format!(
                    "{} is shorter than twice the longest queue timeout (queue[{i}] {:?}: {}); a running task's lock could look abandoned and run twice. Set lease to at least {}",
                    show(cfg.worker.lease),
                    longest.name,
                    show(longest.timeout),
                    show(longest.timeout * 2)
                ),
            );
        }
    }
}

fn check_queue(i: usize, q: &QueueConfig, w: &WorkerConfig, out: &mut Problems) {
    let key = |field: &str| format!("queue[{i}].{field}");
    if q.name.is_empty()
        || !q
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        out.add(
            key("name"),
            format!(
                "{:?} must be non-empty letters, digits, '-', '_' or '.'",
                q.name
            ),
        );
    }
    if q.suffix.is_empty() {
        out.add(
            key("suffix"),
            "must not be empty: every object under the prefix would be a task; use \".task\"",
        );
    } else if q.suffix.ends_with(LOCK_SUFFIX) {
        out.add(
            key("suffix"),
            format!(
                "{:?} ends in \"{LOCK_SUFFIX}\", which marks claimed tasks; use \".task\"",
                q.suffix
            ),
        );
    }
    for (field, prefix) in [
        ("failed_prefix", &w.failed_prefix),
        ("done_prefix", &w.done_prefix),
    ] {
        if prefix.is_empty() {
            continue;
        }
        if prefix.starts_with(&q.prefix) {
            out.add(
                key("prefix"),
                format!(
                    "{:?} contains worker.{field} {prefix:?}: every poll would list archived tasks too; give the queue its own prefix like \"{}\"",
                    q.prefix,
                    suggested_prefix(&q.name, w)
                ),
            );
        } else if q.prefix.starts_with(prefix.as_str()) {
            out.add(
                key("prefix"),
                format!(
                    "{:?} lies under worker.{field} {prefix:?}: its tasks would count as archived and never run; move the queue or the {field}",
                    q.prefix
                ),
            );
        }
    }
    if q.concurrency == Some(0) {
        out.add(
            key("concurrency"),
            "must be at least 1 (or removed to share worker.concurrency)",
        );
    }
    if q.timeout.is_zero() {
        out.add(key("timeout"), "must be above zero; e.g. \"60s\"");
    }
    if q.max_attempts == 0 {
        out.add(
            key("max_attempts"),
            "must be at least 1 (1 means no retries)",
        );
    }
    if q.backoff > q.max_backoff {
        out.add(
            key("backoff"),
            format!(
                "{} is longer than max_backoff ({}); lower backoff or raise max_backoff",
                show(q.backoff),
                show(q.max_backoff)
            ),
        );
    }
    if q.max_age.is_some_and(|a| a.is_zero()) {
        out.add(
            key("max_age"),
            "must be above zero, or removed for no limit",
        );
    }
}

fn check_pair(j: usize, a: &QueueConfig, i: usize, b: &QueueConfig, out: &mut Problems) {
    if a.name == b.name {
        out.add(
            format!("queue[{i}].name"),
            format!(
                "{:?} is also the name of queue[{j}]; queue names must be unique",
                b.name
            ),
        );
    }
    if a.prefix.starts_with(&b.prefix) || b.prefix.starts_with(&a.prefix) {
        out.add(
            format!("queue[{i}].prefix"),
            format!(
                "{:?} overlaps queue[{j}] {:?} prefix {:?}: both queues would claim the same keys; give each queue its own prefix, like \"mail/\" and \"hooks/\"",
                b.prefix, a.name, a.prefix
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::{load_text, ConfigSource, DEMO_CONFIG};
    use crate::secret::Secret;

    fn demo() -> Config {
        load_text(ConfigSource::BuiltinDemo, DEMO_CONFIG, &Default::default())
            .unwrap()
            .config
    }

    fn keys(cfg: &Config) -> Vec<String> {
        validate(cfg).into_iter().map(|p| p.key).collect()
    }

    fn oss(endpoint: &str) -> Config {
        let mut c = demo();
        c.store.kind = StoreBackend::Oss;
        c.store.bucket = "b".into();
        c.store.access_key_id = Secret::new("id");
        c.store.access_key_secret = Secret::new("secret");
        c.store.endpoint = Some(endpoint.into());
        c
    }

    #[test]
    fn demo_is_valid() {
        assert_eq!(validate(&demo()), vec![]);
    }

    #[test]
    fn cloud_hosts_need_https_but_local_servers_may_use_http() {
        assert_eq!(
            keys(&oss("https://oss-cn-hongkong.aliyuncs.com")),
            Vec::<String>::new()
        );
        assert_eq!(keys(&oss("http://127.0.0.1:9000")), Vec::<String>::new());
        let problems = validate(&oss("http://oss-cn-hongkong-internal.aliyuncs.com"));
        assert_eq!(problems.len(), 1);
        assert!(problems[0]
            .message
            .contains("https://oss-cn-hongkong-internal.aliyuncs.com"));
        assert_eq!(
            keys(&oss("http://s3.us-east-1.amazonaws.com:80/")),
            vec!["store.endpoint"]
        );
        assert_eq!(
            keys(&oss("oss-cn-hongkong.aliyuncs.com")),
            vec!["store.endpoint"]
        );
    }

    #[test]
    fn oss_needs_bucket_credentials_and_endpoint() {
        let mut c = demo();
        c.store.kind = StoreBackend::Oss;
        let problems = validate(&c);
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "store.bucket",
                "store.access_key_id",
                "store.access_key_secret",
                "store.endpoint"
            ]
        );
        assert!(problems[1].message.contains("OSS_KEYID"));
    }

    #[test]
    fn worker_limits() {
        let mut c = demo();
        c.worker.concurrency = 0;
        c.worker.poll_interval = Duration::from_secs(20);
        c.worker.lease = Duration::from_secs(90);
        c.queues[0].timeout = Duration::from_secs(60);
        let problems = validate(&c);
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["worker.concurrency", "worker.poll_interval", "worker.lease"]
        );
        assert!(problems[2].message.contains("2m"), "{}", problems[2]);
    }

    #[test]
    fn suffixes() {
        let mut c = demo();
        c.queues[0].suffix = String::new();
        assert_eq!(keys(&c), vec!["queue[0].suffix"]);
        c.queues[0].suffix = ".lock".into();
        assert_eq!(keys(&c), vec!["queue[0].suffix"]);
        c.queues[0].suffix = ".json".into();
        assert_eq!(keys(&c), Vec::<String>::new());
    }

    #[test]
    fn prefixes_must_not_overlap_each_other_or_the_archive() {
        let mut c = demo();
        let mut second = c.queues[0].clone();
        second.name = "demo2".into();
        second.prefix = "demo/sub/".into();
        c.queues.push(second);
        assert_eq!(keys(&c), vec!["queue[1].prefix"]);

        let mut c = demo();
        c.queues[0].prefix = String::new();
        assert_eq!(keys(&c), vec!["queue[0].prefix", "queue[0].prefix"]);

        let mut c = demo();
        c.queues[0].prefix = "failed/demo/".into();
        assert_eq!(keys(&c), vec!["queue[0].prefix"]);

        let mut c = demo();
        c.worker.failed_prefix = "demo/failed/".into();
        assert_eq!(keys(&c), vec!["queue[0].prefix"]);
    }

    #[test]
    fn duplicate_names_and_zero_values() {
        let mut c = demo();
        let mut second = c.queues[0].clone();
        second.prefix = "other/".into();
        second.concurrency = Some(0);
        second.max_attempts = 0;
        c.queues.push(second);
        assert_eq!(
            keys(&c),
            vec![
                "queue[1].concurrency",
                "queue[1].max_attempts",
                "queue[1].name"
            ]
        );
    }

    #[test]
    fn http_listen_must_be_an_address() {
        let mut c = demo();
        c.http.listen = Some("localhost".into());
        assert_eq!(keys(&c), vec!["http.listen"]);
        c.http.listen = Some("127.0.0.1:9464".into());
        assert_eq!(keys(&c), Vec::<String>::new());
    }

    #[test]
    fn fix_suggestions_are_themselves_valid() {
        let fix = no_scheme_fix("oss-cn-hangzhou.aliyuncs.com/tasks");
        assert!(
            fix.contains("\"https://oss-cn-hangzhou.aliyuncs.com\""),
            "{fix}"
        );
        assert!(fix.contains("store.bucket"), "{fix}");
        let fix = no_scheme_fix("user:pw@minio:9000");
        assert!(
            fix.contains("\"https://minio:9000\"") && !fix.contains("pw@"),
            "{fix}"
        );
        let w = WorkerConfig::default();
        assert_eq!(suggested_prefix("mail", &w), "mail/");
        // A queue named like the failed prefix must not be told to use that very prefix.
        assert_eq!(suggested_prefix("failed", &w), "queue-failed/");
    }
}
