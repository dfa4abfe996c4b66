//! DTLS cipher negotiation in CONNECT headers.
//!
//! The client lists what it can do in `X-DTLS-CipherSuite` (DTLS 1.0-era names, plus
//! `PSK-NEGOTIATE`) and `X-DTLS12-CipherSuite` (DTLS 1.2 names). The server answers either
//! `PSK-NEGOTIATE` (the key comes from the TLS session) or one legacy suite, which the
//! client then resumes with the master secret it sent (`X-DTLS-Master-Secret`).

/// The token that asks for DTLS with a PSK exported from the TLS session.
pub const PSK_NEGOTIATE: &str = "PSK-NEGOTIATE";

/// What our client offers by default in `X-DTLS-CipherSuite` (openconnect's set, less the
/// suites OpenSSL 3 has dropped).
pub const DEFAULT_DTLS_CIPHERS: &str =
    "PSK-NEGOTIATE:OC-DTLS1_2-AES256-GCM:OC-DTLS1_2-AES128-GCM:AES256-SHA:AES128-SHA";
/// What our client offers by default in `X-DTLS12-CipherSuite`.
pub const DEFAULT_DTLS12_CIPHERS: &str = "AES256-GCM-SHA384:AES128-GCM-SHA256";

/// True when a cipher header lists `PSK-NEGOTIATE` as one of its `:`-separated tokens.
pub fn offers_psk(list: &str) -> bool {
    list.split(':').any(|t| t.trim() == PSK_NEGOTIATE)
}

/// The bulk cipher and MAC of a TLS session, as far as suite matching cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bulk {
    Aes128Gcm,
    Aes256Gcm,
    Aes128CbcSha1,
    Aes256CbcSha1,
    Other,
}

impl Bulk {
    /// From an OpenSSL suite name (`TLS_AES_256_GCM_SHA384`, `ECDHE-RSA-AES128-GCM-SHA256`,
    /// `AES256-SHA`, ...).
    pub fn from_openssl_name(name: &str) -> Self {
        let n = name.to_ascii_uppercase().replace('_', "-");
        if n.contains("AES-128-GCM") || n.contains("AES128-GCM") {
            Bulk::Aes128Gcm
        } else if n.contains("AES-256-GCM") || n.contains("AES256-GCM") {
            Bulk::Aes256Gcm
        } else if n.ends_with("AES128-SHA") {
            Bulk::Aes128CbcSha1
        } else if n.ends_with("AES256-SHA") {
            Bulk::Aes256CbcSha1
        } else {
            Bulk::Other
        }
    }
}

impl Bulk {
    /// The cipher (and MAC, when not an AEAD) as GnuTLS names them in a session
    /// description: `AES-128-GCM`, `AES-128-CBC)-(SHA1`. None for other suites.
    fn gnutls_name(self) -> Option<&'static str> {
        match self {
            Bulk::Aes128Gcm => Some("AES-128-GCM"),
            Bulk::Aes256Gcm => Some("AES-256-GCM"),
            Bulk::Aes128CbcSha1 => Some("AES-128-CBC)-(SHA1"),
            Bulk::Aes256CbcSha1 => Some("AES-256-CBC)-(SHA1"),
            Bulk::Other => None,
        }
    }
}

/// A PSK-NEGOTIATE DTLS session as ocserv (GnuTLS) describes it in `occtl show user`:
/// `(DTLS1.2)-(PSK)-(AES-256-GCM)`; without the cipher part when it is left to the DTLS
/// handshake (`cipher` is an OpenSSL name such as `PSK-AES256-GCM-SHA384`, or None).
pub fn psk_description(cipher: Option<&str>) -> String {
    match cipher.and_then(|c| Bulk::from_openssl_name(c).gnutls_name()) {
        Some(name) => format!("(DTLS1.2)-(PSK)-({name})"),
        None => "(DTLS1.2)-(PSK)".to_string(),
    }
}

/// One legacy suite the server can grant.
#[derive(Debug, PartialEq, Eq)]
pub struct LegacySuite {
    /// The name in the client's header and in our answer.
    pub name: &'static str,
    /// Offered (and answered) in `X-DTLS12-CipherSuite` rather than `X-DTLS-CipherSuite`.
    pub dtls12_header: bool,
    priority: u8,
    bulk: Bulk,
}

impl LegacySuite {
    /// The session as ocserv (GnuTLS) describes it in `occtl show user`: the client's
    /// master secret resumed with this suite, `(DTLS1.2)-(RSA)-(AES-128-GCM)`.
    pub fn description(&self) -> String {
        format!(
            "(DTLS1.2)-(RSA)-({})",
            self.bulk.gnutls_name().unwrap_or("UNKNOWN")
        )
    }

    /// The header the answer goes in.
    pub fn header(&self) -> &'static str {
        if self.dtls12_header {
            "X-DTLS12-CipherSuite"
        } else {
            "X-DTLS-CipherSuite"
        }
    }
}

/// ocserv's tables with its priorities, restricted to the DTLS 1.2 AES-GCM suites: OpenSSL
/// cannot serve the pre-standard DTLS 1.0 (`DTLS1_BAD_VER`) that the CBC names mean, so a
/// client offering only those gets no DTLS from us (documented difference).
const DTLS_SUITES: [LegacySuite; 2] = [
    LegacySuite {
        name: "OC-DTLS1_2-AES128-GCM",
        dtls12_header: false,
        priority: 80,
        bulk: Bulk::Aes128Gcm,
    },
    LegacySuite {
        name: "OC-DTLS1_2-AES256-GCM",
        dtls12_header: false,
        priority: 90,
        bulk: Bulk::Aes256Gcm,
    },
];
const DTLS12_SUITES: [LegacySuite; 2] = [
    LegacySuite {
        name: "AES128-GCM-SHA256",
        dtls12_header: true,
        priority: 50,
        bulk: Bulk::Aes128Gcm,
    },
    LegacySuite {
        name: "AES256-GCM-SHA384",
        dtls12_header: true,
        priority: 90,
        bulk: Bulk::Aes256Gcm,
    },
];

/// ocserv's rule for one header: the highest-priority suite offered, except that a suite
/// with the TLS session's own cipher and MAC ends the search at once.
fn pick(list: &str, table: &'static [LegacySuite], tls: Bulk) -> Option<&'static LegacySuite> {
    let mut chosen: Option<&'static LegacySuite> = None;
    for token in list.split(':').map(str::trim) {
        for suite in table.iter().filter(|s| s.name == token) {
            let matches_tls = tls != Bulk::Other && suite.bulk == tls;
            if chosen.is_none_or(|c| c.priority < suite.priority) || matches_tls {
                chosen = Some(suite);
                if matches_tls {
                    return chosen;
                }
            }
        }
    }
    chosen
}

/// The legacy suite to grant for the client's two headers, or `None`. A match in
/// `X-DTLS12-CipherSuite` wins over one in `X-DTLS-CipherSuite`, as in ocserv.
pub fn select_legacy(
    dtls: Option<&str>,
    dtls12: Option<&str>,
    tls: Bulk,
) -> Option<&'static LegacySuite> {
    dtls12
        .and_then(|l| pick(l, &DTLS12_SUITES, tls))
        .or_else(|| dtls.and_then(|l| pick(l, &DTLS_SUITES, tls)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_described_as_ocserv_shows_them() {
        let describe = |dtls12: &str| {
            select_legacy(None, Some(dtls12), Bulk::Other)
                .unwrap()
                .description()
        };
        assert_eq!(
            describe("AES128-GCM-SHA256"),
            "(DTLS1.2)-(RSA)-(AES-128-GCM)"
        );
        assert_eq!(
            describe("AES256-GCM-SHA384"),
            "(DTLS1.2)-(RSA)-(AES-256-GCM)"
        );
        let oc = select_legacy(Some("OC-DTLS1_2-AES128-GCM"), None, Bulk::Other).unwrap();
        assert_eq!(oc.description(), "(DTLS1.2)-(RSA)-(AES-128-GCM)");
        assert_eq!(
            psk_description(Some("PSK-AES256-GCM-SHA384")),
            "(DTLS1.2)-(PSK)-(AES-256-GCM)"
        );
        assert_eq!(
            psk_description(Some("PSK-AES128-GCM-SHA256")),
            "(DTLS1.2)-(PSK)-(AES-128-GCM)"
        );
        assert_eq!(
            psk_description(Some("PSK-CHACHA20-POLY1305")),
            "(DTLS1.2)-(PSK)"
        );
        assert_eq!(psk_description(None), "(DTLS1.2)-(PSK)");
    }

    #[test]
    fn psk_token_must_be_whole() {
        assert!(offers_psk("OC-DTLS1_2-AES128-GCM:PSK-NEGOTIATE"));
        assert!(offers_psk(DEFAULT_DTLS_CIPHERS));
        assert!(!offers_psk("PSK-NEGOTIATE-X:AES128-SHA"));
        assert!(!offers_psk(""));
    }

    #[test]
    fn tls_names_map_to_bulk_ciphers() {
        assert_eq!(
            Bulk::from_openssl_name("TLS_AES_256_GCM_SHA384"),
            Bulk::Aes256Gcm
        );
        assert_eq!(
            Bulk::from_openssl_name("ECDHE-RSA-AES128-GCM-SHA256"),
            Bulk::Aes128Gcm
        );
        assert_eq!(Bulk::from_openssl_name("AES256-SHA"), Bulk::Aes256CbcSha1);
        assert_eq!(
            Bulk::from_openssl_name("TLS_CHACHA20_POLY1305_SHA256"),
            Bulk::Other
        );
    }

    #[test]
    fn highest_priority_wins_unless_the_tls_cipher_matches() {
        let offer = "OC-DTLS1_2-AES128-GCM:OC-DTLS1_2-AES256-GCM:AES128-SHA";
        assert_eq!(
            select_legacy(Some(offer), None, Bulk::Other).unwrap().name,
            "OC-DTLS1_2-AES256-GCM"
        );
        // The TLS session runs AES-128-GCM: that suite ends the search.
        assert_eq!(
            select_legacy(Some(offer), None, Bulk::Aes128Gcm)
                .unwrap()
                .name,
            "OC-DTLS1_2-AES128-GCM"
        );
    }

    #[test]
    fn dtls12_header_wins_and_names_its_header() {
        let suite = select_legacy(
            Some("OC-DTLS1_2-AES256-GCM"),
            Some("ECDHE-RSA-AES256-GCM-SHA384:AES128-GCM-SHA256"),
            Bulk::Other,
        )
        .unwrap();
        assert_eq!(suite.name, "AES128-GCM-SHA256");
        assert_eq!(suite.header(), "X-DTLS12-CipherSuite");
        // Nothing usable in the DTLS12 list: the DTLS list still counts.
        let suite = select_legacy(
            Some("OC-DTLS1_2-AES256-GCM"),
            Some("ECDHE-RSA-AES256-GCM-SHA384"),
            Bulk::Other,
        )
        .unwrap();
        assert_eq!(suite.header(), "X-DTLS-CipherSuite");
    }

    #[test]
    fn cbc_only_offers_get_nothing() {
        assert!(select_legacy(
            Some("AES256-SHA:AES128-SHA:DES-CBC3-SHA"),
            None,
            Bulk::Other
        )
        .is_none());
        assert!(select_legacy(None, None, Bulk::Aes256Gcm).is_none());
        assert!(select_legacy(Some(""), Some(":::"), Bulk::Other).is_none());
    }
}
