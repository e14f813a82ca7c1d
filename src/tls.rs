//! The operator's trust store, shared by the store client and the handlers that speak TLS.
//!
//! Every HTTPS client bucketq builds trusts the system's CA store (`/etc/ssl/certs` and the
//! like, read by `rustls-native-certs`, as the mainstream Rust S3 clients do) plus Mozilla's
//! roots as a fallback for hosts without one, plus whatever `ca_file` adds: the private CA of an
//! on-prem MinIO or Ceph, or the CA of a TLS-inspecting proxy. A certificate the client cannot
//! trust is a configuration problem, reported at once with that fix, never retried.

use std::path::{Path, PathBuf};

/// Why a `ca_file` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("cannot read ca_file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no usable PEM certificate.
    #[error(
        "ca_file {path} holds no PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)"
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A block of the file is not a certificate reqwest can use.
    #[error("ca_file {path} is not a valid PEM certificate bundle: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: reqwest::Error,
    },
}

/// Every certificate of the PEM bundle at `path`, to trust beside the system store.
pub fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| TlsError::Invalid {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// `builder` trusting `extra` beside the system store and the built-in roots. Proxies come
/// from `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` and `NO_PROXY`, which reqwest reads by default.
pub fn trusting(
    mut builder: reqwest::ClientBuilder,
    extra: &[reqwest::Certificate],
) -> reqwest::ClientBuilder {
    builder = builder.tls_built_in_root_certs(true);
    for cert in extra {
        builder = builder.add_root_certificate(cert.clone());
    }
    builder
}

/// True when `error` (a reqwest failure, or anything in its chain) says the peer's certificate
/// is not trusted (unknown issuer, expired, wrong name): retrying cannot help, the operator
/// must add the CA or fix the name.
pub fn is_untrusted_certificate(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        let text = e.to_string();
        if text.contains("invalid peer certificate")
            || text.contains("UnknownIssuer")
            || text.contains("certificate verify failed")
            || text.contains("NotValidForName")
        {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("nope.pem");
        let err = read_ca_file(&missing).expect_err("missing");
        assert!(err.to_string().contains("nope.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").expect("write");
        let err = read_ca_file(&empty).expect_err("empty");
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
        assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
    }
}
