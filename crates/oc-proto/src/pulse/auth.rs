//! The client's side of Pulse's login, as upstream's `pulse_authenticate`: the IF-T
//! version (we offer 1 to 2), our client info, the EAP identity `anonymous`, our OS and
//! user agent (and a cookie we hold), then one request after another from the server —
//! realm, region, password (Juniper/2 or /5), token (GTC), sessions to end, a banner —
//! each answered, until the server sends the `DSID` cookie (AVP 0xd53) and, after our
//! empty answer, success. [`PulseAuth`] turns each server message into bytes to send or a
//! form for the user ([`AuthStep`]); [`PulseAuth::answer`] turns the filled form into bytes.
//!
//! When the server answers the identity with EAP-TTLS (a realm that wants a client
//! certificate), the same requests and answers travel inside a TLS connection carried in
//! EAP-TTLS packets ([`super::ttls`]): [`AuthStep::StartTls`] asks the caller for that
//! connection (with the HTTPS connection's trust and client certificate), and
//! [`PulseAuth::start_tls`] goes on. Success comes outside it, as without.
//!
//! The forms and fields are upstream's, so that `-F form:field=value` works the same:
//! `pulse_realm_entry:realm`, `pulse_realm_choice:realm_choice` (also `--authgroup`),
//! `pulse_region_choice:region_choice`, `pulse_user`/`pulse_secondary`:`username`,
//! `password`, `pulse_user_change`/`pulse_secondary_change`:`oldpass`, `newpass1`,
//! `newpass2`, `pulse_gtc:tokencode`, `pulse_session_kill:session_choice`.

use std::net::IpAddr;

use super::eap::*;
use super::ift::{
    packet, IftPacket, JUNIPER_CLIENT_INFO, TCG_AUTH_CHALLENGE, TCG_AUTH_RESPONSE,
    TCG_AUTH_SUCCESS, TCG_VERSION_REQUEST, TCG_VERSION_RESPONSE, VENDOR_JUNIPER, VENDOR_TCG,
};
use super::ttls::{ttls_packet, Fragment, InnerTls, TtlsLink, MAX_FRAGMENT};
use super::PulseError;
use crate::form::{AuthForm, FieldKind, FormField, SelectOption};

/// The versions we offer: reserved, 1 at least, 2 at most, 2 preferred.
const VERSIONS: [u8; 4] = [0, 1, 2, 2];
/// Requests answered in one login before giving up (a server that loops).
const MAX_ROUNDS: usize = 32;
/// The longest password or token upstream sends.
const MAX_SECRET: usize = 253;
/// EAP-TTLS packets taken in one login before giving up (fragments of 256 KiB of
/// certificates and the login's questions fit many times over).
const MAX_TTLS_PACKETS: usize = 512;

/// What the client says of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub hostname: String,
    /// The local address of the TLS connection.
    pub local_ip: Option<IpAddr>,
    /// AVP 0xd5e: `Windows`, `Linux`, `Mac`, ...
    pub os: String,
    /// AVP 0xd70 (servers want it to look like Pulse's own client).
    pub user_agent: String,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Send this and wait for the server.
    Send(Vec<u8>),
    /// Ask the user (then [`PulseAuth::answer`]).
    Ask(AuthForm),
    /// The server wants EAP-TTLS: give [`PulseAuth::start_tls`] a TLS client with the
    /// HTTPS connection's trust and client certificate.
    StartTls,
    /// Logged in: the configuration follows on this connection.
    Done { cookie: String },
}

/// What the server is waiting for an answer to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    RealmEntry,
    RealmChoice,
    Region,
    Password { inner_id: u8, juniper5: bool },
    PasswordChange { inner_id: u8 },
    Token { inner_id: u8 },
    KillSession,
    Banner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Version,
    Challenge,
    ServerInfo,
    Requests,
    Success,
    Done,
}

/// One login.
#[derive(Debug)]
pub struct PulseAuth {
    info: ClientInfo,
    /// A cookie from an earlier login: presented, and anything but a cookie back means it
    /// is no good.
    held_cookie: Option<String>,
    stage: Stage,
    seq: u32,
    /// The id of the server's last Juniper/1 request (our answers carry it).
    outer_id: u8,
    pending: Option<Pending>,
    /// What the password form asks for (AVP 0xd73), and whether it is the first login.
    ask_username: bool,
    ask_password: bool,
    primary: bool,
    labels: [Option<String>; 4],
    cookie: Option<String>,
    rounds: usize,
    gtc_asked: bool,
    /// The EAP-TTLS connection, once the server asked for it.
    ttls: Option<TtlsLink>,
    /// The id of the server's last EAP-TTLS request (our EAP-TTLS answers carry it).
    ttls_id: u8,
    ttls_packets: usize,
    /// Whether our identity went inside the TLS connection yet.
    identity_inside: bool,
}

impl PulseAuth {
    /// A login, and the first message to send (the version request).
    pub fn new(info: ClientInfo, held_cookie: Option<String>) -> (Self, Vec<u8>) {
        let mut auth = Self {
            info,
            held_cookie,
            stage: Stage::Version,
            seq: 0,
            outer_id: 0,
            pending: None,
            ask_username: true,
            ask_password: true,
            primary: true,
            labels: Default::default(),
            cookie: None,
            rounds: 0,
            gtc_asked: false,
            ttls: None,
            ttls_id: 0,
            ttls_packets: 0,
            identity_inside: false,
        };
        let first = auth.send(VENDOR_TCG, TCG_VERSION_REQUEST, &VERSIONS);
        (auth, first)
    }

    /// The sequence number of the next message we send (the tunnel goes on counting).
    pub fn next_seq(&self) -> u32 {
        self.seq
    }

    fn send(&mut self, vendor: u32, kind: u32, payload: &[u8]) -> Vec<u8> {
        let out = packet(vendor, kind, self.seq, payload);
        self.seq = self.seq.wrapping_add(1);
        out
    }

    /// A TCG/6 with an EAP packet.
    fn respond(&mut self, eap: &[u8]) -> Vec<u8> {
        let payload = [&AUTH_JUNIPER_1[..], eap].concat();
        self.send(VENDOR_TCG, TCG_AUTH_RESPONSE, &payload)
    }

    /// A Juniper/1 response with `avps`: in IF-T, or inside EAP-TTLS once it runs.
    fn respond_j1(&mut self, avps: &[u8]) -> Result<Vec<u8>, PulseError> {
        let eap = expanded(EAP_RESPONSE, self.outer_id, JUNIPER_1, avps);
        let Some(link) = self.ttls.as_mut() else {
            return Ok(self.respond(&eap));
        };
        link.send_eap(&eap)?;
        let body = link.flush();
        Ok(self.respond_ttls(&body))
    }

    /// An EAP-TTLS response with `body` (flags and data).
    fn respond_ttls(&mut self, body: &[u8]) -> Vec<u8> {
        let eap = ttls_packet(EAP_RESPONSE, self.ttls_id, body);
        self.respond(&eap)
    }

    /// The server's next message.
    pub fn on_message(&mut self, msg: IftPacket<'_>) -> Result<AuthStep, PulseError> {
        let unexpected = |what: &str| {
            PulseError::Unexpected(format!(
                "{what} (vendor {:#x}, type {}, {} bytes)",
                msg.vendor,
                msg.kind,
                msg.payload.len()
            ))
        };
        match self.stage {
            Stage::Version => {
                if !msg.is(VENDOR_TCG, TCG_VERSION_RESPONSE) || msg.payload.len() != 4 {
                    return Err(unexpected("not a version answer"));
                }
                self.stage = Stage::Challenge;
                Ok(AuthStep::Send(self.client_info()))
            }
            Stage::Challenge => {
                if !msg.is(VENDOR_TCG, TCG_AUTH_CHALLENGE) || msg.payload != AUTH_JUNIPER_1 {
                    return Err(unexpected("not the start of Juniper/1 authentication"));
                }
                self.stage = Stage::ServerInfo;
                let identity = eap(EAP_RESPONSE, 1, EAP_TYPE_IDENTITY, b"anonymous");
                Ok(AuthStep::Send(self.respond(&identity)))
            }
            Stage::ServerInfo | Stage::Requests if self.ttls.is_some() => self.on_ttls(&msg),
            Stage::ServerInfo => {
                let request = self.request(&msg)?;
                if request.kind == Some(EAP_TYPE_TTLS) {
                    if !Fragment::parse(request.data)?.is_start() {
                        return Err(unexpected("EAP-TTLS without its start"));
                    }
                    self.ttls_id = request.id;
                    return Ok(AuthStep::StartTls);
                }
                self.server_info(&request)
            }
            Stage::Requests => {
                let request = self.request(&msg)?;
                self.on_request(&request)
            }
            Stage::Success => {
                let success = msg.is(VENDOR_TCG, TCG_AUTH_SUCCESS)
                    && msg.payload.get(..4) == Some(&AUTH_JUNIPER_1[..])
                    && msg
                        .payload
                        .get(4..)
                        .and_then(|e| Eap::parse(e).ok())
                        .is_some_and(|e| e.code == EAP_SUCCESS);
                if !success {
                    return Err(unexpected(
                        "Unexpected response instead of IF-T/TLS auth success",
                    ));
                }
                self.stage = Stage::Done;
                Ok(AuthStep::Done {
                    cookie: self.cookie.clone().unwrap_or_default(),
                })
            }
            Stage::Done => Err(unexpected("a message after the login")),
        }
    }

    /// The server's first Juniper/1 request (its licensing and the like): our OS, user
    /// agent and the cookie we hold.
    fn server_info(&mut self, request: &Eap<'_>) -> Result<AuthStep, PulseError> {
        if request.expanded != Some(JUNIPER_1) {
            return Err(PulseError::Unexpected(
                "not a Juniper/1 request for our client information".into(),
            ));
        }
        self.outer_id = request.id;
        avps(request.data).try_for_each(|a| a.map(drop))?;
        self.stage = Stage::Requests;
        let mut avps = Vec::new();
        push_avp(&mut avps, AVP_OS, self.info.os.as_bytes());
        push_avp(&mut avps, AVP_USER_AGENT, self.info.user_agent.as_bytes());
        if let Some(cookie) = self.held_cookie.clone() {
            push_avp(&mut avps, AVP_COOKIE, cookie.as_bytes());
        }
        Ok(AuthStep::Send(self.respond_j1(&avps)?))
    }

    /// After [`AuthStep::StartTls`]: the TLS connection inside EAP-TTLS, whose
    /// ClientHello goes out now.
    pub fn start_tls(&mut self, tls: Box<dyn InnerTls>) -> Result<AuthStep, PulseError> {
        if self.stage != Stage::ServerInfo || self.ttls.is_some() {
            return Err(PulseError::Unexpected("EAP-TTLS started twice".into()));
        }
        // Upstream's client sends its AVPs with no flags; servers take that.
        let mut link = TtlsLink::new(tls, MAX_FRAGMENT, 0);
        link.start()?;
        let body = link.flush();
        self.ttls = Some(link);
        Ok(AuthStep::Send(self.respond_ttls(&body)))
    }

    /// An EAP-TTLS request: a fragment to acknowledge or answer with ours, the handshake,
    /// or the Juniper/1 request inside.
    fn on_ttls(&mut self, msg: &IftPacket<'_>) -> Result<AuthStep, PulseError> {
        self.ttls_packets += 1;
        if self.ttls_packets > MAX_TTLS_PACKETS {
            return Err(PulseError::Refused(format!(
                "the server sent {MAX_TTLS_PACKETS} EAP-TTLS packets without letting us in"
            )));
        }
        let request = self.request(msg)?;
        if request.kind != Some(EAP_TYPE_TTLS) {
            return Err(PulseError::Unexpected(
                "not an EAP-TTLS request inside an EAP-TTLS login".into(),
            ));
        }
        self.ttls_id = request.id;
        let Some(link) = self.ttls.as_mut() else {
            return Err(PulseError::Unexpected("EAP-TTLS before its start".into()));
        };
        if let Some(body) = link.on_packet(request.data)? {
            return Ok(AuthStep::Send(self.respond_ttls(&body)));
        }
        if link.is_established() && !self.identity_inside {
            self.identity_inside = true;
            link.send_eap(&eap(EAP_RESPONSE, 1, EAP_TYPE_IDENTITY, b"anonymous"))?;
        }
        let Some(inner) = link.next_eap()? else {
            let body = link.flush();
            return Ok(AuthStep::Send(self.respond_ttls(&body)));
        };
        let inner = Eap::parse(&inner)?;
        if inner.code != EAP_REQUEST {
            return Err(PulseError::BadEap(
                "an EAP packet inside EAP-TTLS that is not a request",
            ));
        }
        match self.stage {
            Stage::ServerInfo => self.server_info(&inner),
            _ => self.on_request(&inner),
        }
    }

    fn client_info(&mut self) -> Vec<u8> {
        let mut text = format!("clientHostName={}", self.info.hostname);
        if let Some(ip) = self.info.local_ip {
            text.push_str(&format!(" clientIp={ip}"));
        }
        text.push_str(" clientCapabilities={}\n\0");
        self.send(VENDOR_JUNIPER, JUNIPER_CLIENT_INFO, text.as_bytes())
    }

    /// A TCG/5 request's EAP packet.
    fn request<'m>(&self, msg: &IftPacket<'m>) -> Result<Eap<'m>, PulseError> {
        let eap = (msg.is(VENDOR_TCG, TCG_AUTH_CHALLENGE))
            .then(|| msg.payload.strip_prefix(&AUTH_JUNIPER_1[..]))
            .flatten()
            .map(Eap::parse)
            .transpose()?
            .filter(|e| e.code == EAP_REQUEST)
            .ok_or_else(|| {
                PulseError::Unexpected(format!(
                    "not an EAP request (vendor {:#x}, type {})",
                    msg.vendor, msg.kind
                ))
            })?;
        Ok(eap)
    }

    /// One of the server's requests in the login.
    fn on_request(&mut self, request: &Eap<'_>) -> Result<AuthStep, PulseError> {
        self.rounds += 1;
        if self.rounds > MAX_ROUNDS {
            return Err(PulseError::Refused(format!(
                "the server asked {MAX_ROUNDS} questions without letting us in"
            )));
        }
        if request.expanded != Some(JUNIPER_1) {
            return Err(PulseError::Unexpected("not a Juniper/1 request".into()));
        }
        self.outer_id = request.id;
        let mut seen = Seen::default();
        for avp in avps(request.data) {
            let read = self.read_avp(&avp?, &mut seen);
            // A refusal of a cookie we presented is the cookie's end (upstream's -EPERM).
            if let (Err(PulseError::Refused(_)), Some(_)) = (&read, &self.held_cookie) {
                return Err(PulseError::CookieRejected);
            }
            read?;
        }
        if let Some(cookie) = seen.cookie {
            self.cookie = Some(cookie);
            self.stage = Stage::Success;
            return Ok(AuthStep::Send(self.respond_j1(&[])?));
        }
        if self.held_cookie.is_some() {
            return Err(PulseError::CookieRejected);
        }
        let kinds = usize::from(seen.realm_entry)
            + usize::from(!seen.realms.is_empty())
            + usize::from(!seen.regions.is_empty())
            + usize::from(seen.inner.is_some())
            + usize::from(!seen.sessions.is_empty());
        if kinds != 1 && !(kinds == 0 && seen.banner.is_some()) {
            return Err(PulseError::Unexpected(
                "Unhandled Pulse authentication packet, or authentication failure".into(),
            ));
        }
        let (pending, form) = self.form(seen)?;
        self.pending = Some(pending);
        Ok(AuthStep::Ask(form))
    }

    fn read_avp(&mut self, avp: &Avp<'_>, seen: &mut Seen) -> Result<(), PulseError> {
        if avp.code == AVP_EAP_MESSAGE && avp.vendor.is_none() {
            seen.inner = Some(Inner::parse(avp.data)?);
            return Ok(());
        }
        if avp.vendor != Some(AVP_VENDOR_JUNIPER) {
            return Ok(());
        }
        match avp.code {
            AVP_COOKIE => seen.cookie = Some(avp.text()),
            AVP_FAILURE => {
                return Err(PulseError::Refused(match avp.be32() {
                    Some(0x0d) => "Account locked out".into(),
                    Some(0x0e) => "Client certificate required".into(),
                    Some(code) => format!("Code {code:#04x}"),
                    None => "unknown code".into(),
                }))
            }
            AVP_REALM_CHOICE => seen.realms.push(avp.text()),
            AVP_REALM_ENTRY => seen.realm_entry = true,
            AVP_REGION_CHOICE => seen.regions.push(avp.text()),
            AVP_OLD_SESSION => seen.sessions.push(old_session(avp.data)?),
            AVP_BANNER => seen.banner = Some(avp.text()),
            AVP_PROMPTS => {
                let (user, pass) = match avp.be32() {
                    Some(1) => (true, true),
                    Some(3 | 15) => (false, true),
                    Some(5) => (true, false),
                    _ => (true, true),
                };
                (self.ask_username, self.ask_password, self.primary) = (user, pass, false);
            }
            AVP_USER_LABEL | AVP_PASS_LABEL | AVP_USER2_LABEL | AVP_PASS2_LABEL => {
                let slot = usize::try_from(avp.code - AVP_USER_LABEL).unwrap_or(0);
                let mut label = avp.text();
                if !label.ends_with(':') {
                    label.push(':');
                }
                if let Some(s) = self.labels.get_mut(slot) {
                    *s = Some(label);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn label(&self, slot: usize, primary: &str, secondary: &str) -> String {
        let slot = if self.primary { slot } else { slot + 2 };
        self.labels
            .get(slot)
            .cloned()
            .flatten()
            .unwrap_or_else(|| if self.primary { primary } else { secondary }.into())
    }

    /// The form for what the server asks.
    fn form(&mut self, seen: Seen) -> Result<(Pending, AuthForm), PulseError> {
        let select = |name: &str, label: &str, choices: &[String]| FormField {
            name: name.into(),
            label: label.into(),
            kind: FieldKind::Select(
                choices
                    .iter()
                    .map(|c| SelectOption {
                        value: c.clone(),
                        label: c.clone(),
                    })
                    .collect(),
            ),
            value: None,
            token: false,
        };
        let mut form = AuthForm {
            banner: seen.banner.clone(),
            ..AuthForm::default()
        };
        let pending = if seen.realm_entry {
            form.id = "pulse_realm_entry".into();
            form.message = Some("Enter Pulse user realm:".into());
            form.fields.push(text_field("realm", "Realm:", false));
            Pending::RealmEntry
        } else if !seen.realms.is_empty() {
            form.id = "pulse_realm_choice".into();
            form.message = Some("Choose Pulse user realm:".into());
            form.fields
                .push(select("realm_choice", "Realm:", &seen.realms));
            form.group_select = Some("realm_choice".into());
            Pending::RealmChoice
        } else if !seen.regions.is_empty() {
            form.id = "pulse_region_choice".into();
            form.message = Some("Choose Pulse user region:".into());
            form.fields
                .push(select("region_choice", "Region:", &seen.regions));
            Pending::Region
        } else if !seen.sessions.is_empty() {
            form.id = "pulse_session_kill".into();
            let lines: Vec<String> = seen
                .sessions
                .iter()
                .map(|(id, from, at)| format!(" - {id} from {from} at {at}"))
                .collect();
            form.message = Some(format!(
                "Session limit reached. Choose session to kill:\n{}",
                lines.join("\n")
            ));
            let ids: Vec<String> = seen.sessions.into_iter().map(|(id, _, _)| id).collect();
            form.fields.push(select("session_choice", "Session:", &ids));
            Pending::KillSession
        } else if let Some(inner) = seen.inner {
            self.inner_form(inner, &mut form)?
        } else {
            form.id = "pulse_banner".into();
            Pending::Banner
        };
        Ok((pending, form))
    }

    fn inner_form(&mut self, inner: Inner, form: &mut AuthForm) -> Result<Pending, PulseError> {
        let id = |primary: bool, base: &str| {
            if primary {
                format!("pulse_{base}")
            } else {
                format!(
                    "pulse_secondary{}",
                    base.strip_prefix("user").unwrap_or(base)
                )
            }
        };
        match inner {
            Inner::Password {
                inner_id,
                juniper5,
                retry,
            } => {
                form.id = id(self.primary, "user");
                form.message = Some(
                    if self.primary {
                        "Enter user credentials:"
                    } else {
                        "Enter secondary credentials:"
                    }
                    .into(),
                );
                if retry {
                    form.error = Some("Invalid username or password; try again.".into());
                }
                if self.ask_username {
                    let label = self.label(0, "Username:", "Secondary username:");
                    form.fields.push(text_field("username", &label, false));
                }
                if self.ask_password {
                    let label = self.label(1, "Password:", "Secondary password:");
                    form.fields.push(text_field("password", &label, true));
                }
                Ok(Pending::Password { inner_id, juniper5 })
            }
            Inner::Change { inner_id } => {
                form.id = id(self.primary, "user_change");
                form.message = Some("Password expired. Please change password:".into());
                for (name, label) in [
                    ("oldpass", "Current password:"),
                    ("newpass1", "New password:"),
                    ("newpass2", "Verify new password:"),
                ] {
                    form.fields.push(text_field(name, label, true));
                }
                Ok(Pending::PasswordChange { inner_id })
            }
            Inner::Token { inner_id, prompt } => {
                form.id = "pulse_gtc".into();
                if self.gtc_asked {
                    form.message = Some(prompt);
                } else {
                    form.message = Some("Token code request:".into());
                }
                self.gtc_asked = true;
                if self.ask_username {
                    form.fields.push(text_field("username", "Username:", false));
                }
                let mut token = text_field("tokencode", "Please enter response:", true);
                token.token = true;
                form.fields.push(token);
                Ok(Pending::Token { inner_id })
            }
        }
    }

    /// The user's answers to the last form, as the message to send.
    pub fn answer(&mut self, answers: &[(String, String)]) -> Result<Vec<u8>, PulseError> {
        let get = |name: &str| {
            answers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let pending = self
            .pending
            .take()
            .ok_or_else(|| PulseError::Unexpected("an answer with no question".into()))?;
        let mut avps = Vec::new();
        let username = get("username").filter(|u| !u.is_empty());
        match pending {
            Pending::RealmEntry => push_avp(
                &mut avps,
                AVP_REALM,
                get("realm").unwrap_or_default().as_bytes(),
            ),
            Pending::RealmChoice => push_avp(
                &mut avps,
                AVP_REALM,
                get("realm_choice").unwrap_or_default().as_bytes(),
            ),
            Pending::Region => push_avp(
                &mut avps,
                AVP_REGION,
                get("region_choice").unwrap_or_default().as_bytes(),
            ),
            Pending::KillSession => push_avp(
                &mut avps,
                AVP_KILL_SESSION,
                get("session_choice").unwrap_or_default().as_bytes(),
            ),
            Pending::Banner => push_avp(&mut avps, AVP_BANNER_ACK, &1u32.to_be_bytes()),
            Pending::Password { inner_id, juniper5 } => {
                if let Some(user) = username.filter(|_| self.ask_username) {
                    push_avp(&mut avps, AVP_USERNAME, user.as_bytes());
                }
                let password = secret(get("password").unwrap_or_default())?;
                let inner = if juniper5 {
                    let mut fixed = vec![0u8; J5_PASSWORD_LEN];
                    let take = password.len().min(J5_PASSWORD_LEN);
                    fixed[..take].copy_from_slice(&password[..take]);
                    expanded(
                        EAP_RESPONSE,
                        inner_id,
                        JUNIPER_5,
                        &[&[1u8][..], &fixed].concat(),
                    )
                } else {
                    let data = [&[2u8, 2, length_byte(password)][..], password].concat();
                    expanded(EAP_RESPONSE, inner_id, JUNIPER_2, &data)
                };
                push_eap_message(&mut avps, &inner);
            }
            Pending::PasswordChange { inner_id } => {
                let (old, new) = (
                    get("oldpass").unwrap_or_default(),
                    get("newpass1").unwrap_or_default(),
                );
                if get("newpass2").is_some_and(|v| v != new) {
                    self.pending = Some(Pending::PasswordChange { inner_id });
                    return Err(PulseError::Refused("Passwords do not match.".into()));
                }
                let (old, new) = (secret(old)?, secret(new)?);
                let data = [
                    &[2u8, 2, length_byte(old)][..],
                    old,
                    &[3u8, length_byte(new)][..],
                    new,
                ]
                .concat();
                push_eap_message(
                    &mut avps,
                    &expanded(EAP_RESPONSE, inner_id, JUNIPER_2, &data),
                );
            }
            Pending::Token { inner_id } => {
                if let Some(user) = username.filter(|_| self.ask_username) {
                    push_avp(&mut avps, AVP_USERNAME, user.as_bytes());
                }
                let token = secret(get("tokencode").unwrap_or_default())?;
                push_eap_message(&mut avps, &eap(EAP_RESPONSE, inner_id, EAP_TYPE_GTC, token));
            }
        }
        self.respond_j1(&avps)
    }
}

fn text_field(name: &str, label: &str, secret: bool) -> FormField {
    FormField {
        name: name.into(),
        label: label.into(),
        kind: if secret {
            FieldKind::Password
        } else {
            FieldKind::Text
        },
        value: None,
        token: false,
    }
}

/// A password or token as bytes, no longer than upstream sends.
fn secret(value: &str) -> Result<&[u8], PulseError> {
    if value.len() > MAX_SECRET {
        return Err(PulseError::Refused(format!(
            "a password or token of {} bytes is longer than Pulse takes ({MAX_SECRET})",
            value.len()
        )));
    }
    Ok(value.as_bytes())
}

/// The length byte before a password: its length and the two bytes of its own header.
fn length_byte(value: &[u8]) -> u8 {
    u8::try_from(value.len() + 2).unwrap_or(u8::MAX)
}

/// What one request asked.
#[derive(Debug, Default)]
struct Seen {
    cookie: Option<String>,
    realm_entry: bool,
    realms: Vec<String>,
    regions: Vec<String>,
    sessions: Vec<(String, String, u64)>,
    banner: Option<String>,
    inner: Option<Inner>,
}

/// A request nested in AVP 79.
#[derive(Debug)]
enum Inner {
    Password {
        inner_id: u8,
        juniper5: bool,
        retry: bool,
    },
    Change {
        inner_id: u8,
    },
    Token {
        inner_id: u8,
        prompt: String,
    },
}

impl Inner {
    fn parse(data: &[u8]) -> Result<Self, PulseError> {
        let eap = Eap::parse(data)?;
        if eap.code != EAP_REQUEST {
            return Err(PulseError::BadEap(
                "a nested EAP message that is not a request",
            ));
        }
        let inner_id = eap.id;
        match (eap.kind, eap.expanded, eap.data.first().copied()) {
            (Some(EAP_TYPE_GTC), _, _) => Ok(Self::Token {
                inner_id,
                prompt: String::from_utf8_lossy(eap.data).into_owned(),
            }),
            (_, Some(JUNIPER_2), Some(code @ (J2_PASSWORD | J2_RETRY))) => Ok(Self::Password {
                inner_id,
                juniper5: false,
                retry: code == J2_RETRY,
            }),
            (_, Some(JUNIPER_2), Some(J2_CHANGE)) => Ok(Self::Change { inner_id }),
            (_, Some(JUNIPER_2), Some(J2_FAILURE)) => {
                let text = match eap.data {
                    [_, 1, len, rest @ ..] => {
                        let n = usize::from(*len).saturating_sub(2).min(rest.len());
                        String::from_utf8_lossy(rest.get(..n).unwrap_or_default()).into_owned()
                    }
                    _ => "unknown".into(),
                };
                Err(PulseError::Refused(text))
            }
            (_, Some(JUNIPER_5), Some(1)) => Ok(Self::Password {
                inner_id,
                juniper5: true,
                retry: false,
            }),
            (Some(EAP_TYPE_TLS), _, _) => Err(PulseError::Unsupported(
                "Pulse server is trying to authenticate via EAP-TLS over EAP-TTLS, which we do \
                 not know how to handle. This can happen when the server OPTIONALLY accepts TLS \
                 client certificates, but your authentication does not require one. You may be \
                 able to work around it by spoofing a very old Pulse client with: \
                 --useragent=\"Pulse-Secure/3.0.0\""
                    .into(),
            )),
            (_, Some(JUNIPER_HOST_CHECKER), _) => Err(PulseError::Unsupported(
                "Pulse server requested Host Checker; not yet supported. Try Juniper mode \
                 (--protocol=nc)"
                    .into(),
            )),
            (_, Some(JUNIPER_2), code) => Err(PulseError::Unsupported(format!(
                "Pulse password request with unknown code {:#04x}. Please report.",
                code.unwrap_or(0)
            ))),
            (kind, _, _) => Err(PulseError::Unsupported(format!(
                "Pulse server requested unexpected EAP type {:#x}",
                kind.unwrap_or(0)
            ))),
        }
    }
}

/// AVP 0xd65: a session's id, where it is from, when it started.
fn old_session(data: &[u8]) -> Result<(String, String, u64), PulseError> {
    let (mut id, mut from, mut at) = (None, None, None);
    for avp in avps(data) {
        let avp = avp?;
        match avp.code {
            AVP_OLD_SESSION_ID => id = Some(avp.text()),
            AVP_OLD_SESSION_FROM => from = Some(avp.text()),
            AVP_OLD_SESSION_TIME => {
                at = avp.data.first_chunk::<8>().map(|t| u64::from_be_bytes(*t));
            }
            _ => {}
        }
    }
    match (id, from, at) {
        (Some(id), Some(from), Some(at)) => Ok((id, from, at)),
        _ => Err(PulseError::BadEap(
            "a session without its id, address and time",
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests;
