//! `--ttls`: after the client's identity the gateway starts EAP-TTLS, a TLS connection
//! (this gateway's certificate; with `--ttls-client-ca`, a client certificate required)
//! whose records travel in EAP-TTLS packets, and asks the login's questions inside it.
//! Success is sent outside it, as upstream expects. The TLS connection inside is TLS 1.2
//! (RFC 5281's; TLS 1.3 inside EAP-TTLS came later, with RFC 9427) unless
//! `--ttls-tls13`, whose session tickets openconnect 9.01 cannot read there.

use oc_proto::pulse::eap::{Eap, EAP_RESPONSE, EAP_TYPE_IDENTITY, EAP_TYPE_TTLS};
use oc_proto::pulse::server;
use oc_proto::pulse::ttls::{TtlsLink, FLAG_START};
use oc_tls::memory::MemoryTls;
use openssl::ssl::{SslAcceptor, SslContext, SslFiletype, SslMethod, SslVerifyMode, SslVersion};

use super::tunnel::Link;
use super::TtlsOptions;

/// EAP-TTLS packets of the handshake before the gateway gives up.
const MAX_HANDSHAKE_ROUNDS: usize = 64;
/// Flags of the EAP-Message AVPs the gateway sends (the M bit, as servers set it).
const AVP_MANDATORY: u8 = 0x40;

/// The inner connection's context: this gateway's certificate, and the client
/// certificates it requires.
fn context(
    cert: &std::path::Path,
    key: &std::path::Path,
    options: &TtlsOptions,
) -> Result<SslContext, String> {
    let setup = |e: openssl::error::ErrorStack| format!("EAP-TTLS context: {e}");
    let mut ctx = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).map_err(setup)?;
    ctx.set_certificate_chain_file(cert).map_err(setup)?;
    ctx.set_private_key_file(key, SslFiletype::PEM)
        .map_err(setup)?;
    if !options.tls13 {
        ctx.set_max_proto_version(Some(SslVersion::TLS1_2))
            .map_err(setup)?;
    }
    if let Some(ca) = &options.client_ca {
        ctx.set_ca_file(ca).map_err(setup)?;
        ctx.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    Ok(ctx.build().into_context())
}

impl Link<'_> {
    /// Starts EAP-TTLS and runs its handshake until the client's identity comes inside;
    /// the common name of the client's certificate, when the gateway asked for one.
    pub async fn start_ttls(&mut self, options: &TtlsOptions) -> Result<Option<String>, String> {
        let common = &self.gw.config.common;
        let ctx = context(&common.cert, &common.key, options)?;
        let tls = MemoryTls::server(&ctx).map_err(|e| e.to_string())?;
        self.ttls = Some(TtlsLink::new(
            Box::new(tls),
            options.fragment,
            AVP_MANDATORY,
        ));
        let mut body = vec![FLAG_START];
        for _ in 0..MAX_HANDSHAKE_ROUNDS {
            self.ttls_round(body).await?;
            let link = self.ttls_link()?;
            if let Some(identity) = link.next_eap().map_err(|e| e.to_string())? {
                let eap = Eap::parse(&identity).map_err(|e| e.to_string())?;
                if eap.code != EAP_RESPONSE || eap.kind != Some(EAP_TYPE_IDENTITY) {
                    return Err("the first EAP packet inside EAP-TTLS is no identity".into());
                }
                let cn = link.tls().peer_name();
                let certificate = match &cn {
                    Some(cn) => format!("client certificate CN={cn}"),
                    None => "no client certificate".into(),
                };
                log!("{}: EAP-TTLS established ({certificate})", self.peer);
                return Ok(cn);
            }
            body = link.flush();
        }
        Err(format!(
            "no identity inside EAP-TTLS after {MAX_HANDSHAKE_ROUNDS} packets"
        ))
    }

    pub fn ttls_link(&mut self) -> Result<&mut TtlsLink, String> {
        self.ttls
            .as_mut()
            .ok_or_else(|| "EAP-TTLS is not running".to_string())
    }

    /// An EAP request inside EAP-TTLS; the client's answer inside.
    pub async fn ask_inside(&mut self, request: &[u8]) -> Result<Vec<u8>, String> {
        let link = self.ttls_link()?;
        link.send_eap(request).map_err(|e| e.to_string())?;
        let body = link.flush();
        self.ttls_round(body).await?;
        self.ttls_link()?
            .next_eap()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the client's EAP-TTLS message held no EAP packet".to_string())
    }

    /// `body` to the client, then its EAP-TTLS packets until one of its messages is whole
    /// in the TLS connection (its fragments acknowledged, ours sent on its
    /// acknowledgements).
    async fn ttls_round(&mut self, mut body: Vec<u8>) -> Result<(), String> {
        loop {
            self.eap_id = self.eap_id.wrapping_add(1);
            self.send(&server::ttls_request(self.eap_id, &body)).await?;
            let reply = self.next().await?;
            let eap = server::response(&reply.packet()).map_err(|e| e.to_string())?;
            if eap.kind != Some(EAP_TYPE_TTLS) {
                return Err("the client's answer inside EAP-TTLS is not EAP-TTLS".into());
            }
            if eap.id != self.eap_id {
                log!(
                    "{}: EAP-TTLS answer with id {} to request {}",
                    self.peer,
                    eap.id,
                    self.eap_id
                );
            }
            let data = eap.data.to_vec();
            let link = self.ttls_link()?;
            match link.on_packet(&data) {
                Ok(Some(next)) => body = next,
                Ok(None) => return Ok(()),
                Err(e) => {
                    // The TLS connection's alert goes to the client before the end.
                    let alert = link.flush();
                    self.eap_id = self.eap_id.wrapping_add(1);
                    self.send(&server::ttls_request(self.eap_id, &alert))
                        .await?;
                    return Err(format!("EAP-TTLS: {e}"));
                }
            }
        }
    }
}
