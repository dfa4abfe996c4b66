//! A test OpenID Connect provider: signing keys made by the test, the discovery document
//! and key set (JWKS) written to a directory and served by `scripts/oidc_provider.py` over
//! HTTPS (or read by the server as `file://` URLs), and tokens minted with those keys.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use oc_proto::oidc::Alg;
use oc_tls::jose::{public_jwk, sign};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use serde_json::{json, Value};

pub const AUDIENCE: &str = "ferroconnect-vpn";
pub const ISSUER: &str = "https://idp.example.test";

/// The provider's keys and where its documents are.
#[derive(Debug)]
pub struct Provider {
    /// The directory served: `discovery.json` and `keys.json`.
    pub dir: PathBuf,
    /// Where the server finds the directory (`https://127.0.0.1:PORT` or `file://localhost/…`).
    pub base_url: String,
    keys: Vec<(String, Alg, PKey<Private>)>,
    rotations: u32,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Provider {
    /// A provider with an ES256 key (`ec-0`) and an RS256 key (`rsa-0`) in `dir`;
    /// `base_url` None: read as files.
    pub fn create(dir: &Path, base_url: Option<&str>) -> Self {
        fs::create_dir_all(dir).unwrap();
        let ec = PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
        )
        .unwrap();
        let rsa = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let base_url = base_url.map_or_else(
            || format!("file://localhost{}", dir.display()),
            str::to_owned,
        );
        let provider = Self {
            dir: dir.to_owned(),
            base_url,
            keys: vec![
                ("ec-0".into(), Alg::Es256, ec),
                ("rsa-0".into(), Alg::Rs256, rsa),
            ],
            rotations: 0,
        };
        provider.publish();
        provider
    }

    /// The discovery document's address.
    pub fn discovery_url(&self) -> String {
        format!("{}/discovery.json", self.base_url)
    }

    /// Writes ocserv's OIDC settings file for this provider to `path`.
    pub fn write_settings(&self, path: &Path, refresh: u64, ca_file: Option<&Path>) {
        let mut settings = json!({
            "openid_configuration_url": self.discovery_url(),
            "user_name_claim": "preferred_username",
            "required_claims": {"aud": AUDIENCE, "iss": ISSUER},
            "minimum_jwk_refresh_time": refresh,
        });
        if let Some(ca) = ca_file {
            settings["ca_file"] = json!(ca.display().to_string());
        }
        fs::write(path, settings.to_string()).unwrap();
    }

    fn publish(&self) {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|(kid, alg, key)| public_jwk(key, kid, Some(*alg)).unwrap().to_json())
            .collect();
        let base = &self.base_url;
        let mut discovery = json!({"issuer": ISSUER, "jwks_uri": format!("{base}/keys.json")});
        if base.starts_with("https://") {
            // The browser-login endpoints of `src/bin/oidc_idp.rs`.
            discovery["authorization_endpoint"] = json!(format!("{base}/authorize"));
            discovery["token_endpoint"] = json!(format!("{base}/token"));
        }
        fs::write(self.dir.join("discovery.json"), discovery.to_string()).unwrap();
        fs::write(
            self.dir.join("keys.json"),
            json!({ "keys": keys }).to_string(),
        )
        .unwrap();
    }

    /// Replaces the EC key with a new one under a new kid (the old one is withdrawn);
    /// returns the new kid.
    pub fn rotate(&mut self) -> String {
        self.rotations += 1;
        let kid = format!("ec-{}", self.rotations);
        let ec = PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
        )
        .unwrap();
        self.keys[0] = (kid.clone(), Alg::Es256, ec);
        self.publish();
        kid
    }

    /// The claims of a good token for `user`, valid from a minute ago for an hour.
    pub fn claims(user: &str) -> Value {
        let now = unix_now();
        json!({"aud": AUDIENCE, "iss": ISSUER, "iat": now - 60, "nbf": now - 60,
               "exp": now + 3600, "preferred_username": user})
    }

    /// A token with these claims, signed by key `index` (0: EC, 1: RSA) under `header`'s
    /// fields (`typ`, `alg`, `kid` default to the key's).
    pub fn mint(&self, index: usize, header: &Value, claims: &Value) -> String {
        let (kid, alg, key) = &self.keys[index];
        let mut full = json!({"typ": "JWT", "alg": alg.name(), "kid": kid});
        for (k, v) in header.as_object().unwrap() {
            if v.is_null() {
                full.as_object_mut().unwrap().remove(k);
            } else {
                full[k] = v.clone();
            }
        }
        let input = format!(
            "{}.{}",
            B64URL.encode(full.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig = sign(key, *alg, input.as_bytes()).unwrap();
        format!("{input}.{}", B64URL.encode(sig))
    }

    /// A good token for `user` from the EC key.
    pub fn token(&self, user: &str) -> String {
        self.mint(0, &json!({}), &Self::claims(user))
    }
}
