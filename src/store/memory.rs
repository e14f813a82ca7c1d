//! The in-memory store: the model every protocol test and the simulation run on.
//!
//! It has exactly the conditional semantics of a correct object store: create-if-absent is
//! atomic, a copy checks `source_if_match` and create-if-absent in the same step, a copy onto
//! itself with REPLACE metadata moves LastModified, deleting an absent key succeeds, listings
//! are paged in key order with every page reachable. [`MemoryStoreBuilder::atomic_copy`] picks
//! which claim recipe the store invites: `true` models OSS and the local store (one conditional
//! CopyObject), `false` models S3 (a create-if-absent copy is `Unsupported`, so the claim is
//! GET + PUT-if-absent + DELETE).
//!
//! What a real store would not give a test, this one does:
//! - a clock the test controls ([`MemoryClock`]): LastModified and every listing's
//!   `server_time` come from it, so a lock can be made stale without waiting;
//! - per-client fault injection ([`Fault`]): fail the next N requests, or let a closure decide
//!   per request between a transient failure, a lost answer, a stall, and a crash of the
//!   client between any two of its requests;
//! - several clients ([`MemoryStore::client`]) on the same objects, each with its own request
//!   counters and faults, so a simulation gives each worker its own view of the network;
//! - an optional trace of every request, for reading a failing simulation seed.
//!
//! Like real stores, HEAD and GET report LastModified in whole seconds (HTTP dates) while
//! listings report milliseconds; code that compares the two must allow for it.

mod clock;
mod fault;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use md5::{Digest, Md5};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use self::clock::{ClockMode, MemoryClock};
use self::fault::FaultPlan;
pub use self::fault::{Fault, FaultHook, RequestInfo};
use super::{
    CopyOptions, ListPage, ListRequest, Metadata, Object, ObjectHead, ObjectMeta, Op, PutOptions,
    RequestStats, Result, Store, StoreError, StoreKind, Versioning, WriteMode, WriteResult,
    MAX_DELETE_BATCH, MAX_LIST_KEYS,
};

/// Lock a std mutex, ignoring poisoning: every critical section leaves the data consistent.
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One stored object.
#[derive(Debug, Clone)]
struct Entry {
    body: Bytes,
    etag: String,
    last_modified: SystemTime,
    user_meta: Metadata,
    content_type: Option<String>,
}

/// One line of the request trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// Store time when the request was applied (or refused).
    pub at: SystemTime,
    /// Client name.
    pub client: String,
    /// Operation.
    pub op: Op,
    /// Key (destination of a copy, prefix of a listing).
    pub key: String,
    /// Result label as counted in [`RequestStats`], or the injected fault.
    pub result: String,
}

/// State shared by every client of one store.
struct Shared {
    bucket: String,
    kind: StoreKind,
    atomic_copy: bool,
    whole_second_heads: bool,
    honour_create: bool,
    objects: Mutex<BTreeMap<String, Entry>>,
    clock: MemoryClock,
    versioning: Mutex<Versioning>,
    trace: Mutex<Option<Vec<TraceEntry>>>,
}

/// One client's view: its counters, faults, latency and crash state.
struct Client {
    name: String,
    stats: Arc<RequestStats>,
    plan: Mutex<FaultPlan>,
    crashed: AtomicBool,
    latency: (Duration, Duration),
    rng: Mutex<StdRng>,
}

/// An in-memory object store; see the module docs. Cloning shares the objects and the client.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
    client: Arc<Client>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("bucket", &self.shared.bucket)
            .field("client", &self.client.name)
            .field("atomic_copy", &self.shared.atomic_copy)
            .finish()
    }
}

/// Settings of a new [`MemoryStore`].
#[derive(Debug)]
pub struct MemoryStoreBuilder {
    bucket: String,
    kind: StoreKind,
    atomic_copy: bool,
    whole_second_heads: bool,
    clock: Option<MemoryClock>,
    latency: (Duration, Duration),
    seed: u64,
    stats: Option<Arc<RequestStats>>,
    honour_create: bool,
}

impl Default for MemoryStoreBuilder {
    fn default() -> Self {
        MemoryStoreBuilder {
            bucket: "memory".into(),
            kind: StoreKind::Memory,
            atomic_copy: true,
            whole_second_heads: true,
            clock: None,
            latency: (Duration::ZERO, Duration::ZERO),
            seed: 0,
            stats: None,
            honour_create: true,
        }
    }
}

impl MemoryStoreBuilder {
    /// Bucket name reported by [`Store::bucket`].
    pub fn bucket(mut self, name: impl Into<String>) -> Self {
        self.bucket = name.into();
        self
    }

    /// Backend kind reported by [`Store::kind`] (e.g. `Oss` to exercise the versioning check).
    pub fn kind(mut self, kind: StoreKind) -> Self {
        self.kind = kind;
        self
    }

    /// `true` (the default): conditional copies are atomic, like OSS and the local store.
    /// `false`: a create-if-absent copy is `Unsupported`, like S3.
    pub fn atomic_copy(mut self, atomic: bool) -> Self {
        self.atomic_copy = atomic;
        self
    }

    /// Whether HEAD and GET truncate LastModified to whole seconds as HTTP dates do (default
    /// `true`).
    pub fn whole_second_heads(mut self, whole: bool) -> Self {
        self.whole_second_heads = whole;
        self
    }

    /// The store's clock (default: [`MemoryClock::following_tokio`]).
    pub fn clock(mut self, clock: MemoryClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Each request of the first client waits a random time in `min..=max`, split before and
    /// after the store applies it, so concurrent requests interleave differently per seed.
    pub fn latency(mut self, min: Duration, max: Duration) -> Self {
        self.latency = (min, max.max(min));
        self
    }

    /// Seed of the first client's latency draws.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// `false` models a broken store that ignores create-if-absent (versioned OSS, Garage):
    /// for proving that the startup probe and the simulation's checker notice.
    pub fn honour_create_if_absent(mut self, honour: bool) -> Self {
        self.honour_create = honour;
        self
    }

    /// Counters of the first client (default: fresh ones).
    pub fn stats(mut self, stats: Arc<RequestStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Make the store; its first client is named `"main"`.
    pub fn build(self) -> MemoryStore {
        let shared = Arc::new(Shared {
            bucket: self.bucket,
            kind: self.kind,
            atomic_copy: self.atomic_copy,
            whole_second_heads: self.whole_second_heads,
            honour_create: self.honour_create,
            objects: Mutex::new(BTreeMap::new()),
            clock: self.clock.unwrap_or_else(MemoryClock::following_tokio),
            versioning: Mutex::new(Versioning::Never),
            trace: Mutex::new(None),
        });
        let stats = self.stats.unwrap_or_default();
        MemoryStore {
            shared,
            client: Arc::new(Client::new("main", stats, self.latency, self.seed)),
        }
    }
}

impl Client {
    fn new(name: &str, stats: Arc<RequestStats>, latency: (Duration, Duration), seed: u64) -> Self {
        Client {
            name: name.to_owned(),
            stats,
            plan: Mutex::new(FaultPlan::default()),
            crashed: AtomicBool::new(false),
            latency,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    /// Latency before and after the store applies a request.
    fn draw_latency(&self) -> (Duration, Duration) {
        let (min, max) = self.latency;
        if max.is_zero() {
            return (Duration::ZERO, Duration::ZERO);
        }
        let mut rng = locked(&self.rng);
        let total = rng.gen_range(min..=max);
        let before = total.mul_f64(rng.gen_range(0.0..=1.0));
        (before, total.saturating_sub(before))
    }
}

/// Never return: the caller has crashed.
async fn vanish() -> ! {
    loop {
        std::future::pending::<()>().await;
    }
}

impl MemoryStore {
    /// A store with the defaults: atomic conditional copy, clock following tokio time, no
    /// latency, requests counted in `stats`.
    pub fn new(stats: Arc<RequestStats>) -> Self {
        MemoryStoreBuilder::default().stats(stats).build()
    }

    /// Settings for a new store.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    /// Another client of the same objects and clock, with its own counters, faults and crash
    /// state, and latency drawn from `seed` (one per simulated worker).
    pub fn client(&self, name: &str, stats: Arc<RequestStats>, seed: u64) -> MemoryStore {
        MemoryStore {
            shared: Arc::clone(&self.shared),
            client: Arc::new(Client::new(name, stats, self.client.latency, seed)),
        }
    }

    /// This client's name.
    pub fn client_name(&self) -> &str {
        &self.client.name
    }

    /// This client's request counters.
    pub fn stats(&self) -> &Arc<RequestStats> {
        &self.client.stats
    }

    /// The store's clock.
    pub fn clock(&self) -> &MemoryClock {
        &self.shared.clock
    }

    /// Fail this client's next `n` requests as transient, before they reach the store.
    pub fn fail_next(&self, n: u64) {
        locked(&self.client.plan).fail_next = n;
    }

    /// Let `hook` decide the fault of each of this client's later requests.
    pub fn set_fault_hook(&self, hook: FaultHook) {
        locked(&self.client.plan).hook = Some(hook);
    }

    /// Remove the fault hook (pending `fail_next` failures stay).
    pub fn clear_fault_hook(&self) {
        locked(&self.client.plan).hook = None;
    }

    /// True once this client has crashed (see [`Fault::CrashBefore`]).
    pub fn crashed(&self) -> bool {
        self.client.crashed.load(Ordering::SeqCst)
    }

    /// Crash this client now: every request in flight or made later never answers.
    pub fn crash(&self) {
        self.client.crashed.store(true, Ordering::SeqCst);
    }

    /// Set what [`Store::versioning`] answers.
    pub fn set_versioning(&self, state: Versioning) {
        *locked(&self.shared.versioning) = state;
    }

    /// Start recording every request of every client.
    pub fn enable_trace(&self) {
        let mut trace = locked(&self.shared.trace);
        if trace.is_none() {
            *trace = Some(Vec::new());
        }
    }

    /// The requests recorded since [`MemoryStore::enable_trace`], oldest first.
    pub fn trace(&self) -> Vec<TraceEntry> {
        locked(&self.shared.trace).clone().unwrap_or_default()
    }

    /// Write an object directly, without a request (no counters, no faults): how a test sets
    /// up a scene, e.g. a lock last modified long ago. `last_modified` defaults to now.
    pub fn insert(
        &self,
        key: &str,
        body: impl Into<Bytes>,
        user_meta: Metadata,
        last_modified: Option<SystemTime>,
    ) {
        let body = body.into();
        let entry = Entry {
            etag: etag_of(&body),
            body,
            last_modified: last_modified.unwrap_or_else(|| self.shared.clock.now()),
            user_meta,
            content_type: None,
        };
        locked(&self.shared.objects).insert(key.to_owned(), entry);
    }

    /// Read an object directly, without a request, with LastModified at full precision.
    pub fn object(&self, key: &str) -> Option<Object> {
        locked(&self.shared.objects)
            .get(key)
            .map(|e| e.to_object(key, false))
    }

    /// Every key starting with `prefix`, in order, without a request.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        locked(&self.shared.objects)
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Run one request through latency, faults, counting and tracing. `apply` may run twice
    /// (a retried request after a lost answer); `creates` marks a create-if-absent write, whose
    /// retried loss is reported as ambiguous.
    async fn request<T>(
        &self,
        op: Op,
        key: &str,
        creates: bool,
        apply: impl Fn(&Shared) -> Result<T>,
    ) -> Result<T> {
        if self.crashed() {
            vanish().await;
        }
        let fault = locked(&self.client.plan).decide(&self.client.name, op, key);
        let (before, after) = self.client.draw_latency();
        if let Fault::Delay(stall) = fault {
            tokio::time::sleep(stall).await;
        }
        if !before.is_zero() {
            tokio::time::sleep(before).await;
        }
        if self.crashed() {
            vanish().await;
        }
        let result = match fault {
            Fault::None | Fault::Delay(_) => apply(&self.shared),
            Fault::FailBefore => Err(injected(op, key, "refused before reaching the store")),
            Fault::FailAfter => {
                let _ = apply(&self.shared);
                Err(injected(op, key, "applied, but the answer was lost"))
            }
            Fault::RetriedAfterLoss => {
                let first = apply(&self.shared);
                self.client.stats.record(op, "error");
                let second = apply(&self.shared);
                match second {
                    Err(StoreError::AlreadyExists { key }) if creates && first.is_ok() => {
                        Err(StoreError::Ambiguous { key })
                    }
                    other => other,
                }
            }
            Fault::CrashBefore => {
                self.record_trace(op, key, "crash-before");
                self.crash();
                vanish().await
            }
            Fault::CrashAfter => {
                let _ = apply(&self.shared);
                self.record_trace(op, key, "crash-after");
                self.crash();
                vanish().await
            }
            Fault::Swallow => {
                // Answer as if applied, then put everything back. Sound on a single-threaded
                // runtime (the simulation's), where nothing runs between the two steps.
                let before = locked(&self.shared.objects).clone();
                let answer = apply(&self.shared);
                *locked(&self.shared.objects) = before;
                answer
            }
        };
        let label = self.label(&result);
        self.record_trace(op, key, label);
        if !after.is_zero() {
            tokio::time::sleep(after).await;
        }
        if self.crashed() {
            vanish().await;
        }
        self.client.stats.record(op, label);
        result
    }

    fn record_trace(&self, op: Op, key: &str, result: &str) {
        if let Some(trace) = locked(&self.shared.trace).as_mut() {
            trace.push(TraceEntry {
                at: self.shared.clock.now(),
                client: self.client.name.clone(),
                op,
                key: key.to_owned(),
                result: result.to_owned(),
            });
        }
    }

    /// The label a result is counted under: `ok` or the HTTP status a real store would send.
    fn label<T>(&self, result: &Result<T>) -> &'static str {
        let exists = if self.shared.atomic_copy {
            "409"
        } else {
            "412"
        };
        match result {
            Ok(_) => "ok",
            Err(StoreError::NotFound { .. }) => "404",
            Err(StoreError::AlreadyExists { .. } | StoreError::Ambiguous { .. }) => exists,
            Err(StoreError::PreconditionFailed { .. }) => "412",
            Err(StoreError::Transient { .. }) => "503",
            Err(StoreError::Unsupported { .. }) => "501",
            Err(StoreError::InvalidKey { .. }) => "400",
            Err(_) => "error",
        }
    }
}

fn injected(op: Op, key: &str, what: &str) -> StoreError {
    StoreError::Transient {
        key: key.to_owned(),
        op,
        message: format!("injected fault: {what}"),
    }
}

/// Hex MD5 of the body: the ETag of a single-part upload on S3 and OSS.
fn etag_of(body: &[u8]) -> String {
    let digest = Md5::digest(body);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Truncate a time to a whole number of `unit`s since the epoch.
fn truncate(t: SystemTime, unit: Duration) -> SystemTime {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let units = since.as_nanos() / unit.as_nanos();
    UNIX_EPOCH + Duration::from_nanos((units * unit.as_nanos()) as u64)
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::InvalidKey {
            key: key.to_owned(),
            reason: "a key cannot be empty".into(),
        });
    }
    Ok(())
}

impl Entry {
    fn to_head(&self, key: &str, whole_seconds: bool) -> ObjectHead {
        let last_modified = if whole_seconds {
            truncate(self.last_modified, Duration::from_secs(1))
        } else {
            self.last_modified
        };
        ObjectHead {
            meta: ObjectMeta {
                key: key.to_owned(),
                etag: self.etag.clone(),
                last_modified,
                size: self.body.len() as u64,
            },
            user_meta: self.user_meta.clone(),
            content_type: self.content_type.clone(),
        }
    }

    fn to_object(&self, key: &str, whole_seconds: bool) -> Object {
        Object {
            head: self.to_head(key, whole_seconds),
            body: self.body.clone(),
        }
    }
}

impl Shared {
    fn list(&self, req: &ListRequest) -> Result<ListPage> {
        let max = match req.max_keys {
            0 => MAX_LIST_KEYS,
            n => n.min(MAX_LIST_KEYS),
        } as usize;
        let after = [req.start_after.as_deref(), req.continuation.as_deref()]
            .into_iter()
            .flatten()
            .max()
            .map(str::to_owned);
        let objects = locked(&self.objects);
        let start = match &after {
            Some(a) if a.as_str() >= req.prefix.as_str() => a.clone(),
            _ => req.prefix.clone(),
        };
        let mut listed = Vec::new();
        let mut more = false;
        for (key, entry) in objects.range(start..) {
            if !key.starts_with(&req.prefix) {
                break;
            }
            if after.as_deref().is_some_and(|a| key.as_str() <= a) {
                continue;
            }
            if listed.len() == max {
                more = true;
                break;
            }
            let mut meta = entry.to_head(key, false).meta;
            meta.last_modified = truncate(meta.last_modified, Duration::from_millis(1));
            listed.push(meta);
        }
        let next = if more {
            listed.last().map(|m: &ObjectMeta| m.key.clone())
        } else {
            None
        };
        Ok(ListPage {
            objects: listed,
            next,
            server_time: self.clock.now(),
        })
    }

    fn get(&self, key: &str) -> Result<Object> {
        locked(&self.objects)
            .get(key)
            .map(|e| e.to_object(key, self.whole_second_heads))
            .ok_or_else(|| StoreError::NotFound {
                key: key.to_owned(),
            })
    }

    fn head(&self, key: &str) -> Result<ObjectHead> {
        self.get(key).map(|o| o.head)
    }

    fn put(&self, key: &str, body: &Bytes, opts: &PutOptions) -> Result<WriteResult> {
        check_key(key)?;
        let mut objects = locked(&self.objects);
        if self.honour_create && opts.mode == WriteMode::CreateIfAbsent && objects.contains_key(key)
        {
            return Err(StoreError::AlreadyExists {
                key: key.to_owned(),
            });
        }
        let etag = etag_of(body);
        objects.insert(
            key.to_owned(),
            Entry {
                body: body.clone(),
                etag: etag.clone(),
                last_modified: self.clock.now(),
                user_meta: opts.user_meta.clone(),
                content_type: opts.content_type.clone(),
            },
        );
        Ok(WriteResult { etag: Some(etag) })
    }

    fn copy(&self, source: &str, dest: &str, opts: &CopyOptions) -> Result<WriteResult> {
        check_key(dest)?;
        if opts.mode == WriteMode::CreateIfAbsent && !self.atomic_copy {
            return Err(StoreError::Unsupported {
                what: "create-if-absent CopyObject".into(),
            });
        }
        let mut objects = locked(&self.objects);
        let Some(src) = objects.get(source) else {
            return Err(StoreError::NotFound {
                key: source.to_owned(),
            });
        };
        if let Some(expected) = &opts.source_if_match {
            if !expected.trim_matches('"').eq_ignore_ascii_case(&src.etag) {
                return Err(StoreError::PreconditionFailed {
                    key: source.to_owned(),
                });
            }
        }
        if self.honour_create
            && opts.mode == WriteMode::CreateIfAbsent
            && objects.contains_key(dest)
        {
            return Err(StoreError::AlreadyExists {
                key: dest.to_owned(),
            });
        }
        let entry = Entry {
            body: src.body.clone(),
            etag: src.etag.clone(),
            last_modified: self.clock.now(),
            user_meta: opts.user_meta.clone(),
            content_type: opts.content_type.clone(),
        };
        let etag = entry.etag.clone();
        objects.insert(dest.to_owned(), entry);
        Ok(WriteResult { etag: Some(etag) })
    }

    fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        locked(&self.objects).remove(key);
        Ok(())
    }

    fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, StoreError)>> {
        if keys.len() > MAX_DELETE_BATCH {
            return Err(StoreError::Unexpected {
                key: keys.first().cloned().unwrap_or_default(),
                op: Op::DeleteMany,
                message: format!(
                    "{} keys in one DeleteObjects request; the limit is {MAX_DELETE_BATCH}",
                    keys.len()
                ),
            });
        }
        let mut objects = locked(&self.objects);
        let mut failed = Vec::new();
        for key in keys {
            if let Err(e) = check_key(key) {
                failed.push((key.clone(), e));
                continue;
            }
            objects.remove(key);
        }
        Ok(failed)
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> StoreKind {
        self.shared.kind
    }

    fn bucket(&self) -> &str {
        &self.shared.bucket
    }

    fn atomic_conditional_copy(&self) -> bool {
        self.shared.atomic_copy
    }

    async fn list(&self, req: &ListRequest) -> Result<ListPage> {
        self.request(Op::List, &req.prefix, false, |s| s.list(req))
            .await
    }

    async fn get(&self, key: &str) -> Result<Object> {
        self.request(Op::Get, key, false, |s| s.get(key)).await
    }

    async fn head(&self, key: &str) -> Result<ObjectHead> {
        self.request(Op::Head, key, false, |s| s.head(key)).await
    }

    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<WriteResult> {
        let creates = opts.mode == WriteMode::CreateIfAbsent;
        self.request(Op::Put, key, creates, |s| s.put(key, &body, opts))
            .await
    }

    async fn copy(&self, source: &str, dest: &str, opts: &CopyOptions) -> Result<WriteResult> {
        let creates = opts.mode == WriteMode::CreateIfAbsent;
        self.request(Op::Copy, dest, creates, |s| s.copy(source, dest, opts))
            .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.request(Op::Delete, key, false, |s| s.delete(key))
            .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, StoreError)>> {
        let first = keys.first().map(String::as_str).unwrap_or_default();
        self.request(Op::DeleteMany, first, false, |s| s.delete_many(keys))
            .await
    }

    async fn now(&self) -> Result<SystemTime> {
        self.request(Op::Head, "", false, |s| Ok(s.clock.now()))
            .await
    }

    async fn versioning(&self) -> Result<Versioning> {
        self.request(Op::Versioning, "", false, |s| Ok(*locked(&s.versioning)))
            .await
    }
}

#[cfg(test)]
mod tests;
