//! HTTP Digest access authentication (RFC 7616, and RFC 2617's MD5 forms): MD5, MD5-sess,
//! SHA-256 and SHA-256-sess, with `qop=auth` (or `auth-int` over the empty body a
//! `CONNECT` has), or the old form without qop.

use md5::Md5;
use sha2::{Digest as _, Sha256};

use super::auth::{Challenge, RequestLine};
use super::Credentials;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn hex(self, data: &str) -> String {
        let bytes: Vec<u8> = match self {
            Self::Md5 => Md5::digest(data.as_bytes()).to_vec(),
            Self::Sha256 => Sha256::digest(data.as_bytes()).to_vec(),
        };
        crate::hex::encode(&bytes)
    }
}

/// The `Proxy-Authorization` value answering `challenge`, or `None` when the challenge
/// has no nonce or asks for an algorithm or protection we do not know.
pub(crate) fn digest_authorization(
    challenge: &Challenge,
    credentials: &Credentials,
    request: RequestLine<'_>,
    cnonce: &str,
    nonce_count: u32,
) -> Option<String> {
    let nonce = challenge.param("nonce")?;
    let realm = challenge.param("realm").unwrap_or_default();
    let algorithm_name = challenge.param("algorithm").unwrap_or("MD5");
    let (algorithm, session) = match algorithm_name.to_ascii_uppercase().as_str() {
        "MD5" => (Algorithm::Md5, false),
        "MD5-SESS" => (Algorithm::Md5, true),
        "SHA-256" => (Algorithm::Sha256, false),
        "SHA-256-SESS" => (Algorithm::Sha256, true),
        _ => return None,
    };
    let qop = match challenge.param("qop") {
        None => None,
        Some(list) => {
            let offered: Vec<&str> = list.split(',').map(str::trim).collect();
            if offered.iter().any(|q| q.eq_ignore_ascii_case("auth")) {
                Some("auth")
            } else if offered.iter().any(|q| q.eq_ignore_ascii_case("auth-int")) {
                Some("auth-int")
            } else {
                return None;
            }
        }
    };
    let mut ha1 = algorithm.hex(&format!(
        "{}:{realm}:{}",
        credentials.user, credentials.password
    ));
    if session {
        ha1 = algorithm.hex(&format!("{ha1}:{nonce}:{cnonce}"));
    }
    let ha2 = match qop {
        Some("auth-int") => algorithm.hex(&format!(
            "{}:{}:{}",
            request.method,
            request.uri,
            algorithm.hex("")
        )),
        _ => algorithm.hex(&format!("{}:{}", request.method, request.uri)),
    };
    let nc = format!("{nonce_count:08x}");
    let response = match qop {
        Some(q) => algorithm.hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{q}:{ha2}")),
        None => algorithm.hex(&format!("{ha1}:{nonce}:{ha2}")),
    };
    let mut value = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", algorithm={algorithm_name}, response=\"{response}\"",
        quote(&credentials.user),
        quote(realm),
        quote(nonce),
        quote(request.uri),
    );
    if let Some(opaque) = challenge.param("opaque") {
        value.push_str(&format!(", opaque=\"{}\"", quote(opaque)));
    }
    if let Some(q) = qop {
        value.push_str(&format!(", qop={q}, nc={nc}, cnonce=\"{}\"", quote(cnonce)));
    }
    Some(value)
}

fn quote(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
