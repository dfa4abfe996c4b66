//! The I/O side of the messages between the server's processes (`oc_proto::ipc`): framed
//! exchanges over blocking Unix stream sockets, with file descriptors passed alongside a
//! message (SCM_RIGHTS), a pool of channels for concurrent callers, and the serving loop.
//!
//! Each channel carries one request and its reply at a time. A channel on which anything
//! goes wrong (a timeout, a broken frame) is closed rather than reused: its stream may be
//! out of step, and a fresh exchange on it could pair a request with a stale reply.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use oc_proto::ipc::{self, IpcError, Message, FRAME_HEADER_LEN};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Most descriptors passed with one message.
pub const MAX_FDS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("{peer}: {source}")]
    Io {
        peer: &'static str,
        source: std::io::Error,
    },
    #[error("{peer} closed the channel")]
    Closed { peer: &'static str },
    #[error("{peer}: {source}")]
    Message {
        peer: &'static str,
        source: IpcError,
    },
    #[error("{peer}: no channel free within {0:?}", .waited)]
    Busy {
        peer: &'static str,
        waited: Duration,
    },
    #[error("{peer}: every channel failed; the process is gone")]
    Gone { peer: &'static str },
}

/// A message and the descriptors that came with it.
#[derive(Debug)]
pub struct Received<T> {
    pub msg: T,
    pub fds: Vec<OwnedFd>,
}

/// One end of a socketpair between two of the server's processes.
#[derive(Debug)]
pub struct Channel {
    stream: UnixStream,
    /// Who is at the other end, for errors.
    peer: &'static str,
}

impl Channel {
    pub fn new(stream: impl Into<UnixStream>, peer: &'static str) -> Self {
        Self {
            stream: stream.into(),
            peer,
        }
    }

    /// Both ends of a new socketpair.
    pub fn pair(near: &'static str, far: &'static str) -> std::io::Result<(Self, Self)> {
        let (a, b) = UnixStream::pair()?;
        Ok((Self::new(a, far), Self::new(b, near)))
    }

    pub fn into_fd(self) -> OwnedFd {
        self.stream.into()
    }

    /// Replies take at most this long (a stalled peer is a failed exchange).
    pub fn set_timeout(&self, limit: Option<Duration>) -> Result<(), ChannelError> {
        self.stream
            .set_read_timeout(limit)
            .and_then(|()| self.stream.set_write_timeout(limit))
            .map_err(|source| self.io(source))
    }

    fn io(&self, source: std::io::Error) -> ChannelError {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            return ChannelError::Closed { peer: self.peer };
        }
        ChannelError::Io {
            peer: self.peer,
            source,
        }
    }

    fn message(&self, source: IpcError) -> ChannelError {
        ChannelError::Message {
            peer: self.peer,
            source,
        }
    }

    /// Sends one message, with `fds` attached to its first byte.
    pub fn send<T: Serialize + Message>(
        &mut self,
        msg: &T,
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), ChannelError> {
        let frame = ipc::encode(msg).map_err(|e| self.message(e))?;
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(self.io(std::io::Error::other(
                "too many descriptors for one message",
            )));
        }
        // Again after a signal: a socket with a timeout returns EINTR even under SA_RESTART.
        let sent = rustix::io::retry_on_intr(|| {
            rustix::net::sendmsg(
                self.stream.as_fd(),
                &[IoSlice::new(&frame)],
                &mut control,
                SendFlags::NOSIGNAL,
            )
        })
        .map_err(|e| self.io(e.into()))?;
        let rest = frame.get(sent..).unwrap_or_default();
        self.stream.write_all(rest).map_err(|e| self.io(e))
    }

    /// Receives one message and any descriptors sent with it.
    pub fn recv<T: DeserializeOwned + Message>(&mut self) -> Result<Received<T>, ChannelError> {
        let mut header = [0u8; FRAME_HEADER_LEN - 1];
        let mut fds = Vec::new();
        let mut got = 0;
        while got < header.len() {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let slice = header.get_mut(got..).unwrap_or_default();
            let received = rustix::io::retry_on_intr(|| {
                rustix::net::recvmsg(
                    self.stream.as_fd(),
                    &mut [IoSliceMut::new(&mut *slice)],
                    &mut control,
                    RecvFlags::CMSG_CLOEXEC,
                )
            })
            .map_err(|e| self.io(e.into()))?;
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(passed) = message {
                    fds.extend(passed);
                }
            }
            if received.bytes == 0 {
                return Err(ChannelError::Closed { peer: self.peer });
            }
            got += received.bytes;
        }
        let len = ipc::frame_len(header).map_err(|e| self.message(e))?;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).map_err(|e| self.io(e))?;
        let msg = ipc::decode(&body).map_err(|e| self.message(e))?;
        Ok(Received { msg, fds })
    }

    /// One request and its reply.
    pub fn call<Q, R>(&mut self, request: &Q, fds: &[BorrowedFd<'_>]) -> Result<R, ChannelError>
    where
        Q: Serialize + Message,
        R: DeserializeOwned + Message,
    {
        self.send(request, fds)?;
        Ok(self.recv::<R>()?.msg)
    }

    /// Answers requests with `handler` until the other end closes the channel or sends
    /// something that is not a request (then the channel is closed: it cannot be trusted
    /// to be in step any more). Returns why it stopped.
    pub fn serve<Q, R>(mut self, mut handler: impl FnMut(Received<Q>) -> R) -> ChannelError
    where
        Q: DeserializeOwned + Message,
        R: Serialize + Message,
    {
        loop {
            let request = match self.recv::<Q>() {
                Ok(r) => r,
                Err(e) => return e,
            };
            let reply = handler(request);
            if let Err(e) = self.send(&reply, &[]) {
                return e;
            }
        }
    }
}

/// Channels to one process shared by many callers: a caller takes a free channel for one
/// exchange. A channel that fails is dropped; when none are left the peer is gone.
#[derive(Debug)]
pub struct ChannelPool {
    free: Mutex<Vec<Channel>>,
    returned: Condvar,
    /// Channels not yet dropped (free or in use).
    alive: Mutex<usize>,
    peer: &'static str,
    /// How long a caller waits for a free channel.
    wait: Duration,
}

impl ChannelPool {
    pub fn new(channels: Vec<Channel>, peer: &'static str, wait: Duration) -> Self {
        Self {
            alive: Mutex::new(channels.len()),
            free: Mutex::new(channels),
            returned: Condvar::new(),
            peer,
            wait,
        }
    }

    /// One exchange on a free channel, blocking the calling thread (a handshake's
    /// signature, asked from inside OpenSSL).
    pub fn call<Q, R>(&self, request: &Q) -> Result<R, ChannelError>
    where
        Q: Serialize + Message,
        R: DeserializeOwned + Message,
    {
        let mut channel = self.take()?;
        match channel.call(request, &[]) {
            Ok(reply) => {
                crate::server::lock(&self.free).push(channel);
                self.returned.notify_one();
                Ok(reply)
            }
            Err(e) => {
                *crate::server::lock(&self.alive) -= 1;
                self.returned.notify_all();
                Err(e)
            }
        }
    }

    fn take(&self) -> Result<Channel, ChannelError> {
        let mut free = crate::server::lock(&self.free);
        loop {
            if let Some(channel) = free.pop() {
                return Ok(channel);
            }
            if *crate::server::lock(&self.alive) == 0 {
                return Err(ChannelError::Gone { peer: self.peer });
            }
            let (guard, timeout) = self
                .returned
                .wait_timeout(free, self.wait)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            free = guard;
            if timeout.timed_out() && free.is_empty() {
                return Err(ChannelError::Busy {
                    peer: self.peer,
                    waited: self.wait,
                });
            }
        }
    }
}

/// A channel of an [`AsyncChannelPool`]: as received, or registered with the runtime.
#[derive(Debug)]
enum AsyncSlot {
    Std(UnixStream),
    Tokio(tokio::net::UnixStream),
}

/// Channels used from async code (the network process's tasks): an exchange awaits the
/// answer without holding a thread. The channels are registered with the runtime on first
/// use (the pool is made before the runtime exists). Failed channels are dropped, as in
/// [`ChannelPool`].
#[derive(Debug)]
pub struct AsyncChannelPool {
    free: Mutex<Vec<AsyncSlot>>,
    /// One permit per channel not yet dropped.
    slots: tokio::sync::Semaphore,
    alive: std::sync::atomic::AtomicUsize,
    peer: &'static str,
    /// How long an exchange may take, and a caller wait for a free channel.
    limit: Duration,
}

impl AsyncChannelPool {
    pub fn new(channels: Vec<OwnedFd>, peer: &'static str, limit: Duration) -> Self {
        let count = channels.len();
        Self {
            free: Mutex::new(
                channels
                    .into_iter()
                    .map(|fd| AsyncSlot::Std(fd.into()))
                    .collect(),
            ),
            slots: tokio::sync::Semaphore::new(count),
            alive: std::sync::atomic::AtomicUsize::new(count),
            peer,
            limit,
        }
    }

    /// One exchange on a free channel.
    pub async fn call<Q, R>(&self, request: &Q) -> Result<R, ChannelError>
    where
        Q: Serialize + Message,
        R: DeserializeOwned + Message,
    {
        let peer = self.peer;
        let permit = tokio::time::timeout(self.limit, self.slots.acquire())
            .await
            .map_err(|_| ChannelError::Busy {
                peer,
                waited: self.limit,
            })?
            .map_err(|_| ChannelError::Gone { peer })?;
        let mut taken = Taken {
            pool: self,
            permit: Some(permit),
        };
        let mut stream = match crate::server::lock(&self.free).pop() {
            Some(AsyncSlot::Tokio(stream)) => stream,
            Some(AsyncSlot::Std(stream)) => stream
                .set_nonblocking(true)
                .and_then(|()| tokio::net::UnixStream::from_std(stream))
                .map_err(|source| ChannelError::Io { peer, source })?,
            None => return Err(ChannelError::Gone { peer }),
        };
        let exchange = exchange::<Q, R>(&mut stream, request, peer);
        let result = tokio::time::timeout(self.limit, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(ChannelError::Io {
                    peer,
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {} s", self.limit.as_secs()),
                    ),
                })
            });
        if result.is_ok() {
            taken.give_back(stream);
        }
        result
    }

    /// Takes a channel out of service for good, with its permit; closes the pool when it
    /// was the last.
    fn retire(&self, permit: tokio::sync::SemaphorePermit<'_>) {
        permit.forget();
        if self.alive.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            self.slots.close();
        }
    }
}

/// A channel taken for one exchange. Handed back after a whole exchange; otherwise (an
/// error, or the caller dropped mid-exchange, which leaves the channel out of step) it
/// is retired with its permit, so permits and channels always match.
struct Taken<'a> {
    pool: &'a AsyncChannelPool,
    permit: Option<tokio::sync::SemaphorePermit<'a>>,
}

impl Taken<'_> {
    fn give_back(&mut self, stream: tokio::net::UnixStream) {
        crate::server::lock(&self.pool.free).push(AsyncSlot::Tokio(stream));
        // The permit is released (dropped) with the channel back in the pool.
        self.permit = None;
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.pool.retire(permit);
        }
    }
}

/// Writes one request frame and reads the reply frame.
async fn exchange<Q, R>(
    stream: &mut tokio::net::UnixStream,
    request: &Q,
    peer: &'static str,
) -> Result<R, ChannelError>
where
    Q: Serialize + Message,
    R: DeserializeOwned + Message,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            ChannelError::Closed { peer }
        } else {
            ChannelError::Io { peer, source }
        }
    };
    let message = |source| ChannelError::Message { peer, source };
    let frame = ipc::encode(request).map_err(message)?;
    stream.write_all(&frame).await.map_err(io)?;
    let mut header = [0u8; FRAME_HEADER_LEN - 1];
    stream.read_exact(&mut header).await.map_err(io)?;
    let mut body = vec![0u8; ipc::frame_len(header).map_err(message)?];
    stream.read_exact(&mut body).await.map_err(io)?;
    ipc::decode(&body).map_err(message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use oc_proto::ipc::{MainReply, MainRequest};

    #[test]
    fn requests_and_descriptors_cross_a_socketpair() {
        let (mut near, far) = Channel::pair("test", "test").unwrap();
        let server = std::thread::spawn(move || {
            far.serve(|r: Received<MainRequest>| match r.msg {
                MainRequest::AddressInUse { .. } => MainReply::Answer(r.fds.len() == 1),
                _ => MainReply::Done,
            })
        });
        let file = std::fs::File::open("/dev/null").unwrap();
        let reply: MainReply = near
            .call(
                &MainRequest::AddressInUse {
                    addr: "10.0.0.1".parse().unwrap(),
                },
                &[file.as_fd()],
            )
            .unwrap();
        assert_eq!(reply, MainReply::Answer(true));
        drop(near);
        assert!(matches!(
            server.join().unwrap(),
            ChannelError::Closed { .. }
        ));
    }

    /// A signal arriving while a channel waits (SIGTERM at the main process during a
    /// command) does not fail the exchange: the call is made again. A socket with a
    /// timeout returns EINTR even under SA_RESTART, which tokio's handlers use.
    #[test]
    fn a_signal_during_a_wait_is_not_an_error() {
        use nix::sys::signal::Signal;
        use std::os::unix::thread::JoinHandleExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _handler = runtime
            .block_on(async {
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
            })
            .unwrap();
        let (mut near, mut far) = Channel::pair("test", "test").unwrap();
        far.set_timeout(Some(Duration::from_secs(10))).unwrap();
        let waiter = std::thread::spawn(move || far.recv::<MainRequest>().map(|r| r.msg));
        std::thread::sleep(Duration::from_millis(100));
        nix::sys::pthread::pthread_kill(waiter.as_pthread_t(), Signal::SIGUSR1).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let request = MainRequest::AddressInUse {
            addr: "10.0.0.1".parse().unwrap(),
        };
        near.send(&request, &[]).unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), request);
    }

    #[test]
    fn empty_frames_and_garbage_close_the_channel() {
        for garbage in [
            &[0u8, 0, 0, 0][..],
            &[0xff, 0xff, 0xff, 0xff],
            &[0, 0, 0, 1, 99],
        ] {
            let (a, b) = UnixStream::pair().unwrap();
            let far = Channel::new(b, "test");
            let server =
                std::thread::spawn(move || far.serve(|_: Received<MainRequest>| MainReply::Done));
            (&a).write_all(garbage).unwrap();
            assert!(matches!(
                server.join().unwrap(),
                ChannelError::Message { .. }
            ));
        }
    }

    #[test]
    fn a_pool_fails_over_and_then_reports_the_peer_gone() {
        let (good, far) = Channel::pair("test", "test").unwrap();
        let (dead, _gone) = {
            let (a, b) = Channel::pair("test", "test").unwrap();
            drop(b);
            (a, ())
        };
        std::thread::spawn(move || far.serve(|_: Received<MainRequest>| MainReply::Done));
        let pool = ChannelPool::new(vec![good, dead], "test", Duration::from_secs(1));
        let ask = || {
            pool.call::<_, MainReply>(&MainRequest::AddressInUse {
                addr: "10.0.0.1".parse().unwrap(),
            })
        };
        // The dead channel is tried first (last in), fails and is dropped.
        assert!(ask().is_err());
        assert_eq!(ask().unwrap(), MainReply::Done);
    }

    /// A caller dropped in the middle of an exchange (a login timing out) retires that
    /// channel with its permit: two callers at once then share the healthy channel
    /// instead of one of them finding no channel behind its permit.
    #[tokio::test]
    async fn a_call_dropped_mid_exchange_retires_its_channel() {
        let (good, far) = UnixStream::pair().unwrap();
        let (stalled, _never_answers) = UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            Channel::new(far, "test").serve(|_: Received<MainRequest>| MainReply::Done)
        });
        // The stalled channel is taken first (last in).
        let pool = AsyncChannelPool::new(
            vec![good.into(), stalled.into()],
            "test",
            Duration::from_secs(5),
        );
        let request = MainRequest::AddressInUse {
            addr: "10.0.0.1".parse().unwrap(),
        };
        let cancelled = tokio::time::timeout(
            Duration::from_millis(100),
            pool.call::<_, MainReply>(&request),
        )
        .await;
        assert!(cancelled.is_err(), "the stalled channel cannot answer");
        let (a, b) = tokio::join!(
            pool.call::<_, MainReply>(&request),
            pool.call::<_, MainReply>(&request)
        );
        assert_eq!(a.unwrap(), MainReply::Done);
        assert_eq!(b.unwrap(), MainReply::Done);
    }

    #[tokio::test]
    async fn an_async_pool_answers_and_drops_a_dead_channel() {
        let (good, far) = UnixStream::pair().unwrap();
        let (dead, gone) = UnixStream::pair().unwrap();
        drop(gone);
        std::thread::spawn(move || {
            Channel::new(far, "test").serve(|_: Received<MainRequest>| MainReply::Done)
        });
        let pool = AsyncChannelPool::new(
            vec![good.into(), dead.into()],
            "test",
            Duration::from_secs(5),
        );
        let request = MainRequest::AddressInUse {
            addr: "10.0.0.1".parse().unwrap(),
        };
        // The dead channel is taken first (last in), fails and is dropped.
        assert!(pool.call::<_, MainReply>(&request).await.is_err());
        for _ in 0..3 {
            assert_eq!(
                pool.call::<_, MainReply>(&request).await.unwrap(),
                MainReply::Done
            );
        }
    }
}
