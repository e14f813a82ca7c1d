//! The shared credential files: where they live, and the INI dialect both clouds use.
//!
//! A dozen lines of INI parsing rather than a crate: sections, `key = value`, `#`/`;` comments,
//! AWS's `[profile name]` headers; nothing else occurs in these files.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Sections of an INI text, each a map of keys to values (keys lower-case, values trimmed).
pub fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            let name = name.strip_prefix("profile ").map(str::trim).unwrap_or(name);
            current = Some(name.to_owned());
            sections.entry(name.to_owned()).or_default();
            continue;
        }
        if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            sections
                .entry(section.clone())
                .or_default()
                .insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    sections
}

/// `$HOME/<relative>`, when `HOME` is known.
pub fn home_file(env: &BTreeMap<String, String>, relative: &str) -> Option<PathBuf> {
    env.get("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_keys_comments_and_aws_profile_headers() {
        let text = "# top\n[default]\ntype = access_key\naccess_key_id=AK1\n; note\n\n[profile ci]\naws_access_key_id = AK2 \nAWS_SECRET_ACCESS_KEY = s=with=equals\n";
        let s = parse_ini(text);
        assert_eq!(s["default"]["type"], "access_key");
        assert_eq!(s["default"]["access_key_id"], "AK1");
        assert_eq!(s["ci"]["aws_access_key_id"], "AK2");
        assert_eq!(s["ci"]["aws_secret_access_key"], "s=with=equals");
        assert!(!s.contains_key("top"));
    }
}
