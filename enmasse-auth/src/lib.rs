//! Who an AMQP peer is and what it may do.
//!
//! SASL server mechanisms, the credential store (salted keys, never plaintext), service-account
//! token review, the authorization policy compiled from `MessagingUser`s, and TLS. What exists now:
//!
//! - [`authenticator`]: the authenticator a connection asks during SASL, the identity it returns,
//!   and the `none` and `standard` authentication services;
//! - [`scram`]: password credentials kept as SCRAM-SHA-256 keys, checked for SASL PLAIN and
//!   SCRAM-SHA-256 without the password being stored;
//! - [`credentials`]: those credentials derived once per password, not once per reload;
//! - [`tls`]: the amqps endpoint's certificate (a self-signed CA per space, or a given bundle);
//! - [`tokens`]: service-account token review, and a token file for one machine;
//! - [`kubernetes`]: token review by the Kubernetes API server, for a broker in a cluster.
//!
//! The authorization patterns and the "may this user do that" decision are pure rules and live in
//! `enmasse-types` (`patterns`, `policy`).

pub mod authenticator;
pub mod credentials;
pub mod kubernetes;
pub mod scram;
pub mod tls;
pub mod tokens;
