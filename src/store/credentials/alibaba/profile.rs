//! Alibaba's shared profile files: the CLI's `~/.aliyun/config.json` and the INI
//! `~/.alibabacloud/credentials`, each profile naming one of the sources of the parent module.

use super::*;

/// A profile of the shared files: `~/.aliyun/config.json` (the CLI's, profile = the file's
/// `current` unless named) first, then `~/.alibabacloud/credentials` (INI, section `default`
/// unless named). Read again at every fetch, so an edited file takes effect at the next
/// refresh.
#[derive(Debug)]
pub struct Profile {
    name: Option<String>,
    env: BTreeMap<String, String>,
    endpoints: Endpoints,
    cfg: StoreConfig,
}

impl Profile {
    /// The profile `store.credentials.profile` (or `ALIBABA_CLOUD_PROFILE`) names.
    pub fn new(cfg: &StoreConfig, env: &BTreeMap<String, String>, endpoints: &Endpoints) -> Self {
        Profile {
            name: cfg.credentials.profile.clone().or_else(|| {
                env.get("ALIBABA_CLOUD_PROFILE")
                    .filter(|v| !v.is_empty())
                    .cloned()
            }),
            env: env.clone(),
            endpoints: endpoints.clone(),
            cfg: cfg.clone(),
        }
    }

    /// The provider the profile describes.
    fn resolve(&self) -> Result<(Arc<dyn Provider>, String), CredentialError> {
        const NAME: &str = "Alibaba profile";
        let cli_disabled = self
            .env
            .get("ALIBABA_CLOUD_CLI_PROFILE_DISABLED")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !cli_disabled {
            if let Some(path) = home_file(&self.env, ".aliyun/config.json") {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    return self.read_cli_json(&text, &path.display().to_string());
                }
            }
        }
        let ini_path = self
            .env
            .get("ALIBABA_CLOUD_CREDENTIALS_FILE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                [".alibabacloud/credentials", ".alibabacloud/credentials.ini"]
                    .into_iter()
                    .filter_map(|f| home_file(&self.env, f))
                    .find(|p| p.exists())
            })
            .ok_or_else(|| {
                CredentialError::not_configured(
                    NAME,
                    "no ~/.aliyun/config.json and no ~/.alibabacloud/credentials",
                )
            })?;
        let text = std::fs::read_to_string(&ini_path).map_err(|e| {
            CredentialError::not_configured(
                NAME,
                format!("cannot read {}: {e}", ini_path.display()),
            )
        })?;
        self.read_ini(&text, &ini_path.display().to_string())
    }

    fn read_cli_json(
        &self,
        text: &str,
        path: &str,
    ) -> Result<(Arc<dyn Provider>, String), CredentialError> {
        const NAME: &str = "Alibaba CLI profile";
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| CredentialError::failed(NAME, format!("{path} is not JSON: {e}")))?;
        let wanted = self
            .name
            .clone()
            .or_else(|| field(&json, "current").map(str::to_owned))
            .unwrap_or_else(|| "default".into());
        let profile = json
            .get("profiles")
            .and_then(serde_json::Value::as_array)
            .and_then(|ps| {
                ps.iter()
                    .find(|p| field(p, "name") == Some(wanted.as_str()))
            })
            .ok_or_else(|| {
                CredentialError::failed(NAME, format!("{path} has no profile {wanted:?}"))
            })?;
        let get = |k: &str| field(profile, k).map(str::to_owned);
        let need = |k: &str| {
            get(k).ok_or_else(|| {
                CredentialError::failed(NAME, format!("profile {wanted:?} in {path} has no {k}"))
            })
        };
        let label = format!("Alibaba CLI profile {wanted} ({path})");
        let keys = |token: Option<String>| -> Result<Credentials, CredentialError> {
            Ok(Credentials {
                access_key_id: need("access_key_id")?,
                secret: Secret::new(need("access_key_secret")?),
                security_token: token.map(Secret::new),
            })
        };
        let provider: Arc<dyn Provider> = match get("mode").as_deref().unwrap_or("AK") {
            "AK" => Arc::new(crate::store::credentials::StaticKeys::new(keys(None)?, &label)),
            "StsToken" => Arc::new(crate::store::credentials::StaticKeys::new(keys(Some(need("sts_token")?))?, &label)),
            "RamRoleArn" => {
                let mut role = AssumeRole::new(keys(None)?, need("ram_role_arn")?, &self.cfg, &self.endpoints, &self.env);
                role.session_name = get("ram_session_name");
                role.external_id = get("external_id");
                role.policy = get("policy");
                if let Some(secs) = profile.get("expired_seconds").and_then(serde_json::Value::as_u64) {
                    role.duration = Duration::from_secs(secs.max(900));
                }
                Arc::new(role)
            }
            "EcsRamRole" => Arc::new(EcsRamRole::new(get("ram_role_name"), &self.env, &self.endpoints)),
            "OIDC" => Arc::new(Oidc::with(need("ram_role_arn")?, need("oidc_provider_arn")?, PathBuf::from(need("oidc_token_file")?), &self.endpoints, &self.env)),
            other => {
                return Err(CredentialError::failed(NAME, format!("profile {wanted:?} has mode {other:?}; bucketq reads AK, StsToken, RamRoleArn, EcsRamRole and OIDC")))
            }
        };
        Ok((provider, label))
    }

    fn read_ini(
        &self,
        text: &str,
        path: &str,
    ) -> Result<(Arc<dyn Provider>, String), CredentialError> {
        const NAME: &str = "Alibaba credentials file";
        let sections = files::parse_ini(text);
        let wanted = self.name.clone().unwrap_or_else(|| "default".into());
        let section = sections.get(&wanted).ok_or_else(|| {
            CredentialError::failed(NAME, format!("{path} has no [{wanted}] section"))
        })?;
        let get = |k: &str| section.get(k).filter(|v| !v.is_empty()).cloned();
        let need = |k: &str| {
            get(k).ok_or_else(|| {
                CredentialError::failed(NAME, format!("[{wanted}] in {path} has no {k}"))
            })
        };
        let label = format!("Alibaba credentials file [{wanted}] ({path})");
        let keys = || -> Result<Credentials, CredentialError> {
            Ok(Credentials {
                access_key_id: need("access_key_id")?,
                secret: Secret::new(need("access_key_secret")?),
                security_token: None,
            })
        };
        let provider: Arc<dyn Provider> = match get("type").as_deref().unwrap_or("access_key") {
            "access_key" => Arc::new(crate::store::credentials::StaticKeys::new(keys()?, &label)),
            "ram_role_arn" => {
                let mut role = AssumeRole::new(keys()?, need("role_arn")?, &self.cfg, &self.endpoints, &self.env);
                role.session_name = get("role_session_name");
                role.policy = get("policy");
                Arc::new(role)
            }
            "ecs_ram_role" => Arc::new(EcsRamRole::new(get("role_name"), &self.env, &self.endpoints)),
            "oidc_role_arn" => Arc::new(Oidc::with(need("role_arn")?, need("oidc_provider_arn")?, PathBuf::from(need("oidc_token_file_path")?), &self.endpoints, &self.env)),
            other => {
                return Err(CredentialError::failed(NAME, format!("[{wanted}] has type {other:?}; bucketq reads access_key, ram_role_arn, ecs_ram_role and oidc_role_arn")))
            }
        };
        Ok((provider, label))
    }
}

#[async_trait]
impl Provider for Profile {
    async fn fetch(&self, now: SystemTime) -> Result<Identity, CredentialError> {
        let (provider, label) = self.resolve()?;
        let mut identity = provider.fetch(now).await?;
        if !identity.source.contains(&label) {
            identity.source = format!("{} via {label}", identity.source);
        }
        Ok(identity)
    }
}
