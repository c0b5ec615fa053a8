//! Who a peer is: the authenticator a connection asks during its SASL exchange, and the identity
//! (with its policy) that every link decision of that connection uses.
//!
//! An exchange is asynchronous, so an authenticator may call out to the network (a token review)
//! without blocking anything else; the broker runs the SASL frames itself and asks the exchange
//! for each step.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc};

use enmasse_types::{policy::Policy, resources::messaging_user::Operation};
use ring::rand::{SecureRandom, SystemRandom};

use crate::{
    scram::{self, ScramCredential, ScramServer},
    tokens::TokenReviewer,
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

/// Why authentication failed. The peer only learns that it failed (or, for
/// [`AuthError::Unavailable`], that it may retry); the reason goes to the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The mechanism is not offered.
    #[error("mechanism {0} is not offered")]
    Mechanism(String),
    /// Unknown user or wrong password (deliberately not told apart).
    #[error("invalid credentials for {0:?}")]
    Credentials(String),
    /// A SASL message does not follow its mechanism.
    #[error("malformed {mechanism} exchange: {reason}")]
    Malformed {
        /// The mechanism.
        mechanism: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A system the check depends on is unavailable (the peer may retry).
    #[error("authentication is unavailable: {0}")]
    Unavailable(String),
}

/// What one step of an exchange leads to.
#[derive(Debug)]
pub enum Step {
    /// Send this challenge and wait for the client's response.
    Challenge(Vec<u8>),
    /// Authenticated; the data (if any) goes to the client with the outcome.
    Done(Identity, Option<Vec<u8>>),
}

/// The future of one step.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<Step, AuthError>> + Send + 'a>>;

/// One client's SASL exchange with one mechanism.
pub trait Exchange: Send {
    /// Takes the client's next message (first the initial response, then each response).
    fn step<'a>(&'a mut self, message: &'a [u8]) -> StepFuture<'a>;
}

/// Decides who a peer is from its SASL exchange.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// The SASL mechanisms offered, most preferred first.
    fn mechanisms(&self) -> Vec<&'static str>;

    /// The identity of a peer that skips SASL, if that is allowed.
    fn anonymous(&self) -> Option<Identity>;

    /// Starts an exchange with the mechanism the client chose.
    fn start(&self, mechanism: &str) -> Result<Box<dyn Exchange>, AuthError>;

    /// What keeps this authenticator from admitting anyone, if anything (reported in status).
    fn problem(&self) -> Option<String> {
        None
    }

    /// The rights a user has now; `None` for a user that no longer exists. Every attach asks, and
    /// so does every live link when the config changes, so that revoked rights take effect at once.
    fn policy(&self, username: &str) -> Option<Arc<Policy>>;
}

/// An exchange that is decided by the first message.
struct OneStep<F>(Option<F>);

impl<F> Exchange for OneStep<F>
where
    F: FnOnce(&[u8]) -> Result<Step, AuthError> + Send,
{
    fn step<'a>(&'a mut self, message: &'a [u8]) -> StepFuture<'a> {
        let result = match self.0.take() {
            Some(decide) => decide(message),
            None => Err(AuthError::Malformed {
                mechanism: "SASL",
                reason: "unexpected response".into(),
            }),
        };
        Box::pin(async move { result })
    }
}

/// Splits a PLAIN response (`authzid NUL authcid NUL passwd`).
pub fn parse_plain(response: &[u8]) -> Result<(String, Vec<u8>), AuthError> {
    let malformed = |reason: &str| AuthError::Malformed {
        mechanism: "PLAIN",
        reason: reason.to_owned(),
    };
    let mut parts = response.splitn(3, |b| *b == 0);
    let _authzid = parts.next().ok_or_else(|| malformed("empty"))?;
    let authcid = parts.next().ok_or_else(|| malformed("no username"))?;
    let password = parts.next().ok_or_else(|| malformed("no password"))?;
    let username = std::str::from_utf8(authcid).map_err(|_| malformed("the username is not UTF-8"))?;
    if username.is_empty() {
        return Err(malformed("empty username"));
    }
    Ok((username.to_owned(), password.to_vec()))
}

/// The `none` authentication service: every peer is accepted, with or without SASL, anonymously or
/// with any username and password, and may do everything.
#[derive(Debug, Default)]
pub struct AcceptAll;

fn everything(username: &str) -> Identity {
    Identity {
        username: username.to_owned(),
        policy: Arc::new(Policy::allow_all()),
    }
}

impl Authenticator for AcceptAll {
    fn mechanisms(&self) -> Vec<&'static str> {
        vec!["ANONYMOUS", "PLAIN"]
    }

    fn anonymous(&self) -> Option<Identity> {
        Some(everything("anonymous"))
    }

    fn policy(&self, _username: &str) -> Option<Arc<Policy>> {
        Some(Arc::new(Policy::allow_all()))
    }

    fn start(&self, mechanism: &str) -> Result<Box<dyn Exchange>, AuthError> {
        match mechanism {
            "ANONYMOUS" => Ok(Box::new(OneStep(Some(|_: &[u8]| {
                Ok(Step::Done(everything("anonymous"), None))
            })))),
            "PLAIN" => Ok(Box::new(OneStep(Some(|response: &[u8]| {
                let (username, _) = parse_plain(response)?;
                Ok(Step::Done(everything(&username), None))
            })))),
            other => Err(AuthError::Mechanism(other.to_owned())),
        }
    }
}

/// An authentication service this broker cannot run: every peer is refused as "unavailable" (SASL
/// `sys-temp`), so clients retry rather than change their credentials.
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

    fn anonymous(&self) -> Option<Identity> {
        None
    }

    fn start(&self, _mechanism: &str) -> Result<Box<dyn Exchange>, AuthError> {
        Err(AuthError::Unavailable(self.reason.clone()))
    }

    fn problem(&self) -> Option<String> {
        Some(format!("clients cannot authenticate: {}", self.reason))
    }

    fn policy(&self, _username: &str) -> Option<Arc<Policy>> {
        None
    }
}

/// How one user proves who it is.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A password, kept as SCRAM keys.
    Password(ScramCredential),
    /// A Kubernetes service account's token (sent as the password of `@@serviceaccount@@`).
    ServiceAccount {
        /// The account's namespace.
        namespace: String,
        /// The account's name.
        name: String,
    },
}

/// One user of a `standard` authentication service.
#[derive(Clone, Debug)]
pub struct User {
    /// How the user proves who it is.
    pub credential: Credential,
    /// What the user may do.
    pub policy: Arc<Policy>,
}

/// The `standard` authentication service: the space's `MessagingUser`s, with SCRAM-SHA-256 or
/// PLAIN for password users.
#[derive(Debug)]
pub struct Users {
    users: Arc<HashMap<String, User>>,
    reviewer: Option<Arc<dyn TokenReviewer>>,
    random: SystemRandom,
}

impl Users {
    /// An authenticator for these users, by username; service-account users log in only if a
    /// token reviewer is given.
    pub fn new(users: HashMap<String, User>, reviewer: Option<Arc<dyn TokenReviewer>>) -> Self {
        Self {
            users: Arc::new(users),
            reviewer,
            random: SystemRandom::new(),
        }
    }

    fn password_user(&self, username: &str) -> Option<(&ScramCredential, &Arc<Policy>)> {
        match self.users.get(username) {
            Some(User {
                credential: Credential::Password(credential),
                policy,
            }) => Some((credential, policy)),
            _ => None,
        }
    }

    fn nonce(&self) -> Result<String, AuthError> {
        let mut bytes = [0u8; 18];
        self.random
            .fill(&mut bytes)
            .map_err(|_| AuthError::Unavailable("no randomness for a nonce".into()))?;
        Ok(enmasse_types::base64::encode(&bytes))
    }
}

/// The login name of service-account users.
pub const SERVICE_ACCOUNT_LOGIN: &str = enmasse_types::names::SERVICE_ACCOUNT_LOGIN;

impl Authenticator for Users {
    fn mechanisms(&self) -> Vec<&'static str> {
        vec![scram::MECHANISM, "PLAIN"]
    }

    fn policy(&self, username: &str) -> Option<Arc<Policy>> {
        self.users.get(username).map(|user| user.policy.clone())
    }

    fn anonymous(&self) -> Option<Identity> {
        None
    }

    fn start(&self, mechanism: &str) -> Result<Box<dyn Exchange>, AuthError> {
        match mechanism {
            "PLAIN" => Ok(Box::new(PlainExchange {
                users: self.users.clone(),
                reviewer: self.reviewer.clone(),
            })),
            scram::MECHANISM => {
                let server = ScramServer::new(self.nonce()?);
                let credentials: HashMap<String, (ScramCredential, Arc<Policy>)> = self
                    .users
                    .keys()
                    .filter_map(|name| {
                        self.password_user(name)
                            .map(|(c, p)| (name.clone(), (c.clone(), p.clone())))
                    })
                    .collect();
                Ok(Box::new(ScramExchange { server, credentials }))
            }
            other => Err(AuthError::Mechanism(other.to_owned())),
        }
    }
}

/// A PLAIN exchange: a password user's password, or a service account's token.
struct PlainExchange {
    users: Arc<HashMap<String, User>>,
    reviewer: Option<Arc<dyn TokenReviewer>>,
}

impl Exchange for PlainExchange {
    fn step<'a>(&'a mut self, message: &'a [u8]) -> StepFuture<'a> {
        Box::pin(async move {
            let (username, mut password) = parse_plain(message)?;
            if username == SERVICE_ACCOUNT_LOGIN {
                let reviewer = self.reviewer.as_ref().ok_or_else(|| {
                    AuthError::Unavailable("no service-account token reviewer is configured".into())
                })?;
                let token =
                    String::from_utf8(std::mem::take(&mut password)).map_err(|_| AuthError::Malformed {
                        mechanism: "PLAIN",
                        reason: "the token is not UTF-8".into(),
                    })?;
                let account = reviewer
                    .review(&token)
                    .await
                    .map_err(|e| AuthError::Unavailable(e.to_string()))?;
                let account = account.ok_or_else(|| AuthError::Credentials(SERVICE_ACCOUNT_LOGIN.into()))?;
                // The reviewed account must be the one a serviceaccount user names.
                return match self.users.get(&account) {
                    Some(User {
                        credential: Credential::ServiceAccount { .. },
                        policy,
                    }) => Ok(Step::Done(
                        Identity {
                            username: account,
                            policy: policy.clone(),
                        },
                        None,
                    )),
                    _ => Err(AuthError::Credentials(account)),
                };
            }
            let verdict = match self.users.get(&username) {
                Some(User {
                    credential: Credential::Password(credential),
                    policy,
                }) if credential.verify_password(&password) => Ok(Step::Done(
                    Identity {
                        username,
                        policy: policy.clone(),
                    },
                    None,
                )),
                _ => Err(AuthError::Credentials(username)),
            };
            password.fill(0);
            verdict
        })
    }
}

/// A SCRAM-SHA-256 exchange over the users' credentials.
struct ScramExchange {
    server: ScramServer,
    credentials: HashMap<String, (ScramCredential, Arc<Policy>)>,
}

impl Exchange for ScramExchange {
    fn step<'a>(&'a mut self, message: &'a [u8]) -> StepFuture<'a> {
        let result = if self.server.is_started() {
            self.server
                .client_final(message)
                .map_err(scram_error)
                .and_then(|(username, last)| {
                    let policy = self.credentials.get(&username).map(|(_, p)| p.clone());
                    let policy = policy.ok_or_else(|| AuthError::Credentials(username.clone()))?;
                    Ok(Step::Done(Identity { username, policy }, Some(last)))
                })
        } else {
            let credentials = &self.credentials;
            self.server
                .client_first(message, |name| credentials.get(name).map(|(c, _)| c.clone()))
                .map(Step::Challenge)
                .map_err(scram_error)
        };
        Box::pin(async move { result })
    }
}

fn scram_error(error: scram::ScramError) -> AuthError {
    match error {
        scram::ScramError::Credentials(username) => AuthError::Credentials(username),
        other => AuthError::Malformed {
            mechanism: scram::MECHANISM,
            reason: other.to_string(),
        },
    }
}

/// The authenticator a broker config asks for. `password_of` gives the password of a password user
/// (decoded from its `MessagingUser`), or `None` where it is not at hand; it is turned into SCRAM
/// keys at once and the plaintext is overwritten.
pub fn for_config(
    config: &enmasse_types::broker_config::BrokerConfig,
    reviewer: Option<Arc<dyn TokenReviewer>>,
    mut password_of: impl FnMut(&enmasse_types::broker_config::BrokerUser) -> Option<Vec<u8>>,
) -> Arc<dyn Authenticator> {
    for_config_with(config, reviewer, |user| {
        let enmasse_types::broker_config::Credential::Password { namespace, .. } = &user.credential else {
            return None;
        };
        let password = password_of(user)?;
        Some(password_credential(namespace, &user.resource, password))
    })
}

/// Like [`for_config`], with the credential of a password user whose config carries no keys
/// from `credential_of`: derived before and kept ([`crate::credentials::PasswordCredentials`]),
/// or `None` if it has none.
pub fn for_config_with(
    config: &enmasse_types::broker_config::BrokerConfig,
    reviewer: Option<Arc<dyn TokenReviewer>>,
    mut credential_of: impl FnMut(&enmasse_types::broker_config::BrokerUser) -> Option<ScramCredential>,
) -> Arc<dyn Authenticator> {
    use enmasse_types::{
        broker_config::Credential as Wanted, resources::authentication_service::AuthenticationServiceType,
    };
    let service = &config.space.authentication;
    match service.type_ {
        AuthenticationServiceType::None => return Arc::new(AcceptAll),
        AuthenticationServiceType::Standard => {}
        other => {
            return Arc::new(RefuseAll::new(format!(
                "authentication service {} of type {} is not supported",
                service.service,
                other.as_str()
            )));
        }
    }
    let mut users = HashMap::new();
    for user in &config.users {
        let credential = match &user.credential {
            Wanted::ServiceAccount { namespace, name } => Credential::ServiceAccount {
                namespace: namespace.clone(),
                name: name.clone(),
            },
            Wanted::Password { keys: Some(keys), .. } => match ScramCredential::from_keys(keys) {
                Ok(credential) => Credential::Password(credential),
                // Refused when the config was pushed; a user whose keys are unusable cannot log in.
                Err(_) => continue,
            },
            Wanted::Password { keys: None, .. } => match credential_of(user) {
                Some(credential) => Credential::Password(credential),
                None => continue,
            },
        };
        // The config holds only rules that compiled when it was built.
        let Ok(policy) = Policy::compile(&user.authorization, config.space.type_) else {
            continue;
        };
        users.insert(
            user.username.clone(),
            User {
                credential,
                policy: Arc::new(policy),
            },
        );
    }
    Arc::new(Users::new(users, reviewer))
}

/// The credential of the password of `MessagingUser` `namespace/resource`; the password is wiped.
/// [`ScramCredential::to_keys`] turns it into what a pushed broker config carries.
pub fn password_credential(namespace: &str, resource: &str, mut password: Vec<u8>) -> ScramCredential {
    let salt = salt_for(namespace, resource);
    let credential = ScramCredential::derive(&password, &salt, scram::DEFAULT_ITERATIONS);
    password.fill(0);
    credential
}

/// A salt that is unique per user and the same on every reading of the same manifest, so that the
/// config a broker serves does not change while the manifests do not.
fn salt_for(namespace: &str, resource: &str) -> [u8; 16] {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("enmasse-user:{namespace}/{resource}").as_bytes(),
    );
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&digest.as_ref()[..16]);
    salt
}

#[cfg(test)]
mod tests;
