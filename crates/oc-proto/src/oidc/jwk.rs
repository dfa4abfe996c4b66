//! The provider's signing keys (a JWK Set, RFC 7517), as public key material.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde_json::Value;

use super::OidcError;

/// The public part of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// `kty: RSA`: modulus and public exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// `kty: EC`: the curve (`P-256`, `P-384`, `P-521`) and the point's coordinates.
    Ec {
        curve: String,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    /// `kty: OKP`: `Ed25519` (or `Ed448`) and the public key.
    Okp { curve: String, x: Vec<u8> },
}

/// One signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The algorithm the key is for, when the set says.
    pub alg: Option<String>,
    pub material: KeyMaterial,
}

/// A key the set lists but we cannot use (skipped, for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwkError {
    pub kid: Option<String>,
    pub why: String,
}

/// The keys of a provider, and when they were fetched (seconds, the caller's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
    pub fetched_at: u64,
}

impl KeySet {
    /// Parses a JWK Set: its signing keys, and the keys skipped with why.
    pub fn parse(
        document: &[u8],
        what: &str,
        now: u64,
    ) -> Result<(Self, Vec<JwkError>), OidcError> {
        let bad = |message: &str| OidcError::Document {
            what: what.to_owned(),
            message: message.to_owned(),
        };
        let value: Value =
            serde_json::from_slice(document).map_err(|e| bad(&format!("not valid JSON: {e}")))?;
        let Some(Value::Array(entries)) = value.get("keys") else {
            return Err(bad("no \"keys\" array in it"));
        };
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for entry in entries {
            match Jwk::from_json(entry) {
                Ok(Some(key)) => keys.push(key),
                Ok(None) => {}
                Err(e) => skipped.push(e),
            }
        }
        Ok((
            Self {
                keys,
                fetched_at: now,
            },
            skipped,
        ))
    }

    /// The key a token names: by `kid`, or the only key when the token names none.
    pub fn key_for(&self, kid: Option<&str>) -> Option<&Jwk> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None => match self.keys.as_slice() {
                [only] => Some(only),
                _ => None,
            },
        }
    }

    /// Whether a token naming an unknown key may cause a new download now
    /// (`minimum_jwk_refresh_time` after the last one).
    pub fn may_refresh(&self, now: u64, interval: u64) -> bool {
        now.saturating_sub(self.fetched_at) > interval
    }
}

impl Jwk {
    /// The key as a JWK Set entry (what a provider publishes).
    pub fn to_json(&self) -> Value {
        let b64 = |bytes: &[u8]| Value::String(B64URL.encode(bytes));
        let mut entry = serde_json::Map::new();
        match &self.material {
            KeyMaterial::Rsa { n, e } => {
                entry.insert("kty".into(), "RSA".into());
                entry.insert("n".into(), b64(n));
                entry.insert("e".into(), b64(e));
            }
            KeyMaterial::Ec { curve, x, y } => {
                entry.insert("kty".into(), "EC".into());
                entry.insert("crv".into(), curve.as_str().into());
                entry.insert("x".into(), b64(x));
                entry.insert("y".into(), b64(y));
            }
            KeyMaterial::Okp { curve, x } => {
                entry.insert("kty".into(), "OKP".into());
                entry.insert("crv".into(), curve.as_str().into());
                entry.insert("x".into(), b64(x));
            }
        }
        entry.insert("use".into(), "sig".into());
        if let Some(kid) = &self.kid {
            entry.insert("kid".into(), kid.as_str().into());
        }
        if let Some(alg) = &self.alg {
            entry.insert("alg".into(), alg.as_str().into());
        }
        Value::Object(entry)
    }

    /// One entry of the set: `Ok(None)` for a key not meant for signatures (`use: enc`).
    fn from_json(entry: &Value) -> Result<Option<Self>, JwkError> {
        let text = |name: &str| entry.get(name).and_then(Value::as_str);
        let kid = text("kid").map(str::to_owned);
        let bad = |why: String| JwkError {
            kid: kid.clone(),
            why,
        };
        if text("use").is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        let bytes = |name: &str| -> Result<Vec<u8>, JwkError> {
            let field = text(name).ok_or_else(|| bad(format!("no {name:?}")))?;
            let raw = B64URL
                .decode(field.trim_end_matches('='))
                .map_err(|e| bad(format!("{name:?} is not base64url: {e}")))?;
            if raw.is_empty() {
                return Err(bad(format!("{name:?} is empty")));
            }
            Ok(raw)
        };
        let material = match text("kty") {
            Some("RSA") => KeyMaterial::Rsa {
                n: bytes("n")?,
                e: bytes("e")?,
            },
            Some("EC") => KeyMaterial::Ec {
                curve: text("crv")
                    .ok_or_else(|| bad("no \"crv\"".into()))?
                    .to_owned(),
                x: bytes("x")?,
                y: bytes("y")?,
            },
            Some("OKP") => KeyMaterial::Okp {
                curve: text("crv")
                    .ok_or_else(|| bad("no \"crv\"".into()))?
                    .to_owned(),
                x: bytes("x")?,
            },
            Some(other) => return Err(bad(format!("key type {other:?} is not supported"))),
            None => return Err(bad("no \"kty\"".into())),
        };
        Ok(Some(Self {
            kid: kid.clone(),
            alg: text("alg").map(str::to_owned),
            material,
        }))
    }
}
