//! The effective configuration as `bucketq config check` prints it: every default filled in,
//! every override applied, and no secret.
//!
//! Typed sections serialize their [`crate::secret::Secret`] fields as [`REDACTED`]. Handler
//! tables belong to the handler modules, so they are printed from the merged tree with every
//! value whose key looks secret (and everything under `headers` and `env`) redacted, and URLs
//! lose their user-info. As a last guard, any secret value still found in the output is
//! replaced.

use super::load::{ConfigSource, LoadedConfig};

/// What a secret prints as.
pub const REDACTED: &str = "******";

/// Substrings of key names whose values are treated as secrets.
const SECRET_KEY_WORDS: [&str; 9] = [
    "password",
    "passwd",
    "secret",
    "token",
    "key",
    "auth",
    "credential",
    "cookie",
    "signature",
];

/// Tables whose every value is treated as a secret (HTTP headers, child environments).
const SECRET_TABLES: [&str; 2] = ["headers", "env"];

/// Shortest value the final scrub replaces; shorter ones would mangle unrelated text.
const MIN_SCRUB_LEN: usize = 4;

/// Output formats of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML, with a comment header naming the source.
    Toml,
    /// One JSON object, for scripts.
    Json,
}

/// Why the view could not be rendered (a bug, not a user error).
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// Serializing the config failed.
    #[error("cannot render the effective config: {0}")]
    Serialize(String),
}

/// The effective configuration, redacted, in `format`.
pub fn render(loaded: &LoadedConfig, format: Format) -> Result<String, ViewError> {
    let mut secrets = vec![
        loaded.config.store.access_key_id.expose().to_owned(),
        loaded.config.store.access_key_secret.expose().to_owned(),
        loaded.config.store.security_token.expose().to_owned(),
    ];
    let value = effective_value(loaded, &mut secrets)?;
    let text = match format {
        Format::Json => {
            serde_json::to_string_pretty(&value).map_err(|e| ViewError::Serialize(e.to_string()))?
        }
        Format::Toml => {
            let body = toml::to_string(&value).map_err(|e| ViewError::Serialize(e.to_string()))?;
            format!("{}{body}", header(loaded))
        }
    };
    Ok(scrub(text, &secrets))
}

fn header(loaded: &LoadedConfig) -> String {
    let mut out = format!("# Effective bucketq configuration from {}\n", loaded.source);
    if !loaded.env_applied.is_empty() {
        out.push_str(&format!(
            "# Environment applied: {}\n",
            loaded.env_applied.join(", ")
        ));
    }
    out.push_str(&format!("# Secrets are shown as {REDACTED}.\n"));
    if loaded.source == ConfigSource::BuiltinDemo {
        out.push_str("# Write your own to /etc/bucketq/bucketq.toml or pass --config.\n");
    }
    out.push('\n');
    out
}

/// The typed config as a TOML tree (in declaration order) with each queue's handler table
/// added back, redacted; collects the values it redacted into `secrets`.
fn effective_value(
    loaded: &LoadedConfig,
    secrets: &mut Vec<String>,
) -> Result<toml::Value, ViewError> {
    let mut value =
        toml::Value::try_from(&loaded.config).map_err(|e| ViewError::Serialize(e.to_string()))?;
    let raw_queues = loaded
        .raw
        .get("queue")
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(queues) = value.get_mut("queue").and_then(toml::Value::as_array_mut) {
        for (queue, raw) in queues.iter_mut().zip(raw_queues) {
            if let (Some(queue), Some(handler)) = (queue.as_table_mut(), raw.get("handler")) {
                queue.insert("handler".into(), redact("handler", handler, false, secrets));
            }
        }
    }
    // URLs of [store] (the endpoint, credential URIs) lose their user-info like any other.
    if let Some(store) = value.get("store").cloned() {
        if let Some(table) = value.as_table_mut() {
            table.insert("store".into(), redact("store", &store, false, secrets));
        }
    }
    if let Some(table) = value.as_table_mut() {
        // An empty [http] only says "off"; leave it out.
        table.retain(|_, v| v.as_table().map_or(true, |t| !t.is_empty()));
    }
    Ok(value)
}

/// Copy a TOML value, redacting secret-looking entries (datetimes become strings so the JSON
/// view stays plain).
fn redact(
    key: &str,
    value: &toml::Value,
    inside_secret_table: bool,
    secrets: &mut Vec<String>,
) -> toml::Value {
    use toml::Value as T;
    let secret_key = inside_secret_table || looks_secret(key);
    match value {
        T::Table(table) => {
            let secret_table = inside_secret_table || SECRET_TABLES.contains(&key);
            T::Table(
                table
                    .iter()
                    .map(|(k, v)| (k.clone(), redact(k, v, secret_table, secrets)))
                    .collect(),
            )
        }
        T::Array(items) => T::Array(
            items
                .iter()
                .map(|v| redact(key, v, inside_secret_table, secrets))
                .collect(),
        ),
        T::String(s) if secret_key && !s.is_empty() => {
            secrets.push(s.clone());
            T::String(REDACTED.into())
        }
        T::String(s) if key == "url" || key.ends_with("_url") => T::String(url_origin(s, secrets)),
        T::String(s) => T::String(strip_userinfo(s, secrets)),
        other if secret_key => {
            secrets.push(other.to_string());
            T::String(REDACTED.into())
        }
        T::Datetime(d) => T::String(d.to_string()),
        other => other.clone(),
    }
}

/// True for key names like `password`, `api_key`, `Authorization`.
pub fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEY_WORDS.iter().any(|w| key.contains(w))
}

/// A URL's scheme, host and port only: webhook paths and queries often carry the token
/// (`https://hooks.slack.com/services/T0/B0/XXXX`), so the rest is redacted.
fn url_origin(text: &str, secrets: &mut Vec<String>) -> String {
    let stripped = strip_userinfo(text, secrets);
    let Some((scheme, rest)) = stripped.split_once("://") else {
        return stripped;
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if tail.is_empty() || tail == "/" {
        return stripped;
    }
    secrets.push(tail.to_owned());
    format!("{scheme}://{authority}/{REDACTED}")
}

/// `https://user:pw@host/x` → `https://******@host/x`.
fn strip_userinfo(text: &str, secrets: &mut Vec<String>) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, _)) => {
            secrets.push(userinfo.to_owned());
            if let Some((_, password)) = userinfo.split_once(':') {
                secrets.push(password.to_owned());
            }
            format!("{scheme}://{REDACTED}@{}", &rest[userinfo.len() + 1..])
        }
        None => text.to_owned(),
    }
}

/// Replace every known secret that still appears in `text`.
fn scrub(mut text: String, secrets: &[String]) -> String {
    for secret in secrets {
        if secret.len() >= MIN_SCRUB_LEN && secret != REDACTED {
            text = text.replace(secret.as_str(), REDACTED);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::load_text;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    const TEXT: &str = r#"
[store]
kind = "s3"
endpoint = "http://127.0.0.1:9000"
bucket = "tasks"
access_key_id = "AKIAEXAMPLEID"
access_key_secret = "wJalrXUtnFEMI-secret"

[http]
listen = "127.0.0.1:9464"

[[queue]]
name = "hooks"
prefix = "hooks/"
timeout = "30s"
handler = { type = "log" }

[[queue]]
name = "mail"
prefix = "mail/"
handler = { type = "mail", host = "smtp.example.com", port = 587, username = "bot", password = "mail-pw-123", from = "A <a@example.com>" }
"#;

    fn loaded() -> LoadedConfig {
        let env: BTreeMap<String, String> = [(
            "BUCKETQ_QUEUE__MAIL__HANDLER__PASSWORD".to_string(),
            "env-pw-456".to_string(),
        )]
        .into();
        load_text(ConfigSource::File(PathBuf::from("x.toml")), TEXT, &env).unwrap()
    }

    #[test]
    fn toml_view_has_defaults_and_no_secrets() {
        let text = render(&loaded(), Format::Toml).unwrap();
        for secret in [
            "AKIAEXAMPLEID",
            "wJalrXUtnFEMI-secret",
            "mail-pw-123",
            "env-pw-456",
        ] {
            assert!(!text.contains(secret), "{secret} leaked:\n{text}");
        }
        assert!(text.contains("access_key_secret = \"******\""), "{text}");
        assert!(text.contains("password = \"******\""), "{text}");
        assert!(text.contains("lease = \"5m\""), "{text}");
        assert!(text.contains("host = \"smtp.example.com\""), "{text}");
        assert!(
            text.contains("BUCKETQ_QUEUE__MAIL__HANDLER__PASSWORD"),
            "{text}"
        );
        // It is valid TOML, in declaration order.
        let _: toml::Table = toml::from_str(&text).unwrap();
        let store = text.find("[store]").unwrap();
        let worker = text.find("[worker]").unwrap();
        let queue = text.find("[[queue]]").unwrap();
        assert!(store < worker && worker < queue, "{text}");
    }

    #[test]
    fn json_view_parses_and_keeps_structure() {
        let text = render(&loaded(), Format::Json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["queue"][1]["handler"]["password"], REDACTED);
        assert_eq!(v["queue"][1]["handler"]["port"], 587);
        assert_eq!(v["queue"][0]["timeout"], "30s");
        assert_eq!(v["store"]["access_key_id"], REDACTED);
        assert!(!text.contains("AKIAEXAMPLEID"));
    }

    #[test]
    fn headers_env_and_url_userinfo_are_redacted() {
        let mut secrets = Vec::new();
        let handler: toml::Value = toml::from_str::<toml::Table>(
            r#"url = "https://bot:hunter22@hooks.example.com/x"
headers = { X-Custom = "opaque-value" }
env = { DB_URL = "postgres://u:p@db/x" }
timeout = 5"#,
        )
        .unwrap()
        .into();
        let text = redact("handler", &handler, false, &mut secrets).to_string();
        assert!(!text.contains("hunter22"), "{text}");
        assert!(!text.contains("opaque-value"), "{text}");
        assert!(!text.contains("postgres"), "{text}");
        assert!(
            text.contains("url = \"https://******@hooks.example.com/******\""),
            "{text}"
        );
        assert!(text.contains("timeout = 5"), "{text}");
    }

    #[test]
    fn a_store_endpoint_with_credentials_is_printed_without_them() {
        let mut l = loaded();
        l.config.store.endpoint = Some("http://minio:pa55word-xyz@10.0.0.7:9000".into());
        let text = render(&l, Format::Toml).unwrap();
        assert!(!text.contains("pa55word-xyz"), "{text}");
        assert!(text.contains("10.0.0.7:9000"), "{text}");
    }

    #[test]
    fn scrub_replaces_leftovers() {
        let text = scrub("a hunter22 b".into(), &["hunter22".into(), "ab".into()]);
        assert_eq!(text, "a ****** b");
    }
}
