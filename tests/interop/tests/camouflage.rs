//! Our `ocserv` with `camouflage = true` and Cisco's SVC (IP phone) login, as upstream's
//! `test-camouflage`, `test-camouflage-norealm` and `test-pass-svc` drive them: a stranger
//! sees a password-protected web site, Debian's openconnect with the secret in its URL
//! logs in and connects, and an IP phone's one-post login yields a working cookie. Every
//! page carries the `included-http-headers` (upstream's `test-owasp-headers`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{authenticate_values, Lab, Pki};

const SECS: fn(u64) -> Duration = Duration::from_secs;
const PHONE: &str = "Cisco SVC IPPhone Client v1.0";

/// curl from the client namespace: the response head and body, with `args` before the URL.
fn curl(lab: &Lab, ca: &str, args: &str, path: &str) -> String {
    let out = lab.in_client(&format!(
        "curl --silent --include --max-time 10 --cacert {ca} {args} 'https://{}{path}'",
        lab.server_ip
    ));
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    if text.is_empty() {
        return format!("(curl: {})", String::from_utf8_lossy(&out.stderr));
    }
    text
}

/// The login form, as a client that knows the secret gets it.
fn with_cookie_page(lab: &Lab, ca: &str) -> String {
    curl(lab, ca, "", "/?mysecretkey")
}

fn status(response: &str) -> &str {
    response.split_whitespace().nth(1).unwrap_or("none")
}

/// The `webvpn` cookie a response sets, if any (an empty one does not count).
fn session_cookie(response: &str) -> Option<String> {
    response.lines().find_map(|l| {
        let value = l.strip_prefix("Set-Cookie: webvpn=")?.split(';').next()?;
        (!value.is_empty()).then(|| value.to_owned())
    })
}

fn authenticate(lab: &Lab, ca: &str, path: &str, password: &str) -> std::process::Output {
    let url = format!("https://{}{path}", lab.server_ip);
    lab.run_in(
        &lab.client_ns,
        &[
            "/usr/sbin/openconnect",
            "--cafile",
            ca,
            "--authenticate",
            "-u",
            "alice",
            "--passwd-on-stdin",
            &url,
        ],
        &format!("{password}\n"),
        SECS(30),
    )
}

#[test]
fn camouflage_hides_the_vpn_from_strangers_and_svc_logins_give_working_cookies() {
    let mut lab = Lab::new("camouflage");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let extra = "camouflage = true\ncamouflage_secret = \"mysecretkey\"\n\
                 camouflage_realm = \"Please enter password\"\n\
                 included-http-headers = X-Frame-Options: deny\n\
                 included-http-headers = Clear-Site-Data: \"cache\",\"cookies\",\"storage\"\n\
                 included-http-headers = Cache-control: no-store, no-cache\n";
    lab.start_our_server(&pki, &[("alice", "secret")], extra);
    let ca = pki.ca_pem.display().to_string();

    // A browser or scanner sees a Basic-auth site, for GET and POST alike.
    let get = curl(&lab, &ca, "", "/");
    assert_eq!(status(&get), "401", "{get}");
    assert!(
        get.contains("WWW-Authenticate: Basic realm=\"Please enter password\""),
        "{get}"
    );
    let post = curl(&lab, &ca, "-X POST -F test=test", "/");
    assert_eq!(status(&post), "401", "{post}");
    assert!(!post.contains("auth-request"), "{post}");

    // openconnect without the secret gets no cookie; with it, it does.
    let refused = authenticate(&lab, &ca, "/", "secret");
    assert_ne!(refused.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&refused.stdout).contains("COOKIE="));
    let granted = authenticate(&lab, &ca, "/?mysecretkey", "secret");
    let stdout = String::from_utf8_lossy(&granted.stdout).into_owned();
    assert_eq!(granted.status.code(), Some(0), "{stdout}");
    let cookie = authenticate_values(&stdout)("COOKIE");

    // Every page carries the administrator's included-http-headers, in their words.
    for page in [&get, &with_cookie_page(&lab, &ca)] {
        for header in [
            "X-Frame-Options: deny",
            "Clear-Site-Data: \"cache\",\"cookies\",\"storage\"",
            "Cache-control: no-store, no-cache",
        ] {
            assert!(
                page.lines().any(|l| l == header),
                "{header} missing:\n{page}"
            );
        }
        assert!(!page.contains("X-Frame-Options: DENY"), "{page}");
    }

    // The first form carries no login context yet (ocserv clears it there).
    assert!(
        with_cookie_page(&lab, &ca).contains("Set-Cookie: webvpncontext=; expires="),
        "{}",
        with_cookie_page(&lab, &ca)
    );

    // A session cookie passes the camouflage too (openconnect 9 prints it with its
    // strap key: `openconnect_strapkey=...; webvpn=...`).
    assert!(cookie.contains("webvpn="), "{cookie}");
    let with_cookie = curl(&lab, &ca, &format!("--cookie '{cookie}'"), "/svc");
    assert_eq!(status(&with_cookie), "200", "{with_cookie}");

    // A CONNECT with a bad cookie, on a connection that never showed the secret, looks
    // like a web server's answer, not the VPN's "cookie not acceptable".
    let bogus = lab.in_client(&format!(
        "printf 'CONNECT /CSCOSSLC/tunnel HTTP/1.1\\r\\nCookie: webvpn=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\\r\\n\\r\\n' \
         | timeout 10 openssl s_client -quiet -connect {}:443 2>/dev/null",
        lab.server_ip
    ));
    let bogus = String::from_utf8_lossy(&bogus.stdout).into_owned();
    assert!(bogus.starts_with("HTTP/1.1 405 "), "{bogus}");

    // An IP phone: told to post its credentials, then logged in by one post.
    let prompt = curl(&lab, &ca, &format!("-A '{PHONE}'"), "/svc?mysecretkey");
    assert_eq!(status(&prompt), "200", "{prompt}");
    assert!(prompt.contains("Set-Cookie: webvpnlogin=1"), "{prompt}");
    assert!(prompt.contains("Set-Cookie: webvpn=; expires="), "{prompt}");
    for wrong in [
        "username=alice&password=wrong",
        "username=alice&password=",
        "username=mallory&password=secret",
    ] {
        let answer = curl(
            &lab,
            &ca,
            &format!("-A '{PHONE}' -X POST --data '{wrong}'"),
            "/svc?mysecretkey",
        );
        assert_eq!(session_cookie(&answer), None, "{wrong}: {answer}");
        assert_eq!(status(&answer), "401", "{wrong}: {answer}");
    }
    let answer = curl(
        &lab,
        &ca,
        &format!("-A '{PHONE}' -X POST --data 'username=alice&password=secret'"),
        "/svc?mysecretkey",
    );
    let phone_cookie = session_cookie(&answer).unwrap_or_else(|| panic!("{answer}"));

    // The phone's cookie opens a tunnel (a fresh connection: no secret needed for CONNECT
    // with a valid cookie). openconnect takes cookies as `name=value` pairs.
    let url = format!("https://{}/", lab.server_ip);
    lab.spawn_client(
        &["--cafile", &ca, "--cookie-on-stdin", &url],
        &format!("webvpn={phone_cookie}\n"),
    );
    lab.assert_tunnel("with the SVC login's cookie through camouflage");
    let log = lab.log("ocserv.log");
    assert!(
        log.contains("camouflage: no secret in the URL; declined"),
        "{log}"
    );
    assert!(log.contains("authenticated (SVC login)"), "{log}");
}
