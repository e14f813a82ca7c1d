//! Loading: the TOML file (or the built-in demo), then `BUCKETQ_*` environment overrides, then
//! the FC template's variable names as defaults, then typing and validation.
//!
//! The merge works on an untyped TOML tree so that an override can address any key, and the
//! typed [`Config`] is made from the result with the `config` crate's lenient deserializer: an
//! environment variable is always a string, and `BUCKETQ_WORKER__CONCURRENCY=8` must still read
//! as a number.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::validate::{validate, Problem};
use super::Config;

/// Where `bucketq` looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/bucketq/bucketq.toml";

/// Prefix of the environment overrides: `BUCKETQ_STORE__BUCKET=tasks`.
pub const ENV_PREFIX: &str = "BUCKETQ_";

/// Separator of nested keys in an override's name.
pub const ENV_SEPARATOR: &str = "__";

/// The configuration used when no file exists: the local store in `./bucketq-data` and one
/// queue `demo` served by the `log` handler, so a newcomer sees a task flow through with no
/// setup at all.
pub const DEMO_CONFIG: &str = r#"
[store]
kind = "local"
path = "./bucketq-data"

[[queue]]
name = "demo"
prefix = "demo/"
handler = { type = "log" }
"#;

/// The FC template's OSS variables and the `[store]` keys they fill when `kind = "oss"` and
/// the key is not set otherwise.
pub const FC_STORE_VARS: [(&str, &str); 4] = [
    ("OSS_BUCKET", "bucket"),
    ("OSS_KEYID", "access_key_id"),
    ("OSS_SECRET", "access_key_secret"),
    ("OSS_LINK", "endpoint"),
];

/// The FC template's mail variables and the fields of every `mail` handler they fill when the
/// field is not set otherwise.
pub const FC_MAIL_VARS: [(&str, &str); 4] = [
    ("EMAIL_SERVER_HOST", "host"),
    ("EMAIL_SERVER_PORT", "port"),
    ("EMAIL_USERNAME", "username"),
    ("EMAIL_PASSWORD", "password"),
];

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A TOML file.
    File(PathBuf),
    /// No file: the built-in demo ([`DEMO_CONFIG`]).
    BuiltinDemo,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(path) => write!(f, "{}", path.display()),
            ConfigSource::BuiltinDemo => write!(
                f,
                "the built-in demo config (no file at {DEFAULT_CONFIG_PATH})"
            ),
        }
    }
}

/// A validated configuration with what is needed to explain it.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The typed, validated configuration.
    pub config: Config,
    /// File or built-in demo.
    pub source: ConfigSource,
    /// The merged tree the config was typed from. Kept for the parts whose types belong to
    /// other modules (handler tables) when printing and probing; may hold secrets, so print it
    /// only through [`super::view`].
    pub raw: toml::Table,
    /// Names (never values) of the environment variables that changed the file's values.
    pub env_applied: Vec<String>,
}

/// Why the configuration could not be loaded. Every variant names the file, variable or key
/// involved and says what to do; none carries a configured value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config` named a file that does not exist.
    #[error("config file {path} does not exist; create it (see examples/bucketq.toml) or pass another --config")]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin} is not valid TOML: {message}")]
    Parse {
        /// File or demo.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// An environment override cannot be applied.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable's name.
        var: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A value has the wrong type or a key is unknown.
    #[error("{origin}: {message}")]
    Invalid {
        /// File or demo.
        origin: String,
        /// The deserializer's message, naming the key.
        message: String,
    },
    /// The values are well-formed but do not make a working configuration.
    #[error("{origin} has {} problem(s):\n{}", problems.len(), list(problems))]
    Problems {
        /// File or demo.
        origin: String,
        /// Each problem with its key and fix.
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Load the configuration the process environment and `path` select: `path` if given (it must
/// exist), else [`DEFAULT_CONFIG_PATH`] if it exists, else the built-in demo.
pub fn load(path: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
    let env = process_env()?;
    load_with_env(path, &env)
}

/// [`load`] with the environment passed in, for tests.
pub fn load_with_env(
    path: Option<&Path>,
    env: &BTreeMap<String, String>,
) -> Result<LoadedConfig, ConfigError> {
    let (source, text) = read_source(path)?;
    load_text(source, &text, env)
}

/// Type and validate `text` as if read from `source`.
pub fn load_text(
    source: ConfigSource,
    text: &str,
    env: &BTreeMap<String, String>,
) -> Result<LoadedConfig, ConfigError> {
    let origin = source.to_string();
    let mut raw: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: origin.clone(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let mut env_applied = apply_overrides(&mut raw, env)?;
    // The FC and cloud defaults depend on the kind; read it as typing will (any case).
    if let Some(kind) = raw.get_mut("store").and_then(|s| s.get_mut("kind")) {
        if let Some(text) = kind.as_str() {
            *kind = toml::Value::String(text.trim().to_ascii_lowercase());
        }
    }
    env_applied.extend(apply_fc_defaults(&mut raw, env));
    env_applied.extend(apply_cloud_env_keys(&mut raw, env));
    let config = super::typing::type_config(&mut raw, &env_applied).map_err(|problems| {
        ConfigError::Problems {
            origin: origin.clone(),
            problems,
        }
    })?;
    let problems = validate(&config);
    if !problems.is_empty() {
        return Err(ConfigError::Problems { origin, problems });
    }
    Ok(LoadedConfig {
        config,
        source,
        raw,
        env_applied,
    })
}

/// Variable systemd sets to the directory holding `LoadCredential=` files.
pub const CREDENTIALS_DIRECTORY_VAR: &str = "CREDENTIALS_DIRECTORY";

/// The process environment, refusing a non-UTF-8 value only where bucketq would read it, plus
/// systemd credentials (see [`credentials_env`]).
fn process_env() -> Result<BTreeMap<String, String>, ConfigError> {
    let mut env = BTreeMap::new();
    if let Some(dir) = std::env::var_os(CREDENTIALS_DIRECTORY_VAR) {
        env = credentials_env(Path::new(&dir))?;
    }
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().map(str::to_owned) else {
            continue;
        };
        if !is_ours(&name) {
            continue;
        }
        let value = value.into_string().map_err(|_| ConfigError::Env {
            var: name.clone(),
            message: "the value is not valid UTF-8".into(),
        })?;
        env.insert(name, value);
    }
    Ok(env)
}

/// systemd credentials as variables: each file in `dir` named like a variable bucketq reads
/// (`LoadCredential=BUCKETQ_STORE__ACCESS_KEY_SECRET:/etc/bucketq/secret`) gives that variable
/// its content, without the trailing newline. A variable set in the environment wins.
pub fn credentials_env(dir: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let read_err = |path: &Path, source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut env = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
        let entry = entry.map_err(|e| read_err(dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !is_ours(&name) {
            continue;
        }
        let path = entry.path();
        let value = std::fs::read_to_string(&path).map_err(|e| read_err(&path, e))?;
        let value = value.strip_suffix('\n').unwrap_or(&value);
        let value = value.strip_suffix('\r').unwrap_or(value);
        env.insert(name, value.to_owned());
    }
    Ok(env)
}

/// True for the variables loading reads.
fn is_ours(name: &str) -> bool {
    name.starts_with(ENV_PREFIX)
        || FC_STORE_VARS.iter().any(|(var, _)| *var == name)
        || FC_MAIL_VARS.iter().any(|(var, _)| *var == name)
}

fn read_source(path: Option<&Path>) -> Result<(ConfigSource, String), ConfigError> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((ConfigSource::File(path), text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            Ok((ConfigSource::BuiltinDemo, DEMO_CONFIG.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ConfigError::NotFound { path }),
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

/// Apply every `BUCKETQ_A__B__C=value` to key `a.b.c`. Variables without the separator
/// (`BUCKETQ_LOG`, `BUCKETQ_CONFIG`, ...) are settings of the process, not of the config.
/// Returns the names of the variables applied.
fn apply_overrides(
    raw: &mut toml::Table,
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>, ConfigError> {
    let mut applied = Vec::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains(ENV_SEPARATOR) {
            continue;
        }
        let path: Vec<String> = rest
            .split(ENV_SEPARATOR)
            .map(|s| s.to_ascii_lowercase())
            .collect();
        // An empty variable unsets the key (falls back to the file's absence: the default),
        // the usual way to switch an override off without editing the file.
        let value = if value.is_empty() {
            None
        } else {
            Some(env_value(var, value)?)
        };
        set_path(raw, &path, value).map_err(|message| ConfigError::Env {
            var: var.clone(),
            message,
        })?;
        applied.push(var.clone());
    }
    Ok(applied)
}

/// An override's value: a string, or an inline TOML array/table when it starts with `[`/`{`
/// (`BUCKETQ_QUEUE__JOBS__HANDLER__ARGV='["/usr/bin/job", "--quiet"]'`). Numbers and booleans
/// stay strings; the lenient deserializer reads them as the key's type.
fn env_value(var: &str, value: &str) -> Result<toml::Value, ConfigError> {
    let trimmed = value.trim_start();
    if !(trimmed.starts_with('[') || trimmed.starts_with('{')) {
        return Ok(toml::Value::String(value.to_owned()));
    }
    let mut doc: toml::Table =
        toml::from_str(&format!("v = {value}")).map_err(|e| ConfigError::Env {
            var: var.to_owned(),
            message: format!(
                "a value starting with [ or {{ must be an inline TOML array or table: {}",
                e.message()
            ),
        })?;
    Ok(doc.remove("v").expect("the document was built with key v"))
}

/// Set `path` in `raw`, creating tables on the way. The segment after `queue` selects a queue
/// by name (case-insensitive, `-` written as `_`) or by index, and never creates one.
/// Set (or with `None`, remove) the key at `path`, a queue addressed by name or index.
fn set_path(
    raw: &mut toml::Table,
    path: &[String],
    value: Option<toml::Value>,
) -> Result<(), String> {
    let (first, rest) = path.split_first().ok_or("empty key")?;
    if first.is_empty() {
        return Err("empty key segment; separate nested keys with a double underscore".into());
    }
    if first == "queue" && !rest.is_empty() {
        let queues = match raw.get_mut("queue") {
            Some(toml::Value::Array(queues)) => queues,
            _ => return Err("there are no [[queue]] tables in the file to override".into()),
        };
        let index = find_queue(queues, &rest[0])?;
        let queue = queues[index]
            .as_table_mut()
            .ok_or("every [[queue]] must be a table")?;
        return match &rest[1..] {
            [] => Err("name a key inside the queue, like BUCKETQ_QUEUE__MAIL__TIMEOUT".into()),
            tail => set_path(queue, tail, value),
        };
    }
    if rest.is_empty() {
        match value {
            Some(value) => raw.insert(first.clone(), value),
            None => raw.remove(first),
        };
        return Ok(());
    }
    let child = raw
        .entry(first.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match child {
        toml::Value::Table(table) => set_path(table, rest, value),
        _ => Err(format!(
            "`{first}` is not a table, so it has no key `{}`",
            rest[0]
        )),
    }
}

fn find_queue(queues: &[toml::Value], selector: &str) -> Result<usize, String> {
    let by_name = queues.iter().position(|q| {
        q.get("name")
            .and_then(toml::Value::as_str)
            .is_some_and(|name| name.replace('-', "_").eq_ignore_ascii_case(selector))
    });
    if let Some(i) = by_name {
        return Ok(i);
    }
    match selector.parse::<usize>() {
        Ok(i) if i < queues.len() => Ok(i),
        _ => {
            let names: Vec<&str> = queues
                .iter()
                .filter_map(|q| q.get("name").and_then(toml::Value::as_str))
                .collect();
            Err(format!(
                "no queue named or numbered {selector:?}; the queues are {names:?}"
            ))
        }
    }
}

/// Fill unset keys from the FC template's variables. Returns the names of the variables used.
/// The cloud SDKs' key variables and the `[store]` keys they fill, per store kind: Alibaba's
/// for `oss`, AWS's for `s3`. Used by `credentials.source = "auto"` (the default) and `"env"`,
/// the first step of both SDKs' default chains, and only when both the id and the secret are
/// set, as the SDKs require.
pub const CLOUD_KEY_VARS: [(&str, [(&str, &str); 3]); 2] = [
    (
        "oss",
        [
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "access_key_id"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "access_key_secret"),
            ("ALIBABA_CLOUD_SECURITY_TOKEN", "security_token"),
        ],
    ),
    (
        "s3",
        [
            ("AWS_ACCESS_KEY_ID", "access_key_id"),
            ("AWS_SECRET_ACCESS_KEY", "access_key_secret"),
            ("AWS_SESSION_TOKEN", "security_token"),
        ],
    ),
];

fn apply_cloud_env_keys(raw: &mut toml::Table, env: &BTreeMap<String, String>) -> Vec<String> {
    let Some(store) = raw.get_mut("store").and_then(toml::Value::as_table_mut) else {
        return Vec::new();
    };
    let kind = store
        .get("kind")
        .and_then(toml::Value::as_str)
        .unwrap_or("");
    let Some((_, vars)) = CLOUD_KEY_VARS.iter().find(|(k, _)| *k == kind) else {
        return Vec::new();
    };
    let source = store
        .get("credentials")
        .and_then(|c| c.get("source"))
        .and_then(toml::Value::as_str)
        .unwrap_or("auto");
    let has_keys = store
        .get("access_key_id")
        .and_then(toml::Value::as_str)
        .is_some_and(|v| !v.is_empty());
    let usable = match source {
        "auto" | "ram-role-arn" => !has_keys,
        "env" => true,
        _ => false,
    };
    let set = |var: &str| env.get(var).filter(|v| !v.is_empty());
    if !usable || set(vars[0].0).is_none() || set(vars[1].0).is_none() {
        return Vec::new();
    }
    let mut used = Vec::new();
    for (var, key) in vars {
        if let Some(value) = set(var) {
            store.insert((*key).to_owned(), toml::Value::String(value.clone()));
            used.push((*var).to_owned());
        }
    }
    used
}

fn apply_fc_defaults(raw: &mut toml::Table, env: &BTreeMap<String, String>) -> Vec<String> {
    let mut used = Vec::new();
    let store_is_oss = raw
        .get("store")
        .and_then(|s| s.get("kind"))
        .and_then(toml::Value::as_str)
        == Some("oss");
    if store_is_oss {
        let store = raw
            .entry("store")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let Some(store) = store.as_table_mut() {
            for (var, key) in FC_STORE_VARS {
                let Some(value) = env.get(var).filter(|v| !v.is_empty()) else {
                    continue;
                };
                let value = if key == "endpoint" {
                    with_scheme(value)
                } else {
                    value.clone()
                };
                if fill(store, key, toml::Value::String(value)) {
                    used.push(var.to_owned());
                }
            }
        }
    }
    let mail_handlers = raw
        .get_mut("queue")
        .and_then(toml::Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|q| q.get_mut("handler").and_then(toml::Value::as_table_mut))
        .filter(|h| h.get("type").and_then(toml::Value::as_str) == Some("mail"));
    for handler in mail_handlers {
        for (var, key) in FC_MAIL_VARS {
            let Some(value) = env.get(var).filter(|v| !v.is_empty()) else {
                continue;
            };
            if fill(handler, key, toml::Value::String(value.clone()))
                && !used.iter().any(|u| u == var)
            {
                used.push(var.to_owned());
            }
        }
    }
    used
}

/// Set `key` unless it has a non-empty value already. Returns whether it was set.
fn fill(table: &mut toml::Table, key: &str, value: toml::Value) -> bool {
    let present = match table.get(key) {
        None => false,
        Some(toml::Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    if !present {
        table.insert(key.to_owned(), value);
    }
    !present
}

/// The FC template's `OSS_LINK` is often a bare host (`oss-cn-hangzhou.aliyuncs.com`).
fn with_scheme(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("https://{endpoint}")
    }
}

#[cfg(test)]
mod tests;
