//! Unit tests. The token strings, files and expected codes below were produced with
//! Debian's `stoken` 0.92 (`stoken export --random`, `export --new-password/--new-devid`,
//! `export --v3`, `export --sdtid --template`, `import` + `setpin`, `tokencode
//! --use-time`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use proptest::prelude::*;

/// 8 digits, 60 s, PIN mode 3, no protection; serial 642847322114.
const PLAIN: &str =
    "264284732211442037442000475043670465526065630633221661244173147144441542716774216";
/// The same token, password "secret123".
const WITH_PASSWORD: &str =
    "264284732211470442301141762145567174636215136575072555726173147144441542716756173";
/// The same token, bound to device ID 0123456789abcdef0123456789abcdef.
const WITH_DEVID: &str =
    "264284732211451002626711415354527111264012021353643234145173147144441546643114077";
/// The same token as an Android URI, bound to the Android class GUID, password "pw".
const ANDROID: &str = "http://127.0.0.1/securid/ctf?ctfData=264284732211474665337727157265124071615121607006464603727173147144441543072636641";
/// The same token as v3, password "v3pass", device ID "MYDEVICE-1234".
const V3: &str = "http://127.0.0.1/securid/ctf?ctfData=AwEBeBOE504a5%2B1pvMtItqzEyvAg8Zzqi3WOBbsmNWCv7wgb7VVATy5dt9P2zZufmWGC2WIKpg6VLLrGcERYZ1tSRYP8cRz6LwoIymZwTYpNTUZBfv1c2GJa4qtBpTwuCThEq9Izljb8XrMbDGj1YgSOj6%2FU5ih5HwWvImnmGTZOtBEq%2B2rcpVh94d5m6%2Fcgt8tQc4YORRB86TonbsTOcOZCUOAmQFiSEl1eIieHaiRbeAZNwcqexzwi10hGDIc5vTeEHsA4dxH83pexBOvim4w%2BwmRR7vOvb3DOvpu8gKy3cSG3Xen%2B8gvkJixpSbS6DZ%2BuNh6bfoQxn6HJVy1u1xXpX3goZVpEhuMAx0s4jdPUlzCXdzJ5EU1I2sUAi58hWv8t";
/// The same seed as an sdtid with 6 digits, 30 s, PIN mode 1, no password.
const SDTID_6_30: &str = include_str!("testdata/six30.sdtid");
/// As above, password "Tr0ub&dor<3".
const SDTID_PASSWORD: &str = include_str!("testdata/pw.sdtid");
/// An rcfile written by `stoken import --new-password=rcpass` + `setpin --new-pin=24680`.
const RC_ENCRYPTED_PIN: &str = "version 1\n\
token 264284732211421712522505760035743115714607035705256141026173147144441542716715163\n\
pin 22c40fc6d5cdd030792daa4d1fa965d4830985388a71b130e2c8f74e7ce804aa\n";
/// An rcfile without password, PIN 1357 in clear.
const RC_CLEAR_PIN: &str = "version 1\n\
token 264284732211442037442000475043670465526065630633221661244173147144441542716774216\n\
pin 1357\n";

const SEED: [u8; 16] = [
    0x89, 0x45, 0x25, 0x0e, 0x95, 0xde, 0x67, 0xec, 0x65, 0x82, 0x72, 0xea, 0xb5, 0x2e, 0xbb, 0xb2,
];

/// (time, code with PIN 0000, code with PIN 1234) for the 8-digit 60 s token.
const CODES_8_60: [(u64, &str, &str); 3] = [
    (1_409_757_465, "09236576", "09237700"),
    (1_410_710_132, "51450666", "51451890"),
    (1_700_000_000, "03660727", "03661951"),
];

/// (time, code) for the 6-digit 30 s sdtid token.
const CODES_6_30: [(u64, &str); 4] = [
    (1_409_757_465, "005985"),
    (1_410_710_132, "108051"),
    (1_700_000_000, "734985"),
    (1_700_000_030, "538505"),
];

fn check_8_60(token: &SecurIdToken) {
    assert_eq!(token.serial().as_deref(), Some("642847322114"));
    assert_eq!(token.digits(), Some(8));
    assert_eq!(token.interval(), Some(60));
    assert_eq!(token.pin_mode(), Some(PinMode::Mixed));
    for (t, plain, pinned) in CODES_8_60 {
        assert_eq!(token.code(t, Some("0000")).unwrap(), plain, "t={t}");
        assert_eq!(token.code(t, Some("1234")).unwrap(), pinned, "t={t}");
    }
}

#[test]
fn numeric_token_without_protection() {
    let token = SecurIdToken::import(PLAIN).unwrap();
    assert_eq!(
        token.format(),
        TokenFormat::Numeric {
            version: 2,
            smartphone_uri: false
        }
    );
    assert!(!token.needs_password() && !token.needs_devid() && token.is_unlocked());
    assert!(token.needs_pin());
    assert!(matches!(
        token.code(0, None),
        Err(SecurIdError::PinRequired)
    ));
    check_8_60(&token);
    assert_eq!(token.seed, Some(SEED));
}

#[test]
fn numeric_token_with_dashes_and_in_uris() {
    let dashed: String = PLAIN
        .as_bytes()
        .chunks(5)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("-");
    for form in [
        dashed.clone(),
        format!("com.rsa.securid.iphone://ctf?ctfData={PLAIN}"),
        format!("com.rsa.securid://ctf?ctfData={PLAIN}"),
        format!("http://127.0.0.1/securid/ctf?ctfData={PLAIN}"),
        format!("Click here: http://example/ctf?CTFDATA=3D{PLAIN}&x=1"),
        format!("  {PLAIN}\n"),
        format!("some header\nanother line\n{PLAIN}\n"),
    ] {
        let token = SecurIdToken::import(&form).unwrap_or_else(|e| panic!("{form}: {e}"));
        check_8_60(&token);
    }
    let iphone =
        SecurIdToken::import(&format!("com.rsa.securid.iphone://ctf?ctfData={PLAIN}")).unwrap();
    assert_eq!(
        iphone.format(),
        TokenFormat::Numeric {
            version: 2,
            smartphone_uri: true
        }
    );
}

#[test]
fn numeric_token_with_password() {
    let mut token = SecurIdToken::import(WITH_PASSWORD).unwrap();
    assert!(token.needs_password() && !token.needs_devid() && !token.is_unlocked());
    assert_eq!(token.serial().as_deref(), Some("642847322114"));
    assert!(matches!(
        token.code(0, Some("1234")),
        Err(SecurIdError::Locked)
    ));
    assert!(matches!(
        token.decrypt(None, None),
        Err(SecurIdError::PasswordRequired)
    ));
    assert!(matches!(
        token.decrypt(Some(""), None),
        Err(SecurIdError::PasswordRequired)
    ));
    assert!(matches!(
        token.decrypt(Some("secret124"), None),
        Err(SecurIdError::WrongPassword)
    ));
    assert!(matches!(
        token.decrypt(Some(&"x".repeat(41)), None),
        Err(SecurIdError::PasswordTooLong)
    ));
    assert!(!token.is_unlocked());
    token.decrypt(Some("secret123"), Some("ignored")).unwrap();
    check_8_60(&token);
}

#[test]
fn numeric_token_with_devid() {
    let mut token = SecurIdToken::import(WITH_DEVID).unwrap();
    assert!(!token.needs_password() && token.needs_devid());
    assert!(matches!(
        token.decrypt(None, None),
        Err(SecurIdError::DevidRequired)
    ));
    assert!(matches!(
        token.decrypt(None, Some("0123456789abcdef0123456789abcdee")),
        Err(SecurIdError::WrongDevid)
    ));
    assert!(token.devid_matches("0123456789ABCDEF0123456789ABCDEF"));
    assert!(!token.devid_matches("0000"));
    assert_eq!(token.find_class_guid(), None);
    // Only the first 32 characters are looked at, and of those only hex digits count.
    assert!(matches!(
        token.decrypt(None, Some("01-23-45-67-89-AB-CD-EF-01234567-89abcdef")),
        Err(SecurIdError::WrongDevid)
    ));
    token
        .decrypt(Some("unused"), Some("0123456789ABCDEF0123456789abcdef-xyz"))
        .unwrap();
    assert_eq!(token.pin_mode_raw(), Some(3));
    check_8_60(&token);
}

#[test]
fn android_uri_with_class_guid_and_password() {
    let mut token = SecurIdToken::import(ANDROID).unwrap();
    assert!(token.needs_password() && token.needs_devid());
    let guid = token.find_class_guid().unwrap();
    assert_eq!(guid.tag, "android");
    assert!(matches!(
        token.decrypt(Some("pw"), None),
        Err(SecurIdError::DevidRequired)
    ));
    assert!(matches!(
        token.decrypt(None, Some(guid.guid)),
        Err(SecurIdError::PasswordRequired)
    ));
    assert!(matches!(
        token.decrypt(Some("pw"), Some(CLASS_GUIDS[0].guid)),
        Err(SecurIdError::WrongDevid)
    ));
    assert!(matches!(
        token.decrypt(Some("pW"), Some(guid.guid)),
        Err(SecurIdError::WrongPassword)
    ));
    token.decrypt(Some("pw"), Some(guid.guid)).unwrap();
    check_8_60(&token);
}

#[test]
fn v3_token() {
    let mut token = SecurIdToken::import(V3).unwrap();
    assert_eq!(token.format(), TokenFormat::V3);
    assert!(token.needs_password() && token.needs_devid());
    // v3 keeps everything but the protection bits encrypted.
    assert_eq!(token.serial(), None);
    assert_eq!(token.digits(), None);
    assert_eq!(token.interval(), None);
    assert_eq!(token.expires_unix(), None);
    assert!(!token.needs_pin());
    assert!(token.devid_matches("mydevice1234"));
    assert!(!token.devid_matches("mydevice1235"));
    assert!(matches!(
        token.decrypt(Some("v3pass"), Some("MYDEVICE-1235")),
        Err(SecurIdError::WrongDevid)
    ));
    assert!(matches!(
        token.decrypt(Some("v3pasS"), Some("MYDEVICE-1234")),
        Err(SecurIdError::WrongPassword)
    ));
    token
        .decrypt(Some("v3pass"), Some("my device 1234"))
        .unwrap();
    check_8_60(&token);
    // v3 keeps only "PIN added or not": mode 3 comes back as 2.
    assert_eq!(token.pin_mode_raw(), Some(2));
    assert_eq!(token.code(1_700_000_000, Some("5678")).unwrap(), "03665395");

    // The bare string (which stoken only takes in an rcfile), unescaped or with line
    // breaks (which stoken refuses), decodes too.
    let bare = V3.split("ctfData=").nth(1).unwrap();
    let unescaped = bare.replace("%2B", "+").replace("%2F", "/");
    let wrapped: String = unescaped
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    for form in [bare.to_string(), unescaped, wrapped] {
        let mut t = SecurIdToken::import(&form).unwrap();
        t.decrypt(Some("v3pass"), Some("MYDEVICE1234")).unwrap();
        assert_eq!(t.code(1_700_000_000, Some("5678")).unwrap(), "03665395");
    }
}

#[test]
fn v3_damage_is_detected() {
    let bare = V3.split("ctfData=").nth(1).unwrap();
    let unescaped = bare.replace("%2B", "+").replace("%2F", "/");
    // Flip one base64 character in the encrypted payload: the MAC catches it.
    let mut chars: Vec<char> = unescaped.chars().collect();
    let i = 200;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let damaged: String = chars.into_iter().collect();
    let mut t = SecurIdToken::import(&damaged).unwrap();
    assert!(matches!(
        t.decrypt(Some("v3pass"), Some("MYDEVICE1234")),
        Err(SecurIdError::V3Corrupt("MAC"))
    ));
    assert!(matches!(
        SecurIdToken::import(&format!("ctfData={}", &bare[..300])),
        Err(SecurIdError::BadV3(_))
    ));
    assert_eq!(
        SecurIdToken::import(&bare[..300]).unwrap_err(),
        SecurIdError::UnknownFormat
    );
    assert!(matches!(
        SecurIdToken::import(&format!("{bare}AAAA")),
        Err(SecurIdError::BadV3(_))
    ));
    assert!(matches!(
        SecurIdToken::import(&format!("{bare}%2")),
        Err(SecurIdError::BadV3(_))
    ));
    assert!(matches!(
        SecurIdToken::import(&format!("{bare}%zz")),
        Err(SecurIdError::BadV3(_))
    ));
    // "Ag" instead of "Aw": version byte 2.
    assert_eq!(
        SecurIdToken::import(&format!("Ag{}", &unescaped[2..])).unwrap_err(),
        SecurIdError::BadV3("version byte is 2, expected 3".into())
    );
}

#[test]
fn sdtid_six_digits_thirty_seconds() {
    let token = SecurIdToken::import(SDTID_6_30).unwrap();
    assert_eq!(token.format(), TokenFormat::Sdtid);
    assert!(!token.needs_password() && !token.needs_devid() && token.is_unlocked());
    assert_eq!(token.serial().as_deref(), Some("642847322114"));
    assert_eq!(token.digits(), Some(6));
    assert_eq!(token.interval(), Some(30));
    assert_eq!(token.pin_mode(), Some(PinMode::Prepend));
    assert_eq!(token.pin_mode_raw(), Some(1));
    assert!(!token.needs_pin());
    // 2031/05/06 is the last day: stoken shows 2031/05/07 00:00 UTC.
    assert_eq!(token.expires_unix(), Some(1_935_878_400));
    for (t, code) in CODES_6_30 {
        // The PIN argument is ignored when the token does not mix one in.
        assert_eq!(token.code(t, Some("9999")).unwrap(), code, "t={t}");
        assert_eq!(
            token.passcode(t, Some("4321")).unwrap(),
            format!("4321{code}")
        );
    }
    assert_eq!(token.seed, Some(SEED));
    // Exported as a v2 string it gives the same codes (stoken export --file=...).
    let v2 = token.export_v2(None, None, false).unwrap();
    let again = SecurIdToken::import(&v2).unwrap();
    assert_eq!(again.code(1_700_000_030, None).unwrap(), "538505");
}

#[test]
fn sdtid_with_password() {
    let mut token = SecurIdToken::import(SDTID_PASSWORD).unwrap();
    assert!(token.needs_password() && !token.needs_devid() && !token.is_unlocked());
    assert!(matches!(
        token.decrypt(None, None),
        Err(SecurIdError::PasswordRequired)
    ));
    assert!(matches!(
        token.decrypt(Some("Tr0ub&dor<4"), None),
        Err(SecurIdError::WrongPassword)
    ));
    token.decrypt(Some("Tr0ub&dor<3"), None).unwrap();
    assert_eq!(token.code(1_700_000_000, None).unwrap(), "734985");
}

#[test]
fn sdtid_damage_and_malformed_xml() {
    // Change a hashed token field: only the token MAC fails.
    let altered = SDTID_6_30.replace("<UserLogin> </UserLogin>", "<UserLogin>x</UserLogin>");
    assert_eq!(
        SecurIdToken::import(&altered).unwrap_err(),
        SecurIdError::SdtidMac("token")
    );
    let altered = SDTID_6_30.replace("<NumTokens>0</NumTokens>", "<NumTokens>1</NumTokens>");
    assert_eq!(
        SecurIdToken::import(&altered).unwrap_err(),
        SecurIdError::SdtidMac("header")
    );
    // Two tokens.
    let tkn_start = SDTID_6_30.find("<TKN>").unwrap();
    let tkn_end = SDTID_6_30.find("</TKN>").unwrap() + "</TKN>".len();
    let twice = format!(
        "{}{}{}",
        &SDTID_6_30[..tkn_end],
        &SDTID_6_30[tkn_start..tkn_end],
        &SDTID_6_30[tkn_end..]
    );
    assert_eq!(
        SecurIdToken::import(&twice).unwrap_err(),
        SecurIdError::SdtidMultipleTokens
    );
    // Missing pieces.
    let no_trailer = SDTID_6_30.replace("TKNTrailer>", "Other>");
    assert_eq!(
        SecurIdToken::import(&no_trailer).unwrap_err(),
        SecurIdError::SdtidMissing("TKNTrailer".into())
    );
    let no_secret = SDTID_6_30.replace("Secret>", "Sekret>");
    assert!(matches!(
        SecurIdToken::import(&no_secret),
        Err(SecurIdError::SdtidMissing(_))
    ));
    let bad_digits = SDTID_6_30.replace("<DefDigits>6<", "<DefDigits>six<");
    assert!(matches!(
        SecurIdToken::import(&bad_digits),
        Err(SecurIdError::SdtidValue { node: "Digits", .. })
    ));
    let bad_death = SDTID_6_30.replace("2031/05/06", "soon");
    assert!(matches!(
        SecurIdToken::import(&bad_death),
        Err(SecurIdError::SdtidValue { node: "Death", .. })
    ));
    // Truncated XML.
    let truncated = &SDTID_6_30[..SDTID_6_30.len() / 2];
    assert!(matches!(
        SecurIdToken::import(truncated),
        Err(SecurIdError::Xml(_))
    ));
    let bad_root = SDTID_6_30.replace("TKNBatch>", "Batch>");
    assert_eq!(
        SecurIdToken::import(&bad_root).unwrap_err(),
        SecurIdError::SdtidMissing("TKNBatch".into())
    );
}

#[test]
fn sdtid_whitespace_and_entities_are_hashed_like_libxml() {
    // CRLF line ends are normalised before hashing; an entity in a hashed value decodes.
    let crlf = SDTID_6_30.replace('\n', "\r\n");
    assert_eq!(
        SecurIdToken::import(&crlf)
            .unwrap()
            .code(1_700_000_000, None)
            .unwrap(),
        "734985"
    );
    let with_comment = SDTID_6_30.replace("<TKN>", "<TKN><!-- note -->");
    assert!(SecurIdToken::import(&with_comment).is_ok());
}

#[test]
fn rcfile_with_encrypted_pin() {
    let mut token = SecurIdToken::import(RC_ENCRYPTED_PIN).unwrap();
    assert!(token.from_rcfile() && token.has_saved_pin() && token.needs_password());
    assert!(!token.needs_pin());
    assert!(matches!(
        token.decrypt(Some("rcpasS"), None),
        Err(SecurIdError::WrongPassword)
    ));
    token.decrypt(Some("rcpass"), None).unwrap();
    assert_eq!(token.code(1_700_000_000, None).unwrap(), "03684307");
    // An explicit PIN overrides the saved one.
    assert_eq!(token.code(1_700_000_000, Some("1234")).unwrap(), "03661951");
    assert_eq!(
        decrypt_saved_pin(
            "22c40fc6d5cdd030792daa4d1fa965d4830985388a71b130e2c8f74e7ce804aa",
            "rcpass"
        )
        .unwrap(),
        "24680"
    );

    let broken = RC_ENCRYPTED_PIN.replace("04aa\n", "04ab\n");
    let mut token = SecurIdToken::import(&broken).unwrap();
    assert!(matches!(
        token.decrypt(Some("rcpass"), None),
        Err(SecurIdError::SavedPin(_))
    ));
    assert!(!token.is_unlocked());
}

#[test]
fn rcfile_with_clear_pin() {
    let token = SecurIdToken::import(RC_CLEAR_PIN).unwrap();
    assert!(token.from_rcfile() && token.has_saved_pin() && token.is_unlocked());
    assert_eq!(token.code(1_700_000_000, None).unwrap(), "03661074");
    let bad = RC_CLEAR_PIN.replace("pin 1357", "pin 13a7");
    assert!(matches!(
        SecurIdToken::import(&bad),
        Err(SecurIdError::RcfileContent(_))
    ));
    let bad = RC_CLEAR_PIN.replace("version 1", "version 2");
    assert!(matches!(
        SecurIdToken::import(&bad),
        Err(SecurIdError::RcfileContent(_))
    ));
    let bad = RC_CLEAR_PIN.replace("token 2", "token x2");
    assert!(matches!(
        SecurIdToken::import(&bad),
        Err(SecurIdError::RcfileContent(_))
    ));
    let bad = "version 1\ntoken\n";
    assert!(matches!(
        SecurIdToken::import(bad),
        Err(SecurIdError::Rcfile { line: 2, .. })
    ));
}

#[test]
fn saved_pin_is_mixed_even_without_pin_mode() {
    // stoken (CLI and library) mixes an rcfile PIN into the code of any token.
    let sdtid = SecurIdToken::import(SDTID_6_30).unwrap();
    let v2 = sdtid.export_v2(None, None, false).unwrap();
    let rc = format!("version 1\ntoken {v2}\npin 1111\n");
    let token = SecurIdToken::import(&rc).unwrap();
    assert_eq!(token.pin_mode(), Some(PinMode::Prepend));
    assert_eq!(token.code(1_700_000_000, None).unwrap(), "735096");
}

#[test]
fn export_round_trips() {
    let token = SecurIdToken::import(PLAIN).unwrap();
    assert_eq!(token.export_v2(None, None, false).unwrap(), PLAIN);
    assert_eq!(token.export_v2(Some(""), Some(""), false).unwrap(), PLAIN);
    let locked = token
        .export_v2(
            Some("pw"),
            Some("a01c4380-fc01-4df0-b113-7fb98ec74694"),
            true,
        )
        .unwrap();
    let mut again =
        SecurIdToken::import(&format!("http://127.0.0.1/securid/ctf?ctfData={locked}")).unwrap();
    assert_eq!(again.find_class_guid().map(|g| g.tag), Some("android"));
    again
        .decrypt(Some("pw"), Some("A01C4380FC014DF0B1137FB98EC74694"))
        .unwrap();
    check_8_60(&again);
    let pw = SecurIdToken::import(WITH_PASSWORD).unwrap();
    assert!(matches!(
        pw.export_v2(None, None, false),
        Err(SecurIdError::Locked)
    ));
}

#[test]
fn from_params_builds_tokens() {
    let params = TokenParams {
        serial: "642847322114".into(),
        seed: SEED,
        digits: 8,
        interval: 60,
        pin_mode: 3,
        expiry_days: 10_000,
    };
    let token = SecurIdToken::from_params(&params).unwrap();
    check_8_60(&token);
    assert!(!format!("{params:?}").contains("137")); // seed byte 0x89 = 137
    let bad = TokenParams {
        interval: 45,
        ..params.clone()
    };
    assert!(matches!(
        SecurIdToken::from_params(&bad),
        Err(SecurIdError::Export(_))
    ));
    let bad = TokenParams {
        serial: "12345".into(),
        ..params.clone()
    };
    assert!(matches!(
        SecurIdToken::from_params(&bad),
        Err(SecurIdError::Export(_))
    ));
    let bad = TokenParams {
        digits: 9,
        ..params
    };
    assert!(matches!(
        SecurIdToken::from_params(&bad),
        Err(SecurIdError::Export(_))
    ));
}

#[test]
fn pin_argument_rules() {
    let token = SecurIdToken::import(PLAIN).unwrap();
    assert!(matches!(
        token.code(0, Some("123")),
        Err(SecurIdError::PinLength(3))
    ));
    assert!(matches!(
        token.code(0, Some("123456789")),
        Err(SecurIdError::PinLength(9))
    ));
    assert!(matches!(
        token.code(0, Some("12a4")),
        Err(SecurIdError::PinNotNumeric)
    ));
    assert!(matches!(
        token.code(0, Some("")),
        Err(SecurIdError::PinRequired)
    ));
    // An 8-digit PIN touches every digit.
    assert_eq!(
        token.code(1_700_000_000, Some("11111111")).unwrap(),
        "14771838"
    );
}

#[test]
fn expiry() {
    let token = SecurIdToken::import(PLAIN).unwrap();
    let exp = token.expires_unix().unwrap();
    assert_eq!((exp - SECURID_EPOCH) % 86_400, 0);
    let exp_u = u64::try_from(exp).unwrap();
    assert_eq!(token.days_until_expiry(exp_u), Some(0));
    assert!(!token.is_expired(exp_u + 86_400));
    assert!(token.is_expired(exp_u + 43_200 + 86_400 + 1));
    assert_eq!(token.days_until_expiry(exp_u - 10 * 86_400), Some(10));
}

#[test]
fn numeric_errors() {
    assert_eq!(
        SecurIdToken::import(&PLAIN[..79]).unwrap_err(),
        SecurIdError::BadDigitCount { found: 79 }
    );
    assert_eq!(
        SecurIdToken::import(&format!("{PLAIN}12345")).unwrap_err(),
        SecurIdError::BadDigitCount { found: 86 }
    );
    let mut bad = PLAIN.as_bytes().to_vec();
    bad[30] = if bad[30] == b'3' { b'4' } else { b'3' };
    let bad = String::from_utf8(bad).unwrap();
    assert_eq!(
        SecurIdToken::import(&bad).unwrap_err(),
        SecurIdError::BadChecksum
    );
    for unknown in ["", "hello", "B123", "<xml>", "ctfData=x", "-2"] {
        assert_eq!(
            SecurIdToken::import(unknown).unwrap_err(),
            SecurIdError::UnknownFormat,
            "{unknown}"
        );
    }
    assert_eq!(
        SecurIdToken::import("3").unwrap_err(),
        SecurIdError::UnknownFormat
    );
}

#[test]
fn secrets_stay_out_of_debug_and_errors() {
    let mut token = SecurIdToken::import(RC_ENCRYPTED_PIN).unwrap();
    token.decrypt(Some("rcpass"), None).unwrap();
    let debug = format!("{token:?}");
    for secret in ["24680", "rcpass", "89", "2642847322114214", "22c40f"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("642847322114"));
    let err = SecurIdToken::import(&PLAIN[..80]).unwrap_err().to_string();
    assert!(!err.contains(&PLAIN[..20]));
    let err = token.code(0, Some("12x45")).unwrap_err().to_string();
    assert!(!err.contains("12x45"));
}

proptest! {
    #[test]
    fn import_never_panics(s in ".{0,400}") {
        let _ = SecurIdToken::import(&s);
    }

    #[test]
    fn import_never_panics_on_token_like_input(
        prefix in prop::sample::select(vec!["", "ctfData=", "ctfData=3D", "<?xml ", "version 1\ntoken ", "A", "2"]),
        body in "[0-9A-Za-z%+/=<>&;\\- \n]{0,500}",
    ) {
        let _ = SecurIdToken::import(&format!("{prefix}{body}"));
    }

    #[test]
    fn damaged_numeric_tokens_error_or_decode(pos in 0usize..81, digit in 0u8..10) {
        let mut bytes = PLAIN.as_bytes().to_vec();
        bytes[pos] = b'0' + digit;
        let s = String::from_utf8(bytes).unwrap();
        if let Ok(mut t) = SecurIdToken::import(&s) {
            let _ = t.decrypt(Some("x"), Some("y"));
            let _ = t.code(1_700_000_000, Some("1234"));
        }
    }

    #[test]
    fn mangled_sdtid_never_panics(cut in 0usize..2557, junk in "[<>/a-zA-Z0-9 =&;]{0,20}") {
        let cut = cut.min(SDTID_6_30.len());
        let s = format!("{}{}{}", &SDTID_6_30[..cut], junk, &SDTID_6_30[cut..]);
        if let Ok(mut t) = SecurIdToken::import(&s) {
            let _ = t.decrypt(Some("x"), None);
            let _ = t.code(1_700_000_000, None);
        }
    }

    #[test]
    fn code_any_time(t in any::<u64>()) {
        let token = SecurIdToken::import(SDTID_6_30).unwrap();
        let code = token.code(t, None).unwrap();
        prop_assert_eq!(code.len(), 6);
    }
}
