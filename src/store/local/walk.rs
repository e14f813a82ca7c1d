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
mod tests;
