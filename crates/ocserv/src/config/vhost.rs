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
/// reported together (a default-section problem once, not again for each section).
pub(super) fn parse_hosts(sections: &Sections, d: Diag) -> Result<Loaded, ConfigError> {
    let (file, test_mode) = (d.file.clone(), d.test_mode);
    let (default, mut errors, mut warnings) =
        split(global::parse_entries(&[], &sections.global, d), &file);
    let seen: BTreeSet<ProblemKey> = errors.iter().chain(&warnings).map(key).collect();
    let mut vhosts = Vec::new();
    for section in &sections.vhosts {
        let mut d = Diag::new(&file, test_mode);
        check_scope(section, &mut d);
        let inherited = inherited_entries(&sections.global, &section.entries);
        let (host, host_errors, host_warnings) = split(
            global::parse_entries(&inherited, &section.entries, d),
            &file,
        );
        errors.extend(news(host_errors, section, &seen, &file));
        warnings.extend(news(host_warnings, section, &seen, &file));
        if let (Some(host), Some(default)) = (host, &default) {
            errors.extend(same_tls_policy(section, &host, default, &file));
            vhosts.push(VirtualHost {
                name: section.name.clone(),
                line: section.line,
                config: host,
            });
        }
    }
    match default {
        Some(mut config) if errors.is_empty() => {
            config.vhosts = vhosts;
            Ok(Loaded { config, warnings })
        }
        _ => Err(ConfigError::Invalid(errors)),
    }
}

/// A parse's settings (if it succeeded), errors and warnings.
fn split(
    parsed: Result<Loaded, ConfigError>,
    file: &Path,
) -> (Option<super::Config>, Vec<Problem>, Vec<Problem>) {
    match parsed {
        Ok(l) => (Some(l.config), Vec::new(), l.warnings),
        Err(ConfigError::Invalid(p)) => (None, p, Vec::new()),
        Err(e) => {
            let problem = Problem {
                file: file.to_path_buf(),
                line: 0,
                message: e.to_string(),
            };
            (None, vec![problem], Vec::new())
        }
    }
}

/// What makes two problems the same report: file, line and message.
type ProblemKey = (std::path::PathBuf, usize, String);

fn key(p: &Problem) -> ProblemKey {
    (p.file.clone(), p.line, p.message.clone())
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
/// it sets itself (server-wide keys included: the host has the server's values).
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
/// of the main config not at one of the section's own lines name the section (and a
/// whole-file one points at its header).
fn news(
    problems: Vec<Problem>,
    section: &VhostSection,
    seen: &BTreeSet<ProblemKey>,
    main_file: &Path,
) -> Vec<Problem> {
    let own_line = |line: usize| section.entries.iter().any(|e| e.line == line);
    problems
        .into_iter()
        .filter(|p| !seen.contains(&key(p)))
        .map(|mut p| {
            if p.file == main_file && !own_line(p.line) {
                p.message = format!("[vhost:{}]: {}", section.name, p.message);
                if p.line == 0 {
                    p.line = section.line;
                }
            }
            p
        })
        .collect()
}
