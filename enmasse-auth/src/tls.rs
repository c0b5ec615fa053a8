//! TLS for the `amqps` endpoint: the server's certificate per the endpoint's cert provider, and the
//! rustls configuration that serves it.
//!
//! `selfsigned` keeps a CA per address space under a directory (the broker's data dir), created on
//! first use and kept across restarts, so clients that trust its `ca.crt` keep trusting the broker.
//! The server certificate it signs names the hosts clients connect to. `certBundle` takes the PEM
//! certificate chain and key from the manifest. A certificate can also come from files laid out as
//! a mounted `kubernetes.io/tls` Secret, which is how a broker in a cluster gets whatever the
//! operator or a certificate manager issued.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// The certificate chain's file in a `kubernetes.io/tls` Secret.
pub const TLS_CRT: &str = "tls.crt";
/// The private key's file in a `kubernetes.io/tls` Secret.
pub const TLS_KEY: &str = "tls.key";
/// The CA certificate's file, where a Secret carries one.
pub const CA_CRT: &str = "ca.crt";

/// Why the TLS identity could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file of the certificate or of the CA could not be read or written.
    #[error("failed to read or write {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key could not be made.
    #[error("failed to generate a certificate")]
    Generate(#[source] rcgen::Error),
    /// A PEM certificate or key could not be read.
    #[error("invalid {what}: {reason}")]
    Pem {
        /// What was being read.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificate and key.
    #[error("failed to configure TLS")]
    Config(#[source] rustls::Error),
}

/// A server's certificate chain and key, and the CA clients should trust (when known).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// The certificate chain, PEM.
    pub chain_pem: String,
    key_pem: String,
    /// The CA certificate clients trust, PEM (the export's `ca.crt`).
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("ca_pem", &self.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// A certificate for `hosts` signed by the space's CA, which lives in `dir` (created there on
    /// first use and reused afterwards).
    pub fn self_signed(dir: &Path, space: &str, hosts: &[String]) -> Result<Self, TlsError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TlsError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key_path = dir.join("ca.key");
        let cert_path = dir.join("ca.crt");
        let ca = match (
            std::fs::read_to_string(&key_path),
            std::fs::read_to_string(&cert_path),
        ) {
            (Ok(key), Ok(cert)) => CertificateAuthority::from_pem(space, cert, key)?,
            _ => {
                let ca = CertificateAuthority::generate(space)?;
                write_private(&key_path, ca.key_pem()).map_err(io(&key_path))?;
                std::fs::write(&cert_path, &ca.cert_pem).map_err(io(&cert_path))?;
                ca
            }
        };
        ca.issue(hosts)
    }

    /// A certificate chain and key given as PEM (the `certBundle` provider).
    pub fn from_pem(chain_pem: String, key_pem: String) -> Result<Self, TlsError> {
        let identity = Self {
            chain_pem,
            key_pem,
            ca_pem: None,
        };
        identity.server_config()?;
        Ok(identity)
    }

    /// The private key, PEM: for writing the Secret a broker mounts, never for logs.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The certificate in `dir`, laid out as a mounted `kubernetes.io/tls` Secret: `tls.crt` (the
    /// chain), `tls.key`, and optionally `ca.crt` (the CA clients trust, as cert-manager writes it).
    pub fn from_files(dir: &Path) -> Result<Self, TlsError> {
        SecretFiles::read(dir).identity()
    }

    /// The rustls configuration serving this identity (TLS 1.2 and 1.3, no client certificates).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(self.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Pem {
                what: "certificate chain",
                reason: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::Pem {
                what: "certificate chain",
                reason: "no certificate found".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| TlsError::Pem {
            what: "private key",
            reason: e.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(TlsError::Config)?;
        Ok(Arc::new(config))
    }
}

/// The files of a mounted `kubernetes.io/tls` Secret as read at one moment: what a follower
/// compares to notice a renewal without parsing anything, and what the identity is then made of.
/// A file that could not be read is kept as the reason.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretFiles {
    dir: PathBuf,
    chain: Result<String, std::io::ErrorKind>,
    key: Result<String, std::io::ErrorKind>,
    ca: Result<String, std::io::ErrorKind>,
}

impl std::fmt::Debug for SecretFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretFiles")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl SecretFiles {
    /// Reads `tls.crt`, `tls.key` and `ca.crt` in `dir`.
    pub fn read(dir: &Path) -> Self {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).map_err(|e| e.kind());
        Self {
            dir: dir.to_path_buf(),
            chain: read(TLS_CRT),
            key: read(TLS_KEY),
            ca: read(CA_CRT),
        }
    }

    /// The identity these files hold (`ca.crt` may be missing), checked to be servable.
    pub fn identity(&self) -> Result<ServerIdentity, TlsError> {
        let failed = |name: &str, kind: std::io::ErrorKind| TlsError::Io {
            path: self.dir.join(name),
            source: kind.into(),
        };
        let identity = ServerIdentity {
            chain_pem: self.chain.clone().map_err(|kind| failed(TLS_CRT, kind))?,
            key_pem: self.key.clone().map_err(|kind| failed(TLS_KEY, kind))?,
            ca_pem: match &self.ca {
                Ok(ca) => Some(ca.clone()),
                Err(std::io::ErrorKind::NotFound) => None,
                Err(kind) => return Err(failed(CA_CRT, *kind)),
            },
        };
        identity.server_config()?;
        Ok(identity)
    }
}

/// A certificate authority of one address space, kept as PEM by whoever owns it (a directory in
/// standalone mode, a Secret in a cluster). It signs the space's server certificates.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateAuthority {
    space: String,
    /// The CA certificate, PEM: what clients trust (the export's `ca.crt`).
    pub cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("space", &self.space)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A new CA for `space`.
    pub fn generate(space: &str) -> Result<Self, TlsError> {
        let key = KeyPair::generate().map_err(TlsError::Generate)?;
        let cert = ca_params(space).self_signed(&key).map_err(TlsError::Generate)?;
        Ok(Self {
            space: space.to_owned(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The CA of `space` kept as `cert_pem` and `key_pem`.
    pub fn from_pem(space: &str, cert_pem: String, key_pem: String) -> Result<Self, TlsError> {
        KeyPair::from_pem(&key_pem).map_err(|e| TlsError::Pem {
            what: "CA key",
            reason: e.to_string(),
        })?;
        if CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .next()
            .is_none()
        {
            return Err(TlsError::Pem {
                what: "CA certificate",
                reason: "no certificate found".into(),
            });
        }
        Ok(Self {
            space: space.to_owned(),
            cert_pem,
            key_pem,
        })
    }

    /// The CA's private key, PEM: for keeping it (a private file, a Secret), never for logs.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A new server certificate for `hosts` (the first is its common name), signed by this CA.
    pub fn issue(&self, hosts: &[String]) -> Result<ServerIdentity, TlsError> {
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(TlsError::Generate)?;
        // The CA is rebuilt from its name and key: certificates it signs verify against the kept
        // CA certificate, which has the same subject and key.
        let issuer = Issuer::new(ca_params(&self.space), ca_key);
        let mut params = CertificateParams::new(hosts.to_vec()).map_err(TlsError::Generate)?;
        params.distinguished_name.push(
            DnType::CommonName,
            hosts.first().cloned().unwrap_or_else(|| "localhost".into()),
        );
        let key = KeyPair::generate().map_err(TlsError::Generate)?;
        let cert = params.signed_by(&key, &issuer).map_err(TlsError::Generate)?;
        Ok(ServerIdentity {
            chain_pem: format!("{}{}", cert.pem(), self.cert_pem),
            key_pem: key.serialize_pem(),
            ca_pem: Some(self.cert_pem.clone()),
        })
    }
}

fn ca_params(space: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "EnMasse");
    name.push(DnType::CommonName, format!("{space} CA"));
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("enmasse-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_space_ca_is_created_once_and_kept() {
        let dir = temp("kept");
        let first = ServerIdentity::self_signed(&dir, "app", &["localhost".into()]).unwrap();
        let second =
            ServerIdentity::self_signed(&dir, "app", &["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert_eq!(
            first.ca_pem, second.ca_pem,
            "a restart keeps the CA clients trust"
        );
        assert_ne!(
            first.chain_pem, second.chain_pem,
            "the server certificate follows the hosts"
        );
        second.server_config().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the CA key is private");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_ca_kept_in_a_secret_issues_certificates_that_chain_to_it() {
        let ca = CertificateAuthority::generate("app").unwrap();
        let kept =
            CertificateAuthority::from_pem("app", ca.cert_pem.clone(), ca.key_pem().to_owned()).unwrap();
        assert_eq!(kept, ca);
        let identity = kept.issue(&["broker.enmasse-infra.svc".into()]).unwrap();
        assert_eq!(identity.ca_pem.as_deref(), Some(ca.cert_pem.as_str()));
        assert!(
            identity.chain_pem.ends_with(&ca.cert_pem),
            "the chain ends with the CA"
        );
        identity.server_config().unwrap();
        assert!(!format!("{ca:?}").contains("PRIVATE"), "Debug shows no key");
        let err = CertificateAuthority::from_pem("app", ca.cert_pem.clone(), "not a key".into()).unwrap_err();
        assert!(err.to_string().starts_with("invalid CA key"), "{err}");
    }

    #[test]
    fn a_bundle_that_is_not_pem_is_refused_with_the_reason() {
        let err = ServerIdentity::from_pem("not a certificate".into(), "not a key".into()).unwrap_err();
        assert!(err.to_string().starts_with("invalid certificate chain"), "{err}");
    }

    #[test]
    fn a_bundle_made_elsewhere_is_served() {
        let dir = temp("bundle");
        let made = ServerIdentity::self_signed(&dir, "app", &["localhost".into()]).unwrap();
        let bundle = ServerIdentity::from_pem(made.chain_pem.clone(), made.key_pem.clone()).unwrap();
        assert!(bundle.ca_pem.is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_mounted_tls_secret_is_served_with_its_ca_when_it_has_one() {
        let dir = temp("files");
        let made = ServerIdentity::self_signed(&dir.join("ca"), "app", &["localhost".into()]).unwrap();
        let secret = dir.join("secret");
        std::fs::create_dir_all(&secret).unwrap();
        std::fs::write(secret.join(TLS_CRT), &made.chain_pem).unwrap();
        std::fs::write(secret.join(TLS_KEY), &made.key_pem).unwrap();
        let without_ca = ServerIdentity::from_files(&secret).unwrap();
        assert_eq!(without_ca.ca_pem, None);
        std::fs::write(secret.join(CA_CRT), made.ca_pem.as_deref().unwrap()).unwrap();
        assert_eq!(ServerIdentity::from_files(&secret).unwrap(), made);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_tls_secret_without_its_key_is_refused_naming_the_file() {
        let dir = temp("nokey");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(TLS_CRT), "whatever").unwrap();
        let err = ServerIdentity::from_files(&dir).unwrap_err();
        assert!(err.to_string().contains("tls.key"), "{err}");
        std::fs::write(dir.join(TLS_KEY), "not a key").unwrap();
        let err = ServerIdentity::from_files(&dir).unwrap_err();
        assert!(err.to_string().starts_with("invalid certificate chain"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
