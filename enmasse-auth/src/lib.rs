//! Who an AMQP peer is and what it may do.
//!
//! SASL server mechanisms, the credential store (salted hashes, never plaintext), service-account
//! token review, the authorization policy compiled from `MessagingUser`s, and TLS.
//!
//! Nothing is implemented here yet: authentication arrives with the auth milestone. The authorization
//! patterns and the "may this user do that" decision are pure rules and already live in
//! `enmasse-types`.
