//! The VPN protocols openconnect knows, as its `--protocol` table: which ones this client
//! speaks, and what it says about the others.

use crate::error::ClientError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    AnyConnect,
    /// PPP straight over TLS: upstream's protocol for testing its PPP engine.
    NullPpp,
    Nc,
    Gp,
    Pulse,
    F5,
    Fortinet,
    Array,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct ProtocolInfo {
    pub protocol: Protocol,
    /// The `--protocol` name.
    pub name: &'static str,
    pub pretty_name: &'static str,
    pub description: &'static str,
    /// The datagram transport the protocol can use beside TLS.
    pub udp: Option<&'static str>,
    /// Left out of `--version` and `--help` lists (upstream hides nullppp too).
    pub hidden: bool,
    /// This client speaks it.
    pub supported: bool,
}

/// In upstream's order; the first is the default.
pub const PROTOCOLS: &[ProtocolInfo] = &[
    ProtocolInfo {
        protocol: Protocol::AnyConnect,
        name: "anyconnect",
        pretty_name: "Cisco AnyConnect or OpenConnect",
        description: "Compatible with Cisco AnyConnect SSL VPN, as well as ocserv",
        udp: Some("DTLS"),
        hidden: false,
        supported: true,
    },
    ProtocolInfo {
        protocol: Protocol::Nc,
        name: "nc",
        pretty_name: "Juniper Network Connect",
        description: "Compatible with Juniper Network Connect",
        udp: Some("ESP"),
        hidden: false,
        supported: true,
    },
    ProtocolInfo {
        protocol: Protocol::Gp,
        name: "gp",
        pretty_name: "Palo Alto Networks GlobalProtect",
        description: "Compatible with Palo Alto Networks (PAN) GlobalProtect SSL VPN",
        udp: Some("ESP"),
        hidden: false,
        supported: true,
    },
    ProtocolInfo {
        protocol: Protocol::Pulse,
        name: "pulse",
        pretty_name: "Pulse Connect Secure",
        description: "Compatible with Pulse Connect Secure SSL VPN",
        udp: Some("ESP"),
        hidden: false,
        supported: true,
    },
    ProtocolInfo {
        protocol: Protocol::F5,
        name: "f5",
        pretty_name: "F5 BIG-IP SSL VPN",
        description: "Compatible with F5 BIG-IP SSL VPN",
        udp: Some("DTLS"),
        hidden: false,
        supported: true,
    },
    ProtocolInfo {
        protocol: Protocol::Fortinet,
        name: "fortinet",
        pretty_name: "Fortinet SSL VPN",
        description: "Compatible with FortiGate SSL VPN",
        udp: Some("DTLS"),
        hidden: false,
        supported: true,
    },
    ProtocolInfo {
        protocol: Protocol::NullPpp,
        name: "nullppp",
        pretty_name: "PPP over TLS",
        description: "Unauthenticated RFC1661/RFC1662 PPP over TLS, for testing",
        udp: None,
        hidden: true,
        supported: true,
    },
    ProtocolInfo {
        protocol: Protocol::Array,
        name: "array",
        pretty_name: "Array SSL VPN",
        description: "Compatible with Array Networks SSL VPN",
        udp: Some("DTLS"),
        hidden: false,
        supported: true,
    },
];

/// The `--protocol` value's row, ignoring case as upstream; the default when none is given.
pub fn lookup(name: Option<&str>) -> Result<&'static ProtocolInfo, ClientError> {
    let Some(name) = name else {
        return PROTOCOLS
            .first()
            .ok_or_else(|| ClientError::Usage("no protocols".into()));
    };
    let info = PROTOCOLS
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| ClientError::Usage(format!("Unknown VPN protocol '{name}'")))?;
    if !info.supported {
        return Err(ClientError::Usage(format!(
            "protocol '{}' ({}) is not supported by this version yet; it speaks {}",
            info.name,
            info.pretty_name,
            supported_names(true).join(", ")
        )));
    }
    Ok(info)
}

/// The protocols this client speaks, by name; hidden ones only when asked.
pub fn supported_names(with_hidden: bool) -> Vec<&'static str> {
    PROTOCOLS
        .iter()
        .filter(|p| p.supported && (with_hidden || !p.hidden))
        .map(|p| p.name)
        .collect()
}

/// `--version`'s line, as upstream prints it (the default first).
pub fn version_line() -> String {
    let names: Vec<String> = supported_names(false)
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            if i == 0 {
                format!("{n} (default)")
            } else {
                n.to_string()
            }
        })
        .collect();
    format!("Supported protocols: {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ignore_case_and_unknown_or_unsupported_ones_are_named() {
        assert_eq!(lookup(None).unwrap().protocol, Protocol::AnyConnect);
        assert_eq!(lookup(Some("NullPPP")).unwrap().protocol, Protocol::NullPpp);
        let unknown = lookup(Some("ipsec")).unwrap_err().to_string();
        assert_eq!(unknown, "Unknown VPN protocol 'ipsec'");
        assert_eq!(lookup(Some("ARRAY")).unwrap().protocol, Protocol::Array);
    }

    #[test]
    fn the_version_line_lists_what_works_without_hidden_ones() {
        assert_eq!(
            version_line(),
            "Supported protocols: anyconnect (default), nc, gp, pulse, f5, fortinet, array"
        );
        assert_eq!(PROTOCOLS.len(), 8);
    }
}
