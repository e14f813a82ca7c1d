//! Walking the directory tree in key order, for listings.
//!
//! Keys sort by their UTF-8 bytes, and `/` sorts between `.` and `0`, so a plain depth-first
//! walk with names sorted would put `a/b` before `a-c`. Sorting each directory's entries with a
//! `/` appended to subdirectory names yields keys in exact byte order; subtrees that lie wholly
//! before the cursor are skipped without being read.

use std::fs::{self, DirEntry};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::key::{ListingStart, MAX_KEY_BYTES};
use super::write::is_temp_name;

/// A temporary file this old was left by a writer that crashed; listings remove it.
pub(super) const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// One key found by a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    /// The key.
    pub key: String,
    /// Its file.
    pub path: PathBuf,
}

/// Up to `limit` keys from `start`, in key order, strictly after `after` when given.
pub(super) fn keys_in_order(
    start: &ListingStart<'_>,
    after: Option<&str>,
    limit: usize,
) -> io::Result<Vec<Found>> {
    let mut walk = Walk {
        after,
        limit,
        found: Vec::new(),
    };
    walk.directory(&start.dir, start.key_prefix, start.name_prefix)?;
    Ok(walk.found)
}

struct Walk<'a> {
    after: Option<&'a str>,
    limit: usize,
    found: Vec<Found>,
}

/// A directory entry with the name it sorts by.
struct Entry {
    /// The entry's name, with `/` appended for directories.
    sort_name: String,
    is_dir: bool,
    path: PathBuf,
}

impl Walk<'_> {
    fn full(&self) -> bool {
        self.found.len() >= self.limit
    }

    fn directory(&mut self, dir: &Path, key_prefix: &str, name_prefix: &str) -> io::Result<()> {
        for entry in sorted_entries(dir, name_prefix)? {
            if self.full() {
                break;
            }
            let key = format!("{key_prefix}{}", entry.sort_name);
            if entry.is_dir {
                // The length check stops a symbolic-link loop: no key is that long.
                if key.len() <= MAX_KEY_BYTES && self.subtree_wanted(&key) {
                    self.directory(&entry.path, &key, "")?;
                }
            } else if self.after.map_or(true, |after| key.as_str() > after) {
                self.found.push(Found {
                    key,
                    path: entry.path,
                });
            }
        }
        Ok(())
    }

    /// Whether a subtree whose keys all start with `dir_key` (ending in `/`) can hold a key
    /// after the cursor: yes if the cursor lies inside it or before it.
    fn subtree_wanted(&self, dir_key: &str) -> bool {
        match self.after {
            None => true,
            Some(after) => after.starts_with(dir_key) || dir_key > after,
        }
    }
}

/// The entries of `dir` whose names start with `name_prefix`, sorted as keys. The store's own
/// temporary files and names that are not UTF-8 (which no key can produce) are left out; a
/// directory that vanished (pruned by a concurrent delete) has no entries.
fn sorted_entries(dir: &Path, name_prefix: &str) -> io::Result<Vec<Entry>> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if is_unreachable(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut entries = Vec::new();
    for dir_entry in read {
        let dir_entry = match dir_entry {
            Ok(d) => d,
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(e),
        };
        let Ok(name) = dir_entry.file_name().into_string() else {
            continue;
        };
        if is_temp_name(&name) {
            remove_if_stale(&dir_entry);
            continue;
        }
        if !name.starts_with(name_prefix) {
            continue;
        }
        let Some(is_dir) = is_directory(&dir_entry)? else {
            continue;
        };
        let sort_name = if is_dir { format!("{name}/") } else { name };
        entries.push(Entry {
            sort_name,
            is_dir,
            path: dir_entry.path(),
        });
    }
    entries.sort_unstable_by(|a, b| a.sort_name.cmp(&b.sort_name));
    Ok(entries)
}

/// Remove a temporary file older than [`STALE_TEMP_AGE`]: its writer is gone, and it would
/// keep its directory from being pruned. Best effort; a failure only leaves it for next time.
fn remove_if_stale(entry: &DirEntry) {
    let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
        return;
    };
    let age = SystemTime::now()
        .duration_since(modified)
        .unwrap_or(Duration::ZERO);
    if age > STALE_TEMP_AGE {
        let _ = fs::remove_file(entry.path());
    }
}

/// Directory or file, following symbolic links; `None` when the entry vanished meanwhile.
fn is_directory(entry: &DirEntry) -> io::Result<Option<bool>> {
    let file_type = match entry.file_type() {
        Ok(t) => t,
        Err(e) if is_gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    if !file_type.is_symlink() {
        return Ok(Some(file_type.is_dir()));
    }
    match fs::metadata(entry.path()) {
        Ok(meta) => Ok(Some(meta.is_dir())),
        Err(e) if is_unreachable(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// True for errors meaning "no longer there": the tree changes while we walk it.
pub(super) fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// Gone, or behind a symbolic-link loop: either way no object is reachable there.
fn is_unreachable(e: &io::Error) -> bool {
    is_gone(e) || e.raw_os_error() == Some(libc::ELOOP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::local::key::listing_start;

    fn tree(keys: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for key in keys {
            let path = dir.path().join(key);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(&path, key).expect("write");
        }
        dir
    }

    fn walk(root: &Path, prefix: &str, after: Option<&str>, limit: usize) -> Vec<String> {
        let start = listing_start(root, prefix).expect("valid prefix");
        keys_in_order(&start, after, limit)
            .expect("walk")
            .into_iter()
            .map(|f| f.key)
            .collect()
    }

    #[test]
    fn keys_come_out_in_byte_order_across_directories() {
        let mut keys = vec!["a/b", "a-c", "a.d", "a0", "a/a/z", "b", "a/b0", "A"];
        let dir = tree(&keys);
        keys.sort_unstable();
        assert_eq!(walk(dir.path(), "", None, 100), keys);
    }

    #[test]
    fn the_cursor_skips_whole_subtrees_and_resumes_inside_one() {
        let dir = tree(&["a/1", "a/2", "b/1", "b/2", "b/3/x", "c"]);
        assert_eq!(walk(dir.path(), "", Some("b/2"), 100), ["b/3/x", "c"]);
        assert_eq!(walk(dir.path(), "", Some("a/"), 100).len(), 6);
        assert_eq!(walk(dir.path(), "", Some("a/2"), 2), ["b/1", "b/2"]);
        assert_eq!(walk(dir.path(), "", Some("zzz"), 2), Vec::<String>::new());
    }

    #[test]
    fn a_partial_prefix_filters_the_first_directory_only() {
        let dir = tree(&["q/10", "q/11/x", "q/2", "q/1-a", "r/1"]);
        assert_eq!(
            walk(dir.path(), "q/1", None, 100),
            ["q/1-a", "q/10", "q/11/x"]
        );
        assert_eq!(walk(dir.path(), "q/", None, 100).len(), 4);
        assert_eq!(
            walk(dir.path(), "nothing/", None, 100),
            Vec::<String>::new()
        );
    }

    #[test]
    fn temporary_files_and_empty_directories_are_not_listed() {
        let dir = tree(&["q/1"]);
        fs::write(dir.path().join("q/.bucketq-tmp-1-2"), "partial").expect("write");
        fs::create_dir_all(dir.path().join("q/empty/deeper")).expect("mkdir");
        assert_eq!(walk(dir.path(), "", None, 100), ["q/1"]);
        assert!(
            dir.path().join("q/.bucketq-tmp-1-2").exists(),
            "a fresh temporary file belongs to a running writer and stays"
        );
    }

    #[test]
    fn stale_temporary_files_are_removed_by_a_listing() {
        let dir = tree(&["q/1"]);
        let stale = dir.path().join("q/.bucketq-tmp-1-3");
        let file = fs::File::create(&stale).expect("create");
        let long_ago = SystemTime::now() - STALE_TEMP_AGE - Duration::from_secs(60);
        file.set_modified(long_ago).expect("set mtime");
        drop(file);
        assert_eq!(walk(dir.path(), "", None, 100), ["q/1"]);
        assert!(!stale.exists(), "a crashed writer's file is swept");
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_loop_ends() {
        let dir = tree(&["q/1"]);
        std::os::unix::fs::symlink(dir.path().join("q"), dir.path().join("q/loop"))
            .expect("symlink");
        let keys = walk(dir.path(), "", None, 100_000);
        assert!(keys.len() > 1 && keys.len() < 1000, "{} keys", keys.len());
        assert!(keys.iter().all(|k| k.len() <= MAX_KEY_BYTES));
    }
}
