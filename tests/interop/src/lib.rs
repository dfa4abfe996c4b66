//! A test bed of network namespaces with real peers.
//!
//! Each [`Lab`] owns a server namespace and a client namespace joined by a veth pair, with a
//! "host behind the server" address on the server's loopback. Names and the 198.18.N.0/24
//! subnet are unique per lab, so tests run in parallel. Dropping the lab kills the processes
//! it started and deletes its namespaces, also when a test fails.

// Test support: a failed set-up step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod gateway;
pub mod gateway_lab;
pub mod kdc;
pub mod oidc_provider;
pub mod radius_server;

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};

static NEXT_SUBNET: AtomicU8 = AtomicU8::new(10);

/// Where the workspace's binaries are: `target/debug`, or `$FERROCONNECT_BIN_DIR` when it is
/// set (the benchmark points it at `target/release`).
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("FERROCONNECT_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
            .join("debug"),
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` first (the test script does)",
        path.display()
    );
    path
}

/// A finished command's stdout followed by its stderr, as text.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command and panics with its output if it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A test PKI: CA, and a server certificate for `vpn.test` and the server address.
#[derive(Debug)]
pub struct Pki {
    pub ca_pem: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    ca: X509,
    ca_key: PKey<Private>,
}

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

/// A certificate for `cn` and `pubkey`, signed by `signer`: self-signed as a CA without
/// an `issuer`, else issued by that CA.
fn cert<T: openssl::pkey::HasPublic>(
    cn: &str,
    pubkey: &openssl::pkey::PKeyRef<T>,
    issuer: Option<&X509>,
    signer: &PKey<Private>,
    san: Option<&str>,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(rand_u32())
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_pubkey(pubkey).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    match issuer {
        None => {
            b.set_issuer_name(&name).unwrap();
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.sign(signer, MessageDigest::sha256()).unwrap();
        }
        Some(ca) => {
            b.set_issuer_name(ca.subject_name()).unwrap();
            if let Some(ip) = san {
                let ext = SubjectAlternativeName::new()
                    .dns("vpn.test")
                    .ip(ip)
                    .build(&b.x509v3_context(Some(ca), None))
                    .unwrap();
                b.append_extension(ext).unwrap();
            }
            b.sign(signer, MessageDigest::sha256()).unwrap();
        }
    }
    b.build()
}

fn rand_u32() -> u32 {
    let mut buf = [0u8; 4];
    openssl::rand::rand_bytes(&mut buf).unwrap();
    u32::from_le_bytes(buf) >> 1
}

impl Pki {
    pub fn create(dir: &Path, server_ip: &str) -> Self {
        let ca_key = key();
        let ca = cert("ferroconnect test CA", &ca_key, None, &ca_key, None);
        let srv_key = key();
        let srv = cert("vpn.test", &srv_key, Some(&ca), &ca_key, Some(server_ip));
        let pki = Self {
            ca_pem: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            ca,
            ca_key,
        };
        fs::write(&pki.ca_pem, pki.ca.to_pem().unwrap()).unwrap();
        fs::write(&pki.server_cert, srv.to_pem().unwrap()).unwrap();
        fs::write(&pki.server_key, srv_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        pki
    }

    /// Another server certificate (same CA and names) for `key`, of any type, written to
    /// `NAME.pem` and `NAME.key` in `dir`: (certificate, key).
    pub fn server_cert_for(
        &self,
        dir: &Path,
        name: &str,
        key: &PKey<Private>,
        server_ip: &str,
    ) -> (PathBuf, PathBuf) {
        let srv = cert(
            "vpn.test",
            key,
            Some(&self.ca),
            &self.ca_key,
            Some(server_ip),
        );
        let paths = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        fs::write(&paths.0, srv.to_pem().unwrap()).unwrap();
        fs::write(&paths.1, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        paths
    }

    /// Replaces the server certificate and key (same CA, new key) in their files.
    pub fn renew_server_cert(&self, server_ip: &str) {
        let srv_key = key();
        let srv = cert(
            "vpn.test",
            &srv_key,
            Some(&self.ca),
            &self.ca_key,
            Some(server_ip),
        );
        fs::write(&self.server_cert, srv.to_pem().unwrap()).unwrap();
        fs::write(
            &self.server_key,
            srv_key.private_key_to_pem_pkcs8().unwrap(),
        )
        .unwrap();
    }

    /// An OCSP response from the CA for the server certificate (`good`, or `revoked`),
    /// made with `openssl ocsp` and written to `NAME.der` in `dir`.
    pub fn ocsp_response(&self, dir: &Path, name: &str, revoked: bool) -> PathBuf {
        let server = X509::from_pem(&fs::read(&self.server_cert).unwrap()).unwrap();
        let serial = server
            .serial_number()
            .to_bn()
            .unwrap()
            .to_hex_str()
            .unwrap();
        let ca_key = dir.join(format!("{name}-ca.key"));
        fs::write(&ca_key, self.ca_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let index = dir.join(format!("{name}-index.txt"));
        let (status, when) = if revoked {
            ("R", "240101000000Z")
        } else {
            ("V", "")
        };
        fs::write(
            &index,
            format!("{status}\t491231000000Z\t{when}\t{serial}\tunknown\t/CN=vpn.test\n"),
        )
        .unwrap();
        let (request, response) = (
            dir.join(format!("{name}-req.der")),
            dir.join(format!("{name}.der")),
        );
        let (ca, cert) = (self.ca_pem.display(), self.server_cert.display());
        sh(&format!(
            "openssl ocsp -issuer {ca} -cert {cert} -no_nonce -reqout {req} && \
             openssl ocsp -index {idx} -rsigner {ca} -rkey {key} -CA {ca} -reqin {req} \
             -respout {resp} -ndays 1",
            req = request.display(),
            idx = index.display(),
            key = ca_key.display(),
            resp = response.display(),
        ));
        response
    }

    /// ocserv.conf lines for certificate logins: client certificates from this CA, the
    /// user named by their common name.
    pub fn certificate_login_config(&self) -> String {
        format!(
            "ca-cert = {}\ncert-user-oid = 2.5.4.3\n",
            self.ca_pem.display()
        )
    }

    /// A client certificate for `cn`, as PEM certificate + key and as PKCS#12 protected by
    /// `p12_password`: (cert, key, p12).
    pub fn client_cert(
        &self,
        dir: &Path,
        cn: &str,
        p12_password: &str,
    ) -> (PathBuf, PathBuf, PathBuf) {
        let key = key();
        let cert = cert(cn, &key, Some(&self.ca), &self.ca_key, None);
        let paths = (
            dir.join(format!("{cn}.pem")),
            dir.join(format!("{cn}.key")),
            dir.join(format!("{cn}.p12")),
        );
        fs::write(&paths.0, cert.to_pem().unwrap()).unwrap();
        fs::write(&paths.1, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let p12 = openssl::pkcs12::Pkcs12::builder()
            .name(cn)
            .pkey(&key)
            .cert(&cert)
            .build2(p12_password)
            .unwrap();
        fs::write(&paths.2, p12.to_der().unwrap()).unwrap();
        paths
    }
}

impl Pki {
    /// A client certificate for `cn` on the public key in the PEM file `public` (a key
    /// kept elsewhere: a TPM, a token), written to `dir/CN.pem`.
    pub fn client_cert_for_public_key(&self, dir: &Path, cn: &str, public: &Path) -> PathBuf {
        let public = PKey::public_key_from_pem(&fs::read(public).unwrap()).unwrap();
        let cert = cert(cn, &public, Some(&self.ca), &self.ca_key, None);
        let path = dir.join(format!("{cn}.pem"));
        fs::write(&path, cert.to_pem().unwrap()).unwrap();
        path
    }

    /// A client certificate for `cn` on a P-256 key, as PEM certificate + PKCS#8 key:
    /// (cert, key).
    pub fn client_cert_ec(&self, dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap();
        let cert = cert(cn, &key, Some(&self.ca), &self.ca_key, None);
        let paths = (
            dir.join(format!("{cn}-ec.pem")),
            dir.join(format!("{cn}-ec.key")),
        );
        fs::write(&paths.0, cert.to_pem().unwrap()).unwrap();
        fs::write(&paths.1, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        paths
    }
}

/// The `--servercert` pin of the certificate in the PEM file `cert`: `pin-sha256:` and the
/// base64 SHA-256 of its DER SubjectPublicKeyInfo.
pub fn pin_sha256(cert: &Path) -> String {
    let cert = X509::from_pem(&fs::read(cert).unwrap()).unwrap();
    let spki = cert.public_key().unwrap().public_key_to_der().unwrap();
    let digest = openssl::hash::hash(MessageDigest::sha256(), &spki).unwrap();
    format!("pin-sha256:{}", openssl::base64::encode_block(&digest))
}

/// Where [`Lab::hostile`] servers serve their metrics.
pub const HOSTILE_METRICS: &str = "127.0.0.1:9616";

/// Two namespaces joined by a veth pair, and what runs in them.
#[derive(Debug)]
pub struct Lab {
    pub name: String,
    pub server_ns: String,
    pub client_ns: String,
    /// 198.18.N.1 (server) and .2 (client).
    pub server_ip: String,
    pub client_ip: String,
    /// Address on the server's loopback, reachable only through the tunnel.
    pub behind_ip: String,
    /// VPN address pool.
    pub pool: String,
    pub dir: PathBuf,
    /// The client binary `client_command` runs: ours unless [`Lab::use_real_client`].
    pub client_bin: PathBuf,
    /// Extra environment for the server process.
    pub server_env: Vec<(String, String)>,
    /// Extra arguments for the server process (after `-f -d 2`).
    pub server_args: Vec<String>,
    /// Client namespaces added by [`Lab::add_client_ns`].
    extra_ns: Vec<String>,
    children: Vec<Child>,
}

/// Which server a lab runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Debian's ocserv.
    Debian,
    /// Our `ocserv`.
    Ours,
}

impl Lab {
    pub fn new(test: &str) -> Self {
        assert!(
            nix_is_root(),
            "interop tests need root (network namespaces, tun devices); run them via scripts/test.sh"
        );
        let n = NEXT_SUBNET.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}{}", std::process::id() % 10000, n);
        let name = format!("fc{tag}");
        let dir = std::env::temp_dir().join(format!("ferroconnect-{test}-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let lab = Self {
            server_ns: format!("{name}s"),
            client_ns: format!("{name}c"),
            server_ip: format!("198.18.{n}.1"),
            client_ip: format!("198.18.{n}.2"),
            behind_ip: format!("198.19.{n}.1"),
            pool: format!("198.19.{}.0", 100 + n),
            name,
            dir,
            client_bin: bin("openconnect"),
            server_env: Vec::new(),
            server_args: Vec::new(),
            extra_ns: Vec::new(),
            children: Vec::new(),
        };
        // `ip netns exec` bind-mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf, so
        // the vpnc-script's DNS changes stay inside the lab instead of hitting the host.
        for ns in [&lab.server_ns, &lab.client_ns] {
            let etc = Path::new("/etc/netns").join(ns);
            fs::create_dir_all(&etc).unwrap();
            fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        }
        let (s, c, v) = (&lab.server_ns, &lab.client_ns, &lab.name);
        sh(&format!(
            "ip netns add {s} && ip netns add {c} && \
             ip link add {v}a type veth peer name {v}b && \
             ip link set {v}a netns {s} && ip link set {v}b netns {c} && \
             ip -n {s} addr add {}/24 dev {v}a && ip -n {s} link set {v}a up && ip -n {s} link set lo up && \
             ip -n {c} addr add {}/24 dev {v}b && ip -n {c} link set {v}b up && ip -n {c} link set lo up && \
             ip -n {s} addr add {}/32 dev lo",
            lab.server_ip, lab.client_ip, lab.behind_ip
        ));
        lab
    }

    /// Starts Debian's ocserv in the server namespace with password auth for `users`
    /// (name, password) and returns its config path once it listens.
    pub fn start_ocserv(&mut self, pki: &Pki, users: &[(&str, &str)], extra: &str) -> PathBuf {
        let auth = self.make_passwd(Path::new("ocpasswd"), users, None);
        self.start_ocserv_with_auth(pki, &auth, extra)
    }

    /// A lab for the hostile suites: Debian's client, and our server with `users`, DTLS on
    /// UDP port 443 and its metrics at [`HOSTILE_METRICS`] (inside the server namespace).
    pub fn hostile(test: &str, users: &[(&str, &str)]) -> (Self, Pki) {
        let mut lab = Self::new(test);
        lab.use_real_client();
        let pki = Pki::create(&lab.dir, &lab.server_ip);
        let extra = format!("udp-port = 443\nmetrics-listen = {HOSTILE_METRICS}\n");
        lab.start_our_server(&pki, users, &extra);
        (lab, pki)
    }

    /// Starts our server the same way, with the password file made by our `ocpasswd`.
    pub fn start_our_server(&mut self, pki: &Pki, users: &[(&str, &str)], extra: &str) -> PathBuf {
        let auth = self.make_passwd(&bin("ocpasswd"), users, None);
        self.start_server(ServerKind::Ours, pki, &auth, extra)
    }

    /// Writes `ocpasswd` in the lab directory with `tool` (users in `groups` when given)
    /// and returns the `auth` value.
    pub fn make_passwd(&self, tool: &Path, users: &[(&str, &str)], groups: Option<&str>) -> String {
        self.make_passwd_at("ocpasswd", tool, users, groups)
    }

    /// Writes the password file `file_name` in the lab directory with `tool` (users in
    /// `groups` when given) and returns the `auth` value.
    pub fn make_passwd_at(
        &self,
        file_name: &str,
        tool: &Path,
        users: &[(&str, &str)],
        groups: Option<&str>,
    ) -> String {
        let passwd = self.dir.join(file_name);
        for (user, pass) in users {
            let mut child = Command::new(tool)
                .arg("-c")
                .arg(&passwd)
                .args(groups.map(|g| ["-g", g]).into_iter().flatten())
                .arg(user)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .expect("ocpasswd (apt-get install ocserv)");
            write!(child.stdin.take().unwrap(), "{pass}\n{pass}\n").unwrap();
            assert!(child.wait().unwrap().success());
        }
        format!("plain[passwd={}]", passwd.display())
    }

    /// Starts ocserv with the given `auth` method (e.g. `certificate`).
    pub fn start_ocserv_with_auth(&mut self, pki: &Pki, auth: &str, extra: &str) -> PathBuf {
        self.start_server(ServerKind::Debian, pki, auth, extra)
    }

    /// The lab's ocserv.conf (the same for both servers), with `extra` lines appended.
    pub fn server_config(&self, pki: &Pki, auth: &str, extra: &str) -> String {
        format!(
            "{}ipv4-network = {}\n\
             ipv4-netmask = 255.255.255.0\n\
             max-clients = 16\n\
             max-same-clients = 4\n\
             banner = \"Welcome to the test VPN\"\n{extra}",
            self.server_config_common(pki, auth),
            self.pool,
        )
    }

    /// The ocserv.conf lines every lab server has: where it listens, its certificate and
    /// files, the route to the host behind it, DNS and timers. Pool and limits are the
    /// caller's.
    pub fn server_config_common(&self, pki: &Pki, auth: &str) -> String {
        let d = self.dir.display();
        format!(
            "auth = \"{auth}\"\n\
             listen-host = {ip}\n\
             tcp-port = 443\n\
             server-cert = {cert}\n\
             server-key = {key}\n\
             socket-file = {d}/ocserv.sock\n\
             occtl-socket-file = {d}/occtl.sock\n\
             use-occtl = true\n\
             pid-file = {d}/ocserv.pid\n\
             device = {tun}v\n\
             route = {behind}/24\n\
             dns = 198.19.0.53\n\
             default-domain = example.test\n\
             keepalive = 32400\n\
             dpd = 90\n\
             mobile-dpd = 1800\n\
             cookie-timeout = 300\n\
             isolate-workers = false\n\
             predictable-ips = true\n",
            ip = self.server_ip,
            cert = pki.server_cert.display(),
            key = pki.server_key.display(),
            tun = self.name,
            behind = self.behind_ip,
        )
    }

    /// Starts a server of `kind` with the lab configuration and returns the config path once
    /// it listens.
    pub fn start_server(
        &mut self,
        kind: ServerKind,
        pki: &Pki,
        auth: &str,
        extra: &str,
    ) -> PathBuf {
        let config = self.server_config(pki, auth, extra);
        self.start_server_with_config(kind, &config)
    }

    /// Starts a server of `kind` with exactly this configuration text (written to
    /// `ocserv.conf` in the lab directory) and returns its path once it listens.
    pub fn start_server_with_config(&mut self, kind: ServerKind, config: &str) -> PathBuf {
        let path = self.dir.join("ocserv.conf");
        fs::write(&path, config).unwrap();
        let log = fs::File::create(self.dir.join("ocserv.log")).unwrap();
        let (program, ready) = match kind {
            ServerKind::Debian => (PathBuf::from("ocserv"), "initialized ocserv"),
            ServerKind::Ours => (bin("ocserv"), "listening on TCP port"),
        };
        let child = Command::new("ip")
            .args(["netns", "exec", &self.server_ns])
            .arg(&program)
            .args(["-f", "-d", "2"])
            .args(&self.server_args)
            .arg("-c")
            .arg(&path)
            .envs(self.server_env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("ocserv (apt-get install ocserv)");
        self.children.push(child);
        self.wait_for_log("ocserv.log", ready, Duration::from_secs(15));
        path
    }

    /// Runs our server in the foreground with the configuration at `config`, expecting it to
    /// refuse to start: its exit code and output once it ends (a server still running after
    /// 20 s is killed and fails the test).
    pub fn start_refused(&self, config: &Path) -> (Option<i32>, String) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.server_ns])
            .arg(bin("ocserv"))
            .arg("-f")
            .arg("-c")
            .arg(config);
        let out = run_to_end(cmd, "", Duration::from_secs(20));
        (out.status.code(), output_text(&out))
    }

    /// The pid of the server started last (the `ip netns exec` wrapper execs it).
    pub fn server_pid(&self) -> u32 {
        self.children.first().map(Child::id).unwrap_or_default()
    }

    /// From now on `client_command` runs Debian's openconnect instead of ours.
    pub fn use_real_client(&mut self) {
        self.client_bin = PathBuf::from("/usr/sbin/openconnect");
    }

    pub fn log(&self, file: &str) -> String {
        fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    /// The environment the recording script ([`Lab::recording_script`]) saw for `reason`
    /// (`connect`, `disconnect`, ...), as `NAME` to value.
    pub fn env_file(&self, reason: &str) -> HashMap<String, String> {
        self.log(&format!("env.{reason}"))
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Waits until `file` in the lab directory contains `needle`.
    pub fn wait_for_log(&self, file: &str, needle: &str, limit: Duration) -> String {
        wait_until(limit, || {
            let text = self.log(file);
            text.contains(needle).then_some(text)
        })
        .unwrap_or_else(|| panic!("{file} never showed {needle:?}:\n{}", self.log(file)))
    }

    /// Waits until `needle` occurs at least `count` times in `file`.
    pub fn wait_for_log_count(&self, file: &str, needle: &str, count: usize, limit: Duration) {
        wait_until(limit, || {
            (self.log(file).matches(needle).count() >= count).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "{file} never showed {needle:?} {count} times:\n{}",
                self.log(file)
            )
        })
    }

    /// An executable shell script `name` in the lab directory running `body`; its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        sh(&format!("chmod +x {}", path.display()));
        path
    }

    /// A script for `-s` that records each run's environment, then runs Debian's
    /// vpnc-script unchanged.
    pub fn recording_script(&self) -> String {
        let path = self.dir.join("script.sh");
        let d = self.dir.display();
        fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$reason\" >> {d}/reasons\nenv | sort > {d}/env.$reason\n\
                 exec /usr/share/vpnc-scripts/vpnc-script\n"
            ),
        )
        .unwrap();
        sh(&format!("chmod +x {}", path.display()));
        path.display().to_string()
    }

    /// Our client in the client namespace.
    pub fn client_command(&self, args: &[&str]) -> Command {
        self.client_command_in(&self.client_ns, args)
    }

    fn client_command_in(&self, ns: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(&self.client_bin)
            .args(args);
        // Both clients take a proxy from the environment; a lab has none unless a test
        // sets one.
        for name in [
            "https_proxy",
            "HTTPS_PROXY",
            "http_proxy",
            "HTTP_PROXY",
            "no_proxy",
        ] {
            cmd.env_remove(name);
        }
        cmd
    }

    /// Adds another client namespace on the same link (the server's side becomes a bridge),
    /// so two clients can run at once without fighting over routes; the address is
    /// 198.18.N.(2 + k). Removed with the lab.
    pub fn add_client_ns(&mut self) -> String {
        let k = self.extra_ns.len() + 1;
        let ns = format!("{}{k}", self.client_ns);
        let ip = format!("{}{}", &self.client_ip[..self.client_ip.len() - 1], 2 + k);
        let (n, s) = (&self.name, &self.server_ns);
        if self.extra_ns.is_empty() {
            // Move the server's address onto a bridge both links join.
            sh(&format!(
                "ip -n {s} link add {n}br type bridge && ip -n {s} link set {n}br up && \
                 ip -n {s} addr del {ip}/24 dev {n}a && ip -n {s} link set {n}a master {n}br && \
                 ip -n {s} addr add {ip}/24 dev {n}br",
                ip = self.server_ip
            ));
        }
        sh(&format!(
            "ip netns add {ns} && ip link add {n}x{k} type veth peer name {n}y{k} && \
             ip link set {n}x{k} netns {s} && ip link set {n}y{k} netns {ns} && \
             ip -n {s} link set {n}x{k} master {n}br && ip -n {s} link set {n}x{k} up && \
             ip -n {ns} addr add {ip}/24 dev {n}y{k} && ip -n {ns} link set {n}y{k} up && \
             ip -n {ns} link set lo up"
        ));
        let etc = Path::new("/etc/netns").join(&ns);
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        self.extra_ns.push(ns.clone());
        ns
    }

    /// Starts the client in namespace `ns`, logging to `log` in the lab directory.
    pub fn spawn_client_in(&mut self, ns: &str, args: &[&str], stdin: &str, log: &str) -> u32 {
        let cmd = self.client_command_in(ns, args);
        self.spawn_logged(cmd, stdin, log)
    }

    /// Runs `cmd` with `sh -c` in namespace `ns`.
    pub fn in_ns(&self, ns: &str, cmd: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns, "sh", "-c", cmd])
            .output()
            .unwrap()
    }

    /// Starts one of our login-only test gateways (`src/bin/NAME.rs`) in the server's
    /// namespace on `listen`, with the lab's server certificate and `extra` options,
    /// logging to `gateway.log`; returns once it listens.
    pub fn start_login_gateway(&mut self, pki: &Pki, name: &str, listen: &str, extra: &[&str]) {
        let gateway = bin(name).display().to_string();
        let (cert, key) = (
            pki.server_cert.display().to_string(),
            pki.server_key.display().to_string(),
        );
        let mut argv = vec![
            gateway.as_str(),
            "--listen",
            listen,
            "--cert",
            &cert,
            "--key",
            &key,
        ];
        argv.extend_from_slice(extra);
        let ns = self.server_ns.clone();
        self.spawn_in(&ns, &argv, "gateway.log");
        self.wait_for_log("gateway.log", "listening on", Duration::from_secs(10));
    }

    /// Starts `argv` in namespace `ns` in the background, its output going to `log` in the
    /// lab directory; it is stopped with the lab.
    pub fn spawn_in(&mut self, ns: &str, argv: &[&str], log: &str) -> u32 {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(argv);
        self.spawn_logged(cmd, "", log)
    }

    /// The lab's client with `--authenticate` as `user` to `host` (resolved to the lab
    /// server, its key pinned with `pin`), every prompt answered from `stdin`: whether a
    /// cookie came, and the output.
    pub fn authenticate_as(
        &self,
        host: &str,
        pin: &str,
        user: &str,
        extra: &[&str],
        stdin: &str,
    ) -> (bool, String) {
        let resolve = format!("--resolve={host}:{}", self.server_ip);
        let servercert = format!("--servercert={pin}");
        let mut args = vec!["--authenticate", &resolve, &servercert, "-u", user];
        args.extend_from_slice(extra);
        args.push(host);
        let out = self.run_client(&args, stdin, Duration::from_secs(40));
        let text = output_text(&out);
        (out.status.success() && text.contains("COOKIE="), text)
    }

    /// Runs our client to completion with `stdin` and a time limit.
    pub fn run_client(&self, args: &[&str], stdin: &str, limit: Duration) -> Output {
        run_to_end(self.client_command(args), stdin, limit)
    }

    /// Runs `argv` in namespace `ns` to completion with `stdin` and a time limit.
    pub fn run_in(&self, ns: &str, argv: &[&str], stdin: &str, limit: Duration) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(argv);
        run_to_end(cmd, stdin, limit)
    }

    /// Starts our client in the background, logging to `client.log`.
    pub fn spawn_client(&mut self, args: &[&str], stdin: &str) -> u32 {
        self.spawn_client_logged(args, stdin, "client.log")
    }

    /// Starts the client in the background, logging to `log` in the lab directory.
    pub fn spawn_client_logged(&mut self, args: &[&str], stdin: &str, log: &str) -> u32 {
        let cmd = self.client_command(args);
        self.spawn_logged(cmd, stdin, log)
    }

    /// Starts `cmd` in the background with `stdin`, its output going to `log` in the lab
    /// directory; it is stopped with the lab.
    pub fn spawn_logged(&mut self, cmd: Command, stdin: &str, log: &str) -> u32 {
        let log = fs::File::create(self.dir.join(log)).unwrap();
        let child = start(cmd, stdin, log.try_clone().unwrap().into(), log.into());
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// The exit status of the server (the first process started) once it ends (within
    /// `limit`).
    pub fn wait_server(&mut self, limit: Duration) -> Option<i32> {
        let child = self.children.first_mut()?;
        let status = wait_until(limit, || child.try_wait().ok().flatten())?;
        status.code()
    }

    /// The exit status of the last spawned client once it ends (within `limit`).
    pub fn wait_client(&mut self, limit: Duration) -> Option<i32> {
        let child = self.children.last_mut()?;
        let status = wait_until(limit, || child.try_wait().ok().flatten())?;
        status.code()
    }

    /// SIGINT to the client `pid` (the last spawned): it logs off and exits 0, and the
    /// server (ours or Debian's, logging to `ocserv.log`) logs the user's disconnect.
    pub fn log_off(&mut self, pid: u32) {
        self.signal_client(pid, "INT");
        let code = self.wait_client(Duration::from_secs(10));
        assert_eq!(code, Some(0), "{}", self.log("client.log"));
        self.wait_for_log("ocserv.log", "user disconnected", Duration::from_secs(10));
    }

    /// Sends a signal to our client (the `ip netns exec` wrapper execs it, so the pid is the
    /// client's own).
    pub fn signal_client(&self, pid: u32, sig: &str) {
        sh(&format!("kill -{sig} {pid}"));
    }

    pub fn in_client(&self, cmd: &str) -> Output {
        self.in_ns(&self.client_ns, cmd)
    }

    pub fn in_server(&self, cmd: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.server_ns, "sh", "-c", cmd])
            .output()
            .unwrap()
    }

    /// Pings the host behind the server from the client namespace, retrying while the
    /// tunnel comes up.
    pub fn ping_behind(&self, limit: Duration) -> bool {
        wait_until(limit, || {
            let out = self.in_client(&format!("ping -c 1 -W 1 {}", self.behind_ip));
            out.status.success().then_some(())
        })
        .is_some()
    }

    /// Whether the server's address in the pool (`.1`) answers a ping from the client
    /// namespace sent to the server's link address rather than through a tunnel: as on
    /// ocserv, it exists only while a tunnel is up. (The route is there for this ping
    /// only: a tunnel's routes must not meet it.)
    pub fn server_pool_address_answers(&self) -> bool {
        let base = self.pool.trim_end_matches(".0");
        let out = self.in_client(&format!(
            "ip route replace {}/24 via {server} && ping -c 1 -W 1 {base}.1; status=$?; \
             ip route del {}/24 via {server}; exit $status",
            self.pool,
            self.pool,
            server = self.server_ip,
        ));
        out.status.success()
    }

    /// Asserts that the host behind the server answers pings through the tunnel within 20 s,
    /// showing both logs otherwise; `what` says which tunnel.
    pub fn assert_tunnel(&self, what: &str) {
        assert!(
            self.ping_behind(Duration::from_secs(20)),
            "no tunnel {what}:\n{}\n{}",
            self.log("client.log"),
            self.log("ocserv.log")
        );
    }

    /// `Udp: InDatagrams` of the client namespace (/proc/net/snmp is per namespace): how
    /// many UDP datagrams it received, to prove traffic went over DTLS.
    pub fn client_udp_in(&self) -> u64 {
        let out = self.in_client("cat /proc/net/snmp");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
        let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
            panic!("no Udp lines in /proc/net/snmp:\n{text}");
        };
        let index = names
            .split_whitespace()
            .position(|n| n == "InDatagrams")
            .expect("InDatagrams column");
        values
            .split_whitespace()
            .nth(index)
            .and_then(|v| v.parse().ok())
            .expect("InDatagrams value")
    }

    /// Starts pinging the host behind the server from the client namespace every `interval`
    /// (e.g. "0.2"), in the background, until [`Pinging::stop`].
    pub fn start_pinging(&self, interval: &str) -> Pinging {
        let log = self.dir.join("ping.log");
        let out = fs::File::create(&log).expect("create ping.log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.client_ns,
                "ping",
                "-i",
                interval,
                "-W",
                "1",
            ])
            .arg(&self.behind_ip)
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("start ping");
        Pinging { child, log }
    }

    /// Bytes received and sent by the client namespace's veth (the underlay: what the VPN
    /// really put on the wire).
    pub fn client_link_bytes(&self) -> (u64, u64) {
        let out = self.in_client("cat /proc/net/dev");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let veth = format!("{}b:", self.name);
        let fields: Vec<u64> = text
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(veth.as_str()))
            .unwrap_or_else(|| panic!("no {veth} in /proc/net/dev:\n{text}"))
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        // Receive bytes come first, transmit bytes ninth.
        (fields[0], fields[8])
    }

    /// Sends `count` pings to the host behind the VPN and asserts every reply arrived as a
    /// UDP datagram in the client namespace (that is, over DTLS).
    pub fn assert_pings_over_udp(&self, count: u32) {
        self.assert_pings_over_udp_to(&self.behind_ip, count);
    }

    /// Sends `count` pings to `addr` through the VPN and asserts every reply arrived as a
    /// UDP datagram in the client namespace (that is, over DTLS).
    pub fn assert_pings_over_udp_to(&self, addr: &str, count: u32) {
        let before = self.client_udp_in();
        let out = self.in_client(&format!("ping -c {count} -i 0.05 {addr}"));
        assert!(
            out.status.success(),
            "ping failed:\n{}",
            self.log("client.log")
        );
        let after = self.client_udp_in();
        assert!(
            after - before >= u64::from(count),
            "replies did not come over UDP ({before} -> {after})\nclient:\n{}\nserver:\n{}",
            self.log("client.log"),
            self.log("ocserv.log")
        );
    }

    /// MTU of the client namespace's tun device.
    pub fn client_tun_mtu(&self) -> u32 {
        let out = self.in_client("ip -o link show type tun");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .skip_while(|w| *w != "mtu")
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("no tun device with an MTU in the client:\n{text}"))
    }

    /// 20 pings, 5 of the tunnel's full packet size, then a short iperf3 run each way, all
    /// over UDP (DTLS): each direction's data reaches the client as datagrams.
    pub fn assert_traffic_over_udp(&self) {
        self.assert_pings_over_udp(20);
        let full = self.client_tun_mtu() - 28;
        let before = self.client_udp_in();
        let out = self.in_client(&format!(
            "ping -c 5 -i 0.05 -M do -s {full} {}",
            self.behind_ip
        ));
        assert!(
            out.status.success(),
            "full-size ping failed:\n{}",
            self.log("client.log")
        );
        assert!(
            self.client_udp_in() - before >= 5,
            "full-size replies did not come over UDP"
        );
        // Upload: only the ACKs come back; download: the data itself.
        for (reverse, least) in [("", 100), ("-R", 1000)] {
            let before = self.client_udp_in();
            let out = self.iperf(&format!("-t 2 {reverse}"));
            assert!(
                out.status.success(),
                "iperf3 {reverse} failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let got = self.client_udp_in() - before;
            assert!(
                got > least,
                "iperf3 {reverse}: only {got} datagrams reached the client (the traffic went over TLS)"
            );
        }
    }

    /// Drops all UDP in and out of the client namespace (nftables), as a hostile network
    /// would; [`Lab::unblock_udp`] lifts it.
    pub fn block_udp(&self) {
        let ns = &self.client_ns;
        sh(&format!(
            "ip netns exec {ns} nft add table inet fcblock && \
             ip netns exec {ns} nft add chain inet fcblock in '{{ type filter hook input priority 0; }}' && \
             ip netns exec {ns} nft add chain inet fcblock out '{{ type filter hook output priority 0; }}' && \
             ip netns exec {ns} nft add rule inet fcblock in meta l4proto udp drop && \
             ip netns exec {ns} nft add rule inet fcblock out meta l4proto udp drop"
        ));
    }

    /// Drops UDP datagrams arriving in the server namespace whose IP packet is longer than
    /// `max_ip_len` bytes: a path-MTU black hole on the way up (no ICMP, no local error).
    pub fn black_hole_large_udp(&self, max_ip_len: u32) {
        let ns = &self.server_ns;
        sh(&format!(
            "ip netns exec {ns} nft add table inet fcmtu && \
             ip netns exec {ns} nft add chain inet fcmtu in '{{ type filter hook input priority 0; }}' && \
             ip netns exec {ns} nft add rule inet fcmtu in meta l4proto udp ip length '>' {max_ip_len} drop"
        ));
    }

    pub fn unblock_udp(&self) {
        sh(&format!(
            "ip netns exec {} nft delete table inet fcblock",
            self.client_ns
        ));
    }

    /// Runs one iperf3 client in the client namespace against a one-shot iperf3 server on
    /// the host behind the VPN, with extra client `args`; returns the client's output.
    pub fn iperf(&self, args: &str) -> Output {
        let mut server = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.server_ns,
                "iperf3",
                "-s",
                "-1",
                "-B",
                &self.behind_ip,
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("iperf3 (apt-get install iperf3)");
        std::thread::sleep(Duration::from_millis(400));
        let out = self.in_client(&format!("iperf3 -c {} {args}", self.behind_ip));
        let _ = server.kill();
        let _ = server.wait();
        out
    }

    /// Runs [`Lab::iperf`] with `args` while `during` runs on this thread (e.g. blocking
    /// UDP mid-transfer); returns iperf3's output.
    pub fn iperf_while(&self, args: &str, during: impl FnOnce()) -> Output {
        std::thread::scope(|scope| {
            let transfer = scope.spawn(|| self.iperf(args));
            during();
            transfer.join().expect("iperf3 thread")
        })
    }

    /// Our occtl against the lab's server socket; the whole output.
    pub fn our_occtl(&self, args: &str) -> Output {
        self.in_server(&format!(
            "{} -n -s {}/occtl.sock {args}",
            bin("occtl").display(),
            self.dir.display()
        ))
    }

    pub fn occtl(&self, args: &str) -> String {
        let out = self.in_server(&format!(
            "occtl -s {}/occtl.sock {args}",
            self.dir.display()
        ));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Starts `cmd` and writes `stdin` to it.
fn start(mut cmd: Command, stdin: &str, stdout: Stdio, stderr: Stdio) -> Child {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    child
}

/// Runs `cmd` with `stdin` to completion; a run past `limit` is killed and fails the test.
pub fn run_to_end(cmd: Command, stdin: &str, limit: Duration) -> Output {
    let mut child = start(cmd, stdin, Stdio::piped(), Stdio::piped());
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "command did not finish within {limit:?}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn nix_is_root() -> bool {
    sh("id -u").trim() == "0"
}

/// Our client's arguments for a password login as alice (password on stdin), trusting the
/// lab CA, followed by `rest`.
pub fn login_args<'a>(ca: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "-u",
        "alice",
        "--passwd-on-stdin",
        "--non-inter",
        "--cafile",
        ca,
    ];
    args.extend_from_slice(rest);
    args
}

/// The `KEY='value'` lines `openconnect --authenticate` prints, as a lookup that fails the
/// test on a missing key.
pub fn authenticate_values(stdout: &str) -> impl Fn(&str) -> String + '_ {
    move |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}='"))?.strip_suffix('\''))
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
            .to_string()
    }
}

/// Polls `f` every 100 ms until it returns `Some` or `limit` passes.
pub fn wait_until<T>(limit: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    poll_until(limit, Duration::from_millis(100), f)
}

/// Polls `f` every `step` until it returns `Some` or `limit` passes.
pub fn poll_until<T>(
    limit: Duration,
    step: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(step);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // SIGTERM first, so our client runs its disconnect script (restoring DNS) and ocserv
        // cleans up; the client namespace may also hold a daemon started with -b.
        for child in &self.children {
            let _ = Command::new("kill")
                .arg(child.id().to_string())
                .stderr(Stdio::null())
                .status();
        }
        for child in &mut self.children {
            let _ = wait_until(Duration::from_secs(5), || child.try_wait().ok().flatten());
        }
        // Then whatever else runs in the client namespace (a daemon from -b), once its own
        // scripts have had their turn.
        let term = format!("ip netns pids {} | xargs -r kill", self.client_ns);
        let _ = Command::new("sh").arg("-c").arg(&term).status();
        let settled = wait_until(Duration::from_secs(5), || {
            let left = Command::new("ip")
                .args(["netns", "pids", &self.client_ns])
                .output()
                .ok()?;
            left.stdout.is_empty().then_some(())
        });
        if settled.is_none() {
            eprintln!("lab {}: client processes ignored SIGTERM", self.name);
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // ocserv's workers and sec-mod are its children: anything left goes now.
        for ns in [&self.server_ns, &self.client_ns]
            .into_iter()
            .chain(self.extra_ns.iter())
        {
            let cleanup = format!("ip netns pids {ns} | xargs -r kill -9; ip netns del {ns}");
            let _ = Command::new("sh").arg("-c").arg(cleanup).status();
            let _ = fs::remove_dir_all(Path::new("/etc/netns").join(ns));
        }
        if std::env::var_os("KEEP_LAB").is_none() && !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A `Vm*` line of /proc/PID/status (`VmRSS`, `VmHWM`, ...), in KiB.
pub fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix(" kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in:\n{status}"))
}

/// Whether `pid` runs (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(')')?.1.trim_start().chars().next()? != 'Z'))
        .unwrap_or(false)
}

/// "N packets transmitted, M received" of ping's output: (N, M).
/// A background ping started by [`Lab::start_pinging`].
#[derive(Debug)]
pub struct Pinging {
    child: Child,
    log: PathBuf,
}

impl Pinging {
    /// Stops it (SIGINT, so ping prints its summary) and returns (sent, answered).
    pub fn stop(mut self) -> (u64, u64) {
        sh(&format!("kill -INT {}", self.child.id()));
        let _ = self.child.wait();
        ping_counts(&fs::read_to_string(&self.log).unwrap_or_default())
    }
}

pub fn ping_counts(out: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary:\n{out}"));
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|t| t.parse().ok())
        .collect();
    (n[0], n[1])
}

/// The `ocserv_udp_datagrams_total` counters of our server's `/metrics`: the datagrams its
/// DTLS port read, by fate (each datagram is counted once).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UdpFates {
    pub delivered: u64,
    pub too_short: u64,
    pub oversized: u64,
    pub unmatched: u64,
    pub queue_full: u64,
}

impl UdpFates {
    /// Dropped by the server, for any reason.
    pub fn dropped(&self) -> u64 {
        self.too_short + self.oversized + self.unmatched + self.queue_full
    }

    /// Every datagram the server read.
    pub fn total(&self) -> u64 {
        self.delivered + self.dropped()
    }

    /// What changed since `earlier`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            delivered: self.delivered - earlier.delivered,
            too_short: self.too_short - earlier.too_short,
            oversized: self.oversized - earlier.oversized,
            unmatched: self.unmatched - earlier.unmatched,
            queue_full: self.queue_full - earlier.queue_full,
        }
    }

    /// The counters in a `/metrics` exposition; every fate must be there.
    pub fn parse(metrics: &str) -> Self {
        let fate = |name: &str| -> u64 {
            let series = format!("ocserv_udp_datagrams_total{{fate=\"{name}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(series.as_str()))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {series} in the metrics:\n{metrics}"))
        };
        Self {
            delivered: fate("delivered"),
            too_short: fate("too_short"),
            oversized: fate("oversized"),
            unmatched: fate("unmatched"),
            queue_full: fate("queue_full"),
        }
    }
}

impl Lab {
    /// Our server's `/metrics` text, from `metrics-listen` at `addr` (host:port) in the
    /// server namespace.
    pub fn scrape_metrics(&self, addr: &str) -> String {
        let out = self.in_server(&format!("curl -sS --max-time 5 http://{addr}/metrics"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && text.ends_with("# EOF\n"),
            "scraping {addr} failed: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// Our server's UDP datagram counters, from `metrics-listen` at `addr`.
    pub fn udp_fates(&self, addr: &str) -> UdpFates {
        UdpFates::parse(&self.scrape_metrics(addr))
    }

    /// A counter of the `Udp:` lines of the server namespace's /proc/net/snmp
    /// (`RcvbufErrors`, `InErrors`, ...).
    pub fn server_udp_snmp(&self, name: &str) -> u64 {
        let out = self.in_server("cat /proc/net/snmp");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
        let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
            panic!("no Udp lines in /proc/net/snmp:\n{text}");
        };
        let at = names
            .split_whitespace()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no Udp {name} in /proc/net/snmp:\n{text}"));
        values
            .split_whitespace()
            .nth(at)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Udp {name} value in /proc/net/snmp:\n{text}"))
    }
}
