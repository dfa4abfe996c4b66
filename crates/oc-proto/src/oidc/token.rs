//! A bearer token (JWS compact serialisation) and the checks ocserv makes on it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde_json::{Map, Value};

use super::{Jwk, KeyMaterial, KeySet, OidcError, OidcSettings, MAX_TOKEN};

/// The signature algorithms taken: public-key ones only (never `none` or a shared-secret
/// HMAC, which would let anyone holding the public key sign).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    Es512,
    EdDsa,
}

impl Alg {
    pub fn parse(name: &str) -> Result<Self, OidcError> {
        Ok(match name {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "ES512" => Self::Es512,
            "EdDSA" => Self::EdDsa,
            other => return Err(OidcError::Algorithm(other.to_owned())),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
            Self::EdDsa => "EdDSA",
        }
    }

    /// Whether `key` is of the kind this algorithm signs with.
    fn fits(self, key: &KeyMaterial) -> bool {
        match (self, key) {
            (Self::Rs256 | Self::Rs384 | Self::Rs512, KeyMaterial::Rsa { .. })
            | (Self::Ps256 | Self::Ps384 | Self::Ps512, KeyMaterial::Rsa { .. }) => true,
            (Self::Es256, KeyMaterial::Ec { curve, .. }) => curve == "P-256",
            (Self::Es384, KeyMaterial::Ec { curve, .. }) => curve == "P-384",
            (Self::Es512, KeyMaterial::Ec { curve, .. }) => curve == "P-521",
            (Self::EdDsa, KeyMaterial::Okp { curve, .. }) => curve == "Ed25519" || curve == "Ed448",
            _ => false,
        }
    }
}

/// Checks a signature made with `alg` by `key` over `input` (OpenSSL's, in `oc-tls`).
pub trait SignatureCheck {
    fn verify(&self, key: &Jwk, alg: Alg, input: &[u8], signature: &[u8]) -> Result<(), String>;
}

/// A token split into its parts; nothing in it is trusted yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Jwt {
    pub alg: Alg,
    pub kid: Option<String>,
    /// The protected header's `typ`.
    pub typ: Option<String>,
    pub claims: Map<String, Value>,
    /// `header.payload`, as signed.
    pub signing_input: Vec<u8>,
    pub signature: Vec<u8>,
}

impl Jwt {
    pub fn parse(token: &str) -> Result<Self, OidcError> {
        let bad = |why: &str| OidcError::Malformed(why.to_owned());
        if token.is_empty() {
            return Err(bad("empty token"));
        }
        if token.len() > MAX_TOKEN {
            return Err(bad(&format!("longer than {MAX_TOKEN} bytes")));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not three dot-separated parts (a signed JWT)"));
        };
        let decode = |part: &str, what: &str| {
            B64URL
                .decode(part)
                .map_err(|_| bad(&format!("the {what} is not base64url")))
        };
        let header: Value = serde_json::from_slice(&decode(header, "header")?)
            .map_err(|_| bad("the header is not JSON"))?;
        let claims = match serde_json::from_slice(&decode(payload, "payload")?) {
            Ok(Value::Object(claims)) => claims,
            _ => return Err(bad("the payload is not a JSON object")),
        };
        let signature = decode(signature, "signature")?;
        if header.get("crit").is_some() {
            return Err(bad("critical header extensions are not supported"));
        }
        let text = |name: &str| header.get(name).and_then(Value::as_str).map(str::to_owned);
        let alg = Alg::parse(&text("alg").ok_or_else(|| bad("no alg in the header"))?)?;
        let signed_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
        Ok(Self {
            alg,
            kid: text("kid"),
            typ: text("typ"),
            claims,
            signing_input: token
                .as_bytes()
                .get(..signed_len)
                .unwrap_or_default()
                .to_vec(),
            signature,
        })
    }
}

/// What a good token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The user-name claim's value.
    pub user: String,
    /// The `exp` claim: when the token (not the session) expires.
    pub expires: u64,
    /// All the claims, for the checks a browser login adds (`nonce`, `aud`).
    pub claims: Map<String, Value>,
}

/// Checks `token` as ocserv does, in its order: form, `typ`, signing key, signature,
/// lifetime (`nbf`, `iat` and `exp` all present, `now` inside), required claims, user
/// name. [`OidcError::UnknownKey`] tells the caller to consider a new key download.
pub fn verify_token(
    token: &str,
    settings: &OidcSettings,
    keys: &KeySet,
    now: u64,
    check: &dyn SignatureCheck,
) -> Result<Verified, OidcError> {
    let jwt = Jwt::parse(token)?;
    match jwt.typ.as_deref() {
        Some(t) if t.eq_ignore_ascii_case("JWT") || t.eq_ignore_ascii_case("at+jwt") => {}
        other => return Err(OidcError::Type(other.unwrap_or_default().to_owned())),
    }
    let kid = jwt.kid.clone().unwrap_or_default();
    let key = keys
        .key_for(jwt.kid.as_deref())
        .ok_or_else(|| OidcError::UnknownKey { kid: kid.clone() })?;
    let refused = |why: String| OidcError::Signature {
        kid: kid.clone(),
        why,
    };
    if !jwt.alg.fits(&key.material) {
        return Err(refused(format!(
            "{} does not fit the key's type",
            jwt.alg.name()
        )));
    }
    if key.alg.as_deref().is_some_and(|a| a != jwt.alg.name()) {
        return Err(refused(format!(
            "the key is for {}, the token says {}",
            key.alg.as_deref().unwrap_or_default(),
            jwt.alg.name()
        )));
    }
    check
        .verify(key, jwt.alg, &jwt.signing_input, &jwt.signature)
        .map_err(refused)?;
    let expires = check_lifetime(&jwt.claims, now)?;
    check_required(&jwt.claims, settings)?;
    let user = match jwt.claims.get(&settings.user_name_claim) {
        Some(Value::String(user)) if !user.is_empty() => user.clone(),
        _ => return Err(OidcError::UserName(settings.user_name_claim.clone())),
    };
    Ok(Verified {
        user,
        expires,
        claims: jwt.claims,
    })
}

/// `nbf`, `iat` and `exp` must be there (ocserv's rule); `now` must be within
/// `nbf..=exp`. Returns `exp`.
fn check_lifetime(claims: &Map<String, Value>, now: u64) -> Result<u64, OidcError> {
    let time = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_u64)
            .filter(|t| *t != 0)
            .ok_or_else(|| OidcError::Lifetime(format!("no {name:?} time")))
    };
    let (nbf, exp) = (time("nbf")?, time("exp")?);
    time("iat")?;
    if now < nbf {
        return Err(OidcError::Lifetime(format!(
            "not valid before {nbf}, {} s from now",
            nbf - now
        )));
    }
    if now > exp {
        return Err(OidcError::Lifetime(format!(
            "expired at {exp}, {} s ago",
            now - exp
        )));
    }
    Ok(exp)
}

/// Each required claim must be in the token with the same JSON value; a token's `aud`
/// array may hold the required audience among others (RFC 7519 4.1.3).
fn check_required(claims: &Map<String, Value>, settings: &OidcSettings) -> Result<(), OidcError> {
    for (name, expected) in &settings.required_claims {
        let present = claims.get(name);
        let ok = match (name.as_str(), present) {
            (_, Some(value)) if value == expected => true,
            ("aud", Some(Value::Array(audiences))) => audiences.contains(expected),
            _ => false,
        };
        if !ok {
            return Err(OidcError::Claim {
                claim: name.clone(),
                expected: expected.to_string(),
            });
        }
    }
    Ok(())
}
