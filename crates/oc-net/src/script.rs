//! The vpnc-script environment, as openconnect sets it, and the script runner.

use std::net::IpAddr;
use std::process::{Command, ExitStatus};

use ipnet::{Ipv4Net, Ipv6Net};
use oc_proto::ip_config::IpConfig;
use oc_proto::url::percent_decode;
use thiserror::Error;

/// Why the script is being run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    PreInit,
    Connect,
    Disconnect,
    AttemptReconnect,
    Reconnect,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreInit => "pre-init",
            Self::Connect => "connect",
            Self::Disconnect => "disconnect",
            Self::AttemptReconnect => "attempt-reconnect",
            Self::Reconnect => "reconnect",
        }
    }
}

/// Everything the environment is computed from.
#[derive(Debug, Clone, Copy)]
pub struct ScriptContext<'a> {
    pub tundev: Option<&'a str>,
    /// The server address we are connected to.
    pub gateway: Option<IpAddr>,
    pub pid: u32,
    /// 0 = errors only ... 3 = trace, as openconnect's `-v` count.
    pub log_level: u8,
    /// The tunnel's network settings; `None` before the tunnel is set up (pre-init).
    pub tunnel: Option<&'a IpConfig>,
}

/// Every variable openconnect may set. Those we do not set for a run are removed from the
/// inherited environment, so a stale value from our own parent never leaks into the script.
const MANAGED: &[&str] = &[
    "reason",
    "VPNGATEWAY",
    "VPNPID",
    "TUNDEV",
    "LOG_LEVEL",
    "IDLE_TIMEOUT",
    "INTERNAL_IP4_MTU",
    "INTERNAL_IP4_ADDRESS",
    "INTERNAL_IP4_NETMASK",
    "INTERNAL_IP4_NETMASKLEN",
    "INTERNAL_IP4_NETADDR",
    "INTERNAL_IP4_DNS",
    "INTERNAL_IP4_NBNS",
    "INTERNAL_IP6_ADDRESS",
    "INTERNAL_IP6_NETMASK",
    "CISCO_DEF_DOMAIN",
    "CISCO_BANNER",
    "CISCO_PROXY_PAC",
    "CISCO_SPLIT_DNS",
    "CISCO_SPLIT_INC",
    "CISCO_SPLIT_EXC",
    "CISCO_IPV6_SPLIT_INC",
    "CISCO_IPV6_SPLIT_EXC",
    "CISCO_CSTP_OPTIONS",
];

/// Builds the variables for one run, in a stable order. Split routes are numbered from the
/// last header received, as openconnect numbers them.
pub fn script_env(reason: Reason, ctx: &ScriptContext<'_>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let mut set = |k: &str, v: String| env.push((k.to_string(), v));
    set("reason", reason.as_str().to_string());
    if let Some(gw) = ctx.gateway {
        set("VPNGATEWAY", gw.to_string());
    }
    set("VPNPID", ctx.pid.to_string());
    set("LOG_LEVEL", ctx.log_level.to_string());
    if let Some(dev) = ctx.tundev {
        set("TUNDEV", dev.to_string());
    }
    let Some(cfg) = ctx.tunnel else {
        return env;
    };
    set("INTERNAL_IP4_MTU", cfg.mtu.to_string());
    if let Some(idle) = cfg.idle_timeout {
        set("IDLE_TIMEOUT", idle.as_secs().to_string());
    }
    if let Some(addr) = cfg.ipv4 {
        set("INTERNAL_IP4_ADDRESS", addr.to_string());
        if let (Some(mask), Some(net)) = (cfg.ipv4_netmask, cfg.ipv4_net()) {
            set("INTERNAL_IP4_NETMASK", mask.to_string());
            set("INTERNAL_IP4_NETMASKLEN", net.prefix_len().to_string());
            set("INTERNAL_IP4_NETADDR", net.network().to_string());
        }
    }
    if let Some(v6) = cfg.ipv6 {
        set("INTERNAL_IP6_ADDRESS", v6.addr().to_string());
        set("INTERNAL_IP6_NETMASK", v6.to_string());
    }
    if !cfg.dns.is_empty() {
        let dns: Vec<String> = cfg.dns.iter().take(3).map(IpAddr::to_string).collect();
        set("INTERNAL_IP4_DNS", dns.join(" "));
    }
    if !cfg.nbns.is_empty() {
        let nbns: Vec<String> = cfg.nbns.iter().take(3).map(IpAddr::to_string).collect();
        set("INTERNAL_IP4_NBNS", nbns.join(" "));
    }
    if let Some(d) = &cfg.default_domain {
        set("CISCO_DEF_DOMAIN", d.clone());
    }
    if let Some(b) = &cfg.banner {
        // `%XX` escapes in the banner: Cisco sends line breaks that way.
        set("CISCO_BANNER", percent_decode(b, false));
    }
    if let Some(p) = &cfg.proxy_pac {
        set("CISCO_PROXY_PAC", p.clone());
    }
    if !cfg.split_dns.is_empty() {
        let domains: Vec<&str> = cfg.split_dns.iter().rev().map(String::as_str).collect();
        set("CISCO_SPLIT_DNS", domains.join(","));
    }
    push_v4_routes(&mut env, "CISCO_SPLIT_INC", &cfg.split_include4);
    push_v4_routes(&mut env, "CISCO_SPLIT_EXC", &cfg.split_exclude4);
    push_v6_routes(&mut env, "CISCO_IPV6_SPLIT_INC", &cfg.split_include6);
    push_v6_routes(&mut env, "CISCO_IPV6_SPLIT_EXC", &cfg.split_exclude6);
    if !cfg.options.is_empty() {
        let lines: Vec<String> = cfg
            .options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.push(("CISCO_CSTP_OPTIONS".to_string(), lines.join("\n")));
    }
    env
}

fn push_v4_routes(env: &mut Vec<(String, String)>, prefix: &str, routes: &[Ipv4Net]) {
    let entries = routes.iter().map(|n| {
        let mask = n.netmask().to_string();
        (n.network().to_string(), Some(mask), n.prefix_len())
    });
    push_routes(env, prefix, entries);
}

fn push_v6_routes(env: &mut Vec<(String, String)>, prefix: &str, routes: &[Ipv6Net]) {
    let entries = routes
        .iter()
        .map(|n| (n.network().to_string(), None, n.prefix_len()));
    push_routes(env, prefix, entries);
}

/// `PREFIX` = count, then `PREFIX_<i>_ADDR`, `_MASK` (IPv4 only), `_MASKLEN`, numbered from
/// the last route received.
fn push_routes(
    env: &mut Vec<(String, String)>,
    prefix: &str,
    routes: impl DoubleEndedIterator<Item = (String, Option<String>, u8)> + ExactSizeIterator,
) {
    if routes.len() == 0 {
        return;
    }
    env.push((prefix.to_string(), routes.len().to_string()));
    for (i, (addr, mask, len)) in routes.rev().enumerate() {
        env.push((format!("{prefix}_{i}_ADDR"), addr));
        if let Some(mask) = mask {
            env.push((format!("{prefix}_{i}_MASK"), mask));
        }
        env.push((format!("{prefix}_{i}_MASKLEN"), len.to_string()));
    }
}

#[derive(Debug, Error)]
pub enum ScriptError {
    #[error("cannot run vpnc-script {script:?}: {source}")]
    Spawn {
        script: String,
        source: std::io::Error,
    },
}

/// Runs `script` through `/bin/sh -c` (so it may carry arguments, as with openconnect) and
/// waits for it. The script's output goes to our stdout/stderr.
pub fn run_script(
    script: &str,
    reason: Reason,
    ctx: &ScriptContext<'_>,
) -> Result<ExitStatus, ScriptError> {
    script_command(script, script_env(reason, ctx))
        .status()
        .map_err(|source| ScriptError::Spawn {
            script: script.to_string(),
            source,
        })
}

/// `/bin/sh -c script` with exactly these tunnel variables: ours from an earlier run or
/// the caller's environment are removed first.
pub(crate) fn script_command(script: &str, env: Vec<(String, String)>) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(script);
    for name in MANAGED {
        cmd.env_remove(name);
    }
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_numbered_route_var) {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env);
    cmd
}

fn is_numbered_route_var(name: &str) -> bool {
    [
        "CISCO_SPLIT_INC_",
        "CISCO_SPLIT_EXC_",
        "CISCO_IPV6_SPLIT_INC_",
        "CISCO_IPV6_SPLIT_EXC_",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config() -> IpConfig {
        IpConfig {
            mtu: 1400,
            ipv4: Some("198.18.100.7".parse().unwrap()),
            ipv4_netmask: Some("255.255.255.0".parse().unwrap()),
            ipv6: Some("fd00:1::7/64".parse().unwrap()),
            dns: vec!["198.18.1.53".parse().unwrap(), "fd00::53".parse().unwrap()],
            default_domain: Some("example.com".into()),
            split_dns: vec!["a.example".into(), "b.example".into()],
            split_include4: vec![
                "10.1.0.0/16".parse().unwrap(),
                "198.19.0.0/16".parse().unwrap(),
            ],
            split_include6: vec!["fd00:2::/48".parse().unwrap()],
            banner: Some("Line one%0ALine two".into()),
            idle_timeout: Some(std::time::Duration::from_secs(1200)),
            options: vec![
                ("X-CSTP-Keep".into(), "true".into()),
                ("X-CSTP-DPD".into(), "90".into()),
            ],
            ..IpConfig::default()
        }
    }

    #[test]
    fn connect_environment() {
        let cfg = config();
        let ctx = ScriptContext {
            tundev: Some("tun7"),
            gateway: Some("198.18.0.1".parse().unwrap()),
            pid: 42,
            log_level: 1,
            tunnel: Some(&cfg),
        };
        let env: HashMap<_, _> = script_env(Reason::Connect, &ctx).into_iter().collect();
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("reason"), Some("connect"));
        assert_eq!(get("TUNDEV"), Some("tun7"));
        assert_eq!(get("VPNGATEWAY"), Some("198.18.0.1"));
        assert_eq!(get("INTERNAL_IP4_NETMASKLEN"), Some("24"));
        assert_eq!(get("INTERNAL_IP4_NETADDR"), Some("198.18.100.0"));
        assert_eq!(get("INTERNAL_IP6_NETMASK"), Some("fd00:1::7/64"));
        assert_eq!(get("INTERNAL_IP4_DNS"), Some("198.18.1.53 fd00::53"));
        assert_eq!(get("CISCO_SPLIT_DNS"), Some("b.example,a.example"));
        // Last header first.
        assert_eq!(get("CISCO_SPLIT_INC"), Some("2"));
        assert_eq!(get("CISCO_SPLIT_INC_0_ADDR"), Some("198.19.0.0"));
        assert_eq!(get("CISCO_SPLIT_INC_1_MASK"), Some("255.255.0.0"));
        assert_eq!(get("CISCO_IPV6_SPLIT_INC_0_MASKLEN"), Some("48"));
        assert_eq!(get("CISCO_BANNER"), Some("Line one\nLine two"));
        assert_eq!(get("IDLE_TIMEOUT"), Some("1200"));
        assert_eq!(
            get("CISCO_CSTP_OPTIONS"),
            Some("X-CSTP-Keep=true\nX-CSTP-DPD=90")
        );
        assert_eq!(get("CISCO_SPLIT_EXC"), None);
    }

    #[test]
    fn pre_init_has_no_tunnel_settings() {
        let ctx = ScriptContext {
            tundev: None,
            gateway: None,
            pid: 1,
            log_level: 0,
            tunnel: None,
        };
        let env = script_env(Reason::PreInit, &ctx);
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, vec!["reason", "VPNPID", "LOG_LEVEL"]);
    }

    #[test]
    fn script_sees_environment_and_stale_values_are_removed() {
        let dir = std::env::temp_dir().join(format!("oc-net-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("env");
        let cfg = config();
        let ctx = ScriptContext {
            tundev: Some("tun9"),
            gateway: None,
            pid: 7,
            log_level: 2,
            tunnel: Some(&cfg),
        };
        let script = format!("env > {}", out.display());
        let status = run_script(&script, Reason::Disconnect, &ctx).unwrap();
        assert!(status.success());
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("reason=disconnect\n"));
        assert!(text.contains("TUNDEV=tun9\n"));
        assert!(!text.contains("CISCO_SPLIT_EXC"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
