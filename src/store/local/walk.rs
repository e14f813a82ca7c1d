//! Walking the directory tree in key order, for listings.
//!
//! Keys sort by their UTF-8 bytes, and `/` sorts between `.` and `0`, so a plain depth-first
//! walk with names sorted would put `a/b` before `a-c`. Ordering each directory's entries with a
//! `/` appended to subdirectory names yields keys in exact byte order; subtrees that lie wholly
//! before the cursor are skipped without being read.
//!
//! Memory is bounded by the page, not by the directory: while `read_dir` streams a directory,
//! only the entries the page still has room for are kept (the smallest ones, in a bounded
//! max-heap), and names at or before the cursor are dropped on their bytes before anything is
//! allocated for them. So a queue directory of 100,000 tasks costs a page of 1,000 entries, not
//! 100,000. A subdirectory is one entry however many keys it holds; when the entries kept gave
//! fewer keys than the room they took (an empty subdirectory, say) and some were left out, the
//! directory is read again from the last entry walked.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
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

impl Walk<'_> {
    /// How many more keys the page takes.
    fn room(&self) -> usize {
        self.limit.saturating_sub(self.found.len())
    }

    /// Walk the directory whose keys start with `key_prefix`, taking only names that start with
    /// `name_prefix`, in passes of at most [`Walk::room`] entries each.
    fn directory(&mut self, dir: &Path, key_prefix: &str, name_prefix: &str) -> io::Result<()> {
        let Some(cursor) = Cursor::in_directory(self.after, key_prefix) else {
            return Ok(());
        };
        let mut filter = Filter {
            name_prefix,
            cursor,
            resume: None,
        };
        loop {
            let room = self.room();
            if room == 0 {
                return Ok(());
            }
            let pass = smallest_entries(dir, &filter, room)?;
            let mut last = None;
            for entry in pass.entries {
                if self.room() == 0 {
                    return Ok(());
                }
                self.visit(dir, key_prefix, &entry)?;
                last = Some(entry.sort_name);
            }
            match last {
                Some(sort_name) if pass.more => filter.resume = Some(sort_name),
                _ => return Ok(()),
            }
        }
    }

    /// Take a file's key, or walk a subdirectory.
    fn visit(&mut self, dir: &Path, key_prefix: &str, entry: &Entry) -> io::Result<()> {
        let key = format!("{key_prefix}{}", entry.sort_name);
        let path = dir.join(entry.name());
        if !entry.is_dir {
            self.found.push(Found { key, path });
        } else if key.len() <= MAX_KEY_BYTES {
            // The length check stops a symbolic-link loop: no key is that long.
            self.directory(&path, &key, "")?;
        }
        Ok(())
    }
}

/// Where the listing's cursor lies for one directory, all of whose keys start with its key.
#[derive(Debug, Clone, Copy)]
enum Cursor<'a> {
    /// Before every key of the directory: all are wanted.
    Before,
    /// Inside the directory: wanted are the keys whose rest (after the directory's key) sorts
    /// after this rest of the cursor.
    Within(&'a [u8]),
}

impl<'a> Cursor<'a> {
    /// The cursor for the directory whose key is `key_prefix`; `None` when it lies after every
    /// key the directory can hold.
    fn in_directory(after: Option<&'a str>, key_prefix: &str) -> Option<Cursor<'a>> {
        let Some(after) = after else {
            return Some(Cursor::Before);
        };
        match after.strip_prefix(key_prefix) {
            Some(rest) => Some(Cursor::Within(rest.as_bytes())),
            None if key_prefix > after => Some(Cursor::Before),
            None => None,
        }
    }

    /// Whether an entry can hold a key after the cursor: a file if its name sorts after it; a
    /// directory if its sort name does or the cursor lies inside it.
    fn admits(self, name: &[u8], is_dir: bool) -> bool {
        let Cursor::Within(rest) = self else {
            return true;
        };
        match compare_sort_name(name, is_dir, rest) {
            Ordering::Greater => true,
            // Equal: a file is the cursor itself; every key inside a directory follows it.
            Ordering::Equal => is_dir,
            Ordering::Less => {
                is_dir && rest.starts_with(name) && rest.get(name.len()) == Some(&b'/')
            }
        }
    }
}

/// Which entries of one directory a pass wants.
#[derive(Debug)]
struct Filter<'a> {
    /// Names must start with this (a partial last segment of the listing's prefix).
    name_prefix: &'a str,
    cursor: Cursor<'a>,
    /// After a pass that left entries out: the sort name of the last entry walked.
    resume: Option<String>,
}

impl Filter<'_> {
    /// Whether an entry named `name` of the given type is wanted.
    fn admits(&self, name: &[u8], is_dir: bool) -> bool {
        name.starts_with(self.name_prefix.as_bytes())
            && self.cursor.admits(name, is_dir)
            && self.resume.as_ref().map_or(true, |last| {
                compare_sort_name(name, is_dir, last.as_bytes()) == Ordering::Greater
            })
    }

    /// Whether an entry named `name` may be wanted, before its type is known. A directory sorts
    /// after a file of the same name, so it is admitted whenever the file would be: asking as a
    /// directory rejects only the names no type could save.
    fn may_admit(&self, name: &[u8]) -> bool {
        self.admits(name, true)
    }

    /// Whether this is the first pass over the directory.
    fn first_pass(&self) -> bool {
        self.resume.is_none()
    }
}

/// A directory entry kept for walking, ordered as a key: by its sort name alone, which is
/// unique within a directory.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    /// The entry's name, with `/` appended for directories.
    sort_name: String,
    is_dir: bool,
}

impl Entry {
    fn new(mut name: String, is_dir: bool) -> Entry {
        if is_dir {
            name.push('/');
        }
        Entry {
            sort_name: name,
            is_dir,
        }
    }

    /// The entry's file name.
    fn name(&self) -> &str {
        &self.sort_name[..self.sort_name.len() - usize::from(self.is_dir)]
    }
}

/// The entries of one pass over a directory.
#[derive(Debug)]
struct Pass {
    /// The first wanted entries, in key order.
    entries: Vec<Entry>,
    /// True when wanted entries were left out for want of room.
    more: bool,
}

/// The first `room` entries of `dir` in key order that `filter` admits. The store's own
/// temporary files and names that are not UTF-8 (which no key can produce) are left out; a
/// directory that vanished (pruned by a concurrent delete) has no entries.
fn smallest_entries(dir: &Path, filter: &Filter<'_>, room: usize) -> io::Result<Pass> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if is_unreachable(&e) => {
            return Ok(Pass {
                entries: Vec::new(),
                more: false,
            })
        }
        Err(e) => return Err(e),
    };
    // A max-heap: its top is the entry to give up first when a smaller one comes.
    let mut kept: BinaryHeap<Entry> = BinaryHeap::new();
    let mut more = false;
    for dir_entry in read {
        let dir_entry = match dir_entry {
            Ok(d) => d,
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(e),
        };
        let name = dir_entry.file_name();
        if is_temp_name(&name) {
            if filter.first_pass() {
                remove_if_stale(&dir_entry);
            }
            continue;
        }
        let bytes = name.as_encoded_bytes();
        if !filter.may_admit(bytes) {
            continue;
        }
        if kept.len() >= room
            && kept
                .peek()
                .is_some_and(|top| bytes > top.sort_name.as_bytes())
        {
            // Even as a file it sorts after every entry kept.
            more = true;
            continue;
        }
        let Ok(name) = name.into_string() else {
            continue;
        };
        let Some(is_dir) = is_directory(&dir_entry)? else {
            continue;
        };
        if filter.admits(name.as_bytes(), is_dir) {
            more |= keep_smallest(&mut kept, Entry::new(name, is_dir), room);
        }
    }
    Ok(Pass {
        entries: kept.into_sorted_vec(),
        more,
    })
}

/// Add `entry` to `kept` while it holds fewer than `room`, else let it replace the largest if
/// smaller. True when an entry was left out.
fn keep_smallest(kept: &mut BinaryHeap<Entry>, entry: Entry, room: usize) -> bool {
    if kept.len() < room {
        kept.push(entry);
        return false;
    }
    if let Some(mut top) = kept.peek_mut() {
        if entry < *top {
            *top = entry;
        }
    }
    true
}

/// How the sort name of `name` (with `/` appended when `is_dir`) orders against `other`,
/// without building it.
fn compare_sort_name(name: &[u8], is_dir: bool, other: &[u8]) -> Ordering {
    if !is_dir {
        return name.cmp(other);
    }
    match other.split_at_checked(name.len()) {
        Some((head, tail)) => name.cmp(head).then_with(|| b"/".as_slice().cmp(tail)),
        // `other` is shorter than `name/`: equal up to its end means it is a leading part.
        None => name[..other.len()].cmp(other).then(Ordering::Greater),
    }
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

    #[test]
    fn empty_subdirectories_do_not_cut_a_page_short() {
        // The empty directories sort first and take room in the first pass; the page still
        // holds `limit` keys, read in a second pass.
        let dir = tree(&["q/1", "q/2", "q/3", "q/4"]);
        for empty in ["q/0a", "q/0b/deeper", "q/0c"] {
            fs::create_dir_all(dir.path().join(empty)).expect("mkdir");
        }
        fs::write(dir.path().join("q/0c/.bucketq-tmp-1-4"), "partial").expect("write");
        assert_eq!(walk(dir.path(), "", None, 2), ["q/1", "q/2"]);
        assert_eq!(walk(dir.path(), "", Some("q/2"), 2), ["q/3", "q/4"]);
        assert_eq!(walk(dir.path(), "q/0", None, 2), Vec::<String>::new());
    }

    #[test]
    fn a_pass_keeps_only_the_smallest_entries_it_has_room_for() {
        let names: Vec<String> = (0..50).map(|n| format!("{:02}", (n * 17) % 50)).collect();
        let keys: Vec<String> = names.iter().map(|n| format!("q/{n}")).collect();
        let dir = tree(&keys.iter().map(String::as_str).collect::<Vec<_>>());
        let q = dir.path().join("q");
        let mut filter = Filter {
            name_prefix: "",
            cursor: Cursor::Before,
            resume: None,
        };
        let sort_names = |pass: &Pass| -> Vec<String> {
            pass.entries.iter().map(|e| e.sort_name.clone()).collect()
        };

        let pass = smallest_entries(&q, &filter, 5).expect("read");
        assert_eq!(sort_names(&pass), ["00", "01", "02", "03", "04"]);
        assert!(pass.more, "45 entries were left out");

        filter.resume = Some("04".into());
        let pass = smallest_entries(&q, &filter, 5).expect("read");
        assert_eq!(sort_names(&pass), ["05", "06", "07", "08", "09"]);

        filter.cursor = Cursor::Within(b"47");
        let pass = smallest_entries(&q, &filter, 5).expect("read");
        assert_eq!(sort_names(&pass), ["48", "49"]);
        assert!(!pass.more, "nothing was left out");
    }

    #[test]
    fn the_cursor_admits_an_entry_only_if_it_can_hold_a_later_key() {
        // (cursor's rest, name, is_dir, admitted)
        let cases = [
            ("a0", "a", true, false), // every a/… sorts before a0
            ("a0", "a", false, false),
            ("a0", "a0", false, false), // the cursor itself
            ("a0", "a0", true, true),   // a0/… follows a0
            ("a0", "a-", true, false),
            ("a0", "a1", false, true),
            ("a0", "b", true, true),
            ("a/b", "a", true, true), // the cursor lies inside
            ("a/b", "a", false, false),
            ("a/b", "a-", true, false),
            ("a/b", "a.", true, false),
            ("a/b", "a0", false, true),
            ("a/", "a", true, true),
            ("", "-", false, true),
        ];
        for (rest, name, is_dir, admitted) in cases {
            assert_eq!(
                Cursor::Within(rest.as_bytes()).admits(name.as_bytes(), is_dir),
                admitted,
                "cursor {rest:?}, {name:?} (directory: {is_dir})"
            );
            assert!(Cursor::Before.admits(name.as_bytes(), is_dir));
        }
    }

    #[test]
    fn sort_names_compare_as_if_built() {
        let names = [
            "a", "a-", "a.b", "a0", "ab", "b", "é", "日本", "-", "0", "~",
        ];
        let others = [
            "", "a", "a-", "a.", "a/", "a/b", "a/-", "a0", "a0/", "ab", "é/", "é0", "日", "/", "-",
            "~~",
        ];
        for name in names {
            for other in others.iter().copied().chain(names) {
                for is_dir in [false, true] {
                    let built = if is_dir {
                        format!("{name}/")
                    } else {
                        name.to_owned()
                    };
                    assert_eq!(
                        compare_sort_name(name.as_bytes(), is_dir, other.as_bytes()),
                        built.as_str().cmp(other),
                        "{built:?} against {other:?}"
                    );
                }
            }
        }
    }

    /// A tree of nested keys whose segments differ only around the bytes that sort near `/`
    /// (`-`, `.`, `0`), plus unicode, empty directories and a flat directory of tasks; the
    /// keys, sorted.
    fn tangled_tree() -> (tempfile::TempDir, Vec<String>) {
        use rand::rngs::StdRng;
        use rand::seq::SliceRandom;
        use rand::{Rng, SeedableRng};

        let segments = [
            "a", "a-", "a-b", "a.b", "a0", "ab", "b", "B", "é", "日本", "-", "0", "a b", "~",
        ];
        let mut rng = StdRng::seed_from_u64(6);
        let mut keys: Vec<String> = (0..160)
            .map(|_| {
                let depth = rng.gen_range(1..=3);
                let path: Vec<&str> = (0..depth)
                    .map(|_| *segments.choose(&mut rng).expect("segments"))
                    .collect();
                path.join("/")
            })
            .collect();
        keys.extend((0..60).map(|n| format!("q/{:08}.task", (n * 37) % 60)));
        keys.sort_unstable();
        keys.dedup();
        // A name is a file or a directory, not both: drop keys that lead to others.
        let keys: Vec<String> = keys
            .iter()
            .filter(|k| !keys.iter().any(|other| other.starts_with(&format!("{k}/"))))
            .cloned()
            .collect();
        let dir = tree(&keys.iter().map(String::as_str).collect::<Vec<_>>());
        for empty in ["a/a-e", "a/0/e", "q/0", "q/00000010.e/x", "é/0", "a-/a-/e"] {
            let path = dir.path().join(empty);
            if path.ancestors().all(|p| !p.is_file()) {
                fs::create_dir_all(&path).expect("mkdir");
            }
        }
        assert!(keys.len() > 100, "{} keys", keys.len());
        (dir, keys)
    }

    /// What a listing must return, by brute force.
    fn expected(keys: &[String], prefix: &str, after: Option<&str>, limit: usize) -> Vec<String> {
        keys.iter()
            .filter(|k| k.starts_with(prefix) && after.map_or(true, |a| k.as_str() > a))
            .take(limit)
            .cloned()
            .collect()
    }

    #[test]
    fn pages_match_a_sorted_listing_at_every_boundary() {
        let (dir, keys) = tangled_tree();
        for prefix in [
            "",
            "a",
            "a/",
            "a-",
            "a/a",
            "é",
            "日本/",
            "q/",
            "q/0000001",
            "zz",
        ] {
            for limit in [1, 2, 3, 7, 1000] {
                let mut after: Option<String> = None;
                let mut listed = Vec::new();
                loop {
                    let page = walk(dir.path(), prefix, after.as_deref(), limit);
                    assert_eq!(
                        page,
                        expected(&keys, prefix, after.as_deref(), limit),
                        "prefix {prefix:?} after {after:?} limit {limit}"
                    );
                    if page.len() < limit {
                        listed.extend(page);
                        break;
                    }
                    after = page.last().cloned();
                    listed.extend(page);
                }
                assert_eq!(listed, expected(&keys, prefix, None, usize::MAX));
            }
        }
    }

    #[test]
    fn cursors_that_are_not_keys_resume_in_order() {
        let (dir, keys) = tangled_tree();
        let cursors = [
            "",
            "-",
            "0",
            "a",
            "a ",
            "a-",
            "a-/",
            "a.",
            "a/",
            "a/a-",
            "a/a/",
            "a/zzz",
            "a0/",
            "b/",
            "q/",
            "q/0",
            "q/00000030",
            "é",
            "é/",
            "日",
            "~",
            "\u{10FFFF}",
        ];
        for after in cursors {
            for limit in [1, 4, 1000] {
                for prefix in ["", "a", "a/"] {
                    assert_eq!(
                        walk(dir.path(), prefix, Some(after), limit),
                        expected(&keys, prefix, Some(after), limit),
                        "prefix {prefix:?} after {after:?} limit {limit}"
                    );
                }
            }
        }
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
