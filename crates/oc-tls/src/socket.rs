//! The TCP stream under TLS, read without tokio's short-read shortcut.
//!
//! tokio's `TcpStream::poll_read` takes a read shorter than the buffer to mean the socket
//! is drained and waits for the next readiness edge. On a kernel TCP socket that holds, but
//! socket emulators such as socket_wrapper (which upstream ocserv's and openconnect's test
//! suites preload) hand data over in segments of at most 1500 bytes: the rest of a TLS
//! record then sits unread with no new edge coming, and a login with a few kilobytes of
//! body stalls. Here a read only waits after the socket said `WouldBlock`, at the cost of
//! that one extra `recv` per drained socket.

use std::io;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A [`TcpStream`] whose reads go on until the socket says `WouldBlock`.
#[derive(Debug)]
pub struct TcpSocket(TcpStream);

impl TcpSocket {
    pub fn new(tcp: TcpStream) -> Self {
        Self(tcp)
    }
}

impl Deref for TcpSocket {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        &self.0
    }
}

impl AsyncRead for TcpSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            // try_read clears the readiness only on WouldBlock, never on a short read.
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for TcpSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A peer that sends in 1500-byte pieces over a Unix stream would not show the stall
    /// (the kernel merges them), so this checks the contract instead: every byte the peer
    /// wrote is read, in as many reads as it takes, and EOF comes through.
    #[tokio::test]
    async fn reads_everything_the_peer_sent_then_eof() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sender = tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            for chunk in 0..20u8 {
                tcp.write_all(&[chunk; 1500]).await.unwrap();
            }
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let mut socket = TcpSocket::new(tcp);
        let mut all = Vec::new();
        socket.read_to_end(&mut all).await.unwrap();
        sender.await.unwrap();
        assert_eq!(all.len(), 30_000);
        assert!(all
            .chunks(1500)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| usize::from(*b) == i)));
    }
}
