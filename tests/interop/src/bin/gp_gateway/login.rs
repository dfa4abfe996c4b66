//! The login: prelogin, the portal's configuration (its gateways), the gateway's login
//! with its challenge, and the session it starts.

use std::net::SocketAddr;
use std::time::Duration;

use ferroconnect_interop::gateway::{describe_form, lock, random_hex, remember, text};
use oc_proto::gp::server::{
    challenge_html, challenge_js, challenge_xml, error_js, parse_form, LoginRequest,
};
use oc_proto::gp::{Challenge, GatewayEntry, LoginArgs, PortalConfig, Prelogin, Saml, SamlMethod};
use oc_proto::http::server::{ServerRequest, ServerResponse};

use super::{xml, ChallengeStyle, Gateway, Pending, Session};

/// The portal's name in the cookie.
const PORTAL: &str = "ferroconnect-portal";
/// The domain a gateway without one reports, escaped as real gateways send it (upstream
/// decodes it for the cookie).
const EMPTY_DOMAIN: &str = "%28empty_domain%29";
/// The HIP report interval the portal asks for.
const HIP_INTERVAL: Duration = Duration::from_secs(3600);

/// Secrets never logged.
const SECRET: &[&str] = &[
    "passwd",
    "portal-userauthcookie",
    "portal-prelogonuserauthcookie",
    "prelogin-cookie",
];

/// Where `--saml`'s prelogin sends the user (never opened: the test passes the result).
pub const SAML_IDP: &str = "https://idp.example.test/sso";

pub fn prelogin(gw: &Gateway, peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
    let interface = if request.path().starts_with("/global-protect/") {
        "portal"
    } else {
        "gateway"
    };
    log!(
        "{peer}: prelogin ({interface}) query {:?} body {:?} user-agent {:?}",
        request.target.split_once('?').map_or("", |(_, q)| q),
        describe_form(&parse_form(&request.body), &[]),
        request.header("User-Agent").unwrap_or("-"),
    );
    let answer = Prelogin {
        message: Some(format!(
            "Welcome to the ferroconnect GlobalProtect test {interface}"
        )),
        username_label: Some("Username".into()),
        password_label: Some("Password".into()),
        region: Some(gw.config.region.clone()),
        saml: gw.config.saml.as_ref().map(|_| Saml {
            method: SamlMethod::Redirect,
            target: SAML_IDP.into(),
        }),
    };
    xml(&answer.to_xml())
}

/// What a login post is worth.
enum Verdict {
    /// The user and password (or a portal cookie) are right.
    Known(String),
    /// HTTP 512.
    Wrong,
}

fn check_password(gw: &Gateway, peer: SocketAddr, login: &LoginRequest, step: &str) -> Verdict {
    let common = &gw.config.common;
    if let Some(expected) = &gw.config.saml {
        return match (&login.user, &login.prelogin_cookie) {
            (Some(user), Some(cookie)) if *user == common.user && cookie == expected => {
                log!("{peer}: {step}: SAML prelogin-cookie accepted for user {user:?}");
                Verdict::Known(user.clone())
            }
            (user, _) => {
                log!("{peer}: {step} refused for user {user:?}: no or a wrong prelogin-cookie");
                Verdict::Wrong
            }
        };
    }
    match (&login.user, &login.passwd) {
        (Some(user), Some(passwd)) if *user == common.user && *passwd == common.password => {
            Verdict::Known(user.clone())
        }
        (user, _) => {
            log!("{peer}: {step} refused for user {user:?}: wrong user name or password");
            Verdict::Wrong
        }
    }
}

fn bad_credentials() -> ServerResponse {
    text(
        512,
        "Custom error",
        "text/plain",
        "Invalid username or password",
    )
}

fn read_login(peer: SocketAddr, request: &ServerRequest, step: &str) -> LoginRequest {
    let form = parse_form(&request.body);
    log!("{peer}: {step} form: {}", describe_form(&form, SECRET));
    let login = LoginRequest::from_form(&form);
    if !login.irregular.is_empty() {
        log!(
            "{peer}: {step} post lacks upstream's fixed fields or has other values: {:?}",
            login.irregular
        );
    }
    login
}

/// `POST /global-protect/getconfig.esp`: the portal's login; the gateways to choose from.
pub fn portal(gw: &Gateway, peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
    let login = read_login(peer, request, "portal login");
    let Verdict::Known(user) = check_password(gw, peer, &login, "portal login") else {
        return bad_credentials();
    };
    let cookie = gw.config.portal_cookie.then(|| {
        let value = random_hex::<12>();
        remember(
            &mut lock(&gw.state).portal_cookies,
            (value.clone(), user.clone()),
        );
        value
    });
    let gateways = gw
        .config
        .gateways
        .iter()
        .zip(1..)
        .map(|((name, description), priority)| GatewayEntry {
            name: name.clone(),
            description: description.clone(),
            priority: Some(priority),
        })
        .collect();
    let config = PortalConfig {
        gateways,
        portal_name: Some(PORTAL.into()),
        portal_userauthcookie: cookie.clone(),
        portal_prelogonuserauthcookie: None,
        hip_report_interval: Some(HIP_INTERVAL),
        version: Some(oc_proto::gp::DEFAULT_APP_VERSION.into()),
    };
    log!(
        "{peer}: portal login accepted for user {user:?}; {} gateways listed{}",
        gw.config.gateways.len(),
        if cookie.is_some() {
            ", portal-userauthcookie handed out"
        } else {
            ""
        }
    );
    xml(&config.to_xml())
}

/// `POST /ssl-vpn/login.esp`: the gateway's login, with its challenge.
pub fn gateway(gw: &Gateway, peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
    let login = read_login(peer, request, "gateway login");
    log!(
        "{peer}: gateway login for server {:?}, host header {:?}",
        login.server.as_deref().unwrap_or("-"),
        request.header("Host").unwrap_or("-")
    );
    if let Some(user) = portal_cookie_user(gw, &login) {
        log!("{peer}: gateway login by portal-userauthcookie for user {user:?}");
        return logged_in(gw, peer, &login, user);
    }
    if let Some(input_str) = &login.input_str {
        return challenge_answer(gw, peer, &login, input_str);
    }
    let Verdict::Known(user) = check_password(gw, peer, &login, "gateway login") else {
        return bad_credentials();
    };
    if gw.config.common.otp.is_none() {
        return logged_in(gw, peer, &login, user);
    }
    let challenge = Challenge {
        prompt: "Enter the code from your token".into(),
        input_str: random_hex::<4>(),
    };
    remember(
        &mut lock(&gw.state).challenges,
        Pending {
            input_str: challenge.input_str.clone(),
            user: user.clone(),
        },
    );
    let (style, body) = match gw.config.challenge {
        ChallengeStyle::Xml => ("XML", challenge_xml(&challenge)),
        ChallengeStyle::JavaScript => ("JavaScript", challenge_js(&challenge)),
        ChallengeStyle::Html => ("JavaScript-in-HTML", challenge_html(&challenge)),
    };
    log!(
        "{peer}: password accepted for user {user:?}; {style} challenge sent (inputStr {})",
        challenge.input_str
    );
    // JavaScript comes as HTML's text, XML as XML.
    match gw.config.challenge {
        ChallengeStyle::Xml => xml(&body),
        ChallengeStyle::JavaScript | ChallengeStyle::Html => {
            text(200, "OK", "text/html; charset=UTF-8", &body)
        }
    }
}

/// The user of the portal cookie the post carries, when the portal handed it out.
fn portal_cookie_user(gw: &Gateway, login: &LoginRequest) -> Option<String> {
    let given = login.portal_userauthcookie.as_deref()?;
    let state = lock(&gw.state);
    state
        .portal_cookies
        .iter()
        .find(|(value, _)| value == given)
        .map(|(_, user)| user.clone())
        .filter(|user| login.user.as_deref() == Some(user.as_str()))
}

/// A post with `inputStr`: the code (in `passwd`) for the challenge it names.
fn challenge_answer(
    gw: &Gateway,
    peer: SocketAddr,
    login: &LoginRequest,
    input_str: &str,
) -> ServerResponse {
    let pending = {
        let mut state = lock(&gw.state);
        let at = state
            .challenges
            .iter()
            .position(|p| p.input_str == input_str);
        at.and_then(|i| state.challenges.remove(i))
    };
    let Some(pending) = pending else {
        log!("{peer}: challenge answer with an unknown inputStr {input_str:?}");
        return error_answer("Invalid challenge: log in again");
    };
    if login.user.as_deref() != Some(pending.user.as_str()) {
        log!(
            "{peer}: challenge answered for another user {:?}",
            login.user
        );
        return error_answer("Invalid challenge: log in again");
    }
    if login.passwd.as_deref() != gw.config.common.otp.as_deref() {
        log!(
            "{peer}: challenge refused for user {:?}: wrong code",
            pending.user
        );
        return error_answer("Authentication failed: wrong code");
    }
    log!(
        "{peer}: challenge code accepted for user {:?}",
        pending.user
    );
    logged_in(gw, peer, login, pending.user)
}

fn error_answer(message: &str) -> ServerResponse {
    text(200, "OK", "text/html; charset=UTF-8", &error_js(message))
}

/// A new session for `user`: its cookie's arguments.
fn logged_in(gw: &Gateway, peer: SocketAddr, login: &LoginRequest, user: String) -> ServerResponse {
    let computer = login.computer.clone().unwrap_or_default();
    let session = Session {
        authcookie: random_hex::<16>(),
        user: user.clone(),
        portal: PORTAL.into(),
        domain: "(empty_domain)".into(),
        computer: computer.clone(),
        esp_spi: None,
    };
    let args = LoginArgs {
        authcookie: session.authcookie.clone(),
        persistent_cookie: Some(random_hex::<20>()),
        portal: Some(PORTAL.into()),
        user: user.clone(),
        authentication_source: Some("ferroconnect-auth".into()),
        configuration: Some("vsys1".into()),
        domain: Some(EMPTY_DOMAIN.into()),
        preferred_ip: Some(gw.config.common.client_addr.to_string()),
        ..LoginArgs::default()
    };
    gw.add_session(session);
    log!("{peer}: login accepted for user {user:?} (computer {computer:?}); session started");
    xml(&args.to_xml())
}
