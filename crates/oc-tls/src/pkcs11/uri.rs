//! PKCS#11 URIs (RFC 7512) as `-c`/`-k` take them: the token's attributes, the object's
//! label (`object`), `id` and `type` in the path; `pin-value`, `module-path` and
//! `module-name` in the query. Values are percent-decoded; anything else is ignored, as
//! RFC 7512 asks of attributes a consumer does not know.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum UriError {
    #[error("not a pkcs11: URI")]
    Scheme,
    #[error("bad %-escape in the {0} attribute")]
    Escape(String),
    #[error("the {0} attribute is not UTF-8 text")]
    NotText(String),
    #[error("unknown object type {0:?} (cert, private, public, secret-key or data)")]
    Type(String),
    #[error("attribute {0} appears twice")]
    Repeated(String),
}

/// The class of object a URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    Cert,
    Private,
    Public,
    Other,
}

/// A parsed PKCS#11 URI. `None` fields match anything.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    /// The object's label (CKA_LABEL).
    pub object: Option<String>,
    /// The object's CKA_ID, raw bytes.
    pub id: Option<Vec<u8>>,
    pub object_type: Option<ObjectType>,
    pub pin_value: Option<String>,
    pub module_path: Option<String>,
    pub module_name: Option<String>,
}

impl std::fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Uri")
            .field("token", &self.token)
            .field("object", &self.object)
            .field("id", &self.id)
            .field("object_type", &self.object_type)
            .field("pin_value", &self.pin_value.as_ref().map(|_| "<hidden>"))
            .field("module_path", &self.module_path)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Uri {
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let rest = uri.strip_prefix("pkcs11:").ok_or(UriError::Scheme)?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut parsed = Self::default();
        for part in path.split(';').chain(query.split('&')) {
            let Some((name, raw)) = part.split_once('=') else {
                continue;
            };
            parsed.set(name, raw)?;
        }
        Ok(parsed)
    }

    fn set(&mut self, name: &str, raw: &str) -> Result<(), UriError> {
        let bytes = oc_proto::url::percent_decode_strict(raw)
            .ok_or_else(|| UriError::Escape(name.to_string()))?;
        if name == "id" {
            return put(&mut self.id, bytes, name);
        }
        let text = || String::from_utf8(bytes.clone()).map_err(|_| UriError::NotText(name.into()));
        match name {
            "token" => put(&mut self.token, text()?, name),
            "manufacturer" => put(&mut self.manufacturer, text()?, name),
            "serial" => put(&mut self.serial, text()?, name),
            "model" => put(&mut self.model, text()?, name),
            "object" => put(&mut self.object, text()?, name),
            "pin-value" => put(&mut self.pin_value, text()?, name),
            "module-path" => put(&mut self.module_path, text()?, name),
            "module-name" => put(&mut self.module_name, text()?, name),
            "type" => {
                let kind = match text()?.as_str() {
                    "cert" => ObjectType::Cert,
                    "private" => ObjectType::Private,
                    "public" => ObjectType::Public,
                    "secret-key" | "data" => ObjectType::Other,
                    other => return Err(UriError::Type(other.to_string())),
                };
                put(&mut self.object_type, kind, name)
            }
            _ => Ok(()),
        }
    }
}

fn put<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), UriError> {
    match slot {
        Some(_) => Err(UriError::Repeated(name.to_string())),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// `uri` with any `pin-value` hidden, for messages.
pub fn redact_pin(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(at) = rest.find("pin-value=") {
        let (before, after) = rest.split_at(at + "pin-value=".len());
        out.push_str(before);
        out.push_str("***");
        rest = after.find([';', '&']).map_or("", |end| &after[end..]);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_forms() {
        let u =
            Pkcs11Uri::parse("pkcs11:token=openconnect-test;object=RSA;pin-value=1234").unwrap();
        assert_eq!(u.token.as_deref(), Some("openconnect-test"));
        assert_eq!(u.object.as_deref(), Some("RSA"));
        assert_eq!(u.pin_value.as_deref(), Some("1234"));
        assert!(!format!("{u:?}").contains("1234"));
        let u = Pkcs11Uri::parse(
            "pkcs11:model=SoftHSM%20v2;token=t;id=%01%ff;type=private?module-path=/lib/x.so&pin-value=9",
        )
        .unwrap();
        assert_eq!(u.model.as_deref(), Some("SoftHSM v2"));
        assert_eq!(u.id, Some(vec![1, 0xff]));
        assert_eq!(u.object_type, Some(ObjectType::Private));
        assert_eq!(u.module_path.as_deref(), Some("/lib/x.so"));
        assert_eq!(u.pin_value.as_deref(), Some("9"));
        assert_eq!(Pkcs11Uri::parse("pkcs11:").unwrap(), Pkcs11Uri::default());
    }

    #[test]
    fn hostile_uris() {
        assert_eq!(Pkcs11Uri::parse("file:x"), Err(UriError::Scheme));
        assert_eq!(
            Pkcs11Uri::parse("pkcs11:id=%0"),
            Err(UriError::Escape("id".into()))
        );
        assert_eq!(
            Pkcs11Uri::parse("pkcs11:object=%ff"),
            Err(UriError::NotText("object".into()))
        );
        assert_eq!(
            Pkcs11Uri::parse("pkcs11:type=key"),
            Err(UriError::Type("key".into()))
        );
        assert_eq!(
            Pkcs11Uri::parse("pkcs11:token=a;token=b"),
            Err(UriError::Repeated("token".into()))
        );
        assert!(Pkcs11Uri::parse("pkcs11:;;&&=;x-vendor=1;novalue").is_ok());
    }

    #[test]
    fn pins_are_hidden() {
        assert_eq!(
            redact_pin("pkcs11:token=t;pin-value=1234;object=k"),
            "pkcs11:token=t;pin-value=***;object=k"
        );
        assert_eq!(
            redact_pin("pkcs11:token=t?pin-value=12&x=1"),
            "pkcs11:token=t?pin-value=***&x=1"
        );
        assert_eq!(redact_pin("pkcs11:pin-value=1"), "pkcs11:pin-value=***");
    }
}
