//! `--json-login`: a policy page as BIG-IP's "modern" logon pages are, with no `<form>` at
//! all: a script builds the form from the JSON object given to `appLoader.configure(...)`.
//!
//! openconnect (from v9.10, f5.c's `find_appLoader_configure_json_form`) looks in each
//! `<script>` for `appLoader.configure({`, takes the object from its `{` to the first
//! `\n}` followed by `);` (the object pretty-printed, closing on a line of its own), and
//! reads `logon.form`: `id`, `title` (the banner), and `fields`, each with `type`
//! (`password`, else text), `name`, `caption` (the label) and a non-empty `value`.
//! Before v9.10 it finds no form and assumes `username` and `password` fields on the
//! first page only.

use ferroconnect_interop::gateway::text;
use oc_proto::http::server::ServerResponse;
use serde_json::{json, Value};

/// The form's id, as in the HTML pages.
const FORM_ID: &str = "auth_form";

/// A field of the form: its `type` (`text` or `password`), `name` and `caption`.
pub type JsonField<'a> = (&'a str, &'a str, &'a str);

/// The page whose script builds a form titled `title` with `fields`.
pub fn script_built_page(title: &str, fields: &[JsonField<'_>]) -> ServerResponse {
    text(
        200,
        "OK",
        "text/html; charset=utf-8",
        &page_html(title, fields),
    )
}

/// The page's HTML: the JSON pretty-printed (the object closes with `\n}`, then `);`), and
/// `<` escaped inside its strings so that no value can close the script.
fn page_html(title: &str, fields: &[JsonField<'_>]) -> String {
    let fields: Vec<Value> = fields
        .iter()
        .map(|(kind, name, caption)| {
            json!({"type": kind, "name": name, "caption": caption, "value": "", "disabled": false})
        })
        .collect();
    let config = json!({
        "pageType": "logon",
        "source": "/Common/modern",
        "styles": [],
        "scripts": ["/public/include/js/modern/user-logon.js"],
        "logon": {
            "softToken": {"fieldName": "", "state": "", "newPin": ""},
            "form": {
                "id": FORM_ID,
                "title": title,
                "submitCaption": "Logon",
                "fields": fields,
            },
        },
    });
    // A Value always serialises; `{}` would still be a page (with no form) if it did not.
    let object = serde_json::to_string_pretty(&config)
        .unwrap_or_else(|_| "{\n}".into())
        .replace('<', "\\u003c");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"UTF-8\">\n\
         <title>Logon</title>\n\
         <script type=\"text/javascript\" src=\"/public/include/js/modern/loader.js\"></script>\n\
         <script type=\"text/javascript\">\n\
         function init(apmui) {{\n    var appLoader = new apmui.AppLoader();\n    \
         appLoader.configure({object});\n}}\n</script>\n</head>\n\
         <body onload=\"javascript: __run();\">\n</body>\n</html>\n"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use oc_proto::form::FieldKind;

    /// The object as upstream's f5.c cuts it out: from `appLoader.configure({` (plus the
    /// call's 20 characters) to the first `\n});` (plus 2), inside a `<script>`.
    fn as_upstream_cuts_it(page: &str) -> Value {
        let scripts: Vec<&str> = page
            .split("<script")
            .skip(1)
            .filter_map(|s| s.split_once('>').map(|(_, rest)| rest))
            .filter_map(|s| s.split_once("</script>").map(|(content, _)| content))
            .collect();
        let script = scripts
            .iter()
            .find(|s| s.contains("appLoader.configure({"))
            .expect("no script calls appLoader.configure({");
        let start = script.find("appLoader.configure({").unwrap();
        let end = start + script[start..].find("\n});").expect("no \\n}); after it");
        serde_json::from_str(&script[start + 20..end + 2]).unwrap()
    }

    #[test]
    fn the_logon_page_is_read_as_upstream_and_our_client_read_it() {
        let fields = [
            ("text", "username", "Username"),
            ("password", "password", "Password"),
        ];
        let page = page_html("Welcome </script> & more", &fields);
        assert!(!page.contains("<form"), "{page}");
        let form = &as_upstream_cuts_it(&page)["logon"]["form"];
        assert_eq!(form["id"], "auth_form");
        assert_eq!(form["title"], "Welcome </script> & more");
        let names: Vec<&str> = form["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["username", "password"]);
        assert_eq!(page.matches("</script>").count(), 2, "{page}");

        let ours = oc_proto::f5::login_form(&page);
        assert_eq!(ours.form.id, "auth_form");
        assert_eq!(
            ours.form.banner.as_deref(),
            Some("Welcome </script> & more")
        );
        assert_eq!(ours.action, None);
        let read: Vec<(&str, &str, &FieldKind)> = ours
            .form
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.label.as_str(), &f.kind))
            .collect();
        assert_eq!(
            read,
            [
                ("username", "Username:", &FieldKind::Text),
                ("password", "Password:", &FieldKind::Password)
            ]
        );
        assert!(!ours.form.fields[1].token);
    }

    #[test]
    fn the_code_page_is_a_second_factor_for_our_client() {
        let page = page_html("Enter the code", &[("password", "_F5_challenge", "Code")]);
        let form = &as_upstream_cuts_it(&page)["logon"]["form"];
        assert_eq!(form["fields"][0]["type"], "password");
        let ours = oc_proto::f5::login_form(&page);
        assert_eq!(ours.form.id, "auth_form");
        assert_eq!(ours.form.fields.len(), 1);
        assert_eq!(ours.form.fields[0].name, "_F5_challenge");
        assert!(ours.form.fields[0].token);
    }
}
