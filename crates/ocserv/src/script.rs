//! `connect-script` / `disconnect-script`: the environment ocserv gives them, and running
//! them off the packet path with a time limit.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use oc_proto::ipc::ScriptKind;
use thiserror::Error;

use crate::config::NetSettings;
use crate::pool::Lease;

/// A script that has not finished by then is killed and counts as failed.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the environment is made from.
#[derive(Debug, Clone)]
pub struct ScriptInfo<'a> {
    pub id: u64,
    pub user: &'a str,
    pub group: Option<&'a str>,
    /// The virtual host's name, or `default`.
    pub vhost: &'a str,
    pub hostname: Option<&'a str>,
    pub device: &'a str,
    pub user_agent: &'a str,
    pub device_type: Option<&'a str>,
    pub platform: Option<&'a str>,
    pub remote: IpAddr,
    pub local: IpAddr,
    pub server_v4: Option<IpAddr>,
    pub server_v6: Option<IpAddr>,
    pub lease: Lease,
    pub settings: &'a NetSettings,
    /// Bytes from and to the client and seconds connected (disconnect only).
    pub stats: Option<(u64, u64, u64)>,
}

/// ocserv's list form: each item followed by a space (`"a b "`); None when empty, since
/// ocserv then leaves the variable unset.
fn listed(items: impl Iterator<Item = String>) -> Option<String> {
    let text: String = items.map(|i| i + " ").collect();
    (!text.is_empty()).then_some(text)
}

/// A route as ocserv writes it for scripts and occtl: IPv4 as address/netmask, IPv6 as
/// address/prefix.
pub fn route_text(route: &IpNet) -> String {
    match route {
        IpNet::V4(net) => format!("{}/{}", net.network(), net.netmask()),
        IpNet::V6(net) => net.to_string(),
    }
}

/// `NAME`, `NAME4` and `NAME6` as ocserv sets them: every item, the IPv4 ones, the IPv6
/// ones, each list unset when empty.
fn family_lists<T>(
    env: &mut Vec<(String, String)>,
    name: &str,
    items: &[T],
    is_v4: fn(&T) -> bool,
    text: fn(&T) -> String,
) {
    let lists = [
        (name.to_string(), listed(items.iter().map(text))),
        (
            format!("{name}4"),
            listed(items.iter().filter(|i| is_v4(i)).map(text)),
        ),
        (
            format!("{name}6"),
            listed(items.iter().filter(|i| !is_v4(i)).map(text)),
        ),
    ];
    env.extend(lists.into_iter().filter_map(|(k, v)| Some((k, v?))));
}

fn routes_env(env: &mut Vec<(String, String)>, name: &str, routes: &[IpNet]) {
    family_lists(env, name, routes, |r| r.addr().is_ipv4(), route_text);
}

/// The variables ocserv sets for its scripts.
pub fn script_env(reason: ScriptKind, info: &ScriptInfo<'_>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let mut set = |k: &str, v: String| env.push((k.to_string(), v));
    set(
        "REASON",
        match reason {
            ScriptKind::Connect => "connect",
            ScriptKind::Disconnect => "disconnect",
            ScriptKind::HostUpdate => "host-update",
        }
        .into(),
    );
    set("ID", info.id.to_string());
    set("USERNAME", info.user.into());
    set("GROUPNAME", info.group.unwrap_or_default().into());
    set("VHOST", info.vhost.into());
    set("HOSTNAME", info.hostname.unwrap_or_default().into());
    set("REMOTE_HOSTNAME", info.hostname.unwrap_or_default().into());
    set("DEVICE", info.device.into());
    set("USER_AGENT", info.user_agent.into());
    set("DEVICE_TYPE", info.device_type.unwrap_or_default().into());
    set("DEVICE_PLATFORM", info.platform.unwrap_or_default().into());
    set("IP_REAL", info.remote.to_string());
    set("IP_REAL_LOCAL", info.local.to_string());
    if let (Some(local), Some(remote)) = (info.server_v4, info.lease.v4) {
        set("IP_LOCAL", local.to_string());
        set("IP_REMOTE", remote.to_string());
    }
    if let (Some(local), Some(remote)) = (info.server_v6, info.lease.v6) {
        set("IPV6_LOCAL", local.to_string());
        set("IPV6_REMOTE", remote.addr().to_string());
        set("IPV6_PREFIX", remote.prefix_len().to_string());
    }
    if let Some((bytes_in, bytes_out, duration)) = info.stats {
        set("STATS_BYTES_IN", bytes_in.to_string());
        set("STATS_BYTES_OUT", bytes_out.to_string());
        set("STATS_DURATION", duration.to_string());
    }
    let s = info.settings;
    if s.default_route == Some(true) {
        routes_env(&mut env, "OCSERV_ROUTES", &[]);
    } else {
        routes_env(
            &mut env,
            "OCSERV_ROUTES",
            s.routes.as_deref().unwrap_or_default(),
        );
    }
    routes_env(
        &mut env,
        "OCSERV_NO_ROUTES",
        s.no_routes.as_deref().unwrap_or_default(),
    );
    let dns = s.dns.as_deref().unwrap_or_default();
    family_lists(
        &mut env,
        "OCSERV_DNS",
        dns,
        IpAddr::is_ipv4,
        ToString::to_string,
    );
    // restrict-user-to-ports implies restrict-user-to-routes, as in ocserv.
    if s.restrict_user_to_routes == Some(true) || s.restrict_user_to_ports.is_some() {
        env.push(("OCSERV_RESTRICT_TO_ROUTES".into(), "1".into()));
    }
    if let Some(ports) = &s.restrict_user_to_ports {
        let name = if ports.negated {
            "OCSERV_DENY_PORTS"
        } else {
            "OCSERV_ALLOW_PORTS"
        };
        env.push((name.into(), ports.script_form()));
    }
    env
}

#[derive(Debug, Error)]
pub enum ScriptError {
    #[error("cannot start script {path}: {source}")]
    Spawn {
        path: String,
        source: std::io::Error,
    },
    #[error("script {path} exited with {status}")]
    Failed { path: String, status: String },
    #[error("script {path} did not finish within {}s and was killed", SCRIPT_TIMEOUT.as_secs())]
    Timeout { path: String },
}

/// Runs `path` through `/bin/sh -c` (as ocserv does) with `env` added; its output goes to
/// our stderr. Fails on a non-zero exit or after [`SCRIPT_TIMEOUT`]. The main process runs
/// it as root, on the thread of the request that asked for it.
pub fn run(path: &Path, env: &[(String, String)]) -> Result<(), ScriptError> {
    let shown = path.display().to_string();
    let spawn_err = |source| ScriptError::Spawn {
        path: shown.clone(),
        source,
    };
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(path.as_os_str())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::inherit())
        .spawn()
        .map_err(spawn_err)?;
    let deadline = std::time::Instant::now() + SCRIPT_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(spawn_err)? {
            if status.success() {
                return Ok(());
            }
            return Err(ScriptError::Failed {
                path: shown,
                status: status.to_string(),
            });
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ScriptError::Timeout { path: shown });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Routes `net` to the tun device `device` (`ip route replace`, as root).
pub fn add_route(device: &str, net: IpNet) -> Result<(), ScriptError> {
    let family = if matches!(net, IpNet::V4(_)) {
        "-4"
    } else {
        "-6"
    };
    let mut ip = std::process::Command::new("ip");
    ip.args([family, "route", "replace", &net.to_string(), "dev", device])
        .stderr(std::process::Stdio::null());
    run_to_success(ip, format!("ip {family} route replace {net} dev {device}"))
}

/// `route-add-cmd` for `net` on `device`, with ocserv's substitutions, through /bin/sh as
/// root. The route and the device name are checked values (no shell syntax can come in).
pub fn run_route_command(pattern: &str, net: IpNet, device: &str) -> Result<(), ScriptError> {
    let command = route_command(pattern, net, device);
    let mut sh = std::process::Command::new("/bin/sh");
    sh.args(["-c", &command]);
    run_to_success(sh, command)
}

/// Runs `command` (shown as `what` in errors) with no input; an error unless it exits 0.
fn run_to_success(mut command: std::process::Command, what: String) -> Result<(), ScriptError> {
    let status = command
        .stdin(std::process::Stdio::null())
        .status()
        .map_err(|source| ScriptError::Spawn {
            path: what.clone(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(ScriptError::Failed {
            path: what,
            status: status.to_string(),
        })
    }
}

/// ocserv's substitutions in route commands: `%{RI}` the route as address/prefix,
/// `%{R}`/`%R` as ocserv writes routes (IPv4 address/netmask), `%{D}`/`%D` the device.
fn route_command(pattern: &str, net: IpNet, device: &str) -> String {
    let route = route_text(&net);
    pattern
        .replace("%{RI}", &net.to_string())
        .replace("%{R}", &route)
        .replace("%{D}", device)
        .replace("%R", &route)
        .replace("%D", device)
}

/// `ping-leases`: whether `addr` answers one ping within a second (in use elsewhere).
pub fn answers_ping(addr: std::net::Ipv4Addr) -> bool {
    std::process::Command::new("ping")
        .args(["-c", "1", "-W", "1", "-q", &addr.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn environment_matches_ocserv_names() {
        let settings = NetSettings {
            routes: Some(vec![
                "10.0.0.0/8".parse().unwrap(),
                "fd00::/8".parse().unwrap(),
            ]),
            dns: Some(vec!["10.0.0.53".parse().unwrap()]),
            restrict_user_to_routes: Some(true),
            restrict_user_to_ports: Some(
                oc_proto::port_filter::PortRules::parse("tcp(443), icmp()").unwrap(),
            ),
            ..Default::default()
        };
        let info = ScriptInfo {
            id: 7,
            user: "alice",
            group: Some("staff"),
            vhost: "vpn.example.com",
            hostname: Some("laptop"),
            device: "vpns0",
            user_agent: "Open AnyConnect VPN Agent v9.01",
            device_type: None,
            platform: None,
            remote: "198.18.0.2".parse().unwrap(),
            local: "198.18.0.1".parse().unwrap(),
            server_v4: Some("10.9.0.1".parse().unwrap()),
            server_v6: None,
            lease: Lease {
                v4: Some("10.9.0.5".parse().unwrap()),
                v6: None,
            },
            settings: &settings,
            stats: Some((100, 200, 3)),
        };
        let env = script_env(ScriptKind::Disconnect, &info);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("REASON"), Some("disconnect"));
        assert_eq!(get("USERNAME"), Some("alice"));
        assert_eq!(get("GROUPNAME"), Some("staff"));
        assert_eq!(get("IP_REMOTE"), Some("10.9.0.5"));
        assert_eq!(get("IP_LOCAL"), Some("10.9.0.1"));
        // ocserv's forms, which firewall scripts parse: IPv4 as address/netmask, each
        // item followed by a space, unset when empty.
        assert_eq!(get("OCSERV_ROUTES"), Some("10.0.0.0/255.0.0.0 fd00::/8 "));
        assert_eq!(get("OCSERV_ROUTES4"), Some("10.0.0.0/255.0.0.0 "));
        assert_eq!(get("OCSERV_ROUTES6"), Some("fd00::/8 "));
        assert_eq!(get("OCSERV_DNS4"), Some("10.0.0.53 "));
        assert_eq!(get("OCSERV_NO_ROUTES"), None);
        assert_eq!(get("OCSERV_RESTRICT_TO_ROUTES"), Some("1"));
        assert_eq!(get("OCSERV_ALLOW_PORTS"), Some("tcp 443 icmp all "));
        assert_eq!(get("OCSERV_DENY_PORTS"), None);
        assert_eq!(get("STATS_BYTES_OUT"), Some("200"));
        assert_eq!(get("IPV6_REMOTE"), None);
        assert_eq!(get("VHOST"), Some("vpn.example.com"));
        // Every variable passes the main process's check of script requests.
        for (name, _) in &env {
            assert!(
                oc_proto::ipc::SCRIPT_VARIABLES.contains(&name.as_str()),
                "{name} would be refused"
            );
        }
        // A block list is the DENY form; host-update is its own reason.
        let blocked = NetSettings {
            restrict_user_to_ports: Some(
                oc_proto::port_filter::PortRules::parse("!(tcp(25))").unwrap(),
            ),
            ..settings.clone()
        };
        let env = script_env(
            ScriptKind::HostUpdate,
            &ScriptInfo {
                settings: &blocked,
                ..info
            },
        );
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("REASON"), Some("host-update"));
        assert_eq!(get("OCSERV_DENY_PORTS"), Some("tcp 25 "));
        assert_eq!(get("OCSERV_ALLOW_PORTS"), None);
    }

    #[test]
    fn route_commands_get_ocserv_substitutions() {
        let net: IpNet = "192.168.1.0/24".parse().unwrap();
        assert_eq!(
            route_command(
                "echo %R %{RI} %D > ./t; ip route add %{R} dev %{D}",
                net,
                "vpns0"
            ),
            "echo 192.168.1.0/255.255.255.0 192.168.1.0/24 vpns0 > ./t; \
             ip route add 192.168.1.0/255.255.255.0 dev vpns0"
        );
        let v6: IpNet = "fd00:1::/64".parse().unwrap();
        assert_eq!(
            route_command("%R %{RI}", v6, "t"),
            "fd00:1::/64 fd00:1::/64"
        );
    }

    #[test]
    fn exit_status_is_reported() {
        let dir = std::env::temp_dir().join(format!("fc-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("s.sh");
        std::fs::write(&script, "#!/bin/sh\n[ \"$USERNAME\" = alice ]\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ok = vec![("USERNAME".to_string(), "alice".to_string())];
        assert!(run(&script, &ok).is_ok());
        let bad = vec![("USERNAME".to_string(), "bob".to_string())];
        assert!(matches!(
            run(&script, &bad),
            Err(ScriptError::Failed { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
