//! The AMQP 1.0 performatives (part 2.7) and the types they carry: decoded from a peer's frame
//! through the bounded [`Decoder`], written with the [`Encoder`]. Only the fields the broker acts on
//! are kept; every other field is still checked for structure as it is skipped.

mod write;

pub use self::write::AttachReply;
use super::{
    DecodeError,
    decode::{Decoder, Descriptor, Fields},
    encode::Encoder,
};

/// Descriptor codes (AMQP 1.0, parts 2 to 5).
pub mod descriptor {
    #![allow(missing_docs, reason = "the names are the spec's")]
    pub const OPEN: u64 = 0x10;
    pub const BEGIN: u64 = 0x11;
    pub const ATTACH: u64 = 0x12;
    pub const FLOW: u64 = 0x13;
    pub const TRANSFER: u64 = 0x14;
    pub const DISPOSITION: u64 = 0x15;
    pub const DETACH: u64 = 0x16;
    pub const END: u64 = 0x17;
    pub const CLOSE: u64 = 0x18;
    pub const ERROR: u64 = 0x1d;
    pub const RECEIVED: u64 = 0x23;
    pub const ACCEPTED: u64 = 0x24;
    pub const REJECTED: u64 = 0x25;
    pub const RELEASED: u64 = 0x26;
    pub const MODIFIED: u64 = 0x27;
    pub const SOURCE: u64 = 0x28;
    pub const TARGET: u64 = 0x29;
    pub const COORDINATOR: u64 = 0x30;
    pub const DECLARE: u64 = 0x31;
    pub const DISCHARGE: u64 = 0x32;
    pub const DECLARED: u64 = 0x33;
    pub const TRANSACTIONAL_STATE: u64 = 0x34;
}

/// Which end of a link an endpoint is (AMQP 1.0, 2.8.1): `false` sender, `true` receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends messages.
    Sender,
    /// Receives messages.
    Receiver,
}

impl Role {
    fn from_bool(receiver: bool) -> Self {
        if receiver { Self::Receiver } else { Self::Sender }
    }

    fn as_bool(self) -> bool {
        self == Self::Receiver
    }
}

/// The longest error description the broker sends: with its frame, it fits the 512 bytes every
/// peer accepts.
pub const MAX_DESCRIPTION: usize = 400;

/// An error an endpoint is closed, ended or detached with, or a delivery rejected with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorInfo {
    /// The condition, a symbol such as `amqp:not-found`.
    pub condition: String,
    /// What went wrong, for a person.
    pub description: Option<String>,
}

impl ErrorInfo {
    /// An error with a condition and a description. The description is cut to
    /// [`MAX_DESCRIPTION`] bytes: it may quote what a peer sent, and must fit the smallest frame.
    pub fn new(condition: &str, description: impl Into<String>) -> Self {
        let mut description = description.into();
        if description.len() > MAX_DESCRIPTION {
            let mut end = MAX_DESCRIPTION;
            while !description.is_char_boundary(end) {
                end -= 1;
            }
            description.truncate(end);
            description.push_str("...");
        }
        Self {
            condition: condition.to_owned(),
            description: Some(description),
        }
    }

    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        expect_descriptor(d, descriptor::ERROR, "amqp:error:list")?;
        let mut f = d.list()?;
        let condition = f.next(|d| d.symbol().map(str::to_owned))?.unwrap_or_default();
        let description = f.next(|d| d.string().map(str::to_owned))?;
        f.finish()?;
        Ok(Self {
            condition,
            description,
        })
    }

    fn encode(&self, enc: &mut Encoder<'_>) {
        enc.descriptor(descriptor::ERROR);
        let mut l = enc.list();
        l.field(|e| e.symbol(&self.condition));
        l.optional(self.description.as_deref(), Encoder::string);
        l.end();
    }
}

impl std::fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.description {
            Some(description) => write!(f, "{}: {description}", self.condition),
            None => f.write_str(&self.condition),
        }
    }
}

/// Error conditions the broker sends (AMQP 1.0, 2.8.15 to 2.8.18).
pub mod condition {
    #![allow(missing_docs, reason = "the names are the spec's")]
    pub const INTERNAL_ERROR: &str = "amqp:internal-error";
    pub const NOT_FOUND: &str = "amqp:not-found";
    pub const UNAUTHORIZED_ACCESS: &str = "amqp:unauthorized-access";
    pub const DECODE_ERROR: &str = "amqp:decode-error";
    pub const RESOURCE_LIMIT_EXCEEDED: &str = "amqp:resource-limit-exceeded";
    pub const NOT_ALLOWED: &str = "amqp:not-allowed";
    pub const INVALID_FIELD: &str = "amqp:invalid-field";
    pub const NOT_IMPLEMENTED: &str = "amqp:not-implemented";
    pub const CONNECTION_FORCED: &str = "amqp:connection:forced";
    pub const FRAMING_ERROR: &str = "amqp:connection:framing-error";
    pub const WINDOW_VIOLATION: &str = "amqp:session:window-violation";
    pub const ERRANT_LINK: &str = "amqp:session:errant-link";
    pub const HANDLE_IN_USE: &str = "amqp:session:handle-in-use";
    pub const UNATTACHED_HANDLE: &str = "amqp:session:unattached-handle";
    pub const DETACH_FORCED: &str = "amqp:link:detach-forced";
    pub const MESSAGE_SIZE_EXCEEDED: &str = "amqp:link:message-size-exceeded";
}

/// A delivery's state or outcome (AMQP 1.0, 3.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Processed.
    Accepted,
    /// Not processable, with why.
    Rejected(Option<ErrorInfo>),
    /// Not processed.
    Released,
    /// Not processed, and the attempt may count as failed.
    Modified {
        /// Whether the attempt counts as failed.
        delivery_failed: bool,
        /// Whether this receiver never wants it again.
        undeliverable_here: bool,
    },
    /// A transaction declared, with its id (AMQP 1.0, 4.5.5).
    Declared(Vec<u8>),
    /// Work in a transaction, with the outcome it takes if the transaction commits (4.5.8).
    Transactional {
        /// The transaction.
        txn_id: Vec<u8>,
        /// The outcome; never itself transactional.
        outcome: Option<Box<DeliveryState>>,
    },
    /// Partly received (resumption): nothing the broker settles on.
    Other,
}

impl DeliveryState {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Self::decode_nested(d, true)
    }

    /// Decodes a state; a transactional one only where `transactional` allows, so that states do
    /// not nest (a transactional state's outcome is a plain outcome).
    fn decode_nested(d: &mut Decoder<'_>, transactional: bool) -> Result<Self, DecodeError> {
        let Some(descriptor) = d.descriptor()? else {
            return Err(DecodeError::Invalid(
                "a delivery state without a descriptor".into(),
            ));
        };
        let mut f = d.list()?;
        let state = if descriptor.is(descriptor::ACCEPTED, "amqp:accepted:list") {
            Self::Accepted
        } else if descriptor.is(descriptor::REJECTED, "amqp:rejected:list") {
            Self::Rejected(f.next(ErrorInfo::decode)?)
        } else if descriptor.is(descriptor::RELEASED, "amqp:released:list") {
            Self::Released
        } else if descriptor.is(descriptor::MODIFIED, "amqp:modified:list") {
            Self::Modified {
                delivery_failed: f.next(Decoder::bool)?.unwrap_or(false),
                undeliverable_here: f.next(Decoder::bool)?.unwrap_or(false),
            }
        } else if transactional
            && descriptor.is(descriptor::TRANSACTIONAL_STATE, "amqp:transactional-state:list")
        {
            let txn_id = f
                .next(Decoder::binary)?
                .ok_or_else(|| DecodeError::Invalid("a transactional state without a txn-id".into()))?
                .to_vec();
            let outcome = f.next(|d| Self::decode_nested(d, false))?.map(Box::new);
            Self::Transactional { txn_id, outcome }
        } else if descriptor.is(descriptor::DECLARED, "amqp:declared:list") {
            let txn_id = f.next(Decoder::binary)?.unwrap_or_default().to_vec();
            Self::Declared(txn_id)
        } else if descriptor.is(descriptor::RECEIVED, "amqp:received:list") {
            Self::Other
        } else {
            return Err(DecodeError::Invalid(format!(
                "unknown delivery state {descriptor:?}"
            )));
        };
        f.finish()?;
        Ok(state)
    }

    fn encode(&self, enc: &mut Encoder<'_>) {
        let code = match self {
            Self::Accepted => descriptor::ACCEPTED,
            Self::Rejected(_) => descriptor::REJECTED,
            Self::Released => descriptor::RELEASED,
            Self::Modified { .. } => descriptor::MODIFIED,
            Self::Declared(_) => descriptor::DECLARED,
            Self::Transactional { .. } => descriptor::TRANSACTIONAL_STATE,
            Self::Other => descriptor::RECEIVED,
        };
        enc.descriptor(code);
        let mut l = enc.list();
        match self {
            Self::Rejected(error) => l.optional(error.as_ref(), |e, error| error.encode(e)),
            Self::Modified {
                delivery_failed,
                undeliverable_here,
            } => {
                l.flag(*delivery_failed);
                l.flag(*undeliverable_here);
            }
            Self::Declared(txn_id) => l.field(|e| e.binary(txn_id)),
            Self::Transactional { txn_id, outcome } => {
                l.field(|e| e.binary(txn_id));
                l.optional(outcome.as_deref(), |e, outcome| outcome.encode(e));
            }
            Self::Other => {
                l.field(|e| e.uint(0));
                l.field(|e| e.ulong(0));
            }
            Self::Accepted | Self::Released => {}
        }
        l.end();
    }
}

/// The terminus at either end of a link, as far as the broker reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Terminus {
    /// The node's address.
    pub address: Option<String>,
    /// Terminus durability: 0 none, 1 configuration, 2 unsettled-state.
    pub durable: u32,
    /// Whether the peer asks the broker to create the node.
    pub dynamic: bool,
    /// For a source: `move` or `copy`.
    pub distribution_mode: Option<String>,
    /// For a source: the filters the peer asks for.
    pub filters: Vec<SourceFilter>,
    /// The terminus's expiry policy (`link-detach`, `session-end`, `connection-close`, `never`).
    pub expiry_policy: Option<String>,
    /// The terminus's capabilities (e.g. `topic`, `shared`, `global`).
    pub capabilities: Vec<String>,
    /// For a target: whether it is a transaction coordinator.
    pub coordinator: bool,
}

/// The descriptor of a JMS selector filter, as Qpid JMS, Qpid Proton and Artemis send it
/// (`apache.org:selector-filter:string`, registered in the AMQP filters registry).
pub const SELECTOR_FILTER: u64 = 0x0000_468C_0000_0004;
const SELECTOR_FILTER_NAME: &str = "apache.org:selector-filter:string";

/// One entry of a source's filter set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFilter {
    /// The key the peer names it by.
    pub key: String,
    /// What it asks for.
    pub kind: FilterKind,
}

/// A filter the broker understands, or one it does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterKind {
    /// A JMS selector, its text.
    Selector(String),
    /// Any other filter, by its descriptor as the peer wrote it.
    Other(String),
}

impl Terminus {
    /// A terminus that names the address of `terminus` (the peer's) and claims nothing else: how the
    /// broker names the peer's end of a link in its reply.
    pub fn named_like(terminus: Option<&Terminus>) -> Self {
        Self {
            address: terminus.and_then(|t| t.address.clone()),
            ..Self::default()
        }
    }

    fn decode_source(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        expect_descriptor(d, descriptor::SOURCE, "amqp:source:list")?;
        let mut f = d.list()?;
        let mut source = Self::decode_common(&mut f)?;
        f.skip()?; // dynamic-node-properties
        source.distribution_mode = f.next(|d| d.symbol().map(str::to_owned))?;
        if let Some(filters) = f.next(Decoder::map)? {
            source.filters = filter_set(filters)?;
        }
        f.skip()?; // default-outcome
        f.skip()?; // outcomes
        source.capabilities = capabilities(&mut f)?;
        f.finish()?;
        Ok(source)
    }

    fn decode_target(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        match d.descriptor()? {
            Some(descriptor) if descriptor.is(descriptor::TARGET, "amqp:target:list") => {
                let mut f = d.list()?;
                let mut target = Self::decode_common(&mut f)?;
                f.skip()?; // dynamic-node-properties
                target.capabilities = capabilities(&mut f)?;
                f.finish()?;
                Ok(target)
            }
            Some(descriptor) if descriptor.is(descriptor::COORDINATOR, "amqp:coordinator:list") => {
                let mut f = d.list()?;
                let capabilities = capabilities(&mut f)?;
                f.finish()?;
                Ok(Self {
                    coordinator: true,
                    capabilities,
                    ..Self::default()
                })
            }
            other => Err(DecodeError::Invalid(format!(
                "expected a target, found {other:?}"
            ))),
        }
    }

    /// The fields sources and targets share: address, durable, expiry-policy, timeout, dynamic.
    fn decode_common(f: &mut Fields<'_>) -> Result<Self, DecodeError> {
        let address = f.next(|d| d.string().map(str::to_owned))?;
        let durable = f.next(Decoder::uint)?.unwrap_or(0);
        let expiry_policy = f.next(|d| d.symbol().map(str::to_owned))?;
        f.skip()?; // timeout
        let dynamic = f.next(Decoder::bool)?.unwrap_or(false);
        Ok(Self {
            address,
            durable,
            expiry_policy,
            dynamic,
            ..Self::default()
        })
    }

    /// Whether the terminus lists `capability`.
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// The selector among its filters, if one was asked for.
    pub fn selector(&self) -> Option<&str> {
        self.filters.iter().find_map(|filter| match &filter.kind {
            FilterKind::Selector(text) => Some(text.as_str()),
            FilterKind::Other(_) => None,
        })
    }

    /// Writes the terminus as a source (`source`) or a target, claiming only what is set here:
    /// its durability, its expiry policy (`link-detach` unless set), whether the broker created
    /// it, the filters it applies and its capabilities.
    fn encode(&self, enc: &mut Encoder<'_>, source: bool) {
        let capabilities: Vec<&str> = self.capabilities.iter().map(String::as_str).collect();
        if self.coordinator && !source {
            enc.descriptor(descriptor::COORDINATOR);
            let mut l = enc.list();
            match capabilities.is_empty() {
                true => l.absent(),
                false => l.field(|e| e.symbols(&capabilities)),
            }
            l.end();
            return;
        }
        enc.descriptor(if source {
            descriptor::SOURCE
        } else {
            descriptor::TARGET
        });
        let mut l = enc.list();
        l.optional(self.address.as_deref(), Encoder::string);
        l.field(|e| e.uint(self.durable));
        l.field(|e| e.symbol(self.expiry_policy.as_deref().unwrap_or("link-detach")));
        l.absent(); // timeout
        l.flag(self.dynamic);
        l.absent(); // dynamic-node-properties
        if source {
            l.optional(self.distribution_mode.as_deref(), Encoder::symbol);
            match self.filters.is_empty() {
                true => l.absent(),
                false => l.field(|e| write_filter_set(e, &self.filters)),
            }
            l.absent(); // default-outcome
            l.absent(); // outcomes
        }
        match capabilities.is_empty() {
            true => l.absent(),
            false => l.field(|e| e.symbols(&capabilities)),
        }
        l.end();
    }
}

/// A source's filter set; each value must be a described filter.
fn filter_set(mut map: Fields<'_>) -> Result<Vec<SourceFilter>, DecodeError> {
    let mut filters = Vec::new();
    while map.remaining() > 0 {
        let key = map
            .next(|d| d.symbol().map(str::to_owned))?
            .ok_or_else(|| DecodeError::Invalid("a filter without a name".into()))?;
        let kind = map
            .next(|d| {
                let descriptor = d.descriptor()?.ok_or_else(|| {
                    DecodeError::Invalid(format!("filter {key:?} is not a described value"))
                })?;
                if descriptor.is(SELECTOR_FILTER, SELECTOR_FILTER_NAME) {
                    return d.string().map(|text| FilterKind::Selector(text.to_owned()));
                }
                d.skip()?;
                Ok(FilterKind::Other(match descriptor {
                    Descriptor::Code(code) => format!("{code:#x}"),
                    Descriptor::Symbol(name) => name.to_owned(),
                }))
            })?
            .ok_or_else(|| DecodeError::Invalid(format!("filter {key:?} has no value")))?;
        filters.push(SourceFilter { key, kind });
    }
    Ok(filters)
}

/// Writes the filters the broker applies: selectors only, as they were asked for.
fn write_filter_set(enc: &mut Encoder<'_>, filters: &[SourceFilter]) {
    enc.map(|map| {
        for filter in filters {
            if let FilterKind::Selector(text) = &filter.kind {
                map.entry(
                    |e| e.symbol(&filter.key),
                    |e| {
                        e.descriptor(SELECTOR_FILTER);
                        e.string(text);
                    },
                );
            }
        }
    });
}

/// A terminus's capabilities: one symbol or an array of them.
fn capabilities(f: &mut Fields<'_>) -> Result<Vec<String>, DecodeError> {
    let mut found = Vec::new();
    f.next(|d| d.symbols(|symbol| found.push(symbol.to_owned())))?;
    Ok(found)
}

fn expect_descriptor(d: &mut Decoder<'_>, code: u64, name: &str) -> Result<(), DecodeError> {
    match d.descriptor()? {
        Some(descriptor) if descriptor.is(code, name) => Ok(()),
        other => Err(DecodeError::Invalid(format!("expected {name}, found {other:?}"))),
    }
}

/// Open (AMQP 1.0, 2.7.1).
#[derive(Clone, Debug, Default)]
pub struct Open {
    /// The peer's container.
    pub container_id: String,
    /// The largest frame the peer accepts.
    pub max_frame_size: u32,
    /// The highest channel the peer accepts.
    pub channel_max: u16,
    /// How long the peer waits for a frame before it gives up, in milliseconds.
    pub idle_time_out: Option<u32>,
}

/// Begin (AMQP 1.0, 2.7.2).
#[derive(Clone, Debug, Default)]
pub struct Begin {
    /// For the answer to a begin: the channel of that begin.
    pub remote_channel: Option<u16>,
    /// The id the sender's next transfer has.
    pub next_outgoing_id: u32,
    /// Transfers the sender of the begin accepts.
    pub incoming_window: u32,
    /// Transfers the sender of the begin may send.
    pub outgoing_window: u32,
    /// The highest link handle the sender of the begin accepts.
    pub handle_max: u32,
}

/// Attach (AMQP 1.0, 2.7.3).
#[derive(Clone, Debug)]
pub struct Attach {
    /// The link's name.
    pub name: String,
    /// The handle the sender of the attach uses for the link.
    pub handle: u32,
    /// The role of the sender of the attach.
    pub role: Role,
    /// 0 unsettled, 1 settled, 2 mixed.
    pub snd_settle_mode: u8,
    /// 0 first, 1 second.
    pub rcv_settle_mode: u8,
    /// Where messages come from.
    pub source: Option<Terminus>,
    /// Where messages go.
    pub target: Option<Terminus>,
    /// Whether the peer has unsettled deliveries it wants to resume.
    pub unsettled: bool,
    /// For a sending peer: the count its deliveries start from.
    pub initial_delivery_count: Option<u32>,
    /// The largest message the sender of the attach accepts; 0 or absent for no limit.
    pub max_message_size: Option<u64>,
}

/// Flow (AMQP 1.0, 2.7.4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// The id of the next transfer the sender of the flow expects.
    pub next_incoming_id: Option<u32>,
    /// Transfers the sender of the flow accepts.
    pub incoming_window: u32,
    /// The id of its next transfer.
    pub next_outgoing_id: u32,
    /// Transfers it may send.
    pub outgoing_window: u32,
    /// The link, or none for the session alone.
    pub handle: Option<u32>,
    /// The link's delivery count.
    pub delivery_count: Option<u32>,
    /// The link's credit.
    pub link_credit: Option<u32>,
    /// Messages the sender has waiting.
    pub available: Option<u32>,
    /// Whether the receiver asks the sender to use or give up all credit.
    pub drain: bool,
    /// Whether the sender of the flow asks for a flow back.
    pub echo: bool,
}

/// Transfer (AMQP 1.0, 2.7.5); its payload follows it in the frame.
#[derive(Clone, Debug, Default)]
pub struct Transfer<'a> {
    /// The link.
    pub handle: u32,
    /// The delivery's id; only the first frame of a delivery must carry it.
    pub delivery_id: Option<u32>,
    /// The delivery's tag.
    pub delivery_tag: Option<&'a [u8]>,
    /// The message format; 0 for a standard AMQP message.
    pub message_format: Option<u32>,
    /// Whether the sender settled the delivery.
    pub settled: Option<bool>,
    /// Whether more frames of the delivery follow.
    pub more: bool,
    /// The delivery's state (for resumption).
    pub state: Option<DeliveryState>,
    /// Whether the delivery is resumed.
    pub resume: bool,
    /// Whether the sender gave up the delivery.
    pub aborted: bool,
}

/// Disposition (AMQP 1.0, 2.7.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disposition {
    /// The role of the sender of the disposition.
    pub role: Role,
    /// The first delivery id it applies to.
    pub first: u32,
    /// The last, if more than one.
    pub last: Option<u32>,
    /// Whether the deliveries are settled.
    pub settled: bool,
    /// Their state.
    pub state: Option<DeliveryState>,
}

/// Detach (AMQP 1.0, 2.7.7).
#[derive(Clone, Debug, Default)]
pub struct Detach {
    /// The link.
    pub handle: u32,
    /// Whether the link is closed (not just suspended).
    pub closed: bool,
    /// Why.
    pub error: Option<ErrorInfo>,
}

/// A frame's performative.
#[derive(Debug)]
pub enum Performative<'a> {
    /// Open.
    Open(Open),
    /// Begin.
    Begin(Begin),
    /// Attach.
    Attach(Box<Attach>),
    /// Flow.
    Flow(Flow),
    /// Transfer.
    Transfer(Transfer<'a>),
    /// Disposition.
    Disposition(Disposition),
    /// Detach.
    Detach(Detach),
    /// End, with its error.
    End(Option<ErrorInfo>),
    /// Close, with its error.
    Close(Option<ErrorInfo>),
}

impl<'a> Performative<'a> {
    /// Decodes the performative at the start of `d`; the transfer's payload is what is left.
    pub fn decode(d: &mut Decoder<'a>) -> Result<Self, DecodeError> {
        let code = match d.descriptor()? {
            Some(Descriptor::Code(code)) => code,
            Some(Descriptor::Symbol(name)) => symbolic(name)?,
            None => {
                return Err(DecodeError::Invalid(
                    "a frame body that is not a performative".into(),
                ));
            }
        };
        let mut f = d.list()?;
        let performative = match code {
            descriptor::OPEN => Self::Open(decode_open(&mut f)?),
            descriptor::BEGIN => Self::Begin(decode_begin(&mut f)?),
            descriptor::ATTACH => Self::Attach(Box::new(decode_attach(&mut f)?)),
            descriptor::FLOW => Self::Flow(decode_flow(&mut f)?),
            descriptor::TRANSFER => Self::Transfer(decode_transfer(&mut f)?),
            descriptor::DISPOSITION => Self::Disposition(decode_disposition(&mut f)?),
            descriptor::DETACH => Self::Detach(Detach {
                handle: required(f.next(Decoder::uint)?, "detach handle")?,
                closed: f.next(Decoder::bool)?.unwrap_or(false),
                error: f.next(ErrorInfo::decode)?,
            }),
            descriptor::END => Self::End(f.next(ErrorInfo::decode)?),
            descriptor::CLOSE => Self::Close(f.next(ErrorInfo::decode)?),
            other => return Err(DecodeError::Invalid(format!("unknown performative {other:#x}"))),
        };
        f.finish()?;
        Ok(performative)
    }
}

fn symbolic(name: &str) -> Result<u64, DecodeError> {
    Ok(match name {
        "amqp:open:list" => descriptor::OPEN,
        "amqp:begin:list" => descriptor::BEGIN,
        "amqp:attach:list" => descriptor::ATTACH,
        "amqp:flow:list" => descriptor::FLOW,
        "amqp:transfer:list" => descriptor::TRANSFER,
        "amqp:disposition:list" => descriptor::DISPOSITION,
        "amqp:detach:list" => descriptor::DETACH,
        "amqp:end:list" => descriptor::END,
        "amqp:close:list" => descriptor::CLOSE,
        other => return Err(DecodeError::Invalid(format!("unknown performative {other:?}"))),
    })
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, DecodeError> {
    value.ok_or_else(|| DecodeError::Invalid(format!("the mandatory field {field} is missing")))
}

fn decode_open(f: &mut Fields<'_>) -> Result<Open, DecodeError> {
    let container_id = required(f.next(|d| d.string().map(str::to_owned))?, "open container-id")?;
    f.skip()?; // hostname
    Ok(Open {
        container_id,
        max_frame_size: f.next(Decoder::uint)?.unwrap_or(u32::MAX),
        channel_max: f.next(Decoder::ushort)?.unwrap_or(u16::MAX),
        idle_time_out: f.next(Decoder::uint)?,
    })
}

fn decode_begin(f: &mut Fields<'_>) -> Result<Begin, DecodeError> {
    Ok(Begin {
        remote_channel: f.next(Decoder::ushort)?,
        next_outgoing_id: required(f.next(Decoder::uint)?, "begin next-outgoing-id")?,
        incoming_window: required(f.next(Decoder::uint)?, "begin incoming-window")?,
        outgoing_window: required(f.next(Decoder::uint)?, "begin outgoing-window")?,
        handle_max: f.next(Decoder::uint)?.unwrap_or(u32::MAX),
    })
}

fn decode_attach(f: &mut Fields<'_>) -> Result<Attach, DecodeError> {
    let name = required(f.next(|d| d.string().map(str::to_owned))?, "attach name")?;
    let handle = required(f.next(Decoder::uint)?, "attach handle")?;
    let role = Role::from_bool(required(f.next(Decoder::bool)?, "attach role")?);
    let snd_settle_mode = f.next(Decoder::ubyte)?.unwrap_or(2);
    let rcv_settle_mode = f.next(Decoder::ubyte)?.unwrap_or(0);
    let source = f.next(Terminus::decode_source)?;
    let target = f.next(Terminus::decode_target)?;
    let unsettled = match f.next(Decoder::map)? {
        Some(map) => {
            let entries = map.remaining();
            map.finish()?;
            entries > 0
        }
        None => false,
    };
    f.skip()?; // incomplete-unsettled
    Ok(Attach {
        name,
        handle,
        role,
        snd_settle_mode,
        rcv_settle_mode,
        source,
        target,
        unsettled,
        initial_delivery_count: f.next(Decoder::uint)?,
        max_message_size: f.next(Decoder::ulong)?,
    })
}

fn decode_flow(f: &mut Fields<'_>) -> Result<Flow, DecodeError> {
    Ok(Flow {
        next_incoming_id: f.next(Decoder::uint)?,
        incoming_window: required(f.next(Decoder::uint)?, "flow incoming-window")?,
        next_outgoing_id: required(f.next(Decoder::uint)?, "flow next-outgoing-id")?,
        outgoing_window: required(f.next(Decoder::uint)?, "flow outgoing-window")?,
        handle: f.next(Decoder::uint)?,
        delivery_count: f.next(Decoder::uint)?,
        link_credit: f.next(Decoder::uint)?,
        available: f.next(Decoder::uint)?,
        drain: f.next(Decoder::bool)?.unwrap_or(false),
        echo: f.next(Decoder::bool)?.unwrap_or(false),
    })
}

fn decode_transfer<'a>(f: &mut Fields<'a>) -> Result<Transfer<'a>, DecodeError> {
    let handle = required(f.next(Decoder::uint)?, "transfer handle")?;
    let delivery_id = f.next(Decoder::uint)?;
    let delivery_tag = f.next(Decoder::binary)?;
    if delivery_tag.is_some_and(|tag| tag.len() > 32) {
        return Err(DecodeError::Invalid("a delivery tag longer than 32 bytes".into()));
    }
    let message_format = f.next(Decoder::uint)?;
    let settled = f.next(Decoder::bool)?;
    let more = f.next(Decoder::bool)?.unwrap_or(false);
    f.skip()?; // rcv-settle-mode
    let state = f.next(DeliveryState::decode)?;
    Ok(Transfer {
        handle,
        delivery_id,
        delivery_tag,
        message_format,
        settled,
        more,
        state,
        resume: f.next(Decoder::bool)?.unwrap_or(false),
        aborted: f.next(Decoder::bool)?.unwrap_or(false),
    })
}

fn decode_disposition(f: &mut Fields<'_>) -> Result<Disposition, DecodeError> {
    Ok(Disposition {
        role: Role::from_bool(required(f.next(Decoder::bool)?, "disposition role")?),
        first: required(f.next(Decoder::uint)?, "disposition first")?,
        last: f.next(Decoder::uint)?,
        settled: f.next(Decoder::bool)?.unwrap_or(false),
        state: f.next(DeliveryState::decode)?,
    })
}
