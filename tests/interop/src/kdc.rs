//! A Kerberos realm for tests: MIT's KDC (Debian's krb5-kdc) in the lab's server
//! namespace, its database and configuration in the lab directory, users with passwords,
//! service keys in keytabs, and tickets for the client (`kinit` in the client namespace).
//! Every party talks to the KDC over TCP, so UDP counts stay the tunnels'.

use std::fs;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use crate::{output_text, sh, wait_until, Lab};

pub const REALM: &str = "FERRO.TEST";
/// The password of the realm's user `alice`.
pub const ALICE_PASSWORD: &str = "alice-krb-pw";

#[derive(Debug)]
pub struct Kdc {
    /// The `krb5.conf` every party uses (`KRB5_CONFIG`).
    pub config: PathBuf,
    profile: PathBuf,
    dir: PathBuf,
}

impl Kdc {
    /// Creates the realm and starts its KDC on the server's address, port 88.
    pub fn start(lab: &mut Lab) -> Self {
        let dir = lab.dir.join("krb5");
        fs::create_dir_all(&dir).unwrap();
        let config = dir.join("krb5.conf");
        let profile = dir.join("kdc.conf");
        fs::write(
            &config,
            format!(
                "[libdefaults]\n default_realm = {REALM}\n dns_canonicalize_hostname = false\n \
                 rdns = false\n dns_lookup_kdc = false\n dns_lookup_realm = false\n udp_preference_limit = 1\n\
                 [realms]\n {REALM} = {{\n  kdc = {ip}:88\n }}\n",
                ip = lab.server_ip
            ),
        )
        .unwrap();
        fs::write(
            &profile,
            format!(
                "[kdcdefaults]\n kdc_ports = 88\n kdc_tcp_ports = 88\n[realms]\n {REALM} = {{\n  \
                 database_name = {d}/principal\n  key_stash_file = {d}/stash\n  \
                 acl_file = {d}/kadm5.acl\n }}\n[logging]\n kdc = FILE:{d}/kdc.log\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let kdc = Self {
            config,
            profile,
            dir,
        };
        kdc.admin(&format!("kdb5_util create -s -r {REALM} -P master-key-pw"));
        let env = kdc.env();
        let ns = lab.server_ns.clone();
        lab.spawn_in(&ns, &["env", &env[0], &env[1], "krb5kdc", "-n"], "kdc.log");
        let up = wait_until(Duration::from_secs(10), || {
            let out = lab.in_server("ss -Hluna 'sport = :88'");
            (!String::from_utf8_lossy(&out.stdout).trim().is_empty()).then_some(())
        });
        assert!(
            up.is_some(),
            "the KDC did not start: {}",
            lab.log("kdc.log")
        );
        kdc
    }

    /// The realm with the user `alice` and the key of `HTTP/<server address>` in the keytab
    /// `keytab_name`: the KDC and the keytab.
    pub fn start_with_alice(lab: &mut Lab, keytab_name: &str) -> (Self, PathBuf) {
        let kdc = Self::start(lab);
        kdc.add_user("alice", ALICE_PASSWORD);
        let keytab = kdc.service_keytab(&format!("HTTP/{}", lab.server_ip), keytab_name);
        (kdc, keytab)
    }

    /// A `KRB5CCNAME` with no ticket in it.
    pub fn no_ticket(&self) -> String {
        format!("FILE:{}/no-ticket", self.dir.display())
    }

    fn env(&self) -> [String; 2] {
        [
            format!("KRB5_CONFIG={}", self.config.display()),
            format!("KRB5_KDC_PROFILE={}", self.profile.display()),
        ]
    }

    fn admin(&self, command: &str) {
        let [config, profile] = self.env();
        let out = sh(&format!("{config} {profile} {command} 2>&1; echo rc=$?"));
        assert!(out.trim_end().ends_with("rc=0"), "{command}: {out}");
    }

    /// A user principal with a password.
    pub fn add_user(&self, name: &str, password: &str) {
        self.admin(&format!(
            "kadmin.local -r {REALM} -q 'addprinc -pw {password} {name}'"
        ));
    }

    /// A service principal (`HTTP/host`) with a random key, exported to a keytab that
    /// unprivileged services may read.
    pub fn service_keytab(&self, principal: &str, name: &str) -> PathBuf {
        let keytab = self.dir.join(name);
        self.admin(&format!(
            "kadmin.local -r {REALM} -q 'addprinc -randkey {principal}'"
        ));
        self.admin(&format!(
            "kadmin.local -r {REALM} -q 'ktadd -k {} {principal}'",
            keytab.display()
        ));
        sh(&format!("chmod 644 {}", keytab.display()));
        keytab
    }

    /// Logs `user` in in the client namespace: the `KRB5CCNAME` holding the ticket.
    pub fn kinit(&self, lab: &Lab, user: &str, password: &str) -> String {
        let cache = format!("FILE:{}/ccache-{user}", self.dir.display());
        let out = self.kinit_with(lab, &self.config, &cache, user, password);
        assert!(out.status.success(), "kinit {user}: {}", output_text(&out));
        cache
    }

    /// `kinit` in the client namespace with the client configuration `config` (another
    /// way to the KDC), the ticket going to `cache`.
    pub fn kinit_with(
        &self,
        lab: &Lab,
        config: &std::path::Path,
        cache: &str,
        user: &str,
        password: &str,
    ) -> Output {
        lab.in_client(&format!(
            "echo '{password}' | KRB5_CONFIG={} KRB5CCNAME={cache} kinit {user}",
            config.display()
        ))
    }

    /// A client configuration that reaches the realm's KDC through `proxy_url` (MS-KKDCP
    /// over HTTPS, its certificate signed by `ca`).
    pub fn proxy_config(&self, name: &str, proxy_url: &str, ca: &std::path::Path) -> PathBuf {
        let path = self.dir.join(name);
        fs::write(
            &path,
            format!(
                "[libdefaults]\n default_realm = {REALM}\n dns_lookup_kdc = false\n \
                 dns_lookup_realm = false\n[realms]\n {REALM} = {{\n  kdc = {proxy_url}\n  \
                 http_anchors = FILE:{}\n }}\n",
                ca.display()
            ),
        )
        .unwrap();
        path
    }
}

/// A client run without a ticket failed, and said why and what to do.
pub fn assert_no_ticket_error(out: &Output) {
    let text = output_text(out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("no Kerberos token could be made") && text.contains("kinit"),
        "{text}"
    );
}
