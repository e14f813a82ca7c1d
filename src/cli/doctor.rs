//! `bucketq doctor`: every check `run` depends on, one line each, with the reason and what
//! to do when it fails. Exits with the code `run` would exit with for the first failure.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use bucketq::config::{self, HandlerConfig, LoadedConfig, StoreBackend};
use bucketq::handlers::registry::RegistryError;
use bucketq::handlers::HandlerRegistry;
use bucketq::store::{ListRequest, Store, StoreError, Versioning};

use super::error::{store_code, CliError, EXIT_FAILURE, EX_CONFIG, EX_UNAVAILABLE};
use super::open_store;
// TEMPORARY: switch to bucketq::store::probe once the local branch is merged.
use bucketq::store::probe::{probe_create_if_absent, ProbeOutcome};

/// Time a TCP connect to a handler's target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock difference worth a warning (signatures are refused beyond 15 minutes).
const SKEW_WARNING: Duration = Duration::from_secs(60);

/// The lines printed so far and the first failure's exit code.
#[derive(Default)]
struct Report {
    failures: usize,
    first_code: Option<u8>,
}

impl Report {
    fn line(&self, status: &str, check: &str, detail: &str) {
        println!("{status:<4}  {check:<24}  {detail}");
    }
    fn ok(&mut self, check: &str, detail: impl AsRef<str>) {
        self.line("ok", check, detail.as_ref());
    }
    fn warn(&mut self, check: &str, detail: impl AsRef<str>) {
        self.line("warn", check, detail.as_ref());
    }
    fn skip(&mut self, check: &str, detail: impl AsRef<str>) {
        self.line("skip", check, detail.as_ref());
    }
    fn fail(&mut self, check: &str, detail: impl AsRef<str>, code: u8) {
        self.line("FAIL", check, detail.as_ref());
        self.failures += 1;
        self.first_code.get_or_insert(code);
    }
    fn finish(self) -> Result<ExitCode, CliError> {
        match self.first_code {
            None => Ok(ExitCode::SUCCESS),
            Some(code) => Err(CliError::Doctor {
                failures: self.failures,
                code,
            }),
        }
    }
}

/// Run every check.
pub async fn run(path: Option<&Path>) -> Result<ExitCode, CliError> {
    let mut r = Report::default();
    let loaded = match config::load(path) {
        Ok(loaded) => loaded,
        Err(e) => {
            r.fail("config", CliError::from(e).report(), EX_CONFIG);
            return r.finish();
        }
    };
    r.ok(
        "config",
        format!(
            "{} ({} queue(s))",
            loaded.source,
            loaded.config.queues.len()
        ),
    );
    let store = match open_store(&loaded.config) {
        Ok(store) => store,
        Err(e) => {
            let code = e.exit_code();
            r.fail("store", e.report(), code);
            return r.finish();
        }
    };
    if check_access(&mut r, &loaded, &*store).await {
        check_probe(&mut r, &loaded, &*store).await;
        check_versioning(&mut r, &loaded, &*store).await;
    }
    check_handlers(&mut r, &loaded).await;
    r.finish()
}

/// Credentials, bucket and clock, from one listing. Returns whether the store answered.
async fn check_access(r: &mut Report, loaded: &LoadedConfig, store: &dyn Store) -> bool {
    let cfg = &loaded.config.store;
    let req = ListRequest {
        prefix: loaded
            .config
            .queues
            .first()
            .map(|q| q.prefix.clone())
            .unwrap_or_default(),
        max_keys: 1,
        ..ListRequest::default()
    };
    let local = cfg.kind == StoreBackend::Local;
    match store.list(&req).await {
        Ok(page) => {
            if local {
                r.skip("credentials", "the local store needs none");
                r.ok("bucket", format!("directory {}", cfg.path.display()));
            } else {
                r.ok("credentials", describe_credentials(store));
                r.ok(
                    "bucket",
                    format!(
                        "{} reachable at {}",
                        cfg.bucket,
                        cfg.endpoint.as_deref().unwrap_or("-")
                    ),
                );
                check_clock(r, page.server_time);
            }
            true
        }
        Err(e) if e.is_auth() => {
            let fix = e
                .credential_hint()
                .unwrap_or("check the store's credentials");
            r.fail("credentials", format!("{e}; {fix}"), store_code(&e));
            r.skip("bucket", "needs working credentials");
            false
        }
        Err(e) if is_missing_bucket(&e) => {
            r.skip("credentials", "not checked: the bucket is missing");
            r.fail(
                "bucket",
                match e {
                    // Its message already says what to do.
                    StoreError::NoSuchBucket { .. } => e.to_string(),
                    _ => format!("{e}; create bucket {:?} or fix store.bucket", cfg.bucket),
                },
                EXIT_FAILURE,
            );
            false
        }
        Err(e) => {
            let fix = if local {
                "check store.path and its permissions"
            } else {
                "check store.endpoint, DNS, proxies and the firewall"
            };
            r.fail("bucket", format!("{e}; {fix}"), store_code(&e));
            false
        }
    }
}

/// "accepted", and from where and until when, for keys a source supplied.
fn describe_credentials(store: &dyn Store) -> String {
    match store.credential_status() {
        Some(status) => match status.expires {
            Some(t) => format!(
                "accepted; from {}, expiring {} (refreshed before then)",
                status.source,
                humantime::format_rfc3339_seconds(t)
            ),
            None => format!("accepted; {}", status.source),
        },
        None => "accepted".to_owned(),
    }
}

fn is_missing_bucket(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::NotFound { .. } | StoreError::NoSuchBucket { .. }
    )
}

fn check_clock(r: &mut Report, server_time: SystemTime) {
    let now = SystemTime::now();
    let skew = now
        .duration_since(server_time)
        .or_else(|_| server_time.duration_since(now))
        .unwrap_or_default();
    let text = format!(
        "local clock is {} off the store's (lock ages use the store's clock)",
        humantime::format_duration(Duration::from_secs(skew.as_secs()))
    );
    if skew > SKEW_WARNING {
        r.warn(
            "clock",
            format!("{text}; signatures fail past 15 minutes: run NTP (chrony, systemd-timesyncd)"),
        );
    } else {
        r.ok("clock", text);
    }
}

async fn check_probe(r: &mut Report, loaded: &LoadedConfig, store: &dyn Store) {
    let prefix = loaded
        .config
        .queues
        .first()
        .map(|q| q.prefix.as_str())
        .unwrap_or_default();
    match probe_create_if_absent(store, prefix).await {
        Ok(ProbeOutcome::Exclusive) => r.ok(
            "create-if-absent",
            "a second conditional write was refused: claims are exclusive",
        ),
        Ok(ProbeOutcome::NotExclusive { reason }) => r.fail(
            "create-if-absent",
            format!("{reason}; two workers could run the same task. Use a store that honours conditional writes, or run one process with --single-worker"),
            EX_UNAVAILABLE,
        ),
        Err(e) => r.fail(
            "create-if-absent",
            format!("the probe could not run: {e}; the key needs put and delete on {prefix:?}"),
            store_code(&e),
        ),
    }
}

async fn check_versioning(r: &mut Report, loaded: &LoadedConfig, store: &dyn Store) {
    if loaded.config.store.kind != StoreBackend::Oss {
        r.skip(
            "versioning",
            "only OSS ignores forbid-overwrite on versioned buckets",
        );
        return;
    }
    match store.versioning().await {
        Ok(Versioning::Never) => r.ok("versioning", "never enabled: forbid-overwrite is honoured"),
        Ok(state) => r.fail(
            "versioning",
            format!("the bucket's versioning is {state:?}: OSS then ignores x-oss-forbid-overwrite and claims are not exclusive. Use a bucket that never had versioning"),
            EX_UNAVAILABLE,
        ),
        Err(e) => r.fail(
            "versioning",
            format!("cannot read the versioning state: {e}; the key needs oss:GetBucketVersioning"),
            store_code(&e),
        ),
    }
}

async fn check_handlers(r: &mut Report, loaded: &LoadedConfig) {
    let registry = HandlerRegistry::new();
    let raw_queues = loaded
        .raw
        .get("queue")
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, q) in loaded.config.queues.iter().enumerate() {
        let check = format!("handler {}", q.name);
        match registry.build(q) {
            Ok(_) => {}
            Err(RegistryError::UnknownCustom { name, .. }) => {
                r.skip(
                    &check,
                    format!(
                        "custom handler {name:?} is registered by the program embedding bucketq"
                    ),
                );
                continue;
            }
            Err(e) => {
                r.fail(&check, e.to_string(), EX_CONFIG);
                continue;
            }
        }
        let raw = raw_queues
            .get(i)
            .and_then(|q| q.get("handler"))
            .and_then(toml::Value::as_table)
            .cloned()
            .unwrap_or_default();
        match &q.handler {
            HandlerConfig::Log => r.ok(&check, "log: logs each task"),
            HandlerConfig::Custom { .. } => r.ok(&check, "custom handler registered"),
            HandlerConfig::Mail(_) => check_mail(r, &check, &raw).await,
            HandlerConfig::Webhook(_) => check_webhook(r, &check, &raw).await,
            HandlerConfig::Exec(_) => check_exec(r, &check, &raw),
        }
    }
}

async fn check_mail(r: &mut Report, check: &str, raw: &toml::Table) {
    let Some(host) = raw.get("host").and_then(toml::Value::as_str) else {
        r.fail(
            check,
            "mail: no host; set handler.host or EMAIL_SERVER_HOST",
            EX_CONFIG,
        );
        return;
    };
    let default_port = match raw.get("tls").and_then(toml::Value::as_str) {
        Some("tls") => 465,
        Some("none") => 25,
        _ => 587,
    };
    let port = match raw.get("port") {
        None => Some(default_port),
        Some(toml::Value::Integer(p)) => u16::try_from(*p).ok(),
        Some(toml::Value::String(p)) => p.parse().ok(),
        Some(_) => None,
    };
    let Some(port) = port else {
        r.fail(check, "mail: handler.port is not a port number", EX_CONFIG);
        return;
    };
    if raw.get("tls").and_then(toml::Value::as_str) == Some("tls") {
        connect(
            r,
            check,
            "mail: SMTP server",
            host,
            port,
            "handler.host / handler.port",
        )
        .await;
    } else {
        check_smtp_greeting(r, check, host, port).await;
    }
}

/// How long a plain SMTP server may take to greet.
const GREETING_TIMEOUT: Duration = Duration::from_secs(3);

/// A plain or STARTTLS server greets first (`220 ...`). An SMTPS port (465) says nothing: it
/// waits for the client's TLS hello, and `tls = "starttls"` would time out on every mail.
async fn check_smtp_greeting(r: &mut Report, check: &str, host: &str, port: u16) {
    use tokio::io::AsyncReadExt;
    let stream = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            return r.fail(
                check,
                format!("mail: SMTP server {host}:{port}: {e}; check handler.host / handler.port and the firewall"),
                EXIT_FAILURE,
            )
        }
        Err(_) => {
            return r.fail(
                check,
                format!("mail: SMTP server {host}:{port}: no answer within {}s; check handler.host / handler.port and the firewall", CONNECT_TIMEOUT.as_secs()),
                EXIT_FAILURE,
            )
        }
    };
    let mut stream = stream;
    let mut buf = [0u8; 512];
    match tokio::time::timeout(GREETING_TIMEOUT, stream.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => {
            let greeting = String::from_utf8_lossy(&buf[..n]);
            let first = greeting.lines().next().unwrap_or("").trim().to_owned();
            if first.starts_with("220") {
                r.ok(check, format!("mail: SMTP server {host}:{port} greets: {first}"));
            } else {
                r.fail(
                    check,
                    format!("mail: SMTP server {host}:{port} greets with {first:?}, not 220: it refuses mail"),
                    EXIT_FAILURE,
                );
            }
        }
        Ok(_) => r.fail(
            check,
            format!("mail: SMTP server {host}:{port} closed the connection without a greeting"),
            EXIT_FAILURE,
        ),
        Err(_) => r.fail(
            check,
            format!(
                "mail: {host}:{port} accepts connections but sends no SMTP greeting within {}s: it expects TLS from the first byte (SMTPS{}); use tls = \"tls\"",
                GREETING_TIMEOUT.as_secs(),
                if port == 465 { ", as port 465 does" } else { "" }
            ),
            EX_CONFIG,
        ),
    }
}

async fn check_webhook(r: &mut Report, check: &str, raw: &toml::Table) {
    let Some(url) = raw.get("url").and_then(toml::Value::as_str) else {
        r.fail(check, "webhook: no url; set handler.url", EX_CONFIG);
        return;
    };
    match host_port(url) {
        Some((host, port)) => {
            connect(r, check, "webhook: target", &host, port, "handler.url").await;
        }
        None => r.fail(
            check,
            "webhook: handler.url is not an http(s) URL with a host",
            EX_CONFIG,
        ),
    }
}

fn check_exec(r: &mut Report, check: &str, raw: &toml::Table) {
    let program = ["command", "argv", "program"]
        .iter()
        .find_map(|k| raw.get(*k))
        .and_then(|v| match v {
            toml::Value::String(s) => s.split_whitespace().next().map(str::to_owned),
            toml::Value::Array(items) => items
                .first()
                .and_then(toml::Value::as_str)
                .map(str::to_owned),
            _ => None,
        });
    let Some(program) = program else {
        r.skip(check, "exec: no command found to check");
        return;
    };
    let args: Vec<String> = match raw.get("command").or_else(|| raw.get("argv")) {
        Some(toml::Value::Array(items)) => items
            .iter()
            .skip(1)
            .filter_map(toml::Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let working_dir = raw
        .get("working_dir")
        .and_then(toml::Value::as_str)
        .map(PathBuf::from);
    match find_executable(&program) {
        Some(path) => match missing_script(&args, working_dir.as_deref()) {
            Some(script) => r.fail(
                check,
                format!("exec: {} is executable, but the script {script:?} it is given does not exist{}; install it (in a container image too) or fix the path", path.display(), working_dir.as_ref().map_or(String::new(), |d| format!(" (relative to {})", d.display()))),
                EX_CONFIG,
            ),
            None => r.ok(check, format!("exec: {} is executable", path.display())),
        },
        None => r.fail(
            check,
            format!("exec: {program:?} is not an executable file here or on PATH; install it or give its absolute path"),
            EX_CONFIG,
        ),
    }
}

/// The first argument that names a script file (by its extension) which does not exist:
/// `python3 /opt/bucketq/fc-shim/bucketq_fc_shim.py` with the shim not installed passes the
/// program check and fails every task.
fn missing_script(args: &[String], working_dir: Option<&Path>) -> Option<String> {
    const SCRIPTS: [&str; 7] = [".py", ".js", ".mjs", ".cjs", ".sh", ".rb", ".pl"];
    args.iter()
        .filter(|a| !a.starts_with('-') && SCRIPTS.iter().any(|ext| a.ends_with(ext)))
        .find(|a| {
            let path = Path::new(a.as_str());
            let path = match working_dir {
                Some(dir) if path.is_relative() => dir.join(path),
                _ => path.to_owned(),
            };
            !path.is_file()
        })
        .cloned()
}

fn find_executable(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_exec(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_exec(p))
}

/// Host and port of an http(s) URL, the port defaulting by scheme.
fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').map(str::parse).transpose().ok()?;
        (host.to_owned(), port.unwrap_or(default))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().ok()?),
            None => (authority.to_owned(), default),
        }
    };
    (!host.is_empty()).then_some((host, port))
}

async fn connect(r: &mut Report, check: &str, what: &str, host: &str, port: u16, keys: &str) {
    let attempt = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await;
    match attempt {
        Ok(Ok(_)) => r.ok(check, format!("{what} {host}:{port} accepts connections")),
        Ok(Err(e)) => r.fail(
            check,
            format!("{what} {host}:{port}: {e}; check {keys} and the firewall"),
            EXIT_FAILURE,
        ),
        Err(_) => r.fail(
            check,
            format!(
                "{what} {host}:{port}: no answer within {}s; check {keys} and the firewall",
                CONNECT_TIMEOUT.as_secs()
            ),
            EXIT_FAILURE,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_script_argument_is_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("here.py"), "").unwrap();
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            missing_script(&args(&["here.py", "index.handler"]), Some(dir.path())),
            None
        );
        assert_eq!(
            missing_script(&args(&["-u", "gone.py"]), Some(dir.path())),
            Some("gone.py".into())
        );
        assert_eq!(missing_script(&args(&["-c", "print(1)"]), None), None);
    }

    #[test]
    fn host_port_defaults_by_scheme_and_skips_userinfo() {
        assert_eq!(
            host_port("https://u:p@hooks.example.com/x?y"),
            Some(("hooks.example.com".into(), 443))
        );
        assert_eq!(
            host_port("http://127.0.0.1:8080"),
            Some(("127.0.0.1".into(), 8080))
        );
        assert_eq!(host_port("http://[::1]:9/x"), Some(("::1".into(), 9)));
        assert_eq!(host_port("ftp://x"), None);
        assert_eq!(host_port("https://"), None);
    }

    #[test]
    fn finds_executables_on_path_and_by_path() {
        assert!(find_executable("sh").is_some());
        assert!(find_executable("/bin/sh").is_some());
        assert!(find_executable("/etc/hostname-definitely-not").is_none());
        assert!(find_executable("no-such-program-bucketq").is_none());
    }
}
