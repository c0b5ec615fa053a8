//! One accepted WebSocket connection as a byte stream (RFC 6455, section 5), for the AMQP engine.
//!
//! The AMQP WebSocket binding carries AMQP's bytes in binary messages, with no relation between
//! message and frame boundaries; so the payloads of the client's binary frames are passed on as
//! they arrive, unmasked in place, and nothing holds a whole message. Each write becomes one binary
//! frame. Pings are answered, a close is echoed and read as the end of the stream, and a frame that
//! breaks the protocol closes the connection with the status code RFC 6455 names for it.

use std::{
    fmt, io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket at once while looking for a frame header; a payload that follows is
/// read straight into the engine's buffer.
const READ_BUFFER: usize = 4096;

/// The largest frame a write becomes; a larger write is taken in parts.
const MAX_OUTGOING_FRAME: usize = 64 * 1024;

/// A control frame's largest payload (RFC 6455, 5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Unwritten output beyond which a ping is not answered: a peer that pings without reading gets
/// no more than this buffered for it (RFC 6455, 5.5.3, lets an answer cover several pings).
const MAX_UNWRITTEN: usize = MAX_OUTGOING_FRAME + 4096;

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// How a client's frame breaks RFC 6455 or the AMQP WebSocket binding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Clients must mask every frame (RFC 6455, 5.1).
    #[error("the client sent an unmasked frame")]
    Unmasked,
    /// No extension is negotiated, so no reserved bit may be set.
    #[error("the client set a reserved bit (no extension was negotiated)")]
    ReservedBits,
    /// AMQP travels in binary messages only.
    #[error("the client sent a text message; AMQP travels in binary messages")]
    Text,
    /// An opcode RFC 6455 does not define.
    #[error("the client sent a frame with the unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// A control frame that is fragmented or longer than 125 bytes.
    #[error("the client sent a fragmented or oversized control frame")]
    BadControl,
    /// A continuation with no message to continue, or a new message before the last one ended.
    #[error("the client interleaved or continued messages out of order")]
    Fragmentation,
    /// A 64-bit length with its most significant bit set.
    #[error("the client declared a payload length over 2^63")]
    Length,
    /// A close frame whose payload is one byte, or a status code no endpoint may send.
    #[error("the client sent a malformed close frame")]
    BadClose,
    /// A close frame whose reason is not UTF-8.
    #[error("the client sent a close reason that is not UTF-8")]
    CloseReason,
}

impl FrameError {
    /// The close status code that answers it: 1003 for data of a type not accepted, 1007 for text
    /// that is not UTF-8, 1002 otherwise.
    fn close_code(&self) -> u16 {
        match self {
            Self::Text => 1003,
            Self::CloseReason => 1007,
            _ => 1002,
        }
    }
}

/// A frame header, as the client sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    len: u64,
}

impl Header {
    fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Parses a client frame's header from the front of `bytes`: `None` until all of it is there,
/// then the header and its length in bytes. Everything a header alone can break is checked here.
fn parse_header(bytes: &[u8]) -> Result<Option<(Header, usize)>, FrameError> {
    let [first, second, ..] = *bytes else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err(FrameError::ReservedBits);
    }
    if second & 0x80 == 0 {
        return Err(FrameError::Unmasked);
    }
    let fin = first & 0x80 != 0;
    let opcode = first & 0x0F;
    match opcode {
        CONTINUATION | BINARY | CLOSE | PING | PONG => {}
        TEXT => return Err(FrameError::Text),
        other => return Err(FrameError::UnknownOpcode(other)),
    }
    let (len, at) = match second & 0x7F {
        126 => match bytes.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match bytes.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    if len >> 63 != 0 {
        return Err(FrameError::Length);
    }
    let Some(mask) = bytes.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
        return Ok(None);
    };
    let header = Header {
        fin,
        opcode,
        mask,
        len,
    };
    if header.is_control() && (!fin || len > MAX_CONTROL_PAYLOAD) {
        return Err(FrameError::BadControl);
    }
    Ok(Some((header, at + 4)))
}

/// Appends a server frame (unmasked, final) with `payload` to `out`.
fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    match payload.len() {
        len @ 0..=125 => out.push(len as u8),
        len @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// XORs `bytes` with `mask`, the first byte being the payload's `offset`th.
fn unmask(bytes: &mut [u8], mask: [u8; 4], offset: u64) {
    let shift = (offset % 4) as usize;
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte ^= mask[(shift + i) % 4];
    }
}

/// Where the reader is in the client's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Before a frame header.
    Header,
    /// In a binary payload: `left` bytes to come, `offset` passed on so far.
    Payload { mask: [u8; 4], offset: u64, left: u64 },
    /// After the client's close, or a frame that ended the connection: the stream has ended.
    Ended,
}

/// A WebSocket connection, after its opening handshake, read and written as the bytes its binary
/// messages carry.
pub struct WebSocketStream<S> {
    inner: S,
    /// Bytes read and not yet parsed: `buffer[start..end]`.
    buffer: Box<[u8]>,
    start: usize,
    end: usize,
    reading: Reading,
    /// Whether the client's last data frame left its message unfinished.
    in_message: bool,
    /// Whole frames to write; `output[written..]` is not written yet.
    output: Vec<u8>,
    written: usize,
    /// Whether a close frame is on its way: nothing is written after it.
    close_sent: bool,
}

impl<S> fmt::Debug for WebSocketStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketStream")
            .field("reading", &self.reading)
            .field("unwritten", &(self.output.len() - self.written))
            .field("close_sent", &self.close_sent)
            .finish_non_exhaustive()
    }
}

impl<S> WebSocketStream<S> {
    /// The connection on `inner`, whose opening handshake is done.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            buffer: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            reading: Reading::Header,
            in_message: false,
            output: Vec::new(),
            written: 0,
            close_sent: false,
        }
    }

    /// Queues a close frame with `code` and `reason`, unless one is queued already.
    fn queue_close(&mut self, code: u16, reason: &str) {
        if self.close_sent {
            return;
        }
        let mut payload = code.to_be_bytes().to_vec();
        // A control payload holds 125 bytes: the reason is cut at a character boundary.
        let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD as usize - 2);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        payload.extend_from_slice(&reason.as_bytes()[..cut]);
        push_frame(&mut self.output, CLOSE, &payload);
        self.close_sent = true;
    }

    /// Answers one whole control frame.
    fn on_control(&mut self, header: Header, payload: &[u8]) -> Result<(), FrameError> {
        match header.opcode {
            PING if self.output.len() - self.written <= MAX_UNWRITTEN && !self.close_sent => {
                push_frame(&mut self.output, PONG, payload);
            }
            CLOSE => {
                let code = match payload {
                    [] => 1000,
                    [_] => return Err(FrameError::BadClose),
                    [high, low, reason @ ..] => {
                        let code = u16::from_be_bytes([*high, *low]);
                        if !valid_close_code(code) {
                            return Err(FrameError::BadClose);
                        }
                        if std::str::from_utf8(reason).is_err() {
                            return Err(FrameError::CloseReason);
                        }
                        code
                    }
                };
                // Echoed, as RFC 6455 (5.5.1) asks; then the stream ends.
                self.queue_close(code, "");
                self.reading = Reading::Ended;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether a client may send `code` in a close frame (RFC 6455, 7.4, and IANA's registry).
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketStream<S> {
    /// Writes the queued frames and flushes them, for answers the engine does not write itself
    /// (pongs, the close): a TLS layer holds what it encrypted until flushed.
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.output.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// Writes the queued frames; ready once all are written.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.output.len() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &self.output[self.written..])) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.written += n,
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
        self.output.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Ends the stream for a frame that broke the protocol: the client is told why (if the socket
    /// takes it now) and the read fails with the reason.
    fn fail(&mut self, cx: &mut Context<'_>, error: FrameError) -> Poll<io::Result<()>> {
        self.queue_close(error.close_code(), &error.to_string());
        self.reading = Reading::Ended;
        let _ = self.poll_answer(cx);
        Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, error)))
    }

    /// Reads more of the client's bytes into the buffer; ready with `false` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let mut read = ReadBuf::new(&mut self.buffer[self.end..]);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        self.end += n;
        Poll::Ready(Ok(n > 0))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WebSocketStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Answers to pings and the close go out even while the engine only reads.
        if let Poll::Ready(Err(err)) = this.poll_answer(cx) {
            return Poll::Ready(Err(err));
        }
        loop {
            match this.reading {
                Reading::Ended => return Poll::Ready(Ok(())),
                Reading::Payload { left: 0, .. } => this.reading = Reading::Header,
                Reading::Payload { mask, offset, left } => {
                    let want = usize::try_from(left).unwrap_or(usize::MAX).min(out.remaining());
                    if want == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    let buffered = this.end - this.start;
                    let n = if buffered > 0 {
                        let n = want.min(buffered);
                        let unfilled = &mut out.initialize_unfilled_to(n)[..n];
                        unfilled.copy_from_slice(&this.buffer[this.start..this.start + n]);
                        this.start += n;
                        n
                    } else {
                        // Nothing buffered: the payload goes straight into the caller's buffer.
                        let unfilled = &mut out.initialize_unfilled_to(want)[..want];
                        let mut read = ReadBuf::new(unfilled);
                        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
                        let n = read.filled().len();
                        if n == 0 {
                            // The socket ended inside a frame.
                            this.reading = Reading::Ended;
                            return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                        }
                        n
                    };
                    let filled = out.filled().len();
                    out.advance(n);
                    unmask(&mut out.filled_mut()[filled..], mask, offset);
                    this.reading = Reading::Payload {
                        mask,
                        offset: offset + n as u64,
                        left: left - n as u64,
                    };
                    return Poll::Ready(Ok(()));
                }
                Reading::Header => {
                    let parsed = match parse_header(&this.buffer[this.start..this.end]) {
                        Ok(parsed) => parsed,
                        Err(err) => return this.fail(cx, err),
                    };
                    if let Some((header, at)) = parsed {
                        if header.is_control() {
                            let whole = at + header.len as usize;
                            if this.end - this.start >= whole {
                                let mut payload = [0u8; MAX_CONTROL_PAYLOAD as usize];
                                let payload = &mut payload[..header.len as usize];
                                payload.copy_from_slice(&this.buffer[this.start + at..this.start + whole]);
                                unmask(payload, header.mask, 0);
                                this.start += whole;
                                if let Err(err) = this.on_control(header, payload) {
                                    return this.fail(cx, err);
                                }
                                let _ = this.poll_answer(cx);
                                continue;
                            }
                        } else {
                            let continues = header.opcode == CONTINUATION;
                            if continues != this.in_message {
                                return this.fail(cx, FrameError::Fragmentation);
                            }
                            this.in_message = !header.fin;
                            this.start += at;
                            this.reading = Reading::Payload {
                                mask: header.mask,
                                offset: 0,
                                left: header.len,
                            };
                            continue;
                        }
                    }
                    if !ready!(this.poll_fill(cx))? {
                        // The client went away without a close frame.
                        this.reading = Reading::Ended;
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WebSocketStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.close_sent {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the WebSocket connection is closing",
            )));
        }
        ready!(this.poll_drain(cx))?;
        if bytes.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = bytes.len().min(MAX_OUTGOING_FRAME);
        push_frame(&mut this.output, BINARY, &bytes[..n]);
        // Taken: what the socket does not take now goes out on the next write or flush.
        if let Poll::Ready(Err(err)) = this.poll_drain(cx) {
            return Poll::Ready(Err(err));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.queue_close(1000, "");
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
