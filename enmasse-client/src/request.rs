//! Request and response over two addresses, as in the post's application: orders come in on one
//! address, a confirmation for each goes out on another.
//!
//! A [`Responder`] takes requests from one address and sends each reply to another, with the
//! request's message id as the reply's correlation id. It accepts a request only once the broker
//! has accepted its reply, so a broker restart between the two never loses an order: the order
//! comes again, and at worst is confirmed twice (the correlation id tells the copies apart). A
//! [`Requester`] is the other side: it sends a request and waits for the reply that names it.
//!
//! Both stay connected through broker restarts ([`crate::reconnect`]).

use std::{collections::HashMap, time::Duration};

use crate::{
    config::MessagingConfig,
    connection::ClientError,
    link::{Delivery, Message, Outcome},
    reconnect::{Backoff, ReconnectingReceiver, ReconnectingSender, Sent},
};

/// What became of a request handed to [`Responder::reply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Its reply was accepted, and so was the request: it is done.
    Replied,
    /// The application refused it; the request was rejected with this reason and no reply sent.
    Rejected {
        /// The application's reason.
        reason: String,
    },
    /// It goes back to the queue to be handled again, for this reason: its reply was not
    /// confirmed, or the request could not be settled after its reply was sent (a second reply
    /// will then follow the first).
    Again {
        /// Why.
        reason: String,
    },
}

/// Whether a settlement failed because the connection that brought the delivery is gone: the
/// broker delivers it again.
fn lost(error: &ClientError) -> bool {
    error.is_transient() || matches!(error, ClientError::Stale { .. })
}

/// `then`, if the request was settled; [`Handled::Again`] if the connection went first.
fn settle(settled: Result<(), ClientError>, then: Handled) -> Result<Handled, ClientError> {
    match settled {
        Ok(()) => Ok(then),
        Err(error) if lost(&error) => Ok(Handled::Again {
            reason: error.to_string(),
        }),
        Err(error) => Err(error),
    }
}

/// Takes requests from one address and replies on another.
pub struct Responder {
    requests: ReconnectingReceiver,
    replies: ReconnectingSender,
}

impl Responder {
    /// Connects a receiver to `requests` and a sender to `replies`.
    pub async fn open(
        config: MessagingConfig,
        requests: &str,
        replies: &str,
        backoff: Backoff,
    ) -> Result<Self, ClientError> {
        let receiver = ReconnectingReceiver::open(config.clone(), requests, 10, backoff.clone()).await?;
        let sender = ReconnectingSender::open(config, replies, backoff).await?;
        Ok(Self {
            requests: receiver,
            replies: sender,
        })
    }

    /// Waits for the next request.
    pub async fn next(&mut self) -> Result<Delivery, ClientError> {
        self.requests.recv().await
    }

    /// Settles `request` with the application's verdict: sends the reply (its correlation id set
    /// to the request's message id, unless it has one) and then accepts the request; or rejects
    /// the request with the reason given. Fails only for good (a refusal, or the attempts ran out);
    /// the request then goes back to the queue with the connection.
    pub async fn reply(
        &mut self,
        request: &Delivery,
        verdict: Result<Message, String>,
    ) -> Result<Handled, ClientError> {
        let reply = match verdict {
            Ok(reply) => reply,
            Err(reason) => {
                let settled = self.requests.reject(request, &reason).await;
                return settle(settled, Handled::Rejected { reason });
            }
        };
        let reply = match (reply.correlation_id.is_some(), request.message_id()) {
            (false, Some(id)) => reply.correlation_id(id),
            _ => reply,
        };
        match self.replies.send(reply).await {
            Sent::Settled(Outcome::Accepted) => match self.requests.accept(request).await {
                Err(error) if lost(&error) => Ok(Handled::Again {
                    reason: format!("its reply was sent, but {error}"),
                }),
                settled => settle(settled, Handled::Replied),
            },
            Sent::Settled(Outcome::Rejected { reason }) => {
                let reason = format!("the broker rejected its reply: {reason}");
                let settled = self.requests.reject(request, &reason).await;
                settle(settled, Handled::Rejected { reason })
            }
            Sent::Settled(other) => {
                let settled = self.requests.release(request).await;
                let reason = format!("the broker did not take its reply ({other:?})");
                settle(settled, Handled::Again { reason })
            }
            Sent::Unconfirmed { reason, .. } => {
                let settled = self.requests.release(request).await;
                let reason = format!("its reply was not confirmed: {reason}");
                settle(settled, Handled::Again { reason })
            }
            Sent::Unsent { reason, .. } => {
                // The reply link failed for good; the request goes back with the connection at the
                // latest, so a failure to release it adds nothing.
                let _ = self.requests.release(request).await;
                Err(ClientError::Link {
                    operation: "reply to a request from",
                    address: self.requests.address().to_owned(),
                    reason,
                })
            }
        }
    }

    /// Closes both links.
    pub async fn close(self) -> Result<(), ClientError> {
        self.requests.close().await?;
        self.replies.close().await
    }
}

/// Sends requests to one address and waits for their replies on another.
///
/// Use one reply address per requester: a reply that names no request of this requester is
/// rejected, with a reason that says so.
pub struct Requester {
    requests: ReconnectingSender,
    replies: ReconnectingReceiver,
    /// Replies that arrived while another was awaited, by correlation id, still unsettled.
    early: HashMap<String, Delivery>,
    /// Requests sent and not yet answered or given up.
    waiting: std::collections::HashSet<String>,
    prefix: String,
    sent: u64,
}

impl Requester {
    /// Connects a sender to `requests` and a receiver to `replies`.
    pub async fn open(
        config: MessagingConfig,
        requests: &str,
        replies: &str,
        backoff: Backoff,
    ) -> Result<Self, ClientError> {
        let prefix = format!(
            "request-{:08x}",
            (crate::connection::rand_fraction() * f64::from(u32::MAX)) as u32
        );
        let receiver = ReconnectingReceiver::open(config.clone(), replies, 10, backoff.clone()).await?;
        let sender = ReconnectingSender::open(config, requests, backoff).await?;
        Ok(Self {
            requests: sender,
            replies: receiver,
            early: HashMap::new(),
            waiting: Default::default(),
            prefix,
            sent: 0,
        })
    }

    /// Sends `request` (with a message id of its own, unless it has one) and waits up to `timeout`
    /// for the reply whose correlation id names it. The reply is accepted before it is returned.
    pub async fn request(&mut self, request: Message, timeout: Duration) -> Result<Delivery, ClientError> {
        let request = match &request.message_id {
            Some(_) => request,
            None => {
                self.sent += 1;
                request.message_id(format!("{}-{}", self.prefix, self.sent))
            }
        };
        let id = request.message_id.clone().unwrap_or_default();
        let address = self.requests.address().to_owned();
        let not_answered = |reason: String| ClientError::NotAnswered {
            address: address.clone(),
            id: id.clone(),
            reason,
        };
        match self.requests.send(request).await {
            Sent::Settled(Outcome::Accepted) => {}
            Sent::Settled(other) => {
                return Err(not_answered(format!("the broker did not take it: {other:?}")));
            }
            Sent::Unconfirmed { reason, .. } => {
                return Err(not_answered(format!(
                    "it may not have reached the broker: {reason}"
                )));
            }
            Sent::Unsent { reason, .. } => return Err(not_answered(format!("it was not sent: {reason}"))),
        }
        self.waiting.insert(id.clone());
        let answered = tokio::time::timeout(timeout, self.reply_to(&id)).await;
        self.waiting.remove(&id);
        match answered {
            Ok(reply) => reply,
            Err(_) => Err(not_answered(format!("no reply within {timeout:?}"))),
        }
    }

    /// Closes both links.
    pub async fn close(self) -> Result<(), ClientError> {
        self.requests.close().await?;
        self.replies.close().await
    }

    /// Receives until the reply to `id` arrives, keeping replies to other waiting requests, and
    /// accepts it.
    async fn reply_to(&mut self, id: &str) -> Result<Delivery, ClientError> {
        loop {
            let reply = match self.early.remove(id) {
                Some(reply) => reply,
                None => self.next_reply(id).await?,
            };
            match self.replies.accept(&reply).await {
                Ok(()) => return Ok(reply),
                // The reply comes again on the new connection.
                Err(error) if lost(&error) => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// The next reply to `id`; replies to other waiting requests are kept for them, and replies to
    /// none are rejected.
    async fn next_reply(&mut self, id: &str) -> Result<Delivery, ClientError> {
        loop {
            let reply = self.replies.recv().await?;
            let reason = match reply.correlation_id() {
                Some(correlation) if correlation == id => return Ok(reply),
                Some(correlation) if self.waiting.contains(&correlation) => {
                    self.early.insert(correlation, reply);
                    continue;
                }
                Some(correlation) => {
                    format!("no request of this requester is waiting for a reply to {correlation}")
                }
                None => "a reply must name its request in its correlation id".to_owned(),
            };
            match self.replies.reject(&reply, &reason).await {
                Err(error) if !lost(&error) => return Err(error),
                _ => {}
            }
        }
    }
}
