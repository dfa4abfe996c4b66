//! The tunnel a CONNECT is granted, decided without I/O or a clock: which liveness timers
//! apply (mobile or desktop), default route or split routes, the MTUs, which address
//! families the client gets, keepalive, compression per channel, the rekey method, the DTLS
//! grant and the packet filter's route restriction.
//!
//! The shell gathers the facts (the client's headers, the user's effective settings, the
//! lease, the TLS session, the DTLS offer it could key, how long the session has left),
//! calls [`plan_tunnel`] and acts on the [`TunnelPlan`]: it sends the grant, routes the
//! granted addresses and runs the tunnel with the planned timers and compression.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::dtls_cipher::LegacySuite;
use super::server_connect::{
    data_mtu, legacy_data_mtu, link_mtu, mtu_allows_ipv6, AgentKind, ClientConnect, DtlsGrant,
    DtlsMode, DtlsPlan, TunnelGrant,
};
use super::server_session::ServerTimers;
use super::session::Channel;
use crate::compress::{Algorithm, Priorities, TunnelCompression};

/// `keepalive` when nothing sets it (ocserv's default), seconds.
pub const DEFAULT_KEEPALIVE: u32 = 32400;
/// The smallest tunnel MTU granted, whatever the link leaves (ocserv's floor).
const MIN_TUNNEL_MTU: u32 = 576;

/// The user's effective settings (global configuration with the group's and user's files
/// applied), as far as planning a tunnel needs them. `None` means "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanSettings {
    /// `mtu`: the link MTU; unset (or 0) means 1500.
    pub mtu: Option<u32>,
    /// `dpd` and `mobile-dpd`, seconds; 0 = off.
    pub dpd: Option<u32>,
    pub mobile_dpd: Option<u32>,
    /// `idle-timeout` and `mobile-idle-timeout`, seconds; 0 = none.
    pub idle_timeout: Option<u32>,
    pub mobile_idle_timeout: Option<u32>,
    /// `keepalive`, seconds; unset = [`DEFAULT_KEEPALIVE`].
    pub keepalive: Option<u32>,
    /// `session-timeout`, seconds; 0 = none.
    pub session_timeout: Option<u32>,
    /// `route` (split-include); none or empty means a default route.
    pub routes: Option<Vec<IpNet>>,
    pub default_route: Option<bool>,
    /// `no-route` (split-exclude).
    pub no_routes: Option<Vec<IpNet>>,
    /// `restrict-user-to-routes`.
    pub restrict_user_to_routes: Option<bool>,
    pub dns: Option<Vec<IpAddr>>,
    pub nbns: Option<Vec<IpAddr>>,
    pub split_dns: Option<Vec<String>>,
    pub default_domain: Option<String>,
    pub tunnel_all_dns: Option<bool>,
    /// `client-bypass-protocol`.
    pub client_bypass_protocol: bool,
    /// `listen-host-is-dyndns`.
    pub dyndns: bool,
    /// `hostname`: overrides the one the client proposes.
    pub hostname: Option<String>,
    /// The pools the addresses come from (netmask headers).
    pub ipv4_network: Option<Ipv4Net>,
    pub ipv6_network: Option<Ipv6Net>,
    /// `udp-port`, announced in the DTLS grant.
    pub udp_port: Option<u16>,
    /// `rekey-time`, seconds; 0 = no rekey.
    pub rekey_time: u32,
    /// `rekey-method = ssl` (else `new-tunnel`).
    pub rekey_ssl: bool,
    /// `compression`: off unless set (compressing before encrypting leaks plaintext).
    pub compression: bool,
    /// `compression-algo-priority`.
    pub compression_priorities: Priorities,
    /// `no-compress-limit`: packets up to this length go out uncompressed.
    pub no_compress_limit: u32,
    pub banner: Option<String>,
    /// `custom-header` lines, `%{U}` and `%{G}` not yet substituted.
    pub custom_headers: Vec<String>,
}

/// The addresses of a lease, or of what the client is granted from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Addresses {
    pub v4: Option<Ipv4Addr>,
    /// The client's address with the prefix it owns.
    pub v6: Option<Ipv6Net>,
}

/// What the shell knows of the CSTP session's TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsFacts<'a> {
    /// The suite's OpenSSL name (e.g. `TLS_AES_256_GCM_SHA384`); empty if unknown.
    pub cipher: &'a str,
    /// The connection runs TLS 1.3 (a KeyUpdate can rekey it in place).
    pub tls13: bool,
}

/// The DTLS channel the shell can offer (it holds the keys for it), with the id the
/// client will name in its ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtlsOffer {
    pub id: [u8; 32],
    pub kind: DtlsOfferKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsOfferKind {
    /// PSK-NEGOTIATE; `pinned` when `match-tls-dtls-ciphers` limits DTLS to the suite
    /// matching the TLS session's.
    Psk { pinned: bool },
    /// Resumption of the client's master secret with this suite.
    Legacy(&'static LegacySuite),
}

/// Everything [`plan_tunnel`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub client: &'a ClientConnect,
    pub settings: &'a PlanSettings,
    /// The user and group, for `custom-header` substitution.
    pub user: &'a str,
    pub group: Option<&'a str>,
    /// The session's lease (both families it may use).
    pub lease: Addresses,
    /// The client reached us over IPv6 (bigger IP header on the path).
    pub ipv6_peer: bool,
    pub tls: TlsFacts<'a>,
    pub dtls: Option<DtlsOffer>,
    /// How long the session has left before `session-timeout` ends it, if it has a limit.
    pub session_left: Option<Duration>,
}

/// `restrict-user-to-routes`: where the client may send packets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteRestriction {
    /// The split routes; empty means the default route (anywhere).
    pub routes: Vec<IpNet>,
    /// Never these.
    pub no_routes: Vec<IpNet>,
}

/// The liveness timers of the running tunnel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanTimers {
    pub dpd: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    /// `rekey-method = ssl` on TLS 1.3: how often the server itself sends a KeyUpdate.
    pub tls_rekey: Option<Duration>,
}

/// The decided tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelPlan {
    /// The `200 CONNECTED` answer (MTUs, addresses, timers, DTLS, compression, ...).
    pub grant: TunnelGrant,
    /// The addresses the client actually gets: the families it asked for, and no IPv6 on a
    /// tunnel too small to carry it. Routes and the packet filter follow these.
    pub granted: Addresses,
    pub timers: PlanTimers,
    /// The packet filter's destination limit, when `restrict-user-to-routes` is set.
    pub restrict: Option<RouteRestriction>,
    /// The shortest packet worth compressing (ocserv compresses above `no-compress-limit`).
    pub min_compress_len: usize,
    /// TLS 1.2 with `rekey-method = ssl`: the client rekeys by renegotiating.
    pub client_renegotiates: bool,
}

impl TunnelPlan {
    /// The tunnel (data) MTU.
    pub fn mtu(&self) -> u32 {
        self.grant.mtu
    }

    pub fn cstp_compression(&self) -> Option<Algorithm> {
        self.grant.cstp_compression
    }

    pub fn dtls_compression(&self) -> Option<Algorithm> {
        self.grant.dtls.as_ref().and_then(|d| d.compression)
    }

    /// The session's timers, with its absolute deadline as the shell's clock has it.
    pub fn server_timers(&self, session_deadline: Option<Instant>) -> ServerTimers {
        ServerTimers {
            dpd: self.timers.dpd,
            idle_timeout: self.timers.idle_timeout,
            session_deadline,
            tls_rekey: self.timers.tls_rekey,
        }
    }

    /// Fresh codec state for the chosen compression.
    pub fn compression(&self) -> TunnelCompression {
        TunnelCompression::new(
            self.cstp_compression(),
            self.dtls_compression(),
            self.min_compress_len,
            self.mtu() as usize,
        )
    }
}

/// Decides the tunnel for one CONNECT, as ocserv does.
pub fn plan_tunnel(input: &PlanInput<'_>) -> TunnelPlan {
    let (client, settings) = (input.client, input.settings);
    let base_mtu = link_mtu(settings.mtu, client, input.ipv6_peer);
    let data = data_mtu(base_mtu, input.ipv6_peer, dtls_plan(input));
    let granted = grant_addresses(input.lease, client, data);
    let mtu = data.max(MIN_TUNNEL_MTU);
    let (dpd, idle) = liveness(settings, client.is_mobile());
    let (default_route, routes) = split_routes(settings);
    let keepalive = settings.keepalive.unwrap_or(DEFAULT_KEEPALIVE);
    // `rekey-method = ssl`: on TLS 1.3 the server refreshes the keys itself with KeyUpdates
    // (TLS 1.3 has no renegotiation), as ocserv 1.5; on TLS 1.2 the client renegotiates.
    let ssl_rekey = rekey_time(settings).filter(|_| settings.rekey_ssl);
    let server_rekey = ssl_rekey.filter(|_| input.tls.tls13);
    let cstp_compression =
        choose_compression(settings, &client.cstp_accept_encoding, Channel::Cstp);
    let dtls = input.dtls.map(|offer| DtlsGrant {
        port: settings.udp_port.unwrap_or_default(),
        id: offer.id,
        dpd,
        keepalive,
        rekey_time: rekey_time(settings),
        rekey_ssl: settings.rekey_ssl,
        mode: dtls_mode(offer.kind, base_mtu, input.ipv6_peer),
        compression: choose_compression(settings, &client.dtls_accept_encoding, Channel::Dtls),
    });
    let grant = TunnelGrant {
        hostname: settings.hostname.clone().or(client.hostname.clone()),
        dpd,
        default_domain: settings.default_domain.clone(),
        ipv4: granted.v4.zip(settings.ipv4_network.map(|n| n.netmask())),
        ipv6: granted.v6,
        ipv6_network: settings.ipv6_network,
        full_ipv6: client.full_ipv6,
        // As ocserv: unless split routes sit next to a default route.
        ios_ipv6_route: client.full_ipv6
            && client.is_ios()
            && (settings.routes.as_ref().is_none_or(Vec::is_empty) || !default_route),
        cisco_agent: AgentKind::from_user_agent(&client.user_agent) == AgentKind::Cisco,
        dns: settings.dns.clone().unwrap_or_default(),
        nbns: settings.nbns.clone().unwrap_or_default(),
        split_dns: settings.split_dns.clone().unwrap_or_default(),
        routes: routes.clone(),
        no_routes: settings.no_routes.clone().unwrap_or_default(),
        default_route,
        tunnel_all_dns: settings.tunnel_all_dns.unwrap_or(false),
        client_bypass_protocol: settings.client_bypass_protocol,
        dyndns: settings.dyndns,
        keepalive,
        idle_timeout: idle,
        // With the server's own KeyUpdates the client is told "ssl" with a time it never
        // reaches (ocserv 1.5), so it does not rebuild the tunnel.
        rekey_time: match server_rekey {
            Some(_) => Some(ADVERTISED_TLS13_REKEY_TIME),
            None => rekey_time(settings),
        },
        rekey_method: rekey_method(settings),
        session_timeout: settings.session_timeout.filter(|t| *t > 0),
        session_remaining: input.session_left.map(whole_seconds),
        base_mtu,
        mtu,
        banner: settings.banner.clone(),
        custom_headers: custom_headers(&settings.custom_headers, input.user, input.group),
        dtls,
        cstp_compression,
    };
    TunnelPlan {
        granted,
        timers: PlanTimers {
            dpd: dpd.map(seconds),
            idle_timeout: idle.map(seconds),
            tls_rekey: server_rekey.map(seconds),
        },
        restrict: restriction(settings, routes),
        min_compress_len: usize::try_from(settings.no_compress_limit)
            .unwrap_or(usize::MAX)
            .saturating_add(1),
        client_renegotiates: ssl_rekey.is_some() && !input.tls.tls13,
        grant,
    }
}

/// ocserv's data MTU counts the DTLS record overhead when DTLS is granted, else none.
fn dtls_plan<'a>(input: &PlanInput<'a>) -> DtlsPlan<'a> {
    match input.dtls.map(|d| d.kind) {
        None => DtlsPlan::Off,
        Some(DtlsOfferKind::Legacy(_)) => DtlsPlan::Legacy,
        Some(DtlsOfferKind::Psk { pinned }) => DtlsPlan::Psk {
            tls_cipher: input.tls.cipher,
            pinned,
        },
    }
}

/// Legacy DTLS announces its data MTU (`X-DTLS-MTU`): the client cannot derive it.
fn dtls_mode(kind: DtlsOfferKind, base_mtu: u32, ipv6_peer: bool) -> DtlsMode {
    match kind {
        DtlsOfferKind::Psk { .. } => DtlsMode::Psk,
        DtlsOfferKind::Legacy(suite) => DtlsMode::Legacy {
            suite,
            data_mtu: legacy_data_mtu(base_mtu, ipv6_peer),
        },
    }
}

/// The families the client asked for, and no IPv6 on a tunnel too small to carry it.
fn grant_addresses(lease: Addresses, client: &ClientConnect, data_mtu: u32) -> Addresses {
    Addresses {
        v4: lease.v4.filter(|_| client.wants_ipv4),
        v6: lease
            .v6
            .filter(|_| client.wants_ipv6 && mtu_allows_ipv6(data_mtu)),
    }
}

/// DPD and idle timeout in seconds: mobile clients get `mobile-dpd` and
/// `mobile-idle-timeout`; 0 means off.
fn liveness(settings: &PlanSettings, mobile: bool) -> (Option<u32>, Option<u32>) {
    let (dpd, idle) = if mobile {
        (settings.mobile_dpd, settings.mobile_idle_timeout)
    } else {
        (settings.dpd, settings.idle_timeout)
    };
    (dpd.filter(|d| *d > 0), idle.filter(|t| *t > 0))
}

/// Whether the client gets a default route, and its split routes (none with a default
/// route). No split routes means everything goes through the tunnel.
fn split_routes(settings: &PlanSettings) -> (bool, Vec<IpNet>) {
    let default_route = settings.default_route.unwrap_or(false)
        || settings.routes.as_ref().is_none_or(|r| r.is_empty());
    let routes = if default_route {
        Vec::new()
    } else {
        settings.routes.clone().unwrap_or_default()
    };
    (default_route, routes)
}

fn restriction(settings: &PlanSettings, routes: Vec<IpNet>) -> Option<RouteRestriction> {
    settings
        .restrict_user_to_routes
        .unwrap_or(false)
        .then(|| RouteRestriction {
            routes,
            no_routes: settings.no_routes.clone().unwrap_or_default(),
        })
}

/// The server's pick from the client's offer for `channel`; nothing unless `compression`
/// is on.
fn choose_compression(
    settings: &PlanSettings,
    offer: &Option<String>,
    channel: Channel,
) -> Option<Algorithm> {
    offer
        .as_deref()
        .filter(|_| settings.compression)
        .and_then(|o| settings.compression_priorities.select(o, channel))
}

fn rekey_time(settings: &PlanSettings) -> Option<u32> {
    Some(settings.rekey_time).filter(|t| *t > 0)
}

/// What a client rekeying on its own is told when the server does it (one year).
pub const ADVERTISED_TLS13_REKEY_TIME: u32 = 60 * 60 * 24 * 365;

/// `rekey-method = ssl`: on TLS 1.3 the server's own KeyUpdates, on TLS 1.2 the client's
/// (secure) renegotiation, which the server accepts once the tunnel is up.
fn rekey_method(settings: &PlanSettings) -> &'static str {
    if settings.rekey_ssl {
        "ssl"
    } else {
        "new-tunnel"
    }
}

fn seconds(secs: u32) -> Duration {
    Duration::from_secs(u64::from(secs))
}

/// Whole seconds, at most `u32::MAX`.
fn whole_seconds(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// `custom-header` lines as `(name, value)`, with `%{U}` and `%{G}` substituted; a line
/// without a colon is skipped.
fn custom_headers(lines: &[String], user: &str, group: Option<&str>) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|line| {
            let line = line
                .replace("%{U}", user)
                .replace("%{G}", group.unwrap_or_default());
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::anyconnect::dtls_cipher::{select_legacy, Bulk};

    /// One CONNECT: a desktop client asking for both families with a 1400-byte link, a
    /// lease of both, TLS 1.3 with AES-256-GCM, no DTLS, no session limit.
    struct Case {
        client: ClientConnect,
        settings: PlanSettings,
        ipv6_peer: bool,
        tls: TlsFacts<'static>,
        dtls: Option<DtlsOfferKind>,
        session_left: Option<Duration>,
    }

    impl Default for Case {
        fn default() -> Self {
            Self {
                client: ClientConnect {
                    base_mtu: Some(1400),
                    wants_ipv4: true,
                    wants_ipv6: true,
                    ..ClientConnect::default()
                },
                settings: PlanSettings {
                    ipv4_network: Some("10.9.0.0/24".parse().unwrap()),
                    ipv6_network: Some("fd00:9::/64".parse().unwrap()),
                    ..PlanSettings::default()
                },
                ipv6_peer: false,
                tls: TlsFacts {
                    cipher: "TLS_AES_256_GCM_SHA384",
                    tls13: true,
                },
                dtls: None,
                session_left: None,
            }
        }
    }

    impl Case {
        fn plan(&self) -> TunnelPlan {
            plan_tunnel(&PlanInput {
                client: &self.client,
                settings: &self.settings,
                user: "alice",
                group: Some("staff"),
                lease: Addresses {
                    v4: Some("10.9.0.5".parse().unwrap()),
                    v6: Some("fd00:9::5/128".parse().unwrap()),
                },
                ipv6_peer: self.ipv6_peer,
                tls: self.tls,
                dtls: self.dtls.map(|kind| DtlsOffer { id: [7; 32], kind }),
                session_left: self.session_left,
            })
        }
    }

    fn legacy_suite() -> &'static LegacySuite {
        select_legacy(Some("OC-DTLS1_2-AES256-GCM"), None, Bulk::Other).unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn ios_clients_with_full_ipv6_get_the_2000_route_unless_defaults_are_mixed() {
        // (platform, user agent, full IPv6, routes, default route) -> 2000::/3 sent
        #[rustfmt::skip]
        let rows = [
            (Some("apple-ios"), "AnyConnect", true, None, None, true),
            (None, "Cisco AnyConnect VPN Agent for Apple 4.10", true, None, None, true),
            (Some("APPLE-IOS 16"), "x", true, Some(vec!["10.0.0.0/8"]), Some(false), true),
            (Some("apple-ios"), "x", false, None, None, false),
            (Some("android"), "x", true, None, None, false),
            (Some("linux-64"), "Open AnyConnect VPN Agent", true, None, None, false),
            (Some("apple-ios"), "x", true, Some(vec!["10.0.0.0/8"]), Some(true), false),
        ];
        for (platform, agent, full_ipv6, routes, default_route, want) in rows {
            let case = Case {
                client: ClientConnect {
                    platform: platform.map(str::to_string),
                    user_agent: agent.into(),
                    full_ipv6,
                    ..Case::default().client
                },
                settings: PlanSettings {
                    routes: routes.map(|r| nets(&r)),
                    default_route,
                    ..Case::default().settings
                },
                ..Case::default()
            };
            assert_eq!(
                case.plan().grant.ios_ipv6_route,
                want,
                "{platform:?} {agent}"
            );
            let sent = sent(&case);
            assert_eq!(
                sent.contains("X-CSTP-Split-Include-IP6: 2000::/3\r\n"),
                want,
                "{sent}"
            );
        }
    }

    /// The grant as sent, for header checks.
    fn sent(case: &Case) -> String {
        let mut out = Vec::new();
        case.plan().grant.to_response().emit(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn client_bypass_protocol_and_dyndns_are_announced_as_configured() {
        for flag in [false, true] {
            let case = Case {
                settings: PlanSettings {
                    client_bypass_protocol: flag,
                    dyndns: flag,
                    ..Case::default().settings
                },
                ..Case::default()
            };
            let sent = sent(&case);
            let want = format!("X-CSTP-Client-Bypass-Protocol: {flag}\r\n");
            assert!(sent.contains(&want), "{sent}");
            assert_eq!(sent.contains("X-CSTP-DynDNS: true\r\n"), flag, "{sent}");
        }
    }

    #[test]
    fn mobile_clients_get_mobile_dpd_and_idle_timeout() {
        // (platform, dpd, mobile-dpd, idle, mobile-idle) -> (dpd, idle)
        #[rustfmt::skip]
        let rows = [
            (None, Some(90), Some(1800), Some(600), Some(1200), (Some(90), Some(600))),
            (Some("linux-64"), Some(90), Some(1800), None, Some(1200), (Some(90), None)),
            (Some("apple-ios"), Some(90), Some(1800), Some(600), Some(1200), (Some(1800), Some(1200))),
            (Some("Android"), Some(90), Some(1800), Some(600), None, (Some(1800), None)),
            // 0 means off.
            (None, Some(0), Some(1800), Some(0), None, (None, None)),
            (Some("android"), Some(90), Some(0), None, Some(0), (None, None)),
        ];
        for (platform, dpd, mobile_dpd, idle, mobile_idle, (want_dpd, want_idle)) in rows {
            let case = Case {
                client: ClientConnect {
                    platform: platform.map(str::to_string),
                    ..Case::default().client
                },
                settings: PlanSettings {
                    dpd,
                    mobile_dpd,
                    idle_timeout: idle,
                    mobile_idle_timeout: mobile_idle,
                    ..PlanSettings::default()
                },
                dtls: Some(DtlsOfferKind::Psk { pinned: false }),
                ..Case::default()
            };
            let plan = case.plan();
            assert_eq!(plan.grant.dpd, want_dpd, "{platform:?}");
            assert_eq!(plan.grant.dtls.unwrap().dpd, want_dpd, "{platform:?}");
            assert_eq!(plan.grant.idle_timeout, want_idle, "{platform:?}");
            assert_eq!(
                plan.timers,
                PlanTimers {
                    dpd: want_dpd.map(seconds),
                    idle_timeout: want_idle.map(seconds),
                    tls_rekey: None,
                }
            );
        }
    }

    #[test]
    fn no_split_routes_means_a_default_route() {
        // (route, default-route flag) -> (default route, routes granted)
        let split = nets(&["192.0.2.0/24"]);
        let rows = [
            (None, None, true, vec![]),
            (Some(vec![]), None, true, vec![]),
            (Some(split.clone()), None, false, split.clone()),
            (Some(split.clone()), Some(false), false, split.clone()),
            (Some(split.clone()), Some(true), true, vec![]),
        ];
        for (routes, default_route, want_default, want_routes) in rows {
            let case = Case {
                settings: PlanSettings {
                    routes: routes.clone(),
                    default_route,
                    ..PlanSettings::default()
                },
                ..Case::default()
            };
            let grant = case.plan().grant;
            assert_eq!(grant.default_route, want_default, "{routes:?}");
            assert_eq!(grant.routes, want_routes, "{routes:?}");
        }
    }

    #[test]
    fn restriction_follows_the_granted_routes() {
        let mut case = Case::default();
        assert_eq!(case.plan().restrict, None);
        case.settings.restrict_user_to_routes = Some(true);
        case.settings.no_routes = Some(nets(&["10.0.0.0/8"]));
        assert_eq!(
            case.plan().restrict,
            Some(RouteRestriction {
                routes: vec![],
                no_routes: nets(&["10.0.0.0/8"]),
            })
        );
        case.settings.routes = Some(nets(&["192.0.2.0/24"]));
        let plan = case.plan();
        assert_eq!(plan.restrict.unwrap().routes, nets(&["192.0.2.0/24"]));
        assert_eq!(plan.grant.no_routes, nets(&["10.0.0.0/8"]));
    }

    #[test]
    fn ipv6_only_where_asked_for_and_the_mtu_carries_it() {
        // (client's base MTU, DTLS, wants IPv4, wants IPv6) -> (IPv4 granted, IPv6 granted)
        let psk = Some(DtlsOfferKind::Psk { pinned: false });
        let rows = [
            (1400, None, true, true, (true, true)),
            // 1400 - 28 - 38 = 1334: still carries IPv6.
            (1400, psk, true, true, (true, true)),
            // 1300 - 28 - 38 = 1234 < 1280: no IPv6 over this tunnel.
            (1300, psk, true, true, (true, false)),
            // 1300 - 28 = 1272 without DTLS: no IPv6 either.
            (1300, None, true, true, (true, false)),
            (1400, None, false, true, (false, true)),
            (1400, None, true, false, (true, false)),
        ];
        for (base, dtls, wants_ipv4, wants_ipv6, (v4, v6)) in rows {
            let case = Case {
                client: ClientConnect {
                    base_mtu: Some(base),
                    wants_ipv4,
                    wants_ipv6,
                    ..ClientConnect::default()
                },
                dtls,
                ..Case::default()
            };
            let plan = case.plan();
            let row = (base, dtls, wants_ipv4, wants_ipv6);
            assert_eq!(plan.granted.v4.is_some(), v4, "{row:?}");
            assert_eq!(plan.granted.v6.is_some(), v6, "{row:?}");
            assert_eq!(plan.grant.ipv4.is_some(), v4, "{row:?}");
            assert_eq!(plan.grant.ipv6, plan.granted.v6, "{row:?}");
        }
    }

    #[test]
    fn mtu_depends_on_the_dtls_channel() {
        let legacy = Some(DtlsOfferKind::Legacy(legacy_suite()));
        let psk = |pinned| Some(DtlsOfferKind::Psk { pinned });
        let chacha = "TLS_CHACHA20_POLY1305_SHA256";
        // (DTLS, TLS cipher, IPv6 peer) -> (data MTU, legacy X-DTLS-MTU)
        let rows = [
            (None, "TLS_AES_256_GCM_SHA384", false, 1372, None),
            (legacy, "TLS_AES_256_GCM_SHA384", false, 1334, Some(1334)),
            (legacy, "TLS_AES_256_GCM_SHA384", true, 1314, Some(1314)),
            (psk(false), "TLS_AES_256_GCM_SHA384", false, 1334, None),
            // Unpinned, ChaCha20's smaller overhead is not promised.
            (psk(false), chacha, false, 1334, None),
            (psk(true), chacha, false, 1342, None),
            // CBC with SHA-1: MAC, IV and a padding block.
            (psk(false), "AES256-SHA", false, 1306, None),
        ];
        for (dtls, cipher, ipv6_peer, mtu, legacy_mtu) in rows {
            let case = Case {
                tls: TlsFacts {
                    cipher,
                    tls13: true,
                },
                dtls,
                ipv6_peer,
                ..Case::default()
            };
            let plan = case.plan();
            assert_eq!(plan.grant.base_mtu, 1400, "{dtls:?} {cipher}");
            assert_eq!(plan.mtu(), mtu, "{dtls:?} {cipher}");
            let announced = match plan.grant.dtls.map(|d| d.mode) {
                Some(DtlsMode::Legacy { data_mtu, suite }) => {
                    assert_eq!(suite.name, "OC-DTLS1_2-AES256-GCM");
                    Some(data_mtu)
                }
                _ => None,
            };
            assert_eq!(announced, legacy_mtu, "{dtls:?} {cipher}");
        }
    }

    #[test]
    fn mtu_has_a_floor() {
        let case = Case {
            settings: PlanSettings {
                mtu: Some(600),
                ..Case::default().settings
            },
            ..Case::default()
        };
        let plan = case.plan();
        assert_eq!((plan.grant.base_mtu, plan.mtu()), (600, 576));
        assert_eq!(plan.granted.v6, None);
    }

    #[test]
    fn rekey_ssl_is_server_key_updates_on_tls13_and_client_renegotiation_on_tls12() {
        // (rekey-method = ssl, TLS 1.3, rekey-time) -> (X-CSTP-Rekey-Method, rekey time
        // told to the client, the server's own KeyUpdate interval); on TLS 1.2 the client
        // renegotiates.
        const YEAR: u32 = ADVERTISED_TLS13_REKEY_TIME;
        let rows = [
            (true, true, 172800, "ssl", Some(YEAR), Some(172800)),
            (true, false, 172800, "ssl", Some(172800), None),
            (false, true, 172800, "new-tunnel", Some(172800), None),
            (false, false, 3600, "new-tunnel", Some(3600), None),
            (true, true, 0, "ssl", None, None),
        ];
        for (rekey_ssl, tls13, rekey_time, method, time, server_rekey) in rows {
            let case = Case {
                settings: PlanSettings {
                    rekey_ssl,
                    rekey_time,
                    ..PlanSettings::default()
                },
                tls: TlsFacts {
                    cipher: "ECDHE-RSA-AES256-GCM-SHA384",
                    tls13,
                },
                dtls: Some(DtlsOfferKind::Psk { pinned: false }),
                ..Case::default()
            };
            let plan = case.plan();
            assert_eq!(plan.timers.tls_rekey, server_rekey.map(seconds));
            assert_eq!(
                plan.client_renegotiates,
                rekey_ssl && !tls13 && rekey_time > 0
            );
            let grant = plan.grant;
            assert_eq!(grant.rekey_method, method, "{rekey_ssl} {tls13}");
            assert_eq!(grant.rekey_time, time);
            let dtls = grant.dtls.unwrap();
            // DTLS rekeys by a fresh handshake whatever the TLS version.
            let dtls_time = Some(rekey_time).filter(|t| *t > 0);
            assert_eq!((dtls.rekey_ssl, dtls.rekey_time), (rekey_ssl, dtls_time));
        }
    }

    #[test]
    fn compression_is_off_unless_enabled() {
        let offer = Some("oc-lz4,lzs,deflate".to_string());
        let psk = Some(DtlsOfferKind::Psk { pinned: false });
        // (compression, DTLS granted) -> (CSTP, DTLS)
        let rows = [
            (false, psk, None, None),
            (true, psk, Some(Algorithm::Lz4), Some(Algorithm::Lz4)),
            (true, None, Some(Algorithm::Lz4), None),
        ];
        for (compression, dtls, cstp_want, dtls_want) in rows {
            let case = Case {
                client: ClientConnect {
                    cstp_accept_encoding: offer.clone(),
                    dtls_accept_encoding: offer.clone(),
                    ..Case::default().client
                },
                settings: PlanSettings {
                    compression,
                    no_compress_limit: 256,
                    ..PlanSettings::default()
                },
                dtls,
                ..Case::default()
            };
            let plan = case.plan();
            assert_eq!(plan.cstp_compression(), cstp_want);
            assert_eq!(plan.dtls_compression(), dtls_want);
            assert_eq!(plan.min_compress_len, 257);
            let codec = plan.compression();
            assert_eq!(codec.algorithm(Channel::Cstp), cstp_want);
            assert_eq!(codec.algorithm(Channel::Dtls), dtls_want);
        }
        // Deflate keeps state across packets: never on DTLS.
        let case = Case {
            client: ClientConnect {
                cstp_accept_encoding: Some("deflate".into()),
                dtls_accept_encoding: Some("deflate".into()),
                ..Case::default().client
            },
            settings: PlanSettings {
                compression: true,
                ..PlanSettings::default()
            },
            dtls: psk,
            ..Case::default()
        };
        let plan = case.plan();
        assert_eq!(plan.cstp_compression(), Some(Algorithm::Deflate));
        assert_eq!(plan.dtls_compression(), None);
    }

    #[test]
    fn keepalive_defaults_to_ocserv_value() {
        for (set, want) in [(None, DEFAULT_KEEPALIVE), (Some(20), 20), (Some(0), 0)] {
            let case = Case {
                settings: PlanSettings {
                    keepalive: set,
                    ..PlanSettings::default()
                },
                dtls: Some(DtlsOfferKind::Psk { pinned: true }),
                ..Case::default()
            };
            let grant = case.plan().grant;
            assert_eq!(grant.keepalive, want);
            assert_eq!(grant.dtls.unwrap().keepalive, want);
        }
        assert_eq!(DEFAULT_KEEPALIVE, 32400);
    }

    #[test]
    fn session_remaining_is_whole_seconds_left() {
        // (session-timeout, time left) -> (X-CSTP-Session-Timeout, -Remaining)
        #[rustfmt::skip]
        let rows = [
            (None, None, None, None),
            (Some(0), None, None, None),
            (Some(3600), Some(Duration::from_millis(100_900)), Some(3600), Some(100)),
            (Some(3600), Some(Duration::ZERO), Some(3600), Some(0)),
            (Some(60), Some(Duration::from_secs(1 << 40)), Some(60), Some(u32::MAX)),
        ];
        for (timeout, left, want_timeout, want_remaining) in rows {
            let case = Case {
                settings: PlanSettings {
                    session_timeout: timeout,
                    ..PlanSettings::default()
                },
                session_left: left,
                ..Case::default()
            };
            let plan = case.plan();
            assert_eq!(plan.grant.session_timeout, want_timeout);
            assert_eq!(plan.grant.session_remaining, want_remaining, "{left:?}");
            let now = Instant::now();
            assert_eq!(plan.server_timers(Some(now)).session_deadline, Some(now));
        }
    }

    #[test]
    fn grant_carries_identity_and_settings() {
        let mut case = Case {
            client: ClientConnect {
                hostname: Some("laptop".into()),
                user_agent: "Cisco AnyConnect VPN Agent for Windows 4.10".into(),
                full_ipv6: true,
                ..Case::default().client
            },
            dtls: Some(DtlsOfferKind::Psk { pinned: false }),
            ..Case::default()
        };
        case.settings.udp_port = Some(4443);
        case.settings.custom_headers = vec!["X-My-User: %{U}/%{G}".into(), "broken".into()];
        let grant = case.plan().grant;
        assert_eq!(grant.hostname.as_deref(), Some("laptop"));
        assert!(grant.cisco_agent && grant.full_ipv6);
        assert_eq!(
            grant.ipv4,
            Some((
                "10.9.0.5".parse().unwrap(),
                "255.255.255.0".parse().unwrap()
            ))
        );
        assert_eq!(
            grant.custom_headers,
            vec![("X-My-User".to_string(), "alice/staff".to_string())]
        );
        let dtls = grant.dtls.unwrap();
        assert_eq!(
            (dtls.port, dtls.id, dtls.mode),
            (4443, [7; 32], DtlsMode::Psk)
        );
        case.settings.hostname = Some("assigned".into());
        assert_eq!(case.plan().grant.hostname.as_deref(), Some("assigned"));
    }
}
