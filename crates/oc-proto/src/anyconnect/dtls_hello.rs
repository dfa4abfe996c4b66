//! Finding the tunnel a DTLS handshake belongs to, from its first datagram.
//!
//! All sessions share one UDP port. An AnyConnect client names its tunnel by putting the
//! 32-byte id the server granted (X-DTLS-App-ID, or X-DTLS-Session-ID in legacy mode) in
//! the `session_id` of its ClientHello, so the server reads it at a fixed place: 13 bytes of
//! record header, 12 of handshake header, 2 of version and 32 of random put the length at
//! byte 59 and the id at 60 (ocserv reads it the same way).

/// Length of the ids the server hands out.
pub const DTLS_ID_LEN: usize = 32;
const SESSION_ID_LEN_AT: usize = 59;
const MIN_HELLO: usize = SESSION_ID_LEN_AT + 1 + DTLS_ID_LEN + 1;

/// The tunnel id in an epoch-0 DTLS ClientHello, or `None` for anything else.
pub fn client_hello_id(datagram: &[u8]) -> Option<&[u8]> {
    if datagram.len() < MIN_HELLO {
        return None;
    }
    let byte = |i: usize| datagram.get(i).copied();
    // Record: handshake (22), a DTLS version (0xFEFD, 0xFEFF, or Cisco's 0x0100), epoch 0.
    let version_ok = matches!((byte(1)?, byte(2)?), (0xfe, _) | (0x01, 0x00));
    if byte(0)? != 22 || !version_ok || byte(3)? != 0 || byte(4)? != 0 {
        return None;
    }
    // Handshake: ClientHello (1), first fragment.
    if byte(13)? != 1 || datagram.get(19..22)? != [0, 0, 0] {
        return None;
    }
    // A random of all zeros is a broken (or forged) hello.
    if datagram.get(27..59)?.iter().all(|b| *b == 0) {
        return None;
    }
    if usize::from(byte(SESSION_ID_LEN_AT)?) != DTLS_ID_LEN {
        return None;
    }
    datagram.get(SESSION_ID_LEN_AT + 1..SESSION_ID_LEN_AT + 1 + DTLS_ID_LEN)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hello(id: &[u8; 32]) -> Vec<u8> {
        let mut d = vec![0u8; 120];
        d[0] = 22;
        d[1] = 0xfe;
        d[2] = 0xfd;
        d[13] = 1;
        d[27] = 9;
        d[59] = 32;
        d[60..92].copy_from_slice(id);
        d
    }

    #[test]
    fn finds_the_id_and_rejects_the_rest() {
        let id = [0x5au8; 32];
        assert_eq!(client_hello_id(&hello(&id)), Some(&id[..]));
        let mut legacy = hello(&id);
        legacy[1] = 0x01;
        legacy[2] = 0x00;
        assert_eq!(client_hello_id(&legacy), Some(&id[..]));
        for (at, value) in [(0, 23u8), (3, 1), (13, 2), (21, 1), (59, 16), (1, 0x03)] {
            let mut bad = hello(&id);
            bad[at] = value;
            assert_eq!(client_hello_id(&bad), None, "byte {at} = {value}");
        }
        let mut zero_random = hello(&id);
        zero_random[27] = 0;
        assert_eq!(client_hello_id(&zero_random), None);
        assert_eq!(client_hello_id(&hello(&id)[..92]), None);
        assert_eq!(client_hello_id(b""), None);
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = client_hello_id(&data);
        }
    }
}
