//! Login forms as the user sees them, whatever the protocol: AnyConnect's XML
//! `auth-request`, Fortinet's fixed username/password form and its token challenge, and the
//! HTML forms of other vendors all become an [`AuthForm`] that the client fills from its
//! options or the terminal.

use std::borrow::Cow;

use quick_xml::events::BytesStart;

/// A form field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Password,
    Hidden,
    Select(Vec<SelectOption>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectOption {
    pub value: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormField {
    pub name: String,
    pub label: String,
    pub kind: FieldKind,
    /// Hidden fields carry their value; others may carry a default.
    pub value: Option<String>,
    /// The field takes a one-time code: Cisco's `second-auth="1"`, Fortinet's token
    /// challenge. Software tokens fill it.
    pub token: bool,
}

/// One `auth-request` as the user sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthForm {
    /// `auth id`: `main`, `challenge`, `success`, ...
    pub id: String,
    pub title: Option<String>,
    pub banner: Option<String>,
    pub message: Option<String>,
    pub error: Option<String>,
    pub action: Option<String>,
    pub method: Option<String>,
    pub fields: Vec<FormField>,
}

impl AuthForm {
    /// The field that chooses the authentication group, if the form has one.
    pub fn group_field(&self) -> Option<&FormField> {
        self.fields
            .iter()
            .find(|f| f.name == GROUP_FIELD && matches!(f.kind, FieldKind::Select(_)))
    }
}

/// Name of the select that picks the authentication group.
pub const GROUP_FIELD: &str = "group_list";

/// `application/x-www-form-urlencoded` for `pairs`, in order.
pub fn urlencode(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        push_encoded(&mut out, name);
        out.push('=');
        push_encoded(&mut out, value);
    }
    out
}

fn push_encoded(out: &mut String, text: &str) {
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

/// An XML element's attribute, its entities resolved.
pub(crate) fn xml_attr(start: &BytesStart<'_>, name: &str) -> Option<String> {
    start
        .attributes()
        .flatten()
        .find(|a| a.key.0 == name)
        .map(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(Cow::into_owned)
                .unwrap_or_else(|_| a.value.into_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_everything_but_the_unreserved_set() {
        let pairs = [
            ("username".to_string(), "al ice".to_string()),
            ("credential".to_string(), "p&s=w%rd/é".to_string()),
        ];
        assert_eq!(
            urlencode(&pairs),
            "username=al+ice&credential=p%26s%3Dw%25rd%2F%C3%A9"
        );
        assert_eq!(urlencode(&[]), "");
    }
}
