//! The seam between the connection path and authentication: who a peer is and what it may do.
//!
//! Every connection asks an [`Authenticator`] before any AMQP frame is exchanged: the SASL
//! exchange itself runs in [`crate::sasl`] as our own async step, so an authenticator may call out
//! to the network (a token review) without blocking the connection's executor. The identity it
//! returns carries the policy that every link decision of that connection uses.

use std::{future::Future, pin::Pin, sync::Arc};

use enmasse_types::{
    broker_config::BrokerConfig,
    policy::Policy,
    resources::{authentication_service::AuthenticationServiceType, messaging_user::Operation},
};

/// Who a peer is, once authenticated, and what it may do.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The username (`anonymous` for an anonymous peer).
    pub username: String,
    /// What the user may do on which addresses.
    pub policy: Arc<Policy>,
}

impl Identity {
    /// Whether the peer may do `operation` on `address`.
    pub fn may(&self, operation: Operation, address: &str) -> bool {
        self.policy.allows(operation, address)
    }
}

/// Why authentication failed. The peer only ever learns "authentication failed"; the reason goes
/// to the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The mechanism is not offered.
    #[error("mechanism {0} is not offered")]
    Mechanism(String),
    /// The credentials do not identify a user.
    #[error("invalid credentials for {0:?}")]
    Credentials(String),
    /// The SASL response is malformed.
    #[error("malformed {mechanism} response")]
    Malformed {
        /// The mechanism.
        mechanism: String,
    },
    /// A system the check depends on is unavailable (the peer may retry).
    #[error("authentication is unavailable: {0}")]
    Unavailable(String),
}

/// A boxed future, so that authenticators can be trait objects.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Identity, AuthError>> + Send + 'a>>;

/// Decides who a peer is from its SASL exchange.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// The SASL mechanisms offered, most preferred first.
    fn mechanisms(&self) -> Vec<&'static str>;

    /// Whether a peer that skips SASL (sends the plain AMQP header) is accepted, as anonymous.
    fn allows_no_sasl(&self) -> bool;

    /// The identity of a peer that skipped SASL.
    fn anonymous(&self) -> Option<Identity>;

    /// What keeps this authenticator from admitting anyone, if anything (reported in status).
    fn problem(&self) -> Option<String> {
        None
    }

    /// Authenticates a `SASL-INIT` with this mechanism and initial response.
    fn authenticate<'a>(
        &'a self,
        mechanism: &'a str,
        response: &'a [u8],
        hostname: Option<&'a str>,
    ) -> AuthFuture<'a>;
}

/// The `none` authentication service: every peer is accepted, with or without SASL, anonymously or
/// with any username and password, and may do everything.
#[derive(Debug, Default)]
pub struct AcceptAll;

impl AcceptAll {
    fn identity(username: &str) -> Identity {
        Identity {
            username: username.to_owned(),
            policy: Arc::new(Policy::allow_all()),
        }
    }
}

impl Authenticator for AcceptAll {
    fn mechanisms(&self) -> Vec<&'static str> {
        vec!["ANONYMOUS", "PLAIN"]
    }

    fn allows_no_sasl(&self) -> bool {
        true
    }

    fn anonymous(&self) -> Option<Identity> {
        Some(Self::identity("anonymous"))
    }

    fn authenticate<'a>(
        &'a self,
        mechanism: &'a str,
        response: &'a [u8],
        _hostname: Option<&'a str>,
    ) -> AuthFuture<'a> {
        Box::pin(async move {
            match mechanism {
                "ANONYMOUS" => Ok(Self::identity("anonymous")),
                "PLAIN" => {
                    let (_, username, _) =
                        crate::sasl::parse_plain(response).ok_or_else(|| AuthError::Malformed {
                            mechanism: mechanism.to_owned(),
                        })?;
                    Ok(Self::identity(&username))
                }
                other => Err(AuthError::Mechanism(other.to_owned())),
            }
        })
    }
}

/// An authentication service this broker cannot run: every peer is refused, with the reason in the
/// log. The refusal is a SASL `sys-temp` outcome, so clients know to retry rather than to change
/// their credentials.
#[derive(Debug)]
pub struct RefuseAll {
    reason: String,
}

impl RefuseAll {
    /// Refuses everyone for `reason`.
    pub fn new(reason: String) -> Self {
        Self { reason }
    }
}

impl Authenticator for RefuseAll {
    fn mechanisms(&self) -> Vec<&'static str> {
        vec!["PLAIN"]
    }

    fn allows_no_sasl(&self) -> bool {
        false
    }

    fn anonymous(&self) -> Option<Identity> {
        None
    }

    fn problem(&self) -> Option<String> {
        Some(format!("clients cannot authenticate: {}", self.reason))
    }

    fn authenticate<'a>(
        &'a self,
        _mechanism: &'a str,
        _response: &'a [u8],
        _hostname: Option<&'a str>,
    ) -> AuthFuture<'a> {
        Box::pin(async move { Err(AuthError::Unavailable(self.reason.clone())) })
    }
}

/// The authenticator a broker config asks for.
pub fn for_config(config: &BrokerConfig) -> Arc<dyn Authenticator> {
    match config.space.authentication.type_ {
        AuthenticationServiceType::None => Arc::new(AcceptAll),
        other => Arc::new(RefuseAll::new(format!(
            "authentication service {} of type {} is not available in this build",
            config.space.authentication.service,
            other.as_str()
        ))),
    }
}
