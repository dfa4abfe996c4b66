//! Our client through real proxies started in the server's namespace: tinyproxy (HTTP
//! CONNECT, Basic), squid (Digest; NTLM through its fake helper; Negotiate with a
//! Kerberos realm of the lab's own) and dante (SOCKS5 with a user name and password). The
//! server refuses TCP from the client's address, so only a proxied connection logs in;
//! the tunnel then carries pings with no UDP at all (no DTLS through a proxy).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::time::Duration;

use ferroconnect_interop::kdc::{assert_no_ticket_error, Kdc, ALICE_PASSWORD, REALM};
use ferroconnect_interop::{login_args, output_text, sh, wait_until, Lab, Pki};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// A lab whose server (ours, alice/secret) takes no direct connection from the client.
fn lab(test: &str) -> (Lab, Pki) {
    let mut lab = Lab::new(test);
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_our_server(&pki, &[("alice", "secret")], "");
    let rule = format!(
        "nft add table inet direct && \
         nft add chain inet direct input '{{ type filter hook input priority 0; }}' && \
         nft add rule inet direct input ip saddr {} tcp dport 443 reject with tcp reset",
        lab.client_ip
    );
    let out = lab.in_server(&rule);
    assert!(out.status.success(), "{}", output_text(&out));
    (lab, pki)
}

fn url(lab: &Lab) -> String {
    format!("https://{}/", lab.server_ip)
}

/// Waits until something listens on TCP `port` in the server's namespace.
fn wait_listening(lab: &Lab, port: u16, log: &str) {
    let listening = wait_until(SECS(20), || {
        let out = lab.in_server(&format!("ss -Htln 'sport = :{port}'"));
        (!String::from_utf8_lossy(&out.stdout).trim().is_empty()).then_some(())
    });
    assert!(
        listening.is_some(),
        "nothing listens on {port}:\n{}",
        lab.log(log)
    );
}

/// A directory in the lab that the proxies' unprivileged users may write.
fn proxy_dir(lab: &Lab, name: &str) -> String {
    let dir = lab.dir.join(name);
    fs::create_dir_all(&dir).unwrap();
    sh(&format!(
        "chmod 777 {} && chmod o+x {}",
        dir.display(),
        lab.dir.display()
    ));
    dir.display().to_string()
}

/// tinyproxy on the server's address, port 8888, with Basic authentication.
fn start_tinyproxy(lab: &mut Lab) -> String {
    let dir = proxy_dir(lab, "tinyproxy");
    let conf = format!(
        "User nobody\nGroup nogroup\nPort 8888\nListen {ip}\nTimeout 60\nMaxClients 8\n\
         BasicAuth alice proxypw\nConnectPort 443\nLogLevel Info\n",
        ip = lab.server_ip
    );
    fs::write(format!("{dir}/tinyproxy.conf"), conf).unwrap();
    let ns = lab.server_ns.clone();
    lab.spawn_in(
        &ns,
        &["tinyproxy", "-d", "-c", &format!("{dir}/tinyproxy.conf")],
        "tinyproxy.log",
    );
    wait_listening(lab, 8888, "tinyproxy.log");
    format!("{}:8888", lab.server_ip)
}

/// How squid authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SquidAuth {
    /// Digest, alice/proxypw.
    Digest,
    /// NTLM through squid's fake helper, which takes any user's AUTHENTICATE message.
    Ntlm,
    /// Negotiate (Kerberos) with this keytab for `HTTP/<server address>`.
    Negotiate(String),
}

/// squid on the server's address, port 3128, with one authentication scheme.
fn start_squid(lab: &mut Lab, auth: SquidAuth) -> String {
    let dir = proxy_dir(lab, "squid");
    fs::write(format!("{dir}/digest.pw"), "alice:proxypw\n").unwrap();
    let scheme = match auth {
        SquidAuth::Digest => format!(
            "auth_param digest program /usr/lib/squid/digest_file_auth {dir}/digest.pw\n\
             auth_param digest children 2\nauth_param digest realm ferroconnect\n"
        ),
        SquidAuth::Ntlm => "auth_param ntlm program /usr/lib/squid/ntlm_fake_auth\n\
                            auth_param ntlm children 2\n"
            .to_string(),
        SquidAuth::Negotiate(keytab) => format!(
            "auth_param negotiate program /usr/lib/squid/negotiate_kerberos_auth -k {keytab} \
             -s HTTP/{ip}@{REALM}\nauth_param negotiate children 2\n",
            ip = lab.server_ip
        ),
    };
    let conf = format!(
        "http_port {ip}:3128\nvisible_hostname proxy.test\npid_filename {dir}/squid.pid\n\
         cache_log {dir}/cache.log\naccess_log stdio:{dir}/access.log\ncache deny all\n\
         coredump_dir {dir}\nshutdown_lifetime 1 seconds\n{scheme}\
         acl authed proxy_auth REQUIRED\nacl SSL_ports port 443\nacl CONNECT method CONNECT\n\
         http_access deny CONNECT !SSL_ports\nhttp_access allow authed\nhttp_access deny all\n",
        ip = lab.server_ip
    );
    fs::write(format!("{dir}/squid.conf"), conf).unwrap();
    let ns = lab.server_ns.clone();
    lab.spawn_in(
        &ns,
        &["squid", "-N", "-f", &format!("{dir}/squid.conf")],
        "squid.log",
    );
    wait_listening(lab, 3128, "squid.log");
    format!("{}:3128", lab.server_ip)
}

/// dante on the server's address, port 1080, taking only user name and password logins.
/// alice exists for it alone: it runs in a mount namespace whose /etc/passwd and
/// /etc/shadow are copies with her added.
fn start_dante(lab: &mut Lab) -> String {
    let dir = proxy_dir(lab, "dante");
    let hash = sh("openssl passwd -6 proxypw");
    sh(&format!(
        "cp /etc/passwd {dir}/passwd && cp /etc/shadow {dir}/shadow && \
         echo 'alice:x:4242:4242::/nonexistent:/usr/sbin/nologin' >> {dir}/passwd && \
         echo 'alice:{}:20000:0:99999:7:::' >> {dir}/shadow",
        hash.trim()
    ));
    let conf = format!(
        "logoutput: {dir}/danted.log\ninternal: {ip} port = 1080\nexternal: {ip}\n\
         socksmethod: username\nclientmethod: none\nuser.privileged: root\n\
         user.unprivileged: nobody\n\
         client pass {{ from: 0.0.0.0/0 to: 0.0.0.0/0 }}\n\
         socks pass {{ from: 0.0.0.0/0 to: 0.0.0.0/0 command: connect }}\n",
        ip = lab.server_ip
    );
    fs::write(format!("{dir}/danted.conf"), conf).unwrap();
    let script = format!(
        "mount --bind {dir}/passwd /etc/passwd && mount --bind {dir}/shadow /etc/shadow && \
         exec danted -f {dir}/danted.conf"
    );
    let ns = lab.server_ns.clone();
    lab.spawn_in(&ns, &["unshare", "-m", "sh", "-c", &script], "dante.log");
    wait_listening(lab, 1080, "dante.log");
    format!("{}:1080", lab.server_ip)
}

/// Connects alice through `proxy_args`, pings through the tunnel, checks that no UDP
/// arrived, and logs off.
fn tunnel_through(lab: &mut Lab, pki: &Pki, proxy_args: &[&str], env: &[(&str, &str)]) {
    let ca = pki.ca_pem.display().to_string();
    let u = url(lab);
    let script = lab.recording_script();
    let mut rest = proxy_args.to_vec();
    rest.extend(["-s", &script, &u]);
    let args = login_args(&ca, &rest);
    let mut cmd = lab.client_command(&args);
    cmd.envs(env.iter().copied());
    let pid = lab.spawn_logged(cmd, "secret\n", "client.log");
    lab.assert_tunnel("the proxied tunnel");
    let log = lab.log("client.log");
    assert!(log.contains("No DTLS when connected via proxy"), "{log}");
    assert_eq!(lab.client_udp_in(), 0, "UDP reached the client:\n{log}");
    // The script routes around the tunnel to the proxy, the peer it connected to.
    let connect = lab.env_file("connect");
    assert_eq!(
        connect.get("VPNGATEWAY"),
        Some(&lab.server_ip),
        "{connect:?}"
    );
    lab.log_off(pid);
}

/// `--authenticate` through `proxy_args`: the exit status and everything printed.
fn authenticate_through(lab: &Lab, pki: &Pki, proxy_args: &[&str]) -> (Option<i32>, String) {
    let ca = pki.ca_pem.display().to_string();
    let u = url(lab);
    let mut rest = proxy_args.to_vec();
    rest.extend(["--authenticate", &u]);
    let out = lab.run_client(&login_args(&ca, &rest), "secret\n", SECS(30));
    (out.status.code(), output_text(&out))
}

#[test]
fn http_proxy_with_basic_auth_carries_the_tunnel() {
    let (mut lab, pki) = lab("proxy-basic");
    let proxy = start_tinyproxy(&mut lab);
    let with_password = format!("http://alice:proxypw@{proxy}");
    // Basic must be asked for by name: the proxy's request is refused, saying how.
    let (code, text) = authenticate_through(&lab, &pki, &["-P", &with_password]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("--proxy-auth=basic"), "{text}");
    let wrong = format!("http://alice:nope@{proxy}");
    let (code, text) = authenticate_through(&lab, &pki, &["--proxy", &wrong, "--proxy-auth=basic"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("proxy rejected the Basic credentials"),
        "{text}"
    );
    assert!(!text.contains("nope"), "the password was shown: {text}");
    tunnel_through(
        &mut lab,
        &pki,
        &["-P", &with_password, "--proxy-auth=basic,digest"],
        &[],
    );
}

#[test]
fn https_proxy_variable_with_digest_auth_carries_the_tunnel() {
    let (mut lab, pki) = lab("proxy-digest");
    let proxy = start_squid(&mut lab, SquidAuth::Digest);
    let variable = format!("http://alice:proxypw@{proxy}/");
    // Debian's openconnect proves the proxy's set-up with the same variable.
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let argv = [
        "env",
        &format!("https_proxy={variable}"),
        "/usr/sbin/openconnect",
        "-u",
        "alice",
        "--passwd-on-stdin",
        "--non-inter",
        "--cafile",
        &ca,
        "--authenticate",
        &u,
    ];
    let out = lab.run_in(&lab.client_ns, &argv, "secret\n", SECS(30));
    assert_eq!(
        out.status.code(),
        Some(0),
        "openconnect 9.01: {}",
        output_text(&out)
    );
    tunnel_through(&mut lab, &pki, &[], &[("https_proxy", &variable)]);
    // --no-proxy ignores the variable: the direct connection is refused.
    let ca = pki.ca_pem.display().to_string();
    let args = login_args(&ca, &["--no-proxy", "--authenticate", &u]);
    let mut cmd = lab.client_command(&args);
    cmd.env("https_proxy", &variable);
    let out = ferroconnect_interop::run_to_end(cmd, "secret\n", SECS(30));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("failed to connect to"), "{text}");
    let access = fs::read_to_string(lab.dir.join("squid/access.log")).unwrap();
    assert!(
        access.contains("CONNECT") && access.contains("alice"),
        "{access}"
    );
}

/// NTLM (NEGOTIATE, CHALLENGE, AUTHENTICATE on one connection) with a domain user.
#[test]
fn http_proxy_with_ntlm_auth_carries_the_tunnel() {
    let (mut lab, pki) = lab("proxy-ntlm");
    let proxy = start_squid(&mut lab, SquidAuth::Ntlm);
    let url = format!("http://CORP%5Calice:proxypw@{proxy}");
    tunnel_through(&mut lab, &pki, &["-P", &url, "--proxy-auth=ntlm"], &[]);
    let access = fs::read_to_string(lab.dir.join("squid/access.log")).unwrap();
    assert!(
        access.contains("CONNECT") && access.to_lowercase().contains("alice"),
        "{access}"
    );
}

/// Negotiate with the client's Kerberos ticket (no user name or password given).
#[test]
fn http_proxy_with_kerberos_carries_the_tunnel() {
    let (mut lab, pki) = lab("proxy-krb5");
    let (kdc, keytab) = Kdc::start_with_alice(&mut lab, "proxy.keytab");
    let proxy = start_squid(&mut lab, SquidAuth::Negotiate(keytab.display().to_string()));
    let cache = kdc.kinit(&lab, "alice", ALICE_PASSWORD);
    let config = kdc.config.display().to_string();
    let env = [
        ("KRB5_CONFIG", config.as_str()),
        ("KRB5CCNAME", cache.as_str()),
    ];
    let proxy_url = format!("http://{proxy}");
    tunnel_through(&mut lab, &pki, &["-P", &proxy_url], &env);
    let access = fs::read_to_string(lab.dir.join("squid/access.log")).unwrap();
    assert!(access.contains(&format!("alice@{REALM}")), "{access}");
    // Without a ticket: GSSAPI's reason, and what to do.
    let empty = kdc.no_ticket();
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let mut cmd = lab.client_command(&login_args(&ca, &["-P", &proxy_url, "--authenticate", &u]));
    cmd.env("KRB5_CONFIG", &config).env("KRB5CCNAME", &empty);
    let out = ferroconnect_interop::run_to_end(cmd, "secret\n", SECS(30));
    assert_no_ticket_error(&out);
}

#[test]
fn socks5_proxy_with_a_password_carries_the_tunnel() {
    let (mut lab, pki) = lab("proxy-socks");
    let proxy = start_dante(&mut lab);
    let (code, text) = authenticate_through(&lab, &pki, &["-P", &format!("socks5://{proxy}")]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("SOCKS server requires authentication"),
        "{text}"
    );
    let wrong = format!("socks://alice:nope@{proxy}");
    let (code, text) = authenticate_through(&lab, &pki, &["-P", &wrong]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("Password authentication to SOCKS server failed"),
        "{text}"
    );
    let right = format!("socks5://alice:proxypw@{proxy}");
    tunnel_through(&mut lab, &pki, &["-P", &right], &[]);
}

/// A dead proxy in the variable does not matter for a server `no_proxy` names (and the
/// refused direct connection shows the client went straight to the server).
#[test]
fn no_proxy_and_refused_proxies() {
    let (lab, pki) = lab("proxy-none");
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let mut rest = extra.to_vec();
        rest.extend(["--authenticate", &u]);
        let args = login_args(&ca, &rest);
        let mut cmd = lab.client_command(&args);
        cmd.envs(env.iter().copied());
        let out = ferroconnect_interop::run_to_end(cmd, "secret\n", SECS(30));
        (out.status.code(), output_text(&out))
    };
    let dead = format!("http://{}:9", lab.server_ip);
    let exempt = [
        ("https_proxy", dead.as_str()),
        ("no_proxy", "198.18.0.0/16"),
    ];
    let (code, text) = run(&[], &exempt);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("failed to connect to") && !text.contains("proxy"),
        "{text}"
    );
    let (code, text) = run(&[], &[("https_proxy", dead.as_str())]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("failed to connect to proxy http://"),
        "{text}"
    );
    // The upper-case variable counts only with --libproxy (libproxy's environment module).
    let upper = [("HTTPS_PROXY", dead.as_str())];
    let (code, text) = run(&["--libproxy"], &upper);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("failed to connect to proxy http://"),
        "{text}"
    );
    let (code, text) = run(&[], &upper);
    assert!(code == Some(1) && !text.contains("proxy"), "{text}");
    for (args, needle) in [
        (
            vec!["-P", "https://proxy:3128"],
            "proxy type \"https\" is not supported",
        ),
        (
            vec!["-P", "http://p", "--proxy-auth", "kerberos"],
            "unknown method \"kerberos\"",
        ),
    ] {
        let (code, text) = run(&args, &[]);
        assert_eq!(code, Some(1), "{text}");
        assert!(text.contains(needle), "{text}");
    }
}
