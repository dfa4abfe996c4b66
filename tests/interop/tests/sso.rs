//! Single sign-on (AnyConnect `single-sign-on-v2`) against our test gateway and its
//! stand-in identity provider (`src/bin/sso_gateway.rs`). Debian's openconnect 9.01
//! proves the gateway's external-browser mode first; then ours logs in with a browser
//! (a curl script, as `--external-browser`), without one (the URL opened by hand, while
//! stray and broken requests hit the callback port), with a forged token (an error), and
//! in the embedded-browser mode with the token cookie's value on stdin. The same gateway
//! as an OpenID Connect resource server takes `--token-mode=oidc`'s bearer token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use ferroconnect_interop::{output_text, Lab, Pki};

const SECS: fn(u64) -> Duration = Duration::from_secs;

struct Sso {
    lab: Lab,
    ca: String,
    url: String,
    /// A browser: follows every redirect, answers the provider's Basic challenge.
    browser: PathBuf,
}

fn setup(name: &str, mode: &str) -> Sso {
    setup_with(name, &["--mode", mode])
}

fn setup_with(name: &str, options: &[&str]) -> Sso {
    let mut lab = Lab::new(name);
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let listen = format!("{}:443", lab.server_ip);
    lab.start_login_gateway(&pki, "sso_gateway", &listen, options);
    let ca = pki.ca_pem.display().to_string();
    let browser = lab.script(
        "browser.sh",
        &format!(
            "echo \"browser: $1\" >&2\nexec curl -sS --cacert {ca} -L --location-trusted \
             -u alice:wonderland -c \"$0.cookies\" -o /dev/null \"$1\""
        ),
    );
    let url = format!("https://{}/", lab.server_ip);
    Sso {
        lab,
        ca,
        url,
        browser,
    }
}

impl Sso {
    fn authenticate(&self, client: &str, extra: &[&str]) -> (Option<i32>, String) {
        let mut argv = vec![
            client,
            "--authenticate",
            "--non-inter",
            "--cafile",
            &self.ca,
        ];
        argv.extend_from_slice(extra);
        argv.push(&self.url);
        let out = self.lab.run_in(&self.lab.client_ns, &argv, "", SECS(30));
        (out.status.code(), output_text(&out))
    }

    /// Starts our client with no browser; returns the login URL it prints.
    fn spawn_headless(&mut self, log: &str) -> String {
        let ours = self.lab.client_bin.display().to_string();
        let argv = [
            ours.as_str(),
            "--authenticate",
            "--non-inter",
            "--cafile",
            &self.ca,
            "--external-browser",
            "/nonexistent/browser",
            &self.url,
        ];
        let ns = self.lab.client_ns.clone();
        self.lab.spawn_in(&ns, &argv, log);
        self.lab
            .wait_for_log(log, "waits for it on http://localhost:29786/", SECS(15));
        login_url(&self.lab.log(log))
    }

    /// The client started in the background got the gateway's first session.
    fn assert_first_login(&mut self) {
        let code = self.lab.wait_client(SECS(15));
        let log = self.lab.log("client.log");
        assert_eq!(code, Some(0), "{log}\n{}", self.lab.log("gateway.log"));
        assert!(log.contains("COOKIE='webvpn=SSO-SESSION-1'"), "{log}");
    }

    fn in_client(&self, cmd: &str) -> String {
        output_text(&self.lab.in_client(cmd))
    }
}

fn login_url(log: &str) -> String {
    log.split_whitespace()
        .find(|w| w.starts_with("https://") && w.contains("/saml/sp/login?ctx="))
        .unwrap_or_else(|| panic!("no login URL in {log}"))
        .to_string()
}

#[test]
fn external_browser_logins() {
    let sso = setup("sso-ext", "external");
    let browser = format!("--external-browser={}", sso.browser.display());
    let (code, text) = sso.authenticate("/usr/sbin/openconnect", &[&browser]);
    assert_eq!(
        code,
        Some(0),
        "openconnect 9.01: {text}\n{}",
        sso.lab.log("gateway.log")
    );
    assert!(text.contains("webvpn=SSO-SESSION-1'"), "{text}");
    let ours = sso.lab.client_bin.display().to_string();
    let (code, text) = sso.authenticate(&ours, &[&browser]);
    assert_eq!(code, Some(0), "{text}\n{}", sso.lab.log("gateway.log"));
    assert!(text.contains("COOKIE='webvpn=SSO-SESSION-2'"), "{text}");
    assert!(text.contains("browser: https://"), "{text}");
    // --no-external-auth offers no single sign-on: this gateway has nothing else.
    let (code, text) = sso.authenticate(&ours, &["--no-external-auth"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(sso
        .lab
        .log("gateway.log")
        .contains("the init does not offer single-sign-on-v2"));
}

#[test]
fn headless_login_survives_stray_requests() {
    let mut sso = setup("sso-headless", "external");
    let url = sso.spawn_headless("client.log");
    assert!(sso.lab.log("client.log").contains("open the URL yourself"));
    let status = |path: &str| {
        sso.in_client(&format!(
            "curl -s -o /dev/null -w '%{{http_code}}' 'http://localhost:29786{path}'"
        ))
    };
    assert_eq!(status("/favicon.ico"), "404");
    assert_eq!(status("/api/sso/!!!not-base64"), "404");
    assert_eq!(status(&format!("/{}", "x".repeat(5000))), "404");
    // An empty connection, then one that says nothing and goes.
    let empty = "timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/29786' && echo open";
    assert_eq!(sso.in_client(empty).trim(), "open");
    let blank =
        "timeout 3 bash -c \"printf '\\r\\n\\r\\n' >/dev/tcp/127.0.0.1/29786\" && echo sent";
    assert_eq!(sso.in_client(blank).trim(), "sent");
    sso.in_client(&format!("{} '{url}'", sso.browser.display()));
    sso.assert_first_login();
}

#[test]
fn a_forged_token_ends_the_login() {
    let mut sso = setup("sso-forged", "external");
    sso.spawn_headless("client.log");
    let stranger = oc_tls::sso::StrapKeys::generate().unwrap();
    let dh = stranger.public_keys().unwrap().dh;
    let dh = base64::engine::general_purpose::STANDARD
        .decode(dh)
        .unwrap();
    let forged = oc_tls::sso::seal_token(&dh, b"ForgedToken1").unwrap();
    let callback = forged.callback_url("https://gateway.example/done");
    let status = sso.in_client(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' '{callback}'"
    ));
    assert_eq!(status, "404");
    assert_eq!(
        sso.lab.wait_client(SECS(15)),
        Some(1),
        "{}",
        sso.lab.log("client.log")
    );
    let log = sso.lab.log("client.log");
    assert!(
        log.contains("cannot open the single-sign-on token from the browser"),
        "{log}"
    );
    assert!(!log.contains("COOKIE="), "{log}");
}

/// A callback that carries no token ends the login too, as openconnect's does.
#[test]
fn a_missing_token_ends_the_login() {
    let mut sso = setup("sso-missing", "external");
    sso.spawn_headless("client.log");
    let status = sso.in_client(
        "curl -s -o /dev/null -w '%{http_code}' 'http://localhost:29786/api/sso/?return=x'",
    );
    assert_eq!(status, "404");
    assert_eq!(
        sso.lab.wait_client(SECS(15)),
        Some(1),
        "{}",
        sso.lab.log("client.log")
    );
    let log = sso.lab.log("client.log");
    assert!(log.contains("Failed to decode SSO token"), "{log}");
}

#[test]
fn embedded_browser_token_on_stdin() {
    let mut sso = setup("sso-embedded", "embedded");
    let token_file = sso.lab.dir.join("token");
    let ours = sso.lab.client_bin.display().to_string();
    // The token arrives on stdin once the test has logged in "by hand".
    let command = format!(
        "(while [ ! -s {t} ]; do sleep 0.1; done; cat {t}) | exec {ours} --authenticate \
         --cafile {ca} {url}",
        t = token_file.display(),
        ca = sso.ca,
        url = sso.url
    );
    let ns = sso.lab.client_ns.clone();
    sso.lab.spawn_in(&ns, &["sh", "-c", &command], "client.log");
    sso.lab
        .wait_for_log("client.log", "SSO token (acSamlv2Token):", SECS(15));
    let url = login_url(&sso.lab.log("client.log"));
    sso.in_client(&format!("{} '{url}'", sso.browser.display()));
    let jar = std::fs::read_to_string(format!("{}.cookies", sso.browser.display())).unwrap();
    let token = jar
        .lines()
        .find_map(|l| {
            l.split('\t')
                .nth(6)
                .filter(|_| l.contains("\tacSamlv2Token\t"))
        })
        .unwrap_or_else(|| panic!("no token cookie in {jar}"));
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    sso.assert_first_login();
}

#[test]
fn oidc_bearer_tokens() {
    const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
    let sso = setup_with("sso-oidc", &["--bearer", TOKEN]);
    let inline = format!("--token-secret={TOKEN}");
    // openconnect needs Bearer named: Basic, disabled by default, comes first in its list.
    let openconnect = ["--token-mode=oidc", &inline, "--http-auth=Bearer"];
    let (code, text) = sso.authenticate("/usr/sbin/openconnect", &openconnect);
    assert_eq!(
        code,
        Some(0),
        "openconnect 9.01: {text}\n{}",
        sso.lab.log("gateway.log")
    );
    assert!(text.contains("webvpn=OIDC-SESSION-1'"), "{text}");
    let file = sso.lab.dir.join("oidc-token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let from_file = format!("--token-secret=@{}", file.display());
    let ours = sso.lab.client_bin.display().to_string();
    let (code, text) = sso.authenticate(&ours, &["--token-mode=oidc", &from_file]);
    assert_eq!(code, Some(0), "{text}\n{}", sso.lab.log("gateway.log"));
    assert!(text.contains("COOKIE='webvpn=OIDC-SESSION-2'"), "{text}");
    let (code, text) =
        sso.authenticate(&ours, &["--token-mode=oidc", "--token-secret=expired.jwt"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("server rejected the bearer token"), "{text}");
    let (code, text) = sso.authenticate(&ours, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("--token-mode=oidc --token-secret=TOKEN"),
        "{text}"
    );
    let gssapi_only = ["--token-mode=oidc", &inline, "--http-auth=gssapi"];
    let (code, text) = sso.authenticate(&ours, &gssapi_only);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("add bearer to it"), "{text}");
    assert!(sso.lab.log("gateway.log").contains("bearer token refused"));
}
