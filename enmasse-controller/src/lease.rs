//! Leader election through a `coordination.k8s.io` Lease, so that two replicas never both act.
//!
//! The holder renews the Lease well within its duration; another replica takes it over only once
//! it has seen the same record, unrenewed, for the whole duration. That is measured on the
//! replica's own clock, as client-go does, so clocks that disagree between nodes do not matter.
//! Every write carries the resource version it was decided on, so of two replicas racing for the
//! same Lease exactly one wins. A leader that cannot renew in time stops acting before its Lease
//! can expire ([`Leadership::lost`]).

use std::{sync::Mutex, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What a replica does about the Lease as it finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it: create it.
    Create,
    /// We hold it: renew it.
    Renew,
    /// Its holder let it expire: take it over.
    TakeOver,
    /// Someone else holds it.
    Wait {
        /// Who.
        holder: String,
    },
}

/// Decides what `identity` does about the Lease as read, which this replica has seen unchanged
/// for `unchanged_for`.
pub fn decide(lease: Option<&Lease>, identity: &str, unchanged_for: Duration) -> Decision {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    let seconds = u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0);
    if holder.is_empty() || unchanged_for >= Duration::from_secs(seconds) {
        return Decision::TakeOver;
    }
    Decision::Wait { holder }
}

/// One replica's claim on the Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// The Lease's resource version as last read, and when this replica first saw it.
    seen: Mutex<Option<(String, Instant)>>,
}

impl Elector {
    /// Claims Lease `name` in `namespace` as `identity`, for `duration` at a time.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
            seen: Mutex::new(None),
        }
    }

    /// How long this replica has seen `lease` unchanged.
    fn unchanged_for(&self, lease: Option<&Lease>) -> Duration {
        let version = lease
            .and_then(|l| l.metadata.resource_version.clone())
            .unwrap_or_default();
        let now = Instant::now();
        let Ok(mut seen) = self.seen.lock() else {
            return Duration::ZERO;
        };
        match seen.as_ref() {
            Some((last, since)) if *last == version => now.duration_since(*since),
            _ => {
                *seen = Some((version, now));
                Duration::ZERO
            }
        }
    }

    /// Tries once to hold the Lease; `Ok(true)` when this replica holds it now.
    pub async fn try_hold(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let decision = decide(
            current.as_ref(),
            &self.identity,
            self.unchanged_for(current.as_ref()),
        );
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let result = match (&decision, current) {
            (Decision::Wait { .. }, _) => return Ok(false),
            (Decision::Create, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (_, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if decision != Decision::Renew {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(seconds);
                spec.renew_time = Some(MicroTime(now));
                // The resource version read above makes this fail if another replica wrote first.
                self.api.replace(&self.name, &PostParams::default(), &lease).await
            }
            (_, None) => return Ok(false),
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Waits until this replica holds the Lease (or `shutdown`), then keeps renewing it until
    /// `shutdown`. [`Leadership::lost`] is cancelled if leadership is lost: the caller must stop
    /// acting at once.
    pub async fn lead(self, shutdown: CancellationToken) -> Option<Leadership> {
        let retry = self.duration / 3;
        loop {
            match tokio::time::timeout(retry, self.try_hold()).await {
                Ok(Ok(true)) => break,
                Ok(Ok(false)) => {}
                Ok(Err(err)) => warn!(error = %err, lease = %self.name, "failed to read or write the lease"),
                Err(_) => warn!(lease = %self.name, "the API server did not answer about the lease in time"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(retry) => {}
            }
        }
        info!(lease = %self.name, identity = %self.identity, "leading");
        let lost = CancellationToken::new();
        let task = tokio::spawn(renew(self, lost.clone(), shutdown));
        Some(Leadership { lost, task })
    }
}

/// Renews until `shutdown`; cancels `lost` when the Lease was taken over or could not be renewed
/// in time.
async fn renew(elector: Elector, lost: CancellationToken, shutdown: CancellationToken) {
    let every = elector.duration / 3;
    // Stop acting before the Lease could expire and another replica take over.
    let deadline = elector.duration * 2 / 3;
    let mut renewed = Instant::now();
    let mut wait = every;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let left = deadline.saturating_sub(renewed.elapsed());
        match tokio::time::timeout(left, elector.try_hold()).await {
            Ok(Ok(true)) => {
                renewed = Instant::now();
                wait = every;
                continue;
            }
            Ok(Ok(false)) => {
                warn!(lease = %elector.name, "the lease was taken over: no longer leading");
                lost.cancel();
                return;
            }
            Ok(Err(err)) => warn!(error = %err, lease = %elector.name, "failed to renew the lease"),
            Err(_) => warn!(lease = %elector.name, "the API server did not answer the renewal in time"),
        }
        if renewed.elapsed() >= deadline {
            warn!(lease = %elector.name, "could not renew the lease in time: no longer leading");
            lost.cancel();
            return;
        }
        // Try again soon: the deadline is near.
        wait = (every / 4).max(Duration::from_millis(100));
    }
}

/// This replica leads until [`Leadership::lost`] is cancelled.
pub struct Leadership {
    /// Cancelled when leadership is lost; not on shutdown.
    pub lost: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Waits for the renewals to stop (after shutdown), so that the Lease runs out and another
    /// replica takes over.
    pub async fn step_down(self) {
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests;
