//! Fault injection for the memory store: transient failures, lost responses, stalls and crashes,
//! decided per request by the test.

use std::fmt;
use std::time::Duration;

use crate::store::Op;

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: the request runs normally.
    None,
    /// The request never reaches the store and fails as transient (a refused connection, a 503
    /// before any work).
    FailBefore,
    /// The store applies the request but the answer is lost and the transport gives up: the
    /// caller sees a transient failure for a request that happened.
    FailAfter,
    /// The store applies the request, the answer is lost, and the transport retries it once;
    /// the caller sees the retry's answer. A create-if-absent write that won the first time
    /// reports [`crate::store::StoreError::Ambiguous`], exactly as the real transports do.
    RetriedAfterLoss,
    /// The request waits this long before the store sees it (a stall, a slow link).
    Delay(Duration),
    /// The caller vanishes before the request reaches the store: this request and every later
    /// one from the same client never answer.
    CrashBefore,
    /// The store applies the request, then the caller vanishes as for [`Fault::CrashBefore`].
    CrashAfter,
    /// A broken store: answers success without applying the request. Only for proving that a
    /// checker notices lost writes; no correct store does this.
    Swallow,
}

/// Facts about one request, for a [`FaultHook`] to decide on.
#[derive(Debug, Clone)]
pub struct RequestInfo<'a> {
    /// Name of the client (one per simulated worker).
    pub client: &'a str,
    /// The operation.
    pub op: Op,
    /// The key (the destination of a copy, the prefix of a listing, the first key of a batch).
    pub key: &'a str,
    /// Requests this client made before this one.
    pub seq: u64,
}

/// Decides the fault of each request; called once per request, in request order.
pub type FaultHook = Box<dyn FnMut(&RequestInfo<'_>) -> Fault + Send>;

/// A client's fault plan: a count of requests to fail outright, then the hook.
#[derive(Default)]
pub(crate) struct FaultPlan {
    /// Requests still to fail with [`Fault::FailBefore`].
    pub fail_next: u64,
    /// The per-request decision, if any.
    pub hook: Option<FaultHook>,
    /// Requests seen so far.
    pub seq: u64,
}

impl FaultPlan {
    /// The fault for the next request.
    pub fn decide(&mut self, client: &str, op: Op, key: &str) -> Fault {
        let info = RequestInfo {
            client,
            op,
            key,
            seq: self.seq,
        };
        self.seq += 1;
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Fault::FailBefore;
        }
        match self.hook.as_mut() {
            Some(hook) => hook(&info),
            None => Fault::None,
        }
    }
}

impl fmt::Debug for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultPlan")
            .field("fail_next", &self.fail_next)
            .field("hook", &self.hook.as_ref().map(|_| "<hook>"))
            .field("seq", &self.seq)
            .finish()
    }
}
