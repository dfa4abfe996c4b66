//! UDP for the DTLS data path, many datagrams per system call.
//!
//! Sending: datagrams of one size to one peer leave in a single `sendmsg` with a
//! `UDP_SEGMENT` (GSO) control message; the kernel cuts them apart, so the peer sees
//! ordinary datagrams whatever it runs. Receiving: `UDP_GRO` lets the kernel hand over a run
//! of same-sized datagrams from one peer as one buffer with its stride, and `recvmmsg` fills
//! several buffers per call. The per-datagram trip through the kernel is what bounds a VPN
//! on small machines (`shared/research/fast-path.md` §2.3), so this is where the time goes.
//!
//! The socket calls go through quinn-udp (libc `sendmsg`/`recvmmsg`), which also turns GSO
//! off by itself when a device cannot do it.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Largest payload of one UDP send (IPv4: 65535 - 20 - 8).
const MAX_SEND: usize = 65507;
/// Buffers filled by one receive call.
pub const RECV_SLOTS: usize = 8;
/// Size of each receive buffer: a whole GRO run.
pub const RECV_SLOT_LEN: usize = 65536;

/// A UDP socket with segmentation offload state.
pub struct BatchSocket {
    socket: UdpSocket,
    /// None when the socket refuses the options batching needs (an emulated socket, such
    /// as socket_wrapper's): then one datagram per call.
    state: Option<UdpSocketState>,
    /// The traffic class sends carry (`--passtos`); `NO_CLASS` until one is set.
    class: AtomicU16,
}

const NO_CLASS: u16 = u16::MAX;

impl std::fmt::Debug for BatchSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchSocket")
            .field("socket", &self.socket)
            .field("max_segments", &self.max_segments())
            .finish()
    }
}

impl BatchSocket {
    /// Turns on what the kernel offers (GRO, packet info) for `socket`. A socket that
    /// refuses those options ("Protocol not available") is used a datagram at a time.
    pub fn new(socket: UdpSocket) -> io::Result<Self> {
        // This also sets the don't-fragment bit (IP_PMTUDISC_PROBE), as ocserv does on its
        // DTLS sockets; records are sized below the path MTU anyway.
        let state = match UdpSocketState::new((&socket).into()) {
            Ok(state) => Some(state),
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOPROTOOPT as i32) => {
                tracing::warn!("UDP socket options unavailable ({e}); one datagram per call");
                None
            }
            Err(e) => return Err(e),
        };
        Ok(Self {
            socket,
            state,
            class: AtomicU16::new(NO_CLASS),
        })
    }

    /// Marks what the socket sends from now on with this IPv4 TOS or IPv6 traffic class
    /// (openconnect's `--passtos`): the socket option for single sends, and a control
    /// message on batched ones (quinn-udp's own would carry only the ECN bits).
    pub fn set_traffic_class(&self, class: u8) -> io::Result<()> {
        use nix::sys::socket::{setsockopt, sockopt};
        let value = i32::from(class);
        let set = match self.socket.local_addr()?.is_ipv6() {
            true => setsockopt(&self.socket, sockopt::Ipv6TClass, &value),
            false => setsockopt(&self.socket, sockopt::Ipv4Tos, &value),
        };
        set.map_err(io::Error::from)?;
        self.class.store(u16::from(class), Ordering::Relaxed);
        Ok(())
    }

    /// One `sendmsg` of `contents` to `to` (cut into `segment`-sized datagrams when given)
    /// with the traffic class in a control message.
    async fn send_marked(
        &self,
        to: SocketAddr,
        contents: &[u8],
        segment: Option<usize>,
        class: u8,
    ) -> io::Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrStorage};
        use std::os::fd::AsRawFd;
        let (tos, tclass) = (class, i32::from(class));
        let segment = segment.and_then(|s| u16::try_from(s).ok());
        let address = SockaddrStorage::from(to);
        let v6 = to.is_ipv6();
        self.socket
            .async_io(Interest::WRITABLE, || {
                let class = match v6 {
                    true => ControlMessage::Ipv6TClass(&tclass),
                    false => ControlMessage::Ipv4Tos(&tos),
                };
                let both;
                let cmsgs: &[ControlMessage<'_>] = match &segment {
                    Some(size) => {
                        both = [class, ControlMessage::UdpGsoSegments(size)];
                        &both
                    }
                    None => std::slice::from_ref(&class),
                };
                let iov = [io::IoSlice::new(contents)];
                let fd = self.socket.as_raw_fd();
                sendmsg(fd, &iov, cmsgs, MsgFlags::empty(), Some(&address))
                    .map(drop)
                    .map_err(io::Error::from)
            })
            .await
    }

    /// Most datagrams one send may carry (1 without GSO).
    pub fn max_segments(&self) -> usize {
        self.state
            .as_ref()
            .map_or(1, UdpSocketState::max_gso_segments)
    }

    /// Sends `contents` to `to`: one datagram, or with `segment` several of that size (the
    /// last may be shorter).
    pub async fn send(
        &self,
        to: SocketAddr,
        contents: &[u8],
        segment: Option<usize>,
    ) -> io::Result<()> {
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: segment,
            src_ip: None,
        };
        let Some(state) = &self.state else {
            return self.send_each(to, contents, segment).await;
        };
        if let Ok(class) = u8::try_from(self.class.load(Ordering::Relaxed)) {
            return self.send_marked(to, contents, segment, class).await;
        }
        self.socket
            .async_io(Interest::WRITABLE, || {
                state.try_send((&self.socket).into(), &transmit)
            })
            .await
    }

    /// [`send`](Self::send) without offload: each segment in its own datagram.
    async fn send_each(
        &self,
        to: SocketAddr,
        contents: &[u8],
        segment: Option<usize>,
    ) -> io::Result<()> {
        let size = segment.unwrap_or(contents.len()).max(1);
        for datagram in contents.chunks(size) {
            self.socket.send_to(datagram, to).await?;
        }
        Ok(())
    }

    /// Receives into `bufs`; `meta[i]` tells what landed in `bufs[i]` (sender, length and
    /// the stride of a GRO run). Returns how many buffers were filled.
    pub async fn recv(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        let Some(state) = &self.state else {
            return self.recv_one(bufs, meta).await;
        };
        self.socket
            .async_io(Interest::READABLE, || {
                state.recv((&self.socket).into(), bufs, meta)
            })
            .await
    }

    /// [`recv`](Self::recv) without offload: one datagram into the first buffer.
    async fn recv_one(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        let (Some(buf), Some(slot)) = (bufs.first_mut(), meta.first_mut()) else {
            return Ok(0);
        };
        let (len, addr) = self.socket.recv_from(buf).await?;
        let mut received = RecvMeta::default();
        received.addr = addr;
        received.len = len;
        received.stride = len;
        *slot = received;
        Ok(1)
    }
}

/// Receive buffers and their descriptions for [`BatchSocket::recv`].
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    count: usize,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("count", &self.count)
            .finish()
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    pub fn new() -> Self {
        Self {
            // Allocated zeroed one by one (not cloned): pages are touched only when used.
            bufs: (0..RECV_SLOTS).map(|_| vec![0; RECV_SLOT_LEN]).collect(),
            meta: vec![RecvMeta::default(); RECV_SLOTS],
            count: 0,
        }
    }

    /// Waits for datagrams; returns how many buffers were filled.
    pub async fn recv(&mut self, socket: &BatchSocket) -> io::Result<usize> {
        self.count = 0;
        // On the stack: no allocation per receive.
        let mut bufs = self.bufs.iter_mut();
        let mut slices: [IoSliceMut<'_>; RECV_SLOTS] =
            std::array::from_fn(|_| IoSliceMut::new(bufs.next().map_or(&mut [], |b| &mut b[..])));
        let n = socket.recv(&mut slices, &mut self.meta).await?;
        self.count = n.min(self.meta.len());
        Ok(self.count)
    }

    /// Buffer `i` of the last receive: its sender, its bytes and the datagram stride, as
    /// the kernel reported them. The stride may be 0 (an empty datagram) or longer than the
    /// bytes (a single datagram): [`datagrams`] and [`datagram_count`] take both.
    pub fn get(&self, i: usize) -> Option<(SocketAddr, &[u8], usize)> {
        if i >= self.count {
            return None;
        }
        let meta = self.meta.get(i)?;
        let buf = self.bufs.get(i)?;
        // The kernel never reports more than it wrote into the buffer; a length that says
        // otherwise gives nothing rather than stale bytes.
        let bytes = buf.get(..meta.len)?;
        Some((meta.addr, bytes, meta.stride))
    }
}

impl RecvBatch {
    /// [`RecvBatch::get`] with the bytes writable, to open datagrams where they lie.
    pub fn get_mut(&mut self, i: usize) -> Option<(SocketAddr, &mut [u8], usize)> {
        if i >= self.count {
            return None;
        }
        let meta = self.meta.get(i)?;
        let bytes = self.bufs.get_mut(i)?.get_mut(..meta.len)?;
        Some((meta.addr, bytes, meta.stride))
    }
}

/// The stride a GRO run of `len` bytes is really split at: `stride`, or the whole run when
/// the kernel gave none (0) or one past its end (a single datagram). Never 0 unless the
/// run is empty.
pub fn effective_stride(len: usize, stride: usize) -> usize {
    if stride == 0 || stride > len {
        len
    } else {
        stride
    }
}

/// Splits a GRO run into its datagrams: `stride` bytes each, the last may be shorter. An
/// empty run (an empty datagram) yields nothing: there is nothing in it to read.
pub fn datagrams(run: &[u8], stride: usize) -> impl Iterator<Item = &[u8]> {
    run.chunks(effective_stride(run.len(), stride).max(1))
}

/// [`datagrams`], writable.
pub fn datagrams_mut(run: &mut [u8], stride: usize) -> impl Iterator<Item = &mut [u8]> {
    let stride = effective_stride(run.len(), stride).max(1);
    run.chunks_mut(stride)
}

/// How many datagrams the kernel received in a run of `len` bytes split every `stride`
/// bytes (for counting them): an empty run is one empty datagram, a stride of 0 or past
/// the end means one datagram. Never divides by zero, whatever the sizes.
pub fn datagram_count(len: usize, stride: usize) -> usize {
    match effective_stride(len, stride) {
        0 => 1,
        stride => len.div_ceil(stride),
    }
}

/// The length of the last datagram of a run of `len` bytes split every `stride` bytes (the
/// others are `stride` long): 0 for an empty run.
pub fn last_datagram_len(len: usize, stride: usize) -> usize {
    let stride = effective_stride(len, stride);
    match len.checked_rem(stride) {
        None | Some(0) => stride,
        Some(rest) => rest,
    }
}

/// A run of datagrams in [`SendBatch`]: `segment` bytes each, the last may be shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    start: usize,
    end: usize,
    segment: usize,
    /// A shorter datagram ended the run.
    closed: bool,
}

impl Run {
    fn count(&self) -> usize {
        (self.end - self.start).div_ceil(self.segment.max(1))
    }
}

/// Datagrams for one peer, packed into runs of equal size so each run leaves in one send.
#[derive(Debug, Default)]
pub struct SendBatch {
    bytes: Vec<u8>,
    runs: Vec<Run>,
}

impl SendBatch {
    pub const fn new() -> Self {
        Self {
            bytes: Vec::new(),
            runs: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Appends a datagram; `max_segments` is the socket's GSO limit.
    pub fn push(&mut self, datagram: &[u8], max_segments: usize) {
        if datagram.is_empty() {
            return;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(datagram);
        let end = self.bytes.len();
        let len = datagram.len();
        if let Some(run) = self.runs.last_mut() {
            let joins = !run.closed
                && len <= run.segment
                && run.count() < max_segments
                && end - run.start <= MAX_SEND;
            if joins {
                run.end = end;
                run.closed = len < run.segment;
                return;
            }
        }
        self.runs.push(Run {
            start,
            end,
            segment: len,
            closed: false,
        });
    }

    /// Sends every run to `to`, then empties the batch (also on error: UDP is lossy, and
    /// the caller decides whether a failed send matters).
    pub async fn send(&mut self, socket: &BatchSocket, to: SocketAddr) -> io::Result<()> {
        let mut result = Ok(());
        for run in &self.runs {
            let Some(contents) = self.bytes.get(run.start..run.end) else {
                continue;
            };
            let segment = (run.count() > 1).then_some(run.segment);
            if let Err(e) = socket.send(to, contents, segment).await {
                result = Err(e);
                break;
            }
        }
        self.runs.clear();
        self.bytes.clear();
        // A bulk transfer leaves 64 KiB behind; an idle session should not keep it.
        if self.bytes.capacity() > 2 * MAX_SEND {
            self.bytes = Vec::new();
        }
        result
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The runs as (bytes, segment size).
    fn runs(batch: &SendBatch) -> Vec<(&[u8], usize)> {
        batch
            .runs
            .iter()
            .map(|r| (&batch.bytes[r.start..r.end], r.segment))
            .collect()
    }

    fn shape(batch: &SendBatch) -> Vec<(usize, usize)> {
        runs(batch).iter().map(|(b, s)| (b.len(), *s)).collect()
    }

    #[test]
    fn equal_datagrams_share_a_run_and_a_shorter_one_closes_it() {
        let mut b = SendBatch::new();
        for _ in 0..3 {
            b.push(&[1; 1400], 64);
        }
        b.push(&[2; 100], 64);
        b.push(&[3; 1400], 64);
        assert_eq!(shape(&b), vec![(4300, 1400), (1400, 1400)]);
        let runs = runs(&b);
        assert_eq!(runs[0].0[4200], 2);
        assert_eq!(runs[1].0[0], 3);
    }

    #[test]
    fn a_longer_datagram_starts_a_new_run() {
        let mut b = SendBatch::new();
        b.push(&[1; 100], 64);
        b.push(&[1; 200], 64);
        assert_eq!(shape(&b), vec![(100, 100), (200, 200)]);
    }

    #[test]
    fn runs_respect_the_segment_limit_and_the_send_size() {
        let mut b = SendBatch::new();
        for _ in 0..5 {
            b.push(&[0; 1000], 2);
        }
        assert_eq!(shape(&b), vec![(2000, 1000), (2000, 1000), (1000, 1000)]);
        let mut b = SendBatch::new();
        for _ in 0..50 {
            b.push(&[0; 1400], 128);
        }
        // 46 datagrams of 1400 bytes pass 65507; the run stops before.
        assert_eq!(shape(&b), vec![(46 * 1400, 1400), (4 * 1400, 1400)]);
        const { assert!(46 * 1400 <= MAX_SEND && 47 * 1400 > MAX_SEND) };
    }

    #[test]
    fn without_gso_every_datagram_is_its_own_run() {
        let mut b = SendBatch::new();
        b.push(&[0; 10], 1);
        b.push(&[0; 10], 1);
        b.push(&[], 1);
        assert_eq!(shape(&b), vec![(10, 10), (10, 10)]);
    }

    #[test]
    fn gro_runs_split_by_stride() {
        let run: Vec<u8> = (0..250u8).collect();
        let parts: Vec<_> = datagrams(&run, 100).map(<[u8]>::len).collect();
        assert_eq!(parts, vec![100, 100, 50]);
        assert_eq!(
            (datagram_count(250, 100), last_datagram_len(250, 100)),
            (3, 50)
        );
        assert_eq!(
            (datagram_count(300, 100), last_datagram_len(300, 100)),
            (3, 100)
        );
        assert_eq!(datagrams(&run, 0).count(), 1);
        assert_eq!(datagrams(&[], 100).count(), 0);
    }

    /// What the kernel may report, hostile sizes included: no division by zero, no slice
    /// past the end, and every datagram counted once.
    #[test]
    fn hostile_sizes_split_and_count_without_panicking() {
        let giant = vec![7u8; MAX_SEND];
        // (run length, stride) -> (datagrams counted, lengths yielded, last length)
        let cases: [(usize, usize, usize, Vec<usize>, usize); 9] = [
            // An empty datagram: the kernel says len 0, stride 0.
            (0, 0, 1, vec![], 0),
            // An empty run claiming a stride.
            (0, 1400, 1, vec![], 0),
            (1, 1, 1, vec![1], 1),
            (1, 0, 1, vec![1], 1),
            (MAX_SEND, MAX_SEND, 1, vec![MAX_SEND], MAX_SEND),
            // No stride: one datagram.
            (300, 0, 1, vec![300], 300),
            // A stride longer than the run (or the whole buffer): one datagram.
            (300, 1400, 1, vec![300], 300),
            (300, RECV_SLOT_LEN + 1, 1, vec![300], 300),
            (3, 1, 3, vec![1, 1, 1], 1),
        ];
        for (len, stride, count, lengths, last) in cases {
            let run = &giant[..len];
            let got: Vec<usize> = datagrams(run, stride).map(<[u8]>::len).collect();
            assert_eq!(got, lengths, "len {len} stride {stride}");
            assert_eq!(
                datagram_count(len, stride),
                count,
                "len {len} stride {stride}"
            );
            assert_eq!(
                last_datagram_len(len, stride),
                last,
                "len {len} stride {stride}"
            );
        }
        assert_eq!(datagram_count(usize::MAX, usize::MAX), 1);
        assert_eq!(datagram_count(usize::MAX, 1), usize::MAX);
    }

    /// An empty, a 1-byte and a largest datagram through the real socket calls: the kernel
    /// reports an empty datagram as length 0 with stride 0, and each is one datagram.
    #[tokio::test]
    async fn empty_tiny_and_largest_datagrams_arrive_as_one_datagram_each() {
        let rx = BatchSocket::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = rx.socket.local_addr().unwrap();
        let giant = vec![5u8; MAX_SEND];
        for d in [&[][..], &[1][..], &giant[..]] {
            assert_eq!(tx.send_to(d, to).await.unwrap(), d.len());
        }
        let mut seen = Vec::new();
        let mut recv = RecvBatch::new();
        while seen.len() < 3 {
            let n = recv.recv(&rx).await.unwrap();
            for i in 0..n {
                let (from, bytes, stride) = recv.get(i).unwrap();
                assert_eq!(from, tx.local_addr().unwrap());
                assert_eq!(datagram_count(bytes.len(), stride), 1);
                seen.push((bytes.len(), stride, datagrams(bytes, stride).count()));
            }
        }
        assert_eq!(seen, vec![(0, 0, 0), (1, 1, 1), (MAX_SEND, MAX_SEND, 1)]);
    }

    #[tokio::test]
    async fn a_batch_arrives_as_separate_datagrams_or_as_one_gro_run() {
        let rx = BatchSocket::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
        let tx = BatchSocket::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
        let to = rx.socket.local_addr().unwrap();
        let mut batch = SendBatch::new();
        for i in 0..10u8 {
            batch.push(&[i; 1200], tx.max_segments());
        }
        batch.push(&[99; 7], tx.max_segments());
        batch.send(&tx, to).await.unwrap();
        assert!(batch.is_empty());
        let mut got = Vec::new();
        let mut recv = RecvBatch::new();
        while got.len() < 11 {
            let n = recv.recv(&rx).await.unwrap();
            for i in 0..n {
                let (from, bytes, stride) = recv.get(i).unwrap();
                assert_eq!(from, tx.socket.local_addr().unwrap());
                got.extend(datagrams(bytes, stride).map(<[u8]>::to_vec));
            }
        }
        assert_eq!(got.len(), 11);
        for (i, d) in got.iter().take(10).enumerate() {
            assert_eq!(d, &vec![i as u8; 1200]);
        }
        assert_eq!(got[10], vec![99; 7]);
    }
}
