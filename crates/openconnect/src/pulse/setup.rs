//! A Pulse connection up to the tunnel: the upgrade to IF-T/TLS, the login (a form for
//! each request, or a cookie presented; inside EAP-TTLS on a TLS connection over memory
//! with the HTTPS connection's trust and certificate when the server starts it), then the
//! configuration: the main configuration,
//! the ESP configuration answered at once with our keys and `ncmo`, until its end.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use oc_proto::esp::{EspKeys, EspParams, JuniperProber, SECRETS_BLOCK_LEN};
use oc_proto::gp::client::platform_name;
use oc_proto::http::Request;
use oc_proto::pulse::auth::{AuthStep, ClientInfo, PulseAuth};
use oc_proto::pulse::client::{ConfigPhase, ConfigStep, Outgoing};
use oc_proto::pulse::config::PulseConfig;
use oc_proto::pulse::ift::{IftDecoder, IftPacket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info, warn};

use super::pulse_error;
use crate::auth_ui::FormFiller;
use crate::cli::Options;
use crate::error::ClientError;
use crate::esp_channel::{new_inbound_keys, random_spi_and_secrets, EspChannel};
use crate::transport::{Endpoint, HttpsConnection};
use crate::user_agent;

/// How long the server may take over one message of the login or configuration.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// What the user agent claims when it is not Pulse's own (newer servers refuse older
/// claims, and enable IPv6 only for Pulse clients).
const PULSE_VERSION: &str = "Pulse-Secure/22.8.5.41063";

pub(super) type Esp = EspChannel<JuniperProber>;

/// A message read whole, owned.
#[derive(Debug, Clone)]
pub(super) struct Message {
    pub vendor: u32,
    pub kind: u32,
    pub seq: u32,
    pub payload: Vec<u8>,
}

impl Message {
    pub(super) fn packet(&self) -> IftPacket<'_> {
        IftPacket {
            vendor: self.vendor,
            kind: self.kind,
            seq: self.seq,
            payload: &self.payload,
        }
    }
}

/// A logged-in connection.
pub(super) struct Session {
    pub conn: HttpsConnection,
    pub cookie: String,
    pub decoder: IftDecoder,
    /// Messages read and not yet handled.
    pub queue: VecDeque<Message>,
    /// Our messages' numbering.
    pub out: Outgoing,
}

/// What the configuration gave.
pub(super) struct Configured {
    pub config: PulseConfig,
    pub esp: Option<Esp>,
}

/// `Pulse-Secure/...` around the user agent, unless it is one already (or IPv6 is off,
/// as upstream leaves it then).
fn pulse_user_agent(opts: &Options) -> String {
    let agent = user_agent(opts);
    if agent.starts_with("Pulse-Secure/") || opts.disable_ipv6 {
        agent
    } else {
        format!("{PULSE_VERSION} ({agent})")
    }
}

impl Session {
    /// Connects, upgrades to IF-T/TLS and logs in: with `cookie` presented (no forms: a
    /// question means it is dead), or by `filler`'s answers.
    pub(super) async fn login(
        opts: &Options,
        endpoint: &Endpoint,
        cookie: Option<&str>,
        filler: Option<&mut FormFiller>,
    ) -> Result<Self, ClientError> {
        let mut conn = endpoint.connect().await?;
        let mut req = Request::new("GET", endpoint.url.request_path())
            .header("Host", endpoint.url.host_header())
            .header("User-Agent", user_agent(opts));
        if let Some(cookie) = cookie {
            req = req.header("Cookie", format!("DSID={cookie}"));
        }
        let req = req
            .header("Content-Type", "EAP")
            .header("Upgrade", "IF-T/TLS 1.0")
            .header("Content-Length", "0");
        let (resp, early) = conn.exchange(&req, true).await?;
        let status = resp.head.status;
        ClientError::from_verdict(oc_proto::pulse::upgrade_verdict(status), status)?;
        let mut session = Self {
            conn,
            cookie: String::new(),
            decoder: IftDecoder::default(),
            queue: VecDeque::new(),
            out: Outgoing::new(0),
        };
        session.take(&early)?;
        session.cookie = session.authenticate(opts, endpoint, cookie, filler).await?;
        Ok(session)
    }

    async fn authenticate(
        &mut self,
        opts: &Options,
        endpoint: &Endpoint,
        cookie: Option<&str>,
        mut filler: Option<&mut FormFiller>,
    ) -> Result<String, ClientError> {
        let info = ClientInfo {
            hostname: opts.hostname(),
            local_ip: self.conn.tls.get_ref().local_addr().ok().map(|a| a.ip()),
            os: platform_name(opts.os.as_deref().unwrap_or("linux-64")).to_string(),
            user_agent: pulse_user_agent(opts),
        };
        let (mut auth, first) = PulseAuth::new(info, cookie.map(str::to_string));
        self.write(&first).await?;
        loop {
            let message = self.next().await?;
            let mut step = auth.on_message(message.packet()).map_err(pulse_error)?;
            if step == AuthStep::StartTls {
                info!("EAP-TTLS negotiation with {}", endpoint.url.host);
                let tls = endpoint.tls.memory_client(&endpoint.url.host)?;
                step = auth.start_tls(Box::new(tls)).map_err(pulse_error)?;
            }
            match step {
                AuthStep::Send(bytes) => self.write(&bytes).await?,
                AuthStep::StartTls => {
                    return Err(pulse_error(oc_proto::pulse::PulseError::Unexpected(
                        "EAP-TTLS started twice".into(),
                    )))
                }
                AuthStep::Ask(form) => {
                    let Some(filler) = filler.as_deref_mut() else {
                        return Err(pulse_error(oc_proto::pulse::PulseError::CookieRejected));
                    };
                    let answers = filler.fill(&form)?;
                    let reply = auth.answer(&answers).map_err(pulse_error)?;
                    self.write(&reply).await?;
                }
                AuthStep::Done { cookie } => {
                    self.out = Outgoing::new(auth.next_seq());
                    info!("Pulse authentication succeeded");
                    return Ok(cookie);
                }
            }
        }
    }

    /// Bytes read from the connection into the queue of whole messages.
    fn take(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let queue = &mut self.queue;
        self.decoder
            .decode(bytes, |p| {
                queue.push_back(Message {
                    vendor: p.vendor,
                    kind: p.kind,
                    seq: p.seq,
                    payload: p.payload.to_vec(),
                });
                Ok::<_, oc_proto::pulse::PulseError>(())
            })
            .map_err(pulse_error)
    }

    /// The next whole message.
    pub(super) async fn next(&mut self) -> Result<Message, ClientError> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if let Some(message) = self.queue.pop_front() {
                return Ok(message);
            }
            let read = tokio::time::timeout(MESSAGE_TIMEOUT, self.conn.tls.read(&mut buf));
            let n = read
                .await
                .map_err(|_| ClientError::Timeout("the Pulse server's next message"))?
                .map_err(ClientError::io("reading from the Pulse server"))?;
            if n == 0 {
                return Err(ClientError::Io {
                    what: "reading from the Pulse server",
                    source: std::io::ErrorKind::UnexpectedEof.into(),
                });
            }
            self.take(buf.get(..n).unwrap_or_default())?;
        }
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.conn
            .tls
            .write_all(bytes)
            .await
            .map_err(ClientError::io("sending to the Pulse server"))
    }

    /// The configuration messages, until their end ([`ConfigPhase`] says what each is).
    pub(super) async fn configure(&mut self, opts: &Options) -> Result<Configured, ClientError> {
        let mut phase = ConfigPhase::default();
        let mut esp = None;
        loop {
            let message = self.next().await?;
            match phase.on_message(message.packet()).map_err(pulse_error)? {
                ConfigStep::Continue(line) => {
                    if let Some(line) = line {
                        debug!("{line}");
                    }
                }
                ConfigStep::AcknowledgeSessionInfo => self.acknowledge_session_info().await?,
                ConfigStep::EspKeys {
                    outbound,
                    params,
                    payload,
                } => esp = self.esp_keys(opts, outbound, &params, payload).await?,
                ConfigStep::Done(config) => {
                    return Ok(Configured {
                        config: *config,
                        esp,
                    })
                }
            }
        }
    }

    pub(super) async fn acknowledge_session_info(&mut self) -> Result<(), ClientError> {
        let ack = self.out.session_info_ack();
        self.write(&ack).await
    }

    /// ESP's keys, answered at once with ours and whether ESP will be tried; the channel,
    /// probing, when it can be opened.
    async fn esp_keys(
        &mut self,
        opts: &Options,
        outbound: Result<EspKeys, String>,
        params: &EspParams,
        payload: &[u8],
    ) -> Result<Option<Esp>, ClientError> {
        let opened = match outbound {
            Ok(outbound) => self.open_esp(opts, &outbound, params).await,
            Err(why) => Err(why),
        };
        let (channel, spi, secrets) = match opened {
            Ok(opened) => opened,
            Err(why) => {
                warn!("Cannot set up ESP ({why}); the tunnel is TLS only");
                // Keys nobody will use, but nobody can guess either.
                let (spi, secrets) = random_spi_and_secrets().map_err(ClientError::System)?;
                let answer = self.out.esp_answer(payload, spi, &secrets, false);
                self.write(&answer.map_err(pulse_error)?).await?;
                return Ok(None);
            }
        };
        let answer = self.out.esp_answer(payload, spi, &secrets, true);
        self.write(&answer.map_err(pulse_error)?).await?;
        Ok(Some(channel))
    }

    /// Our keys for what we receive and the channel to the configuration's port.
    async fn open_esp(
        &mut self,
        opts: &Options,
        outbound: &EspKeys,
        params: &EspParams,
    ) -> Result<(Esp, u32, [u8; SECRETS_BLOCK_LEN]), String> {
        let (spi, secrets, inbound) = new_inbound_keys(outbound.suite())?;
        let port = match (opts.no_dtls, params.port) {
            (true, _) => return Err("UDP is off (--no-dtls)".into()),
            (false, None) => return Err("no ESP port in the configuration".into()),
            (false, Some(port)) => port,
        };
        let server = SocketAddr::new(self.conn.addr.ip(), port);
        let esp = Esp::juniper(opts, server, outbound, &inbound, params, Instant::now()).await?;
        Ok((esp, spi, secrets))
    }
}
