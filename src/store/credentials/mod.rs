//! Where the store's keys come from, and keeping them fresh.
//!
//! A [`Provider`] fetches one set of keys ([`Identity`]): the static keys of `[store]`, or
//! temporary keys from a metadata service, STS, a credentials URI or a profile file. The
//! [`CredentialCache`] in front of it is what the transport asks before signing each request:
//!
//! - keys without an expiry are fetched once;
//! - temporary keys are refreshed before they expire, at `expiry − min(15 min, lifetime / 4)`
//!   (Alibaba's SDKs go stale 15 minutes early, AWS's container provider 5 minutes), by one
//!   background refresh at a time (single flight) while requests keep signing with the
//!   current keys;
//! - a failed refresh keeps the current keys while they are valid and tries again with a
//!   doubling pause (1 s to 60 s); once they have expired, requests fail as
//!   [`StoreError::Transient`] (the worker backs off as in an outage and reports unready)
//!   until a refresh succeeds. Never a panic, and never a secret in a message.
//!
//! The signers take keys as plain values ([`super::sign::Credentials`]); only this module knows
//! where they came from.

mod alibaba;
mod aws;
mod chain;
mod fetch;
mod files;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::sign::Credentials;
use super::{Op, StoreError};
use crate::config::{CredentialSource, StoreBackend, StoreConfig};

pub use fetch::Endpoints;

/// The code of the error a store reports when no credential source is set up.
pub const NO_CREDENTIALS: &str = "NoCredentials";

/// Lower and upper bound of the pause between failed refreshes.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// The most a refresh starts before expiry.
const REFRESH_EARLY_MAX: Duration = Duration::from_secs(15 * 60);

/// One set of keys and what is known about them.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The keys (and token) to sign with.
    pub credentials: Credentials,
    /// When they stop working; `None` for long-lived keys.
    pub expires: Option<SystemTime>,
    /// Which source gave them, for `doctor` and logs (`"ECS RAM role bucketq-role"`).
    pub source: String,
}

/// Why keys could not be had. Messages name the source and what to fix; never a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialError {
    /// The source is not set up here (no variable, no file, no role): the chain moves on.
    #[error("{source_name}: {reason}")]
    NotConfigured {
        /// The source.
        source_name: String,
        /// What is missing.
        reason: String,
    },
    /// The source is set up but failed (unreachable, refused, a malformed answer).
    #[error("{source_name}: {reason}")]
    Failed {
        /// The source.
        source_name: String,
        /// What happened.
        reason: String,
    },
}

impl CredentialError {
    pub(crate) fn not_configured(source: &str, reason: impl Into<String>) -> Self {
        CredentialError::NotConfigured {
            source_name: source.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn failed(source: &str, reason: impl Into<String>) -> Self {
        CredentialError::Failed {
            source_name: source.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A place keys come from.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// Fetch a fresh set of keys.
    async fn fetch(&self, now: SystemTime) -> Result<Identity, CredentialError>;
}

/// Static keys, as given.
#[derive(Debug)]
pub struct StaticKeys {
    identity: Identity,
}

impl StaticKeys {
    /// Keys from `[store]` (`source` names them in `doctor`).
    pub fn new(credentials: Credentials, source: &str) -> Self {
        StaticKeys {
            identity: Identity {
                credentials,
                expires: None,
                source: source.to_owned(),
            },
        }
    }
}

#[async_trait]
impl Provider for StaticKeys {
    async fn fetch(&self, _now: SystemTime) -> Result<Identity, CredentialError> {
        Ok(self.identity.clone())
    }
}

/// A cloud's key variables (`ALIBABA_CLOUD_ACCESS_KEY_ID`… or `AWS_ACCESS_KEY_ID`…), the first
/// step of both default chains; both the id and the secret must be set, as in the SDKs.
#[derive(Debug)]
pub struct EnvKeys {
    /// The id, secret and token variables.
    names: [&'static str; 3],
    env: std::collections::BTreeMap<String, String>,
}

impl EnvKeys {
    /// The variables of `cloud`, read from `env`.
    pub(crate) fn new(cloud: Cloud, env: &std::collections::BTreeMap<String, String>) -> Self {
        let names = match cloud {
            Cloud::Alibaba => [
                "ALIBABA_CLOUD_ACCESS_KEY_ID",
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                "ALIBABA_CLOUD_SECURITY_TOKEN",
            ],
            Cloud::Aws => [
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
            ],
        };
        EnvKeys {
            names,
            env: env.clone(),
        }
    }
}

#[async_trait]
impl Provider for EnvKeys {
    async fn fetch(&self, _now: SystemTime) -> Result<Identity, CredentialError> {
        let var = |n: &str| self.env.get(n).filter(|v| !v.is_empty());
        let [id_var, secret_var, token_var] = self.names;
        match (var(id_var), var(secret_var)) {
            (Some(id), Some(secret)) => Ok(Identity {
                credentials: Credentials {
                    access_key_id: id.clone(),
                    secret: crate::secret::Secret::new(secret),
                    security_token: var(token_var).map(crate::secret::Secret::new),
                },
                expires: None,
                source: format!("environment ({id_var})"),
            }),
            _ => Err(CredentialError::not_configured(
                "environment",
                format!("{id_var} and {secret_var} are not both set"),
            )),
        }
    }
}

/// The clock refreshes are planned on; a test passes its own.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The keys the transport signs with, refreshed before they expire; see the module docs.
pub struct CredentialCache {
    provider: Arc<dyn Provider>,
    clock: Clock,
    state: Mutex<CacheState>,
    /// Held by the one refresh under way.
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Default)]
struct CacheState {
    current: Option<Identity>,
    fetched_at: Option<SystemTime>,
    /// After a failed refresh: no new attempt before this, and why it failed.
    retry_after: Option<SystemTime>,
    retry_pause: Duration,
    last_error: Option<CredentialError>,
}

impl fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialCache")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// What `doctor` shows about the keys in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialStatus {
    /// Which source supplied them.
    pub source: String,
    /// When they expire.
    pub expires: Option<SystemTime>,
}

impl CredentialCache {
    /// A cache in front of `provider`, planning on the system clock.
    pub fn new(provider: Arc<dyn Provider>) -> Arc<Self> {
        Self::with_clock(provider, Arc::new(SystemTime::now))
    }

    /// [`CredentialCache::new`] with an explicit clock.
    pub fn with_clock(provider: Arc<dyn Provider>, clock: Clock) -> Arc<Self> {
        Arc::new(CredentialCache {
            provider,
            clock,
            state: Mutex::new(CacheState::default()),
            refreshing: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The source and expiry of the keys in use, once some were fetched.
    pub fn status(&self) -> Option<CredentialStatus> {
        self.state().current.as_ref().map(|i| CredentialStatus {
            source: i.source.clone(),
            expires: i.expires,
        })
    }

    /// Keys to sign a request with now. Fetches them the first time and after they expired
    /// (callers wait for that one fetch); refreshes them in the background when they are due.
    pub async fn get(self: &Arc<Self>) -> Result<Credentials, StoreError> {
        let now = (self.clock)();
        match self.usable(now) {
            Usable::Fresh(c) => return Ok(c),
            Usable::Due(c) => {
                self.refresh_in_background();
                return Ok(c);
            }
            Usable::None => {}
        }
        let _refresh = self.refreshing.lock().await;
        let now = (self.clock)();
        match self.usable(now) {
            Usable::Fresh(c) | Usable::Due(c) => return Ok(c),
            Usable::None => {}
        }
        // Bound first: a guard in the `if let` would live through `unavailable`'s own lock.
        let retry_after = self.state().retry_after;
        if retry_after.is_some_and(|t| t > now) {
            return Err(self.unavailable());
        }
        self.refresh(now).await;
        match self.usable((self.clock)()) {
            Usable::Fresh(c) | Usable::Due(c) => Ok(c),
            Usable::None => Err(self.unavailable()),
        }
    }

    fn unavailable(&self) -> StoreError {
        let state = self.state();
        let reason = match &state.last_error {
            Some(e) => e.to_string(),
            None => "no credentials yet".to_owned(),
        };
        let expired = state.current.is_some();
        let nowhere = matches!(
            state.last_error,
            Some(CredentialError::NotConfigured { .. })
        );
        drop(state);
        if nowhere && !expired {
            // No source is set up at all: an operator's fix, not a wait.
            return StoreError::Unauthenticated {
                key: String::new(),
                code: NO_CREDENTIALS.to_owned(),
                message: format!("no keys for the store: {reason}"),
            };
        }
        StoreError::Transient {
            key: String::new(),
            op: Op::Credentials,
            message: if expired {
                format!("the store's keys expired and could not be refreshed: {reason}")
            } else {
                format!("no keys for the store: {reason}")
            },
        }
    }

    fn usable(&self, now: SystemTime) -> Usable {
        let state = self.state();
        let Some(current) = &state.current else {
            return Usable::None;
        };
        let Some(expires) = current.expires else {
            return Usable::Fresh(current.credentials.clone());
        };
        if now >= expires {
            return Usable::None;
        }
        let fetched = state.fetched_at.unwrap_or(now);
        let lifetime = expires.duration_since(fetched).unwrap_or_default();
        let early = (lifetime / 4).min(REFRESH_EARLY_MAX);
        let due = now + early >= expires;
        let may_retry = state.retry_after.map_or(true, |t| now >= t);
        if due && may_retry {
            Usable::Due(current.credentials.clone())
        } else {
            Usable::Fresh(current.credentials.clone())
        }
    }

    fn refresh_in_background(self: &Arc<Self>) {
        // A refresh already under way is enough.
        let Ok(guard) = Arc::clone(&self.refreshing).try_lock_owned() else {
            return;
        };
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            let _guard = guard;
            let now = (cache.clock)();
            if matches!(cache.usable(now), Usable::Due(_)) {
                cache.refresh(now).await;
            }
        });
    }

    /// One fetch; the caller holds `refreshing`.
    async fn refresh(&self, now: SystemTime) {
        match self.provider.fetch(now).await {
            Ok(identity) => {
                let first = self.state().current.is_none();
                if first {
                    tracing::info!(source = %identity.source, expires = ?identity.expires.map(humantime::format_rfc3339_seconds), "store credentials loaded");
                } else {
                    tracing::debug!(source = %identity.source, expires = ?identity.expires.map(humantime::format_rfc3339_seconds), "store credentials refreshed");
                }
                let mut state = self.state();
                state.current = Some(identity);
                state.fetched_at = Some(now);
                state.retry_after = None;
                state.retry_pause = Duration::ZERO;
                state.last_error = None;
            }
            Err(error) => {
                let mut state = self.state();
                state.retry_pause = if state.retry_pause.is_zero() {
                    RETRY_MIN
                } else {
                    (state.retry_pause * 2).min(RETRY_MAX)
                };
                state.retry_after = Some(now + state.retry_pause);
                let still_valid = state
                    .current
                    .as_ref()
                    .is_some_and(|c| c.expires.map_or(true, |e| e > now));
                tracing::warn!(error = %error, retry_in = ?state.retry_pause, still_valid, "could not refresh the store's credentials");
                state.last_error = Some(error);
            }
        }
    }
}

/// Whether the cache has keys to sign with now.
enum Usable {
    /// Valid and not due for refresh.
    Fresh(Credentials),
    /// Valid, but a refresh is due.
    Due(Credentials),
    /// None, or expired.
    None,
}

/// The provider `[store]` asks for, trusting `extra_roots` (the `store.ca_file` the transport
/// already read) beside the system store. Reads the process environment and `$HOME` (for the
/// shared files) once, here.
pub fn provider_for(
    cfg: &StoreConfig,
    extra_roots: &[reqwest::Certificate],
) -> Result<Arc<dyn Provider>, StoreError> {
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    provider_with_env(cfg, &env, extra_roots)
}

/// [`provider_for`] with the environment passed in, for tests.
pub fn provider_with_env(
    cfg: &StoreConfig,
    env: &std::collections::BTreeMap<String, String>,
    extra_roots: &[reqwest::Certificate],
) -> Result<Arc<dyn Provider>, StoreError> {
    let creds = &cfg.credentials;
    let endpoints = Endpoints::from_config(cfg, env, extra_roots);
    let cloud = match cfg.kind {
        StoreBackend::Oss => Cloud::Alibaba,
        _ => Cloud::Aws,
    };
    let static_keys = || -> Result<Arc<dyn Provider>, StoreError> {
        Ok(Arc::new(StaticKeys::new(
            static_credentials(cfg)?,
            "static keys from [store]",
        )))
    };
    let misconfigured = |reason: String| StoreError::Misconfigured {
        field: "credentials.source",
        reason,
    };
    let only = |what: &str, wanted: Cloud| -> Result<(), StoreError> {
        if cloud == wanted {
            Ok(())
        } else {
            Err(misconfigured(format!(
                "{what} is a source of {} keys; this store is kind = \"{}\"",
                if wanted == Cloud::Alibaba {
                    "Alibaba Cloud"
                } else {
                    "AWS"
                },
                if cloud == Cloud::Alibaba { "oss" } else { "s3" },
            )))
        }
    };
    Ok(match creds.source {
        CredentialSource::Auto | CredentialSource::Static | CredentialSource::Env => static_keys()?,
        CredentialSource::Default => chain::default_chain(cloud, cfg, env, &endpoints),
        CredentialSource::Profile => match cloud {
            Cloud::Alibaba => Arc::new(alibaba::Profile::new(cfg, env, &endpoints)),
            Cloud::Aws => Arc::new(aws::Profile::new(cfg, env, &endpoints)),
        },
        CredentialSource::EcsRamRole => {
            only("ecs-ram-role", Cloud::Alibaba)?;
            Arc::new(alibaba::EcsRamRole::new(
                creds.role_name.clone(),
                env,
                &endpoints,
            ))
        }
        CredentialSource::Oidc => {
            only("oidc", Cloud::Alibaba)?;
            Arc::new(
                alibaba::Oidc::from_config(cfg, env, &endpoints)
                    .map_err(|e| misconfigured(e.to_string()))?,
            )
        }
        CredentialSource::RamRoleArn => {
            only("ram-role-arn", Cloud::Alibaba)?;
            let role_arn = creds.role_arn.clone().ok_or_else(|| {
                misconfigured("ram-role-arn needs store.credentials.role_arn, e.g. \"acs:ram::1234567890123456:role/bucketq\"".into())
            })?;
            Arc::new(alibaba::AssumeRole::new(
                static_credentials(cfg)?,
                role_arn,
                cfg,
                &endpoints,
                env,
            ))
        }
        CredentialSource::Uri => {
            only("uri", Cloud::Alibaba)?;
            let uri = creds
                .uri
                .clone()
                .or_else(|| env.get("ALIBABA_CLOUD_CREDENTIALS_URI").cloned())
                .filter(|u| !u.is_empty())
                .ok_or_else(|| {
                    misconfigured(
                        "uri needs store.credentials.uri (or ALIBABA_CLOUD_CREDENTIALS_URI)".into(),
                    )
                })?;
            Arc::new(alibaba::CredentialsUri::new(uri, &endpoints))
        }
        CredentialSource::WebIdentity => {
            only("web-identity", Cloud::Aws)?;
            Arc::new(
                aws::WebIdentity::from_config(cfg, env, &endpoints)
                    .map_err(|e| misconfigured(e.to_string()))?,
            )
        }
        CredentialSource::Container => {
            only("container", Cloud::Aws)?;
            Arc::new(
                aws::Container::from_env(env, &endpoints)
                    .map_err(|e| misconfigured(e.to_string()))?,
            )
        }
        CredentialSource::Imds => {
            only("imds", Cloud::Aws)?;
            Arc::new(aws::Imds::new(creds.role_name.clone(), &endpoints))
        }
    })
}

/// Which cloud's conventions a store's keys follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cloud {
    /// OSS: Alibaba's chain and services.
    Alibaba,
    /// S3 and compatibles: AWS's.
    Aws,
}

/// The keys written in `[store]` (after the environment defaults were applied).
pub(crate) fn static_credentials(cfg: &StoreConfig) -> Result<Credentials, StoreError> {
    if cfg.access_key_id.is_empty() {
        return Err(StoreError::Misconfigured {
            field: "access_key_id",
            reason: "no access key id configured".into(),
        });
    }
    if cfg.access_key_secret.is_empty() {
        return Err(StoreError::Misconfigured {
            field: "access_key_secret",
            reason: "no access key secret configured".into(),
        });
    }
    Ok(Credentials {
        access_key_id: cfg.access_key_id.expose().trim().to_owned(),
        secret: cfg.access_key_secret.clone(),
        security_token: (!cfg.security_token.is_empty()).then(|| cfg.security_token.clone()),
    })
}

/// The web identity / OIDC token in `path`, read at every fetch (the platform rotates it).
pub(crate) fn read_token_file(
    source: &str,
    path: &std::path::Path,
) -> Result<String, CredentialError> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_owned())
        .map_err(|e| {
            CredentialError::failed(
                source,
                format!("cannot read the token file {}: {e}", path.display()),
            )
        })
}

/// The session name of an assumed role: the configured one, else `bucketq-<unix time>`.
pub(crate) fn session_name(configured: Option<&str>, now: SystemTime) -> String {
    configured
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let secs = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            format!("bucketq-{secs}")
        })
}

/// `2026-12-04T08:00:00Z` (the STS and metadata services' `Expiration`) as a time.
pub(crate) fn parse_expiration(source: &str, text: &str) -> Result<SystemTime, CredentialError> {
    humantime::parse_rfc3339(text.trim())
        .or_else(|_| humantime::parse_rfc3339_weak(text.trim()))
        .map_err(|e| {
            CredentialError::failed(
                source,
                format!("Expiration {text:?} is not a UTC time: {e}"),
            )
        })
}

#[cfg(test)]
mod tests;
