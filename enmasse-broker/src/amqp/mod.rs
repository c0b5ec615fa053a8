//! The broker's own AMQP 1.0 codec: frames, performatives and message sections, decoded from peer
//! bytes without trusting a single declared length, and written for the engine in [`crate::engine`].
//!
//! Nothing here allocates by a size a peer declares, recurses deeper than [`decode::MAX_DEPTH`],
//! or panics on any input: every read is checked against the bytes present.

pub mod decode;
pub mod encode;
pub mod frame;
pub mod performative;
pub mod sections;

/// Why bytes from a peer could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A value runs past the bytes present.
    #[error("a value runs past the end of its frame")]
    Truncated,
    /// Values nest deeper than the broker reads.
    #[error("values nest deeper than {} levels", decode::MAX_DEPTH)]
    TooDeep,
    /// A value is not what the spec allows here.
    #[error("{0}")]
    Invalid(String),
}

/// Why a frame header is unacceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A size below the 8 bytes of the header itself.
    #[error("a frame of {0} bytes, smaller than its own header")]
    TooSmall(usize),
    /// A size above the negotiated maximum.
    #[error("a frame of {size} bytes, larger than the negotiated max-frame-size of {max}")]
    TooLarge {
        /// The declared size.
        size: usize,
        /// The largest accepted.
        max: usize,
    },
    /// A data offset outside the frame.
    #[error("a frame whose data offset {0} lies outside it")]
    Offset(u8),
    /// A frame of another type than expected here.
    #[error("a frame of type {0}, not expected here")]
    Type(u8),
}
