//! Alibaba Cloud's credential sources, as its credentials SDKs resolve them
//! (`shared/reference/next-round.md` §4.1–§4.5): environment, RRSA/OIDC, RAM role assumption,
//! the ECS instance's RAM role, a credentials URI, and the shared profile files.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine;
use rand::Rng;

use super::fetch::{excerpt, field, send, Endpoints};
use super::files::{self, home_file};
use super::{parse_expiration, read_token_file, session_name, CredentialError, Identity, Provider};
use crate::config::StoreConfig;
use crate::secret::Secret;
use crate::store::sign::Credentials;

/// STS's global endpoint.
const STS_GLOBAL: &str = "https://sts.aliyuncs.com";
/// The STS API version every call names.
const STS_VERSION: &str = "2015-04-01";

/// The STS endpoint: configured, else regional when `ALIBABA_CLOUD_STS_REGION` says so
/// (`sts-vpc.` with `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED=true`), else global.
fn sts_endpoint(endpoints: &Endpoints, env: &BTreeMap<String, String>) -> String {
    if let Some(sts) = &endpoints.sts {
        return sts.clone();
    }
    let region = env
        .get("ALIBABA_CLOUD_STS_REGION")
        .filter(|r| !r.is_empty());
    let vpc = env
        .get("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    match region {
        Some(r) if vpc => format!("https://sts-vpc.{r}.aliyuncs.com"),
        Some(r) => format!("https://sts.{r}.aliyuncs.com"),
        None => STS_GLOBAL.to_owned(),
    }
}

/// RFC 3986 percent-encoding as Alibaba's RPC signature wants it: unreserved kept, space as
/// `%20`, everything else `%XX` upper-case (reference §4.4).
pub fn rpc_encode(s: &str) -> String {
    crate::store::sign::uri_encode(s, true)
}

/// Sign an RPC request (`AssumeRole`): `GET&%2F&` + the encoded canonical query, HMAC-SHA1 with
/// `secret&`, base64. Returns the `Signature` value.
pub fn rpc_signature(method: &str, params: &BTreeMap<String, String>, secret: &str) -> String {
    use hmac::{Hmac, Mac};
    let canonical = params
        .iter()
        .map(|(k, v)| format!("{}={}", rpc_encode(k), rpc_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let to_sign = format!("{method}&{}&{}", rpc_encode("/"), rpc_encode(&canonical));
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the RPC timestamp.
fn rpc_timestamp(now: SystemTime) -> String {
    humantime::format_rfc3339_seconds(crate::store::sign::signable_time(now)).to_string()
}

fn nonce() -> String {
    let n: u128 = rand::thread_rng().gen();
    format!("{n:032x}")
}

/// The keys of an STS answer (`Credentials.{AccessKeyId, AccessKeySecret, SecurityToken,
/// Expiration}`), or its error (`Code`, `Message`).
fn sts_identity(
    name: &str,
    answer: &super::fetch::Answer,
    source: String,
) -> Result<Identity, CredentialError> {
    let json: serde_json::Value = serde_json::from_str(&answer.body).map_err(|_| {
        CredentialError::failed(
            name,
            format!(
                "HTTP {}: not JSON: {}",
                answer.status,
                excerpt(&answer.body)
            ),
        )
    })?;
    if answer.status != 200 {
        return Err(CredentialError::failed(
            name,
            format!(
                "HTTP {} {}: {}",
                answer.status,
                field(&json, "Code").unwrap_or("(no code)"),
                field(&json, "Message").unwrap_or("")
            ),
        ));
    }
    let c = json.get("Credentials").unwrap_or(&serde_json::Value::Null);
    keys_from(name, c, "AccessKeySecret", source)
}

/// `AccessKeyId`, `<secret_field>`, `SecurityToken`, `Expiration` of a JSON object.
fn keys_from(
    name: &str,
    v: &serde_json::Value,
    secret_field: &str,
    source: String,
) -> Result<Identity, CredentialError> {
    let need = |f: &str| {
        field(v, f).ok_or_else(|| CredentialError::failed(name, format!("the answer has no {f}")))
    };
    let expiration = need("Expiration")?;
    Ok(Identity {
        credentials: Credentials {
            access_key_id: need("AccessKeyId")?.to_owned(),
            secret: Secret::new(need(secret_field)?),
            security_token: Some(Secret::new(need("SecurityToken")?)),
        },
        expires: Some(parse_expiration(name, expiration)?),
        source,
    })
}

/// A RAM user (its keys) assuming a role: STS `AssumeRole`.
#[derive(Debug)]
pub struct AssumeRole {
    source_keys: Credentials,
    role_arn: String,
    session_name: Option<String>,
    external_id: Option<String>,
    policy: Option<String>,
    duration: Duration,
    sts: String,
    client: reqwest::Client,
}

impl AssumeRole {
    /// `source_keys` assuming `role_arn`, with the session name, external id and duration of
    /// `[store.credentials]`.
    pub fn new(
        source_keys: Credentials,
        role_arn: String,
        cfg: &StoreConfig,
        endpoints: &Endpoints,
        env: &BTreeMap<String, String>,
    ) -> Self {
        AssumeRole {
            source_keys,
            role_arn,
            session_name: cfg.credentials.role_session_name.clone(),
            external_id: cfg.credentials.external_id.clone(),
            policy: None,
            duration: cfg.credentials.duration.max(Duration::from_secs(900)),
            sts: sts_endpoint(endpoints, env),
            client: endpoints.service_client(),
        }
    }
}

#[async_trait]
impl Provider for AssumeRole {
    async fn fetch(&self, now: SystemTime) -> Result<Identity, CredentialError> {
        const NAME: &str = "STS AssumeRole";
        let mut params: BTreeMap<String, String> = [
            ("Action", "AssumeRole".to_owned()),
            ("Format", "JSON".to_owned()),
            ("Version", STS_VERSION.to_owned()),
            ("DurationSeconds", self.duration.as_secs().to_string()),
            ("RoleArn", self.role_arn.clone()),
            (
                "RoleSessionName",
                session_name(self.session_name.as_deref(), now),
            ),
            ("Timestamp", rpc_timestamp(now)),
            ("SignatureMethod", "HMAC-SHA1".to_owned()),
            ("SignatureVersion", "1.0".to_owned()),
            ("SignatureNonce", nonce()),
            ("AccessKeyId", self.source_keys.access_key_id.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(token) = &self.source_keys.security_token {
            params.insert("SecurityToken".into(), token.expose().to_owned());
        }
        if let Some(id) = self.external_id.as_deref().filter(|s| !s.is_empty()) {
            params.insert("ExternalId".into(), id.to_owned());
        }
        if let Some(policy) = self.policy.as_deref().filter(|s| !s.is_empty()) {
            params.insert("Policy".into(), policy.to_owned());
        }
        let signature = rpc_signature("GET", &params, self.source_keys.secret.expose());
        params.insert("Signature".into(), signature);
        let answer = send(
            NAME,
            self.client.get(format!("{}/", self.sts)).query(&params),
        )
        .await?;
        sts_identity(NAME, &answer, format!("STS AssumeRole {}", self.role_arn))
    }
}

/// RRSA on ACK: the pod's OIDC token exchanged for the role's keys (`AssumeRoleWithOIDC`, no
/// signature). The token file is read again at every refresh (it rotates).
#[derive(Debug)]
pub struct Oidc {
    role_arn: String,
    provider_arn: String,
    token_file: PathBuf,
    session_name: Option<String>,
    duration: Duration,
    sts: String,
    client: reqwest::Client,
}

impl Oidc {
    /// From `[store.credentials]`, each setting falling back to the RRSA variables
    /// (`ALIBABA_CLOUD_ROLE_ARN`, `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`,
    /// `ALIBABA_CLOUD_OIDC_TOKEN_FILE`, `ALIBABA_CLOUD_ROLE_SESSION_NAME`).
    pub fn from_config(
        cfg: &StoreConfig,
        env: &BTreeMap<String, String>,
        endpoints: &Endpoints,
    ) -> Result<Self, CredentialError> {
        let c = &cfg.credentials;
        let var = |n: &str| env.get(n).filter(|v| !v.is_empty()).cloned();
        let missing = |what: &str| {
            CredentialError::not_configured("RRSA (OIDC)", format!("{what} is not set"))
        };
        Ok(Oidc {
            role_arn: c
                .role_arn
                .clone()
                .or_else(|| var("ALIBABA_CLOUD_ROLE_ARN"))
                .ok_or_else(|| missing("store.credentials.role_arn / ALIBABA_CLOUD_ROLE_ARN"))?,
            provider_arn: c
                .oidc_provider_arn
                .clone()
                .or_else(|| var("ALIBABA_CLOUD_OIDC_PROVIDER_ARN"))
                .ok_or_else(|| {
                    missing("store.credentials.oidc_provider_arn / ALIBABA_CLOUD_OIDC_PROVIDER_ARN")
                })?,
            token_file: c
                .oidc_token_file
                .clone()
                .or_else(|| var("ALIBABA_CLOUD_OIDC_TOKEN_FILE").map(PathBuf::from))
                .ok_or_else(|| {
                    missing("store.credentials.oidc_token_file / ALIBABA_CLOUD_OIDC_TOKEN_FILE")
                })?,
            session_name: c
                .role_session_name
                .clone()
                .or_else(|| var("ALIBABA_CLOUD_ROLE_SESSION_NAME")),
            duration: c.duration.max(Duration::from_secs(900)),
            sts: sts_endpoint(endpoints, env),
            client: endpoints.service_client(),
        })
    }

    /// The same exchange with explicit settings (profiles name them).
    fn with(
        role_arn: String,
        provider_arn: String,
        token_file: PathBuf,
        endpoints: &Endpoints,
        env: &BTreeMap<String, String>,
    ) -> Self {
        Oidc {
            role_arn,
            provider_arn,
            token_file,
            session_name: None,
            duration: Duration::from_secs(3600),
            sts: sts_endpoint(endpoints, env),
            client: endpoints.service_client(),
        }
    }
}

#[async_trait]
impl Provider for Oidc {
    async fn fetch(&self, now: SystemTime) -> Result<Identity, CredentialError> {
        const NAME: &str = "RRSA (AssumeRoleWithOIDC)";
        let token = read_token_file(NAME, &self.token_file)?;
        let form = [
            ("Action", "AssumeRoleWithOIDC".to_owned()),
            ("Format", "JSON".to_owned()),
            ("Version", STS_VERSION.to_owned()),
            ("DurationSeconds", self.duration.as_secs().to_string()),
            ("RoleArn", self.role_arn.clone()),
            ("OIDCProviderArn", self.provider_arn.clone()),
            ("OIDCToken", token),
            (
                "RoleSessionName",
                session_name(self.session_name.as_deref(), now),
            ),
            ("Timestamp", rpc_timestamp(now)),
        ];
        // POST, so the token stays out of URLs (and access logs).
        let answer = send(NAME, self.client.post(format!("{}/", self.sts)).form(&form)).await?;
        sts_identity(NAME, &answer, format!("RRSA role {}", self.role_arn))
    }
}

/// The ECS instance's RAM role, from the metadata service, with the hardened-mode token.
#[derive(Debug)]
pub struct EcsRamRole {
    role_name: Option<String>,
    metadata: String,
    v1_disabled: bool,
    client: reqwest::Client,
}

impl EcsRamRole {
    /// The role `role_name` (or `ALIBABA_CLOUD_ECS_METADATA`, or the one the service names).
    pub fn new(
        role_name: Option<String>,
        env: &BTreeMap<String, String>,
        endpoints: &Endpoints,
    ) -> Self {
        EcsRamRole {
            role_name: role_name.or_else(|| {
                env.get("ALIBABA_CLOUD_ECS_METADATA")
                    .filter(|v| !v.is_empty())
                    .cloned()
            }),
            metadata: endpoints.metadata.clone(),
            v1_disabled: env
                .get("ALIBABA_CLOUD_IMDSV1_DISABLED")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            client: endpoints.metadata_client(),
        }
    }

    async fn token(&self) -> Result<Option<String>, CredentialError> {
        const NAME: &str = "ECS RAM role";
        let req = self
            .client
            .put(format!("{}/latest/api/token", self.metadata))
            .header("X-aliyun-ecs-metadata-token-ttl-seconds", "21600");
        match send(NAME, req).await {
            Ok(a) if a.status == 200 && !a.body.trim().is_empty() => Ok(Some(a.body.trim().to_owned())),
            Ok(a) if self.v1_disabled => Err(CredentialError::failed(NAME, format!("the metadata token request answered HTTP {} and ALIBABA_CLOUD_IMDSV1_DISABLED=true", a.status))),
            Err(e) if self.v1_disabled => Err(e),
            _ => Ok(None),
        }
    }

    async fn get(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> Result<super::fetch::Answer, CredentialError> {
        let mut req = self.client.get(format!("{}{path}", self.metadata));
        if let Some(t) = token {
            req = req.header("X-aliyun-ecs-metadata-token", t);
        }
        send("ECS RAM role", req).await
    }
}

#[async_trait]
impl Provider for EcsRamRole {
    async fn fetch(&self, _now: SystemTime) -> Result<Identity, CredentialError> {
        const NAME: &str = "ECS RAM role";
        const BASE: &str = "/latest/meta-data/ram/security-credentials/";
        let token = self.token().await?;
        let role = match &self.role_name {
            Some(r) => r.clone(),
            None => {
                let a = self.get(BASE, token.as_deref()).await?;
                let role = a.body.lines().next().unwrap_or("").trim().to_owned();
                if a.status != 200 || role.is_empty() {
                    return Err(CredentialError::failed(NAME, format!("the metadata service names no RAM role (HTTP {}); attach one to the instance or set store.credentials.role_name", a.status)));
                }
                role
            }
        };
        let a = self.get(&format!("{BASE}{role}"), token.as_deref()).await?;
        if a.status != 200 {
            return Err(CredentialError::failed(
                NAME,
                format!("role {role}: HTTP {}: {}", a.status, excerpt(&a.body)),
            ));
        }
        let json: serde_json::Value = serde_json::from_str(&a.body).map_err(|_| {
            CredentialError::failed(NAME, format!("role {role}: the answer is not JSON"))
        })?;
        if field(&json, "Code") != Some("Success") {
            return Err(CredentialError::failed(
                NAME,
                format!("role {role}: Code {:?}", field(&json, "Code").unwrap_or("")),
            ));
        }
        keys_from(
            NAME,
            &json,
            "AccessKeySecret",
            format!("ECS RAM role {role}"),
        )
    }
}

/// A credentials URI (`ALIBABA_CLOUD_CREDENTIALS_URI`).
#[derive(Debug)]
pub struct CredentialsUri {
    uri: String,
    client: reqwest::Client,
}

impl CredentialsUri {
    /// Keys served at `uri`.
    pub fn new(uri: String, endpoints: &Endpoints) -> Self {
        CredentialsUri {
            uri,
            client: endpoints.service_client(),
        }
    }
}

#[async_trait]
impl Provider for CredentialsUri {
    async fn fetch(&self, _now: SystemTime) -> Result<Identity, CredentialError> {
        const NAME: &str = "credentials URI";
        let a = send(NAME, self.client.get(&self.uri)).await?;
        if a.status != 200 {
            return Err(CredentialError::failed(
                NAME,
                format!("HTTP {}: {}", a.status, excerpt(&a.body)),
            ));
        }
        let json: serde_json::Value = serde_json::from_str(&a.body)
            .map_err(|_| CredentialError::failed(NAME, "the answer is not JSON"))?;
        if field(&json, "Code") != Some("Success") {
            return Err(CredentialError::failed(
                NAME,
                format!("Code {:?}", field(&json, "Code").unwrap_or("")),
            ));
        }
        keys_from(NAME, &json, "AccessKeySecret", "credentials URI".into())
    }
}

mod profile;

pub use profile::Profile;
