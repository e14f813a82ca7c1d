//! The on-disk form of one object: a small header, then the body, in a single file.
//!
//! Keeping the metadata in the same file as the body makes every write one rename (or one
//! link): a reader can never see a body without its metadata or the other way round.
//!
//! Layout: [`MAGIC`], the header length as a little-endian `u32`, the header as JSON, the body.
//! A file that does not start with [`MAGIC`] (one an operator copied in by hand) is read as a
//! bare body with no metadata, so dropping a file into the directory enqueues it (write it
//! elsewhere on the same filesystem and `mv` it in, or a poll may catch it half written).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::store::Metadata;

/// First bytes of every framed object; the leading NUL keeps it out of any text file.
const MAGIC: &[u8] = b"\0bucketq-object-v1\n";

/// Bytes read at once when only the header is wanted; most headers fit.
const HEAD_READ: usize = 4096;

/// Largest header accepted when reading, so a corrupt length cannot make us allocate gigabytes.
const MAX_HEADER: usize = 1 << 20;

/// Everything the store keeps about an object besides its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Header {
    /// Lower-case hex MD5 of the body, computed once at write time so listings need not read
    /// bodies.
    pub etag: String,
    /// `Content-Type` given at write time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// User metadata.
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub user_meta: Metadata,
}

impl Header {
    /// The header of `body` with the given metadata.
    pub fn for_body(body: &[u8], content_type: Option<String>, user_meta: Metadata) -> Header {
        Header {
            etag: md5_hex(body),
            content_type,
            user_meta,
        }
    }

    /// The bytes that precede the body in the file.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("a header of strings always serialises");
        let len = u32::try_from(json.len()).expect("keys and metadata are far below 4 GiB");
        let mut out = Vec::with_capacity(MAGIC.len() + 4 + json.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&json);
        out
    }
}

/// A decoded file: its header and where the body starts.
#[derive(Debug)]
pub(super) struct Framed {
    /// Metadata.
    pub header: Header,
    /// Offset of the first body byte in the file.
    pub body_offset: usize,
}

/// Decode a whole file read into memory.
pub(super) fn decode(bytes: &[u8]) -> io::Result<Framed> {
    if !bytes.starts_with(MAGIC) {
        return Ok(bare(md5_hex(bytes)));
    }
    let header_len = header_len(bytes)?;
    let body_offset = MAGIC.len() + 4 + header_len;
    let json = bytes
        .get(MAGIC.len() + 4..body_offset)
        .ok_or_else(|| corrupt("the header is cut short"))?;
    Ok(Framed {
        header: parse_header(json)?,
        body_offset,
    })
}

/// Decode only the header of an open file of `file_len` bytes, reading as little as possible
/// (a bare file is read whole to compute its ETag).
pub(super) fn read_header(file: &mut File, file_len: u64) -> io::Result<Framed> {
    let mut start = Vec::with_capacity(HEAD_READ);
    file.by_ref()
        .take(HEAD_READ as u64)
        .read_to_end(&mut start)?;
    if !start.starts_with(MAGIC) {
        return Ok(bare(md5_of_file(file)?));
    }
    let header_len = header_len(&start)?;
    let body_offset = MAGIC.len() + 4 + header_len;
    if body_offset as u64 > file_len {
        return Err(corrupt("the header is longer than the file"));
    }
    if start.len() < body_offset {
        let missing = body_offset - start.len();
        let mut rest = vec![0; missing];
        file.read_exact(&mut rest)?;
        start.extend_from_slice(&rest);
    }
    Ok(Framed {
        header: parse_header(&start[MAGIC.len() + 4..body_offset])?,
        body_offset,
    })
}

/// Lower-case hex MD5: the ETag S3 and OSS give a simple upload.
pub(super) fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

fn md5_of_file(file: &mut File) -> io::Result<String> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bare(etag: String) -> Framed {
    Framed {
        header: Header {
            etag,
            content_type: None,
            user_meta: Metadata::new(),
        },
        body_offset: 0,
    }
}

fn header_len(bytes: &[u8]) -> io::Result<usize> {
    let raw: [u8; 4] = bytes
        .get(MAGIC.len()..MAGIC.len() + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| corrupt("the header length is cut short"))?;
    let len = u32::from_le_bytes(raw) as usize;
    if len > MAX_HEADER {
        return Err(corrupt("the header length is implausibly large"));
    }
    Ok(len)
}

fn parse_header(json: &[u8]) -> io::Result<Header> {
    serde_json::from_slice(json).map_err(|e| corrupt(&format!("the header is not valid: {e}")))
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("corrupt bucketq object file: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn sample_header(body: &[u8]) -> Header {
        let mut meta = Metadata::new();
        meta.insert("bq-token".into(), "abc".into());
        Header::for_body(body, Some("application/json".into()), meta)
    }

    #[test]
    fn a_framed_object_decodes_to_its_header_and_body() {
        let body = b"{\"n\": 1}";
        let header = sample_header(body);
        let mut file = header.encode();
        file.extend_from_slice(body);
        let framed = decode(&file).expect("decodes");
        assert_eq!(framed.header, header);
        assert_eq!(&file[framed.body_offset..], body);
    }

    #[test]
    fn the_etag_is_the_md5_of_the_body() {
        // RFC 1321 test suite: MD5("abc").
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            Header::for_body(b"", None, Metadata::new()).etag,
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }

    #[test]
    fn a_file_without_the_magic_is_a_bare_body() {
        let framed = decode(b"plain payload").expect("decodes");
        assert_eq!(framed.body_offset, 0);
        assert_eq!(framed.header.etag, md5_hex(b"plain payload"));
        assert!(framed.header.user_meta.is_empty());
    }

    #[test]
    fn a_truncated_header_is_reported_as_corrupt() {
        let mut file = sample_header(b"x").encode();
        file.truncate(file.len() - 3);
        let err = decode(&file).expect_err("cut short");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn read_header_handles_headers_longer_than_one_read() {
        let mut meta = Metadata::new();
        meta.insert("big".into(), "v".repeat(3 * HEAD_READ));
        let body = b"the body";
        let header = Header::for_body(body, None, meta);
        let mut tmp = tempfile::tempfile().expect("tempfile");
        tmp.write_all(&header.encode()).expect("write");
        tmp.write_all(body).expect("write");
        let len = tmp.metadata().expect("stat").len();
        tmp.seek(SeekFrom::Start(0)).expect("seek");
        let framed = read_header(&mut tmp, len).expect("reads");
        assert_eq!(framed.header, header);
        assert_eq!(len as usize - framed.body_offset, body.len());
    }

    #[test]
    fn read_header_of_a_bare_file_hashes_the_whole_file() {
        let body = vec![7u8; 3 * HEAD_READ + 5];
        let mut tmp = tempfile::tempfile().expect("tempfile");
        tmp.write_all(&body).expect("write");
        tmp.seek(SeekFrom::Start(0)).expect("seek");
        let framed = read_header(&mut tmp, body.len() as u64).expect("reads");
        assert_eq!(framed.body_offset, 0);
        assert_eq!(framed.header.etag, md5_hex(&body));
    }
}
