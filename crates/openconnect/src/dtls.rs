//! The client's DTLS data channel over a connected UDP socket: PSK-NEGOTIATE or legacy
//! (resumption of the master secret sent with CONNECT), with the handshake time limit,
//! the periodic retry, the rekey and the choice between DTLS and CSTP for each packet.
//! CSTP carries everything until DTLS is up, and again whenever it goes down.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use oc_proto::anyconnect::connect::{DtlsOffer, TunnelConfig};
use oc_proto::anyconnect::dtls_cipher::{
    offers_psk, DEFAULT_DTLS12_CIPHERS, DEFAULT_DTLS_CIPHERS, PSK_NEGOTIATE,
};
use oc_proto::anyconnect::session::Session;
use oc_proto::udp_link::{UdpAction, UdpLink, UdpTimers};
use oc_tls::dtls::{
    psk_client_context, psk_from_tls, DtlsChannel, DtlsError, DtlsState, LegacyCipher, PSK_LEN,
};
use openssl::ssl::{SslContext, SslRef};
use tracing::{debug, info, warn};

use crate::udp_channel::UdpChannel;

/// Smallest DTLS packet size path-MTU detection settles for (the IPv4 minimum).
const MIN_PROBE_MTU: usize = 576;

/// How the granted channel is keyed.
#[derive(Clone)]
enum Mode {
    Psk {
        app_id: Vec<u8>,
        key: [u8; PSK_LEN],
    },
    Legacy {
        session_id: Vec<u8>,
        cipher: LegacyCipher,
        /// `X-DTLS-MTU`: the largest packet the server takes over DTLS.
        server_mtu: Option<u16>,
    },
}

struct Grant {
    server: SocketAddr,
    mode: Mode,
    timers: oc_proto::anyconnect::session::Timers,
    link_mtu: u32,
}

/// The DTLS command-line choices.
#[derive(Debug, Clone, Default)]
pub(crate) struct DtlsSettings {
    pub(crate) enabled: bool,
    pub(crate) local_port: Option<u16>,
    /// `--dtls-ciphers` / `--dtls12-ciphers`: when either is given, only those lists go out.
    pub(crate) ciphers: Option<String>,
    pub(crate) dtls12_ciphers: Option<String>,
}

pub(crate) struct DtlsLink {
    settings: DtlsSettings,
    /// The master secret of the last CONNECT offer (legacy mode resumes it).
    master_secret: [u8; 48],
    ctx: Option<SslContext>,
    grant: Option<Grant>,
    udp: Option<UdpChannel>,
    /// When to try, give up and retry (12 s handshakes, 60 s between attempts).
    state: UdpLink,
    /// Largest tunnel packet DTLS carries (bigger ones go over CSTP).
    data_mtu: usize,
}

impl DtlsLink {
    pub(crate) fn new(settings: DtlsSettings) -> Self {
        Self {
            settings,
            master_secret: [0; 48],
            ctx: None,
            grant: None,
            udp: None,
            state: UdpLink::new(UdpTimers::ANYCONNECT),
            data_mtu: 0,
        }
    }

    /// What to put in the CONNECT request (`None` with `--no-dtls`). Each call draws a
    /// fresh master secret, kept for a legacy grant.
    pub(crate) fn offer(&mut self) -> Option<DtlsOffer> {
        if !self.settings.enabled {
            return None;
        }
        openssl::rand::rand_bytes(&mut self.master_secret).ok()?;
        let (ciphers, dtls12_ciphers) =
            match (&self.settings.ciphers, &self.settings.dtls12_ciphers) {
                (None, None) => (DEFAULT_DTLS_CIPHERS.into(), DEFAULT_DTLS12_CIPHERS.into()),
                (c, c12) => (
                    c.clone().unwrap_or_default(),
                    c12.clone().unwrap_or_default(),
                ),
            };
        Some(DtlsOffer {
            master_secret: self.master_secret,
            ciphers,
            dtls12_ciphers,
        })
    }

    /// Starts DTLS for a fresh CSTP connection if the server granted it.
    pub(crate) async fn begin(&mut self, tls: &SslRef, server: IpAddr, config: &TunnelConfig) {
        self.stop(false);
        self.grant = None;
        if !self.settings.enabled {
            return;
        }
        let grant = &config.dtls;
        let Some(port) = grant.port else {
            debug!("server granted no DTLS port; using CSTP only");
            return;
        };
        let psk = grant.cipher_suite.as_deref().is_some_and(offers_psk);
        let mode = match (psk, &grant.app_id, &grant.session_id) {
            (true, Some(app_id), _) => match psk_from_tls(tls) {
                Ok(key) => Mode::Psk {
                    app_id: app_id.clone(),
                    key,
                },
                Err(e) => {
                    warn!("cannot derive the DTLS key: {e}");
                    return;
                }
            },
            (false, _, Some(session_id)) => {
                let name = grant
                    .dtls12_cipher_suite
                    .as_deref()
                    .or(grant.cipher_suite.as_deref())
                    .unwrap_or_default();
                let Some(cipher) = LegacyCipher::from_header_name(name) else {
                    warn!("server chose DTLS cipher {name:?}, which this client cannot use; using CSTP only");
                    return;
                };
                Mode::Legacy {
                    session_id: session_id.clone(),
                    cipher,
                    server_mtu: grant.mtu,
                }
            }
            _ => {
                debug!("server granted no usable DTLS mode; using CSTP only");
                return;
            }
        };
        self.grant = Some(Grant {
            server: SocketAddr::new(server, port),
            mode,
            timers: grant.timers,
            link_mtu: u32::from(config.base_mtu.unwrap_or(1406)),
        });
        self.attempt().await;
    }

    async fn attempt(&mut self) {
        let Some(grant) = &self.grant else { return };
        let (server, link_mtu, mode) = (grant.server, grant.link_mtu, grant.mode.clone());
        let channel = match mode {
            Mode::Psk { app_id, key } => {
                if self.ctx.is_none() {
                    match psk_client_context() {
                        Ok(ctx) => self.ctx = Some(ctx),
                        Err(e) => return self.fail(&e.to_string()),
                    }
                }
                let Some(ctx) = self.ctx.as_ref() else { return };
                DtlsChannel::psk_client(ctx, &key, &app_id, link_mtu, server.is_ipv6())
            }
            Mode::Legacy {
                session_id, cipher, ..
            } => DtlsChannel::legacy_client(
                &session_id,
                &self.master_secret,
                cipher,
                link_mtu,
                server.is_ipv6(),
            ),
        };
        let channel = match channel {
            Ok(c) => c,
            Err(e) => return self.fail(&e.to_string()),
        };
        self.state.start(Instant::now());
        match UdpChannel::open(server, self.settings.local_port, channel).await {
            Ok(udp) => self.udp = Some(udp),
            Err(e) => self.fail(&e),
        }
    }

    /// A handshake error: a legacy session the server did not resume means someone else
    /// answered, so DTLS stays off for this connection (openconnect's rule).
    fn handshake_failed(&mut self, error: &DtlsError) {
        if matches!(error, DtlsError::NotResumed(_)) {
            warn!("DTLS: {error}; DTLS disabled for this connection");
            self.stop(false);
        } else {
            self.fail(&error.to_string());
        }
    }

    fn fail(&mut self, why: &str) {
        warn!(
            "DTLS: {why}; using CSTP, retrying DTLS in {}s",
            UdpTimers::ANYCONNECT.retry_period.as_secs()
        );
        self.stop(true);
    }

    /// Drops the channel; with `retry` a new handshake is attempted after the retry period.
    pub(crate) fn stop(&mut self, retry: bool) {
        if let Some(mut udp) = self.udp.take() {
            udp.dtls.close();
        }
        self.data_mtu = 0;
        if retry && self.grant.is_some() {
            self.state.failed(Instant::now());
        } else {
            self.state.stop();
        }
    }

    pub(crate) fn channel(&self) -> Option<&UdpChannel> {
        self.udp.as_ref()
    }

    pub(crate) fn is_up(&self) -> bool {
        self.state.is_up()
    }

    /// True when a tunnel packet of `len` bytes fits one DTLS record on this path.
    pub(crate) fn carries(&self, len: usize) -> bool {
        self.is_up() && len <= self.data_mtu
    }

    /// Path-MTU detection found the largest packet DTLS gets across; bigger ones go over
    /// TLS from now on.
    pub(crate) fn path_mtu_found(&mut self, mtu: usize) {
        if mtu < self.data_mtu {
            info!("Detected MTU of {mtu} bytes (was {})", self.data_mtu);
            self.data_mtu = mtu;
        } else {
            debug!("DTLS path carries the full {} bytes", self.data_mtu);
        }
    }

    pub(crate) fn status(&self) -> &'static str {
        self.state.status()
    }

    /// When [`DtlsLink::on_deadline`] should run.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let retransmit = self
            .udp
            .as_ref()
            .filter(|_| self.state.is_connecting())
            .and_then(|udp| udp.dtls.poll_timeout())
            .map(|d| Instant::now() + d);
        [self.state.poll_timeout(), retransmit]
            .into_iter()
            .flatten()
            .min()
    }

    pub(crate) async fn on_deadline(&mut self, now: Instant) {
        match self.state.handle_timeout(now) {
            Some(UdpAction::Abandon(why)) => return self.fail(&why),
            Some(UdpAction::StartHandshake) => return self.attempt().await,
            Some(UdpAction::SendProbe) | None => {}
        }
        if !self.state.is_connecting() {
            return;
        }
        let Some(udp) = self.udp.as_mut() else { return };
        match udp.dtls.handle_timeout() {
            Ok(()) => {
                if let Err(e) = udp.flush().await {
                    self.fail(&format!("sending on UDP: {e}"));
                }
            }
            Err(e) => self.handshake_failed(&e),
        }
    }

    /// A datagram arrived on the UDP socket.
    pub(crate) async fn on_datagram(
        &mut self,
        datagram: &[u8],
        session: &mut Session,
        on_packet: impl FnMut(&[u8]),
    ) {
        let Some(udp) = self.udp.as_mut() else {
            return;
        };
        if let Err(e) = udp.dtls.handle_datagram(datagram) {
            self.handshake_failed(&e);
            return;
        }
        let channel = &udp.dtls;
        if self.state.is_connecting() && channel.state() == DtlsState::Established {
            self.state.handshake_done(Instant::now());
            self.data_mtu = channel.data_mtu().saturating_sub(1);
            let mut mode = PSK_NEGOTIATE;
            if let Some(grant) = &self.grant {
                session.start_dtls(grant.timers, Instant::now());
                if let Mode::Legacy {
                    cipher, server_mtu, ..
                } = &grant.mode
                {
                    mode = cipher.header_name();
                    if let Some(limit) = server_mtu.filter(|m| *m > 0) {
                        self.data_mtu = self.data_mtu.min(usize::from(limit));
                    }
                }
            }
            info!(
                "Established DTLS connection (using OpenSSL). Ciphersuite {}-{} ({mode}), data MTU {}.",
                channel.version(),
                channel.cipher(),
                self.data_mtu
            );
            // Find what the path really carries: the link MTU is a guess.
            session.start_mtu_probe(MIN_PROBE_MTU, self.data_mtu, Instant::now());
        }
        if let Err(e) = self.flush().await {
            self.fail(&format!("sending on UDP: {e}"));
            return;
        }
        self.drain(session, on_packet);
    }

    fn drain(&mut self, session: &mut Session, mut on_packet: impl FnMut(&[u8])) {
        let Some(udp) = self.udp.as_mut() else {
            return;
        };
        let result = udp.dtls.drain(|record| {
            if let Err(e) = session.handle_dtls(record, Instant::now(), &mut on_packet) {
                debug!("DTLS record ignored: {e}");
            }
        });
        if let Err(e) = result {
            session.stop_dtls();
            self.fail(&e.to_string());
        }
    }

    /// Sends one record (type byte + payload) over DTLS.
    pub(crate) async fn send_record(&mut self, record: &[u8]) -> Result<(), String> {
        let udp = self.udp.as_mut().ok_or("DTLS is not up")?;
        udp.send_record(record).await
    }

    /// Encrypts one record; it leaves with the next [`DtlsLink::flush`] (or with this call
    /// when enough are waiting), together with the records queued before it.
    pub(crate) async fn queue_record(&mut self, record: &[u8]) -> Result<(), String> {
        let udp = self.udp.as_mut().ok_or("DTLS is not up")?;
        udp.queue_record(record).await
    }

    /// Marks the records queued from now on with `class` (`--passtos`).
    pub(crate) async fn mark(&mut self, class: u8) -> Result<(), String> {
        let udp = self.udp.as_mut().ok_or("DTLS is not up")?;
        udp.mark(class).await
    }

    /// Sends every datagram the channel has ready.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        match self.udp.as_mut() {
            Some(udp) => udp.flush().await,
            None => Ok(()),
        }
    }

    /// The rekey interval elapsed: a fresh handshake on a new socket replaces the channel
    /// (CSTP carries the traffic for the moment it takes).
    pub(crate) async fn rekey(&mut self, session: &mut Session) {
        if self.grant.is_none() {
            return;
        }
        info!("DTLS rekey due; starting a new DTLS handshake");
        session.stop_dtls();
        self.stop(false);
        self.attempt().await;
    }

    /// The DTLS channel failed while sending (or DPD declared it dead): back to CSTP.
    pub(crate) fn lost(&mut self, session: &mut Session, why: &str) {
        session.stop_dtls();
        self.fail(why);
    }
}
