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
        let key = (namespace.to_owned(), resource.to_owned());
        if let Some((known, credential)) = self.derived.get(&key)
            && known == password
        {
            return Some(credential.clone());
        }
        let decoded = enmasse_types::base64::decode(password)?;
        let credential = password_credential(namespace, resource, decoded);
        self.derived
            .insert(key, (password.to_owned(), credential.clone()));
        Some(credential)
    }

    /// Forgets the users `keep` does not name (removed from the manifests).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.derived
            .retain(|(namespace, resource), _| keep(namespace, resource));
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
}
