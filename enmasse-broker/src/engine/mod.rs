//! The broker's AMQP 1.0 engine: one task per connection drives its connection, session and link
//! state machines ([`connection::Engine`]) over one socket.
//!
//! The task reads frames into a buffer, hands each to the engine, and writes what the engine
//! answers; between reads it waits on what the engine waits for (a queue to offer a message, an
//! address to have room, a journal write to be safe) and on the idle clock. Nothing is passed
//! between tasks per frame, and a message is copied once, from the frame into the bytes the queues
//! and the journal share.

mod attach;
mod connection;
mod inbound;
mod outbound;
mod session;
mod subscription;
mod transaction;

use std::{
    future::poll_fn,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use enmasse_auth::authenticator::Identity;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::sync::CancellationToken;
use tracing::debug;

pub use self::connection::{Engine, MAX_FRAME_SIZE};
use crate::broker::Broker;

/// How long a closing connection waits for its peer's close once it has sent its own.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The most output the engine buffers before it stops offering messages: the socket must take
/// what is there first.
const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// The read buffer of a new connection; it grows to hold the largest frame, and no further.
const INITIAL_READ_BUFFER: usize = 4096;

/// The read buffer of a connection whose peer sends faster than it is read.
const READ_BUFFER_BUSY: usize = 128 * 1024;

/// Runs the AMQP connection on `stream` (after its protocol header and SASL) until it closes, the
/// peer goes away, or `shutdown`.
pub async fn run<S>(
    stream: S,
    identity: Arc<Identity>,
    peer: SocketAddr,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut io = Io {
        stream,
        input: vec![0; INITIAL_READ_BUFFER],
        start: 0,
        filled: 0,
        written: 0,
        flushing: false,
        full: false,
    };
    let mut engine = Engine::new(broker, identity, peer);
    let mut closing_since = None;
    loop {
        engine.pump();
        if engine.is_done() && engine.output.is_empty() && !io.flushing {
            // Closed on both sides: the layers below close too (TLS's close_notify, WebSocket's
            // close frame), as far as the peer still reads.
            let _ = tokio::time::timeout(CLOSE_GRACE, io.stream.shutdown()).await;
            break;
        }
        if engine.is_closing() {
            let since = *closing_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() >= CLOSE_GRACE {
                // Whatever is written goes out; the peer's close is not waited for any longer.
                let _ = tokio::time::timeout(CLOSE_GRACE, io.flush_all(&mut engine.output)).await;
                break;
            }
        }
        let want_read = engine.output.len() < OUTPUT_HIGH_WATER;
        let deadline = engine.next_deadline();
        tokio::select! {
            biased;
            () = shutdown.cancelled(), if !engine.is_closing() => engine.shut_down(),
            polled = poll_fn(|cx| io.poll(cx, &mut engine.output, want_read)) => match polled {
                Ok(Polled::Read) => {
                    let consumed = engine.receive(&io.input[io.start..io.filled]);
                    io.consume(consumed, MAX_FRAME_SIZE as usize);
                }
                Ok(Polled::Wrote) => {}
                Ok(Polled::Eof) => {
                    debug!(%peer, "the peer closed the socket");
                    // What the layers below still hold goes out (a WebSocket's answer to the
                    // peer's close, TLS's close_notify), as far as the peer still reads.
                    let _ = tokio::time::timeout(CLOSE_GRACE, io.stream.shutdown()).await;
                    break;
                }
                Err(err) => {
                    debug!(%peer, error = %err, "the connection's socket failed");
                    break;
                }
            },
            Some(event) = engine.waits.next(), if !engine.waits.is_empty() => engine.on_event(event),
            Some(outcome) = engine.outcomes.next(), if !engine.outcomes.is_empty() => engine.on_outcome(outcome),
            () = tokio::time::sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => engine.on_timer(),
            () = tokio::time::sleep_until(closing_since.map_or_else(far_future, |s| s + CLOSE_GRACE)), if closing_since.is_some() => {}
        }
    }
    engine.finish();
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400)
}

/// What one poll of the socket did.
enum Polled {
    /// Bytes were read into the buffer.
    Read,
    /// Output was written; the engine may produce more.
    Wrote,
    /// The peer closed its side.
    Eof,
}

/// The socket and its buffers.
struct Io<S> {
    stream: S,
    /// Bytes read; `start..filled` are not consumed yet.
    input: Vec<u8>,
    start: usize,
    filled: usize,
    /// How much of the engine's output is written.
    written: usize,
    /// Whether the stream must be flushed (TLS buffers what it encrypts).
    flushing: bool,
    /// Whether the last read filled the buffer: the peer has more ready than it holds.
    full: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    /// Writes what it can of `output`, then reads if `want_read`.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        output: &mut Vec<u8>,
        want_read: bool,
    ) -> Poll<io::Result<Polled>> {
        let mut wrote = false;
        while self.written < output.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &output[self.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    wrote = true;
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => break,
            }
        }
        if self.written > 0 && self.written == output.len() {
            output.clear();
            if output.capacity() > 4 * OUTPUT_HIGH_WATER {
                output.shrink_to(OUTPUT_HIGH_WATER);
            }
            self.written = 0;
            self.flushing = true;
        }
        if self.flushing && output.is_empty() {
            match Pin::new(&mut self.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flushing = false,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {}
            }
        }
        if want_read && self.filled < self.input.len() {
            let mut buf = ReadBuf::new(&mut self.input[self.filled..]);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    if n == 0 {
                        return Poll::Ready(Ok(Polled::Eof));
                    }
                    self.filled += n;
                    self.full = self.filled == self.input.len();
                    return Poll::Ready(Ok(Polled::Read));
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {}
            }
        }
        if wrote {
            return Poll::Ready(Ok(Polled::Wrote));
        }
        Poll::Pending
    }

    /// Drops `consumed` bytes from the front, and keeps room for a frame of up to `max_frame`.
    fn consume(&mut self, consumed: usize, max_frame: usize) {
        self.start += consumed;
        if self.start == self.filled {
            self.start = 0;
            self.filled = 0;
        } else if self.start > 0 {
            self.input.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        // A busy peer gets larger reads, up to a few frames at once.
        let mut wanted = self.input.len();
        if std::mem::take(&mut self.full) {
            wanted = (wanted * 2).min(READ_BUFFER_BUSY);
        }
        // An incomplete frame's header says how large it is (the engine checked it against the
        // maximum): make room for all of it, no more.
        if let Some(head) = self.input.get(..4).filter(|_| self.filled >= 4) {
            let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if size <= max_frame {
                wanted = wanted.max(size);
            }
        }
        if wanted > self.input.len() {
            self.input.resize(wanted, 0);
        }
    }

    /// Writes all of `output`.
    async fn flush_all(&mut self, output: &mut Vec<u8>) {
        let unwritten = output.get(self.written..).unwrap_or_default();
        if self.stream.write_all(unwritten).await.is_ok() {
            let _ = self.stream.flush().await;
        }
        output.clear();
        self.written = 0;
    }
}
