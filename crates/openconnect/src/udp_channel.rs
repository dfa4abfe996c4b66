//! A DTLS association on its own connected UDP socket: the I/O every DTLS data channel
//! shares (AnyConnect's, the PPP vendors'); ESP's channel (`esp_channel`) shares the
//! socket set-up. What the channel is for, and
//! when to start or drop it, is decided elsewhere (`oc_proto::udp_link`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use oc_net::udp::{BatchSocket, SendBatch};
use oc_tls::dtls::DtlsChannel;
use tokio::net::UdpSocket;

pub(crate) struct UdpChannel {
    socket: BatchSocket,
    server: SocketAddr,
    pub(crate) dtls: DtlsChannel,
    /// Datagrams on their way out, packed for one send per run of equal sizes.
    outbox: SendBatch,
    /// The traffic class the socket marks datagrams with (`--passtos`), once set.
    marked: Option<u8>,
}

impl UdpChannel {
    /// Binds a UDP socket (on `local_port` when given), connects it to `server` and sends
    /// what `dtls` has ready (a client's first flight).
    pub(crate) async fn open(
        server: SocketAddr,
        local_port: Option<u16>,
        dtls: DtlsChannel,
    ) -> Result<Self, String> {
        let socket = connected_socket(server, local_port).await?;
        let mut channel = Self {
            socket,
            server,
            dtls,
            outbox: SendBatch::new(),
            marked: None,
        };
        channel
            .flush()
            .await
            .map_err(|e| format!("sending the DTLS handshake: {e}"))?;
        Ok(channel)
    }

    pub(crate) fn socket(&self) -> &BatchSocket {
        &self.socket
    }

    /// Sends every datagram the association has ready.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        let outbox = &mut self.outbox;
        let max = self.socket.max_segments();
        self.dtls.transmit(|datagram| outbox.push(datagram, max));
        if outbox.is_empty() {
            return Ok(());
        }
        outbox.send(&self.socket, self.server).await
    }

    /// Encrypts one record; it leaves with the next [`UdpChannel::flush`] (or with this
    /// call when enough are waiting), together with the records queued before it.
    pub(crate) async fn queue_record(&mut self, record: &[u8]) -> Result<(), String> {
        self.dtls.send(record).map_err(|e| e.to_string())?;
        if self.dtls.transmit_due() {
            self.flush().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Marks the records queued from now on with `class` (`--passtos`): those queued
    /// before leave first, under the old mark.
    pub(crate) async fn mark(&mut self, class: u8) -> Result<(), String> {
        if self.marked == Some(class) {
            return Ok(());
        }
        self.flush().await.map_err(|e| e.to_string())?;
        self.socket
            .set_traffic_class(class)
            .map_err(|e| format!("setting the DTLS socket's TOS: {e}"))?;
        self.marked = Some(class);
        Ok(())
    }

    /// Sends one record now.
    pub(crate) async fn send_record(&mut self, record: &[u8]) -> Result<(), String> {
        self.queue_record(record).await?;
        self.flush().await.map_err(|e| e.to_string())
    }

    /// Sends a close_notify (best effort) and drops the association.
    pub(crate) async fn close(mut self) {
        self.dtls.close();
        let _ = self.flush().await;
    }
}

/// A UDP socket bound (on `local_port` when given) and connected to `server`, set up for
/// batched sends and receives.
pub(crate) async fn connected_socket(
    server: SocketAddr,
    local_port: Option<u16>,
) -> Result<BatchSocket, String> {
    let unspecified = match server {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let local = SocketAddr::new(unspecified, local_port.unwrap_or(0));
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("cannot bind UDP {local}: {e}"))?;
    socket
        .connect(server)
        .await
        .map_err(|e| format!("cannot reach {server} over UDP: {e}"))?;
    BatchSocket::new(socket).map_err(|e| format!("cannot set up the UDP socket: {e}"))
}
