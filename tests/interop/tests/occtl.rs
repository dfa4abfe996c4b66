//! occtl, the metrics endpoint and JSON logs of our server, with Debian's openconnect as the
//! clients, in network namespaces.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{
    authenticate_values, bin, login_args, output_text, wait_until, Lab, Pki, ServerKind,
};
use serde_json::Value;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn start(test: &str, extra: &str) -> (Lab, Pki) {
    let mut lab = Lab::new(test);
    lab.use_real_client();
    lab.server_args = vec!["--log-format".into(), "json".into()];
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let auth = lab.make_passwd(
        &bin("ocpasswd"),
        &[("alice", "secret"), ("bob", "hunter2")],
        None,
    );
    lab.start_server(ServerKind::Ours, &pki, &auth, extra);
    (lab, pki)
}

/// `occtl -j ARGS`, parsed; fails the test on invalid JSON.
fn occtl_json(lab: &Lab, args: &str) -> Value {
    let out = lab.our_occtl(&format!("-j {args}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "occtl -j {args}: invalid JSON ({e}):\n{}",
            output_text(&out)
        )
    })
}

fn users(lab: &Lab) -> Vec<Value> {
    occtl_json(lab, "show users")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn user<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|u| u["Username"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list:?}"))
}

fn raw_rx(u: &Value) -> u64 {
    u["_RX"]
        .as_u64()
        .or_else(|| u["raw_rx"].as_u64())
        .unwrap_or_else(|| {
            // ocserv prints RX as a string of bytes.
            u["RX"].as_str().and_then(|s| s.parse().ok()).expect("RX")
        })
}

/// The metrics endpoint, parsed by the Prometheus project's own OpenMetrics parser:
/// `{"name{labels}": value}`.
fn metrics(lab: &Lab) -> serde_json::Map<String, Value> {
    let script = r#"
import json, urllib.request
from prometheus_client.openmetrics.parser import text_string_to_metric_families
body = urllib.request.urlopen("http://127.0.0.1:9616/metrics", timeout=5).read().decode()
out = {}
for family in text_string_to_metric_families(body):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;
    let path = lab.dir.join("scrape.py");
    std::fs::write(&path, script).unwrap();
    let out = lab.in_server(&format!("/usr/bin/python3 {}", path.display()));
    assert!(
        out.status.success(),
        "metrics scrape failed:\n{}",
        output_text(&out)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_object()
        .cloned()
        .unwrap()
}

#[test]
fn users_bytes_disconnect_events_metrics_and_json_logs() {
    let (mut lab, pki) = start("occtl-users", "metrics-listen = 127.0.0.1:9616\n");
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    // A live event stream from before anyone connects.
    let events_file = lab.dir.join("events.json");
    let mut events = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.server_ns])
        .arg(bin("occtl"))
        .args(["-j", "-s"])
        .arg(lab.dir.join("occtl.sock"))
        .args(["show", "events"])
        .stdout(std::fs::File::create(&events_file).unwrap())
        .spawn()
        .unwrap();

    lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    let second = lab.add_client_ns();
    let bob_pid = lab.spawn_client_in(
        &second,
        &login_args(&ca, &[&url])
            .iter()
            .map(|a| if *a == "alice" { "bob" } else { a })
            .collect::<Vec<_>>(),
        "hunter2\n",
        "bob.log",
    );
    let bob_up = wait_until(SECS(20), || {
        let out = lab.in_ns(&second, &format!("ping -c 1 -W 1 {}", lab.behind_ip));
        out.status.success().then_some(())
    });
    assert!(bob_up.is_some(), "bob:\n{}", lab.log("bob.log"));

    // Both listed, with different addresses from the pool.
    let list = users(&lab);
    assert_eq!(list.len(), 2, "{list:?}");
    let (a, b) = (user(&list, "alice"), user(&list, "bob"));
    let pool = &lab.pool[..lab.pool.len() - 1];
    for u in [a, b] {
        assert!(u["IPv4"].as_str().unwrap().starts_with(pool), "{u}");
        assert_eq!(u["Device"], format!("{}v0", lab.name).as_str());
        assert!(u["User-Agent"]
            .as_str()
            .unwrap()
            .contains("Open AnyConnect"));
    }
    assert_ne!(a["IPv4"], b["IPv4"]);
    // Each address is the one on that client's tun device.
    for (ns, u) in [(lab.client_ns.clone(), a), (second.clone(), b)] {
        let addrs = output_text(&lab.in_ns(&ns, "ip -o -4 addr show"));
        let ip = u["IPv4"].as_str().unwrap();
        assert!(
            addrs.contains(&format!("inet {ip}/")),
            "{ip} not in {ns}:\n{addrs}"
        );
    }
    // Text output names both too.
    let table = output_text(&lab.our_occtl("show users"));
    assert!(table.contains("alice") && table.contains("bob"), "{table}");
    let shown = occtl_json(&lab, &format!("show id {}", a["ID"]));
    assert_eq!(shown[0]["Username"], "alice");
    // Routes in ocserv's form, which scripts grep for: IPv4 as address/netmask.
    let behind_net = format!(
        "{}0/255.255.255.0",
        &lab.behind_ip[..lab.behind_ip.len() - 1]
    );
    assert!(
        shown[0]["Routes"].to_string().contains(&behind_net),
        "{}",
        shown[0]
    );
    assert!(occtl_json(&lab, "show iroutes")
        .as_array()
        .unwrap()
        .is_empty());
    // Without a command occtl reads commands (here from a pipe instead of a terminal).
    let prompt = lab.in_server(&format!(
        "printf 'show users\\nshow id {}\\nexit\\n' | {} -n -s {}/occtl.sock",
        b["ID"],
        bin("occtl").display(),
        lab.dir.display()
    ));
    let prompt_out = output_text(&prompt);
    assert!(prompt.status.success(), "{prompt_out}");
    assert!(prompt_out.matches("bob").count() >= 2, "{prompt_out}");

    // Byte counts grow with traffic.
    let before = raw_rx(a);
    let out = lab.in_client(&format!("ping -c 5 -i 0.1 -s 500 {}", lab.behind_ip));
    assert!(out.status.success());
    let after = raw_rx(user(&users(&lab), "alice"));
    assert!(after >= before + 5 * 528, "RX {before} -> {after}");

    // Metrics agree with occtl.
    let m = metrics(&lab);
    assert_eq!(m["ocserv_sessions_active{}"], 2.0, "{m:?}");
    let status = occtl_json(&lab, "show status");
    assert_eq!(status["Active sessions"], 2, "{status}");
    let metric_rx: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("ocserv_bytes_total{direction=\"rx\""))
        .map(|(_, v)| v.as_f64().unwrap())
        .sum();
    assert_eq!(
        metric_rx as u64,
        status["raw_rx"].as_u64().unwrap(),
        "{m:?}\n{status}"
    );
    assert_eq!(
        m["ocserv_user_bytes_total{direction=\"rx\",user=\"alice\"}"]
            .as_f64()
            .unwrap() as u64,
        raw_rx(user(&users(&lab), "alice"))
    );

    // Disconnect bob: his client is told and exits; alice keeps working.
    let out = lab.our_occtl("disconnect user bob");
    assert!(out.status.success(), "{}", output_text(&out));
    let gone = wait_until(SECS(10), || {
        let alive = std::path::Path::new(&format!("/proc/{bob_pid}")).exists();
        (!alive
            || std::fs::read_to_string(format!("/proc/{bob_pid}/stat"))
                .is_ok_and(|s| s.contains(") Z")))
        .then_some(())
    });
    assert!(
        gone.is_some(),
        "bob's client still runs:\n{}",
        lab.log("bob.log")
    );
    let list = users(&lab);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["Username"], "alice");
    assert!(lab.ping_behind(SECS(5)));
    let missing = lab.our_occtl("show user bob");
    assert_eq!(missing.status.code(), Some(2), "{}", output_text(&missing));

    // The event stream saw both connects and bob's disconnect, each line valid JSON.
    let _ = events.kill();
    let _ = events.wait();
    let stream = std::fs::read_to_string(&events_file).unwrap();
    let docs: Vec<Value> = serde_json::Deserializer::from_str(&stream)
        .into_iter::<Value>()
        .map(|d| d.unwrap_or_else(|e| panic!("bad JSON in events ({e}):\n{stream}")))
        .collect();
    let flat = serde_json::to_string(&docs).unwrap();
    for needle in ["\"alice\"", "\"bob\"", "disconnect"] {
        assert!(
            flat.to_lowercase().contains(needle),
            "{needle} not in events:\n{stream}"
        );
    }

    // JSON logs: every line parses; the session's lines carry user and session id.
    let log = lab.log("ocserv.log");
    let mut with_user = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        if line.contains("\"user\":\"alice\"") {
            with_user += 1;
            assert!(v.to_string().contains("\"session\""), "{line}");
        }
    }
    assert!(with_user > 0, "no log line carries user alice:\n{log}");
    assert!(!log.contains("secret"), "a password reached the log");
}

#[test]
fn terminate_session_makes_the_cookie_fail() {
    let (lab, pki) = start("occtl-terminate", "");
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let out = lab.run_client(
        &login_args(&ca, &["--authenticate", &url]),
        "secret\n",
        SECS(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cookie = authenticate_values(&stdout)("COOKIE");
    let sessions = occtl_json(&lab, "show sessions valid");
    let list = sessions.as_array().unwrap();
    assert_eq!(list.len(), 1, "{sessions}");
    let sid = list[0]["Session"].as_str().unwrap().to_string();
    assert!(!sid.is_empty() && !cookie.contains(&sid));
    let out = lab.our_occtl(&format!("terminate session {sid}"));
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        occtl_json(&lab, "show sessions valid")
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // The cookie no longer opens a tunnel: openconnect exits 2 (cookie rejected).
    let out = lab.run_client(
        &["--cookie-on-stdin", "--cafile", &ca, "--non-inter", &url],
        &format!("{cookie}\n"),
        SECS(30),
    );
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
}

#[test]
fn bans_are_listed_and_lifted() {
    let (lab, pki) = start(
        "occtl-bans",
        "max-ban-score = 20\nban-points-wrong-password = 10\nban-reset-time = 300\n",
    );
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    for _ in 0..2 {
        let out = lab.run_client(
            &login_args(&ca, &["--authenticate", &url]),
            "wrong\nwrong\nwrong\n",
            SECS(30),
        );
        assert_ne!(out.status.code(), Some(0));
    }
    let bans = occtl_json(&lab, "show ip bans");
    let listed = bans.as_array().unwrap();
    assert!(
        listed.iter().any(|b| b["IP"] == lab.client_ip.as_str()),
        "{bans}"
    );
    let points = occtl_json(&lab, "show ip ban points");
    assert!(
        points
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["IP"] == lab.client_ip.as_str()),
        "{points}"
    );
    // Banned: even the right password is not heard.
    let out = lab.run_client(
        &login_args(&ca, &["--authenticate", &url]),
        "secret\n",
        SECS(30),
    );
    assert_ne!(out.status.code(), Some(0));
    let out = lab.our_occtl(&format!("unban ip {}", lab.client_ip));
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(occtl_json(&lab, "show ip bans")
        .as_array()
        .unwrap()
        .is_empty());
    let out = lab.run_client(
        &login_args(&ca, &["--authenticate", &url]),
        "secret\n",
        SECS(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let m = lab.our_occtl("-j show status");
    let status: Value = serde_json::from_slice(&m.stdout).unwrap();
    assert!(
        status["Total authentication failures"].as_u64().unwrap() >= 2,
        "{status}"
    );
}

/// The JSON log records of `ocserv.log` whose message contains `needle`: their fields.
fn log_records(lab: &Lab, needle: &str) -> Vec<Value> {
    lab.log("ocserv.log")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(needle))
        })
        .map(|v| v["fields"].clone())
        .collect()
}

#[test]
fn session_accounting_survives_a_reconnect() {
    let (mut lab, pki) = start("occtl-accounting", "stats-report-time = 1\n");
    lab.client_bin = bin("openconnect");
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    // Our client with JSON logs: every line it writes is one JSON object.
    let pid = lab.spawn_client(
        &login_args(&ca, &["--log-format", "json", &url]),
        "secret\n",
    );
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    let ping = || {
        let out = lab.in_client(&format!("ping -c 3 -i 0.1 -s 1000 {}", lab.behind_ip));
        assert!(out.status.success(), "{}", output_text(&out));
    };
    ping();
    lab.signal_client(pid, "USR2");
    lab.wait_for_log("ocserv.log", "(session reused)", SECS(20));
    assert!(lab.ping_behind(SECS(20)));
    ping();
    // An interim record of the second connection counts both connections' bytes.
    let both = wait_until(SECS(10), || {
        log_records(&lab, "interim accounting")
            .into_iter()
            .find(|r| {
                let rx = r["rx_bytes"].as_u64().unwrap_or(0);
                let session = r["session_rx_bytes"].as_u64().unwrap_or(0);
                session >= 6 * 1028 && rx < session && rx >= 3 * 1028
            })
    });
    assert!(
        both.is_some(),
        "no interim record covering both connections:\n{}",
        lab.log("ocserv.log")
    );
    lab.signal_client(pid, "INT");
    assert_eq!(lab.wait_client(SECS(15)), Some(0));
    let closed = wait_until(SECS(5), || {
        log_records(&lab, "session ended").into_iter().next()
    })
    .unwrap_or_else(|| panic!("no session end record:\n{}", lab.log("ocserv.log")));
    assert!(
        closed["session_rx_bytes"].as_u64().unwrap() >= 6 * 1028,
        "{closed}"
    );
    assert!(
        closed["session_tx_bytes"].as_u64().unwrap() >= 6 * 1028,
        "{closed}"
    );
}

/// `occtl show user` names the DTLS session as ocserv (GnuTLS) does, which scripts and
/// upstream's cipher tests grep for: `(DTLS1.2)-(PSK)-(AES-256-GCM)`; a tunnel whose DTLS
/// was offered but never came up (its UDP is blocked) has no `DTLS cipher` line, and
/// `show users` says `(no-dtls)`.
#[test]
fn dtls_cipher_is_shown_as_ocserv_names_it() {
    let (mut lab, pki) = start(
        "occtl-dtls-name",
        "udp-port = 443\nmatch-tls-dtls-ciphers = true\ndtls-legacy = false\n",
    );
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    lab.assert_pings_over_udp(3);
    let second = lab.add_client_ns();
    lab.in_ns(
        &second,
        "nft add table inet fcb && \
         nft 'add chain inet fcb out { type filter hook output priority 0; }' && \
         nft add rule inet fcb out udp dport 443 drop",
    );
    let bob_args: Vec<&str> = login_args(&ca, &[&url])
        .iter()
        .map(|a| if *a == "alice" { "bob" } else { a })
        .collect();
    lab.spawn_client_in(&second, &bob_args, "hunter2\n", "bob.log");
    let bob_up = wait_until(SECS(20), || {
        let out = lab.in_ns(&second, &format!("ping -c 1 -W 1 {}", lab.behind_ip));
        out.status.success().then_some(())
    });
    assert!(bob_up.is_some(), "bob:\n{}", lab.log("bob.log"));

    let alice = output_text(&lab.our_occtl("show user alice"));
    let tls = alice
        .lines()
        .find_map(|l| l.trim().strip_prefix("TLS ciphersuite: "))
        .unwrap_or_default()
        .to_string();
    let want = if tls.contains("AES_128") || tls.contains("AES128") {
        "AES-128-GCM"
    } else {
        "AES-256-GCM"
    };
    assert!(
        alice.contains(&format!("DTLS cipher: (DTLS1.2)-(PSK)-({want})")),
        "{alice}"
    );
    let bob = output_text(&lab.our_occtl("show user bob"));
    assert!(bob.contains("Username: bob"), "{bob}");
    assert!(!bob.contains("DTLS cipher"), "{bob}");
    let table = output_text(&lab.our_occtl("show users"));
    let bob_row = table
        .lines()
        .find(|l| l.contains("bob"))
        .unwrap_or_default();
    assert!(bob_row.contains("(no-dtls)"), "{table}");
    let alice_row = table
        .lines()
        .find(|l| l.contains("alice"))
        .unwrap_or_default();
    assert!(alice_row.contains(&format!("({want})")), "{table}");
}
