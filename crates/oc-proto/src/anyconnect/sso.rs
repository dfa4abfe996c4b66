//! AnyConnect single sign-on (`single-sign-on-v2`): the login happens in a web browser at an
//! identity provider, and the gateway hands the client a token to post back.
//!
//! The gateway's form names the login URL and carries an `<input type="sso">` for the
//! token ([`SsoLogin`]). In the *external browser* mode, the gateway sends the user's browser
//! to `http://localhost:29786/api/sso/<blob>?return=<page>`, where the client listens: the
//! blob ([`EncryptedToken`]) holds the token sealed to the client's ECDH key (announced in
//! `X-AnyConnect-STRAP-DH-Pubkey`): P-256 ECDH, HKDF-SHA256 with the info `AC_ECIES`, and
//! AES-256-GCM. This module parses the callback's request line ([`parse_callback`]) and the
//! blob, and writes the replies to the browser; the keys and ciphers are `oc-tls`'s.

use base64::Engine;
use thiserror::Error;

/// The port the client listens on for the browser's callback (Cisco's choice).
pub const CALLBACK_PORT: u16 = 29786;

/// The longest callback request line taken (openconnect's limit too).
pub const MAX_CALLBACK_LINE: usize = 4096;

/// The HKDF `info` of the token's key.
pub const TOKEN_KDF_INFO: &[u8] = b"AC_ECIES";

/// The sso-v2 parameters of one login form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SsoLogin {
    /// `<sso-v2-login>`: where the browser starts.
    pub login_url: String,
    /// `<sso-v2-login-final>`: the page that ends an embedded-browser login.
    pub final_url: Option<String>,
    /// `<sso-v2-token-cookie-name>`: the cookie holding the token at the final page.
    pub token_cookie: Option<String>,
    /// `<sso-v2-error-cookie-name>`.
    pub error_cookie: Option<String>,
    /// `<sso-v2-browser-mode>external</sso-v2-browser-mode>`: the token comes back through
    /// the callback on [`CALLBACK_PORT`].
    pub external_browser: bool,
    /// The `<input type="sso">` the token is posted in.
    pub token_field: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SsoError {
    #[error("the browser's request is not an HTTP GET line")]
    NotHttp,
    #[error("the browser asked for {0}, not /api/sso/...")]
    NotCallback(String),
    #[error("the SSO blob in the callback URL is not base64: {0}")]
    NotBase64(String),
    #[error("the SSO blob is malformed at byte {at}: {why}")]
    BadBlob { at: usize, why: &'static str },
    #[error("the decrypted SSO token is not alphanumeric")]
    TokenNotAlphanumeric,
    #[error("the SSO token is empty")]
    EmptyToken,
}

/// What the browser's request to `/api/sso/...` carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// The decoded blob ([`EncryptedToken::parse`]).
    pub blob: Vec<u8>,
    /// `?return=`: the page to send the browser to afterwards.
    pub return_url: Option<String>,
}

/// Parses the request line `GET /api/sso/<blob>?return=<url> HTTP/1.x` (without its line
/// end). [`SsoError::NotHttp`] and [`SsoError::NotCallback`] mean a stray request to answer
/// with 404 and ignore, as openconnect does; the other errors too, since only a request
/// that decodes may end the wait.
pub fn parse_callback(line: &[u8]) -> Result<Callback, SsoError> {
    let line = std::str::from_utf8(line).map_err(|_| SsoError::NotHttp)?;
    let target = line
        .strip_prefix("GET ")
        .and_then(|rest| rest.rsplit_once(' '))
        .filter(|(_, version)| version.starts_with("HTTP/1."))
        .map(|(target, _)| target)
        .ok_or(SsoError::NotHttp)?;
    let Some(rest) = target.strip_prefix("/api/sso/") else {
        return Err(SsoError::NotCallback(shorten(target)));
    };
    let (blob, query) = rest.split_once('?').unwrap_or((rest, ""));
    let return_url = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("return="))
        .map(|url| crate::url::percent_decode(url, false));
    let blob = crate::url::percent_decode(blob, false);
    let blob = base64::engine::general_purpose::STANDARD
        .decode(&blob)
        .map_err(|e| SsoError::NotBase64(e.to_string()))?;
    Ok(Callback { blob, return_url })
}

fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

/// The sealed token: the gateway's ephemeral public key (DER SubjectPublicKeyInfo), the
/// GCM tag, the ciphertext and the 12-byte IV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedToken {
    pub server_key: Vec<u8>,
    pub tag: [u8; 12],
    pub ciphertext: Vec<u8>,
    pub iv: [u8; 12],
}

const TAG_PUBKEY: u16 = 1;
const TAG_AEAD_TAG: u16 = 2;
const TAG_CIPHERTEXT: u16 = 3;
const TAG_IV: u16 = 4;

impl EncryptedToken {
    /// Parses the blob: the version word `0x0001`, then type-length-value items (16-bit
    /// big-endian each) for the key (1), tag (2), ciphertext (3) and IV (4), each once.
    pub fn parse(blob: &[u8]) -> Result<Self, SsoError> {
        let bad = |at, why| SsoError::BadBlob { at, why };
        if blob.get(..2) != Some(&[0, 1]) {
            return Err(bad(0, "it does not start with version 1"));
        }
        let mut items: [Option<&[u8]>; 5] = [None; 5];
        let mut at = 2;
        while at < blob.len() {
            let head = blob
                .get(at..at + 4)
                .ok_or(bad(at, "an item header is cut short"))?;
            let kind = u16::from_be_bytes([head[0], head[1]]);
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let value = blob
                .get(at + 4..at + 4 + len)
                .ok_or(bad(at, "an item runs past the end"))?;
            let slot = (TAG_PUBKEY..=TAG_IV)
                .contains(&kind)
                .then(|| items.get_mut(usize::from(kind)))
                .flatten()
                .ok_or(bad(at, "unknown item type"))?;
            if slot.replace(value).is_some() {
                return Err(bad(at, "an item is repeated"));
            }
            at += 4 + len;
        }
        let take = |kind: u16, what| {
            items
                .get(usize::from(kind))
                .copied()
                .flatten()
                .ok_or(bad(blob.len(), what))
        };
        let twelve = |kind, what| -> Result<[u8; 12], SsoError> {
            take(kind, what)?
                .try_into()
                .map_err(|_| bad(blob.len(), "the tag and IV must be 12 bytes"))
        };
        Ok(Self {
            server_key: take(TAG_PUBKEY, "no public key")?.to_vec(),
            tag: twelve(TAG_AEAD_TAG, "no GCM tag")?,
            ciphertext: take(TAG_CIPHERTEXT, "no ciphertext")?.to_vec(),
            iv: twelve(TAG_IV, "no IV")?,
        })
    }

    /// The blob, as a gateway writes it (the inverse of [`EncryptedToken::parse`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0, 1];
        let items: [(u16, &[u8]); 4] = [
            (TAG_PUBKEY, &self.server_key),
            (TAG_AEAD_TAG, &self.tag),
            (TAG_CIPHERTEXT, &self.ciphertext),
            (TAG_IV, &self.iv),
        ];
        for (kind, value) in items {
            let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&kind.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(value.get(..usize::from(len)).unwrap_or(value));
        }
        out
    }

    /// The callback URL a gateway sends the browser to.
    pub fn callback_url(&self, return_url: &str) -> String {
        let blob = base64::engine::general_purpose::STANDARD.encode(self.to_bytes());
        let mut url = format!("http://localhost:{CALLBACK_PORT}/api/sso/");
        crate::form::push_encoded(&mut url, &blob);
        url.push_str("?return=");
        crate::form::push_encoded(&mut url, return_url);
        url
    }
}

/// Checks the decrypted token: alphanumeric only, as openconnect requires (it goes into
/// XML and cookies).
pub fn check_token(token: &[u8]) -> Result<String, SsoError> {
    if token.is_empty() {
        return Err(SsoError::EmptyToken);
    }
    if !token.iter().all(u8::is_ascii_alphanumeric) {
        return Err(SsoError::TokenNotAlphanumeric);
    }
    Ok(String::from_utf8_lossy(token).into_owned())
}

/// The browser's answer once the token is in: a redirect to the gateway's `return` page,
/// or a short page of our own when there is none (or it could break the header).
pub fn callback_reply(return_url: Option<&str>) -> Vec<u8> {
    let usable = return_url.filter(|url| {
        (url.starts_with("https://") || url.starts_with("http://"))
            && !url.chars().any(char::is_control)
    });
    match usable {
        Some(url) => format!(
            "HTTP/1.1 302 Found\r\nLocation: {url}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        )
        .into_bytes(),
        None => page(
            "200 OK",
            "Login complete. You may close this window and return to the VPN client.",
        ),
    }
}

/// The answer to a stray request on the callback port.
pub fn not_found_reply() -> Vec<u8> {
    page("404 Not Found", "Not found.")
}

fn page(status: &str, text: &str) -> Vec<u8> {
    let body = format!("<html><body><p>{text}</p></body></html>\n");
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EncryptedToken {
        EncryptedToken {
            server_key: vec![0x30, 0x59, 1, 2, 3],
            tag: [7; 12],
            ciphertext: b"sealed".to_vec(),
            iv: [9; 12],
        }
    }

    #[test]
    fn blob_round_trip_and_callback_url() {
        let token = sample();
        assert_eq!(EncryptedToken::parse(&token.to_bytes()), Ok(token.clone()));
        let url = token.callback_url("https://gw.example/+CSCOE+/saml_ac_login.html?a=b");
        let line = format!(
            "GET {} HTTP/1.1",
            url.strip_prefix("http://localhost:29786").unwrap()
        );
        let callback = parse_callback(line.as_bytes()).unwrap();
        assert_eq!(
            callback.return_url.as_deref(),
            Some("https://gw.example/+CSCOE+/saml_ac_login.html?a=b")
        );
        assert_eq!(EncryptedToken::parse(&callback.blob), Ok(token));
    }

    #[test]
    fn stray_and_broken_requests() {
        assert_eq!(parse_callback(b""), Err(SsoError::NotHttp));
        assert_eq!(
            parse_callback(b"POST /api/sso/AA HTTP/1.1"),
            Err(SsoError::NotHttp)
        );
        assert_eq!(parse_callback(b"GET /api/sso/AAAA"), Err(SsoError::NotHttp));
        assert_eq!(
            parse_callback(b"GET /favicon.ico HTTP/1.1"),
            Err(SsoError::NotCallback("/favicon.ico".into()))
        );
        assert!(matches!(
            parse_callback(b"GET /api/sso/!!! HTTP/1.1"),
            Err(SsoError::NotBase64(_))
        ));
        let empty = parse_callback(b"GET /api/sso/ HTTP/1.0").unwrap();
        assert!(empty.blob.is_empty() && empty.return_url.is_none());
        assert!(EncryptedToken::parse(&empty.blob).is_err());
    }

    #[test]
    fn malformed_blobs_are_refused() {
        let good = sample().to_bytes();
        let at = |blob: &[u8]| match EncryptedToken::parse(blob) {
            Err(SsoError::BadBlob { why, .. }) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(at(&good[1..]), "it does not start with version 1");
        assert_eq!(at(&good[..good.len() - 1]), "an item runs past the end");
        assert_eq!(at(&good[..good.len() - 14]), "an item header is cut short");
        let mut repeated = good.clone();
        repeated.extend_from_slice(&[0, 4, 0, 1, 0]);
        assert_eq!(at(&repeated), "an item is repeated");
        let mut unknown = good.clone();
        unknown.extend_from_slice(&[0, 9, 0, 0]);
        assert_eq!(at(&unknown), "unknown item type");
        let mut short_tag = vec![0, 1, 0, 2, 0, 11];
        short_tag.extend_from_slice(&[0; 11]);
        short_tag.extend_from_slice(&good[2..2 + 4 + 5]);
        short_tag.extend_from_slice(&good[2 + 9 + 16..]);
        assert_eq!(at(&short_tag), "the tag and IV must be 12 bytes");
        assert_eq!(at(&[0, 1]), "no public key");
        assert_eq!(at(&[0, 1, 0, 1, 0, 0]), "no GCM tag");
    }

    #[test]
    fn tokens_and_replies() {
        assert_eq!(check_token(b"Abc123"), Ok("Abc123".into()));
        assert_eq!(check_token(b""), Err(SsoError::EmptyToken));
        assert_eq!(check_token(b"a<b"), Err(SsoError::TokenNotAlphanumeric));
        let redirect = String::from_utf8(callback_reply(Some("https://gw/done"))).unwrap();
        assert!(redirect.starts_with("HTTP/1.1 302 Found\r\nLocation: https://gw/done\r\n"));
        for odd in [
            None,
            Some("javascript:alert(1)"),
            Some("https://gw/\r\nSet-Cookie: x"),
        ] {
            let page = String::from_utf8(callback_reply(odd)).unwrap();
            assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{odd:?}");
        }
        assert!(String::from_utf8(not_found_reply())
            .unwrap()
            .starts_with("HTTP/1.1 404"));
    }
}
