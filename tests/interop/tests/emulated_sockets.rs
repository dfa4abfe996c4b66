//! Our `ocserv` under socket_wrapper, as upstream ocserv's test suite runs servers: every
//! AF_INET/AF_INET6 socket is a Unix socket in disguise. The server must still configure
//! its tun device (over netlink: the ioctls need a real AF_INET socket), listen on
//! 0.0.0.0 next to [::] when no `listen-host` is set (an emulated [::] takes no IPv4
//! clients), open its DTLS socket without the options batching needs, and read requests
//! that socket_wrapper delivers in 1500-byte pieces to their end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{bin, pin_sha256, Lab, Pki, ServerKind};

#[test]
fn server_under_socket_wrapper_configures_its_tun_and_serves_ipv4_logins() {
    let mut lab = Lab::new("swrap");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let auth = lab.make_passwd(&bin("ocpasswd"), &[("alice", "secret")], None);
    let wrapper_dir = lab.dir.join("swrap");
    std::fs::create_dir_all(&wrapper_dir).unwrap();
    let wrapper_env = [
        ("LD_PRELOAD", "libsocket_wrapper.so".to_string()),
        ("SOCKET_WRAPPER_DIR", wrapper_dir.display().to_string()),
        ("SOCKET_WRAPPER_DEFAULT_IFACE", "2".to_string()),
    ];
    lab.server_env = wrapper_env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let config: String = lab
        .server_config(&pki, &auth, "udp-port = 443\n")
        .lines()
        .filter(|l| !l.starts_with("listen-host"))
        .map(|l| format!("{l}\n"))
        .collect();
    lab.start_server_with_config(ServerKind::Ours, &config);
    let log = lab.log("ocserv.log");
    assert!(log.contains("one datagram per call"), "{log}");

    // The tun device is up, its MTU set; the pool's first address waits for a tunnel (as
    // on ocserv, whose devices come with their clients).
    let device = format!("{}v0", lab.name);
    let shown = lab.in_server(&format!(
        "ip -o addr show dev {device}; ip -o link show dev {device}"
    ));
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    let first = lab.pool.rsplit_once('.').unwrap().0.to_string() + ".1/24";
    assert!(!shown.contains(&first), "{shown}");
    assert!(shown.contains(",UP") && shown.contains("mtu "), "{shown}");

    // Debian's openconnect, wrapped too, reaches the server at socket_wrapper's 127.0.0.2.
    let pin = pin_sha256(&pki.server_cert);
    let mut argv: Vec<String> = vec!["env".into()];
    argv.extend(wrapper_env.iter().map(|(k, v)| format!("{k}={v}")));
    argv.extend(
        [
            "openconnect",
            "--cookieonly",
            "--passwd-on-stdin",
            "--non-inter",
            "-u",
            "alice",
            "--servercert",
            &pin,
            "127.0.0.2:443",
        ]
        .map(str::to_string),
    );
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let server_ns = lab.server_ns.clone();
    let out = lab.run_in(&server_ns, &argv, "secret\n", Duration::from_secs(30));
    let cookie = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && !cookie.is_empty(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.log("ocserv.log")
    );

    // socket_wrapper hands a request over in 1500-byte pieces: a login post of many TLS
    // records (upstream's test-http-limits sends 256 KiB) must be read to its end, not
    // left waiting for a readiness edge that never comes.
    let env: Vec<String> = wrapper_env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let post = lab.in_ns(
        &server_ns,
        &format!(
            "head -c 262144 /dev/zero | env {} curl --silent --insecure --max-time 10 \
             --write-out '%{{http_code}}' --output /dev/null -X POST \
             --data-binary @- https://127.0.0.2:443/auth",
            env.join(" ")
        ),
    );
    assert_eq!(
        String::from_utf8_lossy(&post.stdout),
        "200",
        "{}",
        lab.log("ocserv.log")
    );
}
