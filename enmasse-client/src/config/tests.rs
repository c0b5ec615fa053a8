use super::*;

fn environment(vars: &[(&str, &str)], service_account_dir: Option<&Path>) -> Environment {
    Environment {
        vars: vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        service_account_dir: service_account_dir.map(Path::to_path_buf),
    }
}

/// A service-account directory as the kubelet mounts it.
fn service_account(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enmasse-client-sa-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "eyJhbGciOi.token").unwrap();
    std::fs::write(dir.join("ca.crt"), "CLUSTER CA").unwrap();
    dir
}

#[test]
fn in_a_pod_the_seeds_two_variables_are_enough() {
    let dir = service_account("seed");
    let config = MessagingConfig::from_environment(&environment(
        &[
            ("MESSAGING_HOST", "messaging-app.enmasse-infra.svc"),
            ("MESSAGING_PORT", "5671"),
        ],
        Some(&dir),
    ))
    .unwrap();
    assert_eq!(config.host, "messaging-app.enmasse-infra.svc");
    assert_eq!(config.port, 5671);
    assert_eq!(config.tls_ca.as_deref(), Some(&b"CLUSTER CA"[..]));
    assert_eq!(
        config.credentials,
        Credentials::ServiceAccount {
            token_file: dir.join("token")
        }
    );
}

#[test]
fn openshifts_service_ca_is_trusted_too_where_it_is_mounted() {
    let dir = service_account("openshift");
    std::fs::write(dir.join("service-ca.crt"), "SERVICE CA").unwrap();
    let config = MessagingConfig::from_environment(&environment(
        &[("MESSAGING_HOST", "h"), ("MESSAGING_PORT", "5671")],
        Some(&dir),
    ))
    .unwrap();
    assert_eq!(config.tls_ca.as_deref(), Some(&b"CLUSTER CA\nSERVICE CA"[..]));
}

#[test]
fn a_missing_or_wrong_variable_is_named() {
    let message = |vars: &[(&str, &str)]| {
        MessagingConfig::from_environment(&environment(vars, None))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        message(&[("MESSAGING_PORT", "5671")]),
        "the environment variable MESSAGING_HOST is not set"
    );
    assert_eq!(
        message(&[("MESSAGING_HOST", "h")]),
        "the environment variable MESSAGING_PORT is not set"
    );
    assert_eq!(
        message(&[("MESSAGING_HOST", "h"), ("MESSAGING_PORT", "amqps")]),
        "the environment variable MESSAGING_PORT is \"amqps\": a port number"
    );
    assert_eq!(
        message(&[("MESSAGING_HOST", "h"), ("MESSAGING_PORT", "5671")]),
        "the environment variable MESSAGING_CA_FILE is not set",
        "outside a pod, TLS needs a CA to trust"
    );
    assert_eq!(
        message(&[
            ("MESSAGING_HOST", "h"),
            ("MESSAGING_PORT", "5672"),
            ("MESSAGING_TLS", "false"),
            ("MESSAGING_USERNAME", "developer"),
        ]),
        "the environment variable MESSAGING_PASSWORD is not set"
    );
    assert_eq!(
        message(&[
            ("MESSAGING_HOST", "h"),
            ("MESSAGING_PORT", "5672"),
            ("MESSAGING_TLS", "no")
        ]),
        "the environment variable MESSAGING_TLS is \"no\": true or false"
    );
}

#[test]
fn a_password_user_outside_a_pod_logs_in_with_scram_in_plain_amqp_if_asked() {
    let config = MessagingConfig::from_environment(&environment(
        &[
            ("MESSAGING_HOST", "127.0.0.1"),
            ("MESSAGING_PORT", "5672"),
            ("MESSAGING_TLS", "false"),
            ("MESSAGING_USERNAME", "developer"),
            ("MESSAGING_PASSWORD", "secret"),
        ],
        None,
    ))
    .unwrap();
    assert_eq!(config.tls_ca, None);
    assert_eq!(
        config.credentials,
        Credentials::Scram {
            username: "developer".into(),
            password: "secret".into()
        }
    );
    assert!(
        !format!("{config:?}").contains("secret"),
        "a password never reaches a log"
    );
}

#[test]
fn an_export_gives_the_tls_port_and_its_ca_or_else_the_plain_port() {
    let data = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let tls = MessagingConfig::from_export(&data(&[
        ("service.host", "localhost"),
        ("service.port.amqp", "5672"),
        ("service.port.amqps", "5671"),
        ("ca.crt", "CA"),
    ]))
    .unwrap();
    assert_eq!((tls.port, tls.tls_ca.as_deref()), (5671, Some(&b"CA"[..])));
    let plain = MessagingConfig::from_export(&data(&[
        ("service.host", "localhost"),
        ("service.port.amqp", "5672"),
    ]))
    .unwrap();
    assert_eq!((plain.port, plain.tls_ca), (5672, None));
    let err = MessagingConfig::from_export(&data(&[("service.port.amqp", "5672")])).unwrap_err();
    assert_eq!(err.to_string(), "the export has no service.host");
    let err = MessagingConfig::from_export(&data(&[("service.host", "h"), ("service.port.amqps", "5671")]))
        .unwrap_err();
    assert_eq!(err.to_string(), "the export has no ca.crt");
}

#[test]
fn an_export_file_may_be_a_configmap_or_a_secret() {
    let dir = std::env::temp_dir().join(format!("enmasse-client-exports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let configmap = dir.join("configmap.yaml");
    std::fs::write(
        &configmap,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: messaging-config\ndata:\n  service.host: localhost\n  service.port.amqps: '5671'\n  ca.crt: |\n    PEM\n",
    )
    .unwrap();
    let config = MessagingConfig::from_export_file(&configmap).unwrap();
    assert_eq!((config.host.as_str(), config.port), ("localhost", 5671));
    assert_eq!(config.tls_ca.as_deref(), Some(&b"PEM\n"[..]));

    let secret = dir.join("secret.yaml");
    std::fs::write(
        &secret,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: messaging-config\ndata:\n  service.host: bG9jYWxob3N0\n  service.port.amqp: NTY3Mg==\n",
    )
    .unwrap();
    let config = MessagingConfig::from_export_file(&secret).unwrap();
    assert_eq!(
        (config.host.as_str(), config.port, config.tls_ca),
        ("localhost", 5672, None)
    );

    let deployment = dir.join("deployment.yaml");
    std::fs::write(&deployment, "apiVersion: apps/v1\nkind: Deployment\n").unwrap();
    let err = MessagingConfig::from_export_file(&deployment).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("is not an export (a ConfigMap or Secret): its kind is Deployment"),
        "{err}"
    );
}

#[test]
fn a_url_gives_host_port_and_a_scram_user_and_never_shows_the_password() {
    let config = MessagingConfig::from_url("amqp://developer:p%40ss@127.0.0.1:5673").unwrap();
    assert_eq!(
        (config.host.as_str(), config.port, config.tls_ca),
        ("127.0.0.1", 5673, None)
    );
    assert_eq!(
        config.credentials,
        Credentials::Scram {
            username: "developer".into(),
            password: "p@ss".into()
        }
    );
    assert_eq!(MessagingConfig::from_url("amqps://localhost").unwrap().port, 5671);
    let err = MessagingConfig::from_url("http://developer:secret@localhost").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the URL \"http://developer:***@localhost/\" cannot be used: the scheme must be amqp or amqps"
    );
}
