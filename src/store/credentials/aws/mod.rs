//! AWS's credential sources, as its SDKs resolve them (`shared/reference/next-round.md` §4.6):
//! environment, the shared config and credentials files, web identity, container
//! credentials, and the EC2 instance profile through IMDSv2. For S3 and S3-compatible stores.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::fetch::{excerpt, field, send, Answer, Endpoints};
use super::files::{home_file, parse_ini};
use super::{parse_expiration, read_token_file, session_name, CredentialError, Identity, Provider};
use crate::config::StoreConfig;
use crate::secret::Secret;
use crate::store::sign::Credentials;

/// The text of the first `<tag>` element of an XML answer.
fn xml_text(body: &str, tag: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    let mut inside = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => inside = e.local_name().as_ref() == tag.as_bytes(),
            Ok(Event::Text(t)) if inside => {
                return t.unescape().ok().map(|s| s.trim().to_owned());
            }
            Ok(Event::End(_)) => inside = false,
            Ok(Event::Eof) | Err(_) => return None,
            _ => {}
        }
    }
}

/// The keys of an STS XML answer, or its `<Code>`/`<Message>`.
fn sts_xml_identity(name: &str, a: &Answer, source: String) -> Result<Identity, CredentialError> {
    if a.status != 200 {
        return Err(CredentialError::failed(
            name,
            format!(
                "HTTP {} {}: {}",
                a.status,
                xml_text(&a.body, "Code").unwrap_or_else(|| "(no code)".into()),
                xml_text(&a.body, "Message").unwrap_or_else(|| excerpt(&a.body))
            ),
        ));
    }
    let need = |tag: &str| {
        xml_text(&a.body, tag)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| CredentialError::failed(name, format!("the answer has no {tag}")))
    };
    Ok(Identity {
        credentials: Credentials {
            access_key_id: need("AccessKeyId")?,
            secret: Secret::new(need("SecretAccessKey")?),
            security_token: Some(Secret::new(need("SessionToken")?)),
        },
        expires: Some(parse_expiration(name, &need("Expiration")?)?),
        source,
    })
}

/// Keys of a JSON answer (`AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`), the shape
/// of IMDS and container credentials.
fn json_identity(name: &str, body: &str, source: String) -> Result<Identity, CredentialError> {
    let json: serde_json::Value = serde_json::from_str(body)
        .map_err(|_| CredentialError::failed(name, "the answer is not JSON"))?;
    if let Some(code) = field(&json, "Code").filter(|c| *c != "Success") {
        return Err(CredentialError::failed(
            name,
            format!("Code {code:?}: {}", field(&json, "Message").unwrap_or("")),
        ));
    }
    let need = |f: &str| {
        field(&json, f)
            .ok_or_else(|| CredentialError::failed(name, format!("the answer has no {f}")))
    };
    Ok(Identity {
        credentials: Credentials {
            access_key_id: need("AccessKeyId")?.to_owned(),
            secret: Secret::new(need("SecretAccessKey")?),
            security_token: field(&json, "Token").map(Secret::new),
        },
        expires: match field(&json, "Expiration") {
            Some(e) => Some(parse_expiration(name, e)?),
            None => None,
        },
        source,
    })
}

/// STS `AssumeRoleWithWebIdentity`: a token file (EKS IRSA) exchanged for the role's keys,
/// unsigned. The token file is read again at every refresh.
#[derive(Debug)]
pub struct WebIdentity {
    role_arn: String,
    token_file: PathBuf,
    session_name: Option<String>,
    duration: Duration,
    sts: String,
    client: reqwest::Client,
}

impl WebIdentity {
    /// From `[store.credentials]`, falling back to `AWS_ROLE_ARN`,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_SESSION_NAME`.
    pub fn from_config(
        cfg: &StoreConfig,
        env: &BTreeMap<String, String>,
        endpoints: &Endpoints,
    ) -> Result<Self, CredentialError> {
        let c = &cfg.credentials;
        let var = |n: &str| env.get(n).filter(|v| !v.is_empty()).cloned();
        let missing = |what: &str| {
            CredentialError::not_configured("web identity", format!("{what} is not set"))
        };
        Ok(WebIdentity::with(
            c.role_arn
                .clone()
                .or_else(|| var("AWS_ROLE_ARN"))
                .ok_or_else(|| missing("store.credentials.role_arn / AWS_ROLE_ARN"))?,
            c.oidc_token_file
                .clone()
                .or_else(|| var("AWS_WEB_IDENTITY_TOKEN_FILE").map(PathBuf::from))
                .ok_or_else(|| {
                    missing("store.credentials.oidc_token_file / AWS_WEB_IDENTITY_TOKEN_FILE")
                })?,
            c.role_session_name
                .clone()
                .or_else(|| var("AWS_ROLE_SESSION_NAME")),
            c.duration,
            endpoints,
        ))
    }

    fn with(
        role_arn: String,
        token_file: PathBuf,
        session_name: Option<String>,
        duration: Duration,
        endpoints: &Endpoints,
    ) -> Self {
        let sts = sts_endpoint(endpoints);
        WebIdentity {
            role_arn,
            token_file,
            session_name,
            duration: duration.max(Duration::from_secs(900)),
            sts,
            client: endpoints.service_client(),
        }
    }
}

#[async_trait]
impl Provider for WebIdentity {
    async fn fetch(&self, now: SystemTime) -> Result<Identity, CredentialError> {
        const NAME: &str = "web identity (AssumeRoleWithWebIdentity)";
        let token = read_token_file(NAME, &self.token_file)?;
        let session = session_name(self.session_name.as_deref(), now);
        let form = [
            ("Action", "AssumeRoleWithWebIdentity".to_owned()),
            ("Version", "2011-06-15".to_owned()),
            ("RoleArn", self.role_arn.clone()),
            ("RoleSessionName", session),
            ("WebIdentityToken", token),
            ("DurationSeconds", self.duration.as_secs().to_string()),
        ];
        let a = send(NAME, self.client.post(format!("{}/", self.sts)).form(&form)).await?;
        sts_xml_identity(NAME, &a, format!("web identity role {}", self.role_arn))
    }
}

/// STS `AssumeRole`, signed (SigV4, service `sts`) with the source keys: what a profile with
/// `role_arn` and `source_profile` or `credential_source` means.
#[derive(Debug)]
pub struct AssumeRole {
    source: Arc<dyn Provider>,
    role_arn: String,
    session_name: Option<String>,
    external_id: Option<String>,
    duration: Duration,
    sts: String,
    region: String,
    client: reqwest::Client,
}

impl AssumeRole {
    fn new(
        source: Arc<dyn Provider>,
        role_arn: String,
        profile: &BTreeMap<String, String>,
        duration: Duration,
        endpoints: &Endpoints,
    ) -> Self {
        AssumeRole {
            source,
            role_arn,
            session_name: profile.get("role_session_name").cloned(),
            external_id: profile.get("external_id").cloned(),
            duration: profile
                .get("duration_seconds")
                .and_then(|d| d.parse().ok())
                .map(Duration::from_secs)
                .unwrap_or(duration)
                .max(Duration::from_secs(900)),
            sts: sts_endpoint(endpoints),
            region: endpoints
                .region
                .clone()
                .unwrap_or_else(|| "us-east-1".to_owned()),
            client: endpoints.service_client(),
        }
    }
}

#[async_trait]
impl Provider for AssumeRole {
    async fn fetch(&self, now: SystemTime) -> Result<Identity, CredentialError> {
        const NAME: &str = "STS AssumeRole";
        let source = self.source.fetch(now).await?;
        let mut form = vec![
            ("Action", "AssumeRole".to_owned()),
            ("Version", "2011-06-15".to_owned()),
            ("RoleArn", self.role_arn.clone()),
            (
                "RoleSessionName",
                session_name(self.session_name.as_deref(), now),
            ),
            ("DurationSeconds", self.duration.as_secs().to_string()),
        ];
        if let Some(id) = self.external_id.as_deref().filter(|s| !s.is_empty()) {
            form.push(("ExternalId", id.to_owned()));
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let url = reqwest::Url::parse(&format!("{}/", self.sts)).map_err(|e| {
            CredentialError::failed(NAME, format!("bad STS endpoint {}: {e}", self.sts))
        })?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => {
                return Err(CredentialError::failed(
                    NAME,
                    "the STS endpoint has no host",
                ))
            }
        };
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let headers = [("host", host.as_str()), ("content-type", content_type)];
        let parts = crate::store::sign::RequestParts {
            method: "POST",
            bucket: None,
            key: "",
            path: "/",
            query: &[],
            headers: &headers,
        };
        let payload = crate::store::sign::sha256_hex(body.as_bytes());
        let signed = crate::store::sign::sigv4::sign(
            &parts,
            &source.credentials,
            &self.region,
            "sts",
            &payload,
            now,
        );
        let mut req = self
            .client
            .post(url)
            .header("content-type", content_type)
            .body(body);
        for (name, value) in signed {
            req = req.header(name, value);
        }
        let a = send(NAME, req).await?;
        sts_xml_identity(
            NAME,
            &a,
            format!(
                "STS AssumeRole {} (source: {})",
                self.role_arn, source.source
            ),
        )
    }
}

/// The STS endpoint: configured, else regional for a known region, else global.
fn sts_endpoint(endpoints: &Endpoints) -> String {
    endpoints
        .sts
        .clone()
        .unwrap_or_else(|| match &endpoints.region {
            Some(r) => format!("https://sts.{r}.amazonaws.com"),
            None => "https://sts.amazonaws.com".to_owned(),
        })
}

/// ECS/EKS container credentials: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on
/// `169.254.170.2`) or `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with the authorization token
/// from `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read each time) or
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
#[derive(Debug)]
pub struct Container {
    uri: String,
    token_file: Option<PathBuf>,
    token: Option<Secret>,
    client: reqwest::Client,
}

impl Container {
    /// From the environment.
    pub fn from_env(
        env: &BTreeMap<String, String>,
        endpoints: &Endpoints,
    ) -> Result<Self, CredentialError> {
        const NAME: &str = "container credentials";
        let var = |n: &str| env.get(n).filter(|v| !v.is_empty()).cloned();
        let uri = if let Some(rel) = var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            format!("{}{rel}", endpoints.container_host)
        } else if let Some(full) = var("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            check_full_uri(&full)?;
            full
        } else {
            return Err(CredentialError::not_configured(
                NAME,
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI are not set",
            ));
        };
        Ok(Container {
            uri,
            token_file: var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").map(PathBuf::from),
            token: var("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(Secret::new),
            client: endpoints.metadata_client(),
        })
    }
}

/// A full URI must be HTTPS, or HTTP to loopback or the ECS/EKS agents' addresses (the SDKs'
/// rule: credentials never travel in clear to anything else).
fn check_full_uri(uri: &str) -> Result<(), CredentialError> {
    let url = reqwest::Url::parse(uri).map_err(|e| {
        CredentialError::failed(
            "container credentials",
            format!("AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL: {e}"),
        )
    })?;
    if url.scheme() == "https" {
        return Ok(());
    }
    let allowed = match url.host() {
        Some(url::Host::Ipv4(ip)) => {
            ip.is_loopback()
                || ip.octets() == [169, 254, 170, 2]
                || ip.octets() == [169, 254, 170, 23]
        }
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23]
        }
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if url.scheme() == "http" && allowed {
        Ok(())
    } else {
        Err(CredentialError::failed(
            "container credentials",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to loopback, 169.254.170.2 or 169.254.170.23",
        ))
    }
}

#[async_trait]
impl Provider for Container {
    async fn fetch(&self, _now: SystemTime) -> Result<Identity, CredentialError> {
        const NAME: &str = "container credentials";
        let mut req = self.client.get(&self.uri);
        let token = match &self.token_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                CredentialError::failed(
                    NAME,
                    format!(
                        "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {}: {e}",
                        path.display()
                    ),
                )
            })?),
            None => self.token.as_ref().map(|t| t.expose().to_owned()),
        };
        if let Some(token) = token {
            req = req.header("Authorization", token.trim());
        }
        let a = send(NAME, req).await?;
        if a.status != 200 {
            return Err(CredentialError::failed(
                NAME,
                format!("HTTP {}: {}", a.status, excerpt(&a.body)),
            ));
        }
        json_identity(NAME, &a.body, "container credentials".into())
    }
}

/// The EC2 instance profile through IMDSv2 (a session token first), falling back to IMDSv1
/// on 403/404/405 unless `AWS_EC2_METADATA_V1_DISABLED=true`.
#[derive(Debug)]
pub struct Imds {
    role_name: Option<String>,
    metadata: String,
    v1_disabled: bool,
    client: reqwest::Client,
}

impl Imds {
    /// The instance profile (or `role_name`) of the instance `endpoints.metadata` serves.
    pub fn new(role_name: Option<String>, endpoints: &Endpoints) -> Self {
        Imds {
            role_name,
            metadata: endpoints.metadata.clone(),
            v1_disabled: false,
            client: endpoints.metadata_client(),
        }
    }

    /// [`Imds::new`], honouring `AWS_EC2_METADATA_V1_DISABLED`.
    pub fn with_env(
        role_name: Option<String>,
        env: &BTreeMap<String, String>,
        endpoints: &Endpoints,
    ) -> Self {
        Imds {
            v1_disabled: env
                .get("AWS_EC2_METADATA_V1_DISABLED")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            ..Imds::new(role_name, endpoints)
        }
    }
}

#[async_trait]
impl Provider for Imds {
    async fn fetch(&self, _now: SystemTime) -> Result<Identity, CredentialError> {
        const NAME: &str = "EC2 instance metadata";
        const BASE: &str = "/latest/meta-data/iam/security-credentials/";
        let token_req = self
            .client
            .put(format!("{}/latest/api/token", self.metadata))
            .header("X-aws-ec2-metadata-token-ttl-seconds", "21600");
        let token = match send(NAME, token_req).await {
            Ok(a) if a.status == 200 => Some(a.body.trim().to_owned()),
            Ok(a) if matches!(a.status, 403..=405) && !self.v1_disabled => None,
            Ok(a) => {
                return Err(CredentialError::failed(
                    NAME,
                    format!("the session token request answered HTTP {}", a.status),
                ))
            }
            Err(e) => return Err(e),
        };
        let get = |path: String| {
            let mut req = self.client.get(format!("{}{path}", self.metadata));
            if let Some(t) = &token {
                req = req.header("X-aws-ec2-metadata-token", t);
            }
            send(NAME, req)
        };
        let role = match &self.role_name {
            Some(r) => r.clone(),
            None => {
                let a = get(BASE.to_owned()).await?;
                let role = a.body.lines().next().unwrap_or("").trim().to_owned();
                if a.status != 200 || role.is_empty() {
                    return Err(CredentialError::failed(
                        NAME,
                        format!(
                            "no instance profile (HTTP {}); attach an IAM role to the instance",
                            a.status
                        ),
                    ));
                }
                role
            }
        };
        let a = get(format!("{BASE}{role}")).await?;
        if a.status != 200 {
            return Err(CredentialError::failed(
                NAME,
                format!("role {role}: HTTP {}: {}", a.status, excerpt(&a.body)),
            ));
        }
        json_identity(NAME, &a.body, format!("EC2 instance profile {role}"))
    }
}

mod profile;

pub use profile::Profile;
