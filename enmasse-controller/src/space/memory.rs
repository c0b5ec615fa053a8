//! What the passes over one space keep from one to the next, so that a change costs work in
//! proportion to itself: the members as last copied out of the stores, the last verdict, the
//! revision the configuration has once password users are given their keys, and the broker's
//! report.

use std::{
    borrow::Cow,
    collections::{BTreeSet, HashSet},
};

use enmasse_auth::credentials::Derived;
use enmasse_types::{
    broker_config::{BrokerConfig, BrokerReport, BrokerUser, ByAddress, Credential, PasswordKeys},
    config_patch::ConfigPatch,
    evaluate::{Changes, Evaluation, Incremental, ServedChanges, SpaceVerdict, waits_for_drain},
    resources::messaging_user::MessagingUser,
};

use crate::{context::Context, members::Members};

/// What the passes over one space keep for the next.
#[derive(Debug)]
pub struct SpaceMemory {
    /// The members, refreshed from the stores at each pass.
    pub(super) members: Members,
    /// The last verdict: only what changed since is evaluated again.
    pub(super) evaluator: Incremental,
    /// The revision the last pass gave the configuration with its password keys: a broker that
    /// reports it serves that configuration.
    pub(super) keyed: Option<Keyed>,
    /// The broker's report as the last pass had it, and the point it was given to ask for what
    /// changed since: a pass is sent the addresses whose report changed, not all of them.
    pub(super) report: Option<(String, BrokerReport)>,
    /// The addresses changed since the last evaluation, by name; `None` when they were read whole
    /// since (any may have). Kept until a pass evaluates them: a pass that fails before loses none.
    pub(super) changed: Option<BTreeSet<String>>,
    /// The addresses the delete policy has something to do with (`retention::notable`).
    pub(super) notable: BTreeSet<String>,
    /// The addresses whose status waits for the broker to report them drained.
    pub(super) draining: BTreeSet<String>,
}

impl Default for SpaceMemory {
    fn default() -> Self {
        Self {
            members: Members::default(),
            // The members come from the API server, which versions every change.
            evaluator: Incremental::trusting_versions(),
            keyed: None,
            report: None,
            changed: None,
            notable: BTreeSet::new(),
            draining: BTreeSet::new(),
        }
    }
}

/// A configuration's revision as `evaluate` gives it (without password keys), and as the broker
/// reports it once it serves the configuration with them.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Keyed {
    /// The revision without keys.
    pub(super) plain: String,
    /// The keys given, by user resource, in the order of the configuration's users.
    pub(super) keys: Vec<(String, PasswordKeys)>,
    /// The revision with them.
    pub(super) revision: String,
}

impl Keyed {
    /// The revision of `verdict`'s config with `keys`: the one remembered when the config and the
    /// keys are the same; `None` without a config.
    pub(super) fn of(
        remembered: Option<&Keyed>,
        verdict: &SpaceVerdict,
        keys: Vec<(String, PasswordKeys)>,
    ) -> Option<Keyed> {
        let config = verdict.config.as_ref()?;
        let plain = verdict.revision.as_str();
        if let Some(known) = remembered.filter(|k| k.plain == plain && k.keys == keys) {
            return Some(known.clone());
        }
        let revision = if keys.is_empty() {
            plain.to_owned()
        } else {
            // The addresses are the same with keys or without: only the space and users are hashed.
            let mut users = BrokerConfig {
                space: config.space.clone(),
                addresses: ByAddress::new(),
                users: config.users.clone(),
            };
            give_keys(&mut users.users, &keys);
            users.revision_with(verdict.digest)
        };
        Some(Keyed {
            plain: plain.to_owned(),
            keys,
            revision,
        })
    }
}

/// Notes in `changed` the addresses a refresh of the members found changed (`refreshed`; `None`:
/// read whole, so any may have).
pub(super) fn note_changed(changed: &mut Option<BTreeSet<String>>, refreshed: Option<&HashSet<String>>) {
    match (changed.as_mut(), refreshed) {
        (Some(changed), Some(names)) => changed.extend(names.iter().cloned()),
        _ => *changed = None,
    }
}

/// What changed since the last evaluation of space `space`, when both the members' journal
/// (`pending`) and the broker's answer (`reported`) can say. The addresses the delete policy holds
/// (`notable`) are told every time: whether they are served depends on what the broker reports as
/// much as on them (a retained address drained, or holding messages again), and they are few.
pub(super) fn changes(
    space: &str,
    pending: Option<BTreeSet<String>>,
    reported: Option<BTreeSet<String>>,
    notable: &BTreeSet<String>,
) -> Option<Changes> {
    let (mut addresses, reported) = pending.zip(reported)?;
    addresses.extend(notable.iter().cloned());
    Some(Changes {
        addresses,
        reported: [(space.to_owned(), reported)].into(),
    })
}

/// Brings `draining`, the names of the addresses of `evaluation` that wait for their broker to
/// drain them, up to date after an evaluation whose statuses differ from the last only for the
/// addresses in `looked_at` (`None`: any may).
pub(super) fn track_draining<'a>(
    draining: &mut BTreeSet<String>,
    evaluation: &Evaluation,
    looked_at: Option<impl Iterator<Item = &'a String>>,
) {
    let Some(looked_at) = looked_at else {
        *draining = evaluation
            .addresses
            .iter()
            .filter(|(_, status)| waits_for_drain(status))
            .map(|(name, _)| name.clone())
            .collect();
        return;
    };
    let mut names: Vec<String> = looked_at.cloned().collect();
    names.extend(std::mem::take(draining));
    for name in names {
        if evaluation.addresses.get(&name).is_some_and(waits_for_drain) {
            draining.insert(name);
        }
    }
}

/// The revision of the configuration `evaluation` gives space `name`, as it is pushed: with the
/// password keys of `users`.
pub(super) async fn keyed_revision(
    evaluation: &Evaluation,
    name: &str,
    users: &[MessagingUser],
    ctx: &Context,
    remembered: Option<&Keyed>,
) -> Option<Keyed> {
    let verdict = evaluation.spaces.get(name)?;
    let keys = password_keys(verdict.config.as_ref()?, users, ctx).await;
    Keyed::of(remembered, verdict, keys)
}

/// The SCRAM keys of each password user of `config` whose password can be read, so that the broker
/// never holds a password. Derived once per password (see `Context::credentials`), on a blocking
/// thread.
async fn password_keys(
    config: &BrokerConfig,
    users: &[MessagingUser],
    ctx: &Context,
) -> Vec<(String, PasswordKeys)> {
    let wanted: Vec<_> = passwords(config, users).collect();
    derive_passwords(&wanted, ctx).await;
    let mut credentials = ctx.credentials.lock().unwrap_or_else(|p| p.into_inner());
    let mut keys = Vec::new();
    for (namespace, resource, password) in wanted {
        if let Some(credential) = credentials.get(namespace, resource, password) {
            keys.push((resource.to_owned(), credential.to_keys()));
        }
    }
    keys
}

/// Derives, on a blocking thread, the credentials of the users in `wanted` (namespace, resource
/// name, password) not derived yet: 4,096 PBKDF2 rounds each are not for the runtime's workers. A
/// derivation that fails to finish leaves its users to be derived when their keys are asked for.
pub(super) async fn derive_passwords(wanted: &[(&str, &str, &str)], ctx: &Context) {
    let missing: Vec<(String, String, String)> = {
        let credentials = ctx.credentials.lock().unwrap_or_else(|p| p.into_inner());
        wanted
            .iter()
            .filter(|(namespace, resource, password)| {
                credentials.known(namespace, resource, password).is_none()
            })
            .map(|(namespace, resource, password)| {
                (
                    (*namespace).to_owned(),
                    (*resource).to_owned(),
                    (*password).to_owned(),
                )
            })
            .collect()
    };
    if missing.is_empty() {
        return;
    }
    let derive = move || {
        let derived = missing
            .iter()
            .map(|(namespace, resource, password)| Derived::of(namespace, resource, password));
        derived.flatten().collect::<Vec<_>>()
    };
    if let Ok(derived) = tokio::task::spawn_blocking(derive).await {
        let mut credentials = ctx.credentials.lock().unwrap_or_else(|p| p.into_inner());
        for derived in derived {
            credentials.keep(derived);
        }
    }
}

/// The password users of `config` still without keys, with their passwords (base64) as `users`
/// hold them: namespace, resource name and password.
fn passwords<'a>(
    config: &'a BrokerConfig,
    users: &'a [MessagingUser],
) -> impl Iterator<Item = (&'a str, &'a str, &'a str)> {
    config.users.iter().filter_map(|user| {
        let Credential::Password {
            namespace,
            keys: None,
        } = &user.credential
        else {
            return None;
        };
        let password = users
            .iter()
            .find(|u| u.metadata.name.as_deref() == Some(user.resource.as_str()))?
            .spec
            .authentication
            .password
            .as_deref()?;
        Some((namespace.as_str(), user.resource.as_str(), password))
    })
}

/// `config` as it is pushed: with `keys` given to their users. Borrowed when there are none.
pub(super) fn with_keys<'a>(
    config: &'a BrokerConfig,
    keys: &[(String, PasswordKeys)],
) -> Cow<'a, BrokerConfig> {
    if keys.is_empty() {
        return Cow::Borrowed(config);
    }
    let mut config = config.clone();
    give_keys(&mut config.users, keys);
    Cow::Owned(config)
}

/// The patch that makes the config of revision `base` into `config` with `keys`, given what the
/// evaluation changed of it (`changes`); `None` when an address it names is not in `config`.
pub(super) fn patch(
    config: &BrokerConfig,
    keys: &[(String, PasswordKeys)],
    base: &str,
    changes: &ServedChanges,
) -> Option<ConfigPatch> {
    let addresses = changes
        .upserted
        .iter()
        .map(|address| config.addresses.get(address).cloned())
        .collect::<Option<ByAddress<_>>>()?;
    let mut users = config.users.clone();
    give_keys(&mut users, keys);
    Some(ConfigPatch {
        base: base.to_owned(),
        space: config.space.clone(),
        users,
        // One taken out and put in again is changed: it goes in whole.
        removed: changes
            .removed
            .iter()
            .filter(|address| !changes.upserted.contains(address))
            .cloned()
            .collect(),
        addresses,
    })
}

/// Gives `keys` to their password users in `users`.
fn give_keys(users: &mut [BrokerUser], keys: &[(String, PasswordKeys)]) {
    for user in users {
        if let Credential::Password { keys: slot, .. } = &mut user.credential
            && let Some((_, given)) = keys.iter().find(|(resource, _)| *resource == user.resource)
        {
            *slot = Some(given.clone());
        }
    }
}
