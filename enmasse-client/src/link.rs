//! Senders and receivers on an open [`crate::Connection`].
//!
//! A [`Sender`] sends one message at a time and returns the broker's [`Outcome`], so the caller
//! knows whether the broker took it. A [`Receiver`] hands out [`Delivery`]s, each to be accepted,
//! rejected or released; a delivery left unsettled when the connection goes comes back to the
//! queue.

use fe2o3_amqp::{
    link::{self, DetachError, LinkStateError, ReceiverAttachError, RecvError, SendError, SenderAttachError},
    session::SessionHandle,
    types::{
        definitions::{self, AmqpError},
        messaging::{self, Body, Data, Header, Properties, message::Builder},
        primitives::{Binary, Value},
    },
};

use crate::connection::{ClientError, describe};

/// What the broker did with a message sent.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Outcome {
    /// The broker holds the message.
    Accepted,
    /// The broker will not take it, for the reason given (`amqp:...: description`).
    Rejected {
        /// The reason.
        reason: String,
    },
    /// The broker did not take it this time; it may be sent again.
    Released,
    /// As released, with the broker's advice.
    Modified {
        /// The delivery failed (count it as an attempt).
        delivery_failed: bool,
        /// Do not send it here again.
        undeliverable_here: bool,
    },
}

impl Outcome {
    fn from_amqp(outcome: messaging::Outcome) -> Self {
        match outcome {
            messaging::Outcome::Accepted(_) => Self::Accepted,
            messaging::Outcome::Rejected(rejected) => Self::Rejected {
                reason: rejected
                    .error
                    .as_ref()
                    .map_or_else(|| "no reason given".to_owned(), describe),
            },
            messaging::Outcome::Released(_) => Self::Released,
            messaging::Outcome::Modified(modified) => Self::Modified {
                delivery_failed: modified.delivery_failed.unwrap_or(false),
                undeliverable_here: modified.undeliverable_here.unwrap_or(false),
            },
        }
    }
}

/// A message to send: a body and the few properties applications of EnMasse use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    body: OutgoingBody,
    durable: bool,
    pub(crate) message_id: Option<String>,
    pub(crate) correlation_id: Option<String>,
    subject: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum OutgoingBody {
    Text(String),
    Bytes(Vec<u8>),
}

impl Default for OutgoingBody {
    fn default() -> Self {
        Self::Text(String::new())
    }
}

impl Message {
    /// A message whose body is the string `text` (an AMQP value, as JMS and vertx send text).
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            body: OutgoingBody::Text(text.into()),
            ..Self::default()
        }
    }

    /// A message whose body is `bytes` (an AMQP data section).
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            body: OutgoingBody::Bytes(bytes.into()),
            ..Self::default()
        }
    }

    /// Asks the broker to keep the message safe across its restarts (on durable addresses).
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Sets the message id.
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Sets the correlation id, as a reply names its request.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the subject.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    fn into_amqp(self) -> messaging::Message<Body<Value>> {
        let properties = Properties {
            message_id: self.message_id.map(Into::into),
            correlation_id: self.correlation_id.map(Into::into),
            subject: self.subject,
            ..Properties::default()
        };
        let body = match self.body {
            OutgoingBody::Text(text) => Body::Value(messaging::AmqpValue(Value::String(text))),
            OutgoingBody::Bytes(bytes) => Body::Data(messaging::Batch::new(vec![Data(Binary::from(bytes))])),
        };
        Builder::new()
            .header(Header {
                durable: self.durable,
                ..Header::default()
            })
            .properties(properties)
            .body(body)
            .build()
    }
}

/// A link that sends to one address.
pub struct Sender {
    link: link::Sender,
    address: String,
}

impl Sender {
    pub(crate) async fn attach(
        session: &mut SessionHandle<()>,
        name: String,
        address: &str,
    ) -> Result<Self, ClientError> {
        let link = link::Sender::attach(session, name, address)
            .await
            .map_err(|err| match err {
                SenderAttachError::RemoteClosedWithError(error) => refused("send to", address, &error),
                other => link_failed("attach to", address, other.to_string()),
            })?;
        Ok(Self {
            link,
            address: address.to_owned(),
        })
    }

    /// Sends `message` and waits for the broker's outcome. An error means the outcome is unknown:
    /// the broker may or may not have the message.
    pub async fn send(&mut self, message: Message) -> Result<Outcome, ClientError> {
        let in_flight = self.start(message).await?;
        self.outcome(in_flight).await
    }

    /// Puts `message` on the wire without waiting for its outcome, once the broker gives credit.
    /// An error means it was not sent.
    pub(crate) async fn start(&mut self, message: Message) -> Result<InFlight, ClientError> {
        let settlement = self
            .link
            .send_batchable(message.into_amqp())
            .await
            .map_err(|e| send_failed(e, &self.address))?;
        Ok(InFlight { settlement })
    }

    /// Waits for the outcome of `in_flight`, sent on this link, or for the link to go first. An
    /// error means the outcome is unknown. (fe2o3-amqp leaves the outcome of a message sent just
    /// as the connection drops pending for ever, so the link's end is watched too.)
    pub(crate) async fn outcome(&mut self, in_flight: InFlight) -> Result<Outcome, ClientError> {
        tokio::select! {
            biased;
            sent = in_flight.settlement => settled(sent, &self.address),
            lost = self.link.on_detach() => Err(link_failed(
                "send to",
                &self.address,
                format!("the link went before the broker settled the message: {lost}"),
            )),
        }
    }

    /// The address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Detaches the link.
    pub async fn close(self) -> Result<(), ClientError> {
        let address = self.address;
        self.link
            .close()
            .await
            .map_err(|e| link_failed("detach from", &address, e.to_string()))
    }
}

/// A message on the wire, whose outcome is still to come.
pub(crate) struct InFlight {
    settlement: link::delivery::DeliveryFut<Result<messaging::Outcome, SendError>>,
}

impl InFlight {
    /// The outcome, if the broker settled the message already.
    pub(crate) fn settled_already(self) -> Option<Outcome> {
        use futures_util::FutureExt;
        match self.settlement.now_or_never() {
            Some(Ok(outcome)) => Some(Outcome::from_amqp(outcome)),
            _ => None,
        }
    }
}

fn settled(sent: Result<messaging::Outcome, SendError>, address: &str) -> Result<Outcome, ClientError> {
    sent.map(Outcome::from_amqp).map_err(|e| send_failed(e, address))
}

fn send_failed(error: SendError, address: &str) -> ClientError {
    match error {
        SendError::LinkStateError(LinkStateError::RemoteClosedWithError(error))
        | SendError::Detached(DetachError::RemoteClosedWithError(error)) => {
            refused("send to", address, &error)
        }
        other => link_failed("send to", address, other.to_string()),
    }
}

/// A message received, to be settled with [`Receiver::accept`], [`Receiver::reject`] or
/// [`Receiver::release`].
#[derive(Debug)]
pub struct Delivery {
    inner: link::delivery::Delivery<Body<Value>>,
    /// Which connection of a reconnecting receiver delivered it (0 for a plain receiver).
    pub(crate) connection: u64,
}

impl Delivery {
    /// The body as text: a string value, or a data section that is UTF-8.
    pub fn text(&self) -> Option<String> {
        match self.inner.body() {
            Body::Value(messaging::AmqpValue(Value::String(text))) => Some(text.clone()),
            Body::Data(batch) => {
                let bytes: Vec<u8> = batch.iter().flat_map(|data| data.0.iter().copied()).collect();
                String::from_utf8(bytes).ok()
            }
            _ => None,
        }
    }

    /// The body as bytes: the data sections, or the UTF-8 of a string value.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match self.inner.body() {
            Body::Data(batch) => Some(batch.iter().flat_map(|data| data.0.iter().copied()).collect()),
            Body::Value(messaging::AmqpValue(Value::String(text))) => Some(text.as_bytes().to_vec()),
            _ => None,
        }
    }

    /// The message id, if it is a string.
    pub fn message_id(&self) -> Option<String> {
        id_text(self.inner.message().properties.as_ref()?.message_id.as_ref()?)
    }

    /// The correlation id, if it is a string.
    pub fn correlation_id(&self) -> Option<String> {
        id_text(
            self.inner
                .message()
                .properties
                .as_ref()?
                .correlation_id
                .as_ref()?,
        )
    }

    /// How many times the broker delivered this message before, as far as it counted.
    pub fn delivery_count(&self) -> u32 {
        self.inner
            .message()
            .header
            .as_ref()
            .map_or(0, |header| header.delivery_count)
    }
}

fn id_text(id: &messaging::MessageId) -> Option<String> {
    match id {
        messaging::MessageId::String(text) => Some(text.clone()),
        messaging::MessageId::Ulong(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A link that receives from one address.
pub struct Receiver {
    link: link::Receiver,
    address: String,
}

impl Receiver {
    pub(crate) async fn attach(
        session: &mut SessionHandle<()>,
        name: String,
        address: &str,
        credit: u32,
    ) -> Result<Self, ClientError> {
        let link = link::Receiver::builder()
            .name(name)
            .source(address)
            .credit_mode(link::CreditMode::Auto(credit.max(1)))
            .attach(session)
            .await
            .map_err(|err| match err {
                ReceiverAttachError::RemoteClosedWithError(error) => refused("receive from", address, &error),
                other => link_failed("attach to", address, other.to_string()),
            })?;
        Ok(Self {
            link,
            address: address.to_owned(),
        })
    }

    /// Waits for the next message.
    pub async fn recv(&mut self) -> Result<Delivery, ClientError> {
        match self.link.recv::<Body<Value>>().await {
            Ok(inner) => Ok(Delivery { inner, connection: 0 }),
            Err(RecvError::LinkStateError(LinkStateError::RemoteClosedWithError(error))) => {
                Err(refused("receive from", &self.address, &error))
            }
            Err(other) => Err(link_failed("receive from", &self.address, other.to_string())),
        }
    }

    /// Tells the broker the message was processed: it is gone from the queue.
    pub async fn accept(&self, delivery: &Delivery) -> Result<(), ClientError> {
        self.link
            .accept(&delivery.inner)
            .await
            .map_err(|e| link_failed("settle a delivery from", &self.address, e.to_string()))
    }

    /// Tells the broker the message cannot be processed, and why: it is not delivered again.
    pub async fn reject(&self, delivery: &Delivery, reason: &str) -> Result<(), ClientError> {
        let error = definitions::Error::new(AmqpError::PreconditionFailed, Some(reason.to_owned()), None);
        self.link
            .reject(&delivery.inner, error)
            .await
            .map_err(|e| link_failed("settle a delivery from", &self.address, e.to_string()))
    }

    /// Gives the message back to the broker, for this or another consumer.
    pub async fn release(&self, delivery: &Delivery) -> Result<(), ClientError> {
        self.link
            .release(&delivery.inner)
            .await
            .map_err(|e| link_failed("settle a delivery from", &self.address, e.to_string()))
    }

    /// The address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Detaches the link; unsettled deliveries go back to the queue.
    pub async fn close(self) -> Result<(), ClientError> {
        let address = self.address;
        self.link
            .close()
            .await
            .map_err(|e| link_failed("detach from", &address, e.to_string()))
    }
}

fn refused(operation: &'static str, address: &str, error: &definitions::Error) -> ClientError {
    ClientError::Refused {
        operation,
        address: address.to_owned(),
        reason: describe(error),
    }
}

fn link_failed(operation: &'static str, address: &str, reason: String) -> ClientError {
    ClientError::Link {
        operation,
        address: address.to_owned(),
        reason,
    }
}
