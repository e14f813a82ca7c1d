//! Deletes, batched by group commit.
//!
//! Every task costs two deletes: the pending key when it is claimed and the lock when it is
//! settled. Sent one by one they would be half of all requests; here they are gathered into
//! DeleteObjects batches. There is no fixed window: while one batch is in flight, new deletes
//! queue up and go out together in the next one, so batches grow exactly as fast as the load.
//!
//! Two kinds of delete:
//! - **now**: the caller waits for it (the pending key of a claim must be gone before the
//!   handler starts);
//! - **later**: fire and forget, not before a given instant (a settled lock). A lock delete
//!   rides along with the next "now" batch once due, or goes on its own `linger` after that, so
//!   at any load it costs next to nothing. Holding settled locks a moment is also what makes
//!   the S3 claim safe: see [`crate::queue::claim`].
//!
//! A claim announces its coming "now" delete when it starts ([`Deleter::expect`]). A batch
//! with a "now" delete in it waits for the claims that were under way when it opened to join
//! it, so concurrent claims share one request instead of racing each other into several small
//! ones; claims that start later go in the next batch, or the wait would never end at load.
//! The wait lasts at most [`Deleter::new`]'s `gather`, or two round trips of the last batch
//! when the store is slower than that (a claim that had just sent its read needs two requests
//! to get here), up to [`MAX_GATHER_FACTOR`] times `gather`. On a store that is slow because
//! it is busy (several workers sharing it), the batches then stay large instead of shrinking
//! with each worker's share of the load: on LocalStack with 4 workers, waiting for every
//! announced claim up to one round trip gave 0.109 DeleteObjects per task, this 0.091.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};

use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use super::health::StoreHealth;
use crate::store::{Store, StoreError, MAX_DELETE_BATCH};
use gate::BatchGate;

mod gate;

/// Retries of a failed "later" delete before it is logged and dropped at shutdown.
const FLUSH_ATTEMPTS: u32 = 5;

/// Wait before retrying a failed "later" delete while running.
const RETRY_LATER: Duration = Duration::from_secs(1);

/// A batch in flight longer than this is stalled: the next one goes out beside it.
const STALLED: Duration = Duration::from_millis(500);

/// A "later" delete without company goes this long before its deadline at the latest.
const SEND_AHEAD: Duration = Duration::from_millis(100);

/// The longest a "now" batch waits for announced deletes, in multiples of `gather`.
pub const MAX_GATHER_FACTOR: u32 = 4;

/// Batches in flight at most (one normally; more only beside stalled ones).
const MAX_IN_FLIGHT: usize = 4;

enum Request {
    Now {
        key: String,
        deadline: Instant,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Later {
        key: String,
        not_before: Instant,
        deadline: Instant,
        reply: oneshot::Sender<bool>,
    },
    Flush {
        reply: oneshot::Sender<()>,
    },
}

/// Claims under way that will send a "now" delete, each numbered in the order it started, and
/// a signal when one arrives or gives up.
#[derive(Debug, Default)]
struct Expecting {
    /// The next number, and the numbers announced but neither queued nor withdrawn.
    open: Mutex<(u64, BTreeSet<u64>)>,
    changed: Notify,
}

impl Expecting {
    fn announce(&self) -> u64 {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let seq = open.0;
        open.0 += 1;
        open.1.insert(seq);
        seq
    }

    fn withdraw(&self, seq: u64) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .remove(&seq);
        self.changed.notify_waiters();
    }

    /// The number the next claim to start will get: the claims under way are those below it.
    fn cutoff(&self) -> u64 {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// True while a claim that started before `cutoff` has not queued its delete yet.
    fn awaited(&self, cutoff: u64) -> bool {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.1.first().is_some_and(|&seq| seq < cutoff)
    }
}

/// Handle for queueing deletes; cheap to clone.
#[derive(Debug, Clone)]
pub struct Deleter {
    tx: mpsc::UnboundedSender<Request>,
    expecting: Arc<Expecting>,
}

/// A "now" delete announced in advance; see [`Deleter::expect`]. Dropping it unused withdraws
/// the announcement.
#[derive(Debug)]
pub struct Expected {
    expecting: Arc<Expecting>,
    seq: u64,
}

impl Drop for Expected {
    fn drop(&mut self) {
        self.expecting.withdraw(self.seq);
    }
}

/// Why a delete could not be queued.
#[derive(Debug, thiserror::Error)]
#[error("the delete batcher has stopped")]
pub struct DeleterStopped;

impl Deleter {
    /// A deleter on `store` and the task that sends its batches (run it alongside the engine;
    /// it ends when every handle is dropped, after sending what is queued).
    /// `linger`: how long a due "later" delete waits for company; `gather`: how long a batch
    /// with a "now" delete waits for announced ones.
    pub fn new(
        store: Arc<dyn Store>,
        linger: Duration,
        gather: Duration,
    ) -> (Deleter, DeleterTask) {
        let (tx, rx) = mpsc::unbounded_channel();
        let expecting = Arc::new(Expecting::default());
        (
            Deleter {
                tx,
                expecting: Arc::clone(&expecting),
            },
            DeleterTask {
                rx,
                store,
                linger,
                gather,
                expecting,
                later: Vec::new(),
                now: Vec::new(),
                flushes: Vec::new(),
                inflight: FuturesUnordered::new(),
                last_started: None,
                last_round_trip: Duration::ZERO,
                closed: false,
                gate: BatchGate::default(),
            },
        )
    }

    /// Announce a "now" delete that will follow shortly (a claim starting).
    pub fn expect(&self) -> Expected {
        Expected {
            seq: self.expecting.announce(),
            expecting: Arc::clone(&self.expecting),
        }
    }

    /// [`Deleter::delete_now`] for an announced delete.
    pub async fn delete_expected(
        &self,
        expected: Expected,
        key: &str,
        deadline: Instant,
    ) -> Result<(), StoreError> {
        let sent = self.send_now(key, deadline);
        drop(expected);
        sent?.await
    }

    /// Delete `key` in the next batch and wait for the answer. A delete still unsent at
    /// `deadline` is not sent at all and fails as transient: past it, acting on the key is no
    /// longer safe for the caller.
    pub async fn delete_now(&self, key: &str, deadline: Instant) -> Result<(), StoreError> {
        self.send_now(key, deadline)?.await
    }

    /// Queue a "now" delete; the returned future is its answer.
    fn send_now(
        &self,
        key: &str,
        deadline: Instant,
    ) -> Result<impl std::future::Future<Output = Result<(), StoreError>>, StoreError> {
        let (reply, rx) = oneshot::channel();
        let stopped = || StoreError::Transient {
            key: key.to_owned(),
            op: crate::store::Op::DeleteMany,
            message: DeleterStopped.to_string(),
        };
        self.tx
            .send(Request::Now {
                key: key.to_owned(),
                deadline,
                reply,
            })
            .map_err(|_| stopped())?;
        let key = key.to_owned();
        Ok(async move {
            rx.await.map_err(|_| StoreError::Transient {
                key,
                op: crate::store::Op::DeleteMany,
                message: DeleterStopped.to_string(),
            })?
        })
    }

    /// Delete `key` some time after `not_before`, batched with other deletes, and sent before
    /// `deadline` (the end of the lock's lease: past it, the key may hold someone else's lock).
    /// The receipt says `true` once the key is deleted, `false` if the delete could not be
    /// sent in time (the caller decides what to do with the lock then).
    pub fn delete_later(&self, key: &str, not_before: Instant, deadline: Instant) -> Receipt {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Request::Later {
            key: key.to_owned(),
            not_before,
            deadline,
            reply,
        });
        Receipt(rx)
    }

    /// Wait until every "later" delete queued so far has been sent (each once due).
    pub async fn flush(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Request::Flush { reply }).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Whether a "later" delete happened; see [`Deleter::delete_later`].
#[derive(Debug)]
pub struct Receipt(oneshot::Receiver<bool>);

impl Receipt {
    /// `true` once the key is deleted; `false` if the delete missed its deadline (or the
    /// batcher stopped).
    pub async fn deleted(self) -> bool {
        self.0.await.unwrap_or(false)
    }
}

/// A queued "later" delete.
struct Later {
    key: String,
    not_before: Instant,
    /// When it goes even without company: after the linger, but never past the deadline.
    send_by: Instant,
    deadline: Instant,
    failures: u32,
    reply: oneshot::Sender<bool>,
}

/// Where the answer of a "now" delete goes.
type Answer = oneshot::Sender<Result<(), StoreError>>;

/// A batch on its way, and whom to answer when it returns.
struct Batch {
    urgent: Vec<(String, Answer)>,
    due: Vec<Later>,
}

/// A batch request in flight; resolves to the batch and the keys that failed.
type Sending = Pin<Box<dyn Future<Output = (Batch, Vec<(String, StoreError)>)> + Send>>;

/// The task that sends batches; see [`Deleter::new`].
pub struct DeleterTask {
    rx: mpsc::UnboundedReceiver<Request>,
    store: Arc<dyn Store>,
    linger: Duration,
    gather: Duration,
    expecting: Arc<Expecting>,
    later: Vec<Later>,
    now: Vec<(String, Instant, Answer)>,
    flushes: Vec<oneshot::Sender<()>>,
    inflight: FuturesUnordered<Sending>,
    last_started: Option<Instant>,
    /// How long the last batch took to answer.
    last_round_trip: Duration,
    closed: bool,
    gate: BatchGate,
}

impl DeleterTask {
    /// Hold batches back while `health` says the store is failing: each goes in its turn,
    /// with every other repeatable step of the worker (see [`StoreHealth`]).
    pub fn gated_by(mut self, health: Arc<StoreHealth>) -> Self {
        self.gate = BatchGate::on(health);
        self
    }

    /// Send batches until every [`Deleter`] is dropped, then send what is left and return.
    pub async fn run(mut self) {
        loop {
            let wake = self.next_wake();
            tokio::select! {
                biased;
                Some((batch, errors)) = self.inflight.next(), if !self.inflight.is_empty() => {
                    self.answer(batch, errors);
                }
                msg = self.rx.recv(), if !self.closed => match msg {
                    Some(msg) => self.absorb(msg),
                    None => self.closed = true,
                },
                () = sleep_until_opt(wake) => {}
                () = self.gate.changed() => {}
            }
            // Group commit: take everything that queued while we waited or sent.
            while let Ok(msg) = self.rx.try_recv() {
                self.absorb(msg);
            }
            if !self.closed && self.inflight.is_empty() {
                self.gather_announced().await;
            }
            self.start_due();
            self.settle_flushes();
            if self.closed
                && self.now.is_empty()
                && self.later.is_empty()
                && self.inflight.is_empty()
            {
                self.answer_flushes();
                return;
            }
        }
    }

    /// With a "now" delete queued, wait for the claims under way now to queue theirs (see the
    /// module docs for how long at most).
    async fn gather_announced(&mut self) {
        if self.now.is_empty() || self.gather.is_zero() {
            return;
        }
        let wait = (self.last_round_trip * 2).clamp(self.gather, self.gather * MAX_GATHER_FACTOR);
        let until = Instant::now() + wait;
        let cutoff = self.expecting.cutoff();
        loop {
            let changed = self.expecting.changed.notified();
            if !self.expecting.awaited(cutoff) {
                return;
            }
            tokio::select! {
                biased;
                msg = self.rx.recv() => match msg {
                    Some(msg) => self.absorb(msg),
                    None => {
                        self.closed = true;
                        return;
                    }
                },
                () = changed => {}
                () = tokio::time::sleep_until(until) => return,
            }
            while let Ok(msg) = self.rx.try_recv() {
                self.absorb(msg);
            }
        }
    }

    fn absorb(&mut self, msg: Request) {
        match msg {
            Request::Now {
                key,
                deadline,
                reply,
            } => self.now.push((key, deadline, reply)),
            Request::Later {
                key,
                not_before,
                deadline,
                reply,
            } => self.later.push(Later {
                key,
                not_before,
                send_by: not_before.max(
                    (not_before + self.linger)
                        .min(deadline.checked_sub(SEND_AHEAD).unwrap_or(deadline)),
                ),
                deadline,
                failures: 0,
                reply,
            }),
            Request::Flush { reply } => self.flushes.push(reply),
        }
    }

    fn flushing(&self) -> bool {
        self.closed || !self.flushes.is_empty()
    }

    /// When to look again: a "later" delete must go without company, a flush can progress, or
    /// the batch in flight has stalled long enough to send another beside it. Never a time
    /// already past while nothing can be sent (that would spin).
    fn next_wake(&self) -> Option<Instant> {
        // A "now" delete is answered at its deadline; a "later" one gets its last chance then.
        let deadline = || {
            self.now
                .iter()
                .map(|(_, d, _)| *d)
                .chain(self.later.iter().map(|l| last_chance(l.deadline)))
                .min()
        };
        let urgent = !self.now.is_empty();
        let flushing = self.flushing();
        self.gate
            .bound(self.next_wake_ungated(), urgent, deadline, flushing)
    }

    /// [`DeleterTask::next_wake`] of a store that answers.
    fn next_wake_ungated(&self) -> Option<Instant> {
        let flushing = self.flushing();
        let later = self
            .later
            .iter()
            .map(|l| if flushing { l.not_before } else { l.send_by })
            .min();
        if self.inflight.is_empty() {
            return later;
        }
        if self.inflight.len() >= MAX_IN_FLIGHT {
            return None;
        }
        let stalled = self.last_started.map(|t| t + STALLED)?;
        let queued = if self.now.is_empty() {
            later
        } else {
            Some(stalled)
        };
        queued.map(|q| q.max(stalled))
    }

    /// Start a batch with every "now" delete and every due "later" one, unless a batch is in
    /// flight and has not stalled. One batch at a time keeps batches large under load; a
    /// second one beside a stalled batch keeps one slow request from holding up every claim.
    fn start_due(&mut self) {
        let now = Instant::now();
        let may_start = self.inflight.is_empty()
            || (self.inflight.len() < MAX_IN_FLIGHT
                && self.last_started.is_some_and(|t| now >= t + STALLED));
        if !may_start {
            return;
        }
        let flushing = self.flushing();
        let riding = !self.now.is_empty();
        // Past its deadline the key may hold someone else's lock: never send it then.
        let (alive, missed): (Vec<Later>, Vec<Later>) = std::mem::take(&mut self.later)
            .into_iter()
            .partition(|l| now < l.deadline);
        self.later = alive;
        for l in missed {
            tracing::debug!(key = %l.key, "a settled lock's delete missed its deadline");
            let _ = l.reply.send(false);
        }
        let (due, waiting): (Vec<Later>, Vec<Later>) = std::mem::take(&mut self.later)
            .into_iter()
            .partition(|l| l.not_before <= now && (riding || flushing || l.send_by <= now));
        self.later = waiting;
        let mut urgent = Vec::new();
        for (key, deadline, reply) in std::mem::take(&mut self.now) {
            if now < deadline {
                urgent.push((key, deadline, reply));
            } else {
                let _ = reply.send(Err(StoreError::Transient {
                    key,
                    op: crate::store::Op::DeleteMany,
                    message: "not sent: the caller's deadline passed while it waited".into(),
                }));
            }
        }
        if due.is_empty() && urgent.is_empty() {
            return;
        }
        // A settled lock's delete at its last chance goes even while the store seems to fail:
        // missing it leaves the lock for the reaper and runs the task again.
        let pressing = due.iter().any(|l| now >= last_chance(l.deadline));
        let Some(leave) = self.gate.leave(flushing || pressing) else {
            // The store is failing and it is not our turn: they go at the next one.
            self.now.extend(urgent);
            self.later.extend(due);
            return;
        };
        let urgent: Vec<(String, Answer)> = urgent.into_iter().map(|(k, _, r)| (k, r)).collect();
        let mut keys: Vec<String> = urgent.iter().map(|(k, _)| k.clone()).collect();
        keys.extend(due.iter().map(|l| l.key.clone()));
        let store = Arc::clone(&self.store);
        let batch = Batch { urgent, due };
        self.last_started = Some(now);
        self.inflight.push(Box::pin(async move {
            let _leave = leave;
            let mut errors = Vec::new();
            for chunk in keys.chunks(MAX_DELETE_BATCH) {
                errors.extend(send(store.as_ref(), chunk).await);
            }
            (batch, errors)
        }));
    }

    /// Answer a returned batch; queue its failed "later" deletes again while their deadline
    /// allows.
    fn answer(&mut self, batch: Batch, mut errors: Vec<(String, StoreError)>) {
        if let Some(started) = self.last_started {
            self.last_round_trip = started.elapsed();
        }
        for (key, reply) in batch.urgent {
            let answer = match errors.iter().position(|(k, _)| *k == key) {
                Some(i) => Err(errors.swap_remove(i).1),
                None => Ok(()),
            };
            let _ = reply.send(answer);
        }
        for mut l in batch.due {
            if let Some(i) = errors.iter().position(|(k, _)| *k == l.key) {
                let (_, e) = errors.swap_remove(i);
                l.failures += 1;
                let retry_at = Instant::now() + RETRY_LATER * l.failures.min(30);
                if retry_at >= l.deadline {
                    tracing::debug!(key = %l.key, error = %e, "could not delete a settled lock before its deadline");
                    let _ = l.reply.send(false);
                    continue;
                }
                tracing::warn!(key = %l.key, error = %e, failures = l.failures, "could not delete a settled lock; will retry");
                l.not_before = retry_at;
                l.send_by = retry_at;
                self.later.push(l);
            } else {
                let _ = l.reply.send(true);
            }
        }
    }

    /// Answer flushes once nothing they wait for is left, or give up on deletes that keep
    /// failing.
    fn settle_flushes(&mut self) {
        if !self.flushing() || !self.inflight.is_empty() || !self.now.is_empty() {
            return;
        }
        if self.later.is_empty() {
            self.answer_flushes();
        } else if self.later.iter().all(|l| l.failures >= FLUSH_ATTEMPTS) {
            self.give_up();
        }
    }

    fn answer_flushes(&mut self) {
        for reply in self.flushes.drain(..) {
            let _ = reply.send(());
        }
    }

    fn give_up(&mut self) {
        for l in self.later.drain(..) {
            tracing::error!(key = %l.key, "giving up deleting a settled lock; the reaper will remove it after the lease");
            let _ = l.reply.send(false);
        }
        self.answer_flushes();
    }
}

/// One request: DELETE for a single key, DeleteObjects for several. A failed request fails
/// every key in it.
async fn send(store: &dyn Store, keys: &[String]) -> Vec<(String, StoreError)> {
    let result = match keys {
        [one] => store.delete(one).await.map(|()| Vec::new()),
        many => store.delete_many(many).await,
    };
    match result {
        Ok(failed) => failed,
        Err(e) => {
            let message = e.to_string();
            keys.iter()
                .map(|k| {
                    (
                        k.clone(),
                        StoreError::Transient {
                            key: k.clone(),
                            op: crate::store::Op::DeleteMany,
                            message: message.clone(),
                        },
                    )
                })
                .collect()
        }
    }
}

/// The last moment a "later" delete due by `deadline` is sent.
fn last_chance(deadline: Instant) -> Instant {
    deadline.checked_sub(SEND_AHEAD).unwrap_or(deadline)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
