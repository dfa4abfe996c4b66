//! The keys shared by the main config and per-user/group files ([`NetSettings`]).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net, PrefixLenError};
use oc_proto::port_filter::PortRules;

use super::lexer::Entry;
use super::value::{self, Route};
use super::{defaults, Diag, NetSettings};

/// Which kind of file is being read: some keys are only meaningful in one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// `ocserv.conf`.
    Global,
    /// A config-per-user / config-per-group / default-*-config file.
    Override,
}

/// [`NetSettings`] keys of both kinds of file that are lists: each line adds a value (see
/// [`is_list`]).
const LIST_KEYS: &[&str] = &[
    "route",
    "no-route",
    "dns",
    "ipv4-dns",
    "ipv6-dns",
    "nbns",
    "ipv4-nbns",
    "ipv6-nbns",
    "split-dns",
];

/// The keys [`NetBuilder::handle`] takes in the main config besides [`LIST_KEYS`].
const SINGLE_KEYS: &[&str] = &[
    "default-domain",
    "tunnel-all-dns",
    "ipv4-network",
    "ipv4-netmask",
    "ipv6-network",
    "ipv6-prefix",
    "ipv6-subnet-prefix",
    "mtu",
    "dpd",
    "mobile-dpd",
    "keepalive",
    "idle-timeout",
    "mobile-idle-timeout",
    "session-timeout",
    "max-same-clients",
    "restrict-user-to-routes",
    "restrict-user-to-ports",
    "client-bypass-protocol",
    "deny-roaming",
    "rx-data-per-sec",
    "tx-data-per-sec",
    "stats-report-time",
    // Per user/group in ocserv 1.x, and global (per vhost) too since 1.4.
    "no-udp",
];

/// Keys [`NetBuilder::handle`] takes in the main config.
pub(super) const GLOBAL_NET_KEYS: &[&[&str]] = &[LIST_KEYS, SINGLE_KEYS];

/// Keys that only mean something in per-user/group files.
pub(super) const OVERRIDE_ONLY_KEYS: &[&str] =
    &["iroute", "explicit-ipv4", "explicit-ipv6", "hostname"];

/// Keys the main config has that per-user/group files may not set (ocserv ignores them there).
const GLOBAL_ONLY_NET_KEYS: &[&str] = &["ipv6-prefix"];

/// Whether `key` is a [`NetSettings`] list, which may be given on several lines.
pub(super) fn is_list(key: &str) -> bool {
    // `iroute` is the one list among the per-user/group-only keys.
    LIST_KEYS.contains(&key) || key == "iroute"
}

/// What differs between the IPv4 and the IPv6 address pool. Their keys come in pairs that
/// work the same way (`ipv4-network` with `ipv4-netmask`, `ipv6-network` with
/// `ipv6-prefix`), so [`Pool`] and [`value::parse_network`] check both; only the names and
/// messages differ.
pub(super) trait Family: Copy + PartialEq + FromStr {
    /// [`Ipv4Net`] / [`Ipv6Net`].
    type Net: Copy + fmt::Display;
    /// Whether a dotted netmask may stand for the prefix length.
    const IS_V4: bool;
    /// What a network value looks like, for parse errors.
    const EXPECTED: &'static str;
    /// `ipv4-network` / `ipv6-network`.
    const NETWORK_KEY: &'static str;
    /// The key that can give the prefix length on a line of its own.
    const LEN_KEY: &'static str;
    /// Put before a length from [`Self::LEN_KEY`] in messages: a netmask is shown as `/24`,
    /// `ipv6-prefix` as written.
    const LEN_SIGIL: &'static str;
    /// The error for a network without a prefix length.
    const NO_LEN: &'static str;
    /// `addr/len`.
    fn net(addr: Self, len: u8) -> Result<Self::Net, PrefixLenError>;
    /// `net` with its host bits cleared.
    fn trunc(net: Self::Net) -> Self::Net;
    /// `net`'s address, host bits included.
    fn addr(net: Self::Net) -> Self;
}

impl Family for Ipv4Addr {
    type Net = Ipv4Net;
    const IS_V4: bool = true;
    const EXPECTED: &'static str = "an IPv4 network such as 192.168.1.0/24";
    const NETWORK_KEY: &'static str = "ipv4-network";
    const LEN_KEY: &'static str = "ipv4-netmask";
    const LEN_SIGIL: &'static str = "/";
    const NO_LEN: &'static str = "ipv4-network has no netmask: write ipv4-network = ADDR/LEN or \
                                  add an ipv4-netmask line";
    fn net(addr: Self, len: u8) -> Result<Ipv4Net, PrefixLenError> {
        Ipv4Net::new(addr, len)
    }
    fn trunc(net: Ipv4Net) -> Ipv4Net {
        net.trunc()
    }
    fn addr(net: Ipv4Net) -> Self {
        net.addr()
    }
}

impl Family for Ipv6Addr {
    type Net = Ipv6Net;
    const IS_V4: bool = false;
    const EXPECTED: &'static str = "an IPv6 network such as fd00:1234::/48";
    const NETWORK_KEY: &'static str = "ipv6-network";
    const LEN_KEY: &'static str = "ipv6-prefix";
    const LEN_SIGIL: &'static str = "";
    const NO_LEN: &'static str = "ipv6-network has no prefix length: write ipv6-network = ADDR/LEN";
    fn net(addr: Self, len: u8) -> Result<Ipv6Net, PrefixLenError> {
        Ipv6Net::new(addr, len)
    }
    fn trunc(net: Ipv6Net) -> Ipv6Net {
        net.trunc()
    }
    fn addr(net: Ipv6Net) -> Self {
        net.addr()
    }
}

/// One address pool as read: [`Family::NETWORK_KEY`] (address, prefix length if given, line)
/// and [`Family::LEN_KEY`] (prefix length, line). The two may come in either order, so they
/// are only combined in [`Pool::finish`].
#[derive(Debug)]
struct Pool<A> {
    net: Option<(A, Option<u8>, usize)>,
    len: Option<(u8, usize)>,
}

impl<A> Default for Pool<A> {
    fn default() -> Self {
        Pool {
            net: None,
            len: None,
        }
    }
}

impl<A: Family> Pool<A> {
    /// The network with its host bits cleared, its prefix length and its line; `None` if
    /// none was given or it is unusable (reported).
    fn finish(self, d: &mut Diag) -> Option<(A::Net, u8, usize)> {
        let Some((addr, len, net_line)) = self.net else {
            if let Some((_, len_line)) = self.len {
                d.warn(
                    len_line,
                    format!("{} without {} is ignored", A::LEN_KEY, A::NETWORK_KEY),
                );
            }
            return None;
        };
        let len = match (len, self.len) {
            (Some(a), Some((b, len_line))) if a != b => {
                d.error(
                    len_line,
                    format!(
                        "{} ({}{b}) disagrees with the prefix length in {} on line {net_line} \
                         (/{a})",
                        A::LEN_KEY,
                        A::LEN_SIGIL,
                        A::NETWORK_KEY
                    ),
                );
                return None;
            }
            (Some(a), _) | (None, Some((a, _))) => a,
            (None, None) => {
                d.error(net_line, A::NO_LEN);
                return None;
            }
        };
        let net = A::net(addr, len)
            .map_err(|e| d.error(net_line, format!("{}: {e}", A::NETWORK_KEY)))
            .ok()?;
        let trunc = A::trunc(net);
        if A::addr(trunc) != addr {
            d.warn(
                net_line,
                format!("{} {net} has host bits set; using {trunc}", A::NETWORK_KEY),
            );
        }
        Some((trunc, len, net_line))
    }
}

/// Accumulates the [`NetSettings`] keys of one file; [`NetBuilder::finish`] combines the
/// keys that depend on each other (network + netmask, routes + default).
#[derive(Debug, Default)]
pub(super) struct NetBuilder {
    s: NetSettings,
    routes: Vec<IpNet>,
    any_route: bool,
    default_route_line: Option<usize>,
    route_lines: Vec<(usize, IpNet)>,
    v4: Pool<Ipv4Addr>,
    v6: Pool<Ipv6Addr>,
    subnet_prefix_line: usize,
}

fn push<T>(list: &mut Option<Vec<T>>, item: T) {
    list.get_or_insert_with(Vec::new).push(item);
}

impl NetBuilder {
    /// Handles `e` if it is one of the [`NetSettings`] keys; returns false if it is not.
    pub(super) fn handle(&mut self, e: &Entry, scope: Scope, d: &mut Diag) -> bool {
        let key = e.key.as_str();
        if scope == Scope::Global && OVERRIDE_ONLY_KEYS.contains(&key) {
            d.warn(
                e.line,
                format!(
                    "{key} is only used in config-per-user / config-per-group files; ignored here"
                ),
            );
            return true;
        }
        if scope == Scope::Override && GLOBAL_ONLY_NET_KEYS.contains(&key) {
            d.warn(
                e.line,
                format!(
                    "{key} cannot be set per user or group (write ipv6-network = ADDR/LEN); ignored"
                ),
            );
            return true;
        }
        let line = e.line;
        let v = e.value.as_str();
        match key {
            "route" => self.route(e, d),
            "no-route" | "iroute" => match value::parse_route(v) {
                Ok(Route::Default) => {
                    d.error(line, format!("{key}: 'default' is only valid for route"));
                }
                Ok(Route::Net { net, given }) => {
                    warn_host_bits(d, line, key, net, given);
                    if key == "no-route" {
                        push(&mut self.s.no_routes, net);
                    } else {
                        push(&mut self.s.iroutes, net);
                    }
                }
                Err(m) => d.error(line, format!("{key}: {m}")),
            },
            "dns" | "ipv4-dns" | "ipv6-dns" | "nbns" | "ipv4-nbns" | "ipv6-nbns" => {
                match value::parse_ip(v) {
                    Ok(ip) => {
                        if (key.starts_with("ipv4-") && !ip.is_ipv4())
                            || (key.starts_with("ipv6-") && !ip.is_ipv6())
                        {
                            d.warn(
                                line,
                                format!("{key} has an address of the other family: {ip}"),
                            );
                        }
                        if key.ends_with("dns") {
                            push(&mut self.s.dns, ip);
                        } else {
                            push(&mut self.s.nbns, ip);
                        }
                    }
                    Err(m) => d.error(line, format!("{key}: {m}")),
                }
            }
            "split-dns" => match value::parse_domain(v) {
                Ok(dom) => push(&mut self.s.split_dns, dom),
                Err(m) => d.error(line, format!("{key}: {m}")),
            },
            "default-domain" => {
                if v.is_empty() {
                    d.error(
                        line,
                        format!("{key}: expected a domain name, got an empty value"),
                    );
                } else {
                    self.s.default_domain = Some(v.to_owned());
                }
            }
            "tunnel-all-dns" => set_bool(&mut self.s.tunnel_all_dns, e, d),
            "client-bypass-protocol" => set_bool(&mut self.s.client_bypass_protocol, e, d),
            // ocserv 1.x's per-user parser spells it with underscores (its documentation
            // does not), so per-user files in the wild may use either.
            "tunnel_all_dns" if scope == Scope::Override => {
                set_bool(&mut self.s.tunnel_all_dns, e, d);
            }
            // Enforced by the server's packet filter (not by ocserv-fw as in ocserv).
            "restrict-user-to-routes" => set_bool(&mut self.s.restrict_user_to_routes, e, d),
            // Enforced by the packet filter too: see oc_proto::port_filter.
            "restrict-user-to-ports" => match PortRules::parse(v) {
                Ok(rules) => set(&mut self.s.restrict_user_to_ports, Some(rules)),
                Err(err) => d.error(line, err.to_string()),
            },
            // Checked when a cookie opens a tunnel: from the login's address only.
            "deny-roaming" => set_bool(&mut self.s.deny_roaming, e, d),
            "no-udp" => set_bool(&mut self.s.no_udp, e, d),
            "ipv4-network" => {
                if let Some((addr, len)) = checked(e, d, value::parse_network(v)) {
                    self.v4.net = Some((addr, len, line));
                }
            }
            "ipv4-netmask" => {
                if let Some(len) = checked(e, d, value::parse_netmask(v)) {
                    self.v4.len = Some((len, line));
                }
            }
            "ipv6-network" => {
                if let Some((addr, len)) = checked(e, d, value::parse_network(v)) {
                    self.v6.net = Some((addr, len, line));
                }
            }
            "ipv6-prefix" => {
                if let Some(len) = checked(e, d, value::parse_ipv6_prefix(v)) {
                    self.v6.len = Some((len, line));
                }
            }
            "ipv6-subnet-prefix" => match value::parse_ipv6_prefix(v) {
                Ok(len) => {
                    self.s.ipv6_subnet_prefix = Some(len);
                    self.subnet_prefix_line = line;
                }
                Err(m) => d.error(line, format!("{key}: {m}")),
            },
            "explicit-ipv4" => match v.parse::<Ipv4Addr>() {
                Ok(ip) => self.s.explicit_ipv4 = Some(ip),
                Err(_) => d.error(line, format!("{key}: expected an IPv4 address, got {v:?}")),
            },
            "explicit-ipv6" => match v.parse::<Ipv6Addr>() {
                Ok(ip) => self.s.explicit_ipv6 = Some(ip),
                Err(_) => d.error(line, format!("{key}: expected an IPv6 address, got {v:?}")),
            },
            "mtu" => {
                if let Some(mtu) = num::<u32>(e, d, "an MTU in bytes") {
                    if (68..=65535).contains(&mtu) {
                        self.s.mtu = Some(mtu);
                    } else {
                        d.error(
                            line,
                            format!("{key}: expected an MTU of 68-65535 bytes, got {mtu}"),
                        );
                    }
                }
            }
            "dpd" => set(&mut self.s.dpd, secs(e, d)),
            "mobile-dpd" => set(&mut self.s.mobile_dpd, secs(e, d)),
            "keepalive" => set(&mut self.s.keepalive, secs(e, d)),
            "idle-timeout" => set(&mut self.s.idle_timeout, secs(e, d)),
            "mobile-idle-timeout" => set(&mut self.s.mobile_idle_timeout, secs(e, d)),
            "session-timeout" => set(&mut self.s.session_timeout, secs(e, d)),
            "stats-report-time" => set(&mut self.s.stats_report_time, secs(e, d)),
            "max-same-clients" => set(
                &mut self.s.max_same_clients,
                num(e, d, "a number of sessions (0 = unlimited)"),
            ),
            "rx-data-per-sec" => set(
                &mut self.s.rx_data_per_sec,
                num(e, d, "a number of bytes per second"),
            ),
            "tx-data-per-sec" => set(
                &mut self.s.tx_data_per_sec,
                num(e, d, "a number of bytes per second"),
            ),
            "hostname" => {
                if v.is_empty() || v.contains(char::is_whitespace) {
                    d.error(line, format!("{key}: expected a host name, got {v:?}"));
                } else {
                    self.s.hostname = Some(v.to_owned());
                }
            }
            _ => return false,
        }
        true
    }

    fn route(&mut self, e: &Entry, d: &mut Diag) {
        let line = e.line;
        match value::parse_route(&e.value) {
            Ok(Route::Default) => {
                self.default_route_line.get_or_insert(line);
            }
            Ok(Route::Net { net, given }) => {
                warn_host_bits(d, line, "route", net, given);
                self.any_route = true;
                if self.routes.contains(&net) {
                    d.warn(line, format!("route {net} is listed twice"));
                } else {
                    self.routes.push(net);
                    self.route_lines.push((line, net));
                }
            }
            Err(m) => d.error(line, format!("route: {m}")),
        }
    }

    /// The settings of this file. In the global scope, lists that were not given are empty
    /// and no routes at all means a default route (ocserv sends no split-include then, so
    /// clients route everything through the VPN).
    pub(super) fn finish(mut self, scope: Scope, d: &mut Diag) -> NetSettings {
        // Routes.
        if let Some(default_line) = self.default_route_line {
            for (line, net) in &self.route_lines {
                d.warn(
                    *line,
                    format!(
                        "route {net} is ignored: route = default on line {default_line} sends \
                         all traffic through the VPN"
                    ),
                );
            }
            self.s.routes = Some(Vec::new());
            self.s.default_route = Some(true);
        } else if self.any_route {
            self.s.routes = Some(std::mem::take(&mut self.routes));
            self.s.default_route = Some(false);
        } else if scope == Scope::Global {
            self.s.routes = Some(Vec::new());
            self.s.default_route = Some(true);
        }

        // IPv4 pool.
        if let Some((net, len, net_line)) = self.v4.finish(d) {
            if len > 30 {
                d.warn(
                    net_line,
                    format!(
                        "ipv4-network {net} is too small to lease addresses to clients (use /30 \
                         or larger)"
                    ),
                );
            }
            self.s.ipv4_network = Some(net);
        }

        // IPv6 pool.
        if let Some((net, len, net_line)) = self.v6.finish(d) {
            let subnet = match (scope, self.s.ipv6_subnet_prefix) {
                (_, Some(p)) => Some(p),
                (Scope::Global, None) => Some(defaults::IPV6_SUBNET_PREFIX),
                (Scope::Override, None) => None,
            };
            if let Some(subnet) = subnet {
                if len >= subnet {
                    let line = if self.subnet_prefix_line != 0 {
                        self.subnet_prefix_line
                    } else {
                        net_line
                    };
                    d.error(
                        line,
                        format!(
                            "ipv6-subnet-prefix ({subnet}) must be longer than the ipv6-network \
                             prefix (/{len})"
                        ),
                    );
                }
            }
            self.s.ipv6_network = Some(net);
        }

        if scope == Scope::Global {
            self.s.no_routes.get_or_insert_with(Vec::new);
            self.s.dns.get_or_insert_with(Vec::new);
            self.s.nbns.get_or_insert_with(Vec::new);
            self.s.split_dns.get_or_insert_with(Vec::new);
        }
        self.s
    }
}

fn warn_host_bits(d: &mut Diag, line: usize, key: &str, net: IpNet, given: Option<IpNet>) {
    if let Some(given) = given {
        d.warn(
            line,
            format!(
                "{key} {given} has host bits set; using {net} (did you mean {net}? Cisco clients \
                 reject routes with host bits set)"
            ),
        );
    }
}

/// Stores `v` in `slot` if there is one (an invalid value has been reported and leaves the
/// slot as it was).
pub(super) fn set<T>(slot: &mut Option<T>, v: Option<T>) {
    if v.is_some() {
        *slot = v;
    }
}

fn set_bool(slot: &mut Option<bool>, e: &Entry, d: &mut Diag) {
    set(slot, boolean(e, d));
}

/// The value parsed from `e`, or `None` after reporting the parser's message as an error at
/// `e`'s line, naming the key.
pub(super) fn checked<T>(e: &Entry, d: &mut Diag, parsed: Result<T, String>) -> Option<T> {
    parsed
        .map_err(|m| d.error(e.line, format!("{}: {m}", e.key)))
        .ok()
}

/// `e`'s value as a boolean, or an error naming the key.
pub(super) fn boolean(e: &Entry, d: &mut Diag) -> Option<bool> {
    checked(e, d, value::parse_bool(&e.value))
}

/// `e`'s value as a number of seconds.
pub(super) fn secs(e: &Entry, d: &mut Diag) -> Option<u32> {
    num(e, d, "a number of seconds")
}

/// `e`'s value as a number; `what` says what kind.
pub(super) fn num<T: FromStr>(e: &Entry, d: &mut Diag, what: &str) -> Option<T> {
    checked(e, d, value::parse_uint(&e.value, what))
}
