//! The performatives the broker writes, as methods of the [`Encoder`].

use super::{Disposition, ErrorInfo, Flow, Role, Terminus, descriptor};
use crate::amqp::encode::Encoder;

/// What the broker sends on a link's attach.
#[derive(Clone, Debug)]
pub struct AttachReply<'a> {
    /// The link's name, as the peer gave it.
    pub name: &'a str,
    /// The broker's handle for the link.
    pub handle: u32,
    /// The broker's role.
    pub role: Role,
    /// 0 unsettled, 1 settled, 2 mixed.
    pub snd_settle_mode: u8,
    /// The source; none to refuse a link the broker would send on.
    pub source: Option<&'a Terminus>,
    /// The target; none to refuse a link the broker would receive on.
    pub target: Option<&'a Terminus>,
    /// For the broker as sender: where its delivery count starts.
    pub initial_delivery_count: Option<u32>,
    /// For the broker as receiver: the largest message it takes.
    pub max_message_size: Option<u64>,
}

/// Writes performatives the broker sends.
impl Encoder<'_> {
    /// Open, offering `capabilities`.
    pub fn open(
        &mut self,
        container_id: &str,
        max_frame_size: u32,
        channel_max: u16,
        idle_time_out: u32,
        capabilities: &[&str],
    ) {
        self.descriptor(descriptor::OPEN);
        let mut l = self.list();
        l.field(|e| e.string(container_id));
        l.absent(); // hostname
        l.field(|e| e.uint(max_frame_size));
        l.field(|e| e.ushort(channel_max));
        l.field(|e| e.uint(idle_time_out));
        l.absent(); // outgoing-locales
        l.absent(); // incoming-locales
        l.field(|e| e.symbols(capabilities));
        l.end();
    }

    /// Begin, answering the peer's begin on `remote_channel`.
    pub fn begin(
        &mut self,
        remote_channel: u16,
        next_outgoing_id: u32,
        incoming_window: u32,
        handle_max: u32,
    ) {
        self.descriptor(descriptor::BEGIN);
        let mut l = self.list();
        l.field(|e| e.ushort(remote_channel));
        l.field(|e| e.uint(next_outgoing_id));
        l.field(|e| e.uint(incoming_window));
        l.field(|e| e.uint(u32::MAX));
        l.field(|e| e.uint(handle_max));
        l.end();
    }

    /// Attach.
    pub fn attach(&mut self, reply: &AttachReply<'_>) {
        self.descriptor(descriptor::ATTACH);
        let mut l = self.list();
        l.field(|e| e.string(reply.name));
        l.field(|e| e.uint(reply.handle));
        l.field(|e| e.bool(reply.role.as_bool()));
        l.field(|e| e.ubyte(reply.snd_settle_mode));
        l.field(|e| e.ubyte(0));
        l.optional(reply.source, |e, s| s.encode(e, true));
        l.optional(reply.target, |e, t| t.encode(e, false));
        l.absent(); // unsettled
        l.absent(); // incomplete-unsettled
        l.optional(reply.initial_delivery_count, Encoder::uint);
        l.optional(reply.max_message_size, Encoder::ulong);
        l.end();
    }

    /// Flow.
    pub fn flow(&mut self, flow: &Flow) {
        self.descriptor(descriptor::FLOW);
        let mut l = self.list();
        l.optional(flow.next_incoming_id, Encoder::uint);
        l.field(|e| e.uint(flow.incoming_window));
        l.field(|e| e.uint(flow.next_outgoing_id));
        l.field(|e| e.uint(flow.outgoing_window));
        l.optional(flow.handle, Encoder::uint);
        l.optional(flow.delivery_count, Encoder::uint);
        l.optional(flow.link_credit, Encoder::uint);
        l.optional(flow.available, Encoder::uint);
        l.flag(flow.drain);
        l.flag(flow.echo);
        l.end();
    }

    /// Transfer: the first (or only) frame of a delivery carries its id and tag.
    pub fn transfer(&mut self, handle: u32, first: Option<(u32, &[u8])>, settled: bool, more: bool) {
        self.descriptor(descriptor::TRANSFER);
        let mut l = self.list();
        l.field(|e| e.uint(handle));
        match first {
            Some((delivery_id, tag)) => {
                l.field(|e| e.uint(delivery_id));
                l.field(|e| e.binary(tag));
                l.field(|e| e.uint(0));
                l.flag(settled);
            }
            None => {
                for _ in 0..4 {
                    l.absent();
                }
            }
        }
        l.flag(more);
        l.end();
    }

    /// Disposition.
    pub fn disposition(&mut self, disposition: &Disposition) {
        self.descriptor(descriptor::DISPOSITION);
        let mut l = self.list();
        l.field(|e| e.bool(disposition.role.as_bool()));
        l.field(|e| e.uint(disposition.first));
        l.optional(disposition.last, Encoder::uint);
        l.flag(disposition.settled);
        l.optional(disposition.state.as_ref(), |e, s| s.encode(e));
        l.end();
    }

    /// Detach.
    pub fn detach(&mut self, handle: u32, closed: bool, error: Option<&ErrorInfo>) {
        self.descriptor(descriptor::DETACH);
        let mut l = self.list();
        l.field(|e| e.uint(handle));
        l.flag(closed);
        l.optional(error, |e, error| error.encode(e));
        l.end();
    }

    /// End.
    pub fn end(&mut self, error: Option<&ErrorInfo>) {
        self.descriptor(descriptor::END);
        let mut l = self.list();
        l.optional(error, |e, error| error.encode(e));
        l.end();
    }

    /// Close.
    pub fn close(&mut self, error: Option<&ErrorInfo>) {
        self.descriptor(descriptor::CLOSE);
        let mut l = self.list();
        l.optional(error, |e, error| error.encode(e));
        l.end();
    }
}
