//! A user's effective settings, the lease request they make, and the plain settings the
//! tunnel planner (`oc_proto::anyconnect::tunnel_plan`) takes.

use oc_proto::anyconnect::server_connect::ClientConnect;
use oc_proto::anyconnect::tunnel_plan::PlanSettings;
use tracing::warn;

use std::path::Path;

use oc_proto::ipc::{LeaseAsk, MainReply, MainRequest, SettingsFile};

use super::Server;
use crate::config::{self, Config, NetSettings, RekeyMethod};

/// Global settings overlaid with the group's then the user's file (ocserv's precedence;
/// the main process picked each file, or the default one, and read it). A broken file
/// refuses the login: falling back to the global settings would hand out what the file
/// meant to restrict.
pub fn settings_from_files(
    config: &Config,
    group: Option<&SettingsFile>,
    user: Option<&SettingsFile>,
) -> Result<NetSettings, config::ConfigError> {
    let mut settings = config.net.clone();
    for file in [group, user].into_iter().flatten() {
        let (over, problems) = config::parse_override_bytes(&file.bytes, Path::new(&file.path))?;
        for p in problems {
            warn!("{p}");
        }
        settings = settings.overlay(&over);
    }
    Ok(settings)
}

impl Server {
    /// A user's effective settings, from the files the main process reads for us (this
    /// process may be chrooted and cannot read root-only files).
    pub(super) async fn user_settings(
        &self,
        config: &Config,
        user: &str,
        group: Option<&str>,
    ) -> Result<NetSettings, String> {
        if config.config_per_user.is_none() && config.config_per_group.is_none() {
            return Ok(config.net.clone());
        }
        let request = MainRequest::UserFiles {
            user: user.to_string(),
            group: group.map(str::to_string),
        };
        match self.links.main(request).await {
            MainReply::UserFiles { group, user } => {
                settings_from_files(config, group.as_ref(), user.as_ref())
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

#[cfg(test)]
mod tests {
    use oc_proto::anyconnect::tunnel_plan::DEFAULT_KEEPALIVE;

    use crate::config::defaults;

    #[test]
    fn planner_and_config_agree_on_the_keepalive_default() {
        assert_eq!(DEFAULT_KEEPALIVE, defaults::KEEPALIVE);
    }
}
