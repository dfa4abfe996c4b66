//! Fortinet's DTLS greeting. After the DTLS handshake the client names its session in a
//! `clthello` record; the gateway answers `svrhello` with `ok` (PPP follows on the channel)
//! or `fail`. Each message is a big-endian length (of the whole message, itself included)
//! and NUL-terminated words.

use crate::udp_link::ProbeAnswer;

const CLIENT_HELLO: &[u8] = b"GFtype\0clthello\0SVPNCOOKIE\0";
const SERVER_HELLO: &[u8] = b"GFtype\0svrhello\0handshake\0";
/// The most a greeting may take (one DTLS record holds it).
const MAX_HELLO: usize = 4096;

/// The client's greeting naming the session by its `SVPNCOOKIE` value.
pub fn dtls_client_hello(cookie: &str) -> Vec<u8> {
    let len = 2 + CLIENT_HELLO.len() + cookie.len() + 1;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(CLIENT_HELLO);
    out.extend_from_slice(cookie.as_bytes());
    out.push(0);
    out
}

/// The body of a greeting after its length and `words`, if `record` is one.
fn greeting_body<'a>(record: &'a [u8], words: &[u8]) -> Option<&'a [u8]> {
    let (len, rest) = record.split_first_chunk::<2>()?;
    if usize::from(u16::from_be_bytes(*len)) != record.len() || record.len() > MAX_HELLO {
        return None;
    }
    rest.strip_prefix(words)
}

/// The gateway's answer to our greeting. A record that is not a greeting (a PPP frame that
/// overtook a lost answer, say) is [`ProbeAnswer::Unrecognised`]; a status other than `ok`
/// disables DTLS for the session, as upstream does.
pub fn read_dtls_server_hello(record: &[u8]) -> ProbeAnswer {
    let Some(status) = greeting_body(record, SERVER_HELLO) else {
        return ProbeAnswer::Unrecognised;
    };
    let status = status.strip_suffix(b"\0").unwrap_or(status);
    if status == b"ok" {
        return ProbeAnswer::Accepted {
            ipv4: None,
            ipv6: None,
        };
    }
    ProbeAnswer::Refused {
        why: format!(
            "svrhello status was {:?} rather than \"ok\"",
            String::from_utf8_lossy(status)
        ),
        permanent: true,
    }
}

/// The gateway's side: the session cookie a client's greeting names.
pub fn read_dtls_client_hello(record: &[u8]) -> Option<&str> {
    let cookie = greeting_body(record, CLIENT_HELLO)?.strip_suffix(b"\0")?;
    let cookie = std::str::from_utf8(cookie).ok()?;
    (!cookie.is_empty() && !cookie.contains('\0')).then_some(cookie)
}

/// The gateway's answer: `ok` or `fail`.
pub fn dtls_server_hello(accepted: bool) -> Vec<u8> {
    let status: &[u8] = if accepted { b"ok\0" } else { b"fail\0" };
    let len = 2 + SERVER_HELLO.len() + status.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(SERVER_HELLO);
    out.extend_from_slice(status);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn client_hello_has_upstreams_layout_and_reads_back() {
        let hello = dtls_client_hello("abc");
        assert_eq!(
            hello,
            b"\x00\x21GFtype\0clthello\0SVPNCOOKIE\0abc\0".to_vec()
        );
        assert_eq!(read_dtls_client_hello(&hello), Some("abc"));
        // A wrong length, no cookie, a missing NUL or a server greeting are not hellos.
        let mut bad = hello.clone();
        bad[1] += 1;
        assert_eq!(read_dtls_client_hello(&bad), None);
        assert_eq!(read_dtls_client_hello(&dtls_client_hello("")), None);
        assert_eq!(read_dtls_client_hello(&hello[..hello.len() - 1]), None);
        assert_eq!(read_dtls_client_hello(&dtls_server_hello(true)), None);
        assert_eq!(read_dtls_client_hello(b""), None);
    }

    #[test]
    fn server_hello_ok_fail_and_other_records() {
        let ok = ProbeAnswer::Accepted {
            ipv4: None,
            ipv6: None,
        };
        assert_eq!(read_dtls_server_hello(&dtls_server_hello(true)), ok);
        // Without the final NUL too, as upstream compares.
        let mut bare = b"\x00\x1eGFtype\0svrhello\0handshake\0ok".to_vec();
        assert_eq!(read_dtls_server_hello(&bare), ok);
        bare[1] = 0;
        assert_eq!(read_dtls_server_hello(&bare), ProbeAnswer::Unrecognised);
        match read_dtls_server_hello(&dtls_server_hello(false)) {
            ProbeAnswer::Refused { why, permanent } => {
                assert!(why.contains("\"fail\""), "{why}");
                assert!(permanent);
            }
            other => panic!("{other:?}"),
        }
        // A PPP frame (Fortinet header) is not an answer.
        let frame = [0x00, 0x0a, 0x50, 0x50, 0x00, 0x04, 0xc0, 0x21, 0x09, 0x01];
        assert_eq!(read_dtls_server_hello(&frame), ProbeAnswer::Unrecognised);
        assert_eq!(read_dtls_server_hello(b""), ProbeAnswer::Unrecognised);
        assert_eq!(
            read_dtls_server_hello(&[0xff; 70000]),
            ProbeAnswer::Unrecognised
        );
    }
}
