//! Which channel carries PPP: DTLS when the gateway grants it and accepts our probe,
//! else TLS; the moves between them (PPP restarted on each, upstream's
//! `ppp_tcp_should_connect`), and what the DTLS side reports.

use super::*;

/// How a TLS tunnel ended.
#[derive(Debug)]
pub(super) enum TlsEnd {
    Lost(String),
    TerminatedByPeer(String),
}

impl PppTunnel<'_> {
    pub(super) fn on_dtls(&self) -> bool {
        self.udp.as_ref().is_some_and(PppUdp::is_up)
    }

    /// DTLS is still being tried before anything goes over TLS.
    pub(super) fn awaiting_dtls(&self) -> bool {
        self.conn.is_none() && self.udp.as_ref().is_some_and(PppUdp::is_connecting)
    }

    /// Opens the TLS tunnel when nothing else carries PPP: at the start without DTLS, after
    /// DTLS failed to come up, or after it was lost.
    pub(super) async fn ensure_carrier(&mut self) -> Result<(), ClientError> {
        if self.conn.is_some() || self.on_dtls() || self.awaiting_dtls() {
            return Ok(());
        }
        if self.host.is_up() {
            // DTLS was lost under a running tunnel: for the script, a reconnect.
            self.attempt_reconnect();
        } else if self.udp.is_some() {
            warn!("Failed to connect DTLS tunnel; using HTTPS instead");
        }
        let (conn, pending, proposed) = open_link(self.endpoint, &self.link).await?;
        self.use_tls(conn, pending, proposed);
        Ok(())
    }

    /// The script's `attempt-reconnect` (once the tunnel exists); `reconnect` follows when
    /// PPP is up again.
    pub(super) fn attempt_reconnect(&mut self) {
        self.host.attempt_reconnect();
    }

    /// PPP starts over on a fresh TLS tunnel.
    pub(super) fn use_tls(
        &mut self,
        conn: HttpsConnection,
        pending: Vec<u8>,
        proposed: Option<Proposed>,
    ) {
        self.propose(proposed);
        if !self.host.is_up() {
            // The first carrier: the MRU can now follow the connection's path.
            self.ppp = Ppp::new(
                ppp_config(self.opts, &self.link, Some(&conn)),
                Instant::now(),
            );
        } else {
            self.ppp.restart(true, Instant::now());
        }
        self.conn = Some(conn);
        self.pending = pending;
        self.start = matches!(self.link.answer, TunnelAnswer::PppOrHttpRefusal)
            .then(|| TunnelStart::new(Instant::now()));
    }

    /// Before the network was first up, the addresses a tunnel request's answer gave are
    /// the ones PPP asks for.
    pub(super) fn propose(&mut self, proposed: Option<Proposed>) {
        if let (Some((v4, v6)), false) = (proposed, self.host.is_up()) {
            self.link.base.ipv4 = v4.or(self.link.base.ipv4);
            if let Some(v6) = v6 {
                self.link.base.ipv6 = Ipv6Net::new(v6, 64).ok();
            }
        }
    }

    /// Drops the TLS tunnel and keeps how it ended for later when our DTLS probe is out
    /// (see [`PppTunnel::deferred`]); false when the ending stands now.
    pub(super) fn defer_tls_end(&mut self, end: TlsEnd) -> bool {
        let probing = self.udp.as_ref().is_some_and(PppUdp::is_probing);
        if !probing || self.conn.is_none() {
            return false;
        }
        debug!("TLS tunnel ended ({end:?}) while DTLS is being accepted; waiting for DTLS");
        self.conn = None;
        self.deferred = Some(end);
        true
    }

    /// Acts on what the DTLS side reports.
    pub(super) async fn udp_event(&mut self, event: UdpEvent) {
        match event {
            UdpEvent::Accepted { ipv4, ipv6 } => {
                // Also when the TLS tunnel already ended under the accepted probe.
                if self.conn.is_some() || self.deferred.is_some() {
                    info!("DTLS tunnel connected; exiting HTTPS mainloop.");
                } else {
                    info!("DTLS tunnel connected");
                }
                if !self.host.is_up() {
                    self.propose(Some((ipv4, ipv6)));
                    let config = ppp_config(self.opts, &self.link, self.conn.as_ref());
                    self.ppp = Ppp::new(config, Instant::now());
                }
                self.ppp.restart(false, Instant::now());
                self.start = None;
                if let Some(mut conn) = self.conn.take() {
                    // Upstream closes the HTTPS tunnel once DTLS carries PPP.
                    let _ = conn.tls.shutdown().await;
                }
            }
            UdpEvent::Abandoned(why) => warn!("DTLS: {why}"),
        }
    }

    pub(super) async fn deadline_passed(
        &mut self,
        now: Instant,
    ) -> Result<Option<Stop>, ClientError> {
        if let Some(udp) = self.udp.as_mut() {
            if let Some(event) = udp.on_deadline(&self.endpoint.tls, now).await {
                self.udp_event(event).await;
            }
        }
        match self.ppp.handle_timeout(now) {
            Ok(()) => Ok(None),
            Err(e) => self.ppp_failed(e).await,
        }
    }

    pub(super) async fn udp_received(
        &mut self,
        batch: &RecvBatch,
        read: std::io::Result<usize>,
    ) -> Result<Option<Stop>, ClientError> {
        let now = Instant::now();
        let Self {
            ppp,
            host,
            udp,
            endpoint,
            ..
        } = self;
        let Some(udp) = udp.as_mut() else {
            return Ok(None);
        };
        let count = match read {
            Ok(n) => n,
            Err(e) => {
                udp.lost(&format!("receiving on UDP: {e}"), now).await;
                return Ok(None);
            }
        };
        let mut failure = None;
        let event = udp
            .on_received(count, batch, &endpoint.tls, now, &mut |frame| {
                let delivered = ppp.handle_input(frame, now, &mut |packet| host.deliver(packet));
                if let Err(e) = delivered {
                    failure.get_or_insert(e);
                }
            })
            .await;
        host.flush();
        if let Some(e) = failure {
            return Err(e.into());
        }
        if let Some(event) = event {
            self.udp_event(event).await;
        }
        Ok(None)
    }
}
