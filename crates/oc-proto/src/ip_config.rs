//! The network configuration a VPN tunnel brings, whatever the protocol: what the
//! vpnc-script is told and the tun device is set up with. AnyConnect fills it from CONNECT
//! headers, PPP protocols from IPCP/IPV6CP plus the vendor's configuration.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpConfig {
    pub mtu: u16,
    pub ipv4: Option<Ipv4Addr>,
    /// The netmask as the server sent it (may be absent or non-contiguous).
    pub ipv4_netmask: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Net>,
    /// Name servers, in the order the server gave them.
    pub dns: Vec<IpAddr>,
    pub nbns: Vec<IpAddr>,
    pub default_domain: Option<String>,
    pub split_dns: Vec<String>,
    pub split_include4: Vec<Ipv4Net>,
    pub split_exclude4: Vec<Ipv4Net>,
    pub split_include6: Vec<Ipv6Net>,
    pub split_exclude6: Vec<Ipv6Net>,
    pub banner: Option<String>,
    pub proxy_pac: Option<String>,
    pub idle_timeout: Option<Duration>,
    /// The protocol's own settings as name/value pairs (`CISCO_CSTP_OPTIONS`).
    pub options: Vec<(String, String)>,
}

impl IpConfig {
    /// The IPv4 netmask when it is contiguous, with its prefix length.
    pub fn ipv4_net(&self) -> Option<Ipv4Net> {
        let addr = self.ipv4?;
        let mask = self.ipv4_netmask?;
        let len = Ipv4Net::with_netmask(addr, mask).ok()?.prefix_len();
        Ipv4Net::new(addr, len).ok()
    }

    /// The tunnel's own addresses, IPv4 first.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let v4 = self.ipv4.map(IpAddr::V4);
        let v6 = self.ipv6.map(|n| IpAddr::V6(n.addr()));
        v4.into_iter().chain(v6).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_netmasks_give_a_network() {
        let mut c = IpConfig {
            ipv4: Some(Ipv4Addr::new(10, 1, 2, 3)),
            ipv4_netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            ..IpConfig::default()
        };
        assert_eq!(
            c.ipv4_net().map(|n| n.to_string()).as_deref(),
            Some("10.1.2.3/24")
        );
        c.ipv4_netmask = Some(Ipv4Addr::new(255, 0, 255, 0));
        assert_eq!(c.ipv4_net(), None);
        c.ipv6 = "fd00::5/64".parse().ok();
        assert_eq!(
            c.addresses(),
            [
                "10.1.2.3".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
    }
}
