//! Every token format `oc-otp` reads, on the same input.
//!
//! - `OathSecret::parse` as TOTP and as HOTP. A secret that parses writes itself back
//!   (`render`) as text that parses to the same token: same kind, algorithm, digits,
//!   period, counter and codes; the written text is a fixed point (parse and render again
//!   gives the same text and an equal secret). The first write-back may normalise the
//!   text (a counter written as `+5` or `0x5` comes back as `5`, a PSKC file gains a
//!   `<Counter>`), so the first parse is compared by value, not as a whole.
//! - `SecurIdToken::import`: an unlocked token has a 12-digit serial, 1 to 8 digits, a 30 or
//!   60 s interval and codes of its digit count; exported as a v2 string it imports again
//!   with the same parameters and codes.
//! - `UsersFile::parse_lenient` keeps the text verbatim, lists problems in line order within
//!   the file, and `parse` fails exactly with the first of them. For the first line of each
//!   user, `verify` reports the line as malformed if it is, and otherwise, given the code the
//!   line's own secret makes now, accepts it (or calls it a replay of LASTOTP); the file
//!   rewritten with `with_updated` changes only that line, which then parses cleanly with
//!   the new counter, code and time, and the same code is then a replay.
//! - The YubiKey OATH answers (`parse_select`, `parse_list`, `parse_calculate`,
//!   `parse_calculate_all`): codes are 6 to 8 digits, listed credentials encode back to the
//!   same list; and `OathExchange` driven with the input as the card's answers never panics.
//!
//! Input layout: the text formats read the input as lossy UTF-8. The YubiKey parsers take
//! the raw bytes; the exchange reads them as answers, each a length byte and that many
//! bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_otp::oath::{hotp, Algorithm};
use oc_otp::secret::{OathKind, OathSecret};
use oc_otp::securid::{PinMode, SecurIdToken};
use oc_otp::usersfile::{
    format_timestamp, LineProblem, Policy, TokenKind, UsersFile, UsersFileError, Verdict,
};
use oc_otp::yubikey::{
    parse_calculate, parse_calculate_all, parse_list, parse_select, Action, CalculatedEntry, Goal,
    OathExchange,
};

/// Times the codes are compared at.
const TIMES: [u64; 3] = [59, 1_111_111_109, 1_700_000_000];
const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for kind in [OathKind::Totp, OathKind::Hotp] {
        if let Ok(secret) = OathSecret::parse(&text, kind) {
            oath_round_trip(&secret);
        }
    }
    securid(&text);
    users_file(&text);
    yubikey(data);
});

fn same_token(a: &OathSecret, b: &OathSecret, what: &str) {
    assert_eq!(a.kind(), b.kind(), "{what}: kind");
    assert_eq!(a.algorithm(), b.algorithm(), "{what}: algorithm");
    assert_eq!(a.digits(), b.digits(), "{what}: digits");
    assert_eq!(a.period(), b.period(), "{what}: period");
    assert_eq!(a.counter(), b.counter(), "{what}: counter");
    for t in TIMES {
        assert_eq!(a.totp(t), b.totp(t), "{what}: TOTP code at {t}");
    }
    let (mut a, mut b) = (a.clone(), b.clone());
    assert_eq!(a.next_hotp(), b.next_hotp(), "{what}: HOTP code");
}

fn oath_round_trip(secret: &OathSecret) {
    let kind = secret.kind();
    let text = secret.render();
    let again = OathSecret::parse(&text, kind)
        .unwrap_or_else(|e| panic!("rendered {} secret does not parse: {e}", kind.name()));
    same_token(secret, &again, "render then parse");
    let text2 = again.render();
    assert_eq!(text2, text, "render is not stable");
    let third = OathSecret::parse(&text2, kind).expect("stable text parses");
    assert_eq!(third, again, "a rendered secret parses to another secret");
    // After a code, an HOTP counter moves on and is written back.
    if kind == OathKind::Hotp {
        let mut used = again.clone();
        let _ = used.next_hotp();
        let moved = OathSecret::parse(&used.render(), kind).expect("advanced secret parses");
        assert_eq!(
            moved.counter(),
            again.counter().saturating_add(1),
            "HOTP counter not written back"
        );
    }
}

fn securid(text: &str) {
    let Ok(mut token) = SecurIdToken::import(text) else {
        return;
    };
    let _ = format!("{token:?}");
    let _ = token.find_class_guid();
    if !token.is_unlocked() {
        // `import` decrypts whatever needs no password and no device ID.
        assert!(token.needs_password() || token.needs_devid());
        let _ = token.decrypt(Some("wrong password"), Some("0123456789abcdef"));
        if !token.is_unlocked() {
            return;
        }
    }
    let serial = token.serial().expect("an unlocked token has a serial");
    let digits = token.digits().expect("digits");
    let interval = token.interval().expect("interval");
    assert!(serial.len() == 12, "serial {serial:?}");
    assert!((1..=8).contains(&digits), "{digits} digits");
    assert!(interval == 30 || interval == 60);
    let pin = Some("1234");
    for t in TIMES {
        let code = token.code(t, pin).expect("an unlocked token gives codes");
        assert_eq!(code.len(), usize::from(digits));
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        let _ = token.passcode(t, pin);
    }
    let _ = token.days_until_expiry(NOW);
    let Ok(exported) = token.export_v2(None, None, false) else {
        return;
    };
    let again = SecurIdToken::import(&exported)
        .unwrap_or_else(|e| panic!("exported token does not import: {e}"));
    assert!(again.is_unlocked());
    assert_eq!(again.serial().as_deref(), Some(serial.as_str()));
    assert_eq!(again.digits(), Some(digits));
    assert_eq!(again.interval(), Some(interval));
    assert_eq!(again.pin_mode(), token.pin_mode());
    // A PIN saved in an stokenrc is mixed in but not exported.
    if token.pin_mode() == Some(PinMode::Mixed) || !token.has_saved_pin() {
        for t in TIMES {
            assert_eq!(
                again.code(t, pin).ok(),
                token.code(t, pin).ok(),
                "code at {t}"
            );
        }
    }
}

/// The fields of a users-file line as liboath splits them.
fn fields(raw: &str) -> Vec<&str> {
    let content = raw.split('\0').next().unwrap_or_default();
    content
        .split([' ', '\t', '\r', '\n'])
        .filter(|f| !f.is_empty())
        .collect()
}

fn decode_hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("a clean line has hex"))
        .collect()
}

fn users_file(text: &str) {
    let file = UsersFile::parse_lenient(text);
    assert_eq!(file.render(), text, "the file is not kept verbatim");
    let raw_lines: Vec<&str> = text.split_inclusive('\n').collect();
    assert_eq!(file.line_count(), raw_lines.len());
    let mut last = 0;
    for p in file.problems() {
        let UsersFileError::Malformed { line, .. } = p else {
            panic!("parse reported {p}");
        };
        assert!(*line > last && *line <= raw_lines.len(), "{p}");
        last = *line;
    }
    match UsersFile::parse(text) {
        Ok(strict) => {
            assert!(file.problems().is_empty());
            assert_eq!(strict, file);
        }
        Err(e) => assert_eq!(Some(&e), file.problems().first()),
    }

    let policy = Policy::OCSERV;
    let entries: Vec<_> = file.entries().collect();
    for user in file.users() {
        let first = entries
            .iter()
            .find(|e| e.user == user)
            .expect("a listed user has an entry");
        let index = first.line_index;
        let verdict = file.verify(user, "000000", NOW, &policy);
        if let Some(problem) = first.problem {
            if matches!(
                problem,
                LineProblem::MissingPin | LineProblem::MissingSecret
            ) {
                continue;
            }
            let want = UsersFileError::Malformed {
                line: index + 1,
                problem: problem.clone(),
            };
            assert_eq!(verdict, Verdict::MalformedLine(want));
            continue;
        }
        // The code the line's own secret makes now.
        let line_fields = fields(raw_lines[index]);
        let key = decode_hex(line_fields[3]);
        let counter = first.counter.expect("a clean line has a counter");
        let step = match first.token.kind {
            TokenKind::Event => counter,
            TokenKind::Time { step } => NOW / step,
        };
        let code = hotp(Algorithm::Sha1, &key, step, 6);
        let verdict = file.verify(user, &code, NOW, &policy);
        let accepted = match verdict {
            Verdict::Accepted(a) => a,
            Verdict::Replayed { line_index, .. } => {
                assert_eq!(line_index, index);
                let replay = first.last_otp == Some(code.as_str());
                assert!(
                    replay || matches!(first.token.kind, TokenKind::Time { .. }),
                    "good HOTP code called a replay"
                );
                continue;
            }
            other => panic!("the line's own code gives {other:?} on line {}", index + 1),
        };
        assert_eq!(accepted.line_index, index);
        assert_eq!(accepted.user(), user);
        assert_eq!(accepted.counter, step);
        assert_eq!(accepted.drift, 0);
        assert_eq!(accepted.moving_factor, counter);
        let rewritten = file.with_updated(&accepted).expect("rewrite");
        let new = UsersFile::parse_lenient(&rewritten);
        let new_lines: Vec<&str> = rewritten.split_inclusive('\n').collect();
        assert_eq!(new_lines.len(), raw_lines.len());
        for (i, (a, b)) in raw_lines.iter().zip(&new_lines).enumerate() {
            if i != index {
                assert_eq!(a, b, "rewrite changed line {}", i + 1);
            }
        }
        let entry = new
            .entries()
            .find(|e| e.line_index == index)
            .expect("the rewritten line is an entry");
        assert_eq!(entry.problem, None, "rewritten line {:?}", new_lines[index]);
        assert_eq!(entry.user, user);
        assert_eq!(entry.counter, Some(accepted.moving_factor));
        assert_eq!(entry.last_otp, Some(code.as_str()));
        let stamp = format_timestamp(NOW, policy.utc_offset_seconds).expect("a valid time");
        assert_eq!(entry.last_used, Some(stamp.as_str()));
        assert!(
            !new.problems()
                .iter()
                .any(|p| matches!(p, UsersFileError::Malformed { line, .. } if *line == index + 1)),
            "rewritten line has a problem"
        );
        assert_eq!(
            new.verify(user, &code, NOW, &policy),
            Verdict::Replayed {
                line_index: index,
                last_used: Some(stamp),
            }
        );
    }
}

fn check_code(code: &str) {
    assert!((6..=8).contains(&code.len()), "code {code:?}");
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "code {code:?}");
}

/// A TLV as the applet writes it.
fn tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    match value.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n <= 0xff => out.extend_from_slice(&[0x81, n as u8]),
        n => {
            out.push(0x82);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(value);
}

fn yubikey(data: &[u8]) {
    if let Ok(info) = parse_select(data) {
        let _ = info.version_string();
        assert_eq!(info.locked(), info.challenge.is_some());
    }
    if let Ok(credentials) = parse_list(data) {
        let mut encoded = Vec::new();
        for c in &credentials {
            let mut value = vec![c.type_byte];
            value.extend_from_slice(&c.id);
            tlv(&mut encoded, 0x72, &value);
            let _ = (c.name(), c.kind(), c.oath_type(), c.algorithm());
            assert!(c.period() > 0);
            let _ = c.time_step(NOW);
        }
        assert_eq!(parse_list(&encoded).ok(), Some(credentials));
    }
    if let Ok(code) = parse_calculate(data) {
        check_code(&code);
    }
    if let Ok(entries) = parse_calculate_all(data) {
        for (_, entry) in entries {
            if let CalculatedEntry::Code(code) = entry {
                check_code(&code);
            }
        }
    }

    // The whole exchange, with the input as the card's answers.
    let mut exchange = OathExchange::new(None, Goal::Code { unix_time: NOW }, [7; 8]);
    let mut action = exchange.start();
    let mut answers = data;
    let mut passwords = 0;
    loop {
        action = match action {
            Ok(Action::Transmit(_) | Action::TransmitAwaitingTouch(_)) => {
                let Some((&len, rest)) = answers.split_first() else {
                    return;
                };
                let (answer, rest) = rest.split_at(usize::from(len).min(rest.len()));
                answers = rest;
                exchange.handle_response(answer)
            }
            Ok(Action::NeedPassword { .. }) if passwords < 1 => {
                passwords += 1;
                exchange.provide_password("pässword")
            }
            Ok(Action::Done(outcome)) => {
                assert!(exchange.credentials().contains(&outcome.credential));
                if let Some(code) = &outcome.code {
                    check_code(code);
                }
                return;
            }
            Ok(Action::NeedPassword { .. }) | Err(_) => return,
        };
    }
}
