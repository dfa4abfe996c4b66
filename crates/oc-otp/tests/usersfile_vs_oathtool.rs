//! Our users-file verification accepts exactly the codes `oathtool` (OATH Toolkit, the
//! same project as liboath) computes for the line's secret. Skipped when `oathtool` is not
//! installed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use oc_otp::usersfile::{Policy, UsersFile, Verdict};

const SECRETS: [&str; 2] = [
    "3132333435363738393031323334353637383930",
    "00112233445566778899aabbccddeeff0011223344556677",
];

/// Runs oathtool (scripts/deps.sh installs it).
fn oathtool(args: &[&str]) -> String {
    let output = Command::new("oathtool")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running oathtool (apt-get install oathtool): {e}"));
    assert!(output.status.success(), "oathtool {args:?} failed");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn accepted(file: &UsersFile, user: &str, code: &str, now: u64) -> (u64, i64) {
    match file.verify(user, code, now, &Policy::OCSERV) {
        Verdict::Accepted(a) => (a.counter, a.drift),
        other => panic!("{code} at {now} not accepted: {other:?}"),
    }
}

#[test]
fn hotp_lines_accept_oathtool_codes() {
    for secret in SECRETS {
        for (type_field, digits) in [("HOTP", 6), ("HOTP/E/7", 7), ("HOTP/E/8", 8)] {
            for counter in [0u64, 1, 9, 1234, 4_294_967_296] {
                let code = oathtool(&[
                    "--hotp",
                    "-d",
                    &digits.to_string(),
                    "-c",
                    &counter.to_string(),
                    secret,
                ]);
                let file =
                    UsersFile::parse(&format!("{type_field} u - {secret} {counter}\n")).unwrap();
                assert_eq!(accepted(&file, "u", &code, 0), (counter, 0));
                // From 5 counters back it is 5 ahead.
                let behind = counter.saturating_sub(5);
                let file =
                    UsersFile::parse(&format!("{type_field} u - {secret} {behind}\n")).unwrap();
                assert_eq!(
                    accepted(&file, "u", &code, 0),
                    (counter, i64::try_from(counter - behind).unwrap())
                );
            }
        }
    }
}

#[test]
fn totp_lines_accept_oathtool_codes() {
    for secret in SECRETS {
        for (type_field, step, digits) in [
            ("HOTP/T30", 30u64, 6),
            ("HOTP/T30/8", 30, 8),
            ("HOTP/T60", 60, 6),
            ("HOTP/T60/7", 60, 7),
        ] {
            for now in [
                59u64,
                1_111_111_109,
                1_234_567_890,
                1_700_000_000,
                2_000_000_000,
            ] {
                let code = oathtool(&[
                    "--totp",
                    "-s",
                    &step.to_string(),
                    "-d",
                    &digits.to_string(),
                    "-N",
                    &format!("@{now}"),
                    secret,
                ]);
                let file = UsersFile::parse(&format!("{type_field} u - {secret}\n")).unwrap();
                assert_eq!(accepted(&file, "u", &code, now), (now / step, 0));
                // Two steps later the same code is two steps old.
                assert_eq!(
                    accepted(&file, "u", &code, now + 2 * step),
                    (now / step, -2)
                );
            }
        }
    }
}
