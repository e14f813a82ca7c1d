//! Typing the merged TOML tree into [`Config`], with every problem reported at once and in the
//! user's words.
//!
//! serde stops at the first unknown key or wrong type and speaks in Rust types ("enum
//! StoreBackend does not have variant constructor gcs", "expected usize"). So before
//! deserializing, the values of enum-like keys are checked against their allowed values
//! (case-insensitively: `"OSS"` is `"oss"`); then each deserializer error is recorded, the key
//! it names is removed, and typing is tried again, until it passes or nothing more can be
//! removed. A key set by an environment variable is reported with the variable's name.

use config::{Value, ValueKind};

use super::validate::Problem;
use super::{Config, HANDLER_TYPES};

/// How many deserializer errors are collected before giving up (each costs one more try).
const MAX_PROBLEMS: usize = 50;

/// Keys whose values are one of a few words, and those words.
const ENUMS: &[(&str, &[&str])] = &[
    ("store.kind", &["oss", "s3", "local"]),
    ("store.signature", &["v4", "v1"]),
    (
        "store.addressing",
        &["auto", "virtual-hosted", "path", "cname"],
    ),
    (
        "store.credentials.source",
        &[
            "auto",
            "static",
            "env",
            "default",
            "profile",
            "ecs-ram-role",
            "oidc",
            "ram-role-arn",
            "uri",
            "web-identity",
            "container",
            "imds",
        ],
    ),
    ("worker.on_success", &["delete", "move"]),
];

/// Type `raw` (every override applied) into a [`Config`], or say everything wrong with it.
/// `env_applied` names the variables that set keys, for messages.
pub fn type_config(raw: &mut toml::Table, env_applied: &[String]) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    check_enums(raw, env_applied, &mut problems);
    loop {
        let attempt: Result<Config, _> =
            to_config_value(toml::Value::Table(raw.clone())).try_deserialize();
        let error = match attempt {
            Ok(config) if problems.is_empty() => return Ok(config),
            Ok(_) => return Err(problems),
            Err(e) => e.to_string(),
        };
        let (key, message) = split_key(&tidy_key_paths(&error));
        let removable = match unknown_field(&message) {
            Some(field) if !key.is_empty() => format!("{key}.{field}"),
            Some(field) => field,
            None => key.clone(),
        };
        let problem = Problem {
            key: if removable.is_empty() {
                "(top level)".into()
            } else {
                removable.clone()
            },
            message: with_variable(&removable, &readable(&message), env_applied),
        };
        problems.push(problem);
        if removable.is_empty() || !remove_path(raw, &removable) || problems.len() >= MAX_PROBLEMS {
            return Err(problems);
        }
    }
}

/// Check and normalise every enum-like value; a value that is none of its words is a problem
/// and removed (so the rest can still be typed).
fn check_enums(raw: &mut toml::Table, env_applied: &[String], problems: &mut Vec<Problem>) {
    let mut paths: Vec<(String, &[&str])> = ENUMS
        .iter()
        .map(|(path, words)| ((*path).to_owned(), *words))
        .collect();
    let queues = raw
        .get("queue")
        .and_then(toml::Value::as_array)
        .map_or(0, Vec::len);
    for i in 0..queues {
        paths.push((format!("queue[{i}].handler.type"), &HANDLER_TYPES));
        paths.push((
            format!("queue[{i}].handler.tls"),
            &["none", "starttls", "tls"],
        ));
        paths.push((format!("queue[{i}].handler.event"), &["payload", "fc"]));
    }
    for (path, words) in paths {
        let Some(value) = get_path_mut(raw, &path) else {
            continue;
        };
        let Some(text) = value.as_str() else {
            continue;
        };
        let lower = text.trim().to_ascii_lowercase();
        if words.contains(&lower.as_str()) {
            *value = toml::Value::String(lower);
            continue;
        }
        let listed = words
            .iter()
            .map(|w| format!("{w:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        problems.push(Problem {
            key: path.clone(),
            message: with_variable(
                &path,
                &format!("{text:?} is not one of {listed}"),
                env_applied,
            ),
        });
        // A valid stand-in, so the rest can still be typed and checked (the problem above
        // already fails the config). A handler's other fields belong to its type: drop them.
        if path.ends_with(".handler.type") {
            if let Some(handler) = get_path_mut(raw, path.trim_end_matches(".type")) {
                let mut stand_in = toml::Table::new();
                stand_in.insert("type".into(), toml::Value::String("log".into()));
                *handler = toml::Value::Table(stand_in);
            }
        } else if let Some(value) = get_path_mut(raw, &path) {
            *value = toml::Value::String(words[0].to_owned());
        }
    }
}

/// The key a deserializer message is about, and the rest: `... for key `worker.lease``.
fn split_key(message: &str) -> (String, String) {
    const MARK: &str = " for key `";
    let Some(at) = message.rfind(MARK) else {
        return (String::new(), message.to_owned());
    };
    let rest = &message[at + MARK.len()..];
    match rest.split_once('`') {
        Some((key, tail)) => (key.to_owned(), format!("{}{tail}", &message[..at])),
        None => (String::new(), message.to_owned()),
    }
}

/// The field of "unknown field `bar`, expected one of ...".
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(field, _)| field.to_owned())
}

/// A deserializer message in an operator's words.
fn readable(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let known = tail
            .split_once("expected one of ")
            .map(|(_, k)| k.replace('`', ""))
            .or_else(|| {
                tail.split_once("expected ")
                    .map(|(_, k)| k.replace('`', ""))
            });
        return match known {
            Some(known) => format!("unknown key {field:?}; the keys here are: {known}"),
            None => format!("unknown key {field:?}"),
        };
    }
    if message.contains("integer `-") && message.contains("unsigned") {
        let n = message.split('`').nth(1).unwrap_or("a negative number");
        return format!("must be 0 or more; got {n}");
    }
    if let Some(rest) = message.strip_prefix("invalid value: integer `") {
        if let Some((n, tail)) = rest.split_once('`') {
            if n.starts_with('-') && (tail.contains("expected u") || tail.contains("usize")) {
                return format!("must be 0 or more; got {n}");
            }
        }
    }
    let kinds = [
        ("expected an integer", "a whole number"),
        ("expected u64", "a whole number of 0 or more"),
        ("expected u32", "a whole number of 0 or more"),
        ("expected u16", "a whole number from 0 to 65535"),
        ("expected usize", "a whole number of 0 or more"),
        ("expected a boolean", "true or false"),
        ("expected a string", "a string"),
    ];
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let got = rest.split(", expected").next().unwrap_or(rest);
        for (rust, words) in kinds {
            if rest.contains(rust) {
                return format!("must be {words}; got {got}");
            }
        }
    }
    message.to_owned()
}

/// `message`, saying which environment variable set `key` when one did.
fn with_variable(key: &str, message: &str, env_applied: &[String]) -> String {
    match variable_for(key, env_applied) {
        Some(var) => format!("{message} (set by the environment variable {var})"),
        None => message.to_owned(),
    }
}

/// The applied variable that sets `key` (`worker.lease` ← `BUCKETQ_WORKER__LEASE`; a queue key
/// is matched by its part after the queue, since a queue is named by name or index).
fn variable_for<'a>(key: &str, env_applied: &'a [String]) -> Option<&'a str> {
    let upper = |s: &str| s.replace('.', "__").to_ascii_uppercase();
    if let Some(rest) = key.strip_prefix("queue[") {
        let (_, tail) = rest.split_once("].")?;
        let suffix = format!("__{}", upper(tail));
        return env_applied
            .iter()
            .find(|v| v.starts_with("BUCKETQ_QUEUE__") && v.ends_with(&suffix))
            .map(String::as_str);
    }
    let wanted = format!("BUCKETQ_{}", upper(key));
    env_applied
        .iter()
        .find(|v| **v == wanted)
        .map(String::as_str)
}

/// Split `a.b[2].c` into segments with indexes: `a`, `b`, `[2]`, `c`.
fn segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        while let Some(open) = rest.find('[') {
            if open > 0 {
                out.push(Segment::Key(rest[..open].to_owned()));
            }
            let close = rest[open..].find(']').map_or(rest.len(), |c| open + c);
            if let Ok(i) = rest[open + 1..close].parse() {
                out.push(Segment::Index(i));
            }
            rest = rest.get(close + 1..).unwrap_or("");
        }
        if !rest.is_empty() {
            out.push(Segment::Key(rest.to_owned()));
        }
    }
    out
}

enum Segment {
    Key(String),
    Index(usize),
}

fn get_path_mut<'a>(raw: &'a mut toml::Table, path: &str) -> Option<&'a mut toml::Value> {
    let segs = segments(path);
    let (first, rest) = segs.split_first()?;
    let Segment::Key(first) = first else {
        return None;
    };
    let mut value = raw.get_mut(first)?;
    for seg in rest {
        value = match seg {
            Segment::Key(k) => value.as_table_mut()?.get_mut(k)?,
            Segment::Index(i) => value.as_array_mut()?.get_mut(*i)?,
        };
    }
    Some(value)
}

/// Remove the key at `path`; false when there is none (nothing could be done about it).
fn remove_path(raw: &mut toml::Table, path: &str) -> bool {
    let segs = segments(path);
    let Some((last, parents)) = segs.split_last() else {
        return false;
    };
    let Segment::Key(last) = last else {
        return false;
    };
    if parents.is_empty() {
        return raw.remove(last).is_some();
    }
    let mut value: &mut toml::Value = match &parents[0] {
        Segment::Key(k) => match raw.get_mut(k) {
            Some(v) => v,
            None => return false,
        },
        Segment::Index(_) => return false,
    };
    for seg in &parents[1..] {
        let next = match seg {
            Segment::Key(k) => value.as_table_mut().and_then(|t| t.get_mut(k)),
            Segment::Index(i) => value.as_array_mut().and_then(|a| a.get_mut(*i)),
        };
        match next {
            Some(v) => value = v,
            None => return false,
        }
    }
    value
        .as_table_mut()
        .is_some_and(|t| t.remove(last).is_some())
}

/// The `config` crate writes nested keys under arrays as `queue[0]handler`; make it the
/// `queue[0].handler` an operator would type.
pub(super) fn tidy_key_paths(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 4);
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == ']'
            && chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '_')
        {
            out.push('.');
        }
    }
    out
}

/// The TOML tree as the `config` crate's value, whose deserializer converts strings to the
/// requested number or boolean type.
pub(super) fn to_config_value(value: toml::Value) -> Value {
    let kind = match value {
        toml::Value::String(s) => ValueKind::String(s),
        toml::Value::Integer(i) => ValueKind::I64(i),
        toml::Value::Float(f) => ValueKind::Float(f),
        toml::Value::Boolean(b) => ValueKind::Boolean(b),
        toml::Value::Datetime(d) => ValueKind::String(d.to_string()),
        toml::Value::Array(items) => {
            ValueKind::Array(items.into_iter().map(to_config_value).collect())
        }
        toml::Value::Table(table) => ValueKind::Table(
            table
                .into_iter()
                .map(|(k, v)| (k, to_config_value(v)))
                .collect(),
        ),
    };
    Value::new(None, kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str, env_applied: &[&str]) -> Vec<String> {
        let mut raw: toml::Table = toml::from_str(text).expect("toml");
        let applied: Vec<String> = env_applied.iter().map(|s| (*s).to_owned()).collect();
        match type_config(&mut raw, &applied) {
            Ok(_) => Vec::new(),
            Err(p) => p.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn every_unknown_key_and_type_error_at_once() {
        let p = problems(
            "[store]\nkind = \"local\"\nfoo = 1\n[worker]\nbar = 2\nconcurrency = \"lots\"\nlease = 5\n",
            &[],
        );
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(
            p.iter()
                .any(|m| m.starts_with("store.foo: unknown key \"foo\"; the keys here are:")),
            "{p:#?}"
        );
        assert!(
            p.iter().any(|m| m.starts_with("worker.bar: unknown key")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.starts_with("worker.concurrency: must be a whole number")),
            "{p:#?}"
        );
        assert!(p.iter().any(|m| m.starts_with("worker.lease")), "{p:#?}");
    }

    #[test]
    fn enum_values_are_listed_in_the_users_words_and_case_is_forgiven() {
        let p = problems("[store]\nkind = \"gcs\"\n", &[]);
        assert_eq!(
            p,
            [r#"store.kind: "gcs" is not one of "oss", "s3", "local""#]
        );
        assert!(problems("[store]\nkind = \"LOCAL\"\n", &[]).is_empty());
        let p = problems(
            "[[queue]]\nname = \"q\"\nprefix = \"q/\"\nhandler = { type = \"smtp\" }\n",
            &[],
        );
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(
            p[0].starts_with("queue[0].handler.type: \"smtp\" is not one of \"mail\""),
            "{p:#?}"
        );
    }

    #[test]
    fn a_negative_count_says_so_and_a_variable_is_named() {
        let p = problems(
            "[worker]\nconcurrency = -5\n",
            &["BUCKETQ_WORKER__CONCURRENCY"],
        );
        assert_eq!(
            p,
            ["worker.concurrency: must be 0 or more; got -5 (set by the environment variable BUCKETQ_WORKER__CONCURRENCY)"]
        );
    }
}
