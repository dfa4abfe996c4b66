//! The `openconnect` client: command line, login, tunnel main loop and reconnects.
//!
//! Protocol decisions live in `oc-proto` (auth exchange, CONNECT, framing, liveness); this
//! crate moves bytes between the TLS connection, the tun device, the terminal and the
//! vpnc-script, and maps outcomes to openconnect's messages and exit codes.

mod array;
pub mod auth_ui;
pub mod cli;
pub mod complete;
mod dtls;
pub mod error;
mod esp_channel;
mod f5;
mod fortinet;
mod gp;
mod host;
mod host_scan;
mod locale;
mod nc;
mod ppp_link;
mod ppp_tunnel;
mod ppp_udp;
mod profile;
pub mod protocol;
pub mod proxy;
mod pulse;
mod shell;
mod sso;
pub mod token;
pub mod transport;
mod tunnel;
mod tunnel_loop;
mod udp_channel;
mod web;
pub mod yubikey;

use std::net::IpAddr;
use std::time::Duration;

use oc_proto::anyconnect::auth::{AuthExchange, AuthSettings, AuthStep, ClientIdentity};
use oc_proto::url::ServerUrl;
use oc_tls::{CertPin, ClientCertSpec, TlsClient, TlsClientConfig};
use tracing::info;

use crate::auth_ui::{answer_secret, read_stdin_line, FormFiller, Prompter};
use crate::cli::{Options, PROTOCOL_VERSION};
use crate::error::ClientError;
use crate::ppp_link::PppLink;
use crate::protocol::Protocol;
use crate::proxy::ProxySettings;
use crate::token::SoftToken;
use crate::transport::{Endpoint, HttpOptions, HttpsConnection};

/// Debian's vpnc-scripts location, which openconnect is built with.
pub const DEFAULT_SCRIPT: &str = "/usr/share/vpnc-scripts/vpnc-script";

/// How a successful run ended; the message is printed and the exit status is 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished(pub String);

/// Runs the client as the command line asks.
pub async fn run(mut opts: Options) -> Result<Finished, ClientError> {
    opts.validate()?;
    // Standard input's first line is read before anything else, as openconnect reads it
    // while parsing its options.
    let stdin_password = match opts.passwd_on_stdin {
        true => Some(read_stdin_line("--passwd-on-stdin")?),
        false => None,
    };
    let given_cookie = given_cookie(&opts)?;
    if let Some(len) = opts.queue_len {
        tracing::warn!(
            "--queue-len {len} ignored: this client moves packets in batches and keeps no queue to limit"
        );
    }
    let server = opts
        .server
        .as_deref()
        .or(opts.server_option.as_deref())
        .ok_or_else(|| ClientError::Usage("no server specified".into()))?;
    let (server, profile_group, local_profile) = match &opts.xmlconfig {
        Some(path) => {
            let (server, group, local) = profile::resolve(path, server);
            (server, group, Some(local))
        }
        None => (server.to_string(), None, None),
    };
    let mut url = ServerUrl::parse(&server).map_err(|e| ClientError::Usage(e.to_string()))?;
    if let Some(g) = &profile_group {
        url.path = g.trim_start_matches('/').to_string();
    }
    if let Some(g) = &opts.usergroup {
        url.path = g.trim_start_matches('/').to_string();
    }
    if opts.allow_insecure_crypto {
        let enabled = oc_tls::enable_insecure_crypto()?;
        if !enabled.weak_suites {
            info!(
                "--allow-insecure-crypto: this build of OpenSSL has no 3DES or RC4 cipher \
                 suites; TLS 1.0/1.1, weak signatures and keys, legacy renegotiation and old \
                 key encryptions are allowed"
            );
        }
    }
    if opts.gnutls_debug.is_some_and(|level| level > 0) {
        tracing::warn!(
            "--gnutls-debug ignored: this client's TLS library is OpenSSL; -vvv traces the \
             handshakes"
        );
    }
    if opts.no_http_keepalive {
        tracing::warn!(
            "Disabling all HTTP connection reuse due to --no-http-keepalive option.\nIf this \
             helps, please report it."
        );
    }
    let tls = TlsClient::new(tls_config(&opts)?)?;
    let warn_within = Duration::from_secs(opts.cert_expire_warning.saturating_mul(86_400));
    if let Some(warning) = tls.client_cert_warning(warn_within) {
        tracing::warn!("{warning}");
    }
    let proxy = proxy_settings(&opts, &url.host)?;
    if let Some(p) = &proxy {
        info!("Using proxy {}", p.url);
        if !opts.no_dtls {
            info!("No DTLS when connected via proxy");
            opts.no_dtls = true;
        }
    }
    let mut endpoint = Endpoint {
        proxy,
        resolve: opts.resolve_entries()?,
        tls,
        url,
        http: HttpOptions {
            no_keepalive: opts.no_http_keepalive,
            dump: opts.dump_http_traffic,
            tcp_keepalive: opts.tcp_keepalive,
        },
    };
    match protocol::lookup(opts.protocol_name())?.protocol {
        Protocol::NullPpp => return nullppp(&opts, &endpoint, given_cookie).await,
        Protocol::Fortinet => {
            let filler = || form_filler(&opts, stdin_password);
            return fortinet::run(&opts, &endpoint, given_cookie, filler).await;
        }
        Protocol::F5 => {
            let filler = || form_filler(&opts, stdin_password);
            return f5::run(&opts, &endpoint, given_cookie, filler).await;
        }
        Protocol::Nc => {
            let filler = || form_filler(&opts, stdin_password);
            return nc::run(&opts, &endpoint, given_cookie, filler).await;
        }
        Protocol::Gp => {
            let filler = || form_filler(&opts, stdin_password);
            return gp::run(&opts, &endpoint, given_cookie, filler).await;
        }
        Protocol::Pulse => {
            let filler = || form_filler(&opts, stdin_password);
            return pulse::run(&opts, &endpoint, given_cookie, filler).await;
        }
        Protocol::Array => {
            let filler = || form_filler(&opts, stdin_password);
            return array::run(&opts, &endpoint, given_cookie, filler).await;
        }
        _ => {}
    }

    let (cookie, peer_addr, fingerprint, conn) = match webvpn_cookie(given_cookie)? {
        Some(c) => (c, None, None, None),
        None => {
            let mut login = authenticate(&opts, &mut endpoint, stdin_password).await?;
            if let (Some(local), Some(offered)) = (&local_profile, &login.profile) {
                let ua = user_agent(&opts);
                profile::update(
                    local,
                    offered,
                    &endpoint,
                    &mut login.conn,
                    &login.cookie,
                    &ua,
                )
                .await;
            }
            (
                login.cookie,
                Some(login.addr),
                Some(login.fingerprint),
                login.conn,
            )
        }
    };

    // The `name=value` form keeps a base64 cookie's `=` padding unambiguous when it is fed
    // back to openconnect or to us.
    let printable = format!("webvpn={cookie}");
    if opts.authenticate {
        print_authenticate(&endpoint, &printable, peer_addr, fingerprint.as_deref());
        return Ok(Finished(String::new()));
    }
    if opts.cookieonly {
        println!("{printable}");
        return Ok(Finished(String::new()));
    }
    if opts.printcookie {
        println!("{printable}");
    }
    tunnel::run(&opts, &endpoint, cookie, conn).await
}

/// The proxy to go through: `-P`, else the environment's (see PROXIES in `--help`).
fn proxy_settings(opts: &Options, host: &str) -> Result<Option<ProxySettings>, ClientError> {
    use oc_proto::client_proxy::{auth::AllowedMethods, environment, ProxyUrl};
    let methods = match &opts.proxy_auth {
        Some(list) => AllowedMethods::parse(list).map_err(|e| ClientError::Usage(e.to_string()))?,
        None => AllowedMethods::default(),
    };
    let url = match (&opts.proxy, opts.no_proxy) {
        (_, true) => None,
        (Some(given), false) => Some(given.clone()),
        (None, false) => {
            let lookup = match opts.libproxy {
                true => environment::Lookup::Libproxy,
                false => environment::Lookup::Openconnect,
            };
            environment::proxy_for(|name| std::env::var(name).ok(), host, lookup)
        }
    };
    let Some(url) = url else {
        return Ok(None);
    };
    let url = ProxyUrl::parse(&url).map_err(|e| ClientError::Usage(e.to_string()))?;
    Ok(Some(ProxySettings {
        url,
        methods,
        user_agent: user_agent(opts),
        dump: opts.dump_http_traffic,
    }))
}

/// nullppp has no login: its "cookie" carries the link's options (`hdlc`, `noipv4`,
/// `noipv6`, `term`), as upstream's test protocol.
async fn nullppp(
    opts: &Options,
    endpoint: &Endpoint,
    cookie: Option<String>,
) -> Result<Finished, ClientError> {
    let cookie = cookie.unwrap_or_default();
    if opts.authenticate {
        print_authenticate(endpoint, &cookie, None, None);
        return Ok(Finished(String::new()));
    }
    if opts.cookieonly || opts.printcookie {
        println!("{cookie}");
        if opts.cookieonly {
            return Ok(Finished(String::new()));
        }
    }
    ppp_tunnel::run(opts, endpoint, PppLink::nullppp(&cookie, opts)).await
}

fn tls_config(opts: &Options) -> Result<TlsClientConfig, ClientError> {
    let pins = opts
        .servercert
        .iter()
        .map(|p| CertPin::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let password = match &opts.certificate {
        Some(cert) if opts.key_password_from_fsid => {
            Some(fsid_password(opts.sslkey.as_ref().unwrap_or(cert))?)
        }
        _ => opts.key_password.clone(),
    };
    let mut config = TlsClientConfig {
        ca_file: opts.cafile.clone(),
        system_trust: !opts.no_system_trust,
        pins,
        client_cert: opts.certificate.as_ref().map(|c| ClientCertSpec {
            cert: c.clone(),
            key: opts.sslkey.clone(),
            password,
        }),
        sni: opts.sni.clone(),
        allow_insecure_crypto: opts.allow_insecure_crypto,
        pfs: opts.pfs,
        cipher_list: opts.openssl_ciphers.clone(),
        ..TlsClientConfig::default()
    };
    if let Some(priorities) = &opts.gnutls_priority {
        let policy = oc_tls::server::map_priorities(priorities);
        for token in &policy.ignored {
            tracing::warn!("--gnutls-priority: {token:?} has no OpenSSL equivalent; ignored");
        }
        config.cipher_list = policy.cipher_list.map(str::to_string);
        config.versions = Some((policy.min_version, policy.max_version));
    }
    Ok(config)
}

/// `--key-password-from-fsid`: the ID of the file system holding `key`, as upstream
/// formats it (its two 32-bit halves swapped from statvfs's, in hex: `stat -f -c %i`).
fn fsid_password(key: &std::path::Path) -> Result<String, ClientError> {
    let stat = nix::sys::statvfs::statvfs(key)
        .map_err(|e| ClientError::Usage(format!("statvfs {}: {e}", key.display())))?;
    // A u64 on 64-bit Linux, the only target.
    let fsid: u64 = stat.filesystem_id();
    Ok(format!("{:x}", fsid.rotate_right(32)))
}

/// AnyConnect's cookie from what `-C`/`--cookie-on-stdin` gave. Accepts the bare
/// `webvpn` value or the `name=value; name=value` form openconnect prints in some builds.
fn webvpn_cookie(given: Option<String>) -> Result<Option<String>, ClientError> {
    let Some(raw) = given else {
        return Ok(None);
    };
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(ClientError::Usage("the cookie is empty".into()));
    }
    let webvpn = raw
        .split(';')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("webvpn="))
        .unwrap_or(raw);
    Ok(Some(webvpn.to_string()))
}

/// The cookie from `-C`/`--cookie-on-stdin` as given. An empty line on stdin is no
/// cookie (the client logs in), as openconnect ignores it.
fn given_cookie(opts: &Options) -> Result<Option<String>, ClientError> {
    Ok(match (&opts.cookie, opts.cookie_on_stdin) {
        (Some(c), _) => Some(c.clone()),
        (None, true) => Some(read_stdin_line("--cookie-on-stdin")?).filter(|c| !c.is_empty()),
        (None, false) => None,
    })
}

pub(crate) fn user_agent(opts: &Options) -> String {
    opts.useragent.clone().unwrap_or_else(|| {
        format!(
            "Open AnyConnect VPN Agent {}",
            opts.version_string.as_deref().unwrap_or(PROTOCOL_VERSION)
        )
    })
}

struct Login {
    cookie: String,
    addr: IpAddr,
    fingerprint: String,
    /// The login's connection when the server keeps it open: CONNECT goes over it, as
    /// openconnect does, which saves a TCP and TLS handshake.
    conn: Option<HttpsConnection>,
    /// The XML profile the server offers (for `-x`).
    profile: Option<oc_proto::anyconnect::profile::ProfileManifest>,
}

/// `--mca-certificate` (with `--mca-key`, `--mca-key-password`), loaded before the login.
fn second_certificate(
    opts: &Options,
) -> Result<Option<oc_tls::mca::SecondCertificate>, ClientError> {
    let Some(cert) = &opts.mca_certificate else {
        return Ok(None);
    };
    let spec = ClientCertSpec {
        cert: cert.clone(),
        key: opts.mca_key.clone(),
        password: opts.mca_key_password.clone(),
    };
    Ok(Some(oc_tls::mca::SecondCertificate::load(&spec)?))
}

/// The reply carrying the second certificate: its chain, and its signature over the
/// server's request with the strongest hash the server takes.
fn answer_second_certificate(
    exchange: &mut AuthExchange,
    second: &oc_tls::mca::SecondCertificate,
    asked: &oc_proto::anyconnect::multicert::MultiCertRequest,
) -> Result<oc_proto::http::Request, ClientError> {
    use base64::Engine;
    let hash = oc_proto::anyconnect::multicert::choose_hash(&asked.hashes).unwrap_or("sha256");
    info!("Signing the server's request with the MCA certificate ({hash})");
    let encode = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    let signature = encode(second.sign(hash, &asked.challenge)?);
    let pkcs7 = encode(second.pkcs7()?);
    Ok(exchange.reply_multicert(&pkcs7, hash, &signature))
}

/// The form filler from the options: `-u`, the `--passwd-on-stdin` line (`password`),
/// `--authgroup`, `-F`, `--non-inter` and the software token.
fn form_filler(opts: &Options, password: Option<String>) -> Result<FormFiller, ClientError> {
    let entries = opts.form_entries()?;
    let mut prompter = Prompter::new(opts.non_inter, opts.passwd_on_stdin);
    let token = match opts.token_mode.as_deref() {
        Some("oidc") | None => None,
        Some(mode) => Some(SoftToken::from_options(
            mode,
            opts.token_secret.as_deref(),
            &mut |form, field, label| answer_secret(&entries, &mut prompter, form, field, label),
        )?),
    };
    Ok(FormFiller {
        no_passwd: opts.no_passwd,
        user: opts.user.clone(),
        password,
        authgroup: opts.authgroup.clone(),
        entries,
        prompter,
        token,
    })
}

async fn authenticate(
    opts: &Options,
    endpoint: &mut Endpoint,
    password: Option<String>,
) -> Result<Login, ClientError> {
    let mut filler = form_filler(opts, password)?;
    let second_certificate = second_certificate(opts)?;
    let strap_keys = match opts.no_external_auth {
        true => None,
        false => Some(oc_tls::sso::StrapKeys::generate()?),
    };
    let external_auth = strap_keys.as_ref().map(|k| k.public_keys()).transpose()?;
    let mut exchange = AuthExchange::new(AuthSettings {
        url: endpoint.url.clone(),
        user_agent: user_agent(opts),
        identity: ClientIdentity {
            version: opts
                .version_string
                .clone()
                .unwrap_or_else(|| PROTOCOL_VERSION.to_string()),
            device_id: opts.os.clone().unwrap_or_else(|| "linux-64".to_string()),
        },
        group: opts.authgroup.clone(),
        xmlpost: !opts.no_xmlpost,
        multicert: second_certificate.is_some(),
        external_auth,
        bearer_token: match opts.token_mode.as_deref() {
            Some("oidc") => Some(token::bearer_token(opts.token_secret.as_deref())?),
            _ => None,
        },
        negotiator: opts.http_auth_methods()?.1.then(|| {
            oc_proto::client_proxy::auth::NegotiatorHandle(std::sync::Arc::new(
                oc_tls::gssapi::DesktopCredentials,
            ))
        }),
    });
    let mut conn = endpoint.connect().await?;
    let mut request = exchange.init_request();
    loop {
        if conn.closed {
            conn = endpoint.connect().await?;
        }
        let (response, _) = conn.exchange(&request, false).await?;
        match exchange.handle_response(&response)? {
            AuthStep::Form(form) => request = exchange.reply(&filler.fill(&form)?),
            AuthStep::Send(next) => request = next,
            AuthStep::NewServer { url, request: next } => {
                info!("The server moved the login to {url}");
                endpoint.proxy = proxy_settings(opts, &url.host)?;
                endpoint.url = url;
                conn = endpoint.connect().await?;
                request = next;
            }
            AuthStep::HostScan(scan) => {
                request = host_scan::scan_and_wait(opts, endpoint, &mut conn, &mut exchange, &scan)
                    .await?;
            }
            AuthStep::SingleSignOn { form, login } => {
                let mut answers = match form.fields.is_empty() {
                    true => {
                        auth_ui::show_texts(&form);
                        Vec::new()
                    }
                    false => filler.fill(&form)?,
                };
                let browser = opts.external_browser.as_deref();
                let token =
                    sso::obtain_token(&form, &login, strap_keys.as_ref(), browser, &mut filler)
                        .await?;
                answers.push((login.token_field.clone(), token));
                // The browser took its time: the login connection may be gone.
                conn.closed = true;
                request = exchange.reply(&answers);
            }
            AuthStep::SecondCertificate(asked) => {
                let Some(second) = &second_certificate else {
                    return Err(ClientError::Auth(
                        oc_proto::anyconnect::auth::AuthError::SecondCertificateNeeded,
                    ));
                };
                request = answer_second_certificate(&mut exchange, second, &asked)?;
            }
            AuthStep::Success(done) => {
                if let Some(b) = &done.banner {
                    info!("{b}");
                }
                return Ok(Login {
                    cookie: done.cookie,
                    addr: conn.addr.ip(),
                    fingerprint: conn.peer.fingerprint.clone(),
                    conn: (!conn.closed).then_some(conn),
                    profile: done.profile,
                });
            }
        }
    }
}

/// `--authenticate` output, quoted the way openconnect quotes it (single quotes, no
/// escaping) so `eval` in NetworkManager's helper works the same.
pub(crate) fn print_authenticate(
    endpoint: &Endpoint,
    cookie: &str,
    addr: Option<IpAddr>,
    fingerprint: Option<&str>,
) {
    // Through a proxy the peer is the proxy, not an address of the server (openconnect
    // prints no RESOLVE then).
    let addr = addr.filter(|_| endpoint.proxy.is_none());
    let host = match addr {
        Some(IpAddr::V6(a)) => format!("[{a}]"),
        Some(a) => a.to_string(),
        None => endpoint.url.host_for_url(),
    };
    println!("COOKIE='{cookie}'");
    println!("HOST='{host}'");
    println!("CONNECT_URL='{}'", endpoint.url.base_url());
    println!("FINGERPRINT='{}'", fingerprint.unwrap_or_default());
    match addr {
        Some(a) => println!("RESOLVE='{}:{a}'", endpoint.url.host),
        None => print!("RESOLVE="),
    }
}

/// Interval between reconnect attempts: 10 s, growing by 10 s, at most 100 s.
pub(crate) fn next_reconnect_interval(current: Duration) -> Duration {
    (current + Duration::from_secs(10)).min(Duration::from_secs(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Options {
        let mut v = vec!["openconnect".into()];
        v.extend(args.iter().map(std::ffi::OsString::from));
        Options::from_args(v).unwrap()
    }

    #[test]
    fn cookie_forms() {
        let cookie = |args: &[&str]| webvpn_cookie(given_cookie(&opts(args)).unwrap());
        let c = cookie(&["-C", "abc+/=", "vpn"]).unwrap();
        assert_eq!(c.as_deref(), Some("abc+/="));
        let c = cookie(&["-C", "openconnect_strapkey=KEY==; webvpn=abc=", "vpn"]);
        assert_eq!(c.unwrap().as_deref(), Some("abc="));
        assert!(cookie(&["-C", "  ", "vpn"]).is_err());
        assert_eq!(cookie(&["vpn"]).unwrap(), None);
    }

    #[test]
    fn user_agent_and_interval() {
        assert_eq!(
            user_agent(&opts(&["vpn"])),
            "Open AnyConnect VPN Agent v9.21"
        );
        assert_eq!(user_agent(&opts(&["--useragent", "X/1", "vpn"])), "X/1");
        let mut d = Duration::ZERO;
        let seq: Vec<u64> = (0..12)
            .map(|_| {
                d = next_reconnect_interval(d);
                d.as_secs()
            })
            .collect();
        assert_eq!(seq[..3], [10, 20, 30]);
        assert_eq!(seq[11], 100);
    }
}
