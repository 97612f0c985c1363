//! TLS for `mqtts://` brokers: rustls with the ring provider, the broker's CA
//! from a PEM file, and optionally a client certificate and key (mTLS).
//! Nothing here logs key material; errors name the file and what is wrong.
//! Both binaries use it (feature `tls`).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
pub use rustls::ClientConfig;
use rustls::RootCertStore;

/// Files making up a client's TLS identity (the agent's or the aggregator's).
#[derive(Debug, Clone, Copy)]
pub struct TlsFiles<'a> {
    /// CA certificate(s) that signed the broker's certificate (PEM).
    pub ca_file: &'a Path,
    /// Client certificate chain (PEM), for brokers that require mTLS.
    pub cert_file: Option<&'a Path>,
    /// Client private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<&'a Path>,
}

/// Build the rustls client configuration, or say which file is wrong.
pub fn client_config(files: TlsFiles<'_>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(files.ca_file)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", files.ca_file.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(roots);
    let config = match (files.cert_file, files.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("{}: no usable private key (PEM): {e}", key.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!("{}: certificate and key do not make an identity: {e}", cert.display())
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("set both cert_file and key_file for a client certificate, or neither".into()),
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file (PEM expected)", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let none = dir.path().join("ca.pem");
        let e = client_config(TlsFiles { ca_file: &none, cert_file: None, key_file: None }).unwrap_err();
        assert!(e.contains("ca.pem") && e.contains("cannot read"), "{e}");
        std::fs::write(&none, "not a certificate\n").unwrap();
        let e = client_config(TlsFiles { ca_file: &none, cert_file: None, key_file: None }).unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
    }
}
