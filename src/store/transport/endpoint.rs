//! Parsing the configured endpoint into the scheme and host requests are sent to, and how a
//! request names the bucket there ([`BucketAddress`]): virtual-hosted, path-style or a custom
//! domain. Both HTTP dialects address buckets the same three ways, so it is decided once here.

use std::net::IpAddr;

use crate::config::Addressing;
use crate::store::sign::uri_encode;
use crate::store::transport::request::{check_key, RequestSpec};
use crate::store::{Op, StoreError};

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

    /// True for an IP address (v4 or bracketed v6) or `localhost`: no DNS name can carry a
    /// bucket label there, so the SDKs address such endpoints path-style.
    pub fn is_ip_or_localhost(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost" || host.parse::<IpAddr>().is_ok()
    }
}

/// How a request names its bucket, once `auto` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `<bucket>.<host>/<key>`.
    VirtualHosted,
    /// `<host>/<bucket>/<key>`.
    Path,
    /// `<host>/<key>`: the host is bound to the bucket (a CNAME, or an endpoint that already
    /// starts with the bucket's label).
    Cname,
}

/// Where a bucket's requests go and how their paths look: the part of request building both
/// HTTP dialects share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketAddress {
    /// The origin requests are sent to (the bucket's label prefixed when virtual-hosted).
    target: Endpoint,
    bucket: String,
    style: Style,
}

impl BucketAddress {
    /// `bucket` at `endpoint`, addressed as `addressing` says; `auto` picks path-style for an
    /// IP or `localhost`, else `auto_style`, the dialect's own choice for a DNS name. An
    /// endpoint whose host already starts with `<bucket>.` is used as it is.
    pub fn new(
        endpoint: &Endpoint,
        bucket: &str,
        addressing: Addressing,
        auto_style: Style,
    ) -> Self {
        let mut style = match addressing {
            Addressing::Auto if endpoint.is_ip_or_localhost() => Style::Path,
            Addressing::Auto => auto_style,
            Addressing::VirtualHosted => Style::VirtualHosted,
            Addressing::Path => Style::Path,
            Addressing::Cname => Style::Cname,
        };
        if style == Style::VirtualHosted && endpoint.host.starts_with(&format!("{bucket}.")) {
            style = Style::Cname;
        }
        let target = match style {
            Style::VirtualHosted => endpoint.with_host(format!("{bucket}.{}", endpoint.host)),
            Style::Path | Style::Cname => endpoint.clone(),
        };
        BucketAddress {
            target,
            bucket: bucket.to_owned(),
            style,
        }
    }

    /// How the bucket is named.
    pub fn style(&self) -> Style {
        self.style
    }

    /// The origin requests go to.
    pub fn target(&self) -> &Endpoint {
        &self.target
    }

    /// A bucket-level request: `/<bucket>` path-style, `/` otherwise.
    pub fn bucket_request(&self, op: Op, method: &'static str) -> RequestSpec {
        let path = match self.style {
            Style::Path => format!("/{}", uri_encode(&self.bucket, true)),
            Style::VirtualHosted | Style::Cname => "/".to_owned(),
        };
        let mut spec = RequestSpec::new(
            op,
            method,
            &self.target.origin(),
            &self.target.authority(),
            path,
        );
        spec.bucket = Some(self.bucket.clone());
        spec
    }

    /// A request on one object: the key is checked and encoded once (`/` kept, the encoding
    /// the signers use), after the bucket when path-style.
    pub fn object_request(
        &self,
        op: Op,
        method: &'static str,
        key: &str,
    ) -> Result<RequestSpec, StoreError> {
        check_key(key)?;
        let mut spec = self.bucket_request(op, method);
        let encoded = uri_encode(key, false);
        spec.path = match self.style {
            Style::Path => format!("{}/{encoded}", spec.path),
            Style::VirtualHosted | Style::Cname => format!("/{encoded}"),
        };
        spec.key = key.to_owned();
        spec.subject = key.to_owned();
        Ok(spec)
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

    #[test]
    fn ip_and_localhost_endpoints_are_recognised_as_the_sdks_do() {
        for ip in [
            "http://10.0.0.5:8080",
            "http://127.0.0.1",
            "https://[::1]:9000",
            "http://localhost:9000",
        ] {
            assert!(Endpoint::parse(ip).expect(ip).is_ip_or_localhost(), "{ip}");
        }
        for name in [
            "https://oss-cn-hangzhou.aliyuncs.com",
            "http://minio:9000",
            "https://10.0.0.5.nip.io",
        ] {
            assert!(
                !Endpoint::parse(name).expect(name).is_ip_or_localhost(),
                "{name}"
            );
        }
    }

    #[test]
    fn auto_addressing_is_path_style_on_an_ip_and_the_dialect_default_elsewhere() {
        let ip = Endpoint::parse("http://10.0.0.5:8080").expect("valid");
        let a = BucketAddress::new(&ip, "tasks", Addressing::Auto, Style::VirtualHosted);
        assert_eq!(a.style(), Style::Path);
        let spec = a
            .object_request(Op::Get, "GET", "mail/a b.task")
            .expect("valid");
        assert_eq!(spec.url(), "http://10.0.0.5:8080/tasks/mail/a%20b.task");
        assert_eq!(spec.header_value("host"), Some("10.0.0.5:8080"));
        assert_eq!(a.bucket_request(Op::List, "GET").path, "/tasks");

        let aliyun = Endpoint::parse("https://oss-cn-hangzhou.aliyuncs.com").expect("valid");
        let a = BucketAddress::new(&aliyun, "tasks", Addressing::Auto, Style::VirtualHosted);
        let spec = a.object_request(Op::Get, "GET", "k").expect("valid");
        assert_eq!(spec.url(), "https://tasks.oss-cn-hangzhou.aliyuncs.com/k");
    }

    #[test]
    fn explicit_addressing_wins_and_a_bucket_labelled_host_is_not_prefixed_twice() {
        let ip = Endpoint::parse("https://127.0.0.1:8443").expect("valid");
        let a = BucketAddress::new(&ip, "b", Addressing::Cname, Style::VirtualHosted);
        assert_eq!(
            a.object_request(Op::Get, "GET", "k").expect("valid").url(),
            "https://127.0.0.1:8443/k"
        );
        let local = Endpoint::parse("https://oss-test.localtest:8443").expect("valid");
        let a = BucketAddress::new(&local, "b", Addressing::VirtualHosted, Style::Cname);
        let spec = a.object_request(Op::Get, "GET", "k").expect("valid");
        assert_eq!(spec.url(), "https://b.oss-test.localtest:8443/k");
        assert_eq!(spec.header_value("host"), Some("b.oss-test.localtest:8443"));
        let labelled = Endpoint::parse("https://b.oss-cn-hangzhou.aliyuncs.com").expect("valid");
        let a = BucketAddress::new(
            &labelled,
            "b",
            Addressing::VirtualHosted,
            Style::VirtualHosted,
        );
        assert_eq!(a.style(), Style::Cname);
        assert_eq!(a.target().host, "b.oss-cn-hangzhou.aliyuncs.com");
    }
}
