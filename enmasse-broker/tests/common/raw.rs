//! A peer that writes frames by hand: to send what no well-behaved client would (lying lengths,
//! deep nesting, transfers beyond a limit) and to read exactly what the broker answers.

use std::{net::SocketAddr, time::Duration};

use enmasse_broker::amqp::{
    decode::Decoder,
    encode::Encoder,
    frame::{self, Header},
    performative::{AttachReply, ErrorInfo, Flow, Performative, Role, Terminus},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// One frame the broker sent.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) channel: u16,
    pub(crate) body: Vec<u8>,
}

impl Frame {
    /// The frame's performative.
    pub(crate) fn performative(&self) -> Performative<'_> {
        Performative::decode(&mut Decoder::new(&self.body)).unwrap()
    }

    /// The payload after the performative (a transfer's message bytes).
    pub(crate) fn payload(&self) -> &[u8] {
        let mut decoder = Decoder::new(&self.body);
        Performative::decode(&mut decoder).unwrap();
        decoder.rest()
    }
}

/// A connection written by hand.
pub(crate) struct Raw {
    pub(crate) stream: TcpStream,
    buffer: Vec<u8>,
}

impl Raw {
    /// Connects without SASL and opens, with `max_frame_size`; the broker's open is read.
    pub(crate) async fn open(addr: SocketAddr, max_frame_size: u32, idle_time_out: Option<u32>) -> Self {
        let mut raw = Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            buffer: Vec::new(),
        };
        raw.stream.write_all(b"AMQP\x00\x01\x00\x00").await.unwrap();
        let mut header = [0u8; 8];
        raw.stream.read_exact(&mut header).await.unwrap();
        assert_eq!(&header, b"AMQP\x00\x01\x00\x00");
        raw.send(0, |e| {
            e.descriptor(0x10);
            let mut l = e.list();
            l.field(|e| e.string("raw"));
            l.absent();
            l.field(|e| e.uint(max_frame_size));
            l.absent();
            l.optional(idle_time_out, Encoder::uint);
            l.end();
        })
        .await;
        let open = raw.next().await.unwrap();
        assert!(matches!(open.performative(), Performative::Open(_)), "{open:?}");
        raw
    }

    /// Opens and begins a session on channel 0.
    pub(crate) async fn session(addr: SocketAddr) -> Self {
        let mut raw = Self::open(addr, 65_536, None).await;
        raw.send(0, begin).await;
        let begin = raw.next().await.unwrap();
        assert!(
            matches!(begin.performative(), Performative::Begin(_)),
            "{begin:?}"
        );
        raw
    }

    /// Writes one frame on `channel` whose body `body` encodes.
    pub(crate) async fn send(&mut self, channel: u16, body: impl FnOnce(&mut Encoder<'_>)) {
        let mut out = Vec::new();
        frame::write_amqp(&mut out, channel, body);
        self.stream.write_all(&out).await.unwrap();
    }

    /// Writes raw bytes.
    pub(crate) async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Attaches a link named `name` with `handle`, the peer in `role`, on `address`.
    pub(crate) async fn attach(&mut self, name: &str, handle: u32, role: Role, address: &str) -> Frame {
        let terminus = Terminus {
            address: Some(address.to_owned()),
            ..Terminus::default()
        };
        self.send(0, |e| {
            e.attach(&AttachReply {
                name,
                handle,
                role,
                snd_settle_mode: 0,
                source: Some(&terminus),
                target: Some(&terminus),
                initial_delivery_count: (role == Role::Sender).then_some(0),
                max_message_size: None,
            })
        })
        .await;
        self.next_of("attach", |p| matches!(p, Performative::Attach(_)))
            .await
    }

    /// Gives a link `credit` (and `drain`).
    pub(crate) async fn flow(&mut self, handle: u32, delivery_count: u32, credit: u32, drain: bool) {
        let flow = Flow {
            next_incoming_id: Some(0),
            incoming_window: 100_000,
            next_outgoing_id: 0,
            outgoing_window: 100_000,
            handle: Some(handle),
            delivery_count: Some(delivery_count),
            link_credit: Some(credit),
            drain,
            ..Flow::default()
        };
        self.send(0, |e| e.flow(&flow)).await;
    }

    /// Sends one transfer frame of delivery `delivery_id` (the id and tag only on a first frame).
    pub(crate) async fn transfer(&mut self, handle: u32, first: Option<u32>, more: bool, payload: &[u8]) {
        let tag;
        let first = match first {
            Some(id) => {
                tag = id.to_be_bytes();
                Some((id, &tag[..]))
            }
            None => None,
        };
        let mut out = Vec::new();
        frame::write(
            &mut out,
            frame::AMQP_FRAME,
            0,
            |e| e.transfer(handle, first, false, more),
            payload,
        );
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next frame the broker sends, skipping heartbeats; `None` once it closes the socket.
    pub(crate) async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(header) = Header::parse_amqp(&self.buffer, usize::MAX).unwrap()
                && self.buffer.len() >= header.size
            {
                let body = self.buffer[header.body_offset..header.size].to_vec();
                self.buffer.drain(..header.size);
                if body.is_empty() {
                    continue;
                }
                return Some(Frame {
                    channel: header.channel,
                    body,
                });
            }
            let mut chunk = [0u8; 65_536];
            let read = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk))
                .await
                .expect("the broker answers within 5 s");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next frame whose performative `wanted` accepts, skipping others.
    pub(crate) async fn next_of(&mut self, what: &str, wanted: impl Fn(&Performative<'_>) -> bool) -> Frame {
        loop {
            let frame = self
                .next()
                .await
                .unwrap_or_else(|| panic!("the broker closed before a {what}"));
            if wanted(&frame.performative()) {
                return frame;
            }
        }
    }

    /// The error of the close the broker sends, skipping other frames.
    pub(crate) async fn close_error(&mut self) -> ErrorInfo {
        let frame = self
            .next_of("close", |p| matches!(p, Performative::Close(_)))
            .await;
        match frame.performative() {
            Performative::Close(Some(error)) => error,
            other => panic!("a close without an error: {other:?}"),
        }
    }
}

/// Writes a peer's begin: no remote channel, windows of 100,000 transfers.
pub(crate) fn begin(e: &mut Encoder<'_>) {
    e.descriptor(0x11);
    let mut l = e.list();
    l.absent();
    l.field(|e| e.uint(0));
    l.field(|e| e.uint(100_000));
    l.field(|e| e.uint(100_000));
    l.end();
}

/// A message of one data section of `size` bytes.
pub(crate) fn data_message(size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = Encoder::new(&mut out);
    e.descriptor(0x75);
    e.binary(&vec![b'x'; size]);
    out
}
