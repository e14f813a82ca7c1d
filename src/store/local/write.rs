//! Atomic writes: a temporary file in the destination's directory, synced, then renamed over
//! the destination (overwrite) or hard-linked to it (create-if-absent).
//!
//! link(2) fails with `EEXIST` when the name exists, atomically, between processes as well as
//! threads: that is the exclusive create every claim on the local store stands on. Both rename
//! and link swap in a complete file, so a reader sees the old object or the new one, never a
//! part.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand::Rng;

use super::key::RESERVED_PREFIX;
use crate::store::{StoreError, WriteMode};

/// How often a write retries when a concurrent delete removed the (empty) directory it had just
/// created.
const DIRECTORY_RACE_RETRIES: usize = 16;

/// What to write and where.
pub(super) struct AtomicWrite<'a> {
    /// The key, for errors.
    pub key: &'a str,
    /// Final path of the object.
    pub path: &'a Path,
    /// File contents, written in order (header, then body) without joining them first.
    pub parts: [&'a [u8]; 2],
    /// Overwrite or create-if-absent.
    pub mode: WriteMode,
}

impl AtomicWrite<'_> {
    /// Write the file and put it in place according to the mode.
    pub fn run(&self) -> Result<(), StoreError> {
        let dir = self.path.parent().expect("a key path lies under the root");
        let temp = self.create_temp(dir)?;
        let placed = match self.mode {
            WriteMode::Overwrite => fs::rename(&temp.path, self.path).map(|()| temp.disarm()),
            // The temporary name goes whether the link worked or not (TempFile's drop).
            WriteMode::CreateIfAbsent => fs::hard_link(&temp.path, self.path).map(|()| drop(temp)),
        };
        placed.map_err(|e| self.placement_error(e))?;
        sync_dir(dir).map_err(|e| self.io(e))
    }

    /// Create the parent directories and a synced temporary file holding the contents.
    fn create_temp(&self, dir: &Path) -> Result<TempFile, StoreError> {
        let mut attempt = 0;
        loop {
            let path = dir.join(temp_name());
            let opened = fs::create_dir_all(dir)
                .and_then(|()| OpenOptions::new().write(true).create_new(true).open(&path));
            match opened {
                Ok(file) => {
                    let temp = TempFile { path, armed: true };
                    write_and_sync(file, &self.parts).map_err(|e| self.io(e))?;
                    return Ok(temp);
                }
                // A concurrent delete pruned a directory we had just created.
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound && attempt < DIRECTORY_RACE_RETRIES =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(self.directory_error(e)),
            }
        }
    }

    fn placement_error(&self, e: io::Error) -> StoreError {
        if e.kind() == io::ErrorKind::AlreadyExists {
            if self.path.is_dir() {
                return self.prefix_conflict();
            }
            return StoreError::AlreadyExists {
                key: self.key.to_owned(),
            };
        }
        if e.raw_os_error() == Some(libc::EISDIR) || self.path.is_dir() {
            return self.prefix_conflict();
        }
        self.io(e)
    }

    fn directory_error(&self, e: io::Error) -> StoreError {
        match e.raw_os_error() {
            Some(libc::ENOTDIR) | Some(libc::EEXIST) => StoreError::InvalidKey {
                key: self.key.to_owned(),
                reason: "a leading part of the key is itself an object on the local store".into(),
            },
            _ => self.io(e),
        }
    }

    fn prefix_conflict(&self) -> StoreError {
        StoreError::InvalidKey {
            key: self.key.to_owned(),
            reason: "other keys continue this key with '/'; the local store cannot hold both"
                .into(),
        }
    }

    fn io(&self, source: io::Error) -> StoreError {
        StoreError::Io {
            key: self.key.to_owned(),
            source,
        }
    }
}

/// True for names the store uses for its temporary files.
pub(super) fn is_temp_name(name: &OsStr) -> bool {
    name.as_encoded_bytes()
        .starts_with(RESERVED_PREFIX.as_bytes())
}

/// A fresh temporary name: reserved prefix, pid and 64 random bits.
fn temp_name() -> String {
    let nonce: u64 = rand::thread_rng().gen();
    format!("{RESERVED_PREFIX}tmp-{}-{nonce:016x}", std::process::id())
}

fn write_and_sync(mut file: File, parts: &[&[u8]]) -> io::Result<()> {
    for part in parts {
        file.write_all(part)?;
    }
    // The data must be on disk before the name points at it, or a crash could leave a complete
    // name over an empty file.
    file.sync_data()
}

/// Make the new directory entry durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A temporary file removed on drop unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    /// The file now lives under its final name; nothing to remove.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: a leftover temporary file is skipped by listings.
            let _ = fs::remove_file(&self.path);
        }
    }
}
