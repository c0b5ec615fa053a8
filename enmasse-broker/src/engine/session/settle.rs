//! The peer's outcomes for the broker's deliveries: applied at once, or held by a transaction
//! until its discharge. A disposition names a range of delivery ids (which may wrap); only the
//! deliveries still unsettled in it are visited.

use tracing::debug;

use super::{Link, Session, Unsettled};
use crate::{
    address::queue::Settlement,
    amqp::{
        frame,
        performative::{DeliveryState, Disposition, Role},
    },
    engine::{connection::Context, outbound::Outbound, transaction::Retired},
    message::Settled,
};

impl Session {
    /// Applies the peer's outcomes to the broker's deliveries.
    pub(in crate::engine) fn disposition(&mut self, cx: &mut Context<'_>, disposition: &Disposition) {
        if disposition.role != Role::Receiver {
            // The peer settles its own deliveries, which the broker settled at once.
            return;
        }
        let settlement = match &disposition.state {
            Some(DeliveryState::Transactional { txn_id, outcome }) => {
                self.retire(cx, disposition, txn_id, outcome.as_deref());
                return;
            }
            Some(state) => settlement_of(state),
            None => None,
        };
        let settlement = match settlement {
            Some(settlement) => settlement,
            // Settled with no outcome (or a state that is not one): the default outcome of the
            // broker's sources applies.
            None if disposition.settled => (Settlement::Accepted, None),
            None => return,
        };
        self.each_unsettled(cx, disposition, |cx, outbound, unsettled| {
            outbound.settle(cx, &unsettled.message, settlement.clone());
        });
    }

    /// Hands each of the broker's deliveries a disposition names, still unsettled, to `act` with
    /// its link; then answers a disposition the peer did not settle (it asked for mode second),
    /// and lets the links send again.
    fn each_unsettled(
        &mut self,
        cx: &mut Context<'_>,
        disposition: &Disposition,
        mut act: impl FnMut(&mut Context<'_>, &mut Outbound, Unsettled),
    ) {
        let last = disposition.last.unwrap_or(disposition.first);
        let mut touched = Vec::new();
        for id in self.unsettled_in(disposition.first, last) {
            let Some(unsettled) = self.unsettled.remove(&id) else {
                continue;
            };
            let handle = unsettled.key.handle;
            if let Some(Link::Out(outbound)) = self.links.get_mut(&handle)
                && outbound.end.key == unsettled.key
            {
                act(cx, outbound, unsettled);
                if !touched.contains(&handle) {
                    touched.push(handle);
                }
            }
        }
        if !disposition.settled {
            let reply = Disposition {
                role: Role::Sender,
                settled: true,
                ..disposition.clone()
            };
            frame::write_amqp(cx.output, self.local, |e| e.disposition(&reply));
        }
        for handle in touched {
            self.pump_link(cx, handle);
        }
    }

    /// The broker's unsettled deliveries from `first` to `last`. Delivery ids wrap: a range may run
    /// past u32::MAX back to 0. Only ids held are visited.
    fn unsettled_in(&self, first: u32, last: u32) -> Vec<u32> {
        if first <= last {
            self.unsettled.range(first..=last).map(|(id, _)| *id).collect()
        } else {
            self.unsettled
                .range(first..)
                .chain(self.unsettled.range(..=last))
                .map(|(id, _)| *id)
                .collect()
        }
    }

    /// Holds the peer's outcomes for the broker's deliveries in a transaction: they take effect
    /// when it commits. Deliveries named with a transaction not open stay unsettled.
    fn retire(
        &mut self,
        cx: &mut Context<'_>,
        disposition: &Disposition,
        txn_id: &[u8],
        outcome: Option<&DeliveryState>,
    ) {
        if !cx.transactions.is_open(txn_id) {
            debug!("an outcome in a transaction that is not open is ignored");
            return;
        }
        // An outcome is what a transaction holds (AMQP 1.0, 4.4.4.2); without one, nothing.
        let Some(settled) = outcome.and_then(settlement_of) else {
            debug!("a transactional state without an outcome is ignored");
            return;
        };
        let txn_id = txn_id.to_vec();
        self.each_unsettled(cx, disposition, |cx, outbound, unsettled| {
            let (entry, queue) = outbound.retired();
            let retired = Retired {
                entry,
                queue,
                message: unsettled.message,
                settled: settled.clone(),
            };
            if let Err(error) = cx.transactions.retire(cx.broker, &txn_id, retired) {
                debug!(%error, "a transaction could not hold an outcome");
            }
        });
    }
}

/// The settlement an outcome stands for; `None` for a state that is not an outcome. A
/// modification that does not say the delivery failed is a release (AMQP 1.0, 3.4.5);
/// undeliverable-here is not kept, so the message may come back to the same link.
fn settlement_of(state: &DeliveryState) -> Option<Settled> {
    Some(match state {
        DeliveryState::Accepted => (Settlement::Accepted, None),
        DeliveryState::Rejected(error) => (Settlement::Rejected, error.clone()),
        DeliveryState::Released => (Settlement::Released, None),
        DeliveryState::Modified {
            delivery_failed: true,
            ..
        } => (Settlement::Modified, None),
        DeliveryState::Modified { .. } => (Settlement::Released, None),
        DeliveryState::Declared(_) | DeliveryState::Transactional { .. } | DeliveryState::Other => {
            return None;
        }
    })
}
