#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::*;

/// A stand-in signer: the "signature" is SHA-256 of the key id and the input, so a token
/// verifies only with the key it was made for and only unchanged.
struct FakeCheck;

fn fake_signature(kid: &str, input: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(kid.as_bytes());
    h.update(input);
    h.finalize().to_vec()
}

impl SignatureCheck for FakeCheck {
    fn verify(&self, key: &Jwk, _: Alg, input: &[u8], signature: &[u8]) -> Result<(), String> {
        let kid = key.kid.as_deref().unwrap_or_default();
        (fake_signature(kid, input) == signature)
            .then_some(())
            .ok_or_else(|| "bad signature".to_owned())
    }
}

const NOW: u64 = 1_800_000_000;

fn token(header: &serde_json::Value, claims: &serde_json::Value, sign_kid: &str) -> String {
    let input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string())
    );
    let sig = fake_signature(sign_kid, input.as_bytes());
    format!("{input}.{}", B64URL.encode(sig))
}

fn good_claims() -> serde_json::Value {
    json!({"aud": "SomeAudience", "iss": "SomeIssuer", "iat": NOW - 60, "nbf": NOW - 60,
           "exp": NOW + 3600, "preferred_username": "SomeUser"})
}

fn header(alg: &str, kid: &str) -> serde_json::Value {
    json!({"typ": "JWT", "alg": alg, "kid": kid})
}

fn settings() -> OidcSettings {
    OidcSettings::parse(
        br#"{"openid_configuration_url": "file://localhost/etc/oidc/discovery.json",
             "user_name_claim": "preferred_username",
             "required_claims": {"aud": "SomeAudience", "iss": "SomeIssuer"},
             "minimum_jwk_refresh_time": 0}"#,
        "oidc.json",
    )
    .unwrap()
}

fn keys() -> KeySet {
    let x = B64URL.encode([1u8; 32]);
    let y = B64URL.encode([2u8; 32]);
    let doc = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "k1", "x": x, "y": y, "use": "sig"},
        {"kty": "RSA", "kid": "r1", "n": B64URL.encode([0xc5u8; 256]), "e": "AQAB", "alg": "RS256"},
        {"kty": "RSA", "kid": "enc", "n": "AQAB", "e": "AQAB", "use": "enc"},
        {"kty": "oct", "kid": "secret", "k": "AAAA"},
        {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "!!", "y": y}
    ]});
    let (set, skipped) = KeySet::parse(doc.to_string().as_bytes(), "keys.json", NOW - 10).unwrap();
    assert_eq!(set.keys.len(), 2, "{set:?}");
    let skipped: Vec<_> = skipped.iter().map(|s| s.kid.clone().unwrap()).collect();
    assert_eq!(skipped, ["secret", "broken"]);
    set
}

fn verify(token: &str) -> Result<Verified, OidcError> {
    verify_token(token, &settings(), &keys(), NOW, &FakeCheck)
}

#[test]
fn a_good_token_names_its_user() {
    let t = token(&header("ES256", "k1"), &good_claims(), "k1");
    let v = verify(&t).unwrap();
    assert_eq!(v.user, "SomeUser");
    assert_eq!(v.expires, NOW + 3600);
}

#[test]
fn upstream_failure_cases_are_refused_for_the_right_reason() {
    type Expect = fn(&OidcError) -> bool;
    let mut cases: Vec<(String, Expect)> = Vec::new();
    let with = |f: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
        let mut c = good_claims();
        f(c.as_object_mut().unwrap());
        token(&header("ES256", "k1"), &c, "k1")
    };
    cases.push((
        with(&|c| {
            c.insert("exp".into(), json!(NOW - 3600));
        }),
        |e| matches!(e, OidcError::Lifetime(m) if m.contains("expired")),
    ));
    cases.push((
        with(&|c| {
            c.insert("nbf".into(), json!(NOW + 600));
        }),
        |e| matches!(e, OidcError::Lifetime(m) if m.contains("before")),
    ));
    for missing in ["iat", "nbf", "exp"] {
        cases.push((
            with(&|c| {
                c.remove(missing);
            }),
            |e| matches!(e, OidcError::Lifetime(m) if m.starts_with("no ")),
        ));
    }
    for (claim, value) in [("aud", "FOO"), ("iss", "FOO")] {
        cases.push((
            with(&|c| {
                c.insert(claim.into(), json!(value));
            }),
            |e| matches!(e, OidcError::Claim { .. }),
        ));
        cases.push((
            with(&|c| {
                c.remove(claim);
            }),
            |e| matches!(e, OidcError::Claim { .. }),
        ));
    }
    cases.push((
        with(&|c| {
            c.remove("preferred_username");
        }),
        |e| matches!(e, OidcError::UserName(_)),
    ));
    cases.push((
        token(
            &json!({"typ": "FOO", "alg": "ES256", "kid": "k1"}),
            &good_claims(),
            "k1",
        ),
        |e| matches!(e, OidcError::Type(t) if t == "FOO"),
    ));
    cases.push((
        token(&header("FOO", "k1"), &good_claims(), "k1"),
        |e| matches!(e, OidcError::Algorithm(a) if a == "FOO"),
    ));
    cases.push((
        token(&header("ES256", "FOO"), &good_claims(), "FOO"),
        |e| matches!(e, OidcError::UnknownKey { kid } if kid == "FOO"),
    ));
    for (t, expected) in cases {
        let err = verify(&t).unwrap_err();
        assert!(expected(&err), "{err}");
    }
}

#[test]
fn forged_and_mismatched_signatures_are_refused() {
    // Signed for another key than the one it names.
    let t = token(&header("ES256", "k1"), &good_claims(), "r1");
    assert!(matches!(verify(&t), Err(OidcError::Signature { .. })));
    // A changed payload under the original signature.
    let good = token(&header("ES256", "k1"), &good_claims(), "k1");
    let mut claims = good_claims();
    claims["preferred_username"] = json!("root");
    let forged_payload = B64URL.encode(claims.to_string());
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert!(matches!(verify(&forged), Err(OidcError::Signature { .. })));
    // An EC key named with an RSA algorithm; an RSA key fixed to RS256 named with RS512.
    let t = token(&header("RS256", "k1"), &good_claims(), "k1");
    assert!(matches!(verify(&t), Err(OidcError::Signature { why, .. }) if why.contains("fit")));
    let t = token(&header("RS512", "r1"), &good_claims(), "r1");
    assert!(matches!(verify(&t), Err(OidcError::Signature { why, .. }) if why.contains("RS256")));
    // No signature algorithm, or a shared-secret one.
    for alg in ["none", "HS256"] {
        let t = token(&header(alg, "k1"), &good_claims(), "k1");
        assert!(matches!(verify(&t), Err(OidcError::Algorithm(_))));
    }
}

#[test]
fn malformed_tokens_are_refused_with_what_is_wrong() {
    let long = "a".repeat(MAX_TOKEN + 1);
    for (t, says) in [
        ("", "empty"),
        ("abc", "three"),
        ("a.b.c.d", "three"),
        ("!.e30.AA", "base64url"),
        ("e30.!.AA", "base64url"),
        ("e30.e30.!", "base64url"),
        ("bm90IGpzb24.e30.AA", "header is not JSON"),
        ("e30.WzFd.AA", "not a JSON object"),
        ("e30.e30.AA", "no alg"),
        (long.as_str(), "longer"),
    ] {
        match Jwt::parse(t) {
            Err(OidcError::Malformed(m)) => assert!(m.contains(says), "{t:.20}: {m}"),
            other => panic!("{t:.20}: {other:?}"),
        }
    }
    let crit = token(
        &json!({"typ": "JWT", "alg": "ES256", "kid": "k1", "crit": ["exp"]}),
        &good_claims(),
        "k1",
    );
    assert!(matches!(Jwt::parse(&crit), Err(OidcError::Malformed(m)) if m.contains("critical")));
}

#[test]
fn an_audience_array_holding_the_required_one_passes() {
    let mut c = good_claims();
    c["aud"] = json!(["other", "SomeAudience"]);
    let t = token(&header("ES256", "k1"), &c, "k1");
    assert_eq!(verify(&t).unwrap().user, "SomeUser");
    c["aud"] = json!(["other"]);
    let t = token(&header("ES256", "k1"), &c, "k1");
    assert!(matches!(verify(&t), Err(OidcError::Claim { claim, .. }) if claim == "aud"));
}

#[test]
fn a_token_without_kid_uses_a_single_key_only() {
    let no_kid = json!({"typ": "JWT", "alg": "ES256"});
    let t = token(&no_kid, &good_claims(), "k1");
    // Two keys: which one is meant is unknown.
    assert!(matches!(verify(&t), Err(OidcError::UnknownKey { .. })));
    let mut one = keys();
    one.keys.truncate(1);
    assert_eq!(
        verify_token(&t, &settings(), &one, NOW, &FakeCheck)
            .unwrap()
            .user,
        "SomeUser"
    );
}

#[test]
fn key_downloads_for_unknown_keys_wait_for_the_refresh_interval() {
    let set = keys();
    assert!(!set.may_refresh(NOW - 10, 0), "same second");
    assert!(set.may_refresh(NOW - 9, 0));
    assert!(!set.may_refresh(NOW, 900));
    assert!(set.may_refresh(NOW + 891, 900));
}

#[test]
fn settings_are_read_as_ocserv_reads_them() {
    let s = settings();
    assert_eq!(
        s.discovery,
        DocumentUrl::File("/etc/oidc/discovery.json".into())
    );
    assert_eq!(s.refresh_interval, 0);
    let default = OidcSettings::parse(
        br#"{"openid_configuration_url": "https://idp.example/.well-known/openid-configuration",
             "user_name_claim": "sub", "required_claims": {}, "ca_file": "/etc/ca.pem"}"#,
        "f",
    )
    .unwrap();
    assert_eq!(default.refresh_interval, DEFAULT_REFRESH_INTERVAL);
    assert_eq!(default.ca_file.as_deref(), Some("/etc/ca.pem"));
    assert_eq!(
        default.discovery,
        DocumentUrl::Https {
            host: "idp.example".into(),
            port: 443,
            path: "/.well-known/openid-configuration".into()
        }
    );
    for (text, says) in [
        ("", "not valid JSON"),
        ("[]", "JSON object"),
        (
            r#"{"user_name_claim": "sub", "required_claims": {}}"#,
            "missing openid_configuration_url",
        ),
        (
            r#"{"openid_configuration_url": "file:///x", "required_claims": {}}"#,
            "missing user_name_claim",
        ),
        (
            r#"{"openid_configuration_url": "file:///x", "user_name_claim": "sub"}"#,
            "missing required_claims",
        ),
        (
            r#"{"openid_configuration_url": "file:///x", "user_name_claim": "sub", "required_claims": []}"#,
            "must be a JSON object",
        ),
        (
            r#"{"openid_configuration_url": "file:///x", "user_name_claim": 5, "required_claims": {}}"#,
            "non-empty string",
        ),
        (
            r#"{"openid_configuration_url": "file:///x", "user_name_claim": "s", "required_claims": {}, "minimum_jwk_refresh_time": -1}"#,
            "whole number",
        ),
        (
            r#"{"openid_configuration_url": "http://idp.example/x", "user_name_claim": "s", "required_claims": {}}"#,
            "only taken from this host",
        ),
        (
            r#"{"openid_configuration_url": "ftp://idp/x", "user_name_claim": "s", "required_claims": {}}"#,
            "not supported",
        ),
        (
            r#"{"openid_configuration_url": "file://relative", "user_name_claim": "s", "required_claims": {}}"#,
            "absolute path",
        ),
    ] {
        let err = OidcSettings::parse(text.as_bytes(), "oidc.json").unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("oidc.json: "), "{message}");
        assert!(message.contains(says), "{text}: {message}");
    }
}

#[test]
fn document_urls_and_the_discovery_document() {
    assert_eq!(
        DocumentUrl::parse("http://127.0.0.1:8080/keys", "x").unwrap(),
        DocumentUrl::HttpLoopback {
            host: "127.0.0.1".into(),
            port: 8080,
            path: "/keys".into()
        }
    );
    assert_eq!(
        DocumentUrl::parse("https://[2001:db8::1]:8443", "x").unwrap(),
        DocumentUrl::Https {
            host: "2001:db8::1".into(),
            port: 8443,
            path: "/".into()
        }
    );
    for bad in [
        "https://:443/x",
        "https://h:0/",
        "https://[::1/x",
        "https://u@h/",
        "x y",
    ] {
        assert!(DocumentUrl::parse(bad, "x").is_err(), "{bad}");
    }
    let doc = br#"{"issuer": "i", "jwks_uri": "https://idp.example/keys"}"#;
    let discovery = Discovery::parse(doc, "discovery").unwrap();
    assert!(matches!(discovery.jwks_uri, DocumentUrl::Https { path, .. } if path == "/keys"));
    assert_eq!(discovery.authorization_endpoint, None);
    let err = Discovery::parse(br#"{"jwks_uri": 5}"#, "discovery").unwrap_err();
    assert!(err.to_string().contains("no jwks_uri"), "{err}");
    let full = br#"{"jwks_uri": "file:///k", "authorization_endpoint": "https://idp/auth?x=1",
                    "token_endpoint": "https://idp:8443/token"}"#;
    let discovery = Discovery::parse(full, "d").unwrap();
    assert_eq!(
        discovery.authorization_endpoint.as_deref(),
        Some("https://idp/auth?x=1")
    );
    assert!(matches!(
        discovery.token_endpoint,
        Some(DocumentUrl::Https { port: 8443, .. })
    ));
    let bad = br#"{"jwks_uri": "file:///k", "authorization_endpoint": "javascript:alert(1)"}"#;
    assert!(Discovery::parse(bad, "d").is_err());
    assert!(KeySet::parse(b"{}", "keys", 0).is_err());
    assert!(KeySet::parse(b"", "keys", 0).is_err());
}

fn sso_client(secret: Option<&str>) -> SsoClient {
    SsoClient {
        client_id: "vpn client".into(),
        client_secret: secret.map(str::to_owned),
        scope: "openid profile".into(),
    }
}

#[test]
fn the_sso_settings_and_the_authorization_url() {
    let text = br#"{"openid_configuration_url": "file:///d", "user_name_claim": "sub",
                    "required_claims": {}, "sso": {"client_id": "vpn", "client_secret": "s3"}}"#;
    let s = OidcSettings::parse(text, "f").unwrap();
    let sso = s.sso.unwrap();
    assert_eq!(sso.scope, "openid profile");
    assert!(
        !format!("{sso:?}").contains("s3"),
        "the secret stays out of logs"
    );
    for (sso, says) in [
        (r#"{}"#, "needs client_id"),
        (
            r#"{"client_id": "x", "scope": "profile"}"#,
            "must include openid",
        ),
        (r#"{"client_id": 1}"#, "non-empty string"),
        (r#"[]"#, "must be a JSON object"),
    ] {
        let text = format!(
            r#"{{"openid_configuration_url": "file:///d", "user_name_claim": "sub",
                 "required_claims": {{}}, "sso": {sso}}}"#
        );
        let err = OidcSettings::parse(text.as_bytes(), "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{sso}: {err}");
    }
    let url = authorization_url(
        "https://idp/auth?tenant=a",
        &sso_client(None),
        "https://vpn/+CSCOE+/oidc/callback",
        "st&ate",
        "n",
        &pkce_challenge("verifier"),
    );
    assert!(
        url.starts_with("https://idp/auth?tenant=a&response_type=code&"),
        "{url}"
    );
    for part in [
        "client_id=vpn+client",
        "redirect_uri=https%3A%2F%2Fvpn%2F%2BCSCOE%2B%2Foidc%2Fcallback",
        "state=st%26ate",
        "code_challenge_method=S256",
        "scope=openid+profile",
    ] {
        assert!(url.contains(part), "{part} in {url}");
    }
    // RFC 7636 appendix B's example.
    assert_eq!(
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[test]
fn the_token_request_and_its_answer() {
    let (body, auth) = token_request_body("c/1", "https://vpn/cb", &sso_client(Some("p:w")), "v");
    assert_eq!(
        body,
        "grant_type=authorization_code&code=c%2F1&redirect_uri=https%3A%2F%2Fvpn%2Fcb&\
         client_id=vpn+client&code_verifier=v"
    );
    let decoded = B64
        .decode(auth.unwrap().strip_prefix("Basic ").unwrap())
        .unwrap();
    assert_eq!(decoded, b"vpn+client:p%3Aw");
    assert_eq!(token_request_body("c", "r", &sso_client(None), "v").1, None);
    assert_eq!(
        id_token_of(br#"{"id_token": "a.b.c", "access_token": "x"}"#).unwrap(),
        "a.b.c"
    );
    let err = id_token_of(br#"{"error": "invalid_grant", "error_description": "used"}"#);
    assert!(err.unwrap_err().to_string().contains("invalid_grant used"));
    assert!(id_token_of(b"{}").is_err());
    assert!(id_token_of(b"").is_err());
}

#[test]
fn an_id_token_must_carry_this_logins_nonce_and_our_client() {
    let verified = |claims: serde_json::Value| Verified {
        user: "u".into(),
        expires: 0,
        claims: claims.as_object().unwrap().clone(),
    };
    let ok = verified(json!({"nonce": "n1", "aud": ["other", "vpn"]}));
    assert!(check_id_token(&ok, "n1", "vpn").is_ok());
    assert!(check_id_token(&ok, "n2", "vpn").is_err());
    assert!(check_id_token(&ok, "n1", "vpn2").is_err());
    assert!(check_id_token(&verified(json!({"aud": "vpn"})), "n1", "vpn").is_err());
    assert!(check_id_token(&verified(json!({"nonce": "n1"})), "n1", "vpn").is_err());
}

#[test]
fn the_browsers_callback() {
    let cb = parse_callback("/+CSCOE+/oidc/callback?code=a%2Bb&state=s1&session_state=x").unwrap();
    assert_eq!(
        cb,
        SsoCallback {
            state: "s1".into(),
            code: Ok("a+b".into())
        }
    );
    let cb = parse_callback(
        "/+CSCOE+/oidc/callback?state=s1&error=access_denied&error_description=no+way",
    )
    .unwrap();
    assert_eq!(cb.code, Err("access_denied no way".into()));
    let long = format!(
        "/+CSCOE+/oidc/callback?state=s&code={}",
        "a".repeat(MAX_SSO_FIELD + 1)
    );
    for bad in [
        "/other?code=a&state=s",
        "/+CSCOE+/oidc/callback",
        "/+CSCOE+/oidc/callback?code=a",
        "/+CSCOE+/oidc/callback?state=s",
        "/+CSCOE+/oidc/callback?state=s&code=a&code=b",
        "/+CSCOE+/oidc/callback?state=s&code=a%0a",
        "/+CSCOE+/oidc/callback?state=s&code=a&error=e",
        long.as_str(),
    ] {
        assert!(parse_callback(bad).is_err(), "{bad:.60}");
    }
}
