//! The one tun device all tunnels share: creating it, the reader task that dispatches its
//! packets to the tunnels owning their destinations, and the tunnels' coalesced writes.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use oc_net::netlink::InterfaceSettings;
use oc_net::{TunReader, TunWriter};
use oc_proto::anyconnect::frame::CSTP_HEADER_LEN;
use oc_proto::ip::destination;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{lock, read_lock, Server, ServerError};
use crate::config::Config;
use crate::packets::PacketBatch;
use crate::pool::{server_address_v4, server_address_v6};

/// Creates the shared tun device, up, without addresses: the server's address in each
/// global pool ([`server_addresses`]) goes on it while a tunnel is up
/// (`MainRequest::ServerAddresses`), as on ocserv's per-client devices.
pub fn create_tun(config: &Config) -> Result<(tun_rs::SyncDevice, String), ServerError> {
    let pattern = format!("{}%d", config.device);
    let (device, name) =
        oc_net::open_tun_sync(Some(&pattern)).map_err(|e| ServerError::Tun(e.to_string()))?;
    let settings = InterfaceSettings {
        addresses: Vec::new(),
        mtu: config.net.mtu.unwrap_or(1500).clamp(576, 65535),
    };
    // Over netlink rather than ioctls on an AF_INET socket, which socket emulators
    // (socket_wrapper in upstream's test suite) replace.
    oc_net::netlink::configure(&name, &settings).map_err(|e| ServerError::Tun(e.to_string()))?;
    Ok((device, name))
}

/// The server's address in each global pool, with the pool's prefix length.
pub fn server_addresses(config: &Config) -> Vec<(IpAddr, u8)> {
    let mut addresses = Vec::new();
    if let Some(net) = config.net.ipv4_network {
        addresses.push((IpAddr::V4(server_address_v4(net)), net.prefix_len()));
    }
    if let Some(net) = config.net.ipv6_network {
        addresses.push((IpAddr::V6(server_address_v6(net)), net.prefix_len()));
    }
    addresses
}

impl Server {
    /// Reads packets from the tun device and hands each to the session owning its
    /// destination. Runs for the life of the server. A queued packet keeps
    /// [`CSTP_HEADER_LEN`] bytes of headroom, so the tunnel frames it in place (CSTP header,
    /// or the DTLS type byte) without copying it again.
    pub async fn run_tun_reader(self: Arc<Self>) {
        let mut reader = TunReader::new(CSTP_HEADER_LEN);
        loop {
            let count = match reader.recv(&self.tun).await {
                Ok(n) => n,
                Err(e) => {
                    warn!("reading from {}: {e}", self.tun_name);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            self.dispatch(&mut reader, count);
        }
    }

    /// Queues the `count` packets of one read to their tunnels, in one batch per run of
    /// packets bound for the same tunnel.
    fn dispatch(&self, reader: &mut TunReader, count: usize) {
        let routes = read_lock(&self.routes);
        // A full queue means the client is slower than the traffic: drop, as a router
        // would, rather than stall every other session.
        let mut batch: Option<(&mpsc::Sender<PacketBatch>, PacketBatch)> = None;
        for i in 0..count {
            let Some(framed) = reader.framed_mut(i) else {
                continue;
            };
            let Some(dst) = framed.get(CSTP_HEADER_LEN..).and_then(destination) else {
                continue;
            };
            let Some(tx) = routes.lookup(dst) else {
                continue;
            };
            match &mut batch {
                Some((to, packets)) if to.same_channel(tx) => packets.push(framed),
                _ => {
                    if let Some((to, packets)) = batch.take() {
                        let _ = to.try_send(packets);
                    }
                    // The rest of the read most likely goes to the same tunnel.
                    let mut packets = PacketBatch::with_capacity(count - i, framed.len());
                    packets.push(framed);
                    batch = Some((tx, packets));
                }
            }
        }
        if let Some((to, packets)) = batch {
            let _ = to.try_send(packets);
        }
    }

    /// Writes a tunnel's decoded packets to the tun device, coalesced with one of the shared
    /// tables (as many exist as tunnels write at the same moment, i.e. about one per worker
    /// thread, instead of one per tunnel). A refused write loses the packets, as on any link.
    pub(super) fn write_tun(&self, out: &mut TunWriter) {
        if out.is_empty() {
            return;
        }
        let mut coalescer = lock(&self.coalescers).pop().unwrap_or_default();
        if let Err(e) = out.flush(&self.tun, &mut coalescer) {
            debug!("writing to {}: {e}", self.tun_name);
        }
        lock(&self.coalescers).push(coalescer);
    }
}
