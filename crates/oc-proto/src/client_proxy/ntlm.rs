//! NTLM authentication to a proxy, version 2 ([MS-NLMP]): the NEGOTIATE message, the
//! server's CHALLENGE, and the AUTHENTICATE message with the NTLMv2 response. The three
//! travel on one connection. The client's random challenge and the time come from the
//! caller.

use hmac::{Hmac, KeyInit, Mac};
use md4::{Digest, Md4};
use md5::Md5;

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
const UNICODE: u32 = 0x0000_0001;
const OEM: u32 = 0x0000_0002;
const REQUEST_TARGET: u32 = 0x0000_0004;
const NTLM: u32 = 0x0000_0200;
const ALWAYS_SIGN: u32 = 0x0000_8000;
const EXTENDED_SESSION_SECURITY: u32 = 0x0008_0000;
const NEGOTIATE_128: u32 = 0x2000_0000;
const OFFERED: u32 =
    UNICODE | OEM | REQUEST_TARGET | NTLM | ALWAYS_SIGN | EXTENDED_SESSION_SECURITY | NEGOTIATE_128;
/// MsvAvTimestamp in the target information: the server's time, to use instead of ours.
const AV_TIMESTAMP: u16 = 7;
const AV_EOL: u16 = 0;
/// Seconds from 1601-01-01 (FILETIME's epoch) to 1970-01-01.
const FILETIME_UNIX_OFFSET: u64 = 11_644_473_600;

/// The server's CHALLENGE message, as far as the answer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerChallenge {
    flags: u32,
    nonce: [u8; 8],
    target_info: Vec<u8>,
}

/// The NEGOTIATE message.
pub(crate) fn negotiate() -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&OFFERED.to_le_bytes());
    out.extend_from_slice(&[0; 16]); // empty domain and workstation fields
    out
}

/// Reads a CHALLENGE message; `None` if it is not one.
pub(crate) fn parse_challenge(message: &[u8]) -> Option<ServerChallenge> {
    if message.get(..8)? != SIGNATURE || u32_at(message, 8)? != 2 {
        return None;
    }
    let flags = u32_at(message, 20)?;
    let nonce: [u8; 8] = message.get(24..32)?.try_into().ok()?;
    let target_info = match security_buffer(message, 40) {
        Some(range) => message.get(range)?.to_vec(),
        None => Vec::new(),
    };
    Some(ServerChallenge {
        flags,
        nonce,
        target_info,
    })
}

/// The AUTHENTICATE message for `user` (`DOMAIN\user` names the domain) with `password`.
/// `client_nonce` is fresh randomness, `unix_time` the current time in seconds.
pub(crate) fn authenticate(
    challenge: &ServerChallenge,
    user: &str,
    password: &str,
    client_nonce: [u8; 8],
    unix_time: u64,
) -> Vec<u8> {
    let (domain, user) = user.split_once('\\').unwrap_or(("", user));
    let key = ntowf_v2(password, user, domain);
    let server_time = av_timestamp(&challenge.target_info);
    let timestamp = server_time.unwrap_or((unix_time + FILETIME_UNIX_OFFSET) * 10_000_000);
    let mut blob = vec![1, 1, 0, 0, 0, 0, 0, 0];
    blob.extend_from_slice(&timestamp.to_le_bytes());
    blob.extend_from_slice(&client_nonce);
    blob.extend_from_slice(&[0; 4]);
    blob.extend_from_slice(&challenge.target_info);
    blob.extend_from_slice(&[0; 4]);
    let proof = hmac_md5(&key, &[&challenge.nonce, &blob]);
    let nt_response = [proof.as_slice(), &blob].concat();
    // With the server's timestamp, [MS-NLMP] 3.1.5.1.2 sends an all-zero LMv2 response.
    let lm_response = match server_time {
        Some(_) => vec![0; 24],
        None => [
            hmac_md5(&key, &[&challenge.nonce, &client_nonce]).as_slice(),
            &client_nonce,
        ]
        .concat(),
    };
    // The names go in UTF-16 when the server chose UNICODE, else in the OEM character set
    // (taken as Latin-1; other characters become '?'). Only the one used is flagged: a
    // server that echoes both (squid's helpers) reads OEM when its flag is set.
    let mut flags = challenge.flags & OFFERED;
    if flags & UNICODE != 0 {
        flags &= !OEM;
    }
    let text = |s: &str| match flags & UNICODE {
        0 => s.chars().map(|c| u8::try_from(c).unwrap_or(b'?')).collect(),
        _ => utf16(s),
    };
    let fields = [
        lm_response,
        nt_response,
        text(domain),
        text(user),
        Vec::new(), // workstation
        Vec::new(), // session key
    ];
    let mut out = Vec::new();
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&3u32.to_le_bytes());
    let mut offset = 64u32;
    for field in &fields {
        let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        offset += u32::from(len);
    }
    out.extend_from_slice(&flags.to_le_bytes());
    for field in &fields {
        out.extend_from_slice(field);
    }
    out
}

/// NTOWFv2: HMAC-MD5 keyed with the NT hash (MD4 of the UTF-16 password) over the upper
/// case user name and the domain.
fn ntowf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let nt_hash = Md4::digest(utf16(password));
    let identity = utf16(&format!("{}{domain}", user.to_uppercase()));
    hmac_md5(&nt_hash, &[&identity])
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let Ok(mut mac) = <Hmac<Md5> as KeyInit>::new_from_slice(key) else {
        return [0; 16];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The byte range a security buffer (length, allocated length, offset) at `at` points to.
fn security_buffer(message: &[u8], at: usize) -> Option<std::ops::Range<usize>> {
    let len = usize::from(u16_at(message, at)?);
    let offset = usize::try_from(u32_at(message, at + 4)?).ok()?;
    let end = offset.checked_add(len)?;
    (end <= message.len()).then_some(offset..end)
}

/// The MsvAvTimestamp of the target information, if the server sent one.
fn av_timestamp(info: &[u8]) -> Option<u64> {
    let mut at = 0;
    while let (Some(id), Some(len)) = (u16_at(info, at), u16_at(info, at + 2)) {
        let value = info.get(at + 4..at + 4 + usize::from(len))?;
        match id {
            AV_EOL => return None,
            AV_TIMESTAMP => return Some(u64::from_le_bytes(value.try_into().ok()?)),
            _ => at += 4 + usize::from(len),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        crate::hex::encode(bytes)
    }

    /// [MS-NLMP] 4.2.2.1.2 (NTOWFv1) and 4.2.4.1.1 (NTOWFv2).
    #[test]
    fn key_derivation_vectors() {
        assert_eq!(
            hex(&Md4::digest(utf16("Password"))),
            "a4f49c406510bdcab6824ee7c30fd852"
        );
        assert_eq!(
            hex(&ntowf_v2("Password", "User", "Domain")),
            "0c868a403bfd7a93a3001ef22ef02e3f"
        );
    }

    /// [MS-NLMP] 4.2.4: the NTLMv2 and LMv2 responses for the spec's challenge, client
    /// challenge, zero time and target information (domain "Domain", server "Server").
    #[test]
    fn ntlmv2_response_vector() {
        let mut target_info = Vec::new();
        for (id, text) in [(2u16, "Domain"), (1u16, "Server")] {
            let value = utf16(text);
            target_info.extend_from_slice(&id.to_le_bytes());
            target_info.extend_from_slice(&(value.len() as u16).to_le_bytes());
            target_info.extend_from_slice(&value);
        }
        target_info.extend_from_slice(&[0; 4]);
        let challenge = ServerChallenge {
            flags: 0xe28a_8233,
            nonce: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
            target_info,
        };
        let key = ntowf_v2("Password", "User", "Domain");
        let client = [0xaa; 8];
        let lm = hmac_md5(&key, &[&challenge.nonce, &client]);
        assert_eq!(hex(&lm), "86c35097ac9cec102554764a57cccc19");
        let mut blob = vec![1, 1, 0, 0, 0, 0, 0, 0];
        blob.extend_from_slice(&[0; 8]);
        blob.extend_from_slice(&client);
        blob.extend_from_slice(&[0; 4]);
        blob.extend_from_slice(&challenge.target_info);
        blob.extend_from_slice(&[0; 4]);
        let proof = hmac_md5(&key, &[&challenge.nonce, &blob]);
        assert_eq!(hex(&proof), "68cd0ab851e51c96aabc927bebef6a1c");
    }

    #[test]
    fn messages_round_trip_their_fields() {
        let negotiate = negotiate();
        assert_eq!(negotiate.len(), 32);
        assert_eq!(u32_at(&negotiate, 12), Some(OFFERED));
        let mut message = SIGNATURE.to_vec();
        message.extend_from_slice(&2u32.to_le_bytes());
        message.extend_from_slice(&[0; 8]); // target name
                                            // Both character sets echoed back, as squid's helpers do: UNICODE wins.
        message.extend_from_slice(&(UNICODE | OEM | NTLM).to_le_bytes());
        message.extend_from_slice(&[7; 8]);
        message.extend_from_slice(&[0; 8]);
        message.extend_from_slice(&[12, 0, 12, 0, 48, 0, 0, 0]);
        message.extend_from_slice(&[7, 0, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        let challenge = parse_challenge(&message).unwrap();
        assert_eq!(
            av_timestamp(&challenge.target_info),
            Some(0x0807_0605_0403_0201)
        );
        let answer = authenticate(&challenge, "CORP\\alice", "pw", [9; 8], 1_700_000_000);
        assert_eq!(answer.get(..8), Some(SIGNATURE.as_slice()));
        assert_eq!(u32_at(&answer, 60), Some(UNICODE | NTLM));
        assert_eq!(u32_at(&answer, 8), Some(3));
        let user = security_buffer(&answer, 36).unwrap();
        assert_eq!(answer[user], utf16("alice"));
        let domain = security_buffer(&answer, 28).unwrap();
        assert_eq!(answer[domain], utf16("CORP"));
        let lm = security_buffer(&answer, 12).unwrap();
        assert_eq!(answer[lm], [0; 24], "with the server's timestamp");
        // A server that did not choose UNICODE gets the names in 8 bits.
        let oem = ServerChallenge {
            flags: OEM | NTLM,
            ..challenge
        };
        let answer = authenticate(&oem, "CORP\\alice", "pw", [9; 8], 1_700_000_000);
        let user = security_buffer(&answer, 36).unwrap();
        assert_eq!(&answer[user], b"alice");
        assert_eq!(u32_at(&answer, 60), Some(OEM | NTLM));
    }

    #[test]
    fn hostile_challenges() {
        assert_eq!(parse_challenge(b""), None);
        assert_eq!(parse_challenge(b"NTLMSSP\0\x01\0\0\0"), None);
        let mut message = SIGNATURE.to_vec();
        message.extend_from_slice(&2u32.to_le_bytes());
        message.extend_from_slice(&[0; 28]);
        message.extend_from_slice(&[0xff, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        // A target information field pointing past the end is ignored.
        assert_eq!(
            parse_challenge(&message).map(|c| c.target_info),
            Some(Vec::new())
        );
        assert_eq!(av_timestamp(&[7, 0, 200, 0, 1]), None);
    }
}
