//! Parsing the configured endpoint into the scheme and host requests are sent to.

use crate::store::StoreError;

/// A parsed `store.endpoint`: `scheme://host[:port]`, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or address, lower-case, without the port.
    pub host: String,
    /// The port when it is not the scheme's default.
    pub port: Option<u16>,
}

impl Endpoint {
    /// Parse `text`; a scheme is required, a path (other than `/`), query or credentials are
    /// refused because requests would silently ignore them.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let bad = |reason: String| StoreError::Misconfigured {
            field: "endpoint",
            reason,
        };
        let url = reqwest::Url::parse(text.trim()).map_err(|e| {
            bad(format!(
                "{text:?} is not a URL ({e}); write it like \"https://oss-cn-hangzhou.aliyuncs.com\""
            ))
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(bad(format!("{text:?} must start with http:// or https://")));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad(format!("{text:?} has no host")))?;
        if url.path() != "/" && !url.path().is_empty() {
            return Err(bad(format!(
                "{text:?} has a path; give only scheme and host (the bucket is configured in store.bucket)"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Not echoed: the text holds a credential.
            return Err(bad(
                "the endpoint must not carry credentials; keys go in store.access_key_id and store.access_key_secret".into(),
            ));
        }
        if url.query().is_some() {
            return Err(bad(format!("{text:?} must not carry a query")));
        }
        Ok(Endpoint {
            scheme: url.scheme().to_owned(),
            host: host.to_ascii_lowercase(),
            port: url.port(),
        })
    }

    /// This endpoint with `host` replaced (virtual-hosted addressing prefixes the bucket).
    pub fn with_host(&self, host: String) -> Self {
        Endpoint {
            host,
            ..self.clone()
        }
    }

    /// `host[:port]`, the `Host` header value.
    pub fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    /// `scheme://host[:port]`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scheme_host_and_non_default_port() {
        let e = Endpoint::parse("https://OSS-cn-hangzhou.aliyuncs.com/").expect("valid");
        assert_eq!(e.origin(), "https://oss-cn-hangzhou.aliyuncs.com");
        assert_eq!(e.authority(), "oss-cn-hangzhou.aliyuncs.com");
        let e = Endpoint::parse("http://127.0.0.1:5055").expect("valid");
        assert_eq!(e.authority(), "127.0.0.1:5055");
        let e = Endpoint::parse("http://minio:80").expect("valid");
        assert_eq!(e.authority(), "minio", "a default port is not repeated");
    }

    #[test]
    fn refuses_what_requests_would_ignore() {
        for bad in [
            "oss-cn-hangzhou.aliyuncs.com",
            "ftp://host",
            "https://host/bucket",
            "https://user:pw@host",
            "https://host/?x=1",
        ] {
            let err = Endpoint::parse(bad).expect_err(bad);
            assert!(
                matches!(
                    err,
                    StoreError::Misconfigured {
                        field: "endpoint",
                        ..
                    }
                ),
                "{bad}: {err:?}"
            );
        }
        let err = Endpoint::parse("https://user:hunter2@host").expect_err("credentials");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
