//! AWS's shared files, `~/.aws/config` and `~/.aws/credentials`: a profile gives static keys or
//! names one of the sources of the parent module (an assumed role, web identity).

use super::*;

/// A profile of `~/.aws/credentials` and `~/.aws/config` (`AWS_SHARED_CREDENTIALS_FILE`,
/// `AWS_CONFIG_FILE`; profile `AWS_PROFILE` or `default`): static keys with an optional
/// session token, or `role_arn` + `web_identity_token_file`. Read again at every fetch.
#[derive(Debug)]
pub struct Profile {
    name: String,
    env: BTreeMap<String, String>,
    endpoints: Endpoints,
    duration: Duration,
}

impl Profile {
    /// The profile `store.credentials.profile` (or `AWS_PROFILE`, or `default`) names.
    pub fn new(cfg: &StoreConfig, env: &BTreeMap<String, String>, endpoints: &Endpoints) -> Self {
        Profile {
            name: cfg
                .credentials
                .profile
                .clone()
                .or_else(|| env.get("AWS_PROFILE").filter(|v| !v.is_empty()).cloned())
                .unwrap_or_else(|| "default".into()),
            env: env.clone(),
            endpoints: endpoints.clone(),
            duration: cfg.credentials.duration,
        }
    }

    fn file(&self, var: &str, default: &str) -> Option<PathBuf> {
        self.env
            .get(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| home_file(&self.env, default))
    }
}

#[async_trait]
impl Provider for Profile {
    async fn fetch(&self, now: SystemTime) -> Result<Identity, CredentialError> {
        const NAME: &str = "AWS profile";
        let mut merged: BTreeMap<String, String> = BTreeMap::new();
        let mut seen = Vec::new();
        for (var, default) in [
            ("AWS_CONFIG_FILE", ".aws/config"),
            ("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
        ] {
            let Some(path) = self.file(var, default) else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if let Some(section) = parse_ini(&text).remove(&self.name) {
                seen.push(path.display().to_string());
                merged.extend(section);
            }
        }
        if seen.is_empty() {
            return Err(CredentialError::not_configured(
                NAME,
                format!(
                    "no profile {:?} in ~/.aws/config or ~/.aws/credentials",
                    self.name
                ),
            ));
        }
        let label = format!("AWS profile {} ({})", self.name, seen.join(", "));
        let get = |k: &str| merged.get(k).filter(|v| !v.is_empty()).cloned();
        if let (Some(id), Some(secret)) = (get("aws_access_key_id"), get("aws_secret_access_key")) {
            return Ok(Identity {
                credentials: Credentials {
                    access_key_id: id,
                    secret: Secret::new(secret),
                    security_token: get("aws_session_token").map(Secret::new),
                },
                expires: None,
                source: label,
            });
        }
        if let (Some(role), Some(source_name)) = (get("role_arn"), get("source_profile")) {
            if source_name == self.name {
                return Err(CredentialError::failed(
                    NAME,
                    format!("{label}: source_profile names the profile itself"),
                ));
            }
            let source = Profile {
                name: source_name,
                env: self.env.clone(),
                endpoints: self.endpoints.clone(),
                duration: self.duration,
            };
            let provider = AssumeRole::new(
                Arc::new(source),
                role,
                &merged,
                self.duration,
                &self.endpoints,
            );
            let mut identity = provider.fetch(now).await?;
            identity.source = format!("{} via {label}", identity.source);
            return Ok(identity);
        }
        if let (Some(role), Some(credential_source)) = (get("role_arn"), get("credential_source")) {
            let source: Arc<dyn Provider> = match credential_source.as_str() {
                "Environment" => Arc::new(crate::store::credentials::EnvKeys::new(crate::store::credentials::Cloud::Aws, &self.env)),
                "Ec2InstanceMetadata" => Arc::new(Imds::with_env(None, &self.env, &self.endpoints)),
                "EcsContainer" => Arc::new(Container::from_env(&self.env, &self.endpoints)?),
                other => {
                    return Err(CredentialError::failed(NAME, format!("{label}: credential_source {other:?} is not Environment, Ec2InstanceMetadata or EcsContainer")))
                }
            };
            let provider = AssumeRole::new(source, role, &merged, self.duration, &self.endpoints);
            let mut identity = provider.fetch(now).await?;
            identity.source = format!("{} via {label}", identity.source);
            return Ok(identity);
        }
        if let (Some(role), Some(token_file)) = (get("role_arn"), get("web_identity_token_file")) {
            let provider = WebIdentity::with(
                role,
                PathBuf::from(token_file),
                get("role_session_name"),
                self.duration,
                &self.endpoints,
            );
            let mut identity = provider.fetch(now).await?;
            identity.source = format!("{} via {label}", identity.source);
            return Ok(identity);
        }
        Err(CredentialError::failed(
            NAME,
            format!("{label} has neither aws_access_key_id + aws_secret_access_key nor role_arn with source_profile, credential_source or web_identity_token_file (credential_process and SSO are not read by bucketq)"),
        ))
    }
}
