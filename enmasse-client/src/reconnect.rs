//! Staying connected through broker restarts: a sender and a receiver that reconnect with backoff
//! and never lose a send silently.
//!
//! When the connection goes, a [`ReconnectingSender`] hands back every message that was on the
//! wire without an outcome as [`Sent::Unconfirmed`]: the broker may or may not have it, and only
//! the application knows whether a duplicate is worse than a loss (send it again for
//! at-least-once). Messages not yet on the wire go out on the next connection. A
//! [`ReconnectingReceiver`] attaches again and carries on; the deliveries it had not settled come
//! again from the broker, and settling one of them late fails with [`ClientError::Stale`].
//!
//! Only transient failures ([`ClientError::is_transient`]) are retried. A refused login or link
//! is returned at once: trying again would only be refused again.

use std::{collections::VecDeque, time::Duration};

use crate::{
    config::MessagingConfig,
    connection::{ClientError, Connection, endpoint},
    link::{Delivery, InFlight, Message, Outcome, Receiver, Sender},
};

/// How long to wait between connection attempts: doubling from `initial` up to `max`, each wait
/// shortened by a random part of up to a half so that many clients do not return in step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// How many attempts in a row to make before giving up; `None` tries for ever.
    pub attempts: Option<u32>,
}

impl Default for Backoff {
    /// From 100 ms up to 10 s, for ever: an application outlives a broker's restart.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            attempts: None,
        }
    }
}

impl Backoff {
    /// The wait after `failures` failures in a row, before jitter.
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(31));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// After the `failures`-th failure in a row, `error`: waits before the next attempt, or
    /// returns the error if trying again is pointless or the attempts have run out.
    async fn wait_after(
        &self,
        config: &MessagingConfig,
        error: ClientError,
        failures: u32,
    ) -> Result<(), ClientError> {
        if !error.is_transient() {
            return Err(error);
        }
        if self.attempts.is_some_and(|attempts| failures >= attempts) {
            return Err(ClientError::GaveUp {
                endpoint: endpoint(config),
                attempts: failures,
                last: Box::new(error),
            });
        }
        let delay = self.delay(failures);
        let jitter = delay.mul_f64(crate::connection::rand_fraction() / 2.0);
        tokio::time::sleep(delay - jitter).await;
        Ok(())
    }
}

/// What became of one message given to [`ReconnectingSender::send_all`].
#[derive(Clone, Debug, PartialEq)]
pub enum Sent {
    /// The broker settled it with this outcome.
    Settled(Outcome),
    /// It was on the wire when the connection went: the broker may or may not have it.
    Unconfirmed {
        /// The message, to send again or to give up on.
        message: Message,
        /// How the connection went.
        reason: String,
    },
    /// It was never sent: the link failed for good before its turn.
    Unsent {
        /// The message.
        message: Message,
        /// Why the link failed.
        reason: String,
    },
}

/// A sender to one address that reconnects after the connection goes.
pub struct ReconnectingSender {
    config: MessagingConfig,
    address: String,
    backoff: Backoff,
    window: usize,
    link: Option<(Connection, Sender)>,
    connections: u64,
}

impl ReconnectingSender {
    /// Connects (retrying as `backoff` allows, since the broker may not be up yet) and attaches a
    /// sender to `address`. Up to 100 messages are on the wire at once; see [`Self::window`].
    pub async fn open(config: MessagingConfig, address: &str, backoff: Backoff) -> Result<Self, ClientError> {
        let mut sender = Self {
            config,
            address: address.to_owned(),
            backoff,
            window: 100,
            link: None,
            connections: 0,
        };
        sender.attached().await?;
        Ok(sender)
    }

    /// Sets how many messages may be on the wire without an outcome: more is faster, and more to
    /// hand back unconfirmed if the connection goes.
    pub fn window(mut self, window: usize) -> Self {
        self.window = window.max(1);
        self
    }

    /// Sends one message; see [`Self::send_all`].
    #[allow(
        clippy::expect_used,
        reason = "send_all says what became of each message it is given"
    )]
    pub async fn send(&mut self, message: Message) -> Sent {
        self.send_all([message])
            .await
            .pop()
            .expect("one result per message")
    }

    /// Sends `messages` in order, pipelined, and says what became of each, in the same order.
    /// When the connection goes, it reconnects with backoff and sends what was not yet on the wire;
    /// what was on the wire without an outcome is handed back as [`Sent::Unconfirmed`]. If the
    /// link fails for good (a refusal, or the attempts run out), the rest are [`Sent::Unsent`].
    pub async fn send_all(&mut self, messages: impl IntoIterator<Item = Message>) -> Vec<Sent> {
        let mut waiting: VecDeque<Message> = messages.into_iter().collect();
        let mut in_flight: VecDeque<(Message, InFlight)> = VecDeque::new();
        // Results are pushed in the order given: the oldest message on the wire is always the
        // next one due, and those still waiting come after everything on the wire.
        let mut results = Vec::with_capacity(waiting.len());
        let window = self.window;
        while !waiting.is_empty() || !in_flight.is_empty() {
            let sender = match self.attached().await {
                Ok(sender) => sender,
                Err(error) => {
                    let reason = error.to_string();
                    results.extend(waiting.drain(..).map(|message| Sent::Unsent {
                        message,
                        reason: reason.clone(),
                    }));
                    break;
                }
            };
            let mut lost = None;
            while in_flight.len() < window {
                let Some(message) = waiting.pop_front() else { break };
                match sender.start(message.clone()).await {
                    Ok(settlement) => in_flight.push_back((message, settlement)),
                    Err(error) => {
                        waiting.push_front(message);
                        lost = Some(error);
                        break;
                    }
                }
            }
            if lost.is_none()
                && let Some((message, settlement)) = in_flight.pop_front()
            {
                match sender.outcome(settlement).await {
                    Ok(outcome) => results.push(Sent::Settled(outcome)),
                    Err(error) => {
                        results.push(Sent::Unconfirmed {
                            message,
                            reason: error.to_string(),
                        });
                        lost = Some(error);
                    }
                }
            }
            let Some(error) = lost else { continue };
            // Everything on the wire shares the link's fate: keep what settled before it went,
            // and hand back the rest.
            let reason = error.to_string();
            for (message, settlement) in in_flight.drain(..) {
                results.push(match settlement.settled_already() {
                    Some(outcome) => Sent::Settled(outcome),
                    None => Sent::Unconfirmed {
                        message,
                        reason: reason.clone(),
                    },
                });
            }
            self.link = None;
            if !error.is_transient() {
                results.extend(waiting.drain(..).map(|message| Sent::Unsent {
                    message,
                    reason: reason.clone(),
                }));
            }
        }
        results
    }

    /// The address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// How many connections this sender has opened: 1 until the first reconnect.
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// Detaches and closes the connection.
    pub async fn close(mut self) -> Result<(), ClientError> {
        match self.link.take() {
            Some((connection, sender)) => {
                sender.close().await?;
                connection.close().await
            }
            None => Ok(()),
        }
    }

    /// The attached sender, connecting first if the last connection went.
    async fn attached(&mut self) -> Result<&mut Sender, ClientError> {
        let link = match self.link.take() {
            Some(link) if link.0.is_open() => link,
            _ => {
                let mut failures = 0;
                let link = loop {
                    let error = match open_sender(&self.config, &self.address).await {
                        Ok(link) => break link,
                        Err(error) => error,
                    };
                    failures += 1;
                    self.backoff.wait_after(&self.config, error, failures).await?;
                };
                self.connections += 1;
                link
            }
        };
        Ok(&mut self.link.insert(link).1)
    }
}

/// A receiver from one address that reconnects after the connection goes.
pub struct ReconnectingReceiver {
    config: MessagingConfig,
    address: String,
    credit: u32,
    backoff: Backoff,
    link: Option<(Connection, Receiver)>,
    connections: u64,
}

impl ReconnectingReceiver {
    /// Connects (retrying as `backoff` allows) and attaches a receiver to `address` that keeps
    /// `credit` messages coming ahead of the application.
    pub async fn open(
        config: MessagingConfig,
        address: &str,
        credit: u32,
        backoff: Backoff,
    ) -> Result<Self, ClientError> {
        let mut receiver = Self {
            config,
            address: address.to_owned(),
            credit,
            backoff,
            link: None,
            connections: 0,
        };
        receiver.attached().await?;
        Ok(receiver)
    }

    /// Waits for the next message, reconnecting as often as needed. Fails only for good: a
    /// refusal, or the attempts run out.
    pub async fn recv(&mut self) -> Result<Delivery, ClientError> {
        loop {
            let receiver = self.attached().await?;
            match receiver.recv().await {
                Ok(mut delivery) => {
                    delivery.connection = self.connections;
                    return Ok(delivery);
                }
                Err(error) if error.is_transient() => self.link = None,
                Err(error) => return Err(error),
            }
        }
    }

    /// Accepts `delivery`: the message is gone from the queue.
    pub async fn accept(&mut self, delivery: &Delivery) -> Result<(), ClientError> {
        let settled = self.current(delivery)?.accept(delivery).await;
        self.settled(settled)
    }

    /// Rejects `delivery` with `reason`: it is not delivered again.
    pub async fn reject(&mut self, delivery: &Delivery, reason: &str) -> Result<(), ClientError> {
        let settled = self.current(delivery)?.reject(delivery, reason).await;
        self.settled(settled)
    }

    /// Releases `delivery`, for this or another consumer.
    pub async fn release(&mut self, delivery: &Delivery) -> Result<(), ClientError> {
        let settled = self.current(delivery)?.release(delivery).await;
        self.settled(settled)
    }

    /// The address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// How many connections this receiver has opened: 1 until the first reconnect.
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// Detaches, leaving unsettled deliveries to the broker, and closes the connection.
    pub async fn close(mut self) -> Result<(), ClientError> {
        match self.link.take() {
            Some((connection, receiver)) => {
                receiver.close().await?;
                connection.close().await
            }
            None => Ok(()),
        }
    }

    /// The receiver that brought `delivery`, if it is still attached.
    fn current(&self, delivery: &Delivery) -> Result<&Receiver, ClientError> {
        match &self.link {
            Some((_, receiver)) if delivery.connection == self.connections => Ok(receiver),
            _ => Err(ClientError::Stale {
                address: self.address.clone(),
            }),
        }
    }

    /// Drops a link whose settlement failed for a transient reason: the connection is gone.
    fn settled(&mut self, settled: Result<(), ClientError>) -> Result<(), ClientError> {
        if settled.as_ref().is_err_and(ClientError::is_transient) {
            self.link = None;
        }
        settled
    }

    /// The attached receiver, connecting first if the last connection went.
    async fn attached(&mut self) -> Result<&mut Receiver, ClientError> {
        let link = match self.link.take() {
            Some(link) if link.0.is_open() => link,
            _ => {
                let mut failures = 0;
                let link = loop {
                    let error = match open_receiver(&self.config, &self.address, self.credit).await {
                        Ok(link) => break link,
                        Err(error) => error,
                    };
                    failures += 1;
                    self.backoff.wait_after(&self.config, error, failures).await?;
                };
                self.connections += 1;
                link
            }
        };
        Ok(&mut self.link.insert(link).1)
    }
}

async fn open_sender(config: &MessagingConfig, address: &str) -> Result<(Connection, Sender), ClientError> {
    let mut connection = Connection::open(config).await?;
    let sender = connection.sender(address).await?;
    Ok((connection, sender))
}

async fn open_receiver(
    config: &MessagingConfig,
    address: &str,
    credit: u32,
) -> Result<(Connection, Receiver), ClientError> {
    let mut connection = Connection::open(config).await?;
    let receiver = connection.receiver(address, credit).await?;
    Ok((connection, receiver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_its_initial_wait_up_to_its_maximum() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            attempts: None,
        };
        let delays: Vec<u128> = (1..=6).map(|n| backoff.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(1), "no overflow");
    }
}
