//! `ocserv.conf` and per-user/group override text: `ocserv::config::parse` without and
//! with `-t` (`test_mode`), and `parse_override`.
//!
//! Every error and warning must name `fuzz.conf` (the path given) with a line number within
//! the text's line count, or 0 for the file as a whole, and a non-empty message; only
//! `-t`, which also reads the per-user/group files a config points at, may report problems
//! in other files. `-t` only adds checks: whatever fails without it fails with it too, with
//! every error still reported.
//!
//! Input layout: the whole input is the file text (lossy UTF-8). `-t` looks at the files
//! and accounts the config names, so it runs only on text without `/`: relative names then
//! stay in the working directory, and no device or FIFO can be opened.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ocserv::config::{parse, parse_override, ConfigError, Problem};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count();
    let path = Path::new("fuzz.conf");

    let normal = parse(&text, path, false);
    let normal_errors = problems(&normal.as_ref().map(|l| &l.warnings), path, lines, false);

    if !text.contains('/') {
        let strict = parse(&text, path, true);
        problems(&strict.as_ref().map(|l| &l.warnings), path, lines, true);
        if let Some(errors) = normal_errors {
            let Err(ConfigError::Invalid(strict_errors)) = &strict else {
                panic!("fails without -t but passes with it: {errors:#?}");
            };
            for e in errors {
                assert!(
                    strict_errors.contains(e),
                    "error without -t is gone with it: {e}\n{strict_errors:#?}"
                );
            }
        }
    }

    let user = parse_override(&text, path);
    problems(
        &user.as_ref().map(|(_, warnings)| warnings),
        path,
        lines,
        false,
    );
});

/// Checks every problem of a parse result; returns the errors if it failed.
fn problems<'a>(
    result: &Result<&'a Vec<Problem>, &'a ConfigError>,
    path: &Path,
    lines: usize,
    test_mode: bool,
) -> Option<&'a Vec<Problem>> {
    let (list, errors) = match result {
        Ok(warnings) => (*warnings, None),
        Err(ConfigError::Invalid(errors)) => {
            assert!(!errors.is_empty(), "a failed parse lists no problem");
            (errors, Some(errors))
        }
        Err(e) => panic!("parsing text gave an I/O error: {e}"),
    };
    for p in list {
        assert!(
            !p.message.is_empty(),
            "problem without a message at line {}",
            p.line
        );
        if p.file == path {
            assert!(p.line <= lines, "{p} names line {} of {lines}", p.line);
            assert!(p.to_string().starts_with("fuzz.conf:"), "{p}");
        } else {
            assert!(test_mode, "problem in another file without -t: {p}");
        }
    }
    errors
}
