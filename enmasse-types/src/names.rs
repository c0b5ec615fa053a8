//! Name rules: address space names, `<space>.<name>` resource names, usernames and addresses.

use crate::error::{InvalidField, Violation};

/// The longest address space name: EnMasse derives infrastructure names from it.
pub const MAX_SPACE_NAME: usize = 60;

/// The longest Kubernetes object name (a DNS-1123 subdomain).
pub const MAX_OBJECT_NAME: usize = 253;

/// The username a client sends to authenticate with a service-account token as its password.
pub const SERVICE_ACCOUNT_LOGIN: &str = "@@serviceaccount@@";

/// The separator of a subscription's address when consumed through its topic: `<topic>::<sub>`.
pub const SUBSCRIPTION_SEPARATOR: &str = "::";

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Checks a DNS-1123 label: lowercase letters, digits and `-`, starting and ending with a letter
/// or digit.
fn dns_label(value: &str, max: usize) -> Result<(), Violation> {
    if value.is_empty() {
        return Err(Violation::Empty);
    }
    if value.len() > max {
        return Err(Violation::TooLong { max });
    }
    let ends_ok = value.starts_with(is_lower_alnum) && value.ends_with(is_lower_alnum);
    if !ends_ok || !value.chars().all(|c| is_lower_alnum(c) || c == '-') {
        return Err(Violation::Grammar {
            expected: "consist of lowercase letters, digits and '-', and start and end with a letter or digit",
        });
    }
    Ok(())
}

/// Checks an `AddressSpace` name (`metadata.name`).
pub fn check_space_name(name: &str) -> Result<(), InvalidField> {
    dns_label(name, MAX_SPACE_NAME).map_err(|v| InvalidField::new("metadata.name", name, v))
}

/// The longest name a Service may have: a DNS-1123 label.
pub const MAX_SERVICE_NAME: usize = 63;

/// Checks the name of a Service (or of another object named as strictly): a DNS-1123 label.
pub fn check_service_name(name: &str) -> Result<(), InvalidField> {
    dns_label(name, MAX_SERVICE_NAME).map_err(|v| InvalidField::new("metadata.name", name, v))
}

/// Checks a Kubernetes object name (a DNS-1123 subdomain: labels joined by `.`).
pub fn check_object_name(name: &str) -> Result<(), InvalidField> {
    let invalid = |v| InvalidField::new("metadata.name", name, v);
    if name.len() > MAX_OBJECT_NAME {
        return Err(invalid(Violation::TooLong { max: MAX_OBJECT_NAME }));
    }
    for label in name.split('.') {
        dns_label(label, MAX_OBJECT_NAME).map_err(|_| {
            invalid(Violation::Grammar {
                expected: "be lowercase letters, digits, '-' and '.', each '.'-separated part starting and \
                           ending with a letter or digit",
            })
        })?;
    }
    Ok(())
}

/// A name that is safe as one component of a path below a directory the broker owns: a
/// Kubernetes object name (lowercase letters, digits, `-` and `.`, each `.`-separated part
/// starting and ending with a letter or digit), so never empty, never `.` or `..`, never holding a
/// `/`. Files named after resources (exports, a space's certificates) are named with it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileName(String);

impl FileName {
    /// Checks `name`, found at `field`, as one path component.
    pub fn new(field: &str, name: &str) -> Result<Self, InvalidField> {
        check_object_name(name).map_err(|e| InvalidField::new(field, name, e.violation))?;
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FileName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<std::path::Path> for FileName {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

/// Splits the `metadata.name` of an `Address` or `MessagingUser` into its address space and its
/// own part: `app.orders` is `orders` in space `app`.
pub fn split_resource_name(name: &str) -> Result<(&str, &str), InvalidField> {
    check_object_name(name)?;
    match name.split_once('.') {
        Some((space, local)) if !local.is_empty() => {
            check_space_name(space).map_err(|e| InvalidField::new("metadata.name", name, e.violation))?;
            Ok((space, local))
        }
        _ => Err(InvalidField::new(
            "metadata.name",
            name,
            Violation::NotInSpace {
                example: name.to_owned(),
            },
        )),
    }
}

/// Checks a `MessagingUser` username, with EnMasse's grammar
/// `^[a-z0-9]+([a-z0-9_@.:\-]*[a-z0-9]+|[a-z0-9]*)$`.
pub fn check_username(username: &str) -> Result<(), InvalidField> {
    let invalid = |v| InvalidField::new("spec.username", username, v);
    if username.is_empty() {
        return Err(invalid(Violation::Empty));
    }
    let ends_ok = username.starts_with(is_lower_alnum) && username.ends_with(is_lower_alnum);
    let chars_ok = username.chars().all(|c| is_lower_alnum(c) || "_@.:-".contains(c));
    if !ends_ok || !chars_ok {
        return Err(invalid(Violation::Grammar {
            expected: "be lowercase letters, digits and '_@.:-', starting and ending with a letter or digit",
        }));
    }
    Ok(())
}

/// A Kubernetes service account, as named in a `serviceaccount` user's username.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceAccountName {
    /// The namespace of the service account.
    pub namespace: String,
    /// The service account's name.
    pub name: String,
}

impl ServiceAccountName {
    /// Parses `system:serviceaccount:<namespace>:<name>`, the name Kubernetes gives a service
    /// account's token.
    pub fn parse(username: &str) -> Result<Self, InvalidField> {
        let invalid = || {
            InvalidField::new(
                "spec.username",
                username,
                Violation::Grammar {
                    expected: "be system:serviceaccount:<namespace>:<name> for a serviceaccount user",
                },
            )
        };
        let rest = username
            .strip_prefix("system:serviceaccount:")
            .ok_or_else(invalid)?;
        let (namespace, name) = rest.split_once(':').ok_or_else(invalid)?;
        dns_label(namespace, 63).map_err(|_| invalid())?;
        check_object_name(name).map_err(|_| invalid())?;
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl std::fmt::Display for ServiceAccountName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// Checks an `Address`'s `spec.address`: the AMQP address clients attach to.
pub fn check_address(address: &str) -> Result<(), InvalidField> {
    let invalid = |v| InvalidField::new("spec.address", address, v);
    if address.is_empty() {
        return Err(invalid(Violation::Empty));
    }
    if address.chars().any(char::is_whitespace) {
        return Err(invalid(Violation::Whitespace));
    }
    if address.contains(SUBSCRIPTION_SEPARATOR) {
        return Err(invalid(Violation::Reserved {
            sequence: SUBSCRIPTION_SEPARATOR,
            purpose: "it separates a topic from its subscription",
        }));
    }
    if address.starts_with("__") || address.starts_with('$') {
        return Err(invalid(Violation::Reserved {
            sequence: if address.starts_with('$') { "$" } else { "__" },
            purpose: "addresses starting with it are internal",
        }));
    }
    if address.split('/').any(|word| word == "+" || word == "#") {
        return Err(invalid(Violation::Reserved {
            sequence: "a '+' or '#' word",
            purpose: "receivers use them as topic wildcards",
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_names_follow_dns_label_rules() {
        for good in ["app", "team-1", "a", "0day"] {
            assert!(check_space_name(good).is_ok(), "{good}");
        }
        for bad in ["", "App", "my.space", "-app", "app-", "a_b", &"x".repeat(61)] {
            assert!(check_space_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resource_names_split_at_the_first_dot() {
        assert_eq!(split_resource_name("app.orders").unwrap(), ("app", "orders"));
        assert_eq!(split_resource_name("myspace.app").unwrap(), ("myspace", "app"));
        assert_eq!(
            split_resource_name("app.orders.eu").unwrap(),
            ("app", "orders.eu")
        );
    }

    #[test]
    fn resource_names_without_a_space_part_say_the_expected_form() {
        let err = split_resource_name("orders").unwrap_err();
        assert_eq!(err.field, "metadata.name");
        assert_eq!(err.value, "orders");
        assert!(matches!(err.violation, Violation::NotInSpace { .. }));
        assert!(crate::error::one_line(&err).contains("<address space>.<name>"));
        assert!(split_resource_name("app.").is_err());
        assert!(split_resource_name("App.orders").is_err());
    }

    #[test]
    fn a_file_name_is_one_path_component_and_never_a_way_out() {
        for good in ["messaging-config", "app.ca", "a1"] {
            assert_eq!(FileName::new("f", good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            ".",
            "..",
            "../escape",
            "/etc/passwd",
            "a/b/c",
            "a..b",
            ".hidden",
            "UPPER",
            "a\\b",
        ] {
            let err = FileName::new("spec.endpoints[0].exports[0].name", bad).unwrap_err();
            assert_eq!(err.field, "spec.endpoints[0].exports[0].name", "{bad:?}");
        }
    }

    #[test]
    fn usernames_follow_the_enmasse_grammar() {
        for good in [
            "user1",
            "a",
            "system:serviceaccount:team1:default",
            "alice@example.com",
            "a_b-c",
        ] {
            assert!(check_username(good).is_ok(), "{good}");
        }
        for bad in ["", "Alice", "user-", "_user", "a b", "@@serviceaccount@@"] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn service_account_usernames_name_a_namespace_and_an_account() {
        let sa = ServiceAccountName::parse("system:serviceaccount:team1:default").unwrap();
        assert_eq!((sa.namespace.as_str(), sa.name.as_str()), ("team1", "default"));
        assert_eq!(sa.to_string(), "system:serviceaccount:team1:default");
        for bad in [
            "default",
            "system:serviceaccount:team1",
            "system:serviceaccount::x",
            "system:user:a:b",
        ] {
            assert!(ServiceAccountName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_reject_whitespace_and_reserved_sequences() {
        for good in ["orders", "sensors/temp", "a.b.c", "orders+eu"] {
            assert!(check_address(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "my orders",
            "t::s",
            "__internal",
            "$management",
            "sensors/#",
            "a/+/b",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }
}
