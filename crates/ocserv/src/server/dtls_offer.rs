//! The DTLS channel a tunnel can be offered: keyed here (PSK from the TLS session, or the
//! client's legacy master secret), then started on the shared UDP port once the tunnel's
//! plan fixed its link MTU.

use std::sync::Arc;
use std::time::Duration;

use oc_net::udp::BatchSocket;
use oc_proto::anyconnect::dtls_cipher::{psk_description, select_legacy, Bulk};
use oc_proto::anyconnect::dtls_hello::DTLS_ID_LEN;
use oc_proto::anyconnect::server_connect::ClientConnect;
use oc_proto::anyconnect::tunnel_plan::{DtlsOffer, DtlsOfferKind};
use oc_tls::dtls::{psk_from_tls, LegacyCipher};
use oc_tls::TlsStream;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{lock, random_fill, Server};
use crate::config::{Config, NetSettings};
use crate::udp::{self, psk_cipher_matching, DtlsContexts, DtlsId, Keying, TunnelDtls};

/// A DTLS channel the server can key for this tunnel, not yet started.
pub(super) struct OfferedDtls {
    pub(super) offer: DtlsOffer,
    /// The session as ocserv names it in `occtl show user` (`(DTLS1.2)-(PSK)-(AES-256-GCM)`).
    pub(super) description: String,
    keying: Keying,
    socket: Arc<BatchSocket>,
}

impl Server {
    /// DTLS for this tunnel, chosen as ocserv does: PSK-NEGOTIATE when enabled (`dtls-psk`)
    /// and offered; otherwise, with `dtls-legacy`, the best legacy suite offered, resuming
    /// the client's master secret. Nothing when the server has no UDP port or the user is
    /// `no-udp`.
    pub(super) fn offer_dtls(
        &self,
        stream: &TlsStream,
        client: &ClientConnect,
        settings: &NetSettings,
        config: &Config,
    ) -> Option<OfferedDtls> {
        let (socket, contexts) = (self.udp.as_ref()?, self.dtls_ctx.as_ref()?);
        if settings.no_udp == Some(true) {
            return None;
        }
        let mut id = [0u8; DTLS_ID_LEN];
        random_fill(&mut id);
        let tls_cipher = stream
            .ssl()
            .current_cipher()
            .map(|c| c.name())
            .unwrap_or_default();
        let bulk = Bulk::from_openssl_name(tls_cipher);
        let (kind, keying, description) = if config.dtls_psk && client.dtls_psk {
            psk_keying(stream, contexts, bulk, config)?
        } else if config.dtls_legacy {
            legacy_keying(client, contexts, id, bulk)?
        } else {
            return None;
        };
        Some(OfferedDtls {
            offer: DtlsOffer { id, kind },
            description,
            keying,
            socket: socket.clone(),
        })
    }

    /// Registers the offered channel's id with the UDP dispatcher and starts the channel
    /// over a link of `link_mtu` bytes.
    pub(super) fn start_dtls(
        &self,
        offered: OfferedDtls,
        link_mtu: u32,
        config: &Config,
    ) -> (DtlsId, TunnelDtls) {
        let id = offered.offer.id;
        let (tx, rx) = mpsc::channel(udp::TUNNEL_QUEUE);
        lock(&self.dtls_registry).register(id, tx);
        let switch = Duration::from_secs(u64::from(config.switch_to_tcp_timeout.max(1)));
        let dtls = TunnelDtls::new(
            offered.keying,
            offered.socket,
            (id, rx),
            self.dtls_registry.clone(),
            link_mtu,
            switch,
        );
        (id, dtls)
    }
}

/// What to offer, how to key it, and its description for occtl.
type Keyed = (DtlsOfferKind, Keying, String);

/// PSK-NEGOTIATE keyed from the TLS session; with `match-tls-dtls-ciphers` the DTLS suite
/// follows the TLS session's cipher.
fn psk_keying(
    stream: &TlsStream,
    contexts: &DtlsContexts,
    bulk: Bulk,
    config: &Config,
) -> Option<Keyed> {
    let key = match psk_from_tls(stream.ssl()) {
        Ok(k) => k,
        Err(e) => {
            warn!("cannot derive the DTLS key: {e}");
            return None;
        }
    };
    let ciphers = config
        .match_tls_dtls_ciphers
        .then(|| psk_cipher_matching(bulk))
        .flatten();
    let kind = DtlsOfferKind::Psk {
        pinned: ciphers.is_some(),
    };
    let description = psk_description(ciphers);
    let keying = Keying::Psk {
        ctx: contexts.psk.clone(),
        key,
        ciphers,
    };
    info!("DTLS ciphersuite: PSK-NEGOTIATE");
    Some((kind, keying, description))
}

/// Legacy resumption of the client's master secret with the best suite it offered.
fn legacy_keying(
    client: &ClientConnect,
    contexts: &DtlsContexts,
    id: DtlsId,
    bulk: Bulk,
) -> Option<Keyed> {
    let suite = select_legacy(
        client.dtls_ciphers.as_deref(),
        client.dtls12_ciphers.as_deref(),
        bulk,
    )?;
    let master_secret = client.master_secret?;
    let cipher = LegacyCipher::from_header_name(suite.name)?;
    let keying = Keying::Legacy {
        ctx: contexts.legacy.clone(),
        session_id: id,
        master_secret,
        cipher,
    };
    info!("DTLS ciphersuite: {} (legacy resumption)", suite.name);
    Some((DtlsOfferKind::Legacy(suite), keying, suite.description()))
}
