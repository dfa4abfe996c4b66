//! AnyConnect's multiple-certificate authentication (`--mca-certificate`): after the TLS
//! handshake proved the first ("machine") certificate, the server asks for a second
//! ("user") one with `<multiple-client-cert-request>`, listing hash algorithms. The client
//! answers with that certificate's chain (PKCS#7, base64) and its key's signature over the
//! server's whole response, as openconnect does. The signature itself is the shell's
//! (it holds the key).

use super::auth::{escape, xml_header, ClientIdentity};

/// The server's request for the second certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiCertRequest {
    /// The hash algorithms the server accepts, as it named them.
    pub hashes: Vec<String>,
    /// The response body to sign, byte for byte.
    pub challenge: Vec<u8>,
}

/// The hash to sign with: the strongest the server accepts (openconnect's order), by the
/// name the reply gives it.
pub fn choose_hash(hashes: &[String]) -> Option<&'static str> {
    ["sha512", "sha384", "sha256"]
        .into_iter()
        .find(|ours| hashes.iter().any(|h| h.trim().eq_ignore_ascii_case(ours)))
}

/// The `auth-reply` carrying the second certificate: `pkcs7` and `signature` are base64.
pub fn reply_xml(
    id: &ClientIdentity,
    opaque: Option<&str>,
    pkcs7: &str,
    hash: &str,
    signature: &str,
) -> String {
    let mut out = String::new();
    xml_header(&mut out, id, "auth-reply");
    out.push_str("<session-token/><session-id/>");
    if let Some(o) = opaque {
        out.push_str(o);
    }
    out.push_str(&format!(
        "<auth><client-cert-chain cert-store=\"1M\"><client-cert-sent-via-protocol/>\
         </client-cert-chain><client-cert-chain cert-store=\"1U\">\
         <client-cert cert-format=\"pkcs7\">{}</client-cert>\
         <client-cert-auth-signature hash-algorithm-chosen=\"{}\">{}</client-cert-auth-signature>\
         </client-cert-chain></auth></config-auth>",
        escape(pkcs7),
        escape(hash),
        escape(signature)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strongest_hash_the_server_takes() {
        let offered = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(choose_hash(&offered(&["sha256", "SHA384"])), Some("sha384"));
        assert_eq!(choose_hash(&offered(&["sha256", "sha512"])), Some("sha512"));
        assert_eq!(choose_hash(&offered(&["md5", "sha1"])), None);
        assert_eq!(choose_hash(&[]), None);
    }

    #[test]
    fn reply_carries_both_chains() {
        let id = ClientIdentity {
            version: "v9.21".into(),
            device_id: "linux-64".into(),
        };
        let xml = reply_xml(
            &id,
            Some("<opaque is-for=\"sg\"/>"),
            "UEs3",
            "sha512",
            "c2ln",
        );
        assert!(xml.contains("type=\"auth-reply\""));
        assert!(xml.contains("<opaque is-for=\"sg\"/><auth><client-cert-chain cert-store=\"1M\"><client-cert-sent-via-protocol/>"));
        assert!(xml.contains("<client-cert cert-format=\"pkcs7\">UEs3</client-cert>"));
        assert!(xml.contains("hash-algorithm-chosen=\"sha512\">c2ln</client-cert-auth-signature>"));
    }
}
