//! The PROXY protocol header parser, fed a hostile peer's bytes the way the server reads
//! them: exactly up to each `need`, never past the header. Every step must ask for more
//! than it has, within the bounds (v1 line at most 107 bytes, v2 at most 16 + 4096); a
//! complete header must have been decided by its own bytes alone (the same answer from the
//! header without what follows), and v1 must have ended with CR LF.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::proxy_proto::{parse, Parse, MAX_V1_LEN, MAX_V2_PAYLOAD};

fuzz_target!(|data: &[u8]| {
    let mut have = 0;
    loop {
        match parse(&data[..have]) {
            Err(_) => return,
            Ok(Parse::Incomplete { need }) => {
                assert!(need > have, "need {need} with {have} bytes");
                assert!(need <= 16 + MAX_V2_PAYLOAD, "need {need}");
                if need > data.len() {
                    return;
                }
                have = need;
            }
            Ok(Parse::Complete { header, len }) => {
                assert!(len <= have);
                assert_eq!(parse(&data[..len]), Ok(Parse::Complete { header, len }));
                match header.version {
                    1 => assert!(len <= MAX_V1_LEN && data[..len].ends_with(b"\r\n")),
                    2 => assert!(len <= 16 + MAX_V2_PAYLOAD),
                    v => panic!("version {v}"),
                }
                return;
            }
        }
    }
});
