//! `auth = oidc[config=FILE]` on our server, with a stand-in provider
//! (`src/oidc_provider.rs`, served over HTTPS by `scripts/oidc_provider.py` or read as
//! files): Debian's openconnect and ours log in with `--token-mode=oidc`; every token of
//! upstream's `test-oidc` that must fail gets 401 (sent by curl as upstream sends them);
//! a key rotation is picked up as ocserv does (the first token with the new key fails and
//! fetches the keys, the next passes); a provider that is down or hostile stops the
//! start with a message naming it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferroconnect_interop::oidc_provider::{unix_now, Provider};
use ferroconnect_interop::{bin, output_text, pin_sha256, Lab, Pki, ServerKind};
use oc_proto::oidc::MAX_TOKEN;
use openssl::pkey::PKey;
use serde_json::json;

const SECS: fn(u64) -> Duration = Duration::from_secs;
const PROVIDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/oidc_provider.py");
const PROVIDER_PORT: &str = "8443";

/// Starts the provider script in the server namespace on 127.0.0.1 with a certificate
/// from the lab CA; `hang`: it never answers.
fn serve_provider(lab: &mut Lab, pki: &Pki, dir: &Path, hang: bool) {
    let key = PKey::ec_gen("prime256v1").unwrap();
    let (cert, key) = pki.server_cert_for(&lab.dir, "idp", &key, "127.0.0.1");
    let (cert, key, dir) = (
        cert.display().to_string(),
        key.display().to_string(),
        dir.display().to_string(),
    );
    let mut argv = vec![
        "python3",
        PROVIDER,
        "127.0.0.1",
        PROVIDER_PORT,
        &cert,
        &key,
        &dir,
    ];
    if hang {
        argv.push("--hang");
    }
    let ns = lab.server_ns.clone();
    lab.spawn_in(&ns, &argv, "idp.log");
    lab.wait_for_log("idp.log", "ready", SECS(10));
}

fn https_provider(lab: &mut Lab, pki: &Pki) -> (Provider, PathBuf) {
    let dir = lab.dir.join("idp");
    let provider = Provider::create(&dir, Some(&format!("https://127.0.0.1:{PROVIDER_PORT}")));
    serve_provider(lab, pki, &dir, false);
    let settings = lab.dir.join("oidc.json");
    provider.write_settings(&settings, 900, Some(&pki.ca_pem));
    (provider, settings)
}

fn auth_line(settings: &Path) -> String {
    format!("oidc[config={}]", settings.display())
}

/// POSTs an auth request with `Authorization:Bearer=TOKEN` from the client namespace, as
/// upstream's test-oidc does with curl: the HTTP status.
fn curl_status(lab: &Lab, ca: &Path, token: &str) -> String {
    let url = format!("https://{}/", lab.server_ip);
    let header = format!("Authorization:Bearer={token}");
    let out = lab.in_client(&format!(
        "curl -sS --cacert {} --request POST --data config-auth.xml --header '{header}' \
         --output /dev/null --write-out '%{{http_code}}' {url}",
        ca.display()
    ));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn bearer_tokens_log_in_the_real_openconnect_and_ours() {
    let mut lab = Lab::new("oidc-clients");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let (provider, settings) = https_provider(&mut lab, &pki);
    // As deployed: a root-only settings file, the network process as nobody.
    std::fs::set_permissions(
        &settings,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let extra = "run-as-user = nobody\nrun-as-group = nogroup\n";
    lab.start_server(ServerKind::Ours, &pki, &auth_line(&settings), extra);
    lab.wait_for_log("ocserv.log", "oidc: fetched 2 signing keys", SECS(5));
    let idp = lab.log("idp.log");
    for document in ["GET /discovery.json", "GET /keys.json"] {
        assert!(idp.contains(document), "{idp}");
    }
    let pin = pin_sha256(&pki.server_cert);
    let url = format!("https://{}/", lab.server_ip);
    let servercert = format!("--servercert={pin}");

    // Debian's openconnect: a cookie for the token's user.
    lab.use_real_client();
    let token = format!("--token-secret={}", provider.token("alice"));
    let out = lab.run_client(
        &[
            "--authenticate",
            &servercert,
            "--token-mode=oidc",
            &token,
            &url,
        ],
        "",
        SECS(30),
    );
    let text = output_text(&out);
    assert!(out.status.success() && text.contains("COOKIE="), "{text}");
    lab.wait_for_log("ocserv.log", "OIDC login of 'alice'", SECS(5));

    // Ours: a whole tunnel, the token (from the RSA key this time) read from a file.
    lab.client_bin = bin("openconnect");
    let rsa_token = provider.mint(1, &json!({}), &Provider::claims("bob"));
    let file = lab.dir.join("bob.token");
    std::fs::write(&file, &rsa_token).unwrap();
    let secret = format!("--token-secret=@{}", file.display());
    lab.spawn_client(&[&servercert, "--token-mode=oidc", &secret, &url], "");
    lab.assert_tunnel("an OIDC login");
    let show = output_text(&lab.our_occtl("show users"));
    assert!(show.contains("bob"), "{show}");

    // An expired token: refused, and our client says what the server's 401 means.
    let mut claims = Provider::claims("carol");
    claims["exp"] = json!(unix_now() - 10);
    let expired = format!("--token-secret={}", provider.mint(0, &json!({}), &claims));
    let out = lab.run_client(
        &[
            "--authenticate",
            &servercert,
            "--token-mode=oidc",
            &expired,
            &url,
        ],
        "",
        SECS(30),
    );
    let text = output_text(&out);
    assert!(
        !out.status.success(),
        "an expired token was accepted:\n{text}"
    );
    assert!(text.contains("bearer token"), "{text}");
    lab.wait_for_log("ocserv.log", "token lifetime: expired", SECS(5));
}

/// Upstream's test-oidc token by token (curl, `Authorization:Bearer=`), plus forgeries
/// and hostile sizes: each bad one gets 401 with the reason in the log, and the server
/// goes on serving good ones.
#[test]
fn every_bad_token_of_upstreams_test_gets_401() {
    let mut lab = Lab::new("oidc-tokens");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let (provider, settings) = https_provider(&mut lab, &pki);
    lab.start_server(
        ServerKind::Ours,
        &pki,
        &auth_line(&settings),
        "max-ban-score = 0\n",
    );
    let ca = pki.ca_pem.clone();
    assert_eq!(curl_status(&lab, &ca, &provider.token("SomeUser")), "200");

    let now = unix_now();
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = Provider::claims("SomeUser");
        edit(&mut claims);
        provider.mint(0, &json!({}), &claims)
    };
    // A good token's claims under a header with these fields changed.
    let headed = |header: serde_json::Value| provider.mint(0, &header, &Provider::claims("u"));
    let good = provider.token("SomeUser");
    let (head, rest) = good.split_once('.').unwrap();
    let forged_payload = base64_claims(&Provider::claims("root"));
    let signature = rest.rsplit_once('.').unwrap().1;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            with(&|c| c["exp"] = json!(now - 3600)),
            "expired",
        ),
        (
            "from the future",
            with(&|c| c["nbf"] = json!(now + 600)),
            "not valid before",
        ),
        (
            "signed by another key under a known kid",
            Provider::create(&lab.dir.join("other-idp"), None).token("SomeUser"),
            "does not verify",
        ),
        ("bad typ", headed(json!({"typ": "FOO"})), "typ"),
        ("bad alg", headed(json!({"alg": "FOO"})), "FOO"),
        ("alg none", headed(json!({"alg": "none"})), "none"),
        ("wrong kid", headed(json!({"kid": "FOO"})), "no key"),
        ("wrong aud", with(&|c| c["aud"] = json!("FOO")), "\"aud\""),
        ("wrong iss", with(&|c| c["iss"] = json!("FOO")), "\"iss\""),
        (
            "forged payload",
            format!("{head}.{forged_payload}.{signature}"),
            "does not verify",
        ),
        ("not a JWT", "not-a-token".to_owned(), "malformed"),
    ];
    let without = |claim: &str| with(&|c| drop(c.as_object_mut().unwrap().remove(claim)));
    let missing = [
        ("aud", "\"aud\""),
        ("iss", "\"iss\""),
        ("preferred_username", "user name"),
        ("iat", "\"iat\""),
        ("nbf", "\"nbf\""),
        ("exp", "\"exp\""),
    ];
    let missing: Vec<(String, String, &str)> = missing
        .iter()
        .map(|(claim, logged)| (format!("missing {claim}"), without(claim), *logged))
        .collect();
    let cases = cases
        .iter()
        .map(|(what, token, logged)| (what.to_string(), token.clone(), *logged))
        .chain(missing);
    for (what, token, logged) in cases {
        assert_eq!(curl_status(&lab, &ca, &token), "401", "{what} was accepted");
        let log = lab.log("ocserv.log");
        let last = log
            .lines()
            .rfind(|l| l.contains("OIDC token refused"))
            .unwrap_or_default();
        assert!(last.contains(logged), "{what}: {last}");
    }
    // The empty token and one over the limit: refused before the security module; the
    // longest one taken reaches it.
    for token in [String::new(), "a".repeat(MAX_TOKEN + 1)] {
        assert_eq!(
            curl_status(&lab, &ca, &token),
            "401",
            "{} bytes",
            token.len()
        );
    }
    let refusals = lab.log("ocserv.log").matches("OIDC token refused").count();
    assert_eq!(curl_status(&lab, &ca, &"a".repeat(MAX_TOKEN)), "401");
    lab.wait_for_log_count("ocserv.log", "OIDC token refused", refusals + 1, SECS(5));
    assert_eq!(curl_status(&lab, &ca, &provider.token("SomeUser")), "200");
}

fn base64_claims(claims: &serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string())
}

/// As upstream's test: the keys are read from files, refreshed at most every 0 s; after
/// a rotation the first token with the new key is refused and fetches the keys, the next
/// is taken.
#[test]
fn a_rotated_key_is_fetched_when_a_token_names_it() {
    let mut lab = Lab::new("oidc-rotate");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let mut provider = Provider::create(&lab.dir.join("idp"), None);
    let settings = lab.dir.join("oidc.json");
    provider.write_settings(&settings, 0, None);
    lab.start_server(
        ServerKind::Ours,
        &pki,
        &auth_line(&settings),
        "max-ban-score = 0\n",
    );
    let ca = pki.ca_pem.clone();
    assert_eq!(curl_status(&lab, &ca, &provider.token("SomeUser")), "200");
    std::thread::sleep(SECS(2));
    let kid = provider.rotate();
    let token = provider.token("SomeUser");
    assert_eq!(
        curl_status(&lab, &ca, &token),
        "401",
        "before the keys were fetched"
    );
    lab.wait_for_log("ocserv.log", &format!("no key \"{kid}\""), SECS(5));
    lab.wait_for_log("ocserv.log", &format!("signing keys: {kid}"), SECS(5));
    assert_eq!(
        curl_status(&lab, &ca, &token),
        "200",
        "after the keys were fetched"
    );
}

/// A provider that never answers, one whose key set is over the size limit, and one with
/// a certificate the server does not trust: the server does not start, and says which
/// document failed and why.
#[test]
fn a_provider_that_is_down_or_hostile_stops_the_start() {
    let mut lab = Lab::new("oidc-down");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let dir = lab.dir.join("idp");
    let provider = Provider::create(&dir, Some(&format!("https://127.0.0.1:{PROVIDER_PORT}")));
    let settings = lab.dir.join("oidc.json");
    let config = lab.dir.join("refused.conf");
    let write_config = || {
        let text = lab.server_config(&pki, &auth_line(&settings), "");
        std::fs::write(&config, text).unwrap();
    };
    write_config();

    // Nobody listens.
    provider.write_settings(&settings, 900, Some(&pki.ca_pem));
    let (code, out) = lab.start_refused(&config);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("openid_configuration_url") && out.contains("connecting"),
        "{out}"
    );

    // It accepts and never answers: refused after the fetch time limit.
    serve_provider(&mut lab, &pki, &dir, true);
    let (code, out) = lab.start_refused(&config);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("openid_configuration_url"), "{out}");

    // The system's CAs do not know the lab CA: the certificate is not trusted.
    provider.write_settings(&settings, 900, None);
    let files = Provider::create(&lab.dir.join("files"), None);
    let (code, out) = lab.start_refused(&config);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("TLS with 127.0.0.1"), "{out}");

    // A key set over 1 MiB, read as a file.
    files.write_settings(&settings, 900, None);
    std::fs::write(files.dir.join("keys.json"), vec![b' '; 1024 * 1024 + 1]).unwrap();
    let (code, out) = lab.start_refused(&config);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("jwks_uri") && out.contains("larger than"),
        "{out}"
    );
}
