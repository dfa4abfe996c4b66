//! config-per-user / config-per-group files (and default-user-config / default-group-config).
//!
//! Same syntax as the main config; only the [`NetSettings`] keys ocserv allows per user or
//! group are applied. A main-config key here is a warning (ocserv ignores it too), so is an
//! unknown key. An error refuses the login of the users the file is for; warnings are in
//! the list [`parse`] returns, which the caller logs.

use std::collections::BTreeMap;

use super::global::{self, Unsupported};
use super::lexer;
use super::net::{self, NetBuilder, Scope};
use super::{ConfigError, Diag, NetSettings, Problem};

/// Per-user/group keys of ocserv we do not implement yet (ocserv 1.5's sup-config/file.c).
const UNSUPPORTED: &[Unsupported] = &[
    global::plain("net-priority"),
    global::plain("cgroup"),
    global::plain("user-profile"),
];

/// Parses one file; errors fail the whole file.
pub(super) fn parse(text: &str, mut d: Diag) -> Result<(NetSettings, Vec<Problem>), ConfigError> {
    let net = run(text, &mut d);
    if d.errors.is_empty() {
        Ok((net, d.warnings))
    } else {
        Err(ConfigError::Invalid(d.errors))
    }
}

/// Parses one file only to report its problems into `d` (`-t`).
pub(super) fn check(text: &str, d: &mut Diag) {
    run(text, d);
}

fn run(text: &str, d: &mut Diag) -> NetSettings {
    let entries = lexer::lex(text, d);
    let mut net = NetBuilder::default();
    let mut lines: BTreeMap<String, usize> = BTreeMap::new();
    let global_keys = global::all_keys();
    let unsupported_keys: Vec<&str> = UNSUPPORTED.iter().map(|u| u.key).collect();
    let mut known: Vec<&[&str]> = net::GLOBAL_NET_KEYS.to_vec();
    known.extend([net::OVERRIDE_ONLY_KEYS, &unsupported_keys]);

    for e in &entries {
        global::note_line(&mut lines, e, d);
        if net.handle(e, Scope::Override, d) {
            continue;
        }
        if global::unsupported(UNSUPPORTED, e, d) {
            continue;
        }
        if global_keys.contains(&e.key.as_str()) {
            d.warn(
                e.line,
                format!("{} cannot be set per user or group; ignored", e.key),
            );
        } else {
            global::unknown(e, d, &known);
        }
    }
    net.finish(Scope::Override, d)
}
