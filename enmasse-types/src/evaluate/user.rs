//! Messaging users: their rules, credentials and status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{name_of, space::Resolved};
use crate::{
    base64,
    broker_config::{BrokerUser, Credential},
    error::one_line,
    names::{self, ServiceAccountName},
    policy::Policy,
    resources::{
        common::{Phase, SimpleStatus, ready_condition, set_condition},
        messaging_user::{AuthenticationType, MessagingUser},
    },
};

/// A user with the broker's view of it, or the phase and reason it is not served.
pub(super) type UserVerdict<'a> = (&'a MessagingUser, Result<BrokerUser, (Phase, String)>);

/// Checks a space's users; each gets the broker's view of it, or why it is not served.
pub(super) fn evaluate_users<'a>(space: &Resolved<'_>, users: &[&'a MessagingUser]) -> Vec<UserVerdict<'a>> {
    let mut verdicts: Vec<UserVerdict<'a>> = Vec::new();
    for &user in users {
        let verdict = check(space, user).and_then(|served| {
            let taken = verdicts.iter().find_map(|(other, v)| {
                v.as_ref()
                    .ok()
                    .filter(|o| o.username == served.username)
                    .map(|_| name_of(&other.metadata))
            });
            match taken {
                Some(other) => Err((
                    Phase::Failed,
                    format!(
                        "username {} is already used by MessagingUser {other}",
                        served.username
                    ),
                )),
                None => Ok(served),
            }
        });
        verdicts.push((user, verdict));
    }
    verdicts
}

fn check(space: &Resolved<'_>, user: &MessagingUser) -> Result<BrokerUser, (Phase, String)> {
    let failed = |message: String| (Phase::Failed, message);
    let spec = &user.spec;
    names::check_username(&spec.username).map_err(|e| failed(one_line(&e)))?;
    let credential = match spec.authentication.type_ {
        AuthenticationType::Password => {
            let password = spec.authentication.password.as_deref().ok_or_else(|| {
                failed("spec.authentication.password is required for a password user".into())
            })?;
            match base64::decode(password) {
                None => {
                    return Err(failed(
                        "spec.authentication.password must be base64-encoded".into(),
                    ));
                }
                Some(bytes) if bytes.is_empty() => {
                    return Err(failed("spec.authentication.password must not be empty".into()));
                }
                Some(_) => Credential::Password {
                    namespace: space.namespace.to_owned(),
                    keys: None,
                },
            }
        }
        AuthenticationType::ServiceAccount => {
            let account = ServiceAccountName::parse(&spec.username).map_err(|e| failed(one_line(&e)))?;
            Credential::ServiceAccount {
                namespace: account.namespace,
                name: account.name,
            }
        }
        AuthenticationType::Federated => {
            return Err(failed(
                "federated users are not supported: use password or serviceaccount".into(),
            ));
        }
    };
    Policy::compile(&spec.authorization, space.type_).map_err(|e| failed(one_line(&e)))?;
    Ok(BrokerUser {
        resource: name_of(&user.metadata).to_owned(),
        username: spec.username.clone(),
        credential,
        authorization: spec.authorization.clone(),
    })
}

/// Builds a user's status, keeping its conditions' transition times.
pub(super) fn status(
    user: &MessagingUser,
    phase: Phase,
    message: Option<String>,
    now: &Time,
) -> SimpleStatus {
    let previous = user.status.clone().unwrap_or_default();
    let generation = user.metadata.generation;
    let ready = phase == Phase::Active;
    let mut conditions = previous.conditions.clone();
    let text = message.as_deref().unwrap_or_default();
    set_condition(
        &mut conditions,
        ready_condition(&previous.conditions, ready, phase.as_str(), text, generation, now),
    );
    SimpleStatus {
        phase: Some(phase),
        message,
        conditions,
        observed_generation: generation,
    }
}
