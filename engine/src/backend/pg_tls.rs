//! TLS for PostgreSQL connections, with libpq's `sslmode` values
//! (rustls, so no system TLS library is needed).
//!
//! | sslmode | encryption | certificate check |
//! |---|---|---|
//! | `disable` | no | — |
//! | `prefer` (default) | if the server offers it | none |
//! | `require` | yes | none |
//! | `verify-ca`, `verify-full` | yes | chain to `sslrootcert` (or the system roots) and host name |
//!
//! `verify-ca` is treated as `verify-full`: rustls always checks the name.

use crate::error::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;

/// How a connection uses TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Never.
    Disable,
    /// When the server offers it, without checking its certificate.
    Prefer,
    /// Always, without checking the certificate.
    Require,
    /// Always, checking the certificate chain and the host name.
    VerifyFull,
}

/// TLS settings taken out of a connection string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    /// The mode.
    pub mode: SslMode,
    /// CA certificates (PEM) to trust instead of the system's.
    pub root_cert: Option<PathBuf>,
}

fn parse_mode(v: &str) -> Result<SslMode> {
    Ok(match v {
        "disable" | "allow" => SslMode::Disable,
        "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" | "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(Error::Database(format!(
                "unknown sslmode {other:?} (use disable, prefer, require, verify-ca or verify-full)"
            )))
        }
    })
}

/// Take `sslmode` and `sslrootcert` out of a URL's query or a key-value
/// string (the driver understands only part of libpq's modes); give the
/// rest of the string and the TLS options.
pub fn split(location: &str) -> Result<(String, TlsOptions)> {
    let mut opts = TlsOptions {
        mode: SslMode::Prefer,
        root_cert: None,
    };
    let mut take = |k: &str, v: &str| -> Result<bool> {
        match k {
            "sslmode" => {
                opts.mode = parse_mode(v)?;
                Ok(true)
            }
            "sslrootcert" => {
                opts.root_cert = Some(PathBuf::from(v));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if location.contains("://") {
        match location.split_once('?') {
            None => location.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(k, v)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for word in location.split_whitespace() {
            let (k, v) = word.split_once('=').unwrap_or((word, ""));
            if !take(k, v)? {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    Ok((rest, opts))
}

/// Accepts any server certificate (`prefer` and `require`, as libpq does),
/// while still checking the handshake signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The rustls connector for these options (None for `disable`).
pub fn connector(opts: &TlsOptions) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_err = |e: rustls::Error| Error::Database(format!("TLS setup: {e}"));
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?;
    let config = match opts.mode {
        SslMode::Disable => return Ok(None),
        SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        SslMode::VerifyFull => {
            let mut roots = rustls::RootCertStore::empty();
            match &opts.root_cert {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                        Error::Database(format!("sslrootcert {}: {e}", path.display()))
                    })?;
                    for cert in certs {
                        let cert = cert.map_err(|e| {
                            Error::Database(format!("sslrootcert {}: {e}", path.display()))
                        })?;
                        roots.add(cert).map_err(tls_err)?;
                    }
                }
                None => {
                    for cert in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(cert);
                    }
                }
            }
            if roots.is_empty() {
                return Err(Error::Database(
                    "sslmode=verify-full: no trusted CA certificates (set sslrootcert)".to_string(),
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_tls_options_out_of_urls_and_key_values() {
        let (rest, o) =
            split("postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x")
                .unwrap();
        assert_eq!(rest, "postgres://u@h/db?application_name=x");
        assert_eq!(o.mode, SslMode::VerifyFull);
        assert_eq!(
            o.root_cert.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        let (rest, o) = split("host=h dbname=d sslmode=require").unwrap();
        assert_eq!(rest, "host=h dbname=d");
        assert_eq!(o.mode, SslMode::Require);
        let (rest, o) = split("postgres://u@h/db").unwrap();
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(o.mode, SslMode::Prefer);
        assert!(split("postgres://u@h/db?sslmode=sometimes").is_err());
    }
}
