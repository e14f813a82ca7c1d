//! The local store: a directory used as a bucket, the embedded default (`./bucketq-data`).
//!
//! A key `mail/42.task` is the file `<root>/mail/42.task`. Each file holds a small header (ETag,
//! content type, user metadata) followed by the body (see the `frame` module), so every write is a single
//! rename or link and a reader never sees a body without its metadata. Writes go to a temporary
//! file in the destination's directory and are then renamed into place (overwrite) or
//! hard-linked (create-if-absent: `EEXIST` is the lost race, atomic between processes).
//! LastModified is the file's mtime, with the filesystem's nanosecond precision.
//!
//! Limits that differ from S3: a key cannot also be a leading part of another key (`a` and `a/b`
//! cannot coexist, one is a file and the other a directory), and keys with `.`/`..`/empty
//! segments or segments starting with `.bucketq-` are refused with [`StoreError::InvalidKey`].
//!
//! Filesystem work runs on tokio's blocking pool so the runtime threads never wait on disk.

mod frame;
mod key;
mod walk;
mod write;

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use self::frame::{Framed, Header};
use self::key::{key_path, listing_start};
use self::walk::{is_gone, keys_in_order, Found};
use self::write::AtomicWrite;
use super::{
    CopyOptions, ListPage, ListRequest, Object, ObjectHead, ObjectMeta, Op, PutOptions,
    RequestStats, Result, Store, StoreError, StoreKind, WriteResult, MAX_DELETE_BATCH,
    MAX_LIST_KEYS,
};

/// A directory used as a bucket. Cheap to share behind an `Arc`; safe to use from several
/// processes at once (claims are link(2), which the kernel makes exclusive).
#[derive(Debug)]
pub struct LocalStore {
    dir: Arc<Dir>,
    /// The root as text, for [`Store::bucket`].
    name: String,
    stats: Arc<RequestStats>,
}

impl LocalStore {
    /// Open (creating it if absent) the directory at `path` as a store; every call is counted in
    /// `stats` under its operation and result.
    pub fn open(path: &Path, stats: Arc<RequestStats>) -> Result<LocalStore> {
        let io_err = |source| StoreError::Io {
            key: path.display().to_string(),
            source,
        };
        fs::create_dir_all(path).map_err(|source| {
            if source.kind() == io::ErrorKind::PermissionDenied {
                not_permitted(path)
            } else {
                io_err(source)
            }
        })?;
        // Absolute, so messages name the real place and a later chdir cannot move the store.
        let root = fs::canonicalize(path).map_err(io_err)?;
        Ok(LocalStore {
            name: root.display().to_string(),
            dir: Arc::new(Dir { root }),
            stats,
        })
    }

    /// The store's directory (absolute).
    ///
    /// (See [`not_permitted`] for what a directory this user cannot create is reported as.)
    pub fn root(&self) -> &Path {
        &self.dir.root
    }

    /// Run one filesystem operation on the blocking pool and count it.
    async fn run<T, F>(&self, op: Op, key: &str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Dir) -> Result<T> + Send + 'static,
    {
        let dir = Arc::clone(&self.dir);
        let result = match tokio::task::spawn_blocking(move || work(&dir)).await {
            Ok(result) => result,
            Err(join) => Err(StoreError::Io {
                key: key.to_owned(),
                source: io::Error::other(format!("local store task failed: {join}")),
            }),
        };
        self.stats.record(op, outcome_label(&result));
        result
    }
}

#[async_trait]
impl Store for LocalStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Local
    }

    fn bucket(&self) -> &str {
        &self.name
    }

    fn atomic_conditional_copy(&self) -> bool {
        true
    }

    async fn list(&self, req: &ListRequest) -> Result<ListPage> {
        let owned = req.clone();
        self.run(Op::List, &req.prefix, move |dir| dir.list(&owned))
            .await
    }

    async fn get(&self, key: &str) -> Result<Object> {
        let owned = key.to_owned();
        self.run(Op::Get, key, move |dir| dir.get(&owned)).await
    }

    async fn head(&self, key: &str) -> Result<ObjectHead> {
        let owned = key.to_owned();
        self.run(Op::Head, key, move |dir| dir.head(&owned)).await
    }

    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<WriteResult> {
        let (owned, opts) = (key.to_owned(), opts.clone());
        self.run(Op::Put, key, move |dir| dir.put(&owned, &body, &opts))
            .await
    }

    async fn copy(&self, source: &str, dest: &str, opts: &CopyOptions) -> Result<WriteResult> {
        let (from, to, opts) = (source.to_owned(), dest.to_owned(), opts.clone());
        self.run(Op::Copy, dest, move |dir| dir.copy(&from, &to, &opts))
            .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let owned = key.to_owned();
        self.run(Op::Delete, key, move |dir| dir.delete(&owned))
            .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, StoreError)>> {
        let owned = keys.to_vec();
        self.run(Op::DeleteMany, "", move |dir| dir.delete_many(owned))
            .await
    }

    async fn now(&self) -> Result<SystemTime> {
        // The files' mtimes come from this machine's clock, so it is the store's clock.
        Ok(SystemTime::now())
    }
}

/// The synchronous half of the store: every filesystem operation, run on the blocking pool.
#[derive(Debug)]
struct Dir {
    root: PathBuf,
}

impl Dir {
    fn list(&self, req: &ListRequest) -> Result<ListPage> {
        let limit = page_size(req.max_keys);
        // As S3: a continuation cursor supersedes start-after.
        let after = req.continuation.as_deref().or(req.start_after.as_deref());
        let found = match listing_start(&self.root, &req.prefix) {
            Some(start) => {
                keys_in_order(&start, after, limit + 1).map_err(|source| StoreError::Io {
                    key: req.prefix.clone(),
                    source,
                })?
            }
            // No valid key starts with this prefix.
            None => Vec::new(),
        };
        let next = (found.len() > limit).then(|| found[limit - 1].key.clone());
        let mut objects = Vec::with_capacity(limit.min(found.len()));
        for entry in found.iter().take(limit) {
            if let Some(meta) = self.listed_meta(entry)? {
                objects.push(meta);
            }
        }
        Ok(ListPage {
            objects,
            next,
            // Read after the walk, so no listed LastModified is later than it.
            server_time: SystemTime::now(),
        })
    }

    /// Facts of one listed file; `None` if it vanished or is unreadable as an object (logged,
    /// so one damaged file cannot stop a queue).
    fn listed_meta(&self, entry: &Found) -> Result<Option<ObjectMeta>> {
        match self.open_object(&entry.key, &entry.path) {
            Ok(opened) => match opened.read_head() {
                Ok(head) => Ok(Some(head.meta)),
                Err(e) => {
                    tracing::warn!(key = %entry.key, error = %e, "skipping unreadable object file");
                    Ok(None)
                }
            },
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn get(&self, key: &str) -> Result<Object> {
        let path = key_path(&self.root, key)?;
        self.open_object(key, &path)?.read_all()
    }

    fn head(&self, key: &str) -> Result<ObjectHead> {
        let path = key_path(&self.root, key)?;
        self.open_object(key, &path)?.read_head()
    }

    fn put(&self, key: &str, body: &[u8], opts: &PutOptions) -> Result<WriteResult> {
        let path = key_path(&self.root, key)?;
        let header = Header::for_body(body, opts.content_type.clone(), opts.user_meta.clone());
        let encoded = header.encode();
        AtomicWrite {
            key,
            path: &path,
            parts: [&encoded, body],
            mode: opts.mode,
        }
        .run()?;
        Ok(WriteResult {
            etag: Some(header.etag),
        })
    }

    /// Read the source, check its ETag, write the destination. The source is read through one
    /// open file, so the ETag checked is the ETag of the body copied.
    fn copy(&self, source: &str, dest: &str, opts: &CopyOptions) -> Result<WriteResult> {
        let source_path = key_path(&self.root, source)?;
        let dest_path = key_path(&self.root, dest)?;
        let object = self.open_object(source, &source_path)?.read_all()?;
        if let Some(expected) = &opts.source_if_match {
            if !etags_match(expected, &object.head.meta.etag) {
                return Err(StoreError::PreconditionFailed {
                    key: source.to_owned(),
                });
            }
        }
        let header = Header {
            etag: object.head.meta.etag,
            content_type: opts.content_type.clone(),
            user_meta: opts.user_meta.clone(),
        };
        let encoded = header.encode();
        AtomicWrite {
            key: dest,
            path: &dest_path,
            parts: [&encoded, &object.body],
            mode: opts.mode,
        }
        .run()?;
        Ok(WriteResult {
            etag: Some(header.etag),
        })
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = key_path(&self.root, key)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            // Absent, or a directory of other keys: either way there is no such object.
            Err(e) if is_gone(&e) || path.is_dir() => return Ok(()),
            Err(source) => {
                return Err(StoreError::Io {
                    key: key.to_owned(),
                    source,
                })
            }
        }
        self.prune_empty_parents(&path);
        Ok(())
    }

    fn delete_many(&self, keys: Vec<String>) -> Result<Vec<(String, StoreError)>> {
        if keys.len() > MAX_DELETE_BATCH {
            return Err(StoreError::Unsupported {
                what: format!("deleting {} keys in one batch (at most 1000)", keys.len()),
            });
        }
        Ok(keys
            .into_iter()
            .filter_map(|key| match self.delete(&key) {
                Ok(()) => None,
                Err(e) => Some((key, e)),
            })
            .collect())
    }

    /// Remove directories a delete left empty, up to (not including) the root. A directory in
    /// use is never empty: writers create their temporary file inside it first, and retry if a
    /// prune removed it just before.
    fn prune_empty_parents(&self, path: &Path) {
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root || !d.starts_with(&self.root) || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }

    /// Open the file of `key`; `NotFound` unless it is a regular file.
    fn open_object(&self, key: &str, path: &Path) -> Result<OpenObject> {
        let not_found = || StoreError::NotFound {
            key: key.to_owned(),
        };
        let io_err = |source| StoreError::Io {
            key: key.to_owned(),
            source,
        };
        // O_NONBLOCK: opening a FIFO someone left in the store would otherwise wait for a
        // writer, hanging the listing (and `status`) for good. It changes nothing for the
        // regular files that are objects.
        let file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if is_gone(&e) => return Err(not_found()),
            Err(e) => return Err(io_err(e)),
        };
        // Facts from the open file, so they describe the contents we read.
        let stat = file.metadata().map_err(io_err)?;
        if !stat.is_file() {
            warn_once_not_a_file(key, &stat);
            return Err(not_found());
        }
        Ok(OpenObject {
            key: key.to_owned(),
            file,
            stat,
        })
    }
}

/// Say once per key (per process) that a non-regular file (FIFO, socket, device) sits where an
/// object could be: it is skipped, never read.
fn warn_once_not_a_file(key: &str, stat: &fs::Metadata) {
    use std::collections::BTreeSet;
    use std::os::unix::fs::FileTypeExt;
    use std::sync::Mutex;
    static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let t = stat.file_type();
    if t.is_dir() {
        return;
    }
    let kind = if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    };
    let first = WARNED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.to_owned());
    if first {
        tracing::warn!(key = %key, kind, "skipping a store entry that is not a regular file; remove it");
    }
}

/// The store directory cannot be created by this process: say which directory, which user,
/// and the fixes (a container runs as uid 10001 and can only write what is mounted for it).
fn not_permitted(path: &Path) -> StoreError {
    // SAFETY: getuid/getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    StoreError::Misconfigured {
        field: "path",
        reason: format!(
            "cannot create the store directory {} as uid {uid} (gid {gid}): permission denied. Make it (or its parent) writable by that user (chown {uid}:{gid} ...), point store.path at a directory it owns, or in Docker mount a volume for it (-v bucketq-data:/var/lib/bucketq; the image runs as uid 10001)",
            path.display()
        ),
    }
}

/// An open object file and its `fstat`.
struct OpenObject {
    key: String,
    file: File,
    stat: fs::Metadata,
}

impl OpenObject {
    fn read_all(mut self) -> Result<Object> {
        let mut bytes = Vec::with_capacity(usize::try_from(self.stat.len()).unwrap_or(0));
        self.file.read_to_end(&mut bytes).map_err(|e| self.io(e))?;
        let framed = frame::decode(&bytes).map_err(|e| self.io(e))?;
        let body = Bytes::from(bytes).slice(framed.body_offset..);
        let head = self.head_from(framed, body.len() as u64)?;
        Ok(Object { head, body })
    }

    fn read_head(mut self) -> Result<ObjectHead> {
        let len = self.stat.len();
        let framed = frame::read_header(&mut self.file, len).map_err(|e| self.io(e))?;
        let size = len - framed.body_offset as u64;
        self.head_from(framed, size)
    }

    fn head_from(&self, framed: Framed, size: u64) -> Result<ObjectHead> {
        let last_modified = self.stat.modified().map_err(|e| self.io(e))?;
        Ok(ObjectHead {
            meta: ObjectMeta {
                key: self.key.clone(),
                etag: framed.header.etag,
                last_modified,
                size,
            },
            user_meta: framed.header.user_meta,
            content_type: framed.header.content_type,
        })
    }

    fn io(&self, source: io::Error) -> StoreError {
        StoreError::Io {
            key: self.key.clone(),
            source,
        }
    }
}

/// The page size a request asks for: 0 means the default (as an S3 request without
/// `max-keys`), anything above [`MAX_LIST_KEYS`] is capped.
fn page_size(max_keys: u32) -> usize {
    match max_keys {
        0 => MAX_LIST_KEYS as usize,
        n => n.min(MAX_LIST_KEYS) as usize,
    }
}

/// ETags compare without quotes and case (callers may pass OSS-style upper-case or quoted).
fn etags_match(expected: &str, actual: &str) -> bool {
    expected
        .trim_matches('"')
        .eq_ignore_ascii_case(actual.trim_matches('"'))
}

/// The result label a call is counted under.
fn outcome_label<T>(result: &Result<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(StoreError::NotFound { .. }) => "not_found",
        Err(StoreError::AlreadyExists { .. }) => "already_exists",
        Err(StoreError::PreconditionFailed { .. }) => "precondition_failed",
        Err(StoreError::InvalidKey { .. }) => "invalid_key",
        Err(StoreError::Unsupported { .. }) => "unsupported",
        Err(StoreError::Io { .. }) => "io_error",
        Err(_) => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_defaults_and_caps() {
        assert_eq!(page_size(0), 1000);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(5000), 1000);
    }

    #[test]
    fn etags_compare_without_quotes_or_case() {
        assert!(etags_match("\"ABCDEF\"", "abcdef"));
        assert!(!etags_match("abcdee", "abcdef"));
    }
}
