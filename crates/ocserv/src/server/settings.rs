//! A user's effective settings, the lease request they make, and the plain settings the
//! tunnel planner (`oc_proto::anyconnect::tunnel_plan`) takes.

use std::path::Path;

use ipnet::{IpNet, Ipv4Net};
use oc_proto::anyconnect::server_connect::ClientConnect;
use oc_proto::anyconnect::tunnel_plan::PlanSettings;
use oc_proto::ipc::{Granted, LeaseAsk, MainReply, MainRequest, SettingsFile};
use tracing::warn;

use super::{Runtime, Server};
use crate::config::{self, Config, NetSettings, RekeyMethod};

/// Global settings overlaid with the group's then the user's file (ocserv's precedence;
/// the main process picked each file, or the default one, and read it). A broken file
/// refuses the login: falling back to the global settings would hand out what the file
/// meant to restrict.
pub fn settings_from_files(
    config: &Config,
    group: Option<&SettingsFile>,
    user: Option<&SettingsFile>,
    known_iroutes: &[IpNet],
) -> Result<NetSettings, config::ConfigError> {
    let mut settings = config.net.clone();
    for file in [group, user].into_iter().flatten() {
        let (over, problems) = config::parse_override_bytes(&file.bytes, Path::new(&file.path))?;
        for p in problems {
            warn!("{p}");
        }
        settings = settings.overlay(&over);
    }
    let global = config.net.routes.as_deref().unwrap_or_default();
    let appended = if config.append_routes { global } else { &[] };
    let own_iroutes = settings.iroutes.clone().unwrap_or_default();
    let exposed = known_iroutes.iter().filter(|n| !own_iroutes.contains(n));
    // As ocserv: added to the user's list, which can turn a default route into split ones.
    let extra: Vec<IpNet> = appended.iter().chain(exposed).copied().collect();
    if !extra.is_empty() {
        let routes = settings.routes.get_or_insert_with(Vec::new);
        for net in extra {
            if !routes.contains(&net) {
                routes.push(net);
            }
        }
    }
    Ok(settings)
}

impl Server {
    /// A user's effective settings, from the files the main process reads for us (this
    /// process may be chrooted and cannot read root-only files).
    pub(super) async fn user_settings(
        &self,
        host: &Runtime,
        user: &str,
        group: Option<&str>,
    ) -> Result<NetSettings, String> {
        let config = &host.config;
        if config.config_per_user.is_none() && config.config_per_group.is_none() {
            return Ok(config.net.clone());
        }
        let request = MainRequest::UserFiles {
            user: user.to_string(),
            group: group.map(str::to_string),
            vhost: host.name.clone(),
        };
        match self.links.main(request).await {
            MainReply::UserFiles { group, user } => {
                settings_from_files(config, group.as_ref(), user.as_ref(), &host.known_iroutes)
                    .map_err(|e| e.to_string())
            }
            MainReply::Failed(e) => Err(e),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }
}

/// What a user's session leases from the pools: the families the client wants (IPv4 also
/// when it names neither), predictably per user if configured.
pub(super) fn lease_ask(
    settings: &NetSettings,
    client: &ClientConnect,
    config: &Config,
) -> LeaseAsk {
    LeaseAsk {
        v4: settings
            .ipv4_network
            .filter(|_| client.wants_ipv4 || !client.wants_ipv6),
        v6: settings
            .ipv6_network
            .filter(|_| client.wants_ipv6)
            .map(|n| (n, settings.ipv6_subnet_prefix.unwrap_or(128))),
        predictable: config.predictable_ips,
        explicit_v4: settings.explicit_ipv4,
        explicit_v6: settings.explicit_ipv6,
    }
}

/// The planner's view of a user's effective settings and the server-wide keys it needs.
pub(super) fn plan_settings(settings: &NetSettings, config: &Config) -> PlanSettings {
    PlanSettings {
        mtu: settings.mtu,
        dpd: settings.dpd,
        mobile_dpd: settings.mobile_dpd,
        idle_timeout: settings.idle_timeout,
        mobile_idle_timeout: settings.mobile_idle_timeout,
        keepalive: settings.keepalive,
        session_timeout: settings.session_timeout,
        routes: settings.routes.clone(),
        default_route: settings.default_route,
        no_routes: settings.no_routes.clone(),
        // restrict-user-to-ports implies restrict-user-to-routes, as in ocserv.
        restrict_user_to_routes: Some(
            settings.restrict_user_to_routes.unwrap_or(false)
                || settings.restrict_user_to_ports.is_some(),
        ),
        dns: settings.dns.clone(),
        nbns: settings.nbns.clone(),
        split_dns: settings.split_dns.clone(),
        default_domain: settings.default_domain.clone(),
        tunnel_all_dns: settings.tunnel_all_dns,
        client_bypass_protocol: settings.client_bypass_protocol.unwrap_or(false),
        dyndns: config.listen_host_is_dyndns,
        hostname: settings.hostname.clone(),
        ipv4_network: settings.ipv4_network,
        ipv6_network: settings.ipv6_network,
        udp_port: config.udp_port,
        rekey_time: config.rekey_time,
        rekey_ssl: config.rekey_method == RekeyMethod::Ssl,
        compression: config.compression,
        compression_priorities: config.compression_priorities,
        no_compress_limit: config.no_compress_limit,
        banner: config.banner.clone(),
        custom_headers: config.custom_headers.clone(),
    }
}

/// What a login's back end granted (RADIUS with `groupconfig`), as settings over the
/// user's: an explicit address (in the network its netmask gives), the IPv6 address or
/// prefix, routes and DNS servers (replacing the configured lists), timers and limits.
pub(super) fn granted_settings(g: &Granted) -> NetSettings {
    let ipv4_network = match (g.ipv4, g.ipv4_netmask) {
        (Some(ip), Some(mask)) => Ipv4Net::with_netmask(ip, mask).ok().map(|n| n.trunc()),
        _ => None,
    };
    NetSettings {
        explicit_ipv4: g.ipv4,
        ipv4_network,
        explicit_ipv6: g.ipv6.map(|n| n.addr()),
        ipv6_network: g.ipv6.map(|n| n.trunc()),
        ipv6_subnet_prefix: g.ipv6.map(|n| n.prefix_len()),
        routes: (!g.routes.is_empty()).then(|| g.routes.clone()),
        dns: (!g.dns.is_empty()).then(|| g.dns.clone()),
        session_timeout: g.session_timeout,
        idle_timeout: g.idle_timeout,
        stats_report_time: g.interim_interval,
        rx_data_per_sec: g.rx_per_sec,
        tx_data_per_sec: g.tx_per_sec,
        ..NetSettings::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use oc_proto::anyconnect::tunnel_plan::DEFAULT_KEEPALIVE;

    use super::*;
    use crate::config::defaults;

    #[test]
    fn planner_and_config_agree_on_the_keepalive_default() {
        assert_eq!(DEFAULT_KEEPALIVE, defaults::KEEPALIVE);
    }

    fn file(text: &str) -> SettingsFile {
        SettingsFile {
            path: "alice".into(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn config(extra: &str) -> Config {
        let text = format!(
            "auth = \"plain[passwd=/p]\"\ntcp-port = 443\nserver-cert = /c\nserver-key = /k\n\
             ipv4-network = 10.9.0.0/24\nroute = 10.1.0.0/16\n{extra}"
        );
        config::parse(&text, Path::new("t.conf"), false)
            .unwrap()
            .config
    }

    /// upstream's test-user-config: with expose-iroutes a user gets the others' iroutes
    /// (never its own) as routes, after its own routes.
    #[test]
    fn expose_iroutes_adds_the_other_users_iroutes() {
        let known = nets(&["192.168.1.0/24", "192.168.2.0/24"]);
        let user = file("iroute = 192.168.2.0/24\nroute = 192.168.5.0/24\n");
        let exposing = config("expose-iroutes = true\n");
        let s = settings_from_files(&exposing, None, Some(&user), &known).unwrap();
        assert_eq!(
            s.routes.unwrap(),
            nets(&["192.168.5.0/24", "192.168.1.0/24"])
        );
        // Nothing known: the user's routes as written.
        let s = settings_from_files(&config(""), None, Some(&user), &[]).unwrap();
        assert_eq!(s.routes.unwrap(), nets(&["192.168.5.0/24"]));
    }

    #[test]
    fn append_routes_keeps_the_global_routes_next_to_a_users() {
        let user = file("route = 192.168.5.0/24\n");
        let appending = config("append-routes = true\n");
        let appended = settings_from_files(&appending, None, Some(&user), &[]).unwrap();
        assert_eq!(
            appended.routes.unwrap(),
            nets(&["192.168.5.0/24", "10.1.0.0/16"])
        );
        let replaced = settings_from_files(&config(""), None, Some(&user), &[]).unwrap();
        assert_eq!(replaced.routes.unwrap(), nets(&["192.168.5.0/24"]));
        // No user routes: the global ones, once.
        let none = settings_from_files(&appending, None, None, &[]).unwrap();
        assert_eq!(none.routes.unwrap(), nets(&["10.1.0.0/16"]));
    }

    #[test]
    fn a_radius_grant_sets_the_address_network_lists_and_timers() {
        let granted = Granted {
            ipv4: Some("192.168.7.2".parse().unwrap()),
            ipv4_netmask: Some("255.255.255.0".parse().unwrap()),
            ipv6: Some("2001:db8:5::7/64".parse().unwrap()),
            routes: vec!["192.168.100.0/24".parse().unwrap()],
            dns: vec!["10.0.0.53".parse().unwrap()],
            session_timeout: Some(60),
            interim_interval: Some(20),
            rx_per_sec: Some(16_000),
            ..Granted::default()
        };
        let s = granted_settings(&granted);
        assert_eq!(s.explicit_ipv4, granted.ipv4);
        assert_eq!(s.ipv4_network, Some("192.168.7.0/24".parse().unwrap()));
        assert_eq!(s.explicit_ipv6, Some("2001:db8:5::7".parse().unwrap()));
        assert_eq!(s.ipv6_network, Some("2001:db8:5::/64".parse().unwrap()));
        assert_eq!(s.ipv6_subnet_prefix, Some(64));
        assert_eq!(s.routes, Some(granted.routes.clone()));
        assert_eq!(s.dns, Some(granted.dns.clone()));
        assert_eq!(
            (s.session_timeout, s.stats_report_time),
            (Some(60), Some(20))
        );
        assert_eq!((s.rx_data_per_sec, s.tx_data_per_sec), (Some(16_000), None));
        // Nothing granted leaves the configured lists alone.
        let none = granted_settings(&Granted::default());
        assert_eq!(
            (none.routes, none.dns, none.explicit_ipv4),
            (None, None, None)
        );
    }
}
