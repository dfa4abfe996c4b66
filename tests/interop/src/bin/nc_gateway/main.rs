//! `nc_gateway`: a test gateway speaking Juniper Network Connect: its `dana-na` web login
//! (the pages that end with the `DSID` cookie) and the oNCP tunnel over TLS and ESP, enough
//! for openconnect's `--protocol=nc` to log in and pass traffic. It is test code: one user,
//! one tunnel at a time, no persistence. oNCP is `oc_proto::nc`'s (the gateway's side of
//! the same framing and TLVs the client reads) and ESP is `oc_proto::esp` with OpenSSL's
//! cipher.
//!
//! ```text
//! nc_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
//!            --tunnel-addr IPV4 --client-addr IPV4 [--otp CODE [--token-form NAME]]
//!            [--realm NAME]... [--role NAME]... [--confirm] [--notice TEXT]
//!            [--host-checker] [--no-esp | --refuse-esp] [--esp-port N]
//!            [--esp-suite ENC/MAC] [--esp-rekey SECONDS] [--mtu N] [--split-writes]
//!            [--expire SECONDS] [--dns IPV4]... [--route NET/PREFIX]... [--tun NAME]
//!            [--log FILE]
//! ```
//!
//! The pages, as Pulse/Juniper gateways and upstream's fake server lay them out:
//! - `GET /` redirects to `/dana-na/auth/url_default/welcome.cgi`. With `--host-checker`
//!   that page first sets a `DSPREAUTH` cookie and shows no form (the client's host
//!   checker, `--csd-wrapper`, must answer it: the cookie that comes back must be
//!   `checked-` and the one set), then redirects to the login once it is checked;
//! - the login page: form `frmLogin` (`username`, `password`, a `realm` select with
//!   `--realm` choices, button `btnSubmit`), posted to `login.cgi`. With `--notice` it has
//!   the `sn-postauth-text` text area and the `sn-postauth-proceed` button;
//! - after the password: with `--otp`, a token form (`--token-form`: `frmDefender`, the
//!   default, `frmNextToken` or `frmTotpToken`, field `token_code`); with `--confirm`,
//!   `frmConfirmation` (`btnContinue`); with `--role`s, `frmSelectRoles`, one link per
//!   role. Then `DSID` is set and the client is sent to the webtop
//!   (`/dana/home/starter0.cgi`);
//! - `POST /dana/js?prot=1&svc=4` (the tunnel request): 401 for an unknown `DSID`; else
//!   200 and oNCP on the connection ([`tunnel`]): the client's hello, the status byte, the
//!   configuration (the addresses, `--dns`, `--route`s, `--mtu`, and unless `--no-esp` the
//!   ESP suite, `--esp-port` and keys), the client's settings, then packets both ways. With
//!   ESP the client's probes are answered on UDP (not with `--refuse-esp`) and, once the
//!   client turns ESP on, packets for it go there ([`esp`]); `--esp-rekey` sends new keys
//!   every so many seconds, `--expire` ends the session with reason 1 (expired) after so
//!   many, `--split-writes` cuts every record into two TLS writes;
//! - `GET /dana-na/auth/logout.cgi` forgets the session and ends its tunnel.
//!
//! Every step is logged, wrong answers too; nothing a client sends panics it.

macro_rules! log {
    ($($arg:tt)*) => { ::ferroconnect_interop::gateway::log_line(format_args!($($arg)*)) };
}

mod login;
mod tunnel;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use ferroconnect_interop::gateway::{
    self, lock, parse_esp_suite, parse_value, parse_with_own, redirect, text, Answer, Common,
    EspMode, JuniperEspServer, Site, TunLink, Upgraded,
};
use oc_proto::esp::{EspEncryption, EspIntegrity, EspSuite};
use oc_proto::http::server::{Method, RequestLimits, ServerRequest};

use self::login::html;

const USAGE: &str = "\
usage: nc_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
                  --tunnel-addr IPV4 --client-addr IPV4 [options]

A Juniper Network Connect test gateway: its dana-na web login, ending with the DSID
cookie, and the oNCP tunnel over TLS and ESP, for openconnect --protocol=nc.

  --listen ADDR:PORT     where to accept HTTPS (e.g. 198.18.10.1:443)
  --cert PEM, --key PEM  the server certificate (chain) and its private key
  --user NAME            the one user that may log in
  --password PASS        its password
  --otp CODE             after the password, a token form asks for this code
  --token-form NAME      frmDefender (default), frmNextToken or frmTotpToken
  --realm NAME           a realm of the login form's select (repeatable)
  --role NAME            after the login, choose among these roles (repeatable)
  --confirm              after the login, a confirmation form
  --notice TEXT          a sign-in notice on the login form (sn-postauth-text)
  --host-checker         the host checker must pass (DSPREAUTH) before the login
  --no-esp               no ESP in the configuration: the tunnel is TLS only
  --refuse-esp           ESP keys handed out, but the client's probes go unanswered
  --esp-port N           ESP's UDP port (default 4500)
  --esp-suite ENC/MAC    aes-128-cbc|aes-256-cbc / md5|sha1|sha256 (default
                         aes-128-cbc/sha1)
  --esp-rekey SECONDS    new ESP keys every so many seconds
  --esp-lzo              LZO in the ESP configuration, and Legacy IP packets for the
                         client LZO-compressed (next header 5), as Juniper gateways send
  --mtu N                the MTU in the configuration (default 1400)
  --packet-mid-config    a record with an IP packet between the configuration's halves
  --split-writes         every record the gateway sends goes out in two TLS writes
  --expire SECONDS       end each tunnel with reason 1 (session expired) after so long
  --tunnel-addr, --client-addr, --dns, --route, --tun, --log: as every test gateway

It prints `listening on https://ADDR:PORT` once ready.";

const LOGIN_PAGE: &str = "/dana-na/auth/url_default/welcome.cgi";
const LOGIN_POST: &str = "/dana-na/auth/url_default/login.cgi";
const ROLE_PAGE: &str = "/dana-na/auth/url_default/select_role.cgi";
const WEBTOP: &str = "/dana/home/starter0.cgi";
const TUNNEL: &str = "/dana/js";
const LOGOUT: &str = "/dana-na/auth/logout.cgi";

/// What the host checker must answer: this prefix and the cookie it was given.
const CHECKED: &str = "checked-";

#[derive(Debug, Clone)]
struct Config {
    common: Common,
    token_form: String,
    realms: Vec<String>,
    roles: Vec<String>,
    confirm: bool,
    notice: Option<String>,
    host_checker: bool,
    esp: EspMode,
    esp_port: u16,
    esp_lzo: bool,
    suite: EspSuite,
    esp_rekey: Option<Duration>,
    mtu: u16,
    split_writes: bool,
    expire: Option<Duration>,
    packet_mid_config: bool,
}

impl AsRef<Common> for Config {
    fn as_ref(&self) -> &Common {
        &self.common
    }
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let flags = [
        "--confirm",
        "--host-checker",
        "--no-esp",
        "--refuse-esp",
        "--split-writes",
        "--esp-lzo",
        "--packet-mid-config",
    ];
    let known = [
        "--token-form",
        "--realm",
        "--role",
        "--notice",
        "--esp-port",
        "--esp-suite",
        "--esp-rekey",
        "--mtu",
        "--expire",
    ];
    let Some((mut common, own)) = parse_with_own(args, &flags, &known, "ncgw0")? else {
        return Ok(None);
    };
    // Network Connect has no DTLS: its UDP is ESP.
    common.dtls = None;
    let mut config = Config {
        esp_port: 4500,
        esp_lzo: false,
        common,
        token_form: "frmDefender".into(),
        realms: Vec::new(),
        roles: Vec::new(),
        confirm: false,
        notice: None,
        host_checker: false,
        esp: EspMode::On,
        suite: EspSuite::new(EspEncryption::Aes128Cbc, EspIntegrity::HmacSha1_96),
        esp_rekey: None,
        mtu: 1400,
        split_writes: false,
        expire: None,
        packet_mid_config: false,
    };
    let seconds = |name: &str, value: &str| -> Result<Option<Duration>, String> {
        let secs: u64 = parse_value(name, value)?;
        Ok(Some(Duration::from_secs(secs.max(1))))
    };
    for (name, value) in own {
        match name.as_str() {
            "--confirm" => config.confirm = true,
            "--host-checker" => config.host_checker = true,
            "--no-esp" => config.esp = EspMode::Off,
            "--refuse-esp" => config.esp = EspMode::Refuse,
            "--split-writes" => config.split_writes = true,
            "--esp-lzo" => config.esp_lzo = true,
            "--packet-mid-config" => config.packet_mid_config = true,
            "--token-form" => match value.as_str() {
                "frmDefender" | "frmNextToken" | "frmTotpToken" => config.token_form = value,
                other => return Err(format!("--token-form {other:?}: a token form's name")),
            },
            "--realm" => config.realms.push(value),
            "--role" => config.roles.push(value),
            "--notice" => config.notice = Some(value),
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
        "nc_gateway",
        USAGE,
        parse_args,
        Gateway::new,
        |gw, _| async move { gw.esp.serve().await },
    )
}

/// A login between its steps: the password was right; what is still to come.
#[derive(Debug, Clone)]
struct Pending {
    key: String,
    token_done: bool,
    confirmed: bool,
}

#[derive(Debug, Default)]
struct State {
    pending: VecDeque<Pending>,
    /// `DSPREAUTH` values set and not yet checked.
    preauth: VecDeque<String>,
    sessions: VecDeque<String>,
}

struct Gateway {
    config: Config,
    link: TunLink,
    state: Mutex<State>,
    esp: JuniperEspServer,
}

impl Gateway {
    fn new(config: Config, link: TunLink) -> Self {
        let mut esp = JuniperEspServer::new(
            config.esp,
            config.common.listen.ip(),
            config.esp_port,
            config.suite,
        );
        esp.lzo = config.esp_lzo;
        log!(
            "listening on https://{} (tun {}, user {}, realms {:?}, roles {:?}, token form {}, \
             confirmation {}, host checker {}, ESP {})",
            config.common.listen,
            link.name(),
            config.common.user,
            config.realms,
            config.roles,
            if config.common.otp.is_some() {
                config.token_form.as_str()
            } else {
                "none"
            },
            config.confirm,
            config.host_checker,
            esp.describe()
        );
        Self {
            config,
            link,
            state: Mutex::new(State::default()),
            esp,
        }
    }

    /// Forgets the session: its tunnel ends.
    fn forget(&self, dsid: &str) {
        lock(&self.state).sessions.retain(|s| s != dsid);
        self.link.end_session(dsid);
    }
}

impl Site for Gateway {
    type Upgrade = tunnel::TunnelStart;

    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_body_bytes: 16 * 1024,
            max_target_bytes: 1024,
            ..RequestLimits::default()
        }
    }

    fn streams_after_head(&self, request_line: &str) -> bool {
        request_line.starts_with("POST /dana/js")
    }

    fn answer(&self, peer: SocketAddr, request: &ServerRequest) -> Answer<tunnel::TunnelStart> {
        let get = request.method == Method::Get;
        let post = request.method == Method::Post;
        let reply = match request.path() {
            "/" if get => redirect(LOGIN_PAGE),
            LOGIN_PAGE if get => self.login_page(peer, request),
            LOGIN_POST if post => self.login_post(peer, request),
            ROLE_PAGE if get => self.role_chosen(peer, request),
            WEBTOP if get => html("<html><body>the webtop</body></html>"),
            TUNNEL if post => return tunnel::request(self, peer, request),
            LOGOUT if get => self.logout(peer, request),
            other => {
                log!("{peer}: no such page: {}", other.escape_debug());
                text(404, "Not Found", "text/plain", "not found")
            }
        };
        Answer::Reply(reply)
    }

    async fn tunnel(&self, tunnel: Upgraded<tunnel::TunnelStart>) -> Result<String, String> {
        tunnel::run(self, tunnel).await
    }
}
