//! `[vhost:NAME]` sections, with ocserv 1.4.2's inheritance and scope rules.
//!
//! A virtual host starts as a copy of the default section and its own lines then apply on
//! top: a key it sets replaces the default's value, and a list key (`route`, `dns`,
//! `included-http-headers`, ...) adds to the default's list, as ocserv's copy of its
//! reloadable settings does. `auth`/`enable-auth`, `server-cert`, `server-key` and `acct`
//! are inherited only when the section sets none of them (ocserv keeps them apart from
//! the copied settings). Keys that belong to the server as a whole (ports, addresses,
//! processes, scripts, bans) cannot be set in a section: ocserv refuses to start, so do we.

use std::collections::BTreeSet;
use std::path::Path;

use super::lexer::{Entry, Sections, VhostSection};
use super::{global, ConfigError, Diag, Loaded, Problem, VirtualHost};

/// Keys ocserv refuses inside a virtual-host section (`error_on_vhost` in its config.c).
const GLOBAL_ONLY: &[&str] = &[
    "listen-host",
    "udp-listen-host",
    "tcp-port",
    "udp-port",
    "run-as-user",
    "run-as-group",
    "socket-file",
    "occtl-socket-file",
    "chroot-dir",
    "sec-mod-scale",
    "listen-proxy-proto",
    "rate-limit-ms",
    "server-drain-ms",
    "connect-script",
    "host-update-script",
    "disconnect-script",
    "dtls-psk",
    "compression-algo-priority",
    "use-seccomp",
    "isolate-workers",
    "limit-worker-memory",
    "sec-mod-db-cleanup-time",
    "use-utmp",
    "use-dbus",
    "use-occtl",
    "try-mtu-discovery",
    "ping-leases",
    "auth-timeout",
    "max-clients",
    "min-reauth-time",
    "ban-time",
    "ban-reset-time",
    "max-ban-score",
    "ban-points-wrong-password",
    "ban-points-connection",
    "ban-points-kkdcp",
    "device",
    "route-add-cmd",
    "route-del-cmd",
];

/// Keys of the whole server that ocserv reads from the default section only and ignores in
/// a virtual host (its sample config marks them "global"); ours are here too.
const IGNORED_IN_VHOST: &[&str] = &[
    "listen-netns",
    "log-level",
    "pid-file",
    "server-stats-reset-time",
    "syslog-facility",
    "metrics-listen",
    "worker-threads",
];

/// Groups of keys a section takes whole: setting one drops the default's lines of all.
const REPLACED_TOGETHER: &[&[&str]] = &[
    &["auth", "enable-auth"],
    &["server-cert"],
    &["server-key"],
    &["acct"],
];

/// The default host's settings with every virtual host's, all problems of all sections
/// reported together.
pub(super) fn parse_hosts(sections: &Sections, d: Diag) -> Result<Loaded, ConfigError> {
    let blank = Diag::new(&d.file, d.test_mode);
    let default = global::parse_entries(&[], &sections.global, d);
    let (mut errors, mut warnings) = match &default {
        Ok(l) => (Vec::new(), l.warnings.clone()),
        Err(ConfigError::Invalid(p)) => (p.clone(), Vec::new()),
        Err(e) => (problems_of(e, &blank.file), Vec::new()),
    };
    let seen: BTreeSet<(usize, String)> = errors
        .iter()
        .chain(&warnings)
        .map(|p| (p.line, p.message.clone()))
        .collect();
    let mut vhosts = Vec::new();
    for section in &sections.vhosts {
        let mut d = Diag::new(&blank.file, blank.test_mode);
        check_scope(section, &mut d);
        let scoped = std::mem::take(&mut d.errors);
        warnings.extend(std::mem::take(&mut d.warnings));
        let inherited = inherited_entries(&sections.global, &section.entries);
        let parsed = global::parse_entries(&inherited, &section.entries, d);
        errors.extend(scoped);
        if let (Ok(l), Ok(d)) = (&parsed, &default) {
            errors.extend(same_tls_policy(section, &l.config, &d.config, &blank.file));
        }
        match parsed {
            Ok(l) if errors.is_empty() => {
                warnings.extend(news(l.warnings, section, &seen));
                vhosts.push(VirtualHost {
                    name: section.name.clone(),
                    line: section.line,
                    config: l.config,
                });
            }
            Ok(l) => warnings.extend(news(l.warnings, section, &seen)),
            Err(e) => errors.extend(news(problems_of(&e, &blank.file), section, &seen)),
        }
    }
    match default {
        Ok(mut loaded) if errors.is_empty() => {
            loaded.config.vhosts = vhosts;
            loaded.warnings = warnings;
            Ok(loaded)
        }
        _ => Err(ConfigError::Invalid(errors)),
    }
}

/// A section's `tls-priorities` must be the default's: protocol versions and ciphers are
/// chosen from the client's hello before its server name picks the host, so a stricter
/// setting for one host could not be kept (and is refused rather than ignored).
fn same_tls_policy(
    section: &VhostSection,
    host: &super::Config,
    default: &super::Config,
    file: &Path,
) -> Option<Problem> {
    let line = section
        .entries
        .iter()
        .rev()
        .find(|e| e.key == "tls-priorities")?
        .line;
    (host.tls_priorities != default.tls_priorities).then(|| Problem {
        file: file.to_path_buf(),
        line,
        message: format!(
            "tls-priorities in [vhost:{}] differs from the default section's: TLS versions \
             and ciphers are chosen before the server name is known, so every host has the \
             default section's; remove the line or make it the same",
            section.name
        ),
    })
}

/// Errors for keys a section cannot set, warnings for keys it sets to no effect.
fn check_scope(section: &VhostSection, d: &mut Diag) {
    for e in &section.entries {
        if GLOBAL_ONLY.contains(&e.key.as_str()) {
            d.error(
                e.line,
                format!(
                    "{} cannot be set inside a virtual host section ([vhost:{}]): it applies \
                     to the whole server; move it above the first [vhost:...] line",
                    e.key, section.name
                ),
            );
        } else if IGNORED_IN_VHOST.contains(&e.key.as_str()) {
            d.warn(
                e.line,
                format!(
                    "{} is a setting of the whole server and is ignored inside [vhost:{}]",
                    e.key, section.name
                ),
            );
        }
    }
}

/// The default section's entries a virtual host starts from: all but the groups of keys
/// it sets itself, and the keys it cannot set (reported by [`check_scope`]).
fn inherited_entries(global: &[Entry], own: &[Entry]) -> Vec<Entry> {
    let sets = |key: &str| own.iter().any(|e| e.key == key);
    let replaced: Vec<&str> = REPLACED_TOGETHER
        .iter()
        .filter(|group| group.iter().any(|k| sets(k)))
        .flat_map(|group| group.iter().copied())
        .collect();
    global
        .iter()
        .filter(|e| !replaced.contains(&e.key.as_str()))
        .cloned()
        .collect()
}

/// A section's problems that the default section's parse did not already report; those
/// not at one of the section's own lines name the section.
fn news(
    problems: Vec<Problem>,
    section: &VhostSection,
    seen: &BTreeSet<(usize, String)>,
) -> Vec<Problem> {
    let own_line = |line: usize| section.entries.iter().any(|e| e.line == line);
    problems
        .into_iter()
        .filter(|p| !seen.contains(&(p.line, p.message.clone())))
        .map(|mut p| {
            if !own_line(p.line) {
                p.message = format!("[vhost:{}]: {}", section.name, p.message);
                if p.line == 0 {
                    p.line = section.line;
                }
            }
            p
        })
        .collect()
}

fn problems_of(e: &ConfigError, file: &Path) -> Vec<Problem> {
    match e {
        ConfigError::Invalid(p) => p.clone(),
        ConfigError::Io { .. } => vec![Problem {
            file: file.to_path_buf(),
            line: 0,
            message: e.to_string(),
        }],
    }
}
