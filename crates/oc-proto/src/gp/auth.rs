//! The login's answers, read by the client and written by the gateway: prelogin
//! (labels, message, region, SAML), the portal's configuration (gateways, cookies, HIP
//! interval, version), the forms the client fills (`_login`, `_challenge`), and the
//! gateway login's JNLP arguments that make the session cookie.

use std::time::Duration;

use super::client::{check_root, GpCookie};
use super::reply::{Challenge, Reply};
use super::xml::{Element, Node};
use super::GpError;
use crate::form::{AuthForm, FieldKind, FormField};

/// The login form's id (`-F _login:user=...`).
pub const LOGIN_FORM: &str = "_login";
/// A challenge form's id (`-F _challenge:passwd=...`).
pub const CHALLENGE_FORM: &str = "_challenge";

/// How a SAML login is to be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamlMethod {
    /// `saml-request` is a base64 URL to open.
    Redirect,
    /// `saml-request` is a base64 HTML page that posts the SAML request.
    Post,
}

impl std::fmt::Display for SamlMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Redirect => "REDIRECT",
            Self::Post => "POST",
        })
    }
}

/// A SAML login the prelogin asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saml {
    pub method: SamlMethod,
    /// What to open in a browser: the URL (REDIRECT), or `data:text/html;base64,...`
    /// (POST), as upstream builds it.
    pub target: String,
}

/// What `prelogin.esp` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prelogin {
    /// `authentication-message`, trimmed (none when blank).
    pub message: Option<String>,
    pub username_label: Option<String>,
    pub password_label: Option<String>,
    /// The client's region as the portal sees it (for the gateways' priorities).
    pub region: Option<String>,
    pub saml: Option<Saml>,
}

/// A child's text, trimmed; none when blank (upstream ignores blank labels since 8.20).
fn trimmed(e: &Element, name: &str) -> Option<String> {
    e.child_text(name)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

impl Prelogin {
    /// Reads `<prelogin-response>` (whose status [`super::read_reply`] already checked).
    pub fn parse(reply: &Reply) -> Result<Self, GpError> {
        let root = xml_of(reply, "prelogin-response")?;
        let saml = match (
            trimmed(root, "saml-auth-method"),
            root.child_text("saml-request"),
        ) {
            (Some(method), Some(request)) if !request.trim().is_empty() => {
                Some(saml(&method, request.trim())?)
            }
            _ => None,
        };
        Ok(Self {
            message: trimmed(root, "authentication-message"),
            username_label: trimmed(root, "username-label"),
            password_label: trimmed(root, "password-label"),
            region: trimmed(root, "region"),
            saml,
        })
    }

    /// The login form (`_login`): the user name (hidden when `known_user` has one from an
    /// earlier step), then the secret: `passwd`, or `alt_secret` (the field an external
    /// login fills: `prelogin-cookie`, `portal-userauthcookie`). The secret is a one-time
    /// code when the gateway's label for it is not "Password" (upstream's heuristic).
    pub fn form(&self, known_user: Option<&str>, alt_secret: Option<&str>) -> AuthForm {
        let message = match (&self.saml, &self.message) {
            (Some(_), _) => "SAML REDIRECT authentication in progress".to_string(),
            (None, Some(m)) => m.clone(),
            (None, None) => "Please enter your username and password".to_string(),
        };
        let user_label = self.username_label.as_deref().unwrap_or("Username");
        let user = FormField {
            name: "user".into(),
            label: format!("{user_label}: "),
            kind: if known_user.is_some() {
                FieldKind::Hidden
            } else {
                FieldKind::Text
            },
            value: known_user.map(str::to_string),
            token: false,
        };
        let secret_label = alt_secret
            .or(self.password_label.as_deref())
            .unwrap_or("Password");
        let secret = FormField {
            name: alt_secret.unwrap_or("passwd").to_string(),
            label: format!("{secret_label}: "),
            kind: FieldKind::Password,
            value: None,
            token: self.saml.is_none()
                && alt_secret.is_none()
                && self
                    .password_label
                    .as_deref()
                    .is_some_and(|l| l != "Password"),
        };
        AuthForm {
            id: LOGIN_FORM.into(),
            message: Some(message),
            fields: vec![user, secret],
            ..AuthForm::default()
        }
    }

    /// The gateway's answer (`region` and labels as given; a SAML prelogin is not built
    /// here).
    pub fn to_xml(&self) -> String {
        let mut root = Element::new("prelogin-response")
            .with_text("status", "Success")
            .with(Element::new("ccusername"))
            .with_text("autosubmit", "false")
            .with(Element::new("msg"))
            .with(Element::new("newmsg"));
        let optional = [
            ("authentication-message", &self.message),
            ("username-label", &self.username_label),
            ("password-label", &self.password_label),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                root.push_text(name, value);
            }
        }
        root.push_text("panos-version", "1");
        if let Some(region) = &self.region {
            root.push_text("region", region);
        }
        if let Some(saml) = &self.saml {
            use base64::Engine as _;
            let (method, request) = match saml.method {
                SamlMethod::Redirect => (
                    "REDIRECT",
                    base64::engine::general_purpose::STANDARD.encode(&saml.target),
                ),
                SamlMethod::Post => (
                    "POST",
                    saml.target
                        .strip_prefix("data:text/html;base64,")
                        .unwrap_or(&saml.target)
                        .to_string(),
                ),
            };
            root.push_text("saml-auth-method", method);
            root.push_text("saml-request", &request);
        }
        root.to_xml()
    }
}

fn saml(method: &str, request: &str) -> Result<Saml, GpError> {
    use base64::Engine as _;
    match method {
        "REDIRECT" => {
            let url = base64::engine::general_purpose::STANDARD
                .decode(request)
                .map_err(|_| GpError::BadSamlRequest)?;
            Ok(Saml {
                method: SamlMethod::Redirect,
                target: String::from_utf8_lossy(&url).into_owned(),
            })
        }
        "POST" => Ok(Saml {
            method: SamlMethod::Post,
            target: format!("data:text/html;base64,{request}"),
        }),
        other => Err(GpError::UnknownSamlMethod(other.to_string())),
    }
}

/// The document of an XML reply, if its root is `expected`.
pub(super) fn xml_of<'a>(reply: &'a Reply, expected: &'static str) -> Result<&'a Element, GpError> {
    match reply {
        Reply::Xml(root) => {
            check_root(root, expected)?;
            Ok(root)
        }
        Reply::Challenge(_) => Err(GpError::UnexpectedRoot {
            expected,
            got: "challenge".into(),
        }),
    }
}

/// The form a challenge asks to fill: the previous form's user name (now hidden and kept),
/// its secret field emptied under the label "Challenge: ", the prompt as the message. The
/// secret is a code unless the previous one already was (upstream's heuristic: a password
/// first, then a code; or a code first, then a password). Post it with the challenge's
/// `input_str`.
pub fn challenge_form(previous: &AuthForm, challenge: &Challenge) -> AuthForm {
    let mut form = previous.clone();
    form.id = CHALLENGE_FORM.into();
    form.message = Some(challenge.prompt.clone());
    form.error = None;
    if let Some(user) = form.fields.first_mut() {
        user.kind = FieldKind::Hidden;
    }
    if let Some(secret) = form.fields.get_mut(1) {
        secret.label = "Challenge: ".into();
        secret.value = None;
        secret.token = !secret.token;
    }
    form
}

/// One gateway the portal lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayEntry {
    /// `host[:port]`: where to log in.
    pub name: String,
    /// What the user chooses by (`--authgroup` matches it).
    pub description: String,
    /// The priority for the client's region (lower first), from `priority-rule`.
    pub priority: Option<u32>,
}

impl GatewayEntry {
    /// The gateway's URL.
    pub fn url(&self) -> String {
        format!("https://{}", self.name)
    }
}

/// What the portal's `getconfig.esp` says, as much of it as a client uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortalConfig {
    /// In the order to offer them: by priority for the region (unprioritised last), else
    /// as listed.
    pub gateways: Vec<GatewayEntry>,
    pub portal_name: Option<String>,
    /// Lets the gateway's login go on without asking again.
    pub portal_userauthcookie: Option<String>,
    pub portal_prelogonuserauthcookie: Option<String>,
    /// How often to run the HIP report.
    pub hip_report_interval: Option<Duration>,
    /// The portal's software version (parroted as the client's `app-version`).
    pub version: Option<String>,
}

/// Gateways read from one portal configuration at most.
const MAX_GATEWAYS: usize = 256;

impl PortalConfig {
    /// Reads `<policy>`; `region` from the prelogin picks each gateway's priority (its
    /// `priority-rule` entry for the region, or for `Any`, the lower of the two).
    pub fn parse(reply: &Reply, region: Option<&str>) -> Result<Self, GpError> {
        let root = xml_of(reply, "policy")?;
        let mut config = Self::default();
        let mut list = None;
        for child in root.elements() {
            match child.name.as_str() {
                "gateways" => {
                    list = child
                        .children_named("external")
                        .filter_map(|e| e.child("list"))
                        .last()
                        .or(list);
                }
                "hip-collection" => {
                    config.hip_report_interval = child
                        .child_text("hip-report-interval")
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                }
                "version" => config.version = Some(child.content().trim().to_string()),
                "portal-name" => config.portal_name = Some(child.content()),
                "portal-userauthcookie" => config.portal_userauthcookie = cookie_value(child),
                "portal-prelogonuserauthcookie" => {
                    config.portal_prelogonuserauthcookie = cookie_value(child)
                }
                _ => {}
            }
        }
        let list = list.ok_or(GpError::NoGateways)?;
        for entry in list.children_named("entry").take(MAX_GATEWAYS) {
            config.gateways.push(GatewayEntry {
                name: entry.attr("name").unwrap_or_default().to_string(),
                description: entry.child_text("description").unwrap_or_default(),
                priority: region.and_then(|r| priority(entry, r)),
            });
        }
        if config.gateways.is_empty() {
            return Err(GpError::NoGateways);
        }
        config
            .gateways
            .sort_by_key(|g| g.priority.unwrap_or(u32::MAX));
        Ok(config)
    }

    /// The gateway `--authgroup` names: a description that matches it whole (letter case
    /// aside), or the only one it begins, as upstream's `match_choice_label`; else a
    /// gateway of that name. Without a choice, the first.
    pub fn choose(&self, choice: Option<&str>) -> Result<&GatewayEntry, GpError> {
        let Some(choice) = choice.filter(|c| !c.is_empty()) else {
            return self.gateways.first().ok_or(GpError::NoGateways);
        };
        let lower = choice.to_lowercase();
        if let Some(exact) = self
            .gateways
            .iter()
            .find(|g| g.description.to_lowercase() == lower)
        {
            return Ok(exact);
        }
        let mut partial = self
            .gateways
            .iter()
            .filter(|g| g.description.to_lowercase().starts_with(&lower));
        match (partial.next(), partial.next()) {
            (Some(one), None) => Ok(one),
            (Some(_), Some(_)) => Err(GpError::AmbiguousGateway(choice.to_string())),
            (None, _) => self
                .gateways
                .iter()
                .find(|g| g.name == choice)
                .ok_or_else(|| GpError::NoSuchGateway(choice.to_string())),
        }
    }

    /// The portal's answer. Each gateway's priority becomes a rule for `Any`.
    pub fn to_xml(&self) -> String {
        let mut list = Element::new("list");
        for gateway in &self.gateways {
            let mut entry = Element::new("entry")
                .with_attr("name", &gateway.name)
                .with_text("description", &gateway.description);
            if let Some(p) = gateway.priority {
                let rule = Element::new("entry")
                    .with_attr("name", "Any")
                    .with_text("priority", &p.to_string());
                entry.push(Element::new("priority-rule").with(rule));
            }
            list.push(entry);
        }
        let mut policy = Element::new("policy");
        if let Some(v) = &self.version {
            policy.push_text("version", v);
        }
        if let Some(name) = &self.portal_name {
            policy.push_text("portal-name", name);
        }
        policy.push(Element::new("gateways").with(Element::new("external").with(list)));
        if let Some(interval) = self.hip_report_interval {
            let hip = Element::new("hip-collection")
                .with_text("hip-report-interval", &interval.as_secs().to_string());
            policy.push(hip);
        }
        let cookies = [
            ("portal-userauthcookie", &self.portal_userauthcookie),
            (
                "portal-prelogonuserauthcookie",
                &self.portal_prelogonuserauthcookie,
            ),
        ];
        for (name, value) in cookies {
            policy.push_text(name, value.as_deref().unwrap_or("empty"));
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n{}",
            policy.to_xml()
        )
    }
}

/// A portal cookie's value: none when empty or `empty`.
fn cookie_value(e: &Element) -> Option<String> {
    Some(e.content()).filter(|v| !v.is_empty() && v != "empty")
}

/// The lowest priority of `entry`'s rules for `region` or `Any`.
fn priority(entry: &Element, region: &str) -> Option<u32> {
    entry
        .children_named("priority-rule")
        .flat_map(|rule| rule.children_named("entry"))
        .filter(|e| e.attr("name").is_some_and(|n| n == region || n == "Any"))
        .filter_map(|e| e.child_text("priority"))
        .filter_map(|p| p.trim().parse::<u32>().ok())
        .min()
}

/// The gateway login's answer: the JNLP arguments by position, as upstream reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginArgs {
    /// 1: the session's secret.
    pub authcookie: String,
    /// 2: 40 hex digits that persist across sessions.
    pub persistent_cookie: Option<String>,
    /// 3
    pub portal: Option<String>,
    /// 4
    pub user: String,
    /// 5: `LDAP-auth`, `AUTH-RADIUS_RSA_OTP`, ...
    pub authentication_source: Option<String>,
    /// 6: usually `vsys1`.
    pub configuration: Option<String>,
    /// 7
    pub domain: Option<String>,
    /// 13: days until the password expires.
    pub password_expiration_days: Option<String>,
    /// 15
    pub preferred_ip: Option<String>,
    /// 16, 17
    pub portal_userauthcookie: Option<String>,
    pub portal_prelogonuserauthcookie: Option<String>,
    /// 18
    pub preferred_ipv6: Option<String>,
    /// Values where upstream expects none (positions 0, 8 to 11, and past its table), by
    /// position: upstream asks users to report them.
    pub unexpected: Vec<(usize, String)>,
}

/// Arguments read from one answer at most.
const MAX_ARGUMENTS: usize = 64;

impl LoginArgs {
    /// Reads `<jnlp><application-desc><argument>...`. Empty values, `(null)` and `-1` are
    /// none; the values that go into the cookie are URL-decoded (a domain of
    /// `%28empty_domain%29` is common). Missing `authcookie` or `user`, a `connection-type`
    /// other than `tunnel` or a `clientVer` other than 4100 end the login, as upstream.
    pub fn parse(reply: &Reply) -> Result<Self, GpError> {
        let root = xml_of(reply, "jnlp")?;
        let desc = root
            .elements()
            .next()
            .filter(|e| e.name == "application-desc")
            .ok_or_else(|| GpError::UnexpectedRoot {
                expected: "application-desc",
                got: root
                    .elements()
                    .next()
                    .map(|e| e.name.clone())
                    .unwrap_or_default(),
            })?;
        let mut values: Vec<Option<String>> = Vec::new();
        for element in desc.elements().take(MAX_ARGUMENTS) {
            if element.name != "argument" {
                return Err(GpError::Malformed(format!(
                    "<{}> among the arguments",
                    element.name
                )));
            }
            let value = element.content();
            values.push(Some(value).filter(|v| !v.is_empty() && v != "(null)" && v != "-1"));
        }
        let at = |i: usize| values.get(i).cloned().flatten();
        let saved = |i: usize| at(i).map(|v| crate::url::percent_decode(&v, true));
        let args = Self {
            authcookie: saved(1).ok_or(GpError::MissingLoginArgument("authcookie"))?,
            persistent_cookie: at(2),
            portal: saved(3),
            user: saved(4).ok_or(GpError::MissingLoginArgument("user"))?,
            authentication_source: at(5),
            configuration: at(6),
            domain: saved(7),
            password_expiration_days: at(13),
            preferred_ip: saved(15),
            portal_userauthcookie: at(16),
            portal_prelogonuserauthcookie: at(17),
            preferred_ipv6: saved(18),
            unexpected: values
                .iter()
                .enumerate()
                .filter(|(i, _)| matches!(i, 0 | 8..=11) || *i > 20)
                .filter_map(|(i, v)| v.clone().map(|v| (i, v)))
                .collect(),
        };
        for (position, name, expected) in
            [(12, "connection-type", "tunnel"), (14, "clientVer", "4100")]
        {
            let value = at(position);
            if value.as_deref() != Some(expected) {
                return Err(GpError::UnexpectedLoginArgument {
                    name,
                    value: value.unwrap_or_default(),
                    expected,
                });
            }
        }
        Ok(args)
    }

    /// The session's cookie: `authcookie`, `portal`, `user`, `domain`, `preferred-ip`,
    /// `preferred-ipv6` (those given) and the client's `computer`, as upstream saves it.
    pub fn cookie(&self, computer: &str) -> GpCookie {
        let fields = [
            ("authcookie", Some(self.authcookie.as_str())),
            ("portal", self.portal.as_deref()),
            ("user", Some(self.user.as_str())),
            ("domain", self.domain.as_deref()),
            ("preferred-ip", self.preferred_ip.as_deref()),
            ("preferred-ipv6", self.preferred_ipv6.as_deref()),
            ("computer", Some(computer)),
        ];
        GpCookie::from_pairs(fields.into_iter().filter_map(|(n, v)| v.map(|v| (n, v))))
    }

    /// The gateway's answer: 19 arguments as real gateways send them (`(null)` first, the
    /// four empty ones, `tunnel`, `-1` days, `4100`).
    pub fn to_xml(&self) -> String {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let args = [
            "(null)".to_string(),
            self.authcookie.clone(),
            opt(&self.persistent_cookie),
            opt(&self.portal),
            self.user.clone(),
            opt(&self.authentication_source),
            opt(&self.configuration),
            opt(&self.domain),
            "(null)".to_string(),
            String::new(),
            String::new(),
            String::new(),
            "tunnel".to_string(),
            self.password_expiration_days
                .clone()
                .unwrap_or_else(|| "-1".to_string()),
            "4100".to_string(),
            opt(&self.preferred_ip),
            opt(&self.portal_userauthcookie),
            opt(&self.portal_prelogonuserauthcookie),
            opt(&self.preferred_ipv6),
        ];
        let mut desc = Element::new("application-desc");
        for arg in args {
            let mut element = Element::new("argument");
            if !arg.is_empty() {
                element.children.push(Node::Text(arg));
            }
            desc.push(element);
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n{}",
            Element::new("jnlp").with(desc).to_xml()
        )
    }
}
