//! Password credentials derived once per password, not once per reading of the manifests: a
//! SCRAM credential takes 4,096 PBKDF2 rounds, and a reload (or a reconcile) that derived every
//! user's again would spend that on each.

use std::collections::HashMap;

use crate::{authenticator::password_credential, scram::ScramCredential};

/// The credentials derived so far, by `MessagingUser` (namespace and name), each with the
/// password text (base64, as the manifest holds it) it was derived from.
#[derive(Default)]
pub struct PasswordCredentials {
    derived: HashMap<(String, String), (String, ScramCredential)>,
}

impl std::fmt::Debug for PasswordCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordCredentials")
            .field("users", &self.derived.len())
            .finish()
    }
}

impl PasswordCredentials {
    /// The credential of `MessagingUser` `namespace/resource` whose manifest holds `password`
    /// (base64): the one derived before if the password is the same, else derived now. `None` if
    /// the password is not base64.
    pub fn get(&mut self, namespace: &str, resource: &str, password: &str) -> Option<ScramCredential> {
        if let Some(credential) = self.known(namespace, resource, password) {
            return Some(credential.clone());
        }
        let derived = Derived::of(namespace, resource, password)?;
        let credential = derived.credential.clone();
        self.keep(derived);
        Some(credential)
    }

    /// The credential derived before for `namespace/resource` from `password`, if it was.
    pub fn known(&self, namespace: &str, resource: &str, password: &str) -> Option<&ScramCredential> {
        let key = (namespace.to_owned(), resource.to_owned());
        let (known, credential) = self.derived.get(&key)?;
        (known == password).then_some(credential)
    }

    /// Keeps a credential derived elsewhere (off an async runtime's workers), for [`Self::get`].
    pub fn keep(&mut self, derived: Derived) {
        let Derived {
            namespace,
            resource,
            password,
            credential,
        } = derived;
        self.derived.insert((namespace, resource), (password, credential));
    }

    /// Forgets the users `keep` does not name (removed from the manifests).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.derived
            .retain(|(namespace, resource), _| keep(namespace, resource));
    }
}

/// A credential derived from a password, not kept yet: see [`PasswordCredentials::keep`].
#[derive(Debug)]
pub struct Derived {
    namespace: String,
    resource: String,
    password: String,
    credential: ScramCredential,
}

impl Derived {
    /// Derives the credential of `MessagingUser` `namespace/resource` from `password` (base64,
    /// as the manifest holds it): 4,096 PBKDF2 rounds. `None` if the password is not base64.
    pub fn of(namespace: &str, resource: &str, password: &str) -> Option<Self> {
        let decoded = enmasse_types::base64::decode(password)?;
        Some(Self {
            namespace: namespace.to_owned(),
            resource: resource.to_owned(),
            password: password.to_owned(),
            credential: password_credential(namespace, resource, decoded),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_credential_is_the_one_derived_afresh_and_changes_with_the_password() {
        let mut credentials = PasswordCredentials::default();
        let first = credentials.get("team1", "app.developer", "ZGV2ZWxvcGVy").unwrap();
        let again = credentials.get("team1", "app.developer", "ZGV2ZWxvcGVy").unwrap();
        assert_eq!(first, again);
        assert_eq!(
            first,
            password_credential("team1", "app.developer", b"developer".to_vec()),
            "the same as deriving it afresh"
        );
        let changed = credentials.get("team1", "app.developer", "c2VjcmV0").unwrap();
        assert_ne!(first, changed);
        assert!(credentials.get("team1", "app.developer", "not base64!").is_none());
        credentials.retain(|_, resource| resource != "app.developer");
        assert!(credentials.derived.is_empty());
    }

    #[test]
    fn a_credential_derived_elsewhere_and_kept_is_the_one_given_after() {
        let mut credentials = PasswordCredentials::default();
        assert!(
            credentials
                .known("team1", "app.developer", "ZGV2ZWxvcGVy")
                .is_none()
        );
        let derived = Derived::of("team1", "app.developer", "ZGV2ZWxvcGVy").unwrap();
        credentials.keep(derived);
        let known = credentials
            .known("team1", "app.developer", "ZGV2ZWxvcGVy")
            .cloned();
        assert_eq!(
            known,
            Some(password_credential(
                "team1",
                "app.developer",
                b"developer".to_vec()
            ))
        );
        assert!(
            credentials.known("team1", "app.developer", "c2VjcmV0").is_none(),
            "another password is not known"
        );
        assert!(Derived::of("team1", "app.developer", "not base64!").is_none());
    }
}
