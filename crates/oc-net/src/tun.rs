//! Linux tun devices (layer 3, no packet-information header), with the kernel's offloads.
//!
//! The device is opened with `IFF_VNET_HDR` and TSO/USO offloads when the kernel has them:
//! a read then returns up to 64 KiB of one TCP or UDP flow as a single super-packet, which
//! [`TunReader`] splits into ordinary packets, and [`TunWriter`] coalesces the packets of a
//! batch back into super-packets before writing. One system call moves up to ~45 packets
//! instead of one (see `shared/research/fast-path.md`: 2.1 → 14.6 Gbit/s for a null relay).
//! Without offload both fall back to one packet per read and write.

use std::io;

use thiserror::Error;
use tun_rs::{
    AsyncDevice, DeviceBuilder, GROTable, SyncDevice, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN,
};

#[derive(Debug, Error)]
pub enum TunError {
    #[error("cannot create tun device{}: {source} (are you root, and does /dev/net/tun exist?)", name.as_ref().map(|n| format!(" {n}")).unwrap_or_default())]
    Create {
        name: Option<String>,
        source: io::Error,
    },
    #[error("tun device name {0:?} is invalid (at most 15 characters, no '/' or spaces)")]
    BadName(String),
}

/// Where a client's tunnel packets go: a tun device, or (`-S`) a script.
pub enum PacketDevice {
    Tun(AsyncDevice),
    Script(crate::ScriptTun),
}

impl std::fmt::Debug for PacketDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tun(_) => f.write_str("PacketDevice::Tun"),
            Self::Script(s) => f.debug_tuple("PacketDevice::Script").field(s).finish(),
        }
    }
}

/// Largest IP packet a tun device hands over (a super-packet with offload).
const MAX_PACKET: usize = 65535;

/// Creates a tun device. With no name the kernel picks `tunN`, as for openconnect. Address,
/// MTU and link state are left to the vpnc-script. Offloads are asked for, and the device is
/// opened without them if the kernel refuses.
pub fn open_tun(name: Option<&str>) -> Result<(AsyncDevice, String), TunError> {
    let (device, actual) = open_tun_sync(name)?;
    let device = AsyncDevice::new(device).map_err(|source| TunError::Create {
        name: Some(actual.clone()),
        source,
    })?;
    Ok((device, actual))
}

/// [`open_tun`] without the async runtime: for a process that creates its device before it
/// drops privileges and starts its runtime (the server's network process), then wraps it
/// with `AsyncDevice::new`.
pub fn open_tun_sync(name: Option<&str>) -> Result<(SyncDevice, String), TunError> {
    if let Some(n) = name {
        if n.is_empty() || n.len() > 15 || n.contains(['/', ' ', '\0']) {
            return Err(TunError::BadName(n.to_string()));
        }
    }
    let build = |offload: bool| {
        let mut builder = DeviceBuilder::new().inherit_enable_state().offload(offload);
        if let Some(n) = name {
            builder = builder.name(n);
        }
        builder.build_sync()
    };
    let err = |source| TunError::Create {
        name: name.map(str::to_string),
        source,
    };
    let device = match build(true) {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!("tun offload unavailable ({e}); one packet per read and write");
            build(false).map_err(err)?
        }
    };
    let actual = device.name().map_err(err)?;
    Ok((device, actual))
}

/// Reads packets from a tun device, a batch per read. Each packet is handed out with
/// `headroom` free bytes in front of it, so the caller can frame it in place.
pub struct TunReader {
    headroom: usize,
    /// Free bytes kept after each packet (ESP's padding and ICV).
    tailroom: usize,
    /// One raw read: virtio header and a (super-)packet.
    raw: Vec<u8>,
    packets: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    count: usize,
}

impl std::fmt::Debug for TunReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunReader")
            .field("count", &self.count)
            .finish()
    }
}

impl TunReader {
    pub fn new(headroom: usize) -> Self {
        Self::with_tailroom(headroom, 0)
    }

    /// A reader that also keeps `tailroom` free bytes after each packet
    /// ([`TunReader::framed_with_tail_mut`]).
    pub fn with_tailroom(headroom: usize, tailroom: usize) -> Self {
        Self {
            headroom,
            tailroom,
            raw: vec![0; VIRTIO_NET_HDR_LEN + MAX_PACKET],
            // Each buffer is allocated zeroed on its own (not cloned), so its pages are only
            // touched as packets land and the reserve costs little memory.
            packets: (0..IDEAL_BATCH_SIZE)
                .map(|_| vec![0; headroom + MAX_PACKET + tailroom])
                .collect(),
            sizes: vec![0; IDEAL_BATCH_SIZE],
            count: 0,
        }
    }

    /// Waits for the next read; returns how many packets it gave.
    pub async fn recv(&mut self, tun: &AsyncDevice) -> io::Result<usize> {
        self.count = 0;
        let n = tun
            .recv_multiple(
                &mut self.raw,
                &mut self.packets,
                &mut self.sizes,
                self.headroom,
            )
            .await?;
        self.count = n.min(self.packets.len());
        Ok(self.count)
    }

    /// Waits for the next read from either kind of device. A script's device gives one
    /// packet per read.
    pub async fn recv_from(&mut self, device: &PacketDevice) -> io::Result<usize> {
        let tun = match device {
            PacketDevice::Tun(tun) => return self.recv(tun).await,
            PacketDevice::Script(script) => script,
        };
        self.count = 0;
        let (Some(slot), Some(size)) = (self.packets.get_mut(0), self.sizes.get_mut(0)) else {
            return Ok(0);
        };
        let room = slot
            .get_mut(self.headroom..self.headroom + MAX_PACKET)
            .unwrap_or_default();
        *size = tun.recv(room).await?;
        self.count = usize::from(*size > 0);
        Ok(self.count)
    }

    /// Packet `i` of the last read, with the headroom in front: `headroom + length` bytes.
    pub fn framed_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        if i >= self.count {
            return None;
        }
        let end = self.headroom + self.sizes.get(i)?;
        self.packets.get_mut(i)?.get_mut(..end)
    }

    /// Packet `i` with the headroom in front and the tailroom behind it, and its length:
    /// the packet lies at `headroom..headroom + length`.
    pub fn framed_with_tail_mut(&mut self, i: usize) -> Option<(&mut [u8], usize)> {
        if i >= self.count {
            return None;
        }
        let len = *self.sizes.get(i)?;
        let end = self.headroom + len + self.tailroom;
        Some((self.packets.get_mut(i)?.get_mut(..end)?, len))
    }
}

/// Packets waiting to be written to a tun device. [`TunWriter::flush`] coalesces what it
/// can (TCP and UDP flows, when the device has offload) and writes the rest one by one.
#[derive(Debug, Default)]
pub struct TunWriter {
    packets: Vec<Vec<u8>>,
    count: usize,
}

/// The coalescing tables [`TunWriter::flush`] works in. They are large (about a megabyte of
/// flow slots), so a server keeps a few for all its tunnels rather than one per tunnel.
pub type Coalescer = GROTable;

impl TunWriter {
    pub const fn new() -> Self {
        Self {
            packets: Vec::new(),
            count: 0,
        }
    }

    /// Queues a copy of `packet`. A full batch should be flushed first.
    pub fn push(&mut self, packet: &[u8]) {
        if self.count == self.packets.len() {
            self.packets.push(Vec::new());
        }
        if let Some(slot) = self.packets.get_mut(self.count) {
            slot.clear();
            // The virtio header goes in front (all zeroes: a plain packet).
            slot.resize(VIRTIO_NET_HDR_LEN, 0);
            slot.extend_from_slice(packet);
            self.count += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when the batch should be written before more packets are queued.
    pub fn is_full(&self) -> bool {
        self.count >= IDEAL_BATCH_SIZE
    }

    /// [`TunWriter::flush`] to either kind of device: a script gets one datagram per
    /// packet (a failure ends the batch: the script is gone).
    pub fn flush_to(&mut self, device: &PacketDevice, coalescer: &mut Coalescer) -> io::Result<()> {
        let script = match device {
            PacketDevice::Tun(tun) => return self.flush(tun, coalescer),
            PacketDevice::Script(script) => script,
        };
        let count = std::mem::take(&mut self.count);
        let batch = self.packets.get(..count).unwrap_or_default();
        batch
            .iter()
            .try_for_each(|slot| script.send(slot.get(VIRTIO_NET_HDR_LEN..).unwrap_or_default()))
    }

    /// Writes the queued packets, without waiting: a tun device takes writes at once, and
    /// packets it refuses are lost, as on any link.
    pub fn flush(&mut self, tun: &AsyncDevice, coalescer: &mut Coalescer) -> io::Result<()> {
        let count = std::mem::take(&mut self.count);
        let Some(batch) = self.packets.get_mut(..count) else {
            return Ok(());
        };
        // The device's own (non-blocking) call, not the async wrapper.
        let device = &**tun;
        let result = device
            .send_multiple(coalescer, batch, VIRTIO_NET_HDR_LEN)
            .map(drop);
        // Keep the slots of an ordinary batch; a burst of small packets or a slot grown
        // past a super-packet gives its memory back.
        self.packets.truncate(IDEAL_BATCH_SIZE);
        for slot in &mut self.packets {
            if slot.capacity() > VIRTIO_NET_HDR_LEN + MAX_PACKET {
                *slot = Vec::new();
            }
        }
        result
    }
}
