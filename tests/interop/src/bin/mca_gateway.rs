//! `mca_gateway`: an AnyConnect login with multiple-certificate authentication, enough for
//! openconnect's `--mca-certificate` to get a cookie. It is test code: no tunnel, any
//! number of logins, nothing kept.
//!
//! ```text
//! mca_gateway --listen ADDR:PORT --cert PEM --key PEM --ca PEM [--log FILE]
//! ```
//!
//! An XML `init` gets a `<multiple-client-cert-request>` (SHA-256/384/512) with
//! `<cert-authenticated/>`; one that does not offer `<auth-method>multiple-cert</auth-method>`
//! is logged as such. The `auth-reply` must carry the `1M` chain sent via the TLS
//! protocol and the `1U` chain: a PKCS#7 whose first certificate the `--ca` issued, and
//! that certificate's key's signature, with the hash it names, over the exact request
//! body the gateway sent. Then it answers the `complete` document with a session token;
//! anything else gets `403` and a log line saying what was wrong.

use std::path::PathBuf;
use std::process::ExitCode;

use ferroconnect_interop::gateway::{self, log_line, text, LoginPages};
use oc_proto::http::server::{RequestLimits, ServerRequest, ServerResponse};
use openssl::hash::MessageDigest;
use openssl::pkcs7::Pkcs7;
use openssl::sign::Verifier;
use openssl::x509::X509;

macro_rules! log {
    ($($arg:tt)*) => { log_line(format_args!($($arg)*)) };
}

const REQUEST: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
    type=\"auth-request\" aggregate-auth-version=\"2\"><multiple-client-cert-request>\
    <hash-algorithm>sha256</hash-algorithm><hash-algorithm>sha384</hash-algorithm>\
    <hash-algorithm>sha512</hash-algorithm></multiple-client-cert-request>\
    <cert-authenticated></cert-authenticated></config-auth>";

const COMPLETE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
    type=\"complete\" aggregate-auth-version=\"2\"><session-id>4242</session-id>\
    <session-token>MCA-SESSION-TOKEN-4242</session-token><auth id=\"success\"/><config/>\
    </config-auth>";

struct Gateway {
    ca: X509,
}

impl LoginPages for Gateway {
    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_body_bytes: 64 * 1024,
            ..RequestLimits::default()
        }
    }

    fn page(&self, request: &ServerRequest) -> Result<ServerResponse, String> {
        let body = String::from_utf8_lossy(&request.body);
        let document = if body.contains("type=\"init\"") {
            if !body.contains("<auth-method>multiple-cert</auth-method>") {
                log!("the init does not offer multiple-cert");
            }
            log!("asked for the second certificate");
            REQUEST
        } else {
            self.check_reply(&body)?;
            log!("login complete");
            COMPLETE
        };
        Ok(text(200, "OK", "text/xml", document))
    }
}

impl Gateway {
    fn check_reply(&self, body: &str) -> Result<(), String> {
        if !body.contains("<client-cert-chain cert-store=\"1M\"><client-cert-sent-via-protocol/>") {
            return Err("no 1M chain sent via the protocol".into());
        }
        let pkcs7 = element(
            body,
            "<client-cert cert-format=\"pkcs7\">",
            "</client-cert>",
        )?;
        let hash = element(body, "hash-algorithm-chosen=\"", "\"")?;
        let signature = element(
            body,
            &format!("hash-algorithm-chosen=\"{hash}\">"),
            "</client-cert-auth-signature>",
        )?;
        let der = openssl::base64::decode_block(&pkcs7.replace(['\n', '\r'], ""))
            .map_err(|e| format!("the PKCS#7 is not base64: {e}"))?;
        let p7 = Pkcs7::from_der(&der).map_err(|e| format!("not a PKCS#7: {e}"))?;
        let cert = p7
            .signed()
            .and_then(|s| s.certificates())
            .and_then(|c| c.iter().next().map(|c| c.to_owned()))
            .ok_or("the PKCS#7 holds no certificate")?;
        let issued = self
            .ca
            .public_key()
            .and_then(|k| cert.verify(&k))
            .unwrap_or(false);
        if !issued {
            return Err("the second certificate is not the CA's".into());
        }
        let digest = match hash.as_str() {
            "sha256" => MessageDigest::sha256(),
            "sha384" => MessageDigest::sha384(),
            "sha512" => MessageDigest::sha512(),
            other => return Err(format!("hash {other} was not offered")),
        };
        let signature = openssl::base64::decode_block(&signature.replace(['\n', '\r'], ""))
            .map_err(|e| format!("the signature is not base64: {e}"))?;
        let key = cert.public_key().map_err(|e| e.to_string())?;
        let valid = Verifier::new(digest, &key)
            .and_then(|mut v| {
                v.update(REQUEST.as_bytes())?;
                v.verify(&signature)
            })
            .unwrap_or(false);
        match valid {
            true => Ok(()),
            false => Err(format!(
                "the {hash} signature over the request does not verify"
            )),
        }
    }
}

/// The text between `open` and the next `close`.
fn element(body: &str, open: &str, close: &str) -> Result<String, String> {
    let start = body.find(open).ok_or_else(|| format!("no {open}"))? + open.len();
    let len = body
        .get(start..)
        .and_then(|rest| rest.find(close))
        .ok_or_else(|| format!("no {close}"))?;
    Ok(body.get(start..start + len).unwrap_or_default().to_string())
}

const USAGE: &str =
    "usage: mca_gateway --listen ADDR:PORT --cert PEM --key PEM --ca PEM [--log FILE]";

fn main() -> ExitCode {
    gateway::login_only_main("mca_gateway", USAGE, |options| {
        let mut ca = None;
        for (name, value) in &options.own {
            match name.as_str() {
                "--ca" => ca = value.as_deref().map(PathBuf::from),
                other => return Err(gateway::unknown_option(other)),
            }
        }
        let ca = ca.ok_or("--ca is required")?;
        let pem = std::fs::read(&ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        let ca = X509::from_pem(&pem).map_err(|e| format!("{}: {e}", ca.display()))?;
        Ok(Gateway { ca })
    })
}
