#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::http::{Header, ResponseHead};

const OCSERV_FORM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<config-auth client="vpn" type="auth-request">
<version who="sg">0.1(1)</version>
<auth id="main">
<banner>Pre &amp; login</banner>
<message>Please enter your username and password.</message>
<form method="post" action="/auth">
<input type="text" name="username" label="Username:" />
<input type="password" name="password" label="Password:" />
<select name="group_list" label="Group:">
<option value="eng">Engineering</option>
<option>sales</option>
</select>
</form></auth>
</config-auth>"#;

fn identity() -> ClientIdentity {
    ClientIdentity {
        version: "v9.01".into(),
        device_id: "linux-64".into(),
    }
}

fn response(status: u16, cookies: &[&str], body: &str) -> Response {
    Response {
        head: ResponseHead {
            status,
            reason: "R".into(),
            headers: cookies
                .iter()
                .map(|c| Header {
                    name: "Set-Cookie".into(),
                    value: c.to_string(),
                })
                .collect(),
        },
        body: body.as_bytes().to_vec(),
    }
}

fn exchange() -> AuthExchange {
    AuthExchange::new(AuthSettings {
        url: ServerUrl::parse("vpn.example:4443/eng").unwrap(),
        user_agent: "UA".into(),
        identity: identity(),
        group: Some("eng".into()),
        xmlpost: true,
        multicert: false,
        external_auth: None,
        bearer_token: None,
        negotiator: None,
    })
}

#[test]
fn a_second_certificate_is_asked_for_and_answered() {
    const ASK: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
        type=\"auth-request\" aggregate-auth-version=\"2\"><multiple-client-cert-request>\
        <hash-algorithm>sha256</hash-algorithm><hash-algorithm>sha384</hash-algorithm>\
        </multiple-client-cert-request><cert-authenticated></cert-authenticated></config-auth>";
    let mut ex = AuthExchange::new(AuthSettings {
        multicert: true,
        external_auth: None,
        bearer_token: None,
        negotiator: None,
        ..exchange().settings
    });
    let init = String::from_utf8(ex.init_request().body).unwrap();
    assert!(init.contains(
        "<capabilities><auth-method>multiple-cert</auth-method></capabilities><group-access>"
    ));
    let step = ex.handle_response(&response(200, &[], ASK)).unwrap();
    let AuthStep::SecondCertificate(request) = step else {
        panic!("{step:?}")
    };
    assert_eq!(request.challenge, ASK.as_bytes());
    assert_eq!(request.hashes, ["sha256", "sha384"]);
    let reply = String::from_utf8(ex.reply_multicert("UEs3", "sha384", "c2ln").body).unwrap();
    assert!(
        reply.contains("<client-cert-chain cert-store=\"1U\">"),
        "{reply}"
    );
    // Without a second certificate, or with no usable hash: errors that say so.
    let mut ex = exchange();
    let refused = ex.handle_response(&response(200, &[], ASK));
    assert_eq!(refused, Err(AuthError::SecondCertificateNeeded));
    let mut ex = AuthExchange::new(AuthSettings {
        multicert: true,
        external_auth: None,
        bearer_token: None,
        negotiator: None,
        ..exchange().settings
    });
    let md5 = ASK.replace("sha256", "md5").replace("sha384", "sha1");
    let refused = ex.handle_response(&response(200, &[], &md5));
    assert_eq!(
        refused,
        Err(AuthError::SecondCertificateHashes("md5, sha1".into()))
    );
}

/// An ASA's single-sign-on form (external-browser mode), as openconnect's parser reads it.
const SSO_FORM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<config-auth client="vpn" type="auth-request" aggregate-auth-version="2">
<opaque is-for="sg"><tunnel-group>sso</tunnel-group></opaque>
<auth id="main"><title>Login</title>
<message>Complete the authentication in your browser.</message>
<sso-v2-login>https://vpn.example:4443/+CSCOE+/saml/sp/login?ctx=42&amp;acsamlcap=v2</sso-v2-login>
<sso-v2-login-final>https://vpn.example:4443/+CSCOE+/saml_ac_login.html</sso-v2-login-final>
<sso-v2-token-cookie-name>acSamlv2Token</sso-v2-token-cookie-name>
<sso-v2-error-cookie-name>acSamlv2Error</sso-v2-error-cookie-name>
<sso-v2-browser-mode>external</sso-v2-browser-mode>
<form><input type="sso" name="sso-token"></input></form>
</auth></config-auth>"#;

#[test]
fn single_sign_on_is_offered_and_its_token_posted() {
    let mut ex = AuthExchange::new(AuthSettings {
        multicert: true,
        external_auth: Some(StrapPublicKeys {
            signing: "U0lHTg==".into(),
            dh: "REg=".into(),
        }),
        ..exchange().settings
    });
    let init = ex.init_request();
    let body = String::from_utf8(init.body.clone()).unwrap();
    assert!(body.contains(
        "<capabilities><auth-method>single-sign-on-v2</auth-method><auth-method>\
         single-sign-on-external-browser</auth-method><auth-method>multiple-cert\
         </auth-method></capabilities><group-access>"
    ));
    for (name, value) in [
        ("X-AnyConnect-STRAP-Pubkey", "U0lHTg=="),
        ("X-AnyConnect-STRAP-DH-Pubkey", "REg="),
    ] {
        assert!(
            init.headers.contains(&(name.into(), value.into())),
            "{name}"
        );
    }
    let step = ex.handle_response(&response(200, &[], SSO_FORM)).unwrap();
    let AuthStep::SingleSignOn { form, login } = step else {
        panic!("{step:?}")
    };
    assert_eq!(form.id, "main");
    assert!(form.fields.is_empty());
    assert_eq!(
        login.login_url,
        "https://vpn.example:4443/+CSCOE+/saml/sp/login?ctx=42&acsamlcap=v2"
    );
    assert_eq!(login.token_cookie.as_deref(), Some("acSamlv2Token"));
    assert_eq!(login.error_cookie.as_deref(), Some("acSamlv2Error"));
    assert!(login.external_browser);
    assert_eq!(login.token_field, "sso-token");
    let reply = ex.reply(&[("sso-token".into(), "T0K3N".into())]);
    let reply = String::from_utf8(reply.body).unwrap();
    assert!(reply.contains("<opaque is-for=\"sg\">"), "{reply}");
    assert!(
        reply.contains("<auth><sso-token>T0K3N</sso-token></auth>"),
        "{reply}"
    );
    // Without the browser mode: the embedded (cookie) mode; without the input: no SSO.
    let embedded = SSO_FORM.replace("<sso-v2-browser-mode>external</sso-v2-browser-mode>", "");
    let doc = parse_auth_document(&embedded).unwrap();
    assert!(!doc.sso.unwrap().external_browser);
    let no_input = SSO_FORM.replace("<input type=\"sso\" name=\"sso-token\"></input>", "");
    assert_eq!(parse_auth_document(&no_input).unwrap().sso, None);
    // Not offered: no capabilities, no keys.
    let init = exchange().init_request();
    assert!(!String::from_utf8(init.body)
        .unwrap()
        .contains("capabilities"));
    assert!(!init.headers.iter().any(|(n, _)| n.contains("STRAP")));
}

#[test]
fn a_host_scan_comes_first_and_its_token_follows_the_login() {
    const SCAN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<config-auth client="vpn" type="auth-request"><auth id="main"><message>Scan</message></auth>
<host-scan><host-scan-ticket>T1</host-scan-ticket><host-scan-token>TOK</host-scan-token>
<host-scan-base-uri>/+CSCOE+/sdesktop/</host-scan-base-uri>
<host-scan-wait-uri>/+CSCOE+/sdesktop/wait.html</host-scan-wait-uri></host-scan></config-auth>"#;
    let mut ex = exchange();
    let init = ex.init_request();
    let step = ex.handle_response(&response(200, &[], SCAN)).unwrap();
    let AuthStep::HostScan(scan) = step else {
        panic!("{step:?}")
    };
    assert_eq!((scan.ticket.as_str(), scan.token.as_str()), ("T1", "TOK"));
    let wait = ex.wait_request(&scan);
    assert_eq!(
        (wait.method, wait.path.as_str()),
        ("GET", "/+CSCOE+/sdesktop/wait.html")
    );
    assert!(wait
        .headers
        .contains(&("Cookie".into(), "sdesktop=TOK".into())));
    let refresh = response(
        200,
        &[],
        "<html><meta http-equiv=\"refresh\" content=\"1\">",
    );
    assert_eq!(ex.wait_response(&refresh), Ok(None));
    let again = ex
        .wait_response(&response(200, &[], "<?xml version=\"1.0\"?><x/>"))
        .unwrap()
        .unwrap();
    assert_eq!((again.path.as_str(), &again.body), ("/eng", &init.body));
    // A second <host-scan> is not run again; the form's reply carries the token.
    let form = OCSERV_FORM.replace("</config-auth>", "<host-scan><host-scan-ticket>T2</host-scan-ticket><host-scan-token>X</host-scan-token><host-scan-base-uri>/b</host-scan-base-uri><host-scan-wait-uri>/w</host-scan-wait-uri></host-scan></config-auth>");
    assert!(matches!(
        ex.handle_response(&response(200, &[], &form)),
        Ok(AuthStep::Form(_))
    ));
    let reply = String::from_utf8(ex.reply(&[("username".into(), "u".into())]).body).unwrap();
    assert!(
        reply.ends_with("</auth><host-scan-token>TOK</host-scan-token></config-auth>"),
        "{reply}"
    );
    // An incomplete <host-scan> is no host scan; a broken wait page is an error.
    let partial = SCAN.replace("<host-scan-ticket>T1</host-scan-ticket>", "");
    assert_eq!(parse_auth_document(&partial).unwrap().host_scan, None);
    assert!(matches!(
        ex.wait_response(&response(200, &[], "plain text")),
        Err(AuthError::HostScan(_))
    ));
}

fn challenge(status: u16, www_authenticate: &[&str]) -> Response {
    let mut resp = response(status, &[], "");
    resp.head.headers = www_authenticate
        .iter()
        .map(|v| Header {
            name: "WWW-Authenticate".into(),
            value: v.to_string(),
        })
        .collect();
    resp
}

#[test]
fn a_bearer_challenge_gets_the_oidc_token_once() {
    let mut ex = AuthExchange::new(AuthSettings {
        bearer_token: Some("eyJhbGciOi.eyJzdWIi.c2ln".into()),
        ..exchange().settings
    });
    let init = ex.init_request();
    assert!(init
        .headers
        .contains(&("X-Support-HTTP-Auth".into(), "true".into())));
    let step = ex.handle_response(&challenge(401, &["Bearer"])).unwrap();
    let AuthStep::Send(retry) = step else {
        panic!("{step:?}")
    };
    assert_eq!(retry.body, init.body);
    assert!(retry.headers.contains(&(
        "Authorization".into(),
        "Bearer eyJhbGciOi.eyJzdWIi.c2ln".into()
    )));
    // The same token refused: an error that says so, not a loop.
    assert_eq!(
        ex.handle_response(&challenge(401, &["Bearer realm=\"vpn\""])),
        Err(AuthError::BearerRejected)
    );
    // A form in between: its reply may take the token again.
    let mut ex = AuthExchange::new(AuthSettings {
        bearer_token: Some("t".into()),
        ..exchange().settings
    });
    ex.init_request();
    assert!(ex.handle_response(&challenge(401, &["Bearer"])).is_ok());
    ex.handle_response(&response(200, &[], OCSERV_FORM))
        .unwrap();
    ex.reply(&[("username".into(), "u".into())]);
    assert!(matches!(
        ex.handle_response(&challenge(401, &["Bearer"])),
        Ok(AuthStep::Send(_))
    ));
    // Without a token, or for methods we do not speak: errors naming them.
    let mut ex = exchange();
    ex.init_request();
    assert!(!ex
        .init_request()
        .headers
        .iter()
        .any(|(n, _)| n == "X-Support-HTTP-Auth"));
    assert_eq!(
        ex.handle_response(&challenge(401, &["Negotiate", "NTLM"])),
        Err(AuthError::HttpAuthMethods("Negotiate, NTLM".into()))
    );
    assert_eq!(
        exchange().handle_response(&challenge(401, &["Bearer"])),
        Err(AuthError::BearerNeeded)
    );
}

#[test]
fn without_xml_posts_the_login_is_a_get_and_form_posts() {
    let mut ex = AuthExchange::new(AuthSettings {
        xmlpost: false,
        ..exchange().settings
    });
    let first = ex.init_request();
    assert_eq!((first.method, first.path.as_str()), ("GET", "/eng"));
    assert!(first.body.is_empty());
    assert!(!first.headers.iter().any(|(n, _)| n == "Content-Type"));
    ex.handle_response(&response(200, &[], OCSERV_FORM))
        .unwrap();
    let answers = [("username".to_string(), "al ice&".to_string())];
    let reply = ex.reply(&answers);
    assert_eq!(reply.method, "POST");
    assert_eq!(
        String::from_utf8(reply.body.clone()).unwrap(),
        "username=al+ice%26"
    );
    assert!(reply.headers.contains(&(
        "Content-Type".into(),
        "application/x-www-form-urlencoded".into()
    )));
}

#[test]
fn parses_ocserv_form() {
    let doc = parse_auth_document(OCSERV_FORM).unwrap();
    assert_eq!(doc.doc_type.as_deref(), Some("auth-request"));
    let f = &doc.form;
    assert_eq!(f.id, "main");
    assert_eq!(f.banner.as_deref(), Some("Pre & login"));
    assert_eq!(f.action.as_deref(), Some("/auth"));
    assert_eq!(f.fields.len(), 3);
    assert_eq!(f.fields[1].kind, FieldKind::Password);
    let FieldKind::Select(opts) = &f.group_field().unwrap().kind else {
        panic!("not a select")
    };
    assert_eq!(
        opts[0],
        SelectOption {
            value: "eng".into(),
            label: "Engineering".into()
        }
    );
    assert_eq!(
        opts[1],
        SelectOption {
            value: "sales".into(),
            label: "sales".into()
        }
    );
}

#[test]
fn opaque_is_kept_verbatim_and_params_fill() {
    let xml = r#"<config-auth type="auth-request"><opaque is-for="sg"><tunnel-group>g</tunnel-group><x a="1"/></opaque>
<auth id="challenge"><message param1="SMS">Enter the %s code</message>
<form><input type="password" name="answer" label="Code:"/><input type="hidden" name="h" value="v"/><input type="submit" name="s"/></form></auth></config-auth>"#;
    let doc = parse_auth_document(xml).unwrap();
    assert_eq!(
        doc.opaque.as_deref(),
        Some(r#"<opaque is-for="sg"><tunnel-group>g</tunnel-group><x a="1"/></opaque>"#)
    );
    assert_eq!(doc.form.message.as_deref(), Some("Enter the SMS code"));
    assert_eq!(doc.form.fields.len(), 2);
    assert_eq!(doc.form.fields[1].value.as_deref(), Some("v"));
}

#[test]
fn malformed_and_foreign_documents() {
    assert!(matches!(
        parse_auth_document("<auth><a></b></auth>"),
        Err(AuthError::BadXml(_))
    ));
    assert_eq!(
        parse_auth_document("<html>login</html>"),
        Err(AuthError::NotXml)
    );
    let many: String = (0..100)
        .map(|i| format!("<input type=\"text\" name=\"f{i}\"/>"))
        .collect();
    let xml = format!("<auth id=\"main\"><form>{many}</form></auth>");
    assert_eq!(
        parse_auth_document(&xml),
        Err(AuthError::TooLarge("fields", 64))
    );
}

#[test]
fn init_request_shape() {
    let mut ex = exchange();
    let req = ex.init_request();
    assert_eq!(req.path, "/eng");
    let body = String::from_utf8(req.body.clone()).unwrap();
    assert!(body.contains(r#"type="init""#));
    assert!(body.contains("<group-access>https://vpn.example:4443/eng</group-access>"));
    assert!(body.contains("<group-select>eng</group-select>"));
    let pad = req
        .headers
        .iter()
        .find(|(n, _)| n == "X-Pad")
        .unwrap()
        .1
        .len();
    assert_eq!((body.len() + pad) % 64, 0);
    assert!(pad >= 1);
}

#[test]
fn full_exchange_to_cookie() {
    let mut ex = exchange();
    ex.init_request();
    let step = ex
        .handle_response(&response(200, &["webvpncontext=ctx; Secure"], OCSERV_FORM))
        .unwrap();
    let AuthStep::Form(form) = step else {
        panic!("expected a form")
    };
    assert_eq!(form.fields[0].name, "username");
    let req = ex.reply(&[
        ("username".into(), "alice<".into()),
        ("password".into(), "pw".into()),
        (GROUP_FIELD.into(), "eng".into()),
    ]);
    assert_eq!(req.path, "/auth");
    assert!(req
        .headers
        .contains(&("Cookie".into(), "webvpncontext=ctx".into())));
    let body = String::from_utf8(req.body).unwrap();
    assert!(body.contains("<auth><username>alice&lt;</username><password>pw</password></auth><group-select>eng</group-select>"));
    let done = r#"<config-auth type="complete"><auth id="success"><banner>Hi</banner></auth><config client="vpn" type="private"><vpn-profile-manifest><vpn rev="1.0"><file type="profile" service-type="user"><uri>/profiles/p.xml</uri><hash type="sha1">AB12</hash></file></vpn></vpn-profile-manifest></config></config-auth>"#;
    let step = ex
        .handle_response(&response(
            200,
            &["webvpn=COOKIE==; Secure", "webvpnc=; expires=Thu"],
            done,
        ))
        .unwrap();
    assert_eq!(
        step,
        AuthStep::Success(AuthSuccess {
            cookie: "COOKIE==".into(),
            banner: Some("Hi".into()),
            message: None,
            profile: Some(ProfileManifest {
                uri: "/profiles/p.xml".into(),
                sha1: "AB12".into()
            })
        })
    );
}

#[test]
fn choosing_another_group_restarts() {
    let mut ex = exchange();
    ex.handle_response(&response(200, &[], OCSERV_FORM))
        .unwrap();
    let req = ex.reply(&[(GROUP_FIELD.into(), "sales".into())]);
    let body = String::from_utf8(req.body).unwrap();
    assert!(body.contains(r#"type="init""#));
    assert!(body.contains("<group-select>sales</group-select>"));
}

#[test]
fn group_asked_by_label_does_not_restart() {
    let mut ex = AuthExchange::new(AuthSettings {
        group: Some("Engineering".into()),
        xmlpost: true,
        ..exchange().settings
    });
    ex.handle_response(&response(200, &[], OCSERV_FORM))
        .unwrap();
    let req = ex.reply(&[(GROUP_FIELD.into(), "eng".into())]);
    let body = String::from_utf8(req.body).unwrap();
    assert!(body.contains(r#"type="auth-reply""#), "{body}");
}

#[test]
fn failures() {
    let mut ex = exchange();
    assert!(matches!(
        ex.handle_response(&response(401, &[], "")),
        Err(AuthError::Rejected { status: 401, .. })
    ));
    let no_cookie = r#"<auth id="success"/>"#;
    assert_eq!(
        ex.handle_response(&response(200, &[], no_cookie)),
        Err(AuthError::NoCookie)
    );
    let err_form = r#"<auth id="main"><error>Certificate Validation Failure</error></auth>"#;
    assert_eq!(
        ex.handle_response(&response(200, &[], err_form)),
        Err(AuthError::Server("Certificate Validation Failure".into()))
    );
    let mut redirect = response(302, &[], "");
    redirect.head.headers.push(Header {
        name: "Location".into(),
        value: "http://plain.example/".into(),
    });
    assert!(matches!(
        ex.handle_response(&redirect),
        Err(AuthError::RedirectRefused(_))
    ));
    let action = OCSERV_FORM.replace("action=\"/auth\"", "action=\"https://other.example/auth\"");
    assert!(matches!(
        ex.handle_response(&response(200, &[], &action)),
        Err(AuthError::ForeignRedirect(_))
    ));
    for _ in 0..20 {
        let _ = ex.handle_response(&response(200, &[], OCSERV_FORM));
    }
    assert_eq!(
        ex.handle_response(&response(200, &[], OCSERV_FORM)),
        Err(AuthError::TooManyRounds(16))
    );
}

#[test]
fn another_server_takes_the_login_over() {
    let mut ex = exchange();
    let init = ex.init_request();
    ex.handle_response(&response(200, &["webvpnlogin=1"], OCSERV_FORM))
        .unwrap();
    let mut redirect = response(302, &[], "");
    redirect.head.headers.push(Header {
        name: "Location".into(),
        value: "https://vpn2.example:4443/eng?lb=1".into(),
    });
    let step = ex.handle_response(&redirect).unwrap();
    let AuthStep::NewServer { url, request } = step else {
        panic!("{step:?}")
    };
    assert_eq!((url.host.as_str(), url.port), ("vpn2.example", 4443));
    assert_eq!(request.path, "/eng?lb=1");
    let body = String::from_utf8(request.body).unwrap();
    assert!(String::from_utf8(init.body)
        .unwrap()
        .contains("type=\"init\""));
    assert!(body.contains("type=\"init\""), "{body}");
    assert!(
        body.contains("<group-access>https://vpn2.example:4443/eng?lb=1</group-access>"),
        "{body}"
    );
    assert!(request
        .headers
        .contains(&("Host".into(), "vpn2.example:4443".into())));
    assert!(!request.headers.iter().any(|(n, _)| n == "Cookie"));
}

#[test]
fn same_host_redirect_is_followed() {
    let mut ex = exchange();
    let mut redirect = response(302, &[], "");
    redirect.head.headers.push(Header {
        name: "Location".into(),
        value: "/+webvpn+/index.html".into(),
    });
    let AuthStep::Send(req) = ex.handle_response(&redirect).unwrap() else {
        panic!()
    };
    assert_eq!(req.path, "/+webvpn+/index.html");
}

#[test]
fn reply_drops_hostile_names() {
    let body = reply_xml(
        &identity(),
        None,
        &[
            ("a><b".into(), "x".into()),
            ("verify_pin".into(), "1".into()),
            ("answer".into(), "42".into()),
        ],
    );
    assert!(body.contains("<auth><password>42</password></auth>"));
}

proptest::proptest! {
    #[test]
    fn parser_never_panics(s in ".{0,400}") {
        let _ = parse_auth_document(&s);
    }
}
