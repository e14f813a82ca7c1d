//! The SDKs' default chains: try each source in order, use the first that gives keys, and keep
//! using that one afterwards (as both SDKs do), so a refresh never wanders to another source.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;

use super::fetch::Endpoints;
use super::{alibaba, aws, Cloud, CredentialError, EnvKeys, Identity, Provider};
use crate::config::StoreConfig;

/// Sources tried in order until one gives keys.
#[derive(Debug)]
pub struct Chain {
    links: Vec<Arc<dyn Provider>>,
    /// The index of the source that gave keys first.
    chosen: Mutex<Option<usize>>,
}

#[async_trait]
impl Provider for Chain {
    async fn fetch(&self, now: SystemTime) -> Result<Identity, CredentialError> {
        let chosen = *self.chosen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = chosen {
            return self.links[i].fetch(now).await;
        }
        let mut tried = Vec::new();
        for (i, link) in self.links.iter().enumerate() {
            match link.fetch(now).await {
                Ok(identity) => {
                    *self.chosen.lock().unwrap_or_else(|p| p.into_inner()) = Some(i);
                    return Ok(identity);
                }
                // A source that is set up but failed stops the chain, as in the SDKs: its
                // error is the one the operator needs.
                Err(e @ CredentialError::Failed { .. }) => return Err(e),
                Err(e) => tried.push(e.to_string()),
            }
        }
        Err(CredentialError::not_configured(
            "default chain",
            format!("no source gave keys: {}", tried.join("; ")),
        ))
    }
}

/// The default chain of `cloud`. Alibaba: environment, RRSA/OIDC (when its three variables
/// are set), the CLI and INI profiles, the ECS RAM role (unless
/// `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`), a credentials URI (when set). AWS: environment,
/// profiles, web identity (when its variables are set), container credentials (when set), the
/// EC2 instance profile (unless `AWS_EC2_METADATA_DISABLED=true`).
pub fn default_chain(
    cloud: Cloud,
    cfg: &StoreConfig,
    env: &BTreeMap<String, String>,
    endpoints: &Endpoints,
) -> Arc<dyn Provider> {
    let set = |n: &str| env.get(n).is_some_and(|v| !v.is_empty());
    let is_true = |n: &str| env.get(n).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut links: Vec<Arc<dyn Provider>> = Vec::new();
    match cloud {
        Cloud::Alibaba => {
            links.push(Arc::new(EnvKeys::new(cloud, env)));
            if let Ok(oidc) = alibaba::Oidc::from_config(cfg, env, endpoints) {
                if set("ALIBABA_CLOUD_OIDC_TOKEN_FILE") || cfg.credentials.oidc_token_file.is_some()
                {
                    links.push(Arc::new(oidc));
                }
            }
            links.push(Arc::new(alibaba::Profile::new(cfg, env, endpoints)));
            if !is_true("ALIBABA_CLOUD_ECS_METADATA_DISABLED") {
                links.push(Arc::new(alibaba::EcsRamRole::new(
                    cfg.credentials.role_name.clone(),
                    env,
                    endpoints,
                )));
            }
            let uri = cfg
                .credentials
                .uri
                .clone()
                .or_else(|| env.get("ALIBABA_CLOUD_CREDENTIALS_URI").cloned());
            if let Some(uri) = uri.filter(|u| !u.is_empty()) {
                links.push(Arc::new(alibaba::CredentialsUri::new(uri, endpoints)));
            }
        }
        Cloud::Aws => {
            links.push(Arc::new(EnvKeys::new(cloud, env)));
            links.push(Arc::new(aws::Profile::new(cfg, env, endpoints)));
            if let Ok(web) = aws::WebIdentity::from_config(cfg, env, endpoints) {
                if set("AWS_WEB_IDENTITY_TOKEN_FILE") || cfg.credentials.oidc_token_file.is_some() {
                    links.push(Arc::new(web));
                }
            }
            if let Ok(container) = aws::Container::from_env(env, endpoints) {
                links.push(Arc::new(container));
            }
            if !is_true("AWS_EC2_METADATA_DISABLED") {
                links.push(Arc::new(aws::Imds::with_env(
                    cfg.credentials.role_name.clone(),
                    env,
                    endpoints,
                )));
            }
        }
    }
    Arc::new(Chain {
        links,
        chosen: Mutex::new(None),
    })
}
