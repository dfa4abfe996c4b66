//! `ocserv -t`'s checks of what the configuration names on disk: files, directories and
//! scripts exist with the right kind, users and groups exist, liboath users files and
//! per-user/group files parse.

use std::path::{Path, PathBuf};

use super::{overrides, Diag};

/// `-t`: `name` (the value of `key`) must be an existing `what` (user or group); `exists`
/// looks it up.
pub(super) fn check_account(
    d: &mut Diag,
    line: usize,
    key: &str,
    what: &str,
    name: &str,
    exists: impl FnOnce(&str) -> nix::Result<bool>,
) {
    match exists(name) {
        Ok(true) => {}
        Ok(false) => d.error(line, format!("{key}: no {what} {name}")),
        Err(e) => d.error(line, format!("{key}: cannot look up {name}: {e}")),
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    File,
    Dir,
    Exec,
}

pub(super) fn check_path(d: &mut Diag, line: usize, key: &str, p: &Path, kind: Kind) {
    use std::os::unix::fs::PermissionsExt;
    let shown = p.display();
    match std::fs::metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            d.error(line, format!("{key}: {shown} does not exist"));
        }
        Err(e) => d.error(line, format!("{key}: cannot access {shown}: {e}")),
        Ok(m) => match kind {
            Kind::Dir if !m.is_dir() => {
                d.error(line, format!("{key}: {shown} is not a directory"));
            }
            Kind::File | Kind::Exec if !m.is_file() => {
                d.error(line, format!("{key}: {shown} is not a regular file"));
            }
            Kind::Exec if m.permissions().mode() & 0o111 == 0 => {
                d.error(line, format!("{key}: {shown} is not executable"));
            }
            _ => {}
        },
    }
}

/// Warns about lines of a liboath users file that liboath would skip or fail on.
pub(super) fn check_users_file(d: &mut Diag, line: usize, path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        // check_path has reported why.
        return;
    };
    for problem in oc_otp::usersfile::UsersFile::parse_lenient(&text).problems() {
        d.warn(line, format!("otp: {}: {problem}", path.display()));
    }
}

/// Validates every per-user/group file in `dir` (names starting with '.' are never looked
/// up, so they are skipped).
pub(super) fn check_override_dir(d: &mut Diag, line: usize, key: &str, dir: &Path) {
    let Ok(read) = std::fs::read_dir(dir) else {
        // check_path has reported why.
        return;
    };
    let mut names: Vec<PathBuf> = Vec::new();
    for entry in read {
        match entry {
            Ok(entry) => {
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let p = entry.path();
                if std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
                    names.push(p);
                }
            }
            Err(e) => {
                d.error(line, format!("{key}: cannot list {}: {e}", dir.display()));
                return;
            }
        }
    }
    names.sort();
    for p in names {
        check_override_file(d, line, key, &p);
    }
}

pub(super) fn check_override_file(d: &mut Diag, line: usize, key: &str, file: &Path) {
    match super::read_capped(file) {
        Ok(bytes) => {
            let mut sub = Diag::new(file, true);
            let text = super::decode(&bytes, &mut sub);
            overrides::check(&text, &mut sub);
            d.merge(sub);
        }
        // A missing file was reported by check_path.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => d.error(line, format!("{key}: cannot read {}: {e}", file.display())),
    }
}

/// `-t`: a RADIUS method's radcli file exists and parses, and each server has a secret
/// (inline or in its `servers` file).
pub(super) fn check_radius(d: &mut Diag, line: usize, method: &super::RadiusMethod) {
    use oc_proto::radius::{parse_client_conf, parse_servers_file, ClientConf};
    check_path(d, line, "radius config", &method.config, Kind::File);
    let Ok(text) = std::fs::read_to_string(&method.config) else {
        return;
    };
    let file = method.config.display().to_string();
    let conf = match parse_client_conf(&text, &file) {
        Ok(conf) => conf,
        Err(e) => return d.error(line, format!("radius: {e}")),
    };
    let servers = match &conf.servers_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => parse_servers_file(&text),
            Err(e) => {
                return d.error(
                    line,
                    format!("radius: servers file {}: {e}", path.display()),
                )
            }
        },
        None => Vec::new(),
    };
    for server in conf.auth_servers.iter().chain(&conf.acct_servers) {
        if ClientConf::secret_for(server, &servers).is_none() {
            d.error(
                line,
                format!(
                    "radius: {file}: no shared secret for server {}",
                    server.host
                ),
            );
        }
    }
}

/// An `oidc` method's JSON file exists and reads as ocserv's OIDC settings.
pub(super) fn check_oidc(d: &mut Diag, line: usize, config: &Path) {
    check_path(d, line, "oidc config", config, Kind::File);
    let Ok(text) = std::fs::read(config) else {
        return;
    };
    if let Err(e) = oc_proto::oidc::OidcSettings::parse(&text, &config.display().to_string()) {
        d.error(line, format!("oidc: {e}"));
    }
}
