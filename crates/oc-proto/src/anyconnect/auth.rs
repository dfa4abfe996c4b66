//! The XML aggregate-auth exchange, from the `init` POST to the `webvpn` cookie.
//!
//! [`AuthExchange`] builds each request and reads each response; the shell moves the bytes
//! and fills the forms (from the command line, a terminal or a front end).

use std::borrow::Cow;

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::QName;
use quick_xml::Reader;
use thiserror::Error;

use super::host_scan::{read_wait_page, HostScan, WaitPage};
use super::http_auth::{HttpAuthAnswer, ServerHttpAuth};
use super::multicert::{self, choose_hash, MultiCertRequest};
use super::profile::ProfileManifest;
use super::sso::SsoLogin;
use crate::client_proxy::auth::NegotiatorHandle;
use crate::form::xml_attr as attr;
use crate::http::{Request, Response};
use crate::url::ServerUrl;

pub use crate::form::{AuthForm, FieldKind, FormField, SelectOption, GROUP_FIELD};

/// Everything we use from one `config-auth` document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthDocument {
    pub doc_type: Option<String>,
    pub form: AuthForm,
    /// The `<opaque>` element, verbatim, to be echoed in every later reply.
    pub opaque: Option<String>,
    pub session_token: Option<String>,
    pub authentication_complete: bool,
    /// `<vpn-profile-manifest>`: the profile the server offers.
    pub profile: Option<ProfileManifest>,
    /// `<multiple-client-cert-request>`'s hash algorithms: the server asks for a second
    /// certificate.
    pub multicert_hashes: Option<Vec<String>>,
    /// A single-sign-on login: the `sso-v2-*` elements and the `<input type="sso">`.
    pub sso: Option<SsoLogin>,
    /// `<host-scan>`: the gateway wants the host scanned first.
    pub host_scan: Option<HostScan>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("server's authentication XML is malformed: {0}")]
    BadXml(String),
    #[error("server's answer is not AnyConnect XML (no <auth> element); the legacy HTML form mode is not supported yet")]
    NotXml,
    #[error("authentication failed: server answered HTTP {status} {reason}")]
    Rejected { status: u16, reason: String },
    #[error("unexpected HTTP {status} {reason} during authentication")]
    Http { status: u16, reason: String },
    #[error(
        "the login form posts to {0}, another server; this client follows only redirects there"
    )]
    ForeignRedirect(String),
    #[error("redirect without a usable Location header")]
    BadRedirect,
    #[error("server redirected to a URL this client does not follow: {0}")]
    RedirectRefused(String),
    #[error("server reported: {0}")]
    Server(String),
    #[error("authentication finished but the server sent no webvpn cookie")]
    NoCookie,
    #[error(
        "server requires multiple-certificate authentication: give the second certificate \
         with --mca-certificate (and --mca-key)"
    )]
    SecondCertificateNeeded,
    #[error("server asked for a second certificate with none of the hashes SHA-256/384/512 ({0})")]
    SecondCertificateHashes(String),
    #[error("server rejected the Kerberos ticket (GSSAPI): check the realm and the service principal HTTP/<server>")]
    NegotiateRejected,
    #[error("server rejected the NTLM single sign-on (the desktop's NTLM credentials)")]
    NtlmRejected,
    #[error(
        "server asks for NTLM and the desktop's credentials could not answer: {0} \
         (gss-ntlmssp with NTLM_USER_FILE, or winbind)"
    )]
    NtlmSso(String),
    #[error(
        "server asks for GSSAPI (Negotiate) and no Kerberos token could be made: {0} (kinit \
         first, or leave gssapi out of --http-auth)"
    )]
    Negotiate(String),
    #[error("server rejected the bearer token (--token-mode=oidc): it may have expired")]
    BearerRejected,
    #[error(
        "server asks for a bearer token (OpenID Connect): give it with --token-mode=oidc \
         --token-secret=TOKEN (or @FILE)"
    )]
    BearerNeeded,
    #[error(
        "server asks for HTTP authentication by {0}, which this client does not speak yet \
         (it answers Bearer challenges, with --token-mode=oidc)"
    )]
    HttpAuthMethods(String),
    #[error("host scan: {0}")]
    HostScan(String),
    #[error("gave up after {0} authentication rounds without success")]
    TooManyRounds(u32),
    #[error("form has too many {0} (limit {1})")]
    TooLarge(&'static str, usize),
}

const MAX_FIELDS: usize = 64;
const MAX_OPTIONS: usize = 1024;
const MAX_ROUNDS: u32 = 16;
const MAX_GROUP_RESTARTS: u8 = 5;

/// Parses one `config-auth` document (or a bare `<auth>` from old servers).
pub fn parse_auth_document(xml: &str) -> Result<AuthDocument, AuthError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(false);
    let mut doc = AuthDocument::default();
    let mut seen_auth = false;
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut option_value: Option<String> = None;
    let mut message_params: Vec<String> = Vec::new();
    let (mut profile_uri, mut profile_sha1) = (None, None);
    let mut sso = SsoLogin::default();
    let bad = |e: &dyn std::fmt::Display| AuthError::BadXml(e.to_string());
    loop {
        let event = reader.read_event().map_err(|e| bad(&e))?;
        match event {
            Event::Start(start) => {
                let name = start.name().0.to_string();
                if name == "opaque" {
                    let span = reader.read_to_end(QName("opaque")).map_err(|e| bad(&e))?;
                    let inner = usize::try_from(span.start)
                        .ok()
                        .zip(usize::try_from(span.end).ok())
                        .and_then(|(s, e)| xml.get(s..e))
                        .unwrap_or_default();
                    doc.opaque = Some(format!("<{}>{inner}</opaque>", &*start));
                    continue;
                }
                if name == "auth" {
                    seen_auth = true;
                }
                if name == "message" {
                    message_params = ["param1", "param2"]
                        .iter()
                        .filter_map(|p| attr(&start, p))
                        .collect();
                }
                open_element(&mut doc, &start, &mut option_value, &mut sso)?;
                stack.push(name);
                text.clear();
            }
            Event::Empty(start) => {
                if start.name().0 == "opaque" {
                    doc.opaque = Some(format!("<{}/>", &*start));
                    continue;
                }
                if start.name().0 == "auth" {
                    seen_auth = true;
                }
                open_element(&mut doc, &start, &mut option_value, &mut sso)?;
                if start.name().0 == "option" {
                    close_option(&mut doc, &mut option_value, "")?;
                }
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::CData(c) => text.push_str(&c.xml10_content()),
            Event::GeneralRef(r) => push_reference(&mut text, &r),
            Event::End(end) => {
                let name = end.name().0.to_string();
                let parent = stack.len().checked_sub(2).and_then(|i| stack.get(i));
                let in_auth = parent.is_some_and(|p| p == "auth");
                let value = text.trim().to_string();
                match name.as_str() {
                    "banner" if in_auth => doc.form.banner = Some(value),
                    "message" if in_auth => {
                        doc.form.message = Some(fill_params(&value, &message_params))
                    }
                    "error" if in_auth => doc.form.error = Some(value),
                    "title" if in_auth => doc.form.title = Some(value),
                    "session-token" => doc.session_token = Some(value),
                    "hash-algorithm"
                        if parent.is_some_and(|p| p == "multiple-client-cert-request") =>
                    {
                        if let Some(hashes) = doc.multicert_hashes.as_mut().filter(|h| h.len() < 16)
                        {
                            hashes.push(value);
                        }
                    }
                    "host-scan-ticket" | "host-scan-token" | "host-scan-base-uri"
                    | "host-scan-wait-uri"
                        if parent.is_some_and(|p| p == "host-scan") =>
                    {
                        let scan = doc.host_scan.get_or_insert_with(HostScan::default);
                        match name.as_str() {
                            "host-scan-ticket" => scan.ticket = value,
                            "host-scan-token" => scan.token = value,
                            "host-scan-base-uri" => scan.base_uri = value,
                            _ => scan.wait_uri = value,
                        }
                    }
                    "sso-v2-login" if in_auth => sso.login_url = value,
                    "sso-v2-login-final" if in_auth => sso.final_url = Some(value),
                    "sso-v2-token-cookie-name" if in_auth => sso.token_cookie = Some(value),
                    "sso-v2-error-cookie-name" if in_auth => sso.error_cookie = Some(value),
                    "sso-v2-browser-mode" if in_auth => {
                        sso.external_browser = value.eq_ignore_ascii_case("external")
                    }
                    "uri" if in_profile_manifest(&stack, parent) => profile_uri = Some(value),
                    "hash" if in_profile_manifest(&stack, parent) => profile_sha1 = Some(value),
                    "option" => close_option(&mut doc, &mut option_value, &value)?,
                    _ => {}
                }
                stack.pop();
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_auth && doc.multicert_hashes.is_none() {
        return Err(AuthError::NotXml);
    }
    doc.profile = profile_uri
        .zip(profile_sha1)
        .map(|(uri, sha1)| ProfileManifest { uri, sha1 });
    doc.sso = (!sso.login_url.is_empty() && !sso.token_field.is_empty()).then_some(sso);
    doc.host_scan = doc.host_scan.filter(HostScan::is_complete);
    Ok(doc)
}

/// `message` may hold `%s` placeholders filled from its `param1`/`param2` attributes.
fn fill_params(text: &str, params: &[String]) -> String {
    params
        .iter()
        .fold(text.to_string(), |out, param| out.replacen("%s", param, 1))
}

fn open_element(
    doc: &mut AuthDocument,
    start: &BytesStart<'_>,
    option_value: &mut Option<String>,
    sso: &mut SsoLogin,
) -> Result<(), AuthError> {
    let form = &mut doc.form;
    match start.name().0 {
        "config-auth" => doc.doc_type = attr(start, "type"),
        "auth" => form.id = attr(start, "id").unwrap_or_default(),
        "authentication-complete" => doc.authentication_complete = true,
        "multiple-client-cert-request" => doc.multicert_hashes = Some(Vec::new()),
        "form" => {
            form.method = attr(start, "method");
            form.action = attr(start, "action");
        }
        "input" => {
            let kind = match attr(start, "type").as_deref() {
                Some("text") => FieldKind::Text,
                Some("password") => FieldKind::Password,
                Some("hidden") => FieldKind::Hidden,
                // The browser fills this one (see `sso`).
                Some("sso") => {
                    sso.token_field = attr(start, "name").unwrap_or_default();
                    return Ok(());
                }
                // submit, reset and unknown types are not ours to fill.
                _ => return Ok(()),
            };
            push_field(form, start, kind)?;
        }
        "select" => push_field(form, start, FieldKind::Select(Vec::new()))?,
        "option" => *option_value = Some(attr(start, "value").unwrap_or_default()),
        _ => {}
    }
    Ok(())
}

fn push_field(
    form: &mut AuthForm,
    start: &BytesStart<'_>,
    kind: FieldKind,
) -> Result<(), AuthError> {
    if form.fields.len() >= MAX_FIELDS {
        return Err(AuthError::TooLarge("fields", MAX_FIELDS));
    }
    let name = attr(start, "name").unwrap_or_default();
    let label = attr(start, "label").unwrap_or_else(|| format!("{name}:"));
    form.fields.push(FormField {
        label,
        kind,
        value: attr(start, "value"),
        token: attr(start, "second-auth").is_some_and(|v| v == "1"),
        name,
    });
    Ok(())
}

fn close_option(
    doc: &mut AuthDocument,
    option_value: &mut Option<String>,
    label: &str,
) -> Result<(), AuthError> {
    let value = option_value.take().unwrap_or_default();
    let Some(FieldKind::Select(options)) = doc.form.fields.last_mut().map(|f| &mut f.kind) else {
        return Ok(());
    };
    if options.len() >= MAX_OPTIONS {
        return Err(AuthError::TooLarge("select options", MAX_OPTIONS));
    }
    // `<option>NAME</option>` with no value attribute means the value is the text.
    let value = if value.is_empty() {
        label.to_string()
    } else {
        value
    };
    options.push(SelectOption {
        label: if label.is_empty() {
            value.clone()
        } else {
            label.to_string()
        },
        value,
    });
    Ok(())
}

/// Inside `<vpn-profile-manifest><vpn><file>` (where ocserv and ASAs put the profile's
/// `uri` and `hash`).
fn in_profile_manifest(stack: &[String], parent: Option<&String>) -> bool {
    parent.is_some_and(|p| p == "file") && stack.iter().any(|e| e == "vpn-profile-manifest")
}

pub(crate) fn push_reference(text: &mut String, r: &BytesRef<'_>) {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        text.push(c);
        return;
    }
    let name = r.xml10_content();
    match quick_xml::escape::resolve_predefined_entity(&name) {
        Some(s) => text.push_str(s),
        None => {
            text.push('&');
            text.push_str(&name);
            text.push(';');
        }
    }
}

pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    quick_xml::escape::escape(text)
}

/// How this client introduces itself in every XML body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// `<version who="vpn">`, openconnect's `--version-string`.
    pub version: String,
    /// `<device-id>`, from `--os`.
    pub device_id: String,
}

pub(crate) fn xml_header(out: &mut String, id: &ClientIdentity, kind: &str) {
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<config-auth client=\"vpn\" type=\"{kind}\" aggregate-auth-version=\"2\">"
    ));
    out.push_str(&format!(
        "<version who=\"vpn\">{}</version><device-id>{}</device-id>",
        escape(&id.version),
        escape(&id.device_id)
    ));
}

/// The `init` body.
pub fn init_xml(id: &ClientIdentity, group_access: &str, group: Option<&str>) -> String {
    let mut out = String::new();
    xml_header(&mut out, id, "init");
    out.push_str(&format!(
        "<group-access>{}</group-access>",
        escape(group_access)
    ));
    if let Some(g) = group {
        out.push_str(&format!("<group-select>{}</group-select>", escape(g)));
    }
    out.push_str("</config-auth>");
    out
}

/// Which XML element carries each filled-in answer (`name`, `value`), in order, following
/// openconnect's mapping: PIN/answer fields are sent as `password`, verification copies
/// are dropped, names that are not plain XML names are skipped, and the group select comes
/// last as `group-select` (outside `<auth>`).
pub fn reply_elements(answers: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut group = None;
    for (name, value) in answers {
        let tag = match name.as_str() {
            GROUP_FIELD => {
                group = Some(value.as_str());
                continue;
            }
            "verify_pin" | "verify_password" => continue,
            "answer" | "whichpin" | "new_password" => "password",
            other if is_xml_name(other) => other,
            _ => continue,
        };
        out.push((tag, value.as_str()));
    }
    if let Some(g) = group {
        out.push((GROUP_SELECT, g));
    }
    out
}

const GROUP_SELECT: &str = "group-select";

/// The `auth-reply` body for filled-in answers, with the elements of [`reply_elements`].
pub fn reply_xml(
    id: &ClientIdentity,
    opaque: Option<&str>,
    answers: &[(String, String)],
) -> String {
    let mut out = String::new();
    xml_header(&mut out, id, "auth-reply");
    if let Some(o) = opaque {
        out.push_str(o);
    }
    out.push_str("<auth>");
    let mut group = None;
    for (tag, value) in reply_elements(answers) {
        if tag == GROUP_SELECT {
            group = Some(value);
            continue;
        }
        out.push_str(&format!("<{tag}>{}</{tag}>", escape(value)));
    }
    out.push_str("</auth>");
    if let Some(g) = group {
        out.push_str(&format!("<{GROUP_SELECT}>{}</{GROUP_SELECT}>", escape(g)));
    }
    out.push_str("</config-auth>");
    out
}

/// Field names come from the server; only plain names may become element names.
fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Settings for one authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    pub url: ServerUrl,
    pub user_agent: String,
    pub identity: ClientIdentity,
    /// `--authgroup`: the group to ask for up front.
    pub group: Option<String>,
    /// XML POSTs (the default); `--no-xmlpost` starts with a GET and answers forms with
    /// `application/x-www-form-urlencoded` posts, the legacy way.
    pub xmlpost: bool,
    /// A second certificate is at hand (`--mca-certificate`): `init` offers
    /// `multiple-cert`.
    pub multicert: bool,
    /// Single sign-on is offered (not `--no-external-auth`): `init` names the
    /// `single-sign-on-v2` methods and every request carries these STRAP public keys.
    pub external_auth: Option<StrapPublicKeys>,
    /// `--token-mode=oidc`'s token: the answer to a `401` with `WWW-Authenticate: Bearer`.
    pub bearer_token: Option<String>,
    /// GSSAPI for a `401` with `WWW-Authenticate: Negotiate` (unless `--http-auth` leaves
    /// it out).
    pub negotiator: Option<NegotiatorHandle>,
}

/// The client's STRAP public keys, base64 DER SubjectPublicKeyInfo (P-256): the signing
/// key and the ECDH key the external browser's token is sealed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrapPublicKeys {
    pub signing: String,
    pub dh: String,
}

/// What to do after a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Show this form; answer it with [`AuthExchange::reply`].
    Form(AuthForm),
    /// Send this request next (redirect, restart).
    Send(Request),
    /// The server asks for the second certificate: answer with
    /// [`AuthExchange::reply_multicert`].
    SecondCertificate(MultiCertRequest),
    /// Log in through a web browser; answer `form` with the token in `login.token_field`
    /// (its other fields filled as usual) through [`AuthExchange::reply`].
    SingleSignOn {
        form: AuthForm,
        login: SsoLogin,
    },
    /// The login moved to another server (a redirect to another host or port): connect
    /// there (and tunnel there afterwards), and send `request`.
    NewServer {
        url: ServerUrl,
        request: Request,
    },
    /// Run the host scan (`--csd-wrapper`), then poll [`AuthExchange::wait_request`] until
    /// [`AuthExchange::wait_response`] says it is done.
    HostScan(HostScan),
    Success(AuthSuccess),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSuccess {
    /// The `webvpn` cookie value.
    pub cookie: String,
    pub banner: Option<String>,
    pub message: Option<String>,
    /// A profile the server offers (for `-x`).
    pub profile: Option<ProfileManifest>,
}

/// The client side of the aggregate-auth exchange.
#[derive(Debug)]
pub struct AuthExchange {
    settings: AuthSettings,
    cookies: Vec<(String, String)>,
    path: String,
    opaque: Option<String>,
    rounds: u32,
    group_restarts: u8,
    /// Options of the last form's group list, to tell a label from a different group.
    group_options: Vec<SelectOption>,
    /// The last request, to send again with an `Authorization` header after a `401`.
    last_request: Option<Request>,
    /// HTTP authentication (`401`) with the server.
    http_auth: ServerHttpAuth,
    /// The host scan's token, once it was asked for; later replies carry it.
    host_scan_token: Option<String>,
    /// Where the login was when the host scan was asked for: it starts again there.
    host_scan_return: String,
}

impl AuthExchange {
    pub fn new(settings: AuthSettings) -> Self {
        let path = settings.url.request_path();
        let http_auth =
            ServerHttpAuth::new(settings.bearer_token.clone(), settings.negotiator.clone());
        Self {
            settings,
            cookies: Vec::new(),
            path,
            opaque: None,
            rounds: 0,
            group_restarts: 0,
            group_options: Vec::new(),
            last_request: None,
            http_auth,
            host_scan_token: None,
            host_scan_return: String::new(),
        }
    }

    /// The first request: the XML `init` POST to the URL's path (a GET of it without
    /// XML POSTs).
    pub fn init_request(&mut self) -> Request {
        self.opaque = None;
        if !self.settings.xmlpost {
            return self.request("GET", Vec::new(), None);
        }
        let mut body = init_xml(
            &self.settings.identity,
            &self.settings.url.to_string(),
            self.settings.group.as_deref(),
        );
        // openconnect's place for them: after the header, before group-access.
        let mut methods = Vec::new();
        if self.settings.external_auth.is_some() {
            methods.extend(["single-sign-on-v2", "single-sign-on-external-browser"]);
        }
        if self.settings.multicert {
            methods.push("multiple-cert");
        }
        if !methods.is_empty() {
            let capability: String = methods
                .iter()
                .map(|m| format!("<auth-method>{m}</auth-method>"))
                .collect();
            if let Some(at) = body.find("<group-access>") {
                body.insert_str(at, &format!("<capabilities>{capability}</capabilities>"));
            }
        }
        self.post(body)
    }

    fn post(&mut self, body: String) -> Request {
        let content_type = "application/xml; charset=utf-8";
        self.request("POST", body.into_bytes(), Some(content_type))
    }

    fn request(
        &mut self,
        method: &'static str,
        body: Vec<u8>,
        content_type: Option<&str>,
    ) -> Request {
        let pad = 64 * (1 + body.len() / 64) - body.len();
        let mut req = Request::new(method, &self.path)
            .header("Host", self.settings.url.host_header())
            .header("User-Agent", &self.settings.user_agent);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            req = req.header("Cookie", jar.join("; "));
        }
        req = req
            .header("Accept", "*/*")
            .header("Accept-Encoding", "identity")
            .header("X-Transcend-Version", "1")
            .header("X-Aggregate-Auth", "1");
        if let Some(keys) = &self.settings.external_auth {
            req = req
                .header("X-AnyConnect-STRAP-Pubkey", &keys.signing)
                .header("X-AnyConnect-STRAP-DH-Pubkey", &keys.dh);
        }
        req = req.header("X-Pad", "0".repeat(pad));
        if self.http_auth.offered() {
            req = req.header("X-Support-HTTP-Auth", "true");
        }
        if let Some(content_type) = content_type {
            req = req.header("Content-Type", content_type);
        }
        req.body = body;
        self.last_request = Some(req.clone());
        self.http_auth.new_request();
        req
    }

    /// After a `401`: the last request again with an `Authorization` header, or the
    /// login again without offering HTTP authentication (see [`ServerHttpAuth`]).
    fn http_authentication(&mut self, resp: &Response) -> Result<AuthStep, AuthError> {
        let rejected = || AuthError::Rejected {
            status: resp.head.status,
            reason: resp.head.reason.clone(),
        };
        match self.http_auth.answer(resp, &self.settings.url.host)? {
            HttpAuthAnswer::Retry(value) => {
                let request = self.last_request.take().ok_or_else(rejected)?;
                let retry = request.header("Authorization", value);
                self.last_request = Some(retry.clone());
                Ok(AuthStep::Send(retry))
            }
            HttpAuthAnswer::Fallback => Ok(AuthStep::Send(self.init_request())),
        }
    }

    fn store_cookies(&mut self, resp: &Response) {
        for (name, value) in resp.head.set_cookies() {
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
    }

    /// The current value of a cookie the server set.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn handle_response(&mut self, resp: &Response) -> Result<AuthStep, AuthError> {
        self.rounds += 1;
        if self.rounds > MAX_ROUNDS {
            return Err(AuthError::TooManyRounds(MAX_ROUNDS));
        }
        self.store_cookies(resp);
        let status = resp.head.status;
        let reason = resp.head.reason.clone();
        match status {
            200 => {}
            301 | 302 | 303 | 307 | 308 => return self.follow_redirect(resp),
            401 => return self.http_authentication(resp),
            403 => return Err(AuthError::Rejected { status, reason }),
            _ => return Err(AuthError::Http { status, reason }),
        }
        let body = String::from_utf8_lossy(&resp.body);
        let doc = parse_auth_document(&body)?;
        if let Some(hashes) = doc.multicert_hashes.clone() {
            return self.second_certificate(doc, hashes, &resp.body);
        }
        if doc.form.id == "success" || doc.authentication_complete {
            let cookie = doc
                .session_token
                .clone()
                .filter(|t| !t.is_empty())
                .or_else(|| self.cookie("webvpn").map(str::to_string))
                .ok_or(AuthError::NoCookie)?;
            return Ok(AuthStep::Success(AuthSuccess {
                cookie,
                banner: doc.form.banner,
                message: doc.form.message,
                profile: doc.profile,
            }));
        }
        if doc.opaque.is_some() {
            self.opaque = doc.opaque;
        }
        if let Some(action) = &doc.form.action {
            self.path = self.resolve_path(action)?;
        }
        if let Some(scan) = doc.host_scan.filter(|_| self.host_scan_token.is_none()) {
            return Ok(self.start_host_scan(scan));
        }
        if let Some(login) = doc.sso {
            return Ok(AuthStep::SingleSignOn {
                form: doc.form,
                login,
            });
        }
        if doc.form.fields.is_empty() {
            let text = doc
                .form
                .error
                .or(doc.form.message)
                .unwrap_or_else(|| "authentication form has no fields to fill".to_string());
            return Err(AuthError::Server(text));
        }
        self.group_options = match doc.form.group_field().map(|f| &f.kind) {
            Some(FieldKind::Select(options)) => options.clone(),
            _ => Vec::new(),
        };
        Ok(AuthStep::Form(doc.form))
    }

    fn start_host_scan(&mut self, scan: HostScan) -> AuthStep {
        self.host_scan_token = Some(scan.token.clone());
        self.host_scan_return = self.path.clone();
        AuthStep::HostScan(scan)
    }

    /// The wait page's request, with the `sdesktop` cookie the scan earned.
    pub fn wait_request(&mut self, scan: &HostScan) -> Request {
        self.cookies.retain(|(n, _)| n != "sdesktop");
        self.cookies.push(("sdesktop".into(), scan.token.clone()));
        self.path = match scan.wait_uri.starts_with('/') {
            true => scan.wait_uri.clone(),
            false => format!("/{}", scan.wait_uri),
        };
        self.request("GET", Vec::new(), None)
    }

    /// Reads the wait page: `None` to ask again in a second, else the request that logs
    /// in again (the first request, where the login was).
    pub fn wait_response(&mut self, resp: &Response) -> Result<Option<Request>, AuthError> {
        self.store_cookies(resp);
        match read_wait_page(resp).map_err(AuthError::HostScan)? {
            WaitPage::Refresh => Ok(None),
            WaitPage::Ready => {
                self.path = self.host_scan_return.clone();
                Ok(Some(self.init_request()))
            }
        }
    }

    fn second_certificate(
        &mut self,
        doc: AuthDocument,
        hashes: Vec<String>,
        body: &[u8],
    ) -> Result<AuthStep, AuthError> {
        if !self.settings.multicert {
            return Err(AuthError::SecondCertificateNeeded);
        }
        if choose_hash(&hashes).is_none() {
            return Err(AuthError::SecondCertificateHashes(hashes.join(", ")));
        }
        if doc.opaque.is_some() {
            self.opaque = doc.opaque;
        }
        Ok(AuthStep::SecondCertificate(MultiCertRequest {
            hashes,
            challenge: body.to_vec(),
        }))
    }

    /// Answers the request for the second certificate: its PKCS#7 chain and the signature
    /// over the request (both base64), made with `hash`.
    pub fn reply_multicert(&mut self, pkcs7: &str, hash: &str, signature: &str) -> Request {
        let body = multicert::reply_xml(
            &self.settings.identity,
            self.opaque.as_deref(),
            pkcs7,
            hash,
            signature,
        );
        self.post(body)
    }

    /// Builds the reply to `form`. Choosing a group other than the one asked for restarts
    /// from `init` with that group, as openconnect does (the server's form may differ per
    /// group).
    pub fn reply(&mut self, answers: &[(String, String)]) -> Request {
        let chosen = answers
            .iter()
            .find(|(n, _)| n == GROUP_FIELD)
            .map(|(_, v)| v);
        if let Some(group) = chosen {
            // The group asked for in `init` may have been the option's label.
            let asked_for = self.settings.group.as_ref().is_some_and(|asked| {
                asked == group
                    || self
                        .group_options
                        .iter()
                        .any(|o| &o.value == group && &o.label == asked)
            });
            if !asked_for && self.group_restarts < MAX_GROUP_RESTARTS {
                self.group_restarts += 1;
                self.settings.group = Some(group.clone());
                return self.init_request();
            }
        }
        if !self.settings.xmlpost {
            let body = crate::form::urlencode(answers).into_bytes();
            return self.request("POST", body, Some("application/x-www-form-urlencoded"));
        }
        let mut body = reply_xml(&self.settings.identity, self.opaque.as_deref(), answers);
        if let Some(token) = &self.host_scan_token {
            let element = format!("<host-scan-token>{}</host-scan-token>", escape(token));
            body.insert_str(body.len() - "</config-auth>".len(), &element);
        }
        self.post(body)
    }

    fn resolve_path(&self, location: &str) -> Result<String, AuthError> {
        if location.starts_with('/') {
            return Ok(location.to_string());
        }
        if location.contains("://") {
            let target = ServerUrl::parse(location).map_err(|_| AuthError::BadRedirect)?;
            if !target.host.eq_ignore_ascii_case(&self.settings.url.host)
                || target.port != self.settings.url.port
            {
                return Err(AuthError::ForeignRedirect(location.to_string()));
            }
            return Ok(target.request_path());
        }
        // Relative to the current path's directory.
        let dir = self
            .path
            .rsplit_once('/')
            .map(|(d, _)| d)
            .unwrap_or_default();
        Ok(format!("{dir}/{location}"))
    }

    fn follow_redirect(&mut self, resp: &Response) -> Result<AuthStep, AuthError> {
        let location = resp.head.header("Location").ok_or(AuthError::BadRedirect)?;
        if location.contains("://") {
            let target = ServerUrl::parse(location)
                .map_err(|e| AuthError::RedirectRefused(format!("{location}: {e}")))?;
            let same_server = target.host.eq_ignore_ascii_case(&self.settings.url.host)
                && target.port == self.settings.url.port;
            if !same_server {
                return Ok(self.move_to(target));
            }
        }
        self.path = self.resolve_path(location)?;
        Ok(AuthStep::Send(self.init_request()))
    }

    /// Another server takes over the login (an ASA's load balancing): the login starts
    /// again there, without the first server's cookies.
    fn move_to(&mut self, target: ServerUrl) -> AuthStep {
        self.path = target.request_path();
        self.settings.url = target;
        self.cookies.clear();
        AuthStep::NewServer {
            url: self.settings.url.clone(),
            request: self.init_request(),
        }
    }
}

#[cfg(test)]
mod tests;
