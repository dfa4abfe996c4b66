//! Fortinet's login answers and XML configuration from a hostile gateway.
//!
//! Byte 0 picks the HTTP status of the login answer (`% 4`: 200, 401, 405, 500) and byte 1
//! whether a `Set-Cookie: SVPNCOOKIE=...` header comes with it (the next 16 bytes its
//! value); the rest is the body, also read as the XML configuration. Neither reader may
//! panic; a configuration it accepts has an address; a challenge (token or HTML) has one
//! code field (the token field), the first password field. The whole input is also a DTLS greeting record
//! either way: a cookie read from a client hello makes the same hello again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::form::{AuthForm, FieldKind};
use oc_proto::fortinet::{
    challenge_answers, dtls_client_hello, login_response, parse_config, read_dtls_client_hello,
    read_dtls_server_hello, LoginStep,
};
use oc_proto::http::{Response, ResponseHead};

fuzz_target!(|data: &[u8]| {
    let Some((&[status, cookie], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let (value, body) = rest.split_at(rest.len().min(16));
    let set_cookie = format!("SVPNCOOKIE={}; path=/", String::from_utf8_lossy(value));
    let headers: &[(&str, &str)] = if cookie & 1 == 1 {
        &[("Set-Cookie", set_cookie.as_str())]
    } else {
        &[]
    };
    let resp = Response {
        head: ResponseHead::with_headers([200, 401, 405, 500][usize::from(status % 4)], headers),
        body: body.to_vec(),
    };
    match login_response(&resp) {
        Ok(LoginStep::Challenge { form, echo }) => {
            one_code_field(&form);
            let answers = challenge_answers(vec![("code".into(), String::new())], &echo);
            // An empty code asks for a push: the code, the echoed fields but magic, ftmpush.
            let kept = echo.iter().filter(|(k, _)| k != "magic").count();
            assert_eq!(answers.len(), kept + 2);
            assert!(!answers.iter().any(|(k, _)| k == "magic"));
        }
        Ok(LoginStep::HtmlForm(form)) => one_code_field(&form),
        _ => {}
    }
    if let Ok(config) = parse_config(&String::from_utf8_lossy(body)) {
        assert!(config.ip.ipv4.is_some() || config.ip.ipv6.is_some());
    }
    let _ = read_dtls_server_hello(data);
    if let Some(cookie) = read_dtls_client_hello(data) {
        assert_eq!(dtls_client_hello(cookie), data);
    }
});

/// A second factor's form has one code field (the token field): the first password field,
/// when there is one.
fn one_code_field(form: &AuthForm) {
    let codes = form.fields.iter().filter(|f| f.token).count();
    assert_eq!(codes, 1, "a second factor has one code field");
    let first_secret = form
        .fields
        .iter()
        .find(|f| matches!(f.kind, FieldKind::Password));
    assert!(first_secret.is_some_and(|f| f.token));
}
