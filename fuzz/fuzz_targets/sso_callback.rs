//! The single-sign-on callback (anything on localhost:29786 may send it): any request line
//! gives a callback or an error, never a panic; a blob that parses writes back the same
//! bytes, and the replies to the browser never carry a control character from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::anyconnect::sso::{callback_reply, check_token, parse_callback, EncryptedToken};

fuzz_target!(|data: &[u8]| {
    let blob = match parse_callback(data) {
        Ok(callback) => {
            let reply = callback_reply(callback.return_url.as_deref());
            let head = String::from_utf8_lossy(&reply);
            assert_eq!(head.matches("\r\n\r\n").count(), 1);
            callback.blob
        }
        Err(_) => data.to_vec(),
    };
    if let Ok(sealed) = EncryptedToken::parse(&blob) {
        assert_eq!(EncryptedToken::parse(&sealed.to_bytes()), Ok(sealed));
    }
    if let Ok(token) = check_token(data) {
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
});
