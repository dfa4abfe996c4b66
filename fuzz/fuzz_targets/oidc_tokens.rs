//! A client's bearer token and a provider's documents as the security module reads them:
//! the settings file, the discovery document, the key set and the token must never panic,
//! and a token must never pass without a verified signature. With a signature check that
//! accepts everything, the claims checks still run over whatever the bytes hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::oidc::{
    parse_callback, token_request_body, verify_token, Alg, Discovery, DocumentUrl, Jwk, Jwt,
    KeySet, OidcSettings, SignatureCheck,
};

struct Always(bool);

impl SignatureCheck for Always {
    fn verify(&self, _: &Jwk, _: Alg, _: &[u8], _: &[u8]) -> Result<(), String> {
        if self.0 {
            Ok(())
        } else {
            Err("refused".into())
        }
    }
}

const SETTINGS: &[u8] = br#"{"openid_configuration_url": "file:///d", "user_name_claim": "sub",
    "required_claims": {"aud": "a"}, "minimum_jwk_refresh_time": 0}"#;
const KEYS: &[u8] = br#"{"keys": [{"kty": "EC", "crv": "P-256", "kid": "k", "x": "AQ", "y": "AQ"},
    {"kty": "RSA", "n": "AQ", "e": "AQAB"}, {"kty": "OKP", "crv": "Ed25519", "x": "AQ"}]}"#;

fuzz_target!(|data: &[u8]| {
    let _ = OidcSettings::parse(data, "fuzz.json");
    let _ = Discovery::parse(data, "fuzz");
    let _ = oc_proto::oidc::id_token_of(data);
    let _ = KeySet::parse(data, "fuzz", 0);
    let text = String::from_utf8_lossy(data);
    let _ = DocumentUrl::parse(&text, "fuzz");
    let _ = Jwt::parse(&text);
    let _ = parse_callback(&text);
    if let Ok(sso_settings) = OidcSettings::parse(data, "fuzz.json") {
        if let Some(client) = sso_settings.sso {
            // Whatever the code holds, it comes back whole from the form body.
            let (body, _) = token_request_body(&text, "https://vpn/cb", &client, "v");
            let code = body
                .split('&')
                .find_map(|pair| pair.strip_prefix("code="))
                .map(|v| oc_proto::url::percent_decode(v, true));
            assert_eq!(code.as_deref(), Some(text.as_ref()));
        }
    }
    let settings = OidcSettings::parse(SETTINGS, "s").unwrap();
    let (keys, _) = KeySet::parse(KEYS, "k", 0).unwrap();
    assert!(verify_token(&text, &settings, &keys, 1_800_000_000, &Always(false)).is_err());
    let _ = verify_token(&text, &settings, &keys, 1_800_000_000, &Always(true));
});
