use super::*;
use crate::client_proxy::http_connect::{HttpConnect, HttpStep};

const FRESH: Fresh = Fresh {
    random: [0x5a; 16],
    unix_time: 1_700_000_000,
};

fn alice() -> Option<Credentials> {
    Some(Credentials {
        user: "alice".into(),
        password: "s3cret".into(),
    })
}

const CONNECT: RequestLine<'static> = RequestLine {
    method: "CONNECT",
    uri: "vpn.example:443",
};

/// A parameter of an Authorization value (its `name=value` list parses as a challenge's).
fn param(value: &str, name: &str) -> Option<String> {
    let answer = parse_challenges(value).into_iter().next()?;
    answer.param(name).map(str::to_string)
}

#[test]
fn challenges_in_one_header_or_many() {
    let parsed = parse_challenges(
        r#"Basic realm="squid, proxy", Digest realm="r", nonce="a\"b", qop="auth,auth-int", NTLM, Negotiate YII=="#,
    );
    let schemes: Vec<&str> = parsed.iter().map(|c| c.scheme.as_str()).collect();
    assert_eq!(schemes, ["Basic", "Digest", "NTLM", "Negotiate"]);
    assert_eq!(parsed[0].param("realm"), Some("squid, proxy"));
    assert_eq!(parsed[1].param("nonce"), Some("a\"b"));
    assert_eq!(parsed[1].param("qop"), Some("auth,auth-int"));
    assert_eq!(parsed[3].token68.as_deref(), Some("YII=="));
    let parsed = parse_challenges("Digest REALM = x ,NONCE=y,algorithm=MD5-sess");
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].param("realm"), Some("x"));
    assert_eq!(parsed[0].param("algorithm"), Some("MD5-sess"));
    for junk in ["", ",,, ", "\"", "=x", "Basic realm=\"unterminated"] {
        let _ = parse_challenges(junk);
    }
    assert!(parse_challenges("=x").is_empty());
}

/// RFC 2617, section 3.5.
#[test]
fn digest_rfc2617_vector() {
    let challenge = parse_challenges(
        r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
    );
    let creds = Credentials {
        user: "Mufasa".into(),
        password: "Circle Of Life".into(),
    };
    let request = RequestLine {
        method: "GET",
        uri: "/dir/index.html",
    };
    let value = digest_authorization(&challenge[0], &creds, request, "0a4f113b", 1).unwrap();
    assert!(
        value.contains(r#"response="6629fae49393a05397450978507c4ef1""#),
        "{value}"
    );
    assert!(
        value.contains("qop=auth, nc=00000001, cnonce=\"0a4f113b\""),
        "{value}"
    );
    assert!(
        value.contains(r#"opaque="5ccc069c403ebaf9f0171e9517f40e41""#),
        "{value}"
    );
}

/// RFC 7616, section 3.9.1: the same request answered with MD5 and SHA-256.
#[test]
fn digest_rfc7616_vectors() {
    let creds = Credentials {
        user: "Mufasa".into(),
        password: "Circle of Life".into(),
    };
    let request = RequestLine {
        method: "GET",
        uri: "/dir/index.html",
    };
    let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    for (algorithm, expected) in [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        (
            "SHA-256",
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ] {
        let header = format!(
            r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#
        );
        let challenge = parse_challenges(&header);
        let value = digest_authorization(&challenge[0], &creds, request, cnonce, 1).unwrap();
        assert_eq!(
            param(&value, "response").as_deref(),
            Some(expected),
            "{algorithm}: {value}"
        );
    }
}

#[test]
fn digest_without_qop_and_unknown_algorithms() {
    let creds = alice().unwrap();
    let old = parse_challenges(r#"Digest realm="r", nonce="n""#);
    let value = digest_authorization(&old[0], &creds, CONNECT, "c", 1).unwrap();
    assert!(
        !value.contains("qop=") && !value.contains("cnonce"),
        "{value}"
    );
    for header in [
        r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#,
        r#"Digest realm="r", nonce="n", qop="auth-conf""#,
        r#"Digest realm="r""#,
    ] {
        let c = parse_challenges(header);
        assert_eq!(
            digest_authorization(&c[0], &creds, CONNECT, "c", 1),
            None,
            "{header}"
        );
    }
}

#[test]
fn basic_must_be_named() {
    let offered = parse_challenges(r#"Basic realm="p""#);
    let mut auth = ProxyAuth::new(AllowedMethods::default(), alice());
    assert_eq!(
        auth.answer(&offered, CONNECT, &FRESH),
        Err(ProxyError::BasicDisabled)
    );
    let allowed = AllowedMethods::parse("basic").unwrap();
    let mut auth = ProxyAuth::new(allowed, alice());
    assert_eq!(
        auth.answer(&offered, CONNECT, &FRESH).unwrap(),
        "Basic YWxpY2U6czNjcmV0"
    );
    // The same challenge again: the credentials were wrong, and Basic is not retried.
    assert_eq!(
        auth.answer(&offered, CONNECT, &FRESH),
        Err(ProxyError::Rejected { method: "Basic" })
    );
    let mut auth = ProxyAuth::new(allowed, None);
    assert_eq!(
        auth.answer(&offered, CONNECT, &FRESH),
        Err(ProxyError::NoCredentials { method: "Basic" })
    );
}

#[test]
fn ntlm_then_digest_then_basic_then_nothing() {
    let offered = [
        parse_challenges(r#"Basic realm="p""#),
        parse_challenges(r#"Digest realm="p", nonce="n1", qop="auth""#),
        parse_challenges("NTLM"),
    ]
    .concat();
    let allowed = AllowedMethods::parse("Basic,DIGEST,ntlm").unwrap();
    let mut auth = ProxyAuth::new(allowed, alice());
    // NTLM's NEGOTIATE, answered by a bare NTLM challenge again: NTLM failed.
    assert!(auth
        .answer(&offered, CONNECT, &FRESH)
        .unwrap()
        .starts_with("NTLM TlRMTVNTUAAB"));
    for next in ["Digest ", "Basic "] {
        assert!(auth
            .answer(&offered, CONNECT, &FRESH)
            .unwrap()
            .starts_with(next));
    }
    assert_eq!(
        auth.answer(&offered, CONNECT, &FRESH),
        Err(ProxyError::Rejected { method: "Basic" })
    );
    let only_negotiate = parse_challenges("Negotiate");
    let mut auth = ProxyAuth::new(AllowedMethods::default(), alice());
    let e = auth.answer(&only_negotiate, CONNECT, &FRESH).unwrap_err();
    assert_eq!(
        e.to_string(),
        "proxy requires authentication and offers no method we may use (offered: Negotiate; \
         allowed by --proxy-auth: Negotiate, NTLM, Digest)"
    );
    assert!(matches!(
        AllowedMethods::parse("basic,kerberos"),
        Err(ProxyError::UnknownMethod(m)) if m == "kerberos"
    ));
}

/// A stand-in for GSSAPI: SPNEGO tokens naming the host, NTLM's NEGOTIATE and an
/// AUTHENTICATE that echoes the CHALLENGE; or no credentials at all.
pub(crate) struct FakeGss(pub bool);

struct FakeContext {
    mechanism: Mechanism,
    host: String,
}

impl Negotiator for FakeGss {
    fn start(&self, mechanism: Mechanism, host: &str) -> Result<Box<dyn SecurityContext>, String> {
        match self.0 {
            true => Ok(Box::new(FakeContext {
                mechanism,
                host: host.to_string(),
            })),
            false => Err("No Kerberos credentials available".into()),
        }
    }
}

impl SecurityContext for FakeContext {
    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, String> {
        Ok(match (self.mechanism, input) {
            (Mechanism::Spnego, _) => format!("ticket for HTTP@{}", self.host).into_bytes(),
            (Mechanism::Ntlm, None) => b"NEGOTIATE".to_vec(),
            (Mechanism::Ntlm, Some(challenge)) => [b"AUTHENTICATE:", challenge].concat(),
        })
    }
}

/// NTLM with no password in the URL: the desktop's credentials, through two rounds.
#[test]
fn ntlm_single_sign_on() {
    let handle = NegotiatorHandle(std::sync::Arc::new(FakeGss(true)));
    let mut auth =
        ProxyAuth::new(AllowedMethods::default(), None).with_negotiator(handle, "proxy.example");
    let offered = parse_challenges("NTLM");
    let negotiate = auth.answer(&offered, CONNECT, &FRESH).unwrap();
    assert_eq!(negotiate, format!("NTLM {}", BASE64.encode("NEGOTIATE")));
    let challenge = parse_challenges(&format!("NTLM {}", BASE64.encode("CHALLENGE")));
    let authenticate = auth.answer(&challenge, CONNECT, &FRESH).unwrap();
    assert_eq!(
        authenticate,
        format!("NTLM {}", BASE64.encode("AUTHENTICATE:CHALLENGE"))
    );
    assert_eq!(
        auth.answer(&offered, CONNECT, &FRESH),
        Err(ProxyError::Rejected { method: "NTLM" })
    );
}

#[test]
fn negotiate_comes_first_and_falls_back() {
    let handle = |ok| NegotiatorHandle(std::sync::Arc::new(FakeGss(ok)));
    let offered = parse_challenges("Negotiate, Digest realm=\"r\", nonce=\"n\"");
    let mut auth = ProxyAuth::new(AllowedMethods::default(), alice())
        .with_negotiator(handle(true), "proxy.example");
    let value = auth.answer(&offered, CONNECT, &FRESH).unwrap();
    assert_eq!(
        value,
        format!(
            "Negotiate {}",
            BASE64.encode("ticket for HTTP@proxy.example")
        )
    );
    // Refused: the next method.
    assert!(auth
        .answer(&offered, CONNECT, &FRESH)
        .unwrap()
        .starts_with("Digest "));
    // No ticket: the next method at once; with nothing else, the reason.
    let mut auth = ProxyAuth::new(AllowedMethods::default(), alice())
        .with_negotiator(handle(false), "proxy.example");
    assert!(auth
        .answer(&offered, CONNECT, &FRESH)
        .unwrap()
        .starts_with("Digest "));
    let mut auth = ProxyAuth::new(AllowedMethods::default(), None)
        .with_negotiator(handle(false), "proxy.example");
    let e = auth
        .answer(&parse_challenges("Negotiate"), CONNECT, &FRESH)
        .unwrap_err();
    assert_eq!(
        e,
        ProxyError::Negotiate("No Kerberos credentials available".into())
    );
    // Not allowed by --proxy-auth: not asked for.
    let mut auth = ProxyAuth::new(AllowedMethods::parse("digest").unwrap(), alice())
        .with_negotiator(handle(true), "proxy.example");
    assert!(auth
        .answer(&offered, CONNECT, &FRESH)
        .unwrap()
        .starts_with("Digest "));
}

/// NEGOTIATE, then the proxy's CHALLENGE answered with AUTHENTICATE; a third 407 means
/// the credentials were refused.
#[test]
fn ntlm_handshake() {
    use base64::Engine;
    let mut type2 = b"NTLMSSP\0\x02\0\0\0".to_vec();
    type2.extend_from_slice(&[0; 8]);
    type2.extend_from_slice(&0x0000_8201u32.to_le_bytes());
    type2.extend_from_slice(&[0x11; 8]);
    type2.extend_from_slice(&[0; 16]);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&type2);
    let challenge = parse_challenges(&format!("NTLM {encoded}"));
    let bare = parse_challenges("NTLM");
    let mut auth = ProxyAuth::new(AllowedMethods::default(), alice());
    assert!(auth
        .answer(&bare, CONNECT, &FRESH)
        .unwrap()
        .starts_with("NTLM "));
    let answer = auth.answer(&challenge, CONNECT, &FRESH).unwrap();
    let message = base64::engine::general_purpose::STANDARD
        .decode(answer.strip_prefix("NTLM ").unwrap())
        .unwrap();
    assert_eq!(&message[..12], b"NTLMSSP\0\x03\0\0\0");
    assert_eq!(
        auth.answer(&bare, CONNECT, &FRESH),
        Err(ProxyError::Rejected { method: "NTLM" })
    );
    let mut auth = ProxyAuth::new(AllowedMethods::default(), None);
    assert_eq!(
        auth.answer(&bare, CONNECT, &FRESH),
        Err(ProxyError::NoCredentials { method: "NTLM" })
    );
}

#[test]
fn stale_digest_nonce_is_retried_with_a_new_count() {
    let first = parse_challenges(r#"Digest realm="p", nonce="n1", qop="auth""#);
    let stale = parse_challenges(r#"Digest realm="p", nonce="n2", qop="auth", stale=TRUE"#);
    let mut auth = ProxyAuth::new(AllowedMethods::default(), alice());
    let a = auth.answer(&first, CONNECT, &FRESH).unwrap();
    let b = auth.answer(&stale, CONNECT, &FRESH).unwrap();
    assert!(a.contains("nonce=\"n1\"") && b.contains("nonce=\"n2\""));
    assert!(b.contains("nc=00000001"), "{b}");
    assert_eq!(
        auth.answer(&first, CONNECT, &FRESH),
        Err(ProxyError::Rejected { method: "Digest" })
    );
}

fn reply(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

#[test]
fn connect_request_and_digest_round_on_the_same_connection() {
    let auth = ProxyAuth::new(AllowedMethods::default(), alice());
    let mut c = HttpConnect::new("fd00::5", 8443, "Open AnyConnect VPN Agent v9.21", auth);
    let first = String::from_utf8(c.request()).unwrap();
    assert!(first.starts_with("CONNECT [fd00::5]:8443 HTTP/1.1\r\nHost: [fd00::5]:8443\r\n"));
    assert!(!first.contains("Proxy-Authorization"));
    let challenge = reply(
        "HTTP/1.1 407 Proxy Authentication Required\nProxy-Authenticate: Digest realm=\"p\", nonce=\"xyz\", qop=\"auth\"\nContent-Length: 5\n\nabcde",
    );
    let (head, body) = challenge.split_at(challenge.len() - 3);
    assert_eq!(c.feed(head, &FRESH).unwrap(), HttpStep::NeedMore);
    assert_eq!(
        c.feed(body, &FRESH).unwrap(),
        HttpStep::Retry { reconnect: false }
    );
    let second = String::from_utf8(c.request()).unwrap();
    assert!(
        second.contains("Proxy-Authorization: Digest username=\"alice\""),
        "{second}"
    );
    assert!(second.contains("uri=\"[fd00::5]:8443\""), "{second}");
    let ok = reply("HTTP/1.1 200 Connection established\n\n");
    assert_eq!(c.feed(&ok, &FRESH).unwrap(), HttpStep::Connected);
}

#[test]
fn connect_refusals_and_hostile_replies() {
    let new = || {
        let allowed = AllowedMethods::parse("basic").unwrap();
        HttpConnect::new("vpn.example", 443, "ua", ProxyAuth::new(allowed, alice()))
    };
    let mut c = new();
    assert!(String::from_utf8(c.request())
        .unwrap()
        .contains("Host: vpn.example\r\n"));
    let e = c.feed(
        &reply("HTTP/1.1 403 Forbidden\nContent-Length: 0\n\n"),
        &FRESH,
    );
    assert_eq!(
        e.unwrap_err().to_string(),
        "Proxy CONNECT request failed: 403 Forbidden"
    );
    let mut c = new();
    let closing = reply(
        "HTTP/1.0 407 Auth\nProxy-Authenticate: Basic realm=x\nProxy-Connection: close\nContent-Length: 0\n\n",
    );
    assert_eq!(
        c.feed(&closing, &FRESH).unwrap(),
        HttpStep::Retry { reconnect: true }
    );
    assert_eq!(
        c.feed(&closing, &FRESH),
        Err(ProxyError::Rejected { method: "Basic" })
    );
    // A 401 answering credentials: tinyproxy's way of rejecting them. Its 407 has a body
    // that runs to the close, so the next try is on a new connection.
    let mut c = new();
    let tinyproxy = reply("HTTP/1.0 407 Auth\nProxy-Authenticate: Basic realm=x\n\n<html>");
    assert_eq!(
        c.feed(&tinyproxy, &FRESH).unwrap(),
        HttpStep::Retry { reconnect: true }
    );
    let e = c.feed(&reply("HTTP/1.0 401 Unauthorized\n\n"), &FRESH);
    assert_eq!(e, Err(ProxyError::Rejected { method: "Basic" }));
    let mut c = new();
    let e = c.feed(
        &reply("HTTP/1.1 401 Unauthorized\nContent-Length: 0\n\n"),
        &FRESH,
    );
    assert!(
        matches!(e, Err(ProxyError::Refused { status: 401, .. })),
        "{e:?}"
    );
    let mut c = new();
    let e = c.feed(&reply("HTTP/1.1 200 OK\n\n\x16\x03\x01"), &FRESH);
    assert_eq!(e, Err(ProxyError::TrailingData(3)));
    let mut c = new();
    assert!(matches!(
        c.feed(b"SSH-2.0-OpenSSH\r\n\r\n", &FRESH),
        Err(ProxyError::Http(_))
    ));
    let mut c = new();
    assert!(c.feed(&vec![b'a'; 64 * 1024], &FRESH).is_err());
    let mut c = new();
    assert_eq!(c.feed(b"", &FRESH).unwrap(), HttpStep::NeedMore);
    assert!(matches!(c.eof(&FRESH), Err(ProxyError::Http(_))));
    let mut c = new();
    let e = c
        .feed(&reply("HTTP/1.1 407 x\nContent-Length: 0\n\n"), &FRESH)
        .unwrap_err();
    assert!(matches!(e, ProxyError::NoUsableMethod { .. }), "{e}");
}

#[test]
fn a_proxy_that_keeps_asking_is_stopped() {
    let mut c = HttpConnect::new(
        "h",
        443,
        "ua",
        ProxyAuth::new(AllowedMethods::default(), alice()),
    );
    let stale = reply(
        "HTTP/1.1 407 x\nProxy-Authenticate: Digest realm=p, nonce=n, stale=true\nContent-Length: 0\n\n",
    );
    let mut last = Ok(HttpStep::NeedMore);
    for _ in 0..20 {
        last = c.feed(&stale, &FRESH);
        if last.is_err() {
            break;
        }
    }
    assert_eq!(last, Err(ProxyError::TooManyRounds(8)));
}
