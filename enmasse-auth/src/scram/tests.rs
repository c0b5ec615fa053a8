//! SCRAM-SHA-256 against the example exchange of RFC 7677, section 3, and its failure modes.

use proptest::prelude::*;

use super::*;

const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn pencil() -> ScramCredential {
    ScramCredential::derive(b"pencil", &base64::decode(SALT).unwrap(), DEFAULT_ITERATIONS)
}

#[test]
fn the_rfc_7677_example_exchange_succeeds() {
    let mut server = ScramServer::new(SERVER_NONCE.to_owned());
    let first = server
        .client_first(CLIENT_FIRST.as_bytes(), |name| (name == "user").then(pencil))
        .unwrap();
    assert_eq!(String::from_utf8(first).unwrap(), SERVER_FIRST);
    let (username, last) = server.client_final(CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(username, "user");
    assert_eq!(String::from_utf8(last).unwrap(), SERVER_FINAL);
}

#[test]
fn a_wrong_password_fails_at_the_proof() {
    let wrong = ScramCredential::derive(b"pen", &base64::decode(SALT).unwrap(), DEFAULT_ITERATIONS);
    let mut server = ScramServer::new(SERVER_NONCE.to_owned());
    server
        .client_first(CLIENT_FIRST.as_bytes(), |_| Some(wrong))
        .unwrap();
    assert_eq!(
        server.client_final(CLIENT_FINAL.as_bytes()),
        Err(ScramError::Credentials("user".into()))
    );
}

#[test]
fn an_unknown_user_gets_a_plausible_answer_and_fails_at_the_end() {
    let mut server = ScramServer::new(SERVER_NONCE.to_owned());
    let first = String::from_utf8(server.client_first(CLIENT_FIRST.as_bytes(), |_| None).unwrap()).unwrap();
    assert!(
        first.starts_with("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s="),
        "{first}"
    );
    assert!(first.ends_with(",i=4096"));
    assert_eq!(
        server.client_final(CLIENT_FINAL.as_bytes()),
        Err(ScramError::Credentials("user".into()))
    );
}

#[test]
fn a_changed_nonce_or_binding_is_a_mismatch() {
    for tampered in [
        CLIENT_FINAL.replace("r=rOpr", "r=XOpr"),
        CLIENT_FINAL.replace("c=biws", "c=eSws"),
    ] {
        let mut server = ScramServer::new(SERVER_NONCE.to_owned());
        server
            .client_first(CLIENT_FIRST.as_bytes(), |_| Some(pencil()))
            .unwrap();
        assert_eq!(
            server.client_final(tampered.as_bytes()),
            Err(ScramError::Mismatch)
        );
    }
}

#[test]
fn channel_binding_and_out_of_turn_messages_are_refused() {
    let mut server = ScramServer::new(SERVER_NONCE.to_owned());
    assert_eq!(
        server.client_first(b"p=tls-unique,,n=user,r=abc", |_| Some(pencil())),
        Err(ScramError::ChannelBinding)
    );
    let mut server = ScramServer::new(SERVER_NONCE.to_owned());
    assert_eq!(
        server.client_final(CLIENT_FINAL.as_bytes()),
        Err(ScramError::OutOfTurn)
    );
}

#[test]
fn escaped_usernames_are_decoded() {
    assert_eq!(decode_name("a=2Cb=3Dc").unwrap(), "a,b=c");
    assert!(decode_name("a=2").is_err());
    assert!(decode_name("").is_err());
}

#[test]
fn plain_passwords_are_checked_against_the_keys() {
    let credential = pencil();
    assert!(credential.verify_password(b"pencil"));
    assert!(!credential.verify_password(b"pencil "));
    assert!(
        !format!("{credential:?}").contains("stored_key"),
        "Debug shows no key"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever a peer sends, the exchange answers with an error or a message; it never panics.
    #[test]
    fn garbage_never_panics(first in prop::collection::vec(any::<u8>(), 0..64), last in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut server = ScramServer::new("nonce".into());
        let _ = server.client_first(&first, |_| Some(pencil()));
        let _ = server.client_final(&last);
    }

    #[test]
    fn garbage_that_looks_like_scram_never_panics(user in "[a-z=,]{0,8}", rest in "[ -~]{0,40}") {
        let mut server = ScramServer::new("nonce".into());
        let _ = server.client_first(format!("n,,n={user},r={rest}").as_bytes(), |_| Some(pencil()));
        let _ = server.client_final(format!("c=biws,r={rest},p={rest}").as_bytes());
    }
}

#[test]
fn keys_carried_in_a_broker_config_give_back_the_same_credential() {
    let credential = ScramCredential::derive(b"pencil", b"salt of a user", NonZeroU32::new(4096).unwrap());
    let keys = credential.to_keys();
    assert_eq!(ScramCredential::from_keys(&keys), Ok(credential.clone()));
    assert!(
        ScramCredential::from_keys(&keys)
            .unwrap()
            .verify_password(b"pencil")
    );
    assert!(
        !format!("{keys:?}").contains(&keys.stored_key),
        "Debug shows no key"
    );
}

#[test]
fn unusable_keys_are_refused_with_what_is_wrong() {
    let keys = ScramCredential::derive(b"pencil", b"salt", NonZeroU32::new(4096).unwrap()).to_keys();
    let short = base64::encode(&[0u8; 16]);
    let cases = [
        (
            PasswordKeys {
                stored_key: short.clone(),
                ..keys.clone()
            },
            InvalidKeys::Key("storedKey"),
        ),
        (
            PasswordKeys {
                server_key: "%%".into(),
                ..keys.clone()
            },
            InvalidKeys::Key("serverKey"),
        ),
        (
            PasswordKeys {
                salt: String::new(),
                ..keys.clone()
            },
            InvalidKeys::Salt,
        ),
        (
            PasswordKeys {
                iterations: 0,
                ..keys.clone()
            },
            InvalidKeys::Iterations(0),
        ),
        (
            PasswordKeys {
                iterations: MAX_ITERATIONS + 1,
                ..keys.clone()
            },
            InvalidKeys::Iterations(MAX_ITERATIONS + 1),
        ),
    ];
    for (keys, want) in cases {
        assert_eq!(ScramCredential::from_keys(&keys), Err(want));
    }
}
