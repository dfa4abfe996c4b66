//! Browser logins on our server (`auth = oidc` with `sso` in its settings, our step beyond
//! ocserv) against a test provider (`src/bin/oidc_idp.rs`: authorization code flow with
//! PKCE): Debian's openconnect and ours log in with an external browser (a curl script,
//! as `--external-browser`), ours on to a tunnel; a Cisco-style embedded-browser login is
//! driven by hand (the form, the browser to the final page, the token cookie posted back);
//! a used token, a login the user refused at the provider and a forged return are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use ferroconnect_interop::oidc_provider::ISSUER;
use ferroconnect_interop::{bin, output_text, pin_sha256, sh, Lab, Pki, ServerKind};
use serde_json::json;

const SECS: fn(u64) -> Duration = Duration::from_secs;

struct Sso {
    lab: Lab,
    pki: Pki,
    url: String,
    pin: String,
}

fn sso_lab(name: &str) -> Sso {
    let mut lab = Lab::new(name);
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let idp = format!("{}:8443", lab.server_ip);
    let dir = lab.dir.join("idp").display().to_string();
    let (idp_bin, cert, key) = (
        bin("oidc_idp").display().to_string(),
        pki.server_cert.display().to_string(),
        pki.server_key.display().to_string(),
    );
    let argv = [
        idp_bin.as_str(),
        "--listen",
        &idp,
        "--cert",
        &cert,
        "--key",
        &key,
        "--dir",
        &dir,
        "--client",
        "ferroconnect:s3cret",
    ];
    let ns = lab.server_ns.clone();
    lab.spawn_in(&ns, &argv, "idp.log");
    lab.wait_for_log("idp.log", "listening on", SECS(10));
    let settings = lab.dir.join("oidc.json");
    let json = json!({
        "openid_configuration_url": format!("https://{idp}/discovery.json"),
        "user_name_claim": "preferred_username",
        "required_claims": {"iss": ISSUER},
        "ca_file": pki.ca_pem.display().to_string(),
        "sso": {"client_id": "ferroconnect", "client_secret": "s3cret"},
    });
    std::fs::write(&settings, json.to_string()).unwrap();
    let auth = format!("oidc[config={}]", settings.display());
    // As deployed: the network process runs as nobody, the settings file (with the client
    // secret) is root's alone.
    sh(&format!("chmod 600 {}", settings.display()));
    let extra = "max-ban-score = 0\nrun-as-user = nobody\nrun-as-group = nogroup\n";
    lab.start_server(ServerKind::Ours, &pki, &auth, extra);
    let url = format!("https://{}/", lab.server_ip);
    let pin = pin_sha256(&pki.server_cert);
    Sso { lab, pki, url, pin }
}

/// A browser: follows every redirect, logs in at the provider as `user`.
fn browser_script(sso: &Sso, user: &str) -> PathBuf {
    let ca = sso.pki.ca_pem.display();
    sso.lab.script(
        &format!("browser-{user}.sh"),
        &format!(
            "echo \"browser: $1\" >&2\nexec curl -sS --cacert {ca} -L --location-trusted \
             -u {user} -c \"$0.cookies\" -o /dev/null \"$1\""
        ),
    )
}

#[test]
fn the_real_openconnect_and_ours_log_in_through_an_external_browser() {
    let mut sso = sso_lab("oidc-sso-external");
    let browser = browser_script(&sso, "alice:wonderland")
        .display()
        .to_string();
    let servercert = format!("--servercert={}", sso.pin);
    let external = format!("--external-browser={browser}");

    // Debian's openconnect 9.01 first.
    sso.lab.use_real_client();
    let out = sso.lab.run_client(
        &["--authenticate", &servercert, &external, &sso.url],
        "",
        SECS(60),
    );
    let text = output_text(&out);
    assert!(
        out.status.success() && text.contains("COOKIE="),
        "{text}\n{}\n{}",
        sso.lab.log("ocserv.log"),
        sso.lab.log("idp.log")
    );
    sso.lab
        .wait_for_log("ocserv.log", "browser login of 'alice'", SECS(5));
    let idp = sso.lab.log("idp.log");
    assert!(idp.contains("token: ID token for alice"), "{idp}");

    // Ours, on to a tunnel.
    sso.lab.client_bin = bin("openconnect");
    sso.lab
        .spawn_client(&[&servercert, &external, &sso.url], "");
    sso.lab.assert_tunnel("a browser login");
    let show = output_text(&sso.lab.our_occtl("show users"));
    assert!(show.contains("alice"), "{show}");
}

/// POSTs `body` to the server from the client namespace: status line and headers, then the
/// body.
fn post(sso: &Sso, body: &str) -> String {
    let file = sso.lab.dir.join("post.xml");
    std::fs::write(&file, body).unwrap();
    let out = sso.lab.in_client(&format!(
        "curl -sS -i --cacert {} -H 'Content-Type: text/xml' --data-binary @{} {}",
        sso.pki.ca_pem.display(),
        file.display(),
        sso.url
    ));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const INIT_SSO: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
    type=\"init\" aggregate-auth-version=\"2\"><version who=\"vpn\">5.1</version>\
    <capabilities><auth-method>single-sign-on-v2</auth-method></capabilities>\
    <group-access>URL</group-access></config-auth>";

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).map(|i| i + open.len()).unwrap_or(0);
    let len = text[start..].find(close).unwrap_or(0);
    &text[start..start + len]
}

/// The embedded-browser login as Cisco's clients make it: the form names the login page,
/// the final page and the cookie; the browser ends at the final page holding the cookie;
/// its value posted as `sso-token` completes the login once.
#[test]
fn an_embedded_browser_login_and_its_refusals() {
    let sso = sso_lab("oidc-sso-embedded");
    // Without single-sign-on-v2 the client is asked for a bearer token, as in ocserv.
    let plain = INIT_SSO.replace("<auth-method>single-sign-on-v2</auth-method>", "");
    let answer = post(&sso, &plain);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("WWW-Authenticate: Bearer"), "{answer}");

    let form = post(&sso, INIT_SSO);
    assert!(form.starts_with("HTTP/1.1 200"), "{form}");
    let login = between(&form, "<sso-v2-login>", "</sso-v2-login>").replace("&amp;", "&");
    let done = format!("https://{}/+CSCOE+/oidc/done", sso.lab.server_ip);
    assert!(
        form.contains(&format!("<sso-v2-login-final>{done}<")),
        "{form}"
    );
    assert!(
        form.contains("<sso-v2-token-cookie-name>ferroconnect-sso-token<"),
        "{form}"
    );
    assert!(!form.contains("sso-v2-browser-mode"), "{form}");
    assert!(login.contains("code_challenge_method=S256"), "{login}");

    // The browser: provider, back to the server, on to the final page with the cookie.
    let browser = browser_script(&sso, "bob:builder");
    let out = sso
        .lab
        .in_client(&format!("{} '{login}'", browser.display()));
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        sso.lab.log("idp.log")
    );
    let jar = std::fs::read_to_string(format!("{}.cookies", browser.display())).unwrap();
    let token = jar
        .lines()
        .find_map(|l| {
            l.split_once("ferroconnect-sso-token\t")
                .map(|(_, v)| v.trim())
        })
        .unwrap_or_else(|| {
            panic!(
                "no token cookie:\n{jar}\n{}\n{}\n{}",
                output_text(&out),
                sso.lab.log("ocserv.log"),
                sso.lab.log("idp.log")
            )
        })
        .to_owned();
    let reply = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
         type=\"auth-reply\" aggregate-auth-version=\"2\"><auth><sso-token>{token}\
         </sso-token></auth></config-auth>"
    );
    let complete = post(&sso, &reply);
    assert!(complete.starts_with("HTTP/1.1 200"), "{complete}");
    assert!(complete.contains("type=\"complete\""), "{complete}");
    assert!(complete.contains("Set-Cookie: webvpn="), "{complete}");
    sso.lab
        .wait_for_log("ocserv.log", "browser login of 'bob'", SECS(5));
    // Once only.
    let again = post(&sso, &reply);
    assert!(again.starts_with("HTTP/1.1 401"), "{again}");

    // The user refuses at the provider: the return says so, no token.
    let form = post(&sso, INIT_SSO);
    let login = between(&form, "<sso-v2-login>", "</sso-v2-login>").replace("&amp;", "&");
    let deny = browser_script(&sso, "deny:x");
    sso.lab.in_client(&format!("{} '{login}'", deny.display()));
    sso.lab.wait_for_log(
        "ocserv.log",
        "browser login failed: the provider refused the login: access_denied",
        SECS(5),
    );
    // A return for no login under way.
    let forged = format!(
        "curl -sS -o /dev/null -w '%{{http_code}}' --cacert {} \
         '{}+CSCOE+/oidc/callback?code=x&state=forged'",
        sso.pki.ca_pem.display(),
        sso.url
    );
    let out = sso.lab.in_client(&forged);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
    sso.lab
        .wait_for_log("ocserv.log", "no such login under way", SECS(5));
}
