//! A TLS client configuration trusting the web's roots plus an operator's own CA file: what
//! every client postroom opens (IMAP, the LDAP directory) trusts. One place, so the rules of a
//! `ca_file` (readable, PEM, at least one certificate) are the same for every key.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;

/// The client configuration; an error names `key` (`imap.ca_file`, `directory.ca_file`).
pub fn config(ca_file: Option<&Path>, key: &str) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let bad = |e: &dyn std::fmt::Display| format!("{key} {}: {e}", path.display());
        let pem = std::fs::read(path).map_err(|e| bad(&e))?;
        let mut added = 0usize;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad(&"no PEM certificate in it"));
        }
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}
