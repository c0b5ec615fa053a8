//! Each provider's Secrets, and what is kept from one reconcile to the next.

use super::*;

const NAMESPACE: &str = "enmasse-infra";

fn names() -> InfraNames {
    InfraNames::new("team1", "app")
}

fn cert(provider: CertProvider) -> CertSpec {
    CertSpec {
        provider,
        secret_name: None,
        tls_key: None,
        tls_cert: None,
    }
}

fn write(plan: TlsPlan) -> (Option<Secret>, Secret, Option<String>) {
    match plan {
        TlsPlan::Write(secrets) => (secrets.ca, secrets.tls, secrets.ca_pem),
        TlsPlan::OpenShift => panic!("expected Secrets to write"),
    }
}

fn selfsigned(existing: Existing<'_>, hosts: &[String]) -> (Option<Secret>, Secret, Option<String>) {
    write(plan(&names(), NAMESPACE, None, hosts, existing).unwrap())
}

#[test]
fn selfsigned_makes_a_ca_once_and_a_certificate_for_the_service_signed_by_it() {
    let hosts = hosts(&names(), NAMESPACE);
    let (ca, tls, ca_pem) = selfsigned(Existing::default(), &hosts);
    let ca = ca.unwrap();
    assert_eq!(ca.metadata.name, Some(names().ca_secret()));
    assert_eq!(text(&ca, CA_CRT), ca_pem);
    assert_eq!(tls.type_.as_deref(), Some("kubernetes.io/tls"));
    assert!(text(&tls, TLS_CRT).unwrap().ends_with(ca_pem.as_deref().unwrap()));
    assert_eq!(text(&tls, CA_CRT), ca_pem);
    assert!(hosts[0].starts_with(&names().broker()) && hosts[0].ends_with(".enmasse-infra.svc"));

    // The next reconcile finds both Secrets and keeps them as they are.
    let (again_ca, again_tls, again_pem) = selfsigned(
        Existing {
            ca: Some(&ca),
            tls: Some(&tls),
            wildcard: None,
        },
        &hosts,
    );
    assert_eq!(again_pem, ca_pem, "the CA is kept");
    assert_eq!(again_ca.unwrap().data, ca.data);
    assert_eq!(again_tls.data, tls.data, "the certificate is kept");
}

#[test]
fn selfsigned_issues_again_when_the_hosts_change_but_keeps_its_ca() {
    let (ca, tls, ca_pem) = selfsigned(Existing::default(), &["a.svc".to_owned()]);
    let (_, renewed, renewed_pem) = selfsigned(
        Existing {
            ca: ca.as_ref(),
            tls: Some(&tls),
            wildcard: None,
        },
        &["a.svc".to_owned(), "b.example.com".to_owned()],
    );
    assert_eq!(renewed_pem, ca_pem);
    assert_ne!(text(&renewed, TLS_CRT), text(&tls, TLS_CRT));
}

#[test]
fn a_ca_secret_that_cannot_be_used_is_reported_not_replaced() {
    let mut broken = selfsigned(Existing::default(), &[]).0.unwrap();
    broken
        .data
        .as_mut()
        .unwrap()
        .insert("ca.key".into(), bytes("not a key"));
    let err = plan(
        &names(),
        NAMESPACE,
        None,
        &[],
        Existing {
            ca: Some(&broken),
            ..Existing::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("CA Secret is unusable"), "{err}");
}

#[test]
fn a_cert_bundle_is_served_as_given_and_a_broken_one_is_named() {
    let made = CertificateAuthority::generate("elsewhere")
        .unwrap()
        .issue(&["messaging.example.com".into()])
        .unwrap();
    let mut bundle = cert(CertProvider::CertBundle);
    bundle.tls_cert = Some(base64::encode(made.chain_pem.as_bytes()));
    bundle.tls_key = Some(base64::encode(made.key_pem().as_bytes()));
    let (ca, tls, ca_pem) =
        write(plan(&names(), NAMESPACE, Some(&bundle), &[], Existing::default()).unwrap());
    assert_eq!((ca, ca_pem), (None, None));
    assert_eq!(text(&tls, TLS_CRT).as_deref(), Some(made.chain_pem.as_str()));

    bundle.tls_key = Some("%%%".into());
    let err = plan(&names(), NAMESPACE, Some(&bundle), &[], Existing::default()).unwrap_err();
    assert!(
        err.to_string().contains("cert.tlsKey must be base64-encoded PEM"),
        "{err}"
    );
}

#[test]
fn openshift_leaves_the_secret_to_the_service_ca() {
    let plan = plan(
        &names(),
        NAMESPACE,
        Some(&cert(CertProvider::Openshift)),
        &[],
        Existing::default(),
    );
    assert_eq!(plan, Ok(TlsPlan::OpenShift));
}

#[test]
fn wildcard_copies_the_operators_certificate_or_says_it_has_none() {
    let wildcard = cert(CertProvider::Wildcard);
    let err = plan(&names(), NAMESPACE, Some(&wildcard), &[], Existing::default()).unwrap_err();
    assert!(err.to_string().contains("--wildcard-secret"), "{err}");

    let made = CertificateAuthority::generate("wild")
        .unwrap()
        .issue(&["*.apps.example.com".into()])
        .unwrap();
    let given = Secret {
        data: Some(BTreeMap::from([
            (TLS_CRT.to_owned(), bytes(&made.chain_pem)),
            (TLS_KEY.to_owned(), bytes(made.key_pem())),
            (CA_CRT.to_owned(), bytes(made.ca_pem.as_deref().unwrap())),
        ])),
        ..Secret::default()
    };
    let existing = Existing {
        wildcard: Some(&given),
        ..Existing::default()
    };
    let (_, tls, ca_pem) = write(plan(&names(), NAMESPACE, Some(&wildcard), &[], existing).unwrap());
    assert_eq!(tls.metadata.name, Some(names().tls_secret()));
    assert_eq!(text(&tls, TLS_KEY).as_deref(), Some(made.key_pem()));
    assert_eq!(ca_pem, made.ca_pem);
}

#[test]
fn the_management_certificate_comes_from_the_spaces_ca_and_names_the_pod() {
    let host = names().management_host(NAMESPACE);
    let first = management(&names(), NAMESPACE, &host, None, None).unwrap();
    assert_eq!(first.tls.metadata.name, Some(names().management_tls_secret()));
    assert_eq!(text(&first.ca, CA_CRT).as_deref(), Some(first.ca_pem.as_str()));
    assert_eq!(annotation(&first.tls, HOSTS_ANNOTATION), Some(host.as_str()));

    // Kept while the CA and the host stay; the messaging certificate shares the CA.
    let again = management(&names(), NAMESPACE, &host, Some(&first.ca), Some(&first.tls)).unwrap();
    assert_eq!(again.tls.data, first.tls.data);
    let (_, _, messaging_ca) = selfsigned(
        Existing {
            ca: Some(&again.ca),
            tls: None,
            wildcard: None,
        },
        &hosts(&names(), NAMESPACE),
    );
    assert_eq!(messaging_ca.as_deref(), Some(first.ca_pem.as_str()));

    // A new CA issues a new certificate.
    let renewed = management(&names(), NAMESPACE, &host, None, Some(&first.tls)).unwrap();
    assert_ne!(renewed.tls.data, first.tls.data);
}
