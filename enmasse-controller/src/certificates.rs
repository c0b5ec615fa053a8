//! The certificate a space's broker serves on `amqps`, per its messaging endpoint's
//! `cert.provider`, and the Secrets that hold it.
//!
//! - `selfsigned` (the default): the operator keeps a CA per space in a Secret of its own and
//!   issues the server certificate from it; the CA is what exports give as `ca.crt`.
//! - `certBundle`: the certificate and key given in the AddressSpace.
//! - `openshift`: OpenShift's service CA writes the Secret (the Service asks for it).
//! - `wildcard`: a certificate the operator was given (`--wildcard-secret`), copied.
//!
//! Existing Secrets are inputs: a CA is generated once and then kept, and a server certificate is
//! issued again only when its CA or its hosts change.

use std::collections::BTreeMap;

use enmasse_auth::tls::{CA_CRT, CertificateAuthority, ServerIdentity, TLS_CRT, TLS_KEY};
use enmasse_types::{
    base64,
    error::one_line,
    resources::address_space::{CertProvider, CertSpec},
};
use k8s_openapi::{ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta};

use crate::names::InfraNames;

/// The CA's private key in its Secret.
const CA_KEY: &str = "ca.key";
/// The annotation recording the hosts a server certificate was issued for.
const HOSTS_ANNOTATION: &str = "enmasse.io/certificate-hosts";

/// What the Secrets of a space's certificate should be.
#[derive(Clone, Debug, PartialEq)]
pub enum TlsPlan {
    /// Write these Secrets (unchanged ones may be written again: the write is idempotent).
    Write(Box<TlsSecrets>),
    /// OpenShift's service CA writes the TLS Secret.
    OpenShift,
}

/// The Secrets the operator writes for a space's certificate.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsSecrets {
    /// The space's own CA (`selfsigned`).
    pub ca: Option<Secret>,
    /// The `kubernetes.io/tls` Secret the broker mounts.
    pub tls: Secret,
    /// The CA clients trust (for the exports' `ca.crt` and the status' `caCert`).
    pub ca_pem: Option<String>,
}

/// Why no certificate can be served; the space's status says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to provide the certificate of the messaging endpoint: {0}")]
pub struct CertificateError(pub String);

/// What the operator has: the Secrets as they are now.
#[derive(Clone, Copy, Debug, Default)]
pub struct Existing<'a> {
    /// The space's CA Secret.
    pub ca: Option<&'a Secret>,
    /// The space's TLS Secret.
    pub tls: Option<&'a Secret>,
    /// The operator's wildcard certificate, if it has one.
    pub wildcard: Option<&'a Secret>,
}

/// The Secrets that serve `cert` (the messaging endpoint's; `None` is `selfsigned`) for `hosts`.
pub fn plan(
    names: &InfraNames,
    namespace: &str,
    cert: Option<&CertSpec>,
    hosts: &[String],
    existing: Existing<'_>,
) -> Result<TlsPlan, CertificateError> {
    match cert.map_or(CertProvider::Selfsigned, |c| c.provider) {
        CertProvider::Selfsigned => {
            let ca = space_ca(names, existing.ca)?;
            let tls = issued(names, namespace, &ca, hosts, existing.tls, names.tls_secret())?;
            Ok(TlsPlan::Write(Box::new(TlsSecrets {
                ca: Some(ca_secret(names, namespace, &ca)),
                tls,
                ca_pem: Some(ca.cert_pem),
            })))
        }
        CertProvider::CertBundle => {
            let decode = |field: &str, value: Option<&String>| {
                value
                    .and_then(|v| base64::decode(v))
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| CertificateError(format!("cert.{field} must be base64-encoded PEM")))
            };
            let cert = cert.ok_or_else(|| CertificateError("certBundle without a cert".into()))?;
            let chain = decode("tlsCert", cert.tls_cert.as_ref())?;
            let key = decode("tlsKey", cert.tls_key.as_ref())?;
            let identity =
                ServerIdentity::from_pem(chain, key).map_err(|e| fail("the certBundle is unusable", &e))?;
            Ok(TlsPlan::Write(Box::new(TlsSecrets {
                ca: None,
                tls: tls_secret(names, namespace, names.tls_secret(), &identity, None),
                ca_pem: None,
            })))
        }
        CertProvider::Openshift => Ok(TlsPlan::OpenShift),
        CertProvider::Wildcard => {
            let wildcard = existing.wildcard.ok_or_else(|| {
                CertificateError("the operator has no wildcard certificate (--wildcard-secret)".into())
            })?;
            let (Some(chain), Some(key)) = (text(wildcard, TLS_CRT), text(wildcard, TLS_KEY)) else {
                return Err(CertificateError(
                    "the wildcard Secret lacks tls.crt or tls.key".into(),
                ));
            };
            let mut identity = ServerIdentity::from_pem(chain, key)
                .map_err(|e| fail("the wildcard certificate is unusable", &e))?;
            identity.ca_pem = text(wildcard, CA_CRT);
            let ca_pem = identity.ca_pem.clone();
            Ok(TlsPlan::Write(Box::new(TlsSecrets {
                ca: None,
                tls: tls_secret(names, namespace, names.tls_secret(), &identity, None),
                ca_pem,
            })))
        }
    }
}

/// The Secrets of the management API's certificate, issued from the space's own CA whatever the
/// messaging endpoint's provider: the operator verifies the broker with that CA alone.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagementSecrets {
    /// The space's CA.
    pub ca: Secret,
    /// The `kubernetes.io/tls` Secret the broker's management API serves.
    pub tls: Secret,
    /// The CA, to verify the broker with.
    pub ca_pem: String,
}

/// The management API's certificate for `host`, from the space's CA (made now if `existing_ca`
/// is none); an existing one is kept while its CA and host stay the same.
pub fn management(
    names: &InfraNames,
    namespace: &str,
    host: &str,
    existing_ca: Option<&Secret>,
    existing_tls: Option<&Secret>,
) -> Result<ManagementSecrets, CertificateError> {
    let ca = space_ca(names, existing_ca)?;
    let hosts = [host.to_owned()];
    let tls = issued(
        names,
        namespace,
        &ca,
        &hosts,
        existing_tls,
        names.management_tls_secret(),
    )?;
    Ok(ManagementSecrets {
        ca: ca_secret(names, namespace, &ca),
        tls,
        ca_pem: ca.cert_pem,
    })
}

/// The CA certificate (PEM) of a space's CA Secret.
pub fn ca_pem(secret: &Secret) -> Option<String> {
    text(secret, CA_CRT)
}

/// The space's CA: the one its Secret holds, or a new one.
fn space_ca(names: &InfraNames, existing: Option<&Secret>) -> Result<CertificateAuthority, CertificateError> {
    match existing.and_then(|s| Some((text(s, CA_CRT)?, text(s, CA_KEY)?))) {
        Some((cert_pem, key_pem)) => CertificateAuthority::from_pem(&names.id, cert_pem, key_pem)
            .map_err(|e| fail("the space's CA Secret is unusable", &e)),
        None => CertificateAuthority::generate(&names.id).map_err(|e| fail("failed to generate a CA", &e)),
    }
}

fn ca_secret(names: &InfraNames, namespace: &str, ca: &CertificateAuthority) -> Secret {
    Secret {
        metadata: metadata(names, namespace, names.ca_secret()),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            (CA_CRT.to_owned(), bytes(&ca.cert_pem)),
            (CA_KEY.to_owned(), bytes(ca.key_pem())),
        ])),
        ..Secret::default()
    }
}

/// The `kubernetes.io/tls` Secret `name` with a certificate from `ca` for `hosts`: `existing` as
/// it is while it was issued by `ca` for the same hosts, a new one otherwise.
fn issued(
    names: &InfraNames,
    namespace: &str,
    ca: &CertificateAuthority,
    hosts: &[String],
    existing: Option<&Secret>,
    name: String,
) -> Result<Secret, CertificateError> {
    let hosts_note = hosts.join(",");
    let current = existing.filter(|secret| {
        text(secret, CA_CRT).as_deref() == Some(ca.cert_pem.as_str())
            && annotation(secret, HOSTS_ANNOTATION) == Some(hosts_note.as_str())
    });
    if let Some(secret) = current {
        // Kept as it is, with only what the operator writes (not the server's metadata).
        return Ok(Secret {
            metadata: ObjectMeta {
                annotations: secret.metadata.annotations.clone(),
                ..metadata(names, namespace, name)
            },
            ..secret.clone()
        });
    }
    let identity = ca
        .issue(hosts)
        .map_err(|e| fail("failed to issue a certificate", &e))?;
    Ok(tls_secret(
        names,
        namespace,
        name,
        &identity,
        Some(BTreeMap::from([(HOSTS_ANNOTATION.to_owned(), hosts_note)])),
    ))
}

fn tls_secret(
    names: &InfraNames,
    namespace: &str,
    name: String,
    identity: &ServerIdentity,
    annotations: Option<BTreeMap<String, String>>,
) -> Secret {
    let mut data = BTreeMap::from([
        (TLS_CRT.to_owned(), bytes(&identity.chain_pem)),
        (TLS_KEY.to_owned(), bytes(identity.key_pem())),
    ]);
    if let Some(ca) = &identity.ca_pem {
        data.insert(CA_CRT.to_owned(), bytes(ca));
    }
    Secret {
        metadata: ObjectMeta {
            annotations,
            ..metadata(names, namespace, name)
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

fn fail(what: &str, err: &dyn std::error::Error) -> CertificateError {
    CertificateError(format!("{what}: {}", one_line(err)))
}

/// The hosts a space's server certificate names: its Service in every form a client in the
/// cluster may use.
pub fn hosts(names: &InfraNames, namespace: &str) -> Vec<String> {
    let service = names.broker();
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service,
    ]
}

fn metadata(names: &InfraNames, namespace: &str, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        labels: Some(names.labels()),
        ..ObjectMeta::default()
    }
}

fn bytes(text: &str) -> ByteString {
    ByteString(text.as_bytes().to_vec())
}

/// A key of a Secret as text.
fn text(secret: &Secret, key: &str) -> Option<String> {
    let value = secret.data.as_ref()?.get(key)?;
    String::from_utf8(value.0.clone()).ok()
}

fn annotation<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

#[cfg(test)]
mod tests;
