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
    /// The select that picks the authentication group (`--authgroup`), when it is not
    /// AnyConnect's [`GROUP_FIELD`] (F5's `domain`, for one).
    pub group_select: Option<String>,
}

impl AuthForm {
    /// The field that chooses the authentication group, if the form has one.
    pub fn group_field(&self) -> Option<&FormField> {
        self.fields.iter().find(|f| {
            (f.name == GROUP_FIELD || self.group_select.as_ref() == Some(&f.name))
                && matches!(f.kind, FieldKind::Select(_))
        })
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

/// Appends `text` %-encoded as a form value (unreserved characters kept, space as `+`).
pub(crate) fn push_encoded(out: &mut String, text: &str) {
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

/// A form found in an HTML page: what to ask, and where to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtmlForm {
    pub form: AuthForm,
    /// The `action` attribute, if any (relative to the page).
    pub action: Option<String>,
}

/// Tags read from one page at most; a page with more is cut there.
const MAX_TAGS: usize = 4096;

/// The first `<form>` of `html` (or the one whose `id`/`name` is `want`), with its text,
/// password, hidden and select fields, tolerant of the HTML real gateways send. `message`
/// comes from the first element whose `id` is `message_id` (e.g. F5's
/// `credentials_table_header`).
pub fn parse_html_form(
    html: &str,
    want: Option<&str>,
    message_id: Option<&str>,
) -> Option<HtmlForm> {
    let mut found: Option<HtmlForm> = None;
    let mut in_wanted = false;
    let mut selects = SelectReader::default();
    let mut capture_message = false;
    let mut message = String::new();
    for (tag, text_after) in tags(html).take(MAX_TAGS) {
        let (name, attrs) = tag;
        match name.as_str() {
            "form" if found.is_none() => {
                let id = attr_of(&attrs, "id").or_else(|| attr_of(&attrs, "name"));
                if want.is_none_or(|w| id.as_deref() == Some(w)) {
                    in_wanted = true;
                    found = Some(HtmlForm {
                        form: AuthForm {
                            id: id.unwrap_or_default(),
                            ..AuthForm::default()
                        },
                        action: attr_of(&attrs, "action"),
                    });
                }
            }
            "/form" if in_wanted => {
                in_wanted = false;
                if let (Some(f), Some(s)) = (found.as_mut(), selects.finish()) {
                    push_field(&mut f.form.fields, s);
                }
            }
            "input" if in_wanted => {
                if let (Some(f), Some(field)) = (found.as_mut(), input_field(&attrs)) {
                    push_field(&mut f.form.fields, field);
                }
            }
            "select" | "option" | "/select" if in_wanted => {
                let fields = found.as_mut().map(|f| &mut f.form.fields);
                if let Some(fields) = fields {
                    selects.tag(&name, &attrs, &text_after, &mut |s| push_field(fields, s));
                }
            }
            _ => {}
        }
        if message_id.is_some() && attr_of(&attrs, "id").as_deref() == message_id {
            capture_message = true;
        }
        if capture_message && !name.starts_with('/') {
            message.push_str(text_after.trim());
        } else if capture_message && name.starts_with("/td") {
            capture_message = false;
        }
    }
    let mut found = found?;
    if let Some(s) = selects.finish() {
        push_field(&mut found.form.fields, s);
    }
    let message = message.trim();
    if !message.is_empty() {
        found.form.message = Some(message.to_string());
    }
    Some(found)
}

/// Choices read from one select at most.
const MAX_CHOICES: usize = 1024;

/// A `<select>` being read from a page's tags: its options, until `</select>` or (pages
/// leave them open) the next `<select>` or the end.
#[derive(Debug, Default)]
pub(crate) struct SelectReader {
    open: Option<FormField>,
}

impl SelectReader {
    /// Takes a `select`, `option` or `/select` tag (`text` what follows it); a select
    /// complete by it comes back. Other tags are not its business (`false`).
    pub(crate) fn tag(
        &mut self,
        name: &str,
        attrs: &[(String, String)],
        text: &str,
        done: &mut dyn FnMut(FormField),
    ) -> bool {
        match name {
            "select" => {
                if let Some(select) = self.open.take() {
                    done(select);
                }
                self.open = attr_of(attrs, "name").map(|n| FormField {
                    label: n.clone(),
                    name: n,
                    kind: FieldKind::Select(Vec::new()),
                    value: None,
                    token: false,
                });
            }
            "option" => {
                let open = self.open.as_mut().map(|s| &mut s.kind);
                if let (Some(FieldKind::Select(options)), Some(value)) =
                    (open, attr_of(attrs, "value"))
                {
                    if options.len() < MAX_CHOICES {
                        options.push(SelectOption {
                            value,
                            label: text.trim().to_string(),
                        });
                    }
                }
            }
            "/select" => {
                if let Some(select) = self.open.take() {
                    done(select);
                }
            }
            _ => return false,
        }
        true
    }

    /// A select still open at the end of the form.
    pub(crate) fn finish(&mut self) -> Option<FormField> {
        self.open.take()
    }
}

/// Fields read from one form at most.
const MAX_FIELDS: usize = 64;

fn push_field(fields: &mut Vec<FormField>, field: FormField) {
    if fields.len() < MAX_FIELDS {
        fields.push(field);
    }
}

fn input_field(attrs: &[(String, String)]) -> Option<FormField> {
    let name = attr_of(attrs, "name")?;
    let kind = match attr_of(attrs, "type")
        .unwrap_or_else(|| "text".into())
        .to_ascii_lowercase()
        .as_str()
    {
        "text" | "email" | "tel" | "number" => FieldKind::Text,
        "password" => FieldKind::Password,
        "hidden" => FieldKind::Hidden,
        // Buttons, checkboxes and the like are not asked for.
        _ => return None,
    };
    Some(FormField {
        label: attr_of(attrs, "placeholder").unwrap_or_else(|| format!("{name}:")),
        value: attr_of(attrs, "value"),
        name,
        kind,
        token: false,
    })
}

pub(crate) fn attr_of(attrs: &[(String, String)], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// `(lower-case tag name with a leading `/` for end tags, attributes)` and the text up to
/// the next tag; comments and script/style bodies are skipped.
pub(crate) fn tags(
    html: &str,
) -> impl Iterator<Item = ((String, Vec<(String, String)>), String)> + '_ {
    let mut rest = html;
    std::iter::from_fn(move || loop {
        let start = rest.find('<')?;
        rest = rest.get(start + 1..)?;
        if let Some(after) = rest.strip_prefix("!--") {
            rest = after.split_once("-->").map_or("", |(_, r)| r);
            continue;
        }
        let end = rest.find('>')?;
        let inside = rest.get(..end)?;
        rest = rest.get(end + 1..)?;
        let (name, attrs) = parse_tag(inside);
        if name == "script" || name == "style" {
            let close = format!("</{name}");
            rest = rest
                .to_ascii_lowercase()
                .find(&close)
                .and_then(|i| rest.get(i..))
                .unwrap_or("");
        }
        let text = rest.split('<').next().unwrap_or_default();
        return Some(((name, attrs), decode_entities(text)));
    })
}

fn parse_tag(inside: &str) -> (String, Vec<(String, String)>) {
    let inside = inside.trim_end_matches('/');
    let name_end = inside
        .find(|c: char| c.is_whitespace())
        .unwrap_or(inside.len());
    let name = inside
        .get(..name_end)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let attrs = split_attributes(inside.get(name_end..).unwrap_or_default())
        .into_iter()
        .map(|(key, value)| (key.to_ascii_lowercase(), decode_entities(value)))
        .collect();
    (name, attrs)
}

/// A tag's attributes after its name, raw: `key="v"`, `key='v'`, `key=v` or a bare `key`
/// (empty value); at most 64, up to the first without a name.
pub(crate) fn split_attributes(mut s: &str) -> Vec<(&str, &str)> {
    let mut attrs = Vec::new();
    s = s.trim_start();
    while !s.is_empty() && attrs.len() < 64 {
        let key_end = s
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(s.len());
        let key = s.get(..key_end).unwrap_or_default();
        s = s.get(key_end..).unwrap_or_default().trim_start();
        let value = if let Some(v) = s.strip_prefix('=') {
            let v = v.trim_start();
            let (value, after) = match v.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = v.get(1..).unwrap_or_default();
                    let end = body.find(q).unwrap_or(body.len());
                    (
                        body.get(..end).unwrap_or_default(),
                        body.get(end + 1..).unwrap_or_default(),
                    )
                }
                _ => {
                    let end = v.find(char::is_whitespace).unwrap_or(v.len());
                    (
                        v.get(..end).unwrap_or_default(),
                        v.get(end..).unwrap_or_default(),
                    )
                }
            };
            s = after.trim_start();
            value
        } else {
            ""
        };
        if key.is_empty() {
            break;
        }
        attrs.push((key, value));
    }
    attrs
}

/// The common HTML entities (and numeric ones).
fn decode_entities(text: &str) -> String {
    decode_references(text, |name| match name {
        "nbsp" => Some(' '),
        other => xml_entity(other),
    })
}

/// XML's five entities and character references (`#65`, `#x41`) by name.
pub(crate) fn xml_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => name
            .strip_prefix('#')
            .and_then(|n| match n.strip_prefix(['x', 'X']) {
                Some(hex) => crate::hex::number(hex).and_then(|n| u32::try_from(n).ok()),
                None => n
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| n.parse().ok())
                    .flatten(),
            })
            .and_then(char::from_u32),
    }
}

/// `text` with each `&name;` that `named` knows replaced; anything else (a bare `&`, an
/// unknown or unterminated reference) stays as it came.
pub(crate) fn decode_references(text: &str, named: impl Fn(&str) -> Option<char>) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(rest.get(..i).unwrap_or_default());
        rest = rest.get(i..).unwrap_or_default();
        let end = rest.find(';').filter(|e| *e <= 12);
        match (end.and_then(|e| rest.get(1..e)).and_then(&named), end) {
            (Some(c), Some(e)) => {
                out.push(c);
                rest = rest.get(e + 1..).unwrap_or_default();
            }
            _ => {
                out.push('&');
                rest = rest.get(1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod html_tests {
    use super::*;

    const F5_PAGE: &str = r#"<html><head><script>var x = "<form id='fake'>";</script></head><body>
      <table><tr><td id="credentials_table_header">Secure &amp; Logon</td></tr>
      <tr><td id="credentials_table_postheader">The username or password is not correct.</td></tr></table>
      <!-- <form id="commented"> -->
      <form id="auth_form" name="e1" method="post" action="/my.policy" autocomplete="off">
        <input type=text name=username value="" placeholder="Username">
        <input type="password" name="password" value=''>
        <select name="domain"><option value="corp">Corporate</option><option value="lab" selected>Lab &amp; test</option></select>
        <input type="hidden" name="vhost" value="standard">
        <input type="submit" value="Logon">
      </form></body></html>"#;

    #[test]
    fn a_login_page_becomes_a_form() {
        let f =
            parse_html_form(F5_PAGE, Some("auth_form"), Some("credentials_table_header")).unwrap();
        assert_eq!(f.action.as_deref(), Some("/my.policy"));
        assert_eq!(f.form.id, "auth_form");
        assert_eq!(f.form.message.as_deref(), Some("Secure & Logon"));
        let names: Vec<&str> = f.form.fields.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["username", "password", "domain", "vhost"]);
        assert_eq!(f.form.fields[0].kind, FieldKind::Text);
        assert_eq!(f.form.fields[0].label, "Username");
        assert_eq!(f.form.fields[1].kind, FieldKind::Password);
        let FieldKind::Select(options) = &f.form.fields[2].kind else {
            panic!("not a select");
        };
        assert_eq!(options[1].label, "Lab & test");
        assert_eq!(f.form.fields[3].value.as_deref(), Some("standard"));
        // The script's and the comment's forms were not taken.
        assert!(parse_html_form(F5_PAGE, Some("fake"), None).is_none());
        assert!(parse_html_form(F5_PAGE, Some("commented"), None).is_none());
    }

    #[test]
    fn broken_html_gives_what_it_can_and_never_panics() {
        assert!(parse_html_form("", None, None).is_none());
        assert!(parse_html_form("<form", None, None).is_none());
        let f = parse_html_form(
            "<form><input name=a value=\"unterminated></form>",
            None,
            None,
        )
        .unwrap();
        assert_eq!(f.form.fields.len(), 1);
        assert_eq!(
            decode_entities("a&b &#65;&#x42;&bogus; &"),
            "a&b AB&bogus; &"
        );
        // Digits only: a sign is no number.
        assert_eq!(decode_entities("&#+65;&#x+42;"), "&#+65;&#x+42;");
        // Selects left open end at the next select and at the form's end.
        let f = parse_html_form(
            "<form><select name=a><option value=1>One<select name=b><option value=2>Two\
             </form>",
            None,
            None,
        )
        .unwrap();
        let names: Vec<&str> = f.form.fields.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
