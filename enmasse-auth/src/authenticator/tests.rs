//! The `none` and `standard` authenticators, step by step.

use enmasse_types::{
    broker_config::{Authentication, BrokerConfig, BrokerUser, Credential as Wanted, SpaceConfig},
    resources::{
        address_space::AddressSpaceType, authentication_service::AuthenticationServiceType,
        messaging_user::AuthorizationRule,
    },
};

use super::*;

fn config(type_: AuthenticationServiceType) -> BrokerConfig {
    BrokerConfig {
        space: SpaceConfig::new(
            "team1",
            "app",
            AddressSpaceType::Standard,
            "standard-small",
            Authentication {
                service: "auth".into(),
                type_,
            },
        ),
        addresses: Default::default(),
        users: vec![
            BrokerUser {
                resource: "app.developer".into(),
                username: "developer".into(),
                credential: Wanted::Password {
                    keys: None,
                    namespace: "team1".into(),
                },
                authorization: vec![AuthorizationRule {
                    operations: vec![Operation::Send, Operation::Recv],
                    addresses: ["orders".into()].into(),
                }],
            },
            BrokerUser {
                resource: "app.app".into(),
                username: "system:serviceaccount:team1:default".into(),
                credential: Wanted::ServiceAccount {
                    namespace: "team1".into(),
                    name: "default".into(),
                },
                authorization: vec![],
            },
        ],
    }
}

async fn run(
    authenticator: &dyn Authenticator,
    mechanism: &str,
    messages: &[&[u8]],
) -> Result<Step, AuthError> {
    let mut exchange = authenticator.start(mechanism)?;
    let mut last = None;
    for message in messages {
        last = Some(exchange.step(message).await?);
    }
    last.ok_or_else(|| AuthError::Unavailable("no message".into()))
}

/// A reviewer that knows one token, of `team1/default`.
#[derive(Debug)]
struct OneToken;

impl TokenReviewer for OneToken {
    fn review<'a>(&'a self, token: &'a str) -> crate::tokens::Review<'a> {
        let account = (token == "good-token").then(|| "system:serviceaccount:team1:default".to_owned());
        Box::pin(async move { Ok(account) })
    }
}

fn reviewer() -> Arc<dyn TokenReviewer> {
    Arc::new(OneToken)
}

fn standard() -> Arc<dyn Authenticator> {
    for_config(
        &config(AuthenticationServiceType::Standard),
        Some(reviewer()),
        |user| (user.username == "developer").then(|| b"developer".to_vec()),
    )
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    // The exchanges here never wait on anything, so one poll completes them.
    let waker = std::task::Waker::noop();
    let mut context = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("the exchange waited"),
    }
}

#[test]
fn a_password_user_logs_in_with_plain_and_gets_its_rights() {
    let Step::Done(identity, None) =
        block_on(run(standard().as_ref(), "PLAIN", &[b"\0developer\0developer"])).unwrap()
    else {
        panic!("done")
    };
    assert_eq!(identity.username, "developer");
    assert!(identity.may(Operation::Send, "orders"));
    assert!(!identity.may(Operation::Send, "audit"));
}

#[test]
fn a_wrong_password_and_an_unknown_user_fail_alike() {
    let wrong = block_on(run(standard().as_ref(), "PLAIN", &[b"\0developer\0guess"])).unwrap_err();
    assert_eq!(wrong, AuthError::Credentials("developer".into()));
    let unknown = block_on(run(standard().as_ref(), "PLAIN", &[b"\0mallory\0developer"])).unwrap_err();
    assert_eq!(unknown, AuthError::Credentials("mallory".into()));
}

#[test]
fn a_password_user_logs_in_with_scram_and_the_password_never_crosses() {
    let authenticator = standard();
    let mut exchange = authenticator.start(scram::MECHANISM).unwrap();
    let client_nonce = "fyko+d2lbbFgONRv9qkxdawL";
    let client_first_bare = format!("n=developer,r={client_nonce}");
    let Step::Challenge(server_first) =
        block_on(exchange.step(format!("n,,{client_first_bare}").as_bytes())).unwrap()
    else {
        panic!("a challenge")
    };
    let server_first = String::from_utf8(server_first).unwrap();
    // The client side of RFC 5802, computed here from the password.
    let mut fields = server_first.split(',');
    let nonce = fields.next().unwrap().strip_prefix("r=").unwrap();
    let salt = enmasse_types::base64::decode(fields.next().unwrap().strip_prefix("s=").unwrap()).unwrap();
    let iterations: u32 = fields
        .next()
        .unwrap()
        .strip_prefix("i=")
        .unwrap()
        .parse()
        .unwrap();
    let credential = ScramCredential::derive(
        b"developer",
        &salt,
        std::num::NonZeroU32::new(iterations).unwrap(),
    );
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let mut salted = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations).unwrap(),
        &salt,
        b"developer",
        &mut salted,
    );
    let client_key = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &salted),
        b"Client Key",
    );
    let signature = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &credential.stored_key),
        auth_message.as_bytes(),
    );
    let proof: Vec<u8> = client_key
        .as_ref()
        .iter()
        .zip(signature.as_ref())
        .map(|(k, s)| k ^ s)
        .collect();
    let client_final = format!("{without_proof},p={}", enmasse_types::base64::encode(&proof));
    let Step::Done(identity, Some(server_final)) = block_on(exchange.step(client_final.as_bytes())).unwrap()
    else {
        panic!("done with a server signature")
    };
    assert_eq!(identity.username, "developer");
    assert!(String::from_utf8(server_final).unwrap().starts_with("v="));
}

#[test]
fn a_service_account_logs_in_with_its_token_as_its_user() {
    let login = b"\0@@serviceaccount@@\0good-token";
    let Step::Done(identity, None) = block_on(run(standard().as_ref(), "PLAIN", &[login])).unwrap() else {
        panic!("done")
    };
    assert_eq!(identity.username, "system:serviceaccount:team1:default");
    let err = block_on(run(
        standard().as_ref(),
        "PLAIN",
        &[b"\0@@serviceaccount@@\0bad-token"],
    ))
    .unwrap_err();
    assert!(matches!(err, AuthError::Credentials(_)), "{err:?}");
}

#[test]
fn a_token_of_an_account_no_user_names_is_refused() {
    let mut config = config(AuthenticationServiceType::Standard);
    config.users.retain(|u| u.username == "developer");
    let authenticator = for_config(&config, Some(reviewer()), |_| Some(b"developer".to_vec()));
    let err = block_on(run(
        authenticator.as_ref(),
        "PLAIN",
        &[b"\0@@serviceaccount@@\0good-token"],
    ))
    .unwrap_err();
    assert_eq!(
        err,
        AuthError::Credentials("system:serviceaccount:team1:default".into())
    );
}

#[test]
fn service_account_logins_are_unavailable_without_a_reviewer() {
    let authenticator = for_config(&config(AuthenticationServiceType::Standard), None, |_| None);
    let err = block_on(run(
        authenticator.as_ref(),
        "PLAIN",
        &[b"\0@@serviceaccount@@\0good-token"],
    ))
    .unwrap_err();
    assert!(matches!(err, AuthError::Unavailable(_)));
}

#[test]
fn standard_spaces_offer_no_anonymous_login_and_none_spaces_accept_everyone() {
    assert!(standard().anonymous().is_none());
    assert!(matches!(
        standard().start("ANONYMOUS"),
        Err(AuthError::Mechanism(_))
    ));
    let none = for_config(&config(AuthenticationServiceType::None), None, |_| None);
    let Step::Done(identity, _) = block_on(run(none.as_ref(), "ANONYMOUS", &[b""])).unwrap() else {
        panic!()
    };
    assert!(identity.may(Operation::Manage, "anything"));
}

#[test]
fn the_same_manifest_gives_the_same_keys() {
    assert_eq!(
        salt_for("team1", "app.developer"),
        salt_for("team1", "app.developer")
    );
    assert_ne!(salt_for("team1", "app.developer"), salt_for("team1", "app.other"));
}

#[test]
fn malformed_plain_responses_are_errors_not_panics() {
    for response in [&b""[..], b"alice", b"\0\0secret", b"\0\xff\xfe\0x"] {
        assert!(parse_plain(response).is_err(), "{response:?}");
    }
}
