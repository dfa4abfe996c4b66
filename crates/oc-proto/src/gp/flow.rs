//! The client's login as upstream runs it (`gpst_obtain_cookie`, `gpst_login`), without
//! I/O: which request comes next, which form to fill, when the portal's list wants a
//! choice, and when the session's arguments are in.
//!
//! - Where to start: the portal, the gateway, or (by default) the portal and, if it says
//!   it is none, the gateway ([`Start`], from the URL's path or `--usergroup`).
//! - Prelogin, then the login form; an external login's secret (`:prelogin-cookie`,
//!   `:portal-userauthcookie` after the path) replaces the password field; a SAML prelogin
//!   without one is an error that says what to do.
//! - A challenge replaces the form (user hidden, the code in the secret field) and its
//!   `inputStr` goes with the next post.
//! - HTTP 512 (wrong password) asks again with the same form, emptied; after a blind
//!   retry it starts again with the gateway's prelogin.
//! - The portal's configuration: the caller chooses a gateway and connects there; the
//!   credentials are then replayed on the gateway's login at once ("blind retry") when the
//!   portal gave a cookie for it, or when the portal's form was neither a challenge nor an
//!   external login; otherwise the gateway's own prelogin and form follow, the user name
//!   kept.
//! - The gateway's JNLP arguments end it.

use super::auth::{challenge_form, LoginArgs, PortalConfig, Prelogin, CHALLENGE_FORM};
use super::client::{login_request, prelogin_request, ClientInfo, Interface, LoginPost};
use super::reply::{read_reply, ErrorKind, Reply};
use super::GpError;
use crate::form::{AuthForm, FieldKind};
use crate::http::Request;

/// Where the login starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The portal; if it answers that there is no portal, the gateway.
    Auto,
    Portal,
    Gateway,
}

impl Start {
    /// From the URL's path as upstream reads it: `portal` or `global-protect...`, `gateway`
    /// or `ssl-vpn...`; the part after a `:` is an external login's secret field.
    pub fn from_path(path: &str) -> (Self, Option<String>) {
        let path = path.trim_start_matches('/');
        let (path, alt) = match path.rsplit_once(':') {
            Some((p, alt)) if !alt.is_empty() => (p, Some(alt.to_string())),
            _ => (path, None),
        };
        let start = if path == "portal" || path.starts_with("global-protect") {
            Self::Portal
        } else if path == "gateway" || path.starts_with("ssl-vpn") {
            Self::Gateway
        } else {
            Self::Auto
        };
        (start, alt)
    }
}

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send this request to the current server and hand its answer to
    /// [`LoginFlow::handle`].
    Send(Request),
    /// Fill this form (`_login` or `_challenge`), then [`LoginFlow::submit`] it.
    Fill(AuthForm),
    /// The portal's gateways: choose one (`--authgroup`, [`PortalConfig::choose`]),
    /// connect to it and call [`LoginFlow::gateway_chosen`].
    Choose(PortalConfig),
    /// Logged in: the session's arguments ([`LoginArgs::cookie`] makes the cookie).
    Done(LoginArgs),
}

/// What was last sent, so that its answer is read as the right document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    Prelogin,
    Login,
    Nothing,
}

/// One login, portal and gateway.
#[derive(Debug, Clone)]
pub struct LoginFlow {
    client: ClientInfo,
    host: String,
    interface: Interface,
    /// Auto mode, still on the portal: "no portal here" moves on to the gateway.
    fall_back: bool,
    alt_secret: Option<String>,
    /// `--no-external-auth` off: prelogin posts `cas-support=yes`.
    cas_support: bool,
    awaiting: Awaiting,
    prelogin: Prelogin,
    form: Option<AuthForm>,
    input_str: Option<String>,
    /// A user name that succeeded in an earlier step.
    username: Option<String>,
    portal_userauthcookie: Option<String>,
    portal_prelogonuserauthcookie: Option<String>,
    /// The current post replays the portal's credentials on the gateway.
    blind_retry: bool,
}

impl LoginFlow {
    /// A login to `host` (the Host header and the `server` field).
    pub fn new(
        client: ClientInfo,
        host: &str,
        start: Start,
        alt_secret: Option<String>,
        cas_support: bool,
    ) -> Self {
        Self {
            client,
            host: host.to_string(),
            interface: match start {
                Start::Gateway => Interface::Gateway,
                Start::Auto | Start::Portal => Interface::Portal,
            },
            fall_back: start == Start::Auto,
            alt_secret,
            cas_support,
            awaiting: Awaiting::Nothing,
            prelogin: Prelogin::default(),
            form: None,
            input_str: None,
            username: None,
            portal_userauthcookie: None,
            portal_prelogonuserauthcookie: None,
            blind_retry: false,
        }
    }

    /// The client's identity, with the portal's version as its `app-version` once the
    /// portal named one (for getconfig).
    pub fn client(&self) -> &ClientInfo {
        &self.client
    }

    /// Which side the next request goes to.
    pub fn interface(&self) -> Interface {
        self.interface
    }

    /// The prelogin's region (for the gateways' priorities).
    pub fn region(&self) -> Option<&str> {
        self.prelogin.region.as_deref()
    }

    /// The first request: the prelogin.
    pub fn start(&mut self) -> Request {
        self.awaiting = Awaiting::Prelogin;
        prelogin_request(&self.host, self.interface, &self.client, self.cas_support)
    }

    /// The filled form: the login post.
    pub fn submit(&mut self, form: &AuthForm) -> Request {
        self.form = Some(form.clone());
        self.post()
    }

    fn post(&mut self) -> Request {
        self.awaiting = Awaiting::Login;
        let answers = self
            .form
            .iter()
            .flat_map(|f| &f.fields)
            .map(|f| (f.name.clone(), f.value.clone().unwrap_or_default()))
            .collect();
        let post = LoginPost {
            server: self.host.clone(),
            portal_userauthcookie: self.portal_userauthcookie.clone(),
            portal_prelogonuserauthcookie: self.portal_prelogonuserauthcookie.clone(),
            input_str: self.input_str.clone(),
            answers,
            ..LoginPost::default()
        };
        login_request(&self.host, self.interface, &self.client, &post)
    }

    /// The answer to the last request.
    pub fn handle(&mut self, status: u16, body: &[u8]) -> Result<Next, GpError> {
        let awaiting = std::mem::replace(&mut self.awaiting, Awaiting::Nothing);
        let reply = match read_reply(status, body) {
            Err(GpError::Server {
                kind: ErrorKind::NotThere,
                ..
            }) if self.fall_back && self.interface == Interface::Portal => {
                // Not a portal: the same server as a gateway.
                self.fall_back = false;
                self.interface = Interface::Gateway;
                return Ok(Next::Send(self.start()));
            }
            Err(GpError::BadCredentials) if awaiting == Awaiting::Login => {
                return Ok(self.bad_credentials());
            }
            other => other?,
        };
        match awaiting {
            Awaiting::Prelogin => self.prelogin_answer(&reply),
            Awaiting::Login => self.login_answer(reply),
            Awaiting::Nothing => Err(GpError::Malformed("an answer to no request".into())),
        }
    }

    fn prelogin_answer(&mut self, reply: &Reply) -> Result<Next, GpError> {
        self.prelogin = Prelogin::parse(reply)?;
        if let Some(saml) = &self.prelogin.saml {
            let cookie_given = self.portal_userauthcookie.is_some()
                || self.portal_prelogonuserauthcookie.is_some()
                || self.alt_secret.is_some();
            if !cookie_given {
                return Err(GpError::SamlRequired {
                    method: saml.method,
                    target: saml.target.clone(),
                });
            }
        }
        self.input_str = None;
        let form = self
            .prelogin
            .form(self.username.as_deref(), self.alt_secret.as_deref());
        self.form = Some(form.clone());
        Ok(Next::Fill(form))
    }

    fn login_answer(&mut self, reply: Reply) -> Result<Next, GpError> {
        if self.username.is_none() {
            self.username = self
                .form
                .as_ref()
                .and_then(|f| f.fields.first())
                .and_then(|f| f.value.clone());
        }
        self.blind_retry = false;
        match reply {
            Reply::Challenge(challenge) => {
                let previous = self.form.clone().unwrap_or_default();
                let form = challenge_form(&previous, &challenge);
                self.input_str = Some(challenge.input_str);
                self.form = Some(form.clone());
                Ok(Next::Fill(form))
            }
            reply if self.interface == Interface::Portal => {
                let portal = PortalConfig::parse(&reply, self.region())?;
                self.portal_userauthcookie = portal.portal_userauthcookie.clone();
                self.portal_prelogonuserauthcookie = portal.portal_prelogonuserauthcookie.clone();
                // Parroted as the client's version, so that the gateway does not turn
                // away an "old" client.
                if let Some(version) = portal.version.as_ref().filter(|v| !v.is_empty()) {
                    self.client.app_version = version.clone();
                }
                Ok(Next::Choose(portal))
            }
            reply => Ok(Next::Done(LoginArgs::parse(&reply)?)),
        }
    }

    /// HTTP 512: the same form again, its answers emptied (a hidden user name kept); after
    /// a blind retry, the gateway's own prelogin instead.
    fn bad_credentials(&mut self) -> Next {
        if std::mem::take(&mut self.blind_retry) {
            return Next::Send(self.start());
        }
        let mut form = self.form.clone().unwrap_or_default();
        for field in &mut form.fields {
            if field.kind != FieldKind::Hidden {
                field.value = None;
            }
        }
        form.error = Some("Invalid username or password".into());
        self.form = Some(form.clone());
        Next::Fill(form)
    }

    /// The caller connected to the chosen gateway at `host`: the gateway's login, by blind
    /// retry when upstream would, else by its prelogin.
    pub fn gateway_chosen(&mut self, host: &str) -> Request {
        self.host = host.to_string();
        self.interface = Interface::Gateway;
        self.fall_back = false;
        let was_challenge = self.form.as_ref().is_some_and(|f| f.id == CHALLENGE_FORM);
        let replay = self.portal_userauthcookie.is_some()
            || self.portal_prelogonuserauthcookie.is_some()
            || (!was_challenge && self.alt_secret.is_none());
        if replay && self.form.is_some() {
            self.blind_retry = true;
            self.post()
        } else {
            self.start()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::server::{challenge_xml, error_xml, parse_form, LoginRequest};
    use super::super::{Challenge, GatewayEntry, Saml, SamlMethod};
    use super::*;

    fn client() -> ClientInfo {
        ClientInfo::new("linux-64", "pc")
    }

    fn fill(form: &AuthForm, user: &str, secret: &str) -> AuthForm {
        let mut f = form.clone();
        if f.fields[0].kind != FieldKind::Hidden {
            f.fields[0].value = Some(user.into());
        }
        f.fields[1].value = Some(secret.into());
        f
    }

    fn portal(cookie: Option<&str>) -> String {
        PortalConfig {
            gateways: vec![GatewayEntry {
                name: "gw.example".into(),
                description: "GW".into(),
                priority: None,
            }],
            portal_userauthcookie: cookie.map(str::to_string),
            version: Some("9.1.0-42".into()),
            ..PortalConfig::default()
        }
        .to_xml()
    }

    fn jnlp() -> String {
        LoginArgs {
            authcookie: "abc".into(),
            user: "alice".into(),
            ..LoginArgs::default()
        }
        .to_xml()
    }

    fn prelogin() -> String {
        Prelogin::default().to_xml()
    }

    fn form_of(req: &Request) -> LoginRequest {
        LoginRequest::from_form(&parse_form(&req.body))
    }

    #[test]
    fn portal_then_gateway_by_blind_retry_with_a_challenge() {
        let mut flow = LoginFlow::new(client(), "portal.example", Start::Auto, None, true);
        let req = flow.start();
        assert!(req.path.starts_with("/global-protect/prelogin.esp"));
        let Ok(Next::Fill(form)) = flow.handle(200, prelogin().as_bytes()) else {
            panic!("no form");
        };
        let req = flow.submit(&fill(&form, "alice", "pw"));
        assert_eq!(req.path, "/global-protect/getconfig.esp");
        let Ok(Next::Choose(portal)) = flow.handle(200, portal(None).as_bytes()) else {
            panic!("no choice");
        };
        assert_eq!(
            flow.client().app_version,
            "9.1.0-42",
            "the portal's version"
        );
        let gw = portal.choose(None).unwrap();
        let req = flow.gateway_chosen(&gw.name);
        assert_eq!(req.path, "/ssl-vpn/login.esp", "the credentials replayed");
        let post = form_of(&req);
        assert_eq!(post.passwd.as_deref(), Some("pw"));
        assert_eq!(post.server.as_deref(), Some("gw.example"));
        let challenge = Challenge {
            prompt: "Code?".into(),
            input_str: "f00".into(),
        };
        let Ok(Next::Fill(form)) = flow.handle(200, challenge_xml(&challenge).as_bytes()) else {
            panic!("no challenge form");
        };
        assert_eq!(form.id, CHALLENGE_FORM);
        assert_eq!(form.fields[0].value.as_deref(), Some("alice"));
        let req = flow.submit(&fill(&form, "-", "123456"));
        let post = form_of(&req);
        assert_eq!(post.input_str.as_deref(), Some("f00"));
        assert_eq!(post.user.as_deref(), Some("alice"));
        assert_eq!(post.passwd.as_deref(), Some("123456"));
        let Ok(Next::Done(args)) = flow.handle(200, jnlp().as_bytes()) else {
            panic!("not done");
        };
        assert_eq!(args.cookie("pc").get("authcookie").as_deref(), Some("abc"));
    }

    #[test]
    fn not_a_portal_then_the_gateway() {
        let mut flow = LoginFlow::new(client(), "gw", Start::Auto, None, false);
        flow.start();
        let none = error_xml("GlobalProtect portal does not exist");
        let Ok(Next::Send(req)) = flow.handle(200, none.as_bytes()) else {
            panic!("no second prelogin");
        };
        assert!(req.path.starts_with("/ssl-vpn/prelogin.esp"));
        assert_eq!(flow.interface(), Interface::Gateway);
        // A second "does not exist" is the end.
        let none = error_xml("GlobalProtect gateway does not exist");
        assert!(matches!(
            flow.handle(200, none.as_bytes()),
            Err(GpError::Server {
                kind: ErrorKind::NotThere,
                ..
            })
        ));
    }

    #[test]
    fn wrong_passwords_ask_again_and_a_failed_blind_retry_starts_over() {
        let mut flow = LoginFlow::new(client(), "gw", Start::Gateway, None, true);
        flow.start();
        let Ok(Next::Fill(form)) = flow.handle(200, prelogin().as_bytes()) else {
            panic!("no form");
        };
        flow.submit(&fill(&form, "alice", "wrong"));
        let Ok(Next::Fill(again)) = flow.handle(512, b"Invalid username or password") else {
            panic!("not asked again");
        };
        assert_eq!(again.fields[1].value, None);
        assert!(again.error.is_some());

        let mut flow = LoginFlow::new(client(), "portal", Start::Portal, None, true);
        flow.start();
        let Ok(Next::Fill(form)) = flow.handle(200, prelogin().as_bytes()) else {
            panic!("no form");
        };
        flow.submit(&fill(&form, "alice", "pw"));
        let Ok(Next::Choose(_)) = flow.handle(200, portal(None).as_bytes()) else {
            panic!("no choice");
        };
        flow.gateway_chosen("gw");
        // The gateway wants other credentials: its own prelogin, the user name kept.
        let Ok(Next::Send(req)) = flow.handle(512, b"") else {
            panic!("no prelogin");
        };
        assert!(req.path.starts_with("/ssl-vpn/prelogin.esp"));
        let Ok(Next::Fill(form)) = flow.handle(200, prelogin().as_bytes()) else {
            panic!("no form");
        };
        assert_eq!(form.fields[0].kind, FieldKind::Hidden);
        assert_eq!(form.fields[0].value.as_deref(), Some("alice"));
    }

    #[test]
    fn saml_and_external_secrets() {
        let saml = "<prelogin-response><status>Success</status>\
                    <saml-auth-method>REDIRECT</saml-auth-method>\
                    <saml-request>aHR0cHM6Ly9pZHAuZXhhbXBsZS8=</saml-request></prelogin-response>";
        let mut flow = LoginFlow::new(client(), "p", Start::Portal, None, true);
        flow.start();
        assert_eq!(
            flow.handle(200, saml.as_bytes()),
            Err(GpError::SamlRequired {
                method: SamlMethod::Redirect,
                target: "https://idp.example/".into()
            })
        );
        // What a gateway writes for a SAML prelogin reads back the same.
        for saml in [
            Saml {
                method: SamlMethod::Redirect,
                target: "https://idp.example/sso?a=1&b=2".into(),
            },
            Saml {
                method: SamlMethod::Post,
                target: "data:text/html;base64,PGh0bWw+".into(),
            },
        ] {
            let xml = Prelogin {
                saml: Some(saml.clone()),
                ..Prelogin::default()
            }
            .to_xml();
            let parsed = Prelogin::parse(&read_reply(200, xml.as_bytes()).unwrap()).unwrap();
            assert_eq!(parsed.saml, Some(saml));
        }
        // With the external login's field given (`portal:prelogin-cookie`).
        let (start, alt) = Start::from_path("/portal:prelogin-cookie");
        assert_eq!(start, Start::Portal);
        let mut flow = LoginFlow::new(client(), "p", start, alt, true);
        flow.start();
        let Ok(Next::Fill(form)) = flow.handle(200, saml.as_bytes()) else {
            panic!("no form");
        };
        assert_eq!(form.fields[1].name, "prelogin-cookie");
        flow.submit(&fill(&form, "alice", "COOKIE"));
        let Ok(Next::Choose(_)) = flow.handle(200, portal(Some("puac")).as_bytes()) else {
            panic!("no choice");
        };
        // The portal's cookie lets the gateway's login go on at once, and is sent.
        let req = flow.gateway_chosen("gw");
        let post = form_of(&req);
        assert_eq!(req.path, "/ssl-vpn/login.esp");
        assert_eq!(post.portal_userauthcookie.as_deref(), Some("puac"));
        // Without a portal cookie, an external login is not replayed.
        let mut flow = LoginFlow::new(
            client(),
            "p",
            Start::Portal,
            Some("prelogin-cookie".into()),
            true,
        );
        flow.start();
        let Ok(Next::Fill(form)) = flow.handle(200, saml.as_bytes()) else {
            panic!("no form");
        };
        flow.submit(&fill(&form, "alice", "COOKIE"));
        flow.handle(200, portal(None).as_bytes()).unwrap();
        assert!(flow
            .gateway_chosen("gw")
            .path
            .starts_with("/ssl-vpn/prelogin.esp"));
        assert_eq!(Start::from_path("ssl-vpn"), (Start::Gateway, None));
        assert_eq!(Start::from_path(""), (Start::Auto, None));
    }
}
