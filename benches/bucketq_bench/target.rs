//! The stores measured, and fresh buckets on them.
//!
//! Every measurement gets its own bucket (S3: a randomly named bucket; local: a temporary
//! directory; OSS model: a new in-memory store), so runs never see each other's keys and other
//! users of the shared test servers are not disturbed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rand::Rng;

use bucketq::config::{StoreBackend, StoreConfig};
use bucketq::secret::Secret;
use bucketq::store::local::LocalStore;
use bucketq::store::memory::MemoryStore;
use bucketq::store::s3::S3Store;
use bucketq::store::{RequestStats, Store, StoreKind};

use crate::args::TargetName;

/// Latency of each request to the OSS model, drawn uniformly from this range: about what a
/// worker in the same region as its OSS bucket sees.
pub const OSS_MODEL_LATENCY: (Duration, Duration) =
    (Duration::from_millis(2), Duration::from_millis(6));

/// A store to measure and how to reach it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Which one.
    pub name: TargetName,
    endpoint: Option<String>,
    key_id: String,
    secret: String,
}

fn env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: run ./scripts/bench, which starts the test servers")
    })
}

impl Target {
    /// The target, with its endpoint and keys from the environment `scripts/bench` sets.
    pub fn from_env(name: TargetName) -> Result<Target> {
        let (endpoint, key_id, secret) = match name {
            TargetName::Localstack => (
                Some(env("BUCKETQ_TEST_LOCALSTACK_ENDPOINT")?),
                "test".to_owned(),
                "test".to_owned(),
            ),
            TargetName::Moto => (
                Some(env("BUCKETQ_TEST_S3_ENDPOINT")?),
                env("BUCKETQ_TEST_S3_ACCESS_KEY_ID")?,
                env("BUCKETQ_TEST_S3_SECRET_ACCESS_KEY")?,
            ),
            TargetName::Local | TargetName::OssModel => (None, String::new(), String::new()),
        };
        Ok(Target {
            name,
            endpoint,
            key_id,
            secret,
        })
    }

    /// A new, empty bucket on this store; `label` goes into its name.
    pub async fn fresh_bucket(&self, label: &str) -> Result<Bucket> {
        let nonce: u32 = rand::thread_rng().gen();
        let name = format!("bq-bench-{label}-{nonce:08x}");
        match self.name {
            TargetName::Localstack | TargetName::Moto => {
                let config = StoreConfig {
                    kind: StoreBackend::S3,
                    endpoint: self.endpoint.clone(),
                    bucket: name.clone(),
                    region: Some("us-east-1".into()),
                    path_style: true,
                    access_key_id: Secret::new(self.key_id.clone()),
                    access_key_secret: Secret::new(self.secret.clone()),
                    ..StoreConfig::default()
                };
                let store = S3Store::from_config(&config, Arc::new(RequestStats::default()))
                    .context("opening the S3 store")?;
                store
                    .create_bucket()
                    .await
                    .with_context(|| format!("creating bucket {name}"))?;
                Ok(Bucket {
                    config,
                    home: Home::Remote,
                })
            }
            TargetName::Local => {
                let dir = tempfile::Builder::new()
                    .prefix(&format!("{name}-"))
                    .tempdir()
                    .context("creating a temporary directory for the local store")?;
                let config = StoreConfig {
                    kind: StoreBackend::Local,
                    bucket: name,
                    path: dir.path().to_path_buf(),
                    ..StoreConfig::default()
                };
                Ok(Bucket {
                    config,
                    home: Home::Dir(dir),
                })
            }
            TargetName::OssModel => {
                let store = MemoryStore::builder()
                    .bucket(name.clone())
                    .kind(StoreKind::Oss)
                    .atomic_copy(true)
                    .latency(OSS_MODEL_LATENCY.0, OSS_MODEL_LATENCY.1)
                    .seed(rand::thread_rng().gen())
                    .build();
                let config = StoreConfig {
                    kind: StoreBackend::Oss,
                    bucket: name,
                    ..StoreConfig::default()
                };
                Ok(Bucket {
                    config,
                    home: Home::Memory(store),
                })
            }
        }
    }
}

/// Where a bucket's objects live.
#[derive(Debug)]
enum Home {
    /// On an S3 server.
    Remote,
    /// In a temporary directory, removed when the bucket is dropped.
    Dir(tempfile::TempDir),
    /// In memory.
    Memory(MemoryStore),
}

/// One bucket made for one measurement.
#[derive(Debug)]
pub struct Bucket {
    /// `[store]` reaching it (for in-process clients and for the daemon's config file).
    pub config: StoreConfig,
    home: Home,
}

impl Bucket {
    /// A new client of this bucket (its own connections) counting its requests in `stats`.
    pub fn client(&self, stats: Arc<RequestStats>) -> Result<Arc<dyn Store>> {
        Ok(match &self.home {
            Home::Remote => Arc::new(S3Store::from_config(&self.config, stats)?),
            Home::Dir(dir) => Arc::new(LocalStore::open(dir.path(), stats)?),
            Home::Memory(store) => {
                let seed: u64 = rand::thread_rng().gen();
                Arc::new(store.client(&format!("client-{seed:x}"), stats, seed))
            }
        })
    }

    /// A client whose requests nobody counts (producers, checks).
    pub fn uncounted(&self) -> Result<Arc<dyn Store>> {
        self.client(Arc::new(RequestStats::default()))
    }

    /// The `[store]` section of a daemon config file reaching this bucket.
    pub fn store_toml(&self) -> Result<String> {
        let c = &self.config;
        match c.kind {
            StoreBackend::S3 => Ok(format!(
                "[store]\nkind = \"s3\"\nendpoint = {}\nbucket = {}\nregion = \"us-east-1\"\n\
                 path_style = true\naccess_key_id = {}\naccess_key_secret = {}\n",
                quoted(c.endpoint.as_deref().unwrap_or_default()),
                quoted(&c.bucket),
                quoted(c.access_key_id.expose()),
                quoted(c.access_key_secret.expose()),
            )),
            StoreBackend::Local => Ok(format!(
                "[store]\nkind = \"local\"\npath = {}\n",
                quoted(&c.path.display().to_string())
            )),
            StoreBackend::Oss => anyhow::bail!("the OSS model lives in this process only"),
        }
    }
}

/// A TOML basic string.
pub fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serialises")
}
