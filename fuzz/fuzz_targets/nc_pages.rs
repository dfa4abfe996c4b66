//! Network Connect's login pages from a hostile server, through `oc_proto::nc`'s reader.
//!
//! The input is a page (any bytes, read as text): `read_page` never panics; a form it
//! returns has at most 64 fields with unique names, a realm select is the group choice only
//! if it is there, token fields are password fields; a roles page is one select. The input
//! is also a cookie list: the session cookie exists exactly when the last `DSID` is not
//! empty, and names that value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::form::FieldKind;
use oc_proto::nc::{read_page, session_cookie, NcPage, ROLES_FIELD};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match read_page(&text) {
        Ok(NcPage::Form(form)) => {
            let fields = &form.form.fields;
            assert!(fields.len() <= 64);
            for (i, f) in fields.iter().enumerate() {
                assert!(!fields[..i].iter().any(|g| g.name == f.name), "duplicate field");
            }
            if let Some(group) = &form.form.group_select {
                assert!(fields.iter().any(|f| &f.name == group));
            }
            for f in fields.iter().filter(|f| f.token) {
                assert_eq!(f.kind, FieldKind::Password);
            }
        }
        Ok(NcPage::Roles(form)) => {
            assert_eq!(form.fields.len(), 1);
            assert_eq!(form.fields[0].name, ROLES_FIELD);
            assert!(matches!(form.fields[0].kind, FieldKind::Select(_)));
        }
        Ok(NcPage::NoForm) | Err(_) => {}
    }
    let cookies: Vec<(&str, &str)> = text
        .split(';')
        .filter_map(|c| c.split_once('='))
        .collect();
    // The last DSID counts (a later Set-Cookie replaces an earlier one).
    let last = cookies.iter().rev().find(|(n, _)| *n == "DSID").map(|(_, v)| *v);
    let made = session_cookie(cookies.iter().copied());
    match last.filter(|v| !v.is_empty()) {
        Some(dsid) => assert_eq!(
            made.as_deref().and_then(|c| c.split(';').next()),
            Some(format!("DSID={dsid}").as_str())
        ),
        None => assert_eq!(made, None),
    }
});
