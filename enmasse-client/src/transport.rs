//! A socket whose writes are coalesced: the AMQP engine's frames go into a buffer, and one task
//! writes the buffer out, as many frames per system call as have accumulated.
//!
//! fe2o3-amqp writes and flushes every frame on its own, one `writev` per frame; at full speed that
//! took about a third of a peer's CPU, on either end of a connection. The broker wraps every
//! connection it accepts in [`Coalesced`], and so does this crate for every connection it opens.
//! Here a flush only wakes the writer task, which writes whatever is buffered by then, so frames
//! produced while a write is under way leave together. Nothing waits longer than it takes the writer to be scheduled, and a full buffer makes
//! the engine wait (backpressure), never grow.

use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf},
    sync::Notify,
};

/// Bytes buffered at most before writers wait for the socket.
const CAPACITY: usize = 256 * 1024;

#[derive(Debug, Default)]
struct Shared {
    buffer: Vec<u8>,
    /// Writers (the engine) waiting for room.
    waiting: Option<Waker>,
    /// A flush is waiting for the buffer to be written out.
    flushing: Option<Waker>,
    /// The first write error; every later write fails with it.
    error: Option<io::ErrorKind>,
    /// The engine asked to shut the write side down.
    shutdown: bool,
    /// The writer has written everything and shut the socket's write side.
    closed: bool,
}

/// A stream with coalesced writes; reads go straight to the stream.
#[derive(Debug)]
pub struct Coalesced<S> {
    read: ReadHalf<S>,
    shared: Arc<Mutex<Shared>>,
    wake_writer: Arc<Notify>,
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> Coalesced<S> {
    /// Wraps `stream`, spawning the task that writes its buffer out.
    pub fn new(stream: S) -> Self {
        let (read, write) = tokio::io::split(stream);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let wake_writer = Arc::new(Notify::new());
        tokio::spawn(write_out(write, shared.clone(), wake_writer.clone()));
        Self {
            read,
            shared,
            wake_writer,
        }
    }
}

impl<S> Coalesced<S> {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Writes the buffer out whenever there is something in it, until shutdown or an error.
async fn write_out<S: AsyncWrite>(mut socket: WriteHalf<S>, shared: Arc<Mutex<Shared>>, wake: Arc<Notify>) {
    let mut batch = Vec::with_capacity(CAPACITY);
    loop {
        let notified = wake.notified();
        let shutdown = {
            let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::swap(&mut state.buffer, &mut batch);
            if let Some(waker) = state.waiting.take() {
                waker.wake();
            }
            state.shutdown
        };
        if batch.is_empty() {
            let flushed = shared.lock().unwrap_or_else(|p| p.into_inner()).flushing.take();
            if let Some(waker) = flushed {
                waker.wake();
            }
            if shutdown {
                let _ = socket.shutdown().await;
                let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
                state.closed = true;
                if let Some(waker) = state.flushing.take() {
                    waker.wake();
                }
                return;
            }
            notified.await;
            continue;
        }
        let result = socket.write_all(&batch).await;
        batch.clear();
        if let Err(err) = result {
            let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
            state.error = Some(err.kind());
            state.closed = true;
            for waker in [state.waiting.take(), state.flushing.take()]
                .into_iter()
                .flatten()
            {
                waker.wake();
            }
            return;
        }
    }
}

impl<S> Drop for Coalesced<S> {
    fn drop(&mut self) {
        // The writer finishes what is buffered, shuts the socket down and ends.
        self.shared().shutdown = true;
        self.wake_writer.notify_one();
    }
}

impl<S: AsyncRead> AsyncRead for Coalesced<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<S> AsyncWrite for Coalesced<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let mut state = self.shared();
        if let Some(kind) = state.error {
            return Poll::Ready(Err(kind.into()));
        }
        if state.shutdown {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let room = CAPACITY.saturating_sub(state.buffer.len());
        if room == 0 {
            state.waiting = Some(cx.waker().clone());
            drop(state);
            self.wake_writer.notify_one();
            return Poll::Pending;
        }
        let taken = room.min(bytes.len());
        state.buffer.extend_from_slice(&bytes[..taken]);
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The writer task writes the buffer out as soon as it runs: a flush hands it over.
        let state = self.shared();
        if let Some(kind) = state.error {
            return Poll::Ready(Err(kind.into()));
        }
        drop(state);
        self.wake_writer.notify_one();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.shared();
        if state.closed {
            return Poll::Ready(state.error.map_or(Ok(()), |kind| Err(kind.into())));
        }
        state.shutdown = true;
        state.flushing = Some(cx.waker().clone());
        drop(state);
        self.wake_writer.notify_one();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    use super::*;

    async fn pair() -> (Coalesced<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Coalesced::new(server), client)
    }

    #[tokio::test]
    async fn everything_written_arrives_in_order() {
        let (mut server, mut client) = pair().await;
        let sent: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(1000) {
                server.write_all(chunk).await.unwrap();
                server.flush().await.unwrap();
            }
            server.shutdown().await.unwrap();
            sent
        });
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, writer.await.unwrap());
    }

    #[tokio::test]
    async fn reads_pass_straight_through() {
        let (mut server, mut client) = pair().await;
        client.write_all(b"AMQP\x00\x01\x00\x00").await.unwrap();
        let mut header = [0u8; 8];
        server.read_exact(&mut header).await.unwrap();
        assert_eq!(&header, b"AMQP\x00\x01\x00\x00");
    }
}
