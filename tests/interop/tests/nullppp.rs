//! `--protocol=nullppp` against a real, independent PPP peer: Debian's slirp, reached
//! through a TLS relay (socat), as `../shared/research/ppp-peer.md` describes. Each run
//! happens in its own network, UTS and PID namespaces (`unshare`), so slirp's host name and
//! every process go with it. Debian's openconnect 9.01 first proves the set-up; then ours
//! passes ping and TCP through the tunnel, logs off, and honours the `term` option.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferroconnect_interop::{bin, output_text, pin_sha256, Pki};

/// slirp calls select() with an invalid timeout that this glibc refuses; the shim clamps it.
const SELECT_SHIM: &str = r#"
#define _GNU_SOURCE
#include <sys/select.h>
#include <dlfcn.h>
int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t) {
    static int (*real)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
    if (!real) real = dlsym(RTLD_NEXT, "select");
    if (t && (t->tv_usec < 0 || t->tv_usec >= 1000000)) { t->tv_sec = 0; t->tv_usec = 100000; }
    return real(n, r, w, e, t);
}
"#;

/// Records each run's environment and sets the tunnel up with slirp's address as the peer.
const SCRIPT: &str = r#"#!/bin/sh
{ echo "== $reason"; env | grep -E '^(TUNDEV|INTERNAL_IP4|INTERNAL_IP6|VPNGATEWAY)' | sort; } >> "$(dirname "$0")/script.log"
if [ "$reason" = connect ]; then
    ip link set dev "$TUNDEV" up mtu "$INTERNAL_IP4_MTU"
    ip addr add "$INTERNAL_IP4_ADDRESS" peer 10.0.2.2 dev "$TUNDEV"
fi
exit 0
"#;

struct SlirpLab {
    dir: PathBuf,
    pin: String,
    cert: PathBuf,
    key: PathBuf,
}

impl SlirpLab {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ferroconnect-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let pki = Pki::create(&dir, "127.0.0.1");
        fs::write(dir.join("selshim.c"), SELECT_SHIM).unwrap();
        let cc = Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(dir.join("selshim.so"))
            .arg(dir.join("selshim.c"))
            .arg("-ldl")
            .output()
            .unwrap();
        assert!(cc.status.success(), "cc: {}", output_text(&cc));
        let script = dir.join("script.sh");
        fs::write(&script, SCRIPT).unwrap();
        sh_chmod(&script);
        Self {
            pin: pin_sha256(&pki.server_cert),
            cert: pki.server_cert,
            key: pki.server_key,
            dir,
        }
    }

    /// Runs the client against slirp; `checks` runs once tun0 has its address (or not),
    /// then the client gets SIGINT unless it has already ended. Returns everything printed,
    /// the client's log included.
    fn run(&self, client: &Path, cookie: &str, checks: &str) -> String {
        self.run_against(client, cookie, None, "", checks)
    }

    /// As [`run`](Self::run), with `peer` (a shell command on the TLS relay's other end)
    /// in place of slirp, and `args` added to the client's command line.
    fn run_against(
        &self,
        client: &Path,
        cookie: &str,
        peer: Option<&str>,
        args: &str,
        checks: &str,
    ) -> String {
        let d = self.dir.display();
        let relay_end = match peer {
            None => format!("PTY,link={d}/pppty,raw,echo=0"),
            Some(cmd) => format!("SYSTEM:'{cmd}'"),
        };
        let slirp = if peer.is_none() {
            format!(
                r#"for i in $(seq 50); do [ -e {d}/pppty ] && break; sleep 0.1; done
SLIRP_TTY="$(readlink -f {d}/pppty)"$'\n' LD_PRELOAD={d}/selshim.so slirp -P nozeros </dev/null > {d}/slirp.log 2>&1 &"#
            )
        } else {
            String::new()
        };
        let scenario = format!(
            r#"
set -u
ip link set lo up
hostname 10.0.2.2
socat OPENSSL-LISTEN:4443,reuseaddr,verify=0,cert={cert},key={key} {relay_end} &
for i in $(seq 50); do ss -ltn | grep -q :4443 && break; sleep 0.1; done
{client} --protocol=nullppp {args} --cookie '{cookie}' --servercert {pin} -i tun0 -s {d}/script.sh https://127.0.0.1:4443/ > {d}/client.log 2>&1 &
CPID=$!
{slirp}
for i in $(seq 150); do ip -4 addr show tun0 2>/dev/null | grep -q 'inet ' && break; kill -0 $CPID 2>/dev/null || break; sleep 0.1; done
{checks}
kill -INT $CPID 2>/dev/null
wait $CPID
echo "CLIENT_RC=$?"
echo "== client log"; cat {d}/client.log
echo "== script log"; cat {d}/script.log 2>/dev/null
"#,
            client = client.display(),
            pin = self.pin,
            cert = self.cert.display(),
            key = self.key.display(),
        );
        let out = Command::new("timeout")
            .args([
                "60",
                "unshare",
                "--net",
                "--uts",
                "--pid",
                "--fork",
                "--kill-child",
            ])
            .args(["--mount", "--mount-proc", "bash", "-c"])
            .arg(&scenario)
            .output()
            .unwrap();
        output_text(&out)
    }
}

impl Drop for SlirpLab {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn sh_chmod(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

const PING: &str = "ping -c 3 -W 2 10.0.2.2 | grep -o '[0-9]* received'";

#[test]
fn debian_openconnect_reaches_slirp_over_nullppp() {
    let lab = SlirpLab::new("nullppp-debian");
    let out = lab.run(Path::new("/usr/sbin/openconnect"), "hdlc,noipv6", PING);
    assert!(out.contains("3 received"), "{out}");
}

#[test]
fn our_client_carries_ping_and_tcp_through_slirp_and_logs_off() {
    let lab = SlirpLab::new("nullppp-ours");
    // slirp's 10.0.2.2 is the namespace's own loopback: an echo service there.
    let checks = format!(
        "{PING}
socat TCP-LISTEN:7777,bind=127.0.0.1,reuseaddr,fork EXEC:cat &
sleep 0.2
head -c 30000 /dev/urandom > {d}/in
socat -t 10 - TCP:10.0.2.2:7777 < {d}/in > {d}/out
cmp {d}/in {d}/out && echo TCP_ECHO_OK",
        d = lab.dir.display()
    );
    let out = lab.run(&bin("openconnect"), "hdlc,noipv6", &checks);
    assert!(out.contains("3 received"), "{out}");
    assert!(out.contains("TCP_ECHO_OK"), "{out}");
    // SIGINT: a PPP Terminate-Request, then the usual exit.
    assert!(
        out.contains("User cancelled (SIGINT/SIGTERM); exiting."),
        "{out}"
    );
    assert!(out.contains("CLIENT_RC=0"), "{out}");
    // The script saw what IPCP agreed: slirp's address for us and its DNS.
    let connect = out
        .split("== connect")
        .nth(1)
        .and_then(|s| s.split("== ").next())
        .unwrap_or_default();
    assert!(connect.contains("INTERNAL_IP4_ADDRESS=10.0.2.15"), "{out}");
    assert!(connect.contains("INTERNAL_IP4_DNS="), "{out}");
    assert!(connect.contains("TUNDEV=tun0"), "{out}");
    assert!(out.contains("== disconnect"), "{out}");
}

/// LCP Echo keepalives against an independent peer: with `--force-dpd 1` our client sends
/// an Echo-Request after each second of silence and declares the peer dead after two. slirp
/// answers them, so after four quiet seconds the link is the same one (no reconnect, which
/// this one-shot relay could not serve) and still carries pings.
#[test]
fn lcp_echo_keepalives_are_answered_by_slirp_and_keep_the_link() {
    let lab = SlirpLab::new("nullppp-dpd");
    let checks = format!("sleep 4\n{PING}");
    let out = lab.run_against(
        &bin("openconnect"),
        "hdlc,noipv6",
        None,
        "--force-dpd 1 -v",
        &checks,
    );
    assert!(out.contains("3 received"), "{out}");
    assert!(
        out.matches("Send PPP echo request as DPD").count() >= 3,
        "{out}"
    );
    assert!(!out.contains("reconnecting"), "{out}");
    assert!(!out.contains("dead peer detection"), "{out}");
    assert!(out.contains("CLIENT_RC=0"), "{out}");
}

#[test]
fn the_term_option_ends_the_session_once_the_network_is_up() {
    let lab = SlirpLab::new("nullppp-term");
    let out = lab.run(&bin("openconnect"), "hdlc,noipv6,term", "sleep 3");
    assert!(
        out.contains("Terminating because nullppp has reached network state."),
        "{out}"
    );
    assert!(out.contains("Configured as 10.0.2.15"), "{out}");
    assert!(out.contains("CLIENT_RC=0"), "{out}");
}

#[test]
fn a_peer_that_never_speaks_ppp_is_given_up_with_a_clear_error() {
    let lab = SlirpLab::new("nullppp-silent");
    // Random bytes, then silence: never an LCP answer.
    let peer = "head -c 20000 /dev/urandom; sleep 50";
    let out = lab.run_against(
        &bin("openconnect"),
        "hdlc",
        Some(peer),
        "",
        "wait $CPID; echo CLIENT_RC=$?",
    );
    assert!(
        out.contains("PPP LCP negotiation did not finish after 10 Configure-Requests"),
        "{out}"
    );
    assert!(out.contains("CLIENT_RC=1"), "{out}");
}

#[test]
fn a_connection_closed_before_the_link_is_up_is_an_error_not_a_reconnect() {
    let lab = SlirpLab::new("nullppp-closed");
    let out = lab.run_against(
        &bin("openconnect"),
        "hdlc",
        Some("sleep 1"),
        "",
        "wait $CPID; echo CLIENT_RC=$?",
    );
    assert!(
        out.contains("failed to establish PPP: server closed the connection"),
        "{out}"
    );
    assert!(!out.contains("reconnecting"), "{out}");
    assert!(out.contains("CLIENT_RC=1"), "{out}");
}
