//! Addresses and MessagingUsers that belong to no address space: their name's space does not exist
//! (not yet, or no longer), or their name is not `<space>.<name>` at all.
//!
//! A space's reconcile writes the statuses of its members; these have no space to do it, so they
//! get theirs here, from the same `enmasse_types::evaluate` run without a space: `Pending` with
//! "address space X not found", or `Failed` naming what is wrong with the name. A member whose
//! space exists is left to the space.

use std::sync::Arc;

use enmasse_types::{
    error::one_line,
    evaluate::{Reports, Tenant, evaluate},
    resources::{address::Address, address_space::AddressSpace, messaging_user::MessagingUser},
};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{Api, ResourceExt, api::ObjectMeta, runtime::controller::Action};
use tracing::warn;

use crate::{
    context::Context,
    space::{ReconcileError, tenant_error, write_status},
};

/// Gives an Address without a space its status.
pub async fn reconcile_address(address: Arc<Address>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    if !has_space(&ctx, &address.metadata).await? {
        let namespace = address.namespace().unwrap_or_default();
        write(&ctx, &namespace, std::slice::from_ref(&*address), &[]).await?;
    }
    Ok(Action::await_change())
}

/// Gives a MessagingUser without a space its status.
pub async fn reconcile_user(user: Arc<MessagingUser>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    if !has_space(&ctx, &user.metadata).await? {
        let namespace = user.namespace().unwrap_or_default();
        write(&ctx, &namespace, &[], std::slice::from_ref(&*user)).await?;
    }
    Ok(Action::await_change())
}

/// Gives the members of a space that is going away the status of members without a space. Only
/// logged on failure: a deletion must never wait on it.
pub(crate) async fn orphan(ctx: &Context, namespace: &str, addresses: &[Address], users: &[MessagingUser]) {
    let staying = |meta: &ObjectMeta| meta.deletion_timestamp.is_none();
    let addresses: Vec<Address> = addresses
        .iter()
        .filter(|a| staying(&a.metadata))
        .cloned()
        .collect();
    let users: Vec<MessagingUser> = users.iter().filter(|u| staying(&u.metadata)).cloned().collect();
    if let Err(err) = write(ctx, namespace, &addresses, &users).await {
        warn!(namespace, error = %one_line(&err), "failed to mark the members of a deleted space");
    }
}

/// Whether the space a member's name points to exists and is not being deleted.
async fn has_space(ctx: &Context, member: &ObjectMeta) -> Result<bool, ReconcileError> {
    let Some((space, _)) = member.name.as_deref().and_then(|n| n.split_once('.')) else {
        return Ok(false);
    };
    let namespace = member.namespace.as_deref().unwrap_or_default();
    let found = Api::<AddressSpace>::namespaced(ctx.client.clone(), namespace)
        .get_opt(space)
        .await
        .map_err(tenant_error("read", "AddressSpace", namespace, space))?;
    Ok(found.is_some_and(|s| s.metadata.deletion_timestamp.is_none()))
}

/// Writes the statuses `evaluate` gives these members when no space exists, where they changed.
async fn write(
    ctx: &Context,
    namespace: &str,
    addresses: &[Address],
    users: &[MessagingUser],
) -> Result<(), ReconcileError> {
    let snapshot = ctx.infra.snapshot();
    let tenant = Tenant {
        namespace,
        spaces: &[],
        addresses,
        users,
    };
    let now = Time(Timestamp::now());
    let mut evaluation = evaluate(&tenant, &snapshot.infra(), &Reports::new(), &now);
    for address in addresses {
        if let Some(status) = evaluation.addresses.remove(&address.name_any())
            && address.status.as_ref() != Some(&status)
        {
            write_status(ctx, address, &status).await?;
        }
    }
    for user in users {
        if let Some(status) = evaluation.users.remove(&user.name_any())
            && user.status.as_ref() != Some(&status)
        {
            write_status(ctx, user, &status).await?;
        }
    }
    Ok(())
}
