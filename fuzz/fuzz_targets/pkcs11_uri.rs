//! PKCS#11 URIs from the command line (`-c`, `-k`): any text must parse or be refused with
//! an error, and in the text shown in messages every `pin-value=` must be followed by
//! `***` alone, whatever the URI held.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_tls::pkcs11::{redact_pin, Pkcs11Uri};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let uri = format!("pkcs11:{text}");
    let _ = Pkcs11Uri::parse(&uri);
    let shown = redact_pin(&uri);
    for (at, _) in shown.match_indices("pin-value=") {
        let after = &shown[at + "pin-value=".len()..];
        assert!(after.starts_with("***"), "{shown}");
        let rest = &after[3..];
        assert!(
            rest.is_empty() || rest.starts_with([';', '&']) || rest.starts_with("pin-value="),
            "{shown}"
        );
    }
});
