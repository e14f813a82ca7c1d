//! The object-store abstraction the queue is built on.
//!
//! Every claim in bucketq is a conditional write, so this layer's one job is to make each
//! backend's conditional semantics look the same: a create-if-absent write that loses reports
//! [`StoreError::AlreadyExists`] whether the wire said OSS `409 FileAlreadyExists` or S3
//! `412 PreconditionFailed`. The store knows nothing about queues, tasks or key layout; only
//! `queue.rs` does.

pub mod credentials;
pub mod http;
pub mod local;
pub mod memory;
pub mod open;
pub mod oss;
pub mod probe;
pub mod s3;
pub mod sign;
pub mod stats;
pub mod transport;
pub mod xml;

use std::collections::BTreeMap;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

pub use stats::{Op, RequestStats};

/// User metadata of an object (`x-oss-meta-*` / `x-amz-meta-*`), names lower-case and without
/// the prefix. A `BTreeMap` so signing and comparisons see a stable order.
pub type Metadata = BTreeMap<String, String>;

/// Largest page a listing may ask for; both OSS and S3 cap `max-keys` at 1000.
pub const MAX_LIST_KEYS: u32 = 1000;

/// Largest batch [`Store::delete_many`] sends in one request (the DeleteObjects limit).
pub const MAX_DELETE_BATCH: usize = 1000;

/// One entry of a listing page, or the facts of a single object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Full object key, already URL-decoded.
    pub key: String,
    /// Entity tag without surrounding quotes, as the store spells it.
    pub etag: String,
    /// Last modification time on the store's clock.
    pub last_modified: SystemTime,
    /// Size of the body in bytes.
    pub size: u64,
}

/// What to list: one page of keys under a prefix, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// Only keys starting with this are returned.
    pub prefix: String,
    /// Start strictly after this key (first page of a scan that resumes mid-prefix).
    pub start_after: Option<String>,
    /// Opaque cursor from the previous page's [`ListPage::next`].
    pub continuation: Option<String>,
    /// Page size, at most [`MAX_LIST_KEYS`].
    pub max_keys: u32,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Objects in key order.
    pub objects: Vec<ObjectMeta>,
    /// Cursor for the next page; `None` when this was the last one. Pass it back as
    /// [`ListRequest::continuation`] so that every page is reachable.
    pub next: Option<String>,
    /// The store's clock when it answered (the `Date` header). Lock ages are measured against
    /// this, never against the local clock.
    pub server_time: SystemTime,
}

/// Facts of one object as returned by HEAD (and GET).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// Key, size, ETag and LastModified.
    pub meta: ObjectMeta,
    /// User metadata, names lower-cased without the `x-*-meta-` prefix.
    pub user_meta: Metadata,
    /// `Content-Type`, when the store recorded one.
    pub content_type: Option<String>,
}

/// An object with its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Facts and metadata.
    pub head: ObjectHead,
    /// The whole body.
    pub body: Bytes,
}

/// Whether a write may replace an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Replace whatever is there.
    #[default]
    Overwrite,
    /// Fail with [`StoreError::AlreadyExists`] if the key exists: the primitive every claim
    /// stands on (`x-oss-forbid-overwrite: true`, S3 `If-None-Match: *`, link(2) locally).
    CreateIfAbsent,
}

/// Options of [`Store::put`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Overwrite or create-if-absent.
    pub mode: WriteMode,
    /// User metadata to store with the object.
    pub user_meta: Metadata,
    /// `Content-Type` to record.
    pub content_type: Option<String>,
}

/// Options of [`Store::copy`]. Metadata is always REPLACEd by `user_meta`: bucketq writes its
/// bookkeeping on every copy, and a copy onto itself with REPLACE is how a lease is refreshed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// Create-if-absent on the destination. Only honoured where
    /// [`Store::atomic_conditional_copy`] is true; other backends return
    /// [`StoreError::Unsupported`] rather than silently ignore it.
    pub mode: WriteMode,
    /// Copy only if the source's ETag still equals this (else `PreconditionFailed`).
    pub source_if_match: Option<String>,
    /// The destination's user metadata (metadata directive REPLACE).
    pub user_meta: Metadata,
    /// The destination's `Content-Type` (REPLACE drops the source's).
    pub content_type: Option<String>,
}

/// Result of a successful write (put or copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    /// ETag of the new object, unquoted, when the store returned one.
    pub etag: Option<String>,
}

/// Bucket versioning state; OSS ignores `x-oss-forbid-overwrite` unless it was never enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// Never enabled: conditional writes are honoured.
    Never,
    /// Currently enabled.
    Enabled,
    /// Enabled once, now suspended (still unsafe on OSS).
    Suspended,
}

/// Which backend a store is; used for messages and backend-specific claim recipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Alibaba OSS native API.
    Oss,
    /// Any SigV4 S3-compatible store.
    S3,
    /// A directory used as a bucket.
    Local,
    /// The in-memory model used by tests and simulations.
    Memory,
}

/// What went wrong, in the terms the queue decides on. Backend quirks are collapsed here, from
/// the HTTP status *and* the error `<Code>`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key does not exist (404 `NoSuchKey`, ENOENT).
    #[error("{key}: not found")]
    NotFound {
        /// The key asked for.
        key: String,
    },
    /// A create-if-absent write found the key already there (OSS 409 `FileAlreadyExists`,
    /// S3 412 on `If-None-Match: *`).
    #[error("{key}: already exists")]
    AlreadyExists {
        /// The key that exists.
        key: String,
    },
    /// A create-if-absent write was retried after an unanswered first attempt and then found
    /// the key present: the first attempt may have won. The caller must read the object and
    /// compare its own token.
    #[error("{key}: already exists after a retried create; the first attempt may have won")]
    Ambiguous {
        /// The key that exists.
        key: String,
    },
    /// The bucket does not exist (`NoSuchBucket`): a configuration problem, never retried.
    #[error("bucket {bucket:?} does not exist ({message}); create it, or fix store.bucket and store.endpoint")]
    NoSuchBucket {
        /// The bucket asked for.
        bucket: String,
        /// What the store said.
        message: String,
    },
    /// A precondition other than create-if-absent failed (source ETag changed, 412).
    #[error("{key}: precondition failed")]
    PreconditionFailed {
        /// The key whose condition failed.
        key: String,
    },
    /// The store rejected the credentials or signature (403 `SignatureDoesNotMatch`,
    /// `InvalidAccessKeyId`, ...). Never retried.
    #[error("{}store rejected the credentials ({code}): {message}", subject(.key))]
    Unauthenticated {
        /// The key of the request (may be empty for bucket operations).
        key: String,
        /// The store's error code.
        code: String,
        /// The store's message.
        message: String,
    },
    /// Authenticated but not allowed (403 `AccessDenied`).
    #[error("{}access denied ({code}): {message}", subject(.key))]
    Forbidden {
        /// The key of the request.
        key: String,
        /// The store's error code.
        code: String,
        /// The store's message.
        message: String,
    },
    /// A failure worth retrying: 5xx, `SlowDown`, 409 `ConditionalRequestConflict`, timeouts,
    /// connection resets. Returned only after the transport's own retries are spent.
    #[error("{key}: transient store failure during {op}: {message}")]
    Transient {
        /// The key of the request.
        key: String,
        /// The operation.
        op: Op,
        /// What happened, without secrets.
        message: String,
    },
    /// The backend cannot do what was asked (e.g. conditional copy on S3).
    #[error("{what} is not supported by this store")]
    Unsupported {
        /// The missing capability.
        what: String,
    },
    /// A key that cannot be stored (empty, `..`, absolute path on the local store).
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The offending key.
        key: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The store refused the request as sent: a 4xx the protocol does not expect (400, 405,
    /// 411 `MissingContentLength`, a retention refusal, ...). Never retried by the transport;
    /// the queue backs off claims that keep meeting it, and stops on one that cannot pass.
    #[error("{}the store refused the {op} request: {message}", subject(.key))]
    Refused {
        /// The key of the request.
        key: String,
        /// The operation.
        op: Op,
        /// The HTTP status.
        status: u16,
        /// The store's error code (empty when the answer had no body).
        code: String,
        /// Status, code and message, without secrets.
        message: String,
    },
    /// Any other answer the store gave that bucketq does not expect (bad XML, odd statuses).
    #[error("{key}: unexpected store response during {op}: {message}")]
    Unexpected {
        /// The key of the request.
        key: String,
        /// The operation.
        op: Op,
        /// Status, code and message, without secrets.
        message: String,
    },
    /// The store's configuration cannot work (no endpoint, bucket or keys, an endpoint that is
    /// not a URL, no signing region). Raised when the store is opened, before any request.
    #[error("store.{field}: {reason}")]
    Misconfigured {
        /// The `[store]` setting at fault.
        field: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The store's TLS certificate is not trusted (unknown issuer, wrong name, expired).
    /// Never retried: the operator must add the CA or fix the endpoint.
    #[error("{origin}: the store's TLS certificate is not trusted ({message}); add its CA to store.ca_file (a PEM bundle) or to the system trust store, or check that store.endpoint names the certificate's host")]
    UntrustedCertificate {
        /// The endpoint the handshake was with.
        origin: String,
        /// What the TLS layer said.
        message: String,
    },
    /// A local filesystem error.
    #[error("{key}: {source}")]
    Io {
        /// The key (or path) involved.
        key: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// `"<key>: "` before a message about a key, nothing for a bucket-level request.
fn subject(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

impl StoreError {
    /// What the operator should check after the store refused who we are, by its error code.
    /// `None` for errors that are not about credentials.
    pub fn credential_hint(&self) -> Option<&'static str> {
        let code = match self {
            StoreError::Unauthenticated { code, .. } => code.as_str(),
            StoreError::Forbidden { .. } => return Some(
                "the key is valid but may not use this bucket; grant list, get, head, put, copy and delete on the queue and failed prefixes",
            ),
            _ => return None,
        };
        Some(match code {
            "InvalidAccessKeyId" | "InvalidAccessKeyID" | "AccessKeyIdDisabled" => {
                "check store.access_key_id (BUCKETQ_STORE__ACCESS_KEY_ID, or OSS_KEYID): the store does not know this key"
            }
            "SignatureDoesNotMatch" => {
                "check store.access_key_secret (BUCKETQ_STORE__ACCESS_KEY_SECRET, or OSS_SECRET); on OSS also store.signature (v4 or v1) and store.region, which V4 signs"
            }
            "RequestTimeTooSkewed" => {
                "this host's clock is off from the store's by more than 15 minutes; fix the time (NTP)"
            }
            credentials::NO_CREDENTIALS => {
                "give store.access_key_id and store.access_key_secret, or set up the source store.credentials.source names (see the README's [store.credentials])"
            }
            "InvalidToken" | "InvalidSecurityToken" | "InvalidSecurity" | "ExpiredToken"
            | "SecurityTokenExpired" | "TokenRefreshRequired" | "MissingSecurityHeader" => {
                "check store.security_token: temporary (STS) keys need their current token"
            }
            _ => "check store.access_key_id, store.access_key_secret and, for temporary keys, store.security_token",
        })
    }

    /// True when the request as bucketq sends it can never pass on this store, whatever the
    /// key: a missing length, a malformed request, a method or feature the store lacks. A
    /// worker meeting this on every claim must stop and say so rather than retry.
    pub fn is_malformed_request(&self) -> bool {
        match self {
            StoreError::Refused { status, .. } => matches!(status, 400 | 405 | 411 | 501),
            StoreError::Unsupported { .. } => true,
            _ => false,
        }
    }

    /// True when retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transient { .. })
    }

    /// True when the store refused who we are: retrying cannot help, the operator must act.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            StoreError::Unauthenticated { .. } | StoreError::Forbidden { .. }
        )
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An object store as bucketq needs it. Implementations: [`oss::OssStore`], [`s3::S3Store`],
/// [`local::LocalStore`] and [`memory::MemoryStore`].
///
/// Object-safe (through `async_trait`) so the daemon holds an `Arc<dyn Store>` chosen by config.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Which backend this is.
    fn kind(&self) -> StoreKind;

    /// The bucket name (or directory) for messages and the FC event.
    fn bucket(&self) -> &str;

    /// True when [`Store::copy`] honours [`WriteMode::CreateIfAbsent`] and
    /// [`CopyOptions::source_if_match`] atomically (OSS, local, memory), so a claim can be one
    /// CopyObject instead of GET + PUT-if-absent + DELETE.
    fn atomic_conditional_copy(&self) -> bool;

    /// One page of keys under a prefix, in key order.
    async fn list(&self, req: &ListRequest) -> Result<ListPage>;

    /// Body, facts and metadata of one object.
    async fn get(&self, key: &str) -> Result<Object>;

    /// Facts and metadata of one object.
    async fn head(&self, key: &str) -> Result<ObjectHead>;

    /// Write an object.
    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<WriteResult>;

    /// Server-side copy with metadata REPLACE. Copying a key onto itself moves its
    /// LastModified (how a lease is refreshed).
    async fn copy(&self, source: &str, dest: &str, opts: &CopyOptions) -> Result<WriteResult>;

    /// Delete an object; deleting an absent key succeeds (both OSS and S3 answer 204).
    async fn delete(&self, key: &str) -> Result<()>;

    /// Delete up to [`MAX_DELETE_BATCH`] keys in one request. Returns the keys that could not
    /// be deleted, each with its error; absent keys count as deleted.
    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, StoreError)>>;

    /// The store's current time (the `Date` header of a cheap request).
    async fn now(&self) -> Result<SystemTime>;

    /// Where the keys in use came from and when they expire (HTTP stores, once a request
    /// fetched them); `None` for stores that need no keys.
    fn credential_status(&self) -> Option<credentials::CredentialStatus> {
        None
    }

    /// Bucket versioning state. Backends without versioning answer [`Versioning::Never`].
    async fn versioning(&self) -> Result<Versioning> {
        Ok(Versioning::Never)
    }
}
