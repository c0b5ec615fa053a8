//! Authorization: may user U do operation O on address A.
//!
//! A user's `authorization` rules compile into a [`Policy`]. `send` and `recv` hold on the addresses
//! their patterns cover; `view` and `manage` hold on the whole address space, as in EnMasse, and
//! `manage` implies every other operation.

use crate::{
    error::{InvalidField, Violation},
    patterns::AddressPattern,
    resources::{
        address_space::AddressSpaceType,
        messaging_user::{AuthorizationRule, Operation},
    },
};

/// What one user may do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    everything: bool,
    view: bool,
    send: Vec<AddressPattern>,
    recv: Vec<AddressPattern>,
}

impl Policy {
    /// The policy of a client of a `none` authentication service: everything.
    pub fn allow_all() -> Self {
        Self {
            everything: true,
            ..Self::default()
        }
    }

    /// Compiles a user's rules; the error names the first rule that breaks EnMasse's grammar.
    pub fn compile(rules: &[AuthorizationRule], space_type: AddressSpaceType) -> Result<Self, InvalidField> {
        let mut policy = Self::default();
        for (i, rule) in rules.iter().enumerate() {
            let field = format!("spec.authorization[{i}]");
            if rule.operations.is_empty() {
                return Err(InvalidField::new(
                    format!("{field}.operations"),
                    "[]",
                    Violation::Empty,
                ));
            }
            let scoped = rule
                .operations
                .iter()
                .any(|op| matches!(op, Operation::Send | Operation::Recv | Operation::View));
            if scoped && rule.addresses.is_empty() {
                return Err(InvalidField::new(
                    format!("{field}.addresses"),
                    "[]",
                    Violation::Missing {
                        when: "for the send, recv and view operations",
                    },
                ));
            }
            let mut patterns = Vec::with_capacity(rule.addresses.len());
            for (j, address) in rule.addresses.iter().enumerate() {
                let pattern = AddressPattern::parse(address, space_type)
                    .map_err(|e| e.within(&format!("{field}.addresses[{j}]")))?;
                patterns.push(pattern);
            }
            for op in &rule.operations {
                match op {
                    Operation::Manage => policy.everything = true,
                    Operation::View => policy.view = true,
                    Operation::Send => policy.send.extend(patterns.iter().cloned()),
                    Operation::Recv => policy.recv.extend(patterns.iter().cloned()),
                }
            }
        }
        Ok(policy)
    }

    /// Whether the user may do `operation` on `address`.
    pub fn allows(&self, operation: Operation, address: &str) -> bool {
        if self.everything {
            return true;
        }
        match operation {
            Operation::Manage => false,
            Operation::View => self.view,
            Operation::Send => self.send.iter().any(|p| p.matches(address)),
            Operation::Recv => self.recv.iter().any(|p| p.matches(address)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(ops: &[Operation], addresses: &[&str]) -> AuthorizationRule {
        AuthorizationRule {
            operations: ops.to_vec(),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn send_and_recv_hold_only_on_the_covered_addresses() {
        let policy = Policy::compile(
            &[rule(&[Operation::Send, Operation::Recv], &["orders"])],
            AddressSpaceType::Standard,
        )
        .unwrap();
        assert!(policy.allows(Operation::Send, "orders"));
        assert!(policy.allows(Operation::Recv, "orders"));
        assert!(!policy.allows(Operation::Send, "confirmations"));
        assert!(!policy.allows(Operation::View, "orders"));
        assert!(!policy.allows(Operation::Manage, "orders"));
    }

    #[test]
    fn operations_come_only_from_their_own_rule() {
        let rules = [
            rule(&[Operation::Send], &["orders"]),
            rule(&[Operation::Recv], &["confirm*"]),
        ];
        let policy = Policy::compile(&rules, AddressSpaceType::Standard).unwrap();
        assert!(policy.allows(Operation::Send, "orders"));
        assert!(!policy.allows(Operation::Recv, "orders"));
        assert!(policy.allows(Operation::Recv, "confirmations"));
        assert!(!policy.allows(Operation::Send, "confirmations"));
    }

    #[test]
    fn manage_implies_every_operation_on_every_address() {
        let policy = Policy::compile(&[rule(&[Operation::Manage], &[])], AddressSpaceType::Brokered).unwrap();
        for op in [
            Operation::Send,
            Operation::Recv,
            Operation::View,
            Operation::Manage,
        ] {
            assert!(policy.allows(op, "anything"));
        }
    }

    #[test]
    fn view_holds_on_the_whole_space() {
        let policy = Policy::compile(
            &[rule(&[Operation::View], &["orders"])],
            AddressSpaceType::Standard,
        )
        .unwrap();
        assert!(policy.allows(Operation::View, "other"));
        assert!(!policy.allows(Operation::Recv, "orders"));
    }

    #[test]
    fn scoped_operations_without_addresses_name_the_field() {
        let err = Policy::compile(&[rule(&[Operation::Send], &[])], AddressSpaceType::Standard).unwrap_err();
        assert_eq!(err.field, "spec.authorization[0].addresses");
        let err = Policy::compile(
            &[rule(&[Operation::Recv], &["ok", "a*b"])],
            AddressSpaceType::Standard,
        )
        .unwrap_err();
        assert_eq!(err.field, "spec.authorization[0].addresses[1]");
        assert_eq!(err.value, "a*b");
    }

    #[test]
    fn nobody_may_do_anything_without_rules() {
        let policy = Policy::compile(&[], AddressSpaceType::Standard).unwrap();
        assert!(!policy.allows(Operation::Send, "orders"));
        assert!(Policy::allow_all().allows(Operation::Manage, "orders"));
    }
}
