//! Mapping object keys to paths under the local store's root, refusing keys that cannot map.
//!
//! A key `a/b/c` is the file `<root>/a/b/c`. A key must not be able to name anything outside
//! the root or any of the store's own files, so every segment is checked: no empty segments
//! (which also rules out absolute keys and trailing slashes), no `.` or `..`, no NUL, and no
//! segment starting with [`RESERVED_PREFIX`], the prefix of the store's temporary files.

use std::path::{Path, PathBuf};

use crate::store::StoreError;

/// Names starting with this belong to the store (temporary files); keys may not use it and
/// listings skip it.
pub(super) const RESERVED_PREFIX: &str = ".bucketq-";

/// Longest key accepted, in bytes (the S3 and OSS limit).
pub(super) const MAX_KEY_BYTES: usize = 1024;

/// Longest path segment most filesystems accept (`NAME_MAX`).
const MAX_SEGMENT_BYTES: usize = 255;

/// The path of `key` under `root`, or `InvalidKey` saying why the key cannot be stored.
pub(super) fn key_path(root: &Path, key: &str) -> Result<PathBuf, StoreError> {
    if key.is_empty() {
        return Err(invalid(key, "the key is empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid(key, "the key is longer than 1024 bytes"));
    }
    let mut path = root.to_path_buf();
    for segment in key.split('/') {
        check_segment(segment).map_err(|reason| invalid(key, reason))?;
        path.push(segment);
    }
    Ok(path)
}

/// Where a listing of `prefix` starts: the directory holding every matching key and the start
/// every name in it must have. `None` when no valid key can start with the prefix.
pub(super) fn listing_start<'p>(root: &Path, prefix: &'p str) -> Option<ListingStart<'p>> {
    let (dirs, name_prefix) = match prefix.rfind('/') {
        Some(i) => (&prefix[..i], &prefix[i + 1..]),
        None => ("", prefix),
    };
    let mut dir = root.to_path_buf();
    if !dirs.is_empty() {
        for segment in dirs.split('/') {
            check_segment(segment).ok()?;
            dir.push(segment);
        }
    }
    if prefix.contains('\0') {
        return None;
    }
    Some(ListingStart {
        dir,
        key_prefix: &prefix[..prefix.len() - name_prefix.len()],
        name_prefix,
    })
}

/// See [`listing_start`].
#[derive(Debug)]
pub(super) struct ListingStart<'p> {
    /// Directory to walk.
    pub dir: PathBuf,
    /// The key of that directory, with its trailing `/` (empty for the root).
    pub key_prefix: &'p str,
    /// Only entries of `dir` whose names start with this match.
    pub name_prefix: &'p str,
}

/// Why one segment of a key is unusable, if it is.
fn check_segment(segment: &str) -> Result<(), &'static str> {
    if segment.is_empty() {
        return Err("empty segment (leading, trailing or doubled '/')");
    }
    if segment == "." || segment == ".." {
        return Err("'.' and '..' segments would leave the key's directory");
    }
    if segment.contains('\0') {
        return Err("NUL byte");
    }
    if segment.starts_with(RESERVED_PREFIX) {
        return Err("segments starting with '.bucketq-' are reserved for the store's own files");
    }
    if segment.len() > MAX_SEGMENT_BYTES {
        return Err("a segment is longer than 255 bytes");
    }
    Ok(())
}

fn invalid(key: &str, reason: &str) -> StoreError {
    StoreError::InvalidKey {
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_nested_keys_map_under_the_root() {
        let root = Path::new("/data");
        assert_eq!(
            key_path(root, "mail/42.task").expect("valid"),
            Path::new("/data/mail/42.task")
        );
        assert_eq!(
            key_path(root, "测试/with space+plus").expect("valid"),
            Path::new("/data/测试/with space+plus")
        );
        assert_eq!(
            key_path(root, "..x/y..").expect("valid"),
            Path::new("/data/..x/y..")
        );
    }

    #[test]
    fn escaping_and_reserved_keys_are_rejected() {
        let root = Path::new("/data");
        let long_segment = "x".repeat(256);
        let long_key = "a/".repeat(600);
        for key in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            ".",
            "a//b",
            "a/",
            "a\0b",
            ".bucketq-tmp-1",
            "q/.bucketq-anything",
            long_segment.as_str(),
            long_key.as_str(),
        ] {
            let err = key_path(root, key).expect_err(key);
            assert!(
                matches!(&err, StoreError::InvalidKey { key: k, .. } if k == key),
                "{key:?}: {err:?}"
            );
        }
    }

    #[test]
    fn listing_start_splits_the_prefix_at_the_last_slash() {
        let root = Path::new("/data");
        let start = listing_start(root, "mail/4").expect("valid");
        assert_eq!(start.dir, Path::new("/data/mail"));
        assert_eq!(start.key_prefix, "mail/");
        assert_eq!(start.name_prefix, "4");

        let start = listing_start(root, "a/b/").expect("valid");
        assert_eq!(start.dir, Path::new("/data/a/b"));
        assert_eq!(start.key_prefix, "a/b/");
        assert_eq!(start.name_prefix, "");

        let start = listing_start(root, "").expect("valid");
        assert_eq!(start.dir, Path::new("/data"));
        assert_eq!((start.key_prefix, start.name_prefix), ("", ""));

        let start = listing_start(root, "..x").expect("a name prefix may start with dots");
        assert_eq!(start.name_prefix, "..x");
    }

    #[test]
    fn listing_start_refuses_prefixes_no_key_can_have() {
        let root = Path::new("/data");
        for prefix in ["../", "a//", "/abs/", "a/../b", ".bucketq-tmp/", "a\0"] {
            assert!(listing_start(root, prefix).is_none(), "{prefix:?}");
        }
    }
}
