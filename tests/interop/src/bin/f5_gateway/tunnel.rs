//! The tunnel request, `GET /myvpn?...`, over TLS (then PPP on the connection) or as the
//! greeting of a DTLS association (then PPP, one frame per record): the same checks, the
//! same `X-VPN-*` answer.

use std::net::SocketAddr;

use ferroconnect_interop::gateway::{
    field, gateway_ppp, parse_query, send, text, Answer, Common, DtlsSite, Greeting, TunLink,
    Upgraded,
};
use oc_proto::http::server::{RequestReader, ServerRequest, ServerResponse};
use oc_proto::ppp::Encapsulation;

use super::config::yes_no;
use super::{bad_request, Gateway, Site, TunnelStart};

/// `GET /myvpn?...`: the grant must match; the connection then becomes the tunnel.
pub fn tunnel_request(
    gateway: &Gateway,
    peer: SocketAddr,
    request: &ServerRequest,
) -> Answer<TunnelStart> {
    let query = parse_query(&request.target);
    let get = |name| field(&query, name).unwrap_or_default();
    let hostname = openssl::base64::decode_block(get("hostname"))
        .map(|h| String::from_utf8_lossy(&h).into_owned())
        .unwrap_or_else(|_| format!("(not base64: {})", get("hostname")));
    log!(
        "{peer}: tunnel request: hdlc_framing={} ipv4={} ipv6={} hostname={} \
         user-agent={} cookies={}",
        get("hdlc_framing").escape_debug(),
        get("ipv4").escape_debug(),
        get("ipv6").escape_debug(),
        hostname.escape_debug(),
        request.header("User-Agent").unwrap_or("-").escape_debug(),
        match request.header("Cookie") {
            Some(_) => "sent",
            None => "none",
        },
    );
    let hdlc = yes_no(gateway.config.hdlc);
    if get("hdlc_framing") != hdlc {
        return Answer::Final(bad_request(peer, &format!("hdlc_framing is not {hdlc}")));
    }
    if get("ipv4") != "yes" {
        return Answer::Final(bad_request(
            peer,
            "ipv4 is not yes (this gateway only does IPv4)",
        ));
    }
    match gateway.claim_tunnel(get("sess"), get("Z")) {
        Ok((mrh, generation)) => Answer::Upgrade(TunnelStart {
            mrh,
            generation,
            encapsulation: match gateway.config.hdlc {
                true => Encapsulation::F5Hdlc,
                false => Encapsulation::F5,
            },
        }),
        Err(refusal) => {
            log!("{peer}: tunnel refused: {refusal:?}");
            Answer::Final(session_not_found())
        }
    }
}

/// What an APM answers a tunnel request for a session it does not know (upstream reads a
/// 504 as the session being refused).
fn session_not_found() -> ServerResponse {
    text(
        504,
        "Gateway Timeout",
        "text/html",
        "<html><body>Session not found</body></html>",
    )
}

/// The answer that lets a tunnel start: `status`, the addresses, and only these headers.
fn tunnel_head(status: u16, reason: &str, config: &Common) -> ServerResponse {
    let mut head = ServerResponse::new(status, reason)
        .header("X-VPN-client-IP", config.client_addr.to_string())
        .header("X-VPN-server-IP", config.tunnel_addr.to_string());
    if let Some((gateway6, client6)) = config.ipv6 {
        head = head
            .header("X-VPN-client-IPv6", client6.to_string())
            .header("X-VPN-server-IPv6", gateway6.to_string());
    }
    head.tunnel = true;
    head
}

fn emit(response: &ServerResponse) -> Vec<u8> {
    let mut out = Vec::new();
    response.emit(&mut out);
    out
}

/// Answers the tunnel request and runs PPP on the connection.
pub async fn run_tunnel(
    gateway: &Gateway,
    tunnel: Upgraded<TunnelStart>,
) -> Result<String, String> {
    let Upgraded {
        mut tls,
        peer,
        upgrade: start,
        early,
    } = tunnel;
    let config = &gateway.config.common;
    // openconnect 9.01 reads a head without a length as an HTTP/1.0 body that runs to the
    // end of the connection, and gives up.
    let head = tunnel_head(201, "Created", config).header("Content-Length", "0");
    send(&mut tls, peer, &head).await?;
    let user = gateway.user(Some(&start.mrh)).unwrap_or_default();
    log!(
        "{peer}: tunnel {} for user {user:?}: client {}, gateway {}",
        start.generation,
        config.client_addr,
        config.tunnel_addr
    );
    let ppp = gateway_ppp(start.encapsulation, config, true);
    let how = format!("{} encapsulation", start.encapsulation.name());
    let result = gateway
        .link
        .run(tls, peer, &early, ppp, start.generation, &how)
        .await;
    gateway.tunnel_ended(start.generation);
    result
}

impl DtlsSite for Gateway {
    fn link(&self) -> &TunLink {
        &self.link
    }

    fn common(&self) -> &Common {
        &self.config.common
    }

    fn is_greeting(record: &[u8]) -> bool {
        record.starts_with(b"GET ")
    }

    fn refusal(&self) -> Vec<u8> {
        emit(&session_not_found())
    }

    /// The tunnel request as over TLS, read by the same codec with the same limits, and
    /// checked the same way; a good one gets `200 OK` and the addresses (no length: the
    /// record ends the head), anything else the answer TLS would get.
    fn greet(&self, peer: SocketAddr, record: &[u8]) -> Greeting {
        let mut reader = RequestReader::new(self.limits());
        let request = reader.feed(record).and_then(|()| reader.poll());
        let request = match request {
            Ok(Some(request)) => request,
            Ok(None) => {
                let answer = bad_request(peer, "the DTLS tunnel request is cut short");
                return refuse(&answer);
            }
            Err(e) => {
                log!("{peer}: bad DTLS tunnel request: {e}");
                let (status, reason) = e.status();
                return refuse(&ServerResponse::new(status, reason));
            }
        };
        log!("{peer}: over DTLS: GET {}", request.target.escape_debug());
        match tunnel_request(self, peer, &request) {
            Answer::Upgrade(start) => {
                let head = tunnel_head(200, "OK", &self.config.common);
                Greeting::Accept {
                    answer: emit(&head),
                    session: format!(
                        "Session_ID {}",
                        field(&parse_query(&request.target), "sess").unwrap_or_default()
                    ),
                    generation: start.generation,
                    encapsulation: start.encapsulation,
                }
            }
            Answer::Final(answer) | Answer::Reply(answer) => refuse(&answer),
        }
    }

    fn tunnel_ended(&self, generation: u64) {
        Gateway::tunnel_ended(self, generation);
    }
}

fn refuse(answer: &ServerResponse) -> Greeting {
    Greeting::Refuse {
        answer: emit(answer),
        why: format!("HTTP {} {}", answer.status, answer.reason),
    }
}
