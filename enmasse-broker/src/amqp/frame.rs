//! AMQP frames (AMQP 1.0, 2.3): a 4-byte size, a data offset, a type and a channel, then the body.
//! Sizes are checked before a frame is buffered: a size below the header's 8 bytes or above the
//! negotiated maximum is a framing error, never an allocation.

use super::{FramingError, encode::Encoder};

/// The AMQP frame type.
pub const AMQP_FRAME: u8 = 0x00;
/// The SASL frame type.
pub const SASL_FRAME: u8 = 0x01;

/// A frame's header, read from the first 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The whole frame's size, header included.
    pub size: usize,
    /// Where the body begins, from the frame's start.
    pub body_offset: usize,
    /// The frame type.
    pub kind: u8,
    /// The channel (AMQP) or nothing (SASL).
    pub channel: u16,
}

impl Header {
    /// Reads the header at the start of `bytes`, if 8 bytes are there. `max` is the largest frame
    /// accepted; `kind` the frame type expected.
    pub fn parse(bytes: &[u8], max: usize, kind: u8) -> Result<Option<Self>, FramingError> {
        let Some(head) = bytes.get(..8) else {
            return Ok(None);
        };
        let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if size < 8 {
            return Err(FramingError::TooSmall(size));
        }
        if size > max {
            return Err(FramingError::TooLarge { size, max });
        }
        let body_offset = usize::from(head[4]) * 4;
        if body_offset < 8 || body_offset > size {
            return Err(FramingError::Offset(head[4]));
        }
        if head[5] != kind {
            return Err(FramingError::Type(head[5]));
        }
        Ok(Some(Self {
            size,
            body_offset,
            kind,
            channel: u16::from_be_bytes([head[6], head[7]]),
        }))
    }

    /// Reads an AMQP frame header.
    pub fn parse_amqp(bytes: &[u8], max: usize) -> Result<Option<Self>, FramingError> {
        Self::parse(bytes, max, AMQP_FRAME)
    }
}

/// Writes one frame onto `out`: the header, the body `write` encodes, and `payload` after it.
pub fn write(
    out: &mut Vec<u8>,
    kind: u8,
    channel: u16,
    write: impl FnOnce(&mut Encoder<'_>),
    payload: &[u8],
) {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, 2, kind]);
    out.extend_from_slice(&channel.to_be_bytes());
    write(&mut Encoder::new(out));
    out.extend_from_slice(payload);
    // Frames the broker writes are bounded by the negotiated frame size, far below 4 GiB.
    let size = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Writes an AMQP frame.
pub fn write_amqp(out: &mut Vec<u8>, channel: u16, body: impl FnOnce(&mut Encoder<'_>)) {
    write(out, AMQP_FRAME, channel, body, &[]);
}

/// The empty frame a peer sends to show it is alive.
pub const HEARTBEAT: [u8; 8] = [0, 0, 0, 8, 2, 0, 0, 0];
