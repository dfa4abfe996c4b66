//! `pulse_gateway`: a test gateway speaking Pulse Connect Secure (IF-T/TLS with EAP for the
//! login, the configuration, packets over TLS and ESP), enough for openconnect's
//! `--protocol=pulse` to log in and pass traffic. It is test code: one user, one tunnel at
//! a time, no persistence. The messages are `oc_proto::pulse`'s (the gateway's side of the
//! same framing, EAP and configuration the client reads) and ESP is `oc_proto::esp`'s.
//!
//! ```text
//! pulse_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
//!               --tunnel-addr IPV4 --client-addr IPV4 [--otp CODE] [--juniper5]
//!               [--realm NAME]... [--banner TEXT] [--no-esp | --refuse-esp]
//!               [--esp-port N] [--esp-suite ENC/MAC] [--esp-rekey SECONDS] [--mtu N]
//!               [--split-writes] [--expire SECONDS] [--session-info] [--dns IPV4]...
//!               [--route NET/PREFIX]... [--tun NAME] [--log FILE]
//! ```
//!
//! What it does, as Pulse servers and upstream's fake server do ([`tunnel`]):
//! - `GET` with `Upgrade: IF-T/TLS 1.0` is answered `101 Switching Protocols`; then the
//!   version (2), the client's information, the EAP identity, the client's OS and user
//!   agent. A cookie it presents that the gateway knows logs it in at once; one it does
//!   not is answered with a password request (the client takes that as the cookie's end).
//! - The login: with `--realm`s a realm choice; with `--banner` a sign-in notice to
//!   acknowledge; the password (Juniper/2, or Juniper/5 with `--juniper5`; a wrong one is
//!   asked again twice, then refused); with `--otp` a token code (EAP-GTC); then the
//!   `DSID` cookie and success.
//! - The configuration (the 9.1R14 form): the client's address, `--dns`, `--route`s,
//!   `--mtu`, and unless `--no-esp` the ESP suite and port, then the ESP keys; the client
//!   answers with its keys and `ncmo=1`; the end of the configuration.
//! - Packets: Juniper/4 over TLS; over ESP (AES/HMAC as `--esp-suite`) once the client's
//!   probe came and it said `ncmo=1`, until `ncmo=0`. `--refuse-esp` leaves probes
//!   unanswered, `--esp-rekey` sends new keys every so many seconds, `--split-writes`
//!   sends each data message in records of 1, 2, 4, ... bytes (as upstream's fake server),
//!   `--expire` ends the tunnel with a fatal error (0x93) after so many seconds,
//!   `--session-info` sends the session information (0x96) newer servers send.
//! - The client's goodbye (0x89) ends the tunnel; `GET /dana-na/auth/logout.cgi` with the
//!   cookie forgets the session.
//!
//! Every step is logged, wrong answers too; nothing a client sends panics it.

macro_rules! log {
    ($($arg:tt)*) => { ::ferroconnect_interop::gateway::log_line(format_args!($($arg)*)) };
}

mod login;
mod ttls;
mod tunnel;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use ferroconnect_interop::gateway::{
    self, lock, parse_esp_suite, parse_value, parse_with_own, remember, text, Answer, Common,
    EspMode, JuniperEspServer, Site, TunLink, Upgraded,
};
use oc_proto::esp::{EspEncryption, EspIntegrity, EspSuite};
use oc_proto::http::server::{Method, RequestLimits, ServerRequest};

const USAGE: &str = "\
usage: pulse_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
                     --tunnel-addr IPV4 --client-addr IPV4 [options]

A Pulse Connect Secure test gateway: the IF-T/TLS login (EAP), the configuration and
the tunnel over TLS and ESP, for openconnect --protocol=pulse.

  --listen ADDR:PORT     where to accept HTTPS (e.g. 198.18.10.1:443)
  --cert PEM, --key PEM  the server certificate (chain) and its private key
  --user NAME            the one user that may log in
  --password PASS        its password
  --otp CODE             after the password, a token code (EAP-GTC) is asked for
  --juniper5             ask for the password the newer way (Juniper/5, 18 bytes)
  --realm NAME           a realm to choose from (repeatable)
  --banner TEXT          a sign-in notice the client must acknowledge
  --ttls                 the login's requests go inside EAP-TTLS (a TLS connection
                         carried in EAP, with this gateway's certificate)
  --ttls-client-ca PEM   EAP-TTLS that requires a client certificate from this CA; the
                         certificate (CN the user) replaces the password
  --ttls-fragment N      cut our EAP-TTLS messages into pieces of N bytes (default 8192)
  --ttls-tls13           TLS 1.3 inside EAP-TTLS (default: TLS 1.2 at most)
  --no-esp               no ESP in the configuration: the tunnel is TLS only
  --refuse-esp           ESP keys handed out, but the client's probes go unanswered
  --esp-port N           ESP's UDP port (default 4500)
  --esp-suite ENC/MAC    aes-128-cbc|aes-256-cbc / md5|sha1|sha256 (default
                         aes-128-cbc/sha1)
  --esp-rekey SECONDS    new ESP keys every so many seconds
  --mtu N                the MTU in the configuration (default 1400)
  --split-writes         each data message goes out in records of 1, 2, 4, ... bytes
  --expire SECONDS       end each tunnel with a fatal error after so long
  --session-info         send the session information (0x96) after the configuration
  --tunnel-addr, --client-addr, --dns, --route, --tun, --log: as every test gateway

It prints `listening on https://ADDR:PORT` once ready.";

const LOGOUT: &str = "/dana-na/auth/logout.cgi";

#[derive(Debug, Clone)]
struct Config {
    common: Common,
    juniper5: bool,
    realms: Vec<String>,
    banner: Option<String>,
    esp: EspMode,
    esp_port: u16,
    suite: EspSuite,
    esp_rekey: Option<Duration>,
    mtu: u16,
    split_writes: bool,
    expire: Option<Duration>,
    session_info: bool,
    ttls: Option<TtlsOptions>,
}

/// `--ttls`, `--ttls-client-ca`, `--ttls-fragment`, `--ttls-tls13`.
#[derive(Debug, Clone)]
struct TtlsOptions {
    client_ca: Option<PathBuf>,
    fragment: usize,
    tls13: bool,
}

impl Default for TtlsOptions {
    fn default() -> Self {
        Self {
            client_ca: None,
            fragment: oc_proto::pulse::ttls::MAX_FRAGMENT,
            tls13: false,
        }
    }
}

impl AsRef<Common> for Config {
    fn as_ref(&self) -> &Common {
        &self.common
    }
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let flags = [
        "--juniper5",
        "--no-esp",
        "--refuse-esp",
        "--split-writes",
        "--session-info",
        "--ttls",
        "--ttls-tls13",
    ];
    let known = [
        "--realm",
        "--banner",
        "--esp-port",
        "--esp-suite",
        "--esp-rekey",
        "--mtu",
        "--expire",
        "--ttls-client-ca",
        "--ttls-fragment",
    ];
    let Some((mut common, own)) = parse_with_own(args, &flags, &known, "pulsegw0")? else {
        return Ok(None);
    };
    // Pulse has no DTLS: its UDP is ESP.
    common.dtls = None;
    let mut config = Config {
        common,
        juniper5: false,
        realms: Vec::new(),
        banner: None,
        esp: EspMode::On,
        esp_port: 4500,
        suite: EspSuite::new(EspEncryption::Aes128Cbc, EspIntegrity::HmacSha1_96),
        esp_rekey: None,
        mtu: 1400,
        split_writes: false,
        expire: None,
        session_info: false,
        ttls: None,
    };
    let seconds = |name: &str, value: &str| -> Result<Option<Duration>, String> {
        let secs: u64 = parse_value(name, value)?;
        Ok(Some(Duration::from_secs(secs.max(1))))
    };
    for (name, value) in own {
        match name.as_str() {
            "--juniper5" => config.juniper5 = true,
            "--no-esp" => config.esp = EspMode::Off,
            "--refuse-esp" => config.esp = EspMode::Refuse,
            "--split-writes" => config.split_writes = true,
            "--session-info" => config.session_info = true,
            "--ttls" => {
                config.ttls.get_or_insert_with(TtlsOptions::default);
            }
            "--ttls-tls13" => config.ttls.get_or_insert_with(TtlsOptions::default).tls13 = true,
            "--ttls-client-ca" => {
                config
                    .ttls
                    .get_or_insert_with(TtlsOptions::default)
                    .client_ca = Some(PathBuf::from(value));
            }
            "--ttls-fragment" => {
                let size: usize = parse_value(&name, &value)?;
                config
                    .ttls
                    .get_or_insert_with(TtlsOptions::default)
                    .fragment = size.max(1);
            }
            "--realm" => config.realms.push(value),
            "--banner" => config.banner = Some(value),
            "--esp-port" => config.esp_port = parse_value(&name, &value)?,
            "--esp-suite" => config.suite = parse_esp_suite(&value)?,
            "--esp-rekey" => config.esp_rekey = seconds(&name, &value)?,
            "--expire" => config.expire = seconds(&name, &value)?,
            "--mtu" => config.mtu = parse_value(&name, &value)?,
            _ => return Err(format!("unknown option {name}")),
        }
    }
    Ok(Some(config))
}

fn main() -> ExitCode {
    gateway::main_with(
        "pulse_gateway",
        USAGE,
        parse_args,
        Gateway::new,
        |gw, _| async move { gw.esp.serve().await },
    )
}

struct Gateway {
    config: Config,
    link: TunLink,
    /// The cookies of sessions logged in.
    sessions: Mutex<VecDeque<String>>,
    esp: JuniperEspServer,
}

impl Gateway {
    fn new(config: Config, link: TunLink) -> Self {
        let esp = JuniperEspServer::new(
            config.esp,
            config.common.listen.ip(),
            config.esp_port,
            config.suite,
        );
        log!(
            "listening on https://{} (tun {}, user {}, realms {:?}, password {}, token {}, \
             ESP {}, EAP-TTLS {})",
            config.common.listen,
            link.name(),
            config.common.user,
            config.realms,
            if config.juniper5 {
                "Juniper/5"
            } else {
                "Juniper/2"
            },
            if config.common.otp.is_some() {
                "GTC"
            } else {
                "none"
            },
            esp.describe(),
            match &config.ttls {
                None => "off".to_string(),
                Some(TtlsOptions {
                    client_ca: Some(_), ..
                }) => "with a client certificate".into(),
                Some(_) => "on".into(),
            }
        );
        Self {
            config,
            link,
            sessions: Mutex::new(VecDeque::new()),
            esp,
        }
    }

    fn knows(&self, cookie: &str) -> bool {
        lock(&self.sessions).iter().any(|s| s == cookie)
    }

    fn add_session(&self, cookie: &str) {
        remember(&mut lock(&self.sessions), cookie.to_string());
    }

    /// Forgets the session: its tunnel ends.
    fn forget(&self, cookie: &str) {
        lock(&self.sessions).retain(|s| s != cookie);
        self.link.end_session(cookie);
    }
}

impl Site for Gateway {
    type Upgrade = ();

    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_body_bytes: 4 * 1024,
            max_target_bytes: 1024,
            ..RequestLimits::default()
        }
    }

    fn answer(&self, peer: SocketAddr, request: &ServerRequest) -> Answer<()> {
        let upgrade = request.header("Upgrade").unwrap_or_default();
        if request.method == Method::Get && upgrade.eq_ignore_ascii_case("IF-T/TLS 1.0") {
            log!(
                "{peer}: upgrade to IF-T/TLS (Content-Type {:?}, cookie {})",
                request.header("Content-Type"),
                if request.cookie("DSID").is_some() {
                    "given"
                } else {
                    "none"
                }
            );
            return Answer::Upgrade(());
        }
        if request.method == Method::Get && request.path() == LOGOUT {
            if let Some(cookie) = request.cookie("DSID").filter(|c| self.knows(c)) {
                self.forget(cookie);
                log!("{peer}: logout: session forgotten");
            }
            return Answer::Reply(text(200, "OK", "text/html", "successful logout"));
        }
        log!("{peer}: no such page: {}", request.target.escape_debug());
        Answer::Reply(text(404, "Not Found", "text/plain", "not found"))
    }

    async fn tunnel(&self, tunnel: Upgraded<()>) -> Result<String, String> {
        tunnel::run(self, tunnel).await
    }
}
