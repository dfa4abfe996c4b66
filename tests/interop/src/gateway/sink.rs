//! Where a tunnel's packets from the client go: the tun device, in batches, if they come
//! from the client's address (others are logged, throttled, and dropped).

use std::net::{IpAddr, SocketAddr};

use oc_net::{Coalescer, TunWriter};
use oc_proto::ip::source;
use tun_rs::AsyncDevice;

use super::{flush_tun, Throttle};

pub struct TunSink {
    client: IpAddr,
    to_tun: TunWriter,
    coalescer: Box<Coalescer>,
    spoofed: Throttle,
}

impl std::fmt::Debug for TunSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunSink")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl TunSink {
    /// A sink for packets from `client`.
    pub fn new(client: IpAddr) -> Self {
        Self {
            client,
            to_tun: TunWriter::new(),
            coalescer: Box::default(),
            spoofed: Throttle::default(),
        }
    }

    /// Queues `packet` (received from `from`) for the tun device if its source is the
    /// client's address.
    pub fn deliver(&mut self, packet: &[u8], from: SocketAddr, device: &AsyncDevice) {
        let sender = source(packet);
        if sender != Some(self.client) {
            self.spoofed.log(format_args!(
                "{from}: packet from {} (not the client's address); dropped",
                sender.map_or("nowhere".to_string(), |a| a.to_string())
            ));
            return;
        }
        if self.to_tun.is_full() {
            self.flush(device);
        }
        self.to_tun.push(packet);
    }

    /// Writes what is queued.
    pub fn flush(&mut self, device: &AsyncDevice) {
        flush_tun(&mut self.to_tun, device, &mut self.coalescer);
    }

    /// A throttled line about the tunnel's sending side.
    pub fn note(&mut self, line: std::fmt::Arguments<'_>) {
        self.spoofed.log(line);
    }
}
