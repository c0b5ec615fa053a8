//! The connection state machine: the protocol header, open and close, the idle clock, and the
//! routing of every other frame to its session.

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, atomic::AtomicUsize},
    time::Duration,
};

use enmasse_auth::authenticator::Identity;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;
use tracing::{debug, info};

use super::{
    session::{Outcome, Session},
    transaction::Transactions,
};
use crate::{
    address::queue::Queue,
    amqp::{
        DecodeError,
        decode::Decoder,
        frame::{self, HEARTBEAT},
        performative::{ErrorInfo, Open, Performative, condition},
    },
    broker::Broker,
    connection::HANDSHAKE_TIMEOUT,
    limits::{self, ConnectionSlot, Connections},
    message::Message,
    sasl::AMQP_HEADER,
};

/// The largest frame the broker accepts, and offers in its open.
pub const MAX_FRAME_SIZE: u32 = 65_536;

/// The highest channel (session) number a client may use.
const CHANNEL_MAX: u16 = 255;

/// What the broker offers in its open: an anonymous sender's messages are routed by their `to`,
/// and subscriptions may be shared (Qpid JMS asks for this before it opens a shared one).
const OFFERED_CAPABILITIES: &[&str] = &["ANONYMOUS-RELAY", "SHARED-SUBS"];

/// Frames smaller than this may always be sent (AMQP 1.0, 2.7.1: MIN-MAX-FRAME-SIZE).
const MIN_MAX_FRAME_SIZE: u32 = 512;

/// The shortest interval between heartbeats, whatever idle time-out a peer asks for: a peer that
/// asks for a heartbeat every millisecond does not get the broker to spin.
const MIN_HEARTBEAT: Duration = Duration::from_millis(500);

/// Bytes of messages a connection may be gathering at once (messages of several frames, not yet
/// complete), over all its links: a peer cannot make the broker hold more by opening links.
pub(super) const GATHERING_BUDGET: usize = 32 << 20;

/// A future the engine waits on, boxed so that one set holds them all.
pub(super) type Waiting<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Identifies one link of a connection, across its reattachments: the peer's channel and handle,
/// the serial number of the session it belongs to, and a serial number unique to this attachment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LinkKey {
    pub(super) channel: u16,
    pub(super) session: u64,
    pub(super) handle: u32,
    pub(super) serial: u64,
}

/// Something a link waited for.
pub(super) enum Event {
    /// A queue offered a message to a receiving client's link (`None`: the queue closed).
    Popped(LinkKey, Arc<Queue>, Option<Message>),
    /// The address of a sending client's link has room again.
    Room(LinkKey),
    /// The link's address was removed, its user's right revoked, or the link is gone.
    Ended(LinkKey, Ending),
}

/// Why a link's wait ended without what it waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ending {
    /// The address was removed from the address space.
    Removed,
    /// The user lost the right the link was attached with.
    Revoked,
    /// The link itself ended.
    Gone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the AMQP protocol header.
    Header,
    /// Waiting for the peer's open.
    Opening,
    /// Open.
    Open,
    /// The broker sent its close and waits for the peer's.
    Closing,
    /// Closed both ways, or given up.
    Done,
}

/// What a connection's links share for as long as it lives: its id, and how many temporary
/// addresses they hold.
pub(super) struct Scope {
    /// Unique within the broker process.
    pub(super) id: u64,
    /// The peer's container id, from its open.
    pub(super) container: String,
    /// Temporary addresses (dynamic nodes) held by the connection's links.
    pub(super) temporaries: Arc<AtomicUsize>,
    /// Links on which the peer sends, attached now.
    pub(super) senders: AtomicUsize,
    /// Links on which the peer receives, attached now.
    pub(super) receivers: AtomicUsize,
}

/// What the connection knows that its sessions need: shared with them for one frame or event.
pub(super) struct Context<'a> {
    /// The broker.
    pub(super) broker: &'a Arc<Broker>,
    /// The connection's identity and what its links hold.
    pub(super) scope: &'a Scope,
    /// Who the peer authenticated as.
    pub(super) identity: &'a Identity,
    /// Bytes to write to the peer.
    pub(super) output: &'a mut Vec<u8>,
    /// The largest frame the peer accepts.
    pub(super) max_frame: usize,
    /// Waits of links.
    pub(super) waits: &'a mut FuturesUnordered<Waiting<Event>>,
    /// Outcomes of deliveries from the peer, pending.
    pub(super) outcomes: &'a mut FuturesUnordered<Waiting<Outcome>>,
    /// The next link serial number.
    pub(super) serial: &'a mut u64,
    /// Bytes of incomplete messages the connection holds, within [`GATHERING_BUDGET`].
    pub(super) gathering: &'a mut usize,
    /// The connection's transactions.
    pub(super) transactions: &'a mut Transactions,
}

/// One connection's protocol state.
pub struct Engine {
    broker: Arc<Broker>,
    identity: Arc<Identity>,
    peer: SocketAddr,
    state: State,
    /// Bytes to write to the peer, in order.
    pub output: Vec<u8>,
    peer_max_frame: usize,
    /// How often the peer must hear from the broker (half its idle time-out).
    heartbeat: Option<Duration>,
    /// How long the peer may stay silent.
    idle_timeout: Duration,
    started: Instant,
    last_read: Instant,
    last_sent: Instant,
    sessions: HashMap<u16, Session>,
    /// What links wait for: messages, room, their end.
    pub(super) waits: FuturesUnordered<Waiting<Event>>,
    /// Outcomes of deliveries from the peer that wait for a consumer or the journal.
    pub(super) outcomes: FuturesUnordered<Waiting<Outcome>>,
    serial: u64,
    gathering: usize,
    scope: Scope,
    transactions: Transactions,
    /// The connection's place within the space's connection limits.
    slot: Option<ConnectionSlot>,
}

impl Engine {
    /// A connection of `identity` from `peer`, before its protocol header.
    pub fn new(broker: Arc<Broker>, identity: Arc<Identity>, peer: SocketAddr) -> Self {
        let now = Instant::now();
        let idle_timeout = broker.settings().idle_timeout;
        let id = broker.next_connection_id();
        Self {
            broker,
            identity,
            peer,
            state: State::Header,
            output: Vec::new(),
            peer_max_frame: MIN_MAX_FRAME_SIZE as usize,
            heartbeat: None,
            idle_timeout,
            started: now,
            last_read: now,
            last_sent: now,
            sessions: HashMap::new(),
            waits: FuturesUnordered::new(),
            outcomes: FuturesUnordered::new(),
            serial: 0,
            gathering: 0,
            transactions: Transactions::default(),
            scope: Scope {
                id,
                container: String::new(),
                temporaries: Arc::new(AtomicUsize::new(0)),
                senders: AtomicUsize::new(0),
                receivers: AtomicUsize::new(0),
            },
            slot: None,
        }
    }

    /// Whether the connection is over: nothing more is read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the broker has closed and waits for the peer's close.
    pub fn is_closing(&self) -> bool {
        matches!(self.state, State::Closing | State::Done)
    }

    fn split(&mut self) -> (&mut HashMap<u16, Session>, Context<'_>) {
        (
            &mut self.sessions,
            Context {
                broker: &self.broker,
                scope: &self.scope,
                identity: &self.identity,
                output: &mut self.output,
                max_frame: self.peer_max_frame,
                waits: &mut self.waits,
                outcomes: &mut self.outcomes,
                serial: &mut self.serial,
                gathering: &mut self.gathering,
                transactions: &mut self.transactions,
            },
        )
    }

    /// Takes in bytes from the peer; returns how many were used. Complete frames are always used;
    /// an incomplete one is left for the next call.
    pub fn receive(&mut self, bytes: &[u8]) -> usize {
        let mut pos = 0;
        self.last_read = Instant::now();
        loop {
            let rest = &bytes[pos..];
            match self.state {
                State::Done => return bytes.len(),
                State::Header => {
                    let Some(header) = rest.get(..8) else { return pos };
                    pos += 8;
                    self.output.extend_from_slice(&AMQP_HEADER);
                    if header != AMQP_HEADER {
                        info!(peer = %self.peer, "connection closed: unsupported protocol header {header:?}");
                        self.state = State::Done;
                        return bytes.len();
                    }
                    self.state = State::Opening;
                }
                State::Opening | State::Open | State::Closing => {
                    let header = match frame::Header::parse_amqp(rest, MAX_FRAME_SIZE as usize) {
                        Ok(Some(header)) if header.size <= rest.len() => header,
                        Ok(_) => return pos,
                        Err(err) => {
                            self.close(ErrorInfo::new(condition::FRAMING_ERROR, err.to_string()));
                            return bytes.len();
                        }
                    };
                    pos += header.size;
                    self.frame(header.channel, &rest[header.body_offset..header.size]);
                }
            }
        }
    }

    /// Handles one frame's body.
    fn frame(&mut self, channel: u16, body: &[u8]) {
        if body.is_empty() {
            return; // A heartbeat.
        }
        let mut decoder = Decoder::new(body);
        let performative = match Performative::decode(&mut decoder) {
            Ok(performative) => performative,
            Err(err) => return self.decode_failed(&err),
        };
        let payload = decoder.rest();
        match (self.state, performative) {
            (State::Opening, Performative::Open(open)) => self.open(&open),
            (State::Opening, _) => self.close(ErrorInfo::new(
                condition::NOT_ALLOWED,
                "the first frame of a connection must be an open",
            )),
            (State::Closing, Performative::Close(_)) => self.state = State::Done,
            (State::Closing, Performative::Disposition(disposition)) => {
                // The peer's last outcomes still count: accepted messages are not delivered again.
                let (sessions, mut cx) = self.split();
                if let Some(session) = sessions.get_mut(&channel) {
                    session.disposition(&mut cx, &disposition);
                }
            }
            (State::Closing, _) => {}
            (State::Open, Performative::Open(_)) => {
                self.close(ErrorInfo::new(condition::NOT_ALLOWED, "a second open"));
            }
            (State::Open, Performative::Close(error)) => {
                if let Some(error) = error {
                    debug!(peer = %self.peer, %error, "the peer closed the connection");
                }
                self.end_sessions();
                frame::write_amqp(&mut self.output, 0, |e| e.close(None));
                self.state = State::Done;
            }
            (State::Open, Performative::Begin(begin)) => {
                if self.sessions.contains_key(&channel) {
                    return self.close(ErrorInfo::new(
                        condition::NOT_ALLOWED,
                        format!("channel {channel} already has a session"),
                    ));
                }
                if channel > CHANNEL_MAX {
                    return self.close(ErrorInfo::new(
                        condition::FRAMING_ERROR,
                        format!("channel {channel} is above the channel-max of {CHANNEL_MAX}"),
                    ));
                }
                // The lowest channel of the broker's own not in use; one is free, since the
                // peer's channel (at most CHANNEL_MAX) has no session.
                let local = (0..=CHANNEL_MAX)
                    .find(|c| !self.sessions.values().any(|s| s.local_channel() == *c))
                    .unwrap_or(0);
                self.serial += 1;
                let mut session = Session::begin(local, channel, self.serial, &begin, &mut self.output);
                let policy = self.broker.connection_policy();
                let within = limits::within(
                    policy.and_then(|p| p.max_sessions_per_connection),
                    self.sessions.len(),
                    "sessions",
                );
                if let Err(error) = within {
                    // Answered and ended at once (AMQP 1.0, 2.5.5): the peer learns why.
                    let (_, mut cx) = self.split();
                    session.end(&mut cx, error);
                }
                self.sessions.insert(channel, session);
            }
            (State::Open, performative) => {
                let (sessions, mut cx) = self.split();
                let Some(session) = sessions.get_mut(&channel) else {
                    return self.close(ErrorInfo::new(
                        condition::NOT_ALLOWED,
                        format!("a frame on channel {channel}, which has no session"),
                    ));
                };
                match session.frame(&mut cx, performative, payload) {
                    Ok(true) => {}
                    Ok(false) => {
                        // The session ended both ways.
                        self.sessions.remove(&channel);
                    }
                    Err(error) => self.close(error),
                }
            }
            (State::Header | State::Done, _) => {}
        }
    }

    fn decode_failed(&mut self, err: &DecodeError) {
        self.close(ErrorInfo::new(
            condition::DECODE_ERROR,
            format!("failed to decode a frame: {err}"),
        ));
    }

    fn open(&mut self, open: &Open) {
        self.peer_max_frame = open.max_frame_size.clamp(MIN_MAX_FRAME_SIZE, MAX_FRAME_SIZE) as usize;
        // The peer asks to hear from the broker within its idle time-out: twice as often is safe.
        self.heartbeat = open
            .idle_time_out
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(u64::from(ms) / 2).max(MIN_HEARTBEAT));
        let idle = u32::try_from(self.idle_timeout.as_millis()).unwrap_or(u32::MAX);
        let container = self.broker.settings().container_id.clone();
        frame::write_amqp(&mut self.output, 0, |e| {
            e.open(
                &container,
                MAX_FRAME_SIZE,
                CHANNEL_MAX,
                idle,
                OFFERED_CAPABILITIES,
            );
        });
        self.scope.container = open.container_id.clone();
        self.state = State::Open;
        let policy = self.broker.connection_policy();
        match Connections::admit(
            &self.broker,
            policy.as_ref(),
            &self.identity.username,
            self.peer.ip(),
        ) {
            Ok(slot) => self.slot = Some(slot),
            Err(error) => return self.close(error),
        }
        debug!(peer = %self.peer, container = %open.container_id, user = %self.identity.username, "connection open");
    }

    /// Closes the connection with `error`: the peer is told why, and its sessions stay until its
    /// close.
    pub(super) fn close(&mut self, error: ErrorInfo) {
        if self.is_closing() {
            return;
        }
        info!(peer = %self.peer, %error, "closing the connection");
        // The sessions stay until the peer's close (or the grace period): the outcomes it sent
        // before it saw the broker's close are applied. `finish` lets go of them.
        if self.state == State::Opening {
            // AMQP 1.0, 2.4.5: a close before the open is answered follows an open of the broker's.
            frame::write_amqp(&mut self.output, 0, |e| {
                e.open(&self.broker.settings().container_id, MAX_FRAME_SIZE, 0, 0, &[])
            });
        }
        frame::write_amqp(&mut self.output, 0, |e| e.close(Some(&error)));
        self.state = State::Closing;
    }

    /// Closes the connection because the broker shuts down.
    pub fn shut_down(&mut self) {
        match self.state {
            State::Header | State::Opening => self.state = State::Done,
            _ => self.close(ErrorInfo::new(
                condition::CONNECTION_FORCED,
                "the broker is shutting down",
            )),
        }
    }

    fn end_sessions(&mut self) {
        let (sessions, mut cx) = self.split();
        for (_, mut session) in sessions.drain() {
            session.release(&mut cx);
        }
    }

    /// Offers waiting messages to every receiving link that has credit for them.
    pub fn pump(&mut self) {
        if self.state == State::Open {
            let (sessions, mut cx) = self.split();
            for session in sessions.values_mut() {
                session.pump(&mut cx);
            }
        }
        if !self.output.is_empty() {
            self.last_sent = Instant::now();
        }
    }

    /// Handles what a link waited for.
    pub(super) fn on_event(&mut self, event: Event) {
        let key = match &event {
            Event::Popped(key, ..) | Event::Room(key) | Event::Ended(key, _) => *key,
        };
        let open = self.state == State::Open;
        let (sessions, mut cx) = self.split();
        match sessions.get_mut(&key.channel) {
            Some(session) if open => session.on_event(&mut cx, event),
            _ => {
                if let Event::Popped(_, queue, Some(message)) = event {
                    super::outbound::give_back_unlinked(&queue, message);
                }
            }
        }
    }

    /// Sends the outcome of a delivery that waited for a consumer or the journal.
    pub(super) fn on_outcome(&mut self, outcome: Outcome) {
        if self.state != State::Open {
            return;
        }
        let (sessions, mut cx) = self.split();
        if let Some(session) = sessions.get_mut(&outcome.key.channel)
            && session.serial() == outcome.key.session
        {
            session.on_outcome(&mut cx, outcome);
        }
    }

    /// When the engine next has something to do on its own: a heartbeat to send, or a peer that
    /// has been silent too long.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Header | State::Opening => Some(self.started + HANDSHAKE_TIMEOUT),
            State::Open => {
                let idle = self.last_read + self.idle_timeout;
                Some(match self.heartbeat {
                    Some(every) => idle.min(self.last_sent + every),
                    None => idle,
                })
            }
            State::Closing | State::Done => None,
        }
    }

    /// Sends a heartbeat when one is due, and gives up on a peer that has been silent too long.
    pub fn on_timer(&mut self) {
        let now = Instant::now();
        match self.state {
            State::Header | State::Opening if now >= self.started + HANDSHAKE_TIMEOUT => {
                info!(peer = %self.peer, "connection closed: the client did not open it within {HANDSHAKE_TIMEOUT:?}");
                self.state = State::Done;
            }
            State::Open if now >= self.last_read + self.idle_timeout => {
                self.close(ErrorInfo::new(
                    condition::RESOURCE_LIMIT_EXCEEDED,
                    format!(
                        "no frame arrived within the idle time-out of {:?}",
                        self.idle_timeout
                    ),
                ));
            }
            State::Open if self.heartbeat.is_some_and(|every| now >= self.last_sent + every) => {
                // Any frame shows the peer the broker is alive: only a silent broker sends one.
                if self.output.is_empty() {
                    self.output.extend_from_slice(&HEARTBEAT);
                }
                self.last_sent = now;
            }
            _ => {}
        }
    }

    /// Releases everything the connection holds: credit its senders were given, messages its
    /// receivers did not settle. Outcomes still pending (durable messages being written) finish
    /// on their own.
    pub fn finish(&mut self) {
        self.end_sessions();
        // What a transaction left open held is given back: the client never committed it.
        self.transactions.roll_back_all(&self.broker);
        self.waits.clear();
        let outcomes = std::mem::take(&mut self.outcomes);
        if !outcomes.is_empty() {
            tokio::spawn(super::session::finish_outcomes(outcomes));
        }
    }
}
