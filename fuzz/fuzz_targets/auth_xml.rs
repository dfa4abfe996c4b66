//! The aggregate-auth XML on both sides.
//!
//! - The input as a server's document: `parse_auth_document` (at most 64 fields and 1024
//!   options per select when it succeeds), then `AuthExchange::handle_response` and, for a
//!   form, `reply` with every field answered, as the client runs them.
//! - The input as a client's POST body: `parse_client_auth` keeps at most 1024 characters
//!   of each value.
//! - Round trips through the builders, with names, labels and messages taken from the
//!   input: the server's `LoginForm::to_xml` and `complete_xml` read by the client's
//!   `parse_auth_document`, and the client's `init_xml` and `reply_xml` read by the server's
//!   `parse_client_auth`, must give back what was put in (text trimmed by the client, tabs
//!   and newlines in attributes read as spaces, as XML has it).
//!
//! Input layout: all of it is the document / body. For the round trips it is also read as
//! UTF-8 (lossily, CRs dropped) and split at U+001F into parts: banner, message, action,
//! then (name, label) / (value, label) / (name, value) pairs. Byte 0 picks what is built:
//! bit 0 a banner, bits 1-2 the inputs (user and password, one password, none, one text
//! answer), bit 3 a group in the init request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::anyconnect::auth::{
    init_xml, parse_auth_document, reply_elements, reply_xml, AuthError, AuthExchange,
    AuthSettings, AuthStep, ClientIdentity, FieldKind, FormField, SelectOption, GROUP_FIELD,
};
use oc_proto::anyconnect::server_auth::{
    complete_xml, parse_client_auth, ClientAuth, FormInputs, LoginForm, SsoForm,
};
use oc_proto::http::{Header, Response, ResponseHead};
use oc_proto::url::ServerUrl;

const MAX_FIELDS: usize = 64;
const MAX_OPTIONS: usize = 1024;
const MAX_VALUE_CHARS: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    server_document(&text);
    client_body(data);

    let selector = data.first().copied().unwrap_or(0);
    let clean: String = text.chars().filter(|&c| c != '\r').collect();
    let parts: Vec<&str> = clean.split('\u{1f}').collect();
    let part = |i: usize| parts.get(i).copied().unwrap_or_default();
    let pairs: Vec<(String, String)> = parts
        .get(3..)
        .unwrap_or_default()
        .chunks(2)
        .map(|p| {
            let second = p.get(1).copied().unwrap_or_default();
            (p[0].to_string(), second.to_string())
        })
        .collect();
    login_form_round_trip(selector, part(0), part(1), part(2), &pairs);
    complete_round_trip(selector, part(0));
    init_round_trip(selector, part(0), part(1), part(2), part(3));
    reply_round_trip(part(0), part(1), &pairs);
});

/// The input as a server's answer to the client.
fn server_document(text: &str) {
    if let Ok(doc) = parse_auth_document(text) {
        assert!(doc.form.fields.len() <= MAX_FIELDS);
        for field in &doc.form.fields {
            if let FieldKind::Select(options) = &field.kind {
                assert!(options.len() <= MAX_OPTIONS);
            }
        }
        if let Some(group) = doc.form.group_field() {
            assert_eq!(group.name, GROUP_FIELD);
        }
    }
    let settings = AuthSettings {
        url: ServerUrl::parse("vpn.example.com").expect("a fixed URL parses"),
        user_agent: "Open AnyConnect VPN Agent v9.12".into(),
        identity: identity("v9.12", "linux-64"),
        group: Some("staff".into()),
        xmlpost: true,
        multicert: true,
        external_auth: None,
        bearer_token: None,
        negotiator: None,
    };
    let mut exchange = AuthExchange::new(settings);
    let _ = exchange.init_request();
    let response = Response {
        head: ResponseHead {
            status: 200,
            reason: "OK".into(),
            headers: vec![Header {
                name: "Set-Cookie".into(),
                value: "webvpncontext=00@0; Secure".into(),
            }],
        },
        body: text.as_bytes().to_vec(),
    };
    let step = exchange.handle_response(&response);
    if let Ok(AuthStep::SecondCertificate(request)) = &step {
        // The whole response is what gets signed; a hash we take was offered.
        assert_eq!(request.challenge, response.body);
        assert!(oc_proto::anyconnect::multicert::choose_hash(&request.hashes).is_some());
        let mut out = Vec::new();
        exchange.reply_multicert("UEs3", "sha256", "c2ln").emit(&mut out);
    }
    if let Ok(AuthStep::Form(form)) = step {
        let answers: Vec<(String, String)> = form
            .fields
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    f.value.clone().unwrap_or_else(|| "x".into()),
                )
            })
            .collect();
        let mut out = Vec::new();
        exchange.reply(&answers).emit(&mut out);
    }
}

/// The input as a client's POST body to the server.
fn client_body(data: &[u8]) {
    let got = parse_client_auth(data);
    for value in [&got.username, &got.password, &got.group]
        .into_iter()
        .flatten()
    {
        assert!(value.chars().count() <= MAX_VALUE_CHARS);
    }
}

fn identity(version: &str, device_id: &str) -> ClientIdentity {
    ClientIdentity {
        version: version.into(),
        device_id: device_id.into(),
    }
}

/// What an attribute value reads back as: XML turns tabs and newlines into spaces.
fn attr(text: &str) -> String {
    text.replace(['\t', '\n'], " ")
}

fn bounded(text: &str) -> String {
    text.chars().take(MAX_VALUE_CHARS).collect()
}

fn login_form_round_trip(
    selector: u8,
    banner: &str,
    message: &str,
    action: &str,
    pairs: &[(String, String)],
) {
    let (name, label) = pairs
        .first()
        .map(|(n, l)| (n.as_str(), l.as_str()))
        .unwrap_or(("secondary_password", "Token:"));
    let sso = SsoForm {
        login_url: format!("https://idp/{name}"),
        final_url: format!("https://vpn/{label}"),
        token_cookie: name.into(),
        external: selector & 16 != 0,
    };
    let inputs = match (selector >> 1) & 3 {
        _ if selector & 8 != 0 => FormInputs::Sso(sso),
        1 => FormInputs::Password {
            name: name.into(),
            label: label.into(),
        },
        2 => FormInputs::None,
        3 => FormInputs::Text {
            name: name.into(),
            label: label.into(),
        },
        _ => FormInputs::UsernamePassword,
    };
    let form = LoginForm {
        banner: (selector & 1 != 0).then(|| banner.to_string()),
        message: message.into(),
        inputs: inputs.clone(),
        groups: pairs.to_vec(),
        action: action.into(),
    };
    let xml = form.to_xml();
    let parsed = parse_auth_document(&xml);
    if form.groups.len() > MAX_OPTIONS {
        assert_eq!(
            parsed,
            Err(AuthError::TooLarge("select options", MAX_OPTIONS))
        );
        return;
    }
    let doc = parsed.unwrap_or_else(|e| panic!("our login form does not parse: {e}\n{xml}"));
    assert_eq!(doc.doc_type.as_deref(), Some("auth-request"));
    assert!(!doc.authentication_complete);
    let f = &doc.form;
    assert_eq!(f.id, "main");
    assert_eq!(f.banner.as_deref(), form.banner.as_deref().map(str::trim));
    assert_eq!(f.message.as_deref(), Some(message.trim()));
    assert_eq!(f.action.as_deref(), Some(attr(action).as_str()));
    assert_eq!(f.method.as_deref(), Some("post"));
    assert_eq!(f.error, None);

    let field = |name: &str, label: &str, kind: FieldKind| FormField {
        name: name.into(),
        label: label.into(),
        kind,
        value: None,
        token: false,
    };
    let mut want = match &inputs {
        FormInputs::UsernamePassword => vec![
            field("username", "Username:", FieldKind::Text),
            field("password", "Password:", FieldKind::Password),
        ],
        FormInputs::Password { name, label } => {
            vec![field(&attr(name), &attr(label), FieldKind::Password)]
        }
        FormInputs::Text { name, label } => {
            vec![field(&attr(name), &attr(label), FieldKind::Text)]
        }
        FormInputs::None | FormInputs::Sso(_) => Vec::new(),
    };
    if let FormInputs::Sso(sso) = &inputs {
        let got = doc.sso.as_ref().unwrap_or_else(|| panic!("no sso login in\n{xml}"));
        assert_eq!(got.login_url, sso.login_url.trim(), "{xml}");
        assert_eq!(got.final_url.as_deref(), Some(sso.final_url.trim()), "{xml}");
        assert_eq!(got.token_cookie.as_deref(), Some(sso.token_cookie.trim()), "{xml}");
        assert_eq!(got.external_browser, sso.external, "{xml}");
        assert_eq!(got.token_field, "sso-token");
    }
    if !form.groups.is_empty() {
        let options = form
            .groups
            .iter()
            .map(|(value, label)| {
                // `<option value="">Label</option>`: the value is the label text.
                let label = label.trim();
                let value = match attr(value) {
                    v if v.is_empty() => label.to_string(),
                    v => v,
                };
                let label = if label.is_empty() {
                    value.clone()
                } else {
                    label.to_string()
                };
                SelectOption { value, label }
            })
            .collect();
        want.push(field(GROUP_FIELD, "Group:", FieldKind::Select(options)));
    }
    assert_eq!(f.fields, want, "{xml}");
}

fn complete_round_trip(selector: u8, banner: &str) {
    let banner = (selector & 1 != 0).then_some(banner);
    let xml = complete_xml(banner);
    let doc =
        parse_auth_document(&xml).unwrap_or_else(|e| panic!("complete_xml does not parse: {e}"));
    assert_eq!(doc.doc_type.as_deref(), Some("complete"));
    assert_eq!(doc.form.id, "success");
    assert_eq!(doc.form.title.as_deref(), Some("SSL VPN Service"));
    assert_eq!(doc.form.banner.as_deref(), banner.map(str::trim));
    assert!(doc.form.fields.is_empty());
}

fn init_round_trip(selector: u8, version: &str, group: &str, access: &str, device: &str) {
    let group = (selector & 8 != 0).then_some(group);
    let xml = init_xml(&identity(version, device), access, group);
    let got = parse_client_auth(xml.as_bytes());
    let want = ClientAuth {
        is_init: true,
        username: None,
        password: None,
        group: group.map(bounded),
        ..ClientAuth::default()
    };
    assert_eq!(got, want, "{xml}");
}

fn reply_round_trip(version: &str, device: &str, answers: &[(String, String)]) {
    let xml = reply_xml(&identity(version, device), None, answers);
    let got = parse_client_auth(xml.as_bytes());
    let elements = reply_elements(answers);
    let first = |pick: &dyn Fn(&str) -> bool| {
        elements
            .iter()
            .find(|(tag, _)| pick(tag))
            .map(|(_, v)| bounded(v))
    };
    let offers = |method: &str| {
        elements
            .iter()
            .any(|(tag, v)| *tag == "auth-method" && bounded(v).trim() == method)
    };
    let want = ClientAuth {
        is_init: false,
        username: first(&|t| t == "username"),
        password: first(&|t| t.starts_with("password") || t.ends_with("_password")),
        group: first(&|t| t == "group-select"),
        offers_sso: offers("single-sign-on-v2"),
        offers_external_browser: offers("single-sign-on-external-browser"),
        sso_token: first(&|t| t == "sso-token"),
    };
    assert_eq!(got, want, "{xml}");
}
