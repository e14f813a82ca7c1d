//! OSS as the cloud addresses it, offline: `https://<bucket>.oss-cn-hangzhou.aliyuncs.com`
//! (virtual-hosted, the region derived from the endpoint) and a custom domain, served over TLS
//! by the signature oracle with a CA made for the test, reached through `store.connect_to`
//! (only 127.0.0.1 is ever dialled). Without the CA the store refuses the certificate at once,
//! naming `store.ca_file`; with `store.ca_file` every request verifies.

#[path = "conformance/mod.rs"]
mod conformance;
#[path = "support/oss_oracle.rs"]
mod oss_oracle;

use std::path::Path;
use std::sync::Arc;

use bucketq::config::{Addressing, StoreBackend, StoreConfig};
use bucketq::secret::Secret;
use bucketq::store::oss::OssStore;
use bucketq::store::{ListRequest, Op, RequestStats, Store, StoreError};
use oss_oracle::{Key, Options, Oracle, BUCKET, KEY_ID, SECRET};

const ALIYUN_HOST: &str = "oss-cn-hangzhou.aliyuncs.com";
const CNAME: &str = "tasks.files.example.test";

fn tls_oracle(dir: &Path) -> Oracle {
    oss_oracle::make_test_ca(dir, &[&format!("*.{ALIYUN_HOST}"), ALIYUN_HOST, CNAME]);
    Oracle::start(
        &[Key::long_lived()],
        Options {
            virtual_host: Some(ALIYUN_HOST.into()),
            cname: Some(CNAME.into()),
            tls_dir: Some(dir.to_owned()),
        },
    )
}

fn config(oracle: &Oracle, endpoint: &str, ca: Option<&Path>) -> StoreConfig {
    StoreConfig {
        kind: StoreBackend::Oss,
        endpoint: Some(endpoint.into()),
        bucket: BUCKET.into(),
        access_key_id: Secret::new(KEY_ID),
        access_key_secret: Secret::new(SECRET),
        ca_file: ca.map(Path::to_owned),
        connect_to: Some(format!("127.0.0.1:{}", oracle.port())),
        ..StoreConfig::default()
    }
}

fn open(cfg: &StoreConfig) -> (Arc<dyn Store>, Arc<RequestStats>) {
    let stats = Arc::new(RequestStats::default());
    let store = OssStore::from_config(cfg, Arc::clone(&stats)).expect("opens");
    (Arc::new(store), stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn virtual_hosted_aliyun_endpoint_over_tls_with_the_region_derived() {
    let dir = tempfile::tempdir().expect("temp dir");
    let oracle = tls_oracle(dir.path());
    let endpoint = format!("https://{ALIYUN_HOST}");

    // The system store does not know the test CA: refused at once, with the fix.
    let (store, stats) = open(&config(&oracle, &endpoint, None));
    let err = store
        .list(&ListRequest::default())
        .await
        .expect_err("an unknown CA is refused");
    assert!(
        matches!(err, StoreError::UntrustedCertificate { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("store.ca_file"), "{err}");
    assert_eq!(
        stats.snapshot().get(&(Op::List, "error".to_owned())),
        Some(&1),
        "never retried"
    );
    assert!(oracle.log().is_empty(), "no request got through");

    let ca = dir.path().join("ca.pem");
    let (store, _) = open(&config(&oracle, &endpoint, Some(&ca)));
    let prefix = conformance::unique_prefix("tls");
    conformance::put_get_head_round_trip(Arc::clone(&store), &format!("{prefix}rt/")).await;
    conformance::copy_replaces_metadata(Arc::clone(&store), &format!("{prefix}copy/")).await;
    conformance::conditional_copy_is_honoured_or_unsupported(
        Arc::clone(&store),
        &format!("{prefix}cond/"),
    )
    .await;
    conformance::delete_is_idempotent(Arc::clone(&store), &format!("{prefix}del/")).await;
    let checked = oracle.assert_all_sound(&[404, 409, 412]);
    assert!(checked > 10, "{checked}");
    for entry in oracle.log() {
        assert_eq!(
            entry["host"].as_str(),
            Some(format!("{BUCKET}.{ALIYUN_HOST}").as_str()),
            "virtual-hosted: {entry:#}"
        );
        assert!(
            !entry["target"]
                .as_str()
                .unwrap_or("")
                .starts_with(&format!("/{BUCKET}")),
            "no bucket in the path: {entry:#}"
        );
        assert_eq!(entry["signature"].as_str(), Some("v4"), "{entry:#}");
        let auth = entry["headers"]["authorization"].as_str().unwrap_or("");
        assert!(
            auth.contains("/cn-hangzhou/oss/aliyun_v4_request"),
            "derived region: {auth}"
        );
    }
}

#[tokio::test]
async fn a_custom_domain_over_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let oracle = tls_oracle(dir.path());
    let ca = dir.path().join("ca.pem");
    let mut cfg = config(&oracle, &format!("https://{CNAME}"), Some(&ca));
    cfg.region = Some("cn-hangzhou".into());
    let (store, _) = open(&cfg);
    conformance::put_get_head_round_trip(Arc::clone(&store), &conformance::unique_prefix("cname"))
        .await;
    oracle.assert_all_sound(&[404]);
    assert!(oracle
        .log()
        .iter()
        .all(|e| e["host"].as_str() == Some(CNAME)));

    // An explicit addressing setting wins over what the host suggests.
    cfg.addressing = Addressing::VirtualHosted;
    cfg.endpoint = Some(format!("https://{ALIYUN_HOST}"));
    let (store, _) = open(&cfg);
    store
        .list(&ListRequest::default())
        .await
        .expect("virtual-hosted list");
}
