//! AnyConnect's host scan (CSD) with `--csd-wrapper`, against our test gateway
//! (`src/bin/csd_gateway.rs`) and Debian's own `csd-post.sh` as the wrapper: Debian's
//! openconnect 9.01 proves the gateway first; then ours logs in through the scan, the
//! refreshing wait page and the password form. A recording wrapper run as `nobody`
//! (`--csd-user`) sees openconnect's arguments and environment; without a wrapper the
//! error names the option.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{output_text, sh, Lab, Pki};

const SECS: fn(u64) -> Duration = Duration::from_secs;
const CSD_POST: &str = "/usr/libexec/openconnect/csd-post.sh";

#[test]
fn csd_post_scans_the_host_before_the_login() {
    let mut lab = Lab::new("csd");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let listen = format!("{}:443", lab.server_ip);
    lab.start_login_gateway(&pki, "csd_gateway", &listen, &[]);
    sh(&format!("chmod o+rx {}", lab.dir.display()));
    let ca = pki.ca_pem.display().to_string();
    let u = format!("https://{}/", lab.server_ip);
    let run = |client: &str, extra: &[&str]| {
        let mut argv = vec![
            client,
            "--authenticate",
            "--non-inter",
            "--passwd-on-stdin",
            "--cafile",
            &ca,
        ];
        argv.extend_from_slice(extra);
        argv.push(&u);
        lab.run_in(&lab.client_ns, &argv, "secret\n", SECS(60))
    };
    let wrapper = format!("--csd-wrapper={CSD_POST}");
    let out = run("/usr/sbin/openconnect", &[&wrapper]);
    let text = output_text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "openconnect 9.01: {text}\n{}",
        lab.log("gateway.log")
    );
    assert!(text.contains("webvpn=CSD-SESSION-1'"), "{text}");
    let ours = lab.client_bin.display().to_string();
    let out = run(&ours, &[&wrapper]);
    let text = output_text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        lab.log("gateway.log")
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("COOKIE='webvpn=CSD-SESSION-2'"),
        "{stdout}"
    );
    // The wrapper's own output (csd-post.sh prints the gateway's answer) went to stderr.
    assert!(!stdout.contains("TOKEN_SUCCESS"), "{stdout}");
    assert!(text.contains("TOKEN_SUCCESS"), "{text}");
    assert!(
        text.contains("Refreshing /+CSCOE+/sdesktop/wait.html after 1 second"),
        "{text}"
    );
    let log = lab.log("gateway.log");
    assert!(log.contains("scan 2: report of"), "{log}");
    assert!(log.contains("scan 2: login complete"), "{log}");

    // What a wrapper run as nobody sees.
    let record = lab.dir.join("record.txt");
    sh(&format!("touch {r} && chmod 666 {r}", r = record.display()));
    let recorder = lab.script(
        "recorder.sh",
        &format!(
            "{{ id -u; echo \"HOME=$HOME\"; printf '[%s]\\n' \"$@\"; env | grep '^CSD_' | sort; }} \
             > {r}\nexec {CSD_POST} \"$@\"",
            r = record.display()
        ),
    );
    let recorder = format!("--csd-wrapper={}", recorder.display());
    let out = run(&ours, &[&recorder, "--csd-user=nobody", "--authgroup=eng"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let seen = std::fs::read_to_string(&record).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "65534", "{seen}");
    assert_eq!(lines[1], "HOME=/nonexistent", "{seen}");
    assert_eq!(lines[2], "[]", "{seen}");
    assert_eq!(lines[3], "[-ticket]", "{seen}");
    assert!(
        lines[4].starts_with("[\"") && lines[4].ends_with("\"]"),
        "{seen}"
    );
    assert_eq!(&lines[5..8], ["[-stub]", "[\"0\"]", "[-group]"], "{seen}");
    assert_eq!(lines[8], "[\"eng\"]", "{seen}");
    assert_eq!(lines[9], "[-certhash]", "{seen}");
    let certhash = lines[10].trim_matches(|c| c == '[' || c == ']' || c == '"');
    let (server_md5, client_md5) = certhash.split_once(':').unwrap();
    let expected = sh(&format!(
        "openssl x509 -in {} -noout -fingerprint -md5 | cut -d= -f2 | tr -d :",
        pki.server_cert.display()
    ));
    assert_eq!(server_md5, expected.trim(), "{seen}");
    assert_eq!(client_md5, "", "{seen}");
    let url = format!("[\"https://{}/+CSCOE+/sdesktop/\"]", lab.server_ip);
    assert_eq!(
        &lines[11..14],
        ["[-url]", url.as_str(), "[-langselen]"],
        "{seen}"
    );
    assert!(lines[14].starts_with("CSD_HOSTNAME=198.18."), "{seen}");
    assert_eq!(
        lines[15],
        format!(
            "CSD_SHA256={}",
            ferroconnect_interop::pin_sha256(&pki.server_cert).trim_start_matches("pin-sha256:")
        ),
        "{seen}"
    );
    assert!(
        lines[16].starts_with("CSD_TOKEN=") && lines[16].len() > 20,
        "{seen}"
    );

    let out = run(&ours, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        output_text(&out).contains("provide a suitable --csd-wrapper"),
        "{}",
        output_text(&out)
    );
}
