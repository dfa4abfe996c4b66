//! `nc_gateway`: a test gateway speaking Juniper Network Connect's web login (the
//! `dana-na` pages that end with the `DSID` cookie), enough for openconnect's
//! `--protocol=nc` to log in. It is test code: one user, no persistence. The oNCP tunnel is
//! not served yet: the tunnel request of a known session is answered 200 and closed, an
//! unknown one gets 401.
//!
//! ```text
//! nc_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
//!            --tunnel-addr IPV4 --client-addr IPV4 [--otp CODE [--token-form NAME]]
//!            [--realm NAME]... [--role NAME]... [--confirm] [--notice TEXT]
//!            [--host-checker] [--tun NAME] [--log FILE]
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
//! - `POST /dana/js?prot=1&svc=4` (the tunnel request): 200 and close for a known `DSID`,
//!   401 otherwise; `GET /dana-na/auth/logout.cgi` forgets the session.
//!
//! Every step is logged, wrong answers too; nothing a client sends panics it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Mutex;

use ferroconnect_interop::gateway::{
    self, describe_form, field, html_escape, lock, parse_command_line, parse_form, parse_query,
    random_hex, redirect, remember, text, Answer, Common, Site, TunLink, Upgraded,
};
use oc_proto::http::server::{Method, RequestLimits, ServerRequest, ServerResponse};

const USAGE: &str = "\
usage: nc_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
                  --tunnel-addr IPV4 --client-addr IPV4 [options]

A Juniper Network Connect test gateway: its dana-na web login, ending with the DSID
cookie, for openconnect --protocol=nc. (The oNCP tunnel is not served yet.)

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
  --tunnel-addr, --client-addr, --dns, --route, --tun, --log: as every test gateway";

macro_rules! log {
    ($($arg:tt)*) => { ::ferroconnect_interop::gateway::log_line(format_args!($($arg)*)) };
}

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
}

impl AsRef<Common> for Config {
    fn as_ref(&self) -> &Common {
        &self.common
    }
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let mut own: Vec<(String, Option<String>)> = Vec::new();
    let flags = ["--confirm", "--host-checker"];
    let known = ["--token-form", "--realm", "--role", "--notice"];
    let common = parse_command_line(args, &flags, "ncgw0", |name, value| {
        let ok = match value {
            None => flags.contains(&name),
            Some(_) => known.contains(&name),
        };
        if ok {
            own.push((name.to_string(), value.map(str::to_string)));
        }
        ok
    })?;
    let Some(common) = common else {
        return Ok(None);
    };
    let mut config = Config {
        common,
        token_form: "frmDefender".into(),
        realms: Vec::new(),
        roles: Vec::new(),
        confirm: false,
        notice: None,
        host_checker: false,
    };
    for (name, value) in own {
        let value = value.unwrap_or_default();
        match name.as_str() {
            "--confirm" => config.confirm = true,
            "--host-checker" => config.host_checker = true,
            "--token-form" => match value.as_str() {
                "frmDefender" | "frmNextToken" | "frmTotpToken" => config.token_form = value,
                other => return Err(format!("--token-form {other:?}: a token form's name")),
            },
            "--realm" => config.realms.push(value),
            "--role" => config.roles.push(value),
            "--notice" => config.notice = Some(value),
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
        |_, _| async { Ok(()) },
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
    state: Mutex<State>,
}

impl Gateway {
    fn new(config: Config, _link: TunLink) -> Self {
        log!(
            "listening on https://{} (user {}, realms {:?}, roles {:?}, token form {}, \
             confirmation {}, host checker {})",
            config.common.listen,
            config.common.user,
            config.realms,
            config.roles,
            if config.common.otp.is_some() {
                config.token_form.as_str()
            } else {
                "none"
            },
            config.confirm,
            config.host_checker
        );
        Self {
            config,
            state: Mutex::new(State::default()),
        }
    }
}

impl Site for Gateway {
    type Upgrade = ();

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

    fn answer(&self, peer: SocketAddr, request: &ServerRequest) -> Answer<()> {
        let get = request.method == Method::Get;
        let post = request.method == Method::Post;
        let reply = match request.path() {
            "/" if get => redirect(LOGIN_PAGE),
            LOGIN_PAGE if get => self.login_page(peer, request),
            LOGIN_POST if post => self.login_post(peer, request),
            ROLE_PAGE if get => self.role_chosen(peer, request),
            WEBTOP if get => html("<html><body>the webtop</body></html>"),
            TUNNEL if post => return Answer::Final(self.tunnel(peer, request)),
            LOGOUT if get => self.logout(peer, request),
            other => {
                log!("{peer}: no such page: {}", other.escape_debug());
                text(404, "Not Found", "text/plain", "not found")
            }
        };
        Answer::Reply(reply)
    }

    async fn tunnel(&self, _tunnel: Upgraded<()>) -> Result<String, String> {
        Ok("no tunnel".into())
    }
}

fn html(body: &str) -> ServerResponse {
    text(200, "OK", "text/html; charset=utf-8", body)
}

impl Gateway {
    /// The login form, or first the host checker's page.
    fn login_page(&self, peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
        if self.config.host_checker {
            let given = request.cookie("DSPREAUTH").unwrap_or_default();
            let checked = given.strip_prefix(CHECKED).is_some_and(|issued| {
                let mut state = lock(&self.state);
                let at = state.preauth.iter().position(|p| p == issued);
                at.and_then(|i| state.preauth.remove(i)).is_some()
            });
            if !checked {
                let value = random_hex::<8>();
                log!("{peer}: host checker needed (DSPREAUTH {value}; given {given:?})");
                remember(&mut lock(&self.state).preauth, value.clone());
                return html("<html><body>Waiting for the host checker</body></html>")
                    .header("Set-Cookie", format!("DSPREAUTH={value}; path=/; secure"));
            }
            log!("{peer}: host checker passed");
        }
        let realms: String = self
            .config
            .realms
            .iter()
            .enumerate()
            .map(|(i, r)| format!("<option value=\"{i}\">{}</option>", html_escape(r)))
            .collect();
        let select = if realms.is_empty() {
            String::new()
        } else {
            format!("<select name=\"realm\">{realms}</select>")
        };
        let notice = self.config.notice.as_ref().map_or(String::new(), |n| {
            format!(
                "<textarea name=\"sn-postauth-text\">{}</textarea>\
                 <input type=\"submit\" name=\"sn-postauth-proceed\" value=\"Proceed\"/>",
                html_escape(n)
            )
        });
        log!("{peer}: login form sent");
        html(&format!(
            "<html><body><form name=\"frmLogin\" method=\"post\" action=\"{LOGIN_POST}\">\
             <input type=\"text\" name=\"username\"/>\
             <input type=\"password\" name=\"password\"/>{select}{notice}\
             <input type=\"submit\" value=\"Sign In\" name=\"btnSubmit\"/>\
             </form></body></html>"
        ))
    }

    /// Every post of the login: the password (a new login), then a token code or a
    /// confirmation (a login under way, named by its `key`).
    fn login_post(&self, peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
        let form = parse_form(&request.body);
        log!(
            "{peer}: login post: {}",
            describe_form(&form, &["password", "token_code"])
        );
        let mut pending = match field(&form, "key") {
            Some(key) => match self.take_pending(key) {
                Some(p) => p,
                None => {
                    log!("{peer}: login step for an unknown key; refused");
                    return self.login_again(peer, "Your session has expired");
                }
            },
            None => match self.check_password(peer, &form) {
                Ok(p) => p,
                Err(why) => return self.login_again(peer, &why),
            },
        };
        if field(&form, "token_code").is_some() {
            if field(&form, "token_code") != self.config.common.otp.as_deref() {
                log!("{peer}: wrong token code");
                return self.login_again(peer, "Invalid token code");
            }
            log!("{peer}: token code accepted");
            pending.token_done = true;
        }
        if field(&form, "btnContinue").is_some() {
            log!("{peer}: login confirmed");
            pending.confirmed = true;
        }
        self.next_step(peer, pending)
    }

    fn check_password(
        &self,
        peer: SocketAddr,
        form: &[(String, String)],
    ) -> Result<Pending, String> {
        let common = &self.config.common;
        let realm_ok = self.config.realms.is_empty()
            || field(form, "realm")
                .and_then(|r| r.parse::<usize>().ok())
                .is_some_and(|r| r < self.config.realms.len());
        let button = field(form, "btnSubmit").is_some();
        let notice = self.config.notice.is_none() || field(form, "sn-postauth-proceed").is_some();
        if field(form, "username") != Some(common.user.as_str())
            || field(form, "password") != Some(common.password.as_str())
            || !realm_ok
            || !button
            || !notice
        {
            log!(
                "{peer}: login refused (user, password, realm {:?}, button {button}, notice \
                 {notice})",
                field(form, "realm")
            );
            return Err("Invalid username or password".into());
        }
        log!(
            "{peer}: password accepted for {:?} in realm {:?}",
            common.user,
            field(form, "realm")
        );
        Ok(Pending {
            key: random_hex::<8>(),
            token_done: self.config.common.otp.is_none(),
            confirmed: !self.config.confirm,
        })
    }

    fn take_pending(&self, key: &str) -> Option<Pending> {
        let mut state = lock(&self.state);
        let at = state.pending.iter().position(|p| p.key == key)?;
        state.pending.remove(at)
    }

    /// The next form of a login under way, or the session.
    fn next_step(&self, peer: SocketAddr, pending: Pending) -> ServerResponse {
        let key = pending.key.clone();
        if !pending.token_done {
            remember(&mut lock(&self.state).pending, pending);
            let form = &self.config.token_form;
            let button = if form == "frmTotpToken" {
                "totpactionEnter"
            } else {
                "btnAction"
            };
            log!("{peer}: token form {form} sent");
            return html(&format!(
                "<html><body><form name=\"{form}\" method=\"post\" action=\"{LOGIN_POST}\">\
                 Enter your token code.<input type=\"hidden\" name=\"key\" value=\"{key}\"/>\
                 <input type=\"password\" name=\"token_code\"/>\
                 <input type=\"submit\" name=\"{button}\" value=\"Sign In\"/></form></body></html>"
            ));
        }
        if !pending.confirmed {
            remember(&mut lock(&self.state).pending, pending);
            log!("{peer}: confirmation form sent");
            return html(&format!(
                "<html><body><form name=\"frmConfirmation\" method=\"post\" \
                 action=\"{LOGIN_POST}\">Confirm your login.\
                 <input type=\"hidden\" name=\"key\" value=\"{key}\"/>\
                 <input type=\"submit\" name=\"btnContinue\" value=\"Continue\"/>\
                 </form></body></html>"
            ));
        }
        if !self.config.roles.is_empty() {
            remember(&mut lock(&self.state).pending, pending);
            let links: String = self
                .config
                .roles
                .iter()
                .enumerate()
                .map(|(i, role)| {
                    format!(
                        "<tr><td><a href=\"{ROLE_PAGE}?role={i}&amp;key={key}\">{}</a></td></tr>",
                        html_escape(role)
                    )
                })
                .collect();
            log!("{peer}: roles sent");
            return html(&format!(
                "<html><body><form name=\"frmSelectRoles\"><table id=\"TABLE_SelectRole_1\">\
                 <tr><td>You have access to the following roles:</td></tr>{links}</table>\
                 </form></body></html>"
            ));
        }
        self.start_session(peer, None)
    }

    /// A role's link: the session, in that role.
    fn role_chosen(&self, peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
        let query = parse_query(&request.target);
        let role = field(&query, "role")
            .and_then(|r| r.parse::<usize>().ok())
            .and_then(|r| self.config.roles.get(r).cloned());
        let known = field(&query, "key").and_then(|k| self.take_pending(k));
        match (role, known) {
            (Some(role), Some(_)) => self.start_session(peer, Some(&role)),
            _ => {
                log!("{peer}: bad role choice {:?}", request.target);
                self.login_again(peer, "Invalid role")
            }
        }
    }

    fn start_session(&self, peer: SocketAddr, role: Option<&str>) -> ServerResponse {
        let dsid = random_hex::<16>();
        remember(&mut lock(&self.state).sessions, dsid.clone());
        log!("{peer}: session started (role {role:?})");
        redirect(WEBTOP).header("Set-Cookie", format!("DSID={dsid}; path=/; secure"))
    }

    /// Back to the login form, with the reason.
    fn login_again(&self, peer: SocketAddr, why: &str) -> ServerResponse {
        log!("{peer}: back to the login ({why})");
        redirect(&format!("{LOGIN_PAGE}?p=failed"))
    }

    fn session_of(&self, request: &ServerRequest) -> Option<String> {
        let dsid = request.cookie("DSID")?;
        lock(&self.state)
            .sessions
            .iter()
            .any(|s| s == dsid)
            .then(|| dsid.to_string())
    }

    fn tunnel(&self, peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
        let query = parse_query(&request.target);
        if field(&query, "prot") != Some("1") || field(&query, "svc") != Some("4") {
            log!("{peer}: tunnel request with {:?}; refused", request.target);
            return text(400, "Bad Request", "text/plain", "bad request");
        }
        match self.session_of(request) {
            Some(_) => {
                log!(
                    "{peer}: tunnel request for a known session (NCP-Version {:?}); oNCP is \
                     not served yet",
                    request.header("NCP-Version")
                );
                text(200, "OK", "application/octet-stream", "")
            }
            None => {
                log!("{peer}: tunnel request with an unknown DSID; refused");
                text(401, "Unauthorized", "text/plain", "unknown session")
            }
        }
    }

    fn logout(&self, peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
        if let Some(dsid) = self.session_of(request) {
            lock(&self.state).sessions.retain(|s| *s != dsid);
            log!("{peer}: logout: session forgotten");
        }
        html("successful logout").header("Set-Cookie", "DSID=; path=/")
    }
}
