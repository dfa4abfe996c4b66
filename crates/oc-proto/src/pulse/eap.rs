//! EAP inside IF-T, as Pulse speaks it: each TCG authentication message carries the
//! 4-byte auth type (Juniper/1) and an EAP packet — code, id, 16-bit length, type —
//! mostly of the expanded type Juniper/1 (`fe 00 0a 4c 00 00 00 01`), whose body is AVPs
//! (RFC 5281 style: code, flags, 24-bit length with the header, the vendor when flagged,
//! data, zero padding to 4). AVP 79 (EAP-Message) nests another EAP packet: the password
//! (expanded Juniper/2 or /5) or a token (GTC).

use super::PulseError;

/// The auth type at the front of every TCG/5, /6 and /7 payload (Juniper/1).
pub const AUTH_JUNIPER_1: [u8; 4] = [0x00, 0x0a, 0x4c, 0x01];

pub const EAP_REQUEST: u8 = 1;
pub const EAP_RESPONSE: u8 = 2;
pub const EAP_SUCCESS: u8 = 3;

pub const EAP_TYPE_IDENTITY: u8 = 1;
pub const EAP_TYPE_GTC: u8 = 6;
pub const EAP_TYPE_TLS: u8 = 0x0d;
pub const EAP_TYPE_TTLS: u8 = 0x15;
pub const EAP_TYPE_EXPANDED: u8 = 0xfe;
/// The expanded type's vendor (Juniper), after the type byte.
pub const EXPANDED_VENDOR: [u8; 3] = [0x00, 0x0a, 0x4c];

/// Juniper's expanded EAP types.
pub const JUNIPER_1: u32 = 1;
pub const JUNIPER_2: u32 = 2;
pub const JUNIPER_HOST_CHECKER: u32 = 3;
pub const JUNIPER_5: u32 = 5;

/// The vendor of Juniper's AVPs.
pub const AVP_VENDOR_JUNIPER: u32 = 0x583;
const AVP_FLAG_VENDOR: u8 = 0x80;
const AVP_FLAG_MANDATORY: u8 = 0x40;

/// AVP codes.
pub const AVP_EAP_MESSAGE: u32 = 79;
pub const AVP_REALM_CHOICE: u32 = 0xd4e;
pub const AVP_REALM_ENTRY: u32 = 0xd4f;
pub const AVP_REALM: u32 = 0xd50;
pub const AVP_REGION_CHOICE: u32 = 0xd51;
pub const AVP_REGION: u32 = 0xd52;
pub const AVP_COOKIE: u32 = 0xd53;
pub const AVP_CERT_MD5: u32 = 0xd55;
pub const AVP_LIFETIME: u32 = 0xd5c;
pub const AVP_OS: u32 = 0xd5e;
pub const AVP_FAILURE: u32 = 0xd60;
pub const AVP_OLD_SESSION: u32 = 0xd65;
pub const AVP_OLD_SESSION_ID: u32 = 0xd66;
pub const AVP_OLD_SESSION_FROM: u32 = 0xd67;
pub const AVP_OLD_SESSION_TIME: u32 = 0xd68;
pub const AVP_KILL_SESSION: u32 = 0xd69;
pub const AVP_USERNAME: u32 = 0xd6d;
pub const AVP_USER_AGENT: u32 = 0xd70;
pub const AVP_PROMPTS: u32 = 0xd73;
pub const AVP_IDLE_TIMEOUT: u32 = 0xd75;
pub const AVP_BANNER: u32 = 0xd7b;
pub const AVP_BANNER_ACK: u32 = 0xd7c;
pub const AVP_USER_LABEL: u32 = 0xd80;
pub const AVP_PASS_LABEL: u32 = 0xd81;
pub const AVP_USER2_LABEL: u32 = 0xd82;
pub const AVP_PASS2_LABEL: u32 = 0xd83;

/// Juniper/2's codes (the byte after the expanded header).
pub const J2_PASSWORD: u8 = 0x01;
pub const J2_RETRY: u8 = 0x81;
pub const J2_CHANGE: u8 = 0x43;
pub const J2_FAILURE: u8 = 0xc5;
/// Juniper/5's password is exactly this long (truncated or padded with zeros).
pub const J5_PASSWORD_LEN: usize = 18;

/// One EAP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eap<'a> {
    pub code: u8,
    pub id: u8,
    /// The type byte (none in Success and Failure).
    pub kind: Option<u8>,
    /// For the expanded type: Juniper's type number.
    pub expanded: Option<u32>,
    /// What follows the type (and the expanded header).
    pub data: &'a [u8],
}

impl<'a> Eap<'a> {
    /// Reads an EAP packet that fills `bytes` exactly (its length field must say so).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PulseError> {
        let [code, id, l0, l1, rest @ ..] = bytes else {
            return Err(PulseError::BadEap("shorter than its header"));
        };
        if usize::from(u16::from_be_bytes([*l0, *l1])) != bytes.len() {
            return Err(PulseError::BadEap("its length is not its size"));
        }
        let Some((kind, data)) = rest.split_first() else {
            return Ok(Self {
                code: *code,
                id: *id,
                kind: None,
                expanded: None,
                data: &[],
            });
        };
        let mut eap = Self {
            code: *code,
            id: *id,
            kind: Some(*kind),
            expanded: None,
            data,
        };
        if *kind == EAP_TYPE_EXPANDED {
            let (head, data) = data
                .split_first_chunk::<7>()
                .ok_or(PulseError::BadEap("an expanded type without its header"))?;
            if head[..3] != EXPANDED_VENDOR {
                return Err(PulseError::BadEap("an expanded type of another vendor"));
            }
            eap.expanded = Some(u32::from_be_bytes([head[3], head[4], head[5], head[6]]));
            eap.data = data;
        }
        Ok(eap)
    }
}

/// An EAP packet of `code`, `id` and type `kind` around `data`.
pub fn eap(code: u8, id: u8, kind: u8, data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(5 + data.len()).unwrap_or(u16::MAX);
    let mut out = vec![code, id];
    out.extend_from_slice(&len.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(data);
    out
}

/// An EAP packet of Juniper's expanded type `juniper` around `data`.
pub fn expanded(code: u8, id: u8, juniper: u32, data: &[u8]) -> Vec<u8> {
    let mut body = EXPANDED_VENDOR.to_vec();
    body.extend_from_slice(&juniper.to_be_bytes());
    body.extend_from_slice(data);
    eap(code, id, EAP_TYPE_EXPANDED, &body)
}

/// One AVP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Avp<'a> {
    pub code: u32,
    pub flags: u8,
    pub vendor: Option<u32>,
    pub data: &'a [u8],
}

impl Avp<'_> {
    /// Juniper's AVP `code`.
    pub fn is_juniper(&self, code: u32) -> bool {
        self.code == code && self.vendor == Some(AVP_VENDOR_JUNIPER)
    }

    /// A 4-byte big-endian value.
    pub fn be32(&self) -> Option<u32> {
        let v = self
            .data
            .first_chunk::<4>()
            .filter(|_| self.data.len() == 4)?;
        Some(u32::from_be_bytes(*v))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.data)
            .trim_end_matches('\0')
            .to_string()
    }
}

/// The AVPs of `bytes`, in order; an AVP that runs past the end is an error.
pub fn avps(mut bytes: &[u8]) -> impl Iterator<Item = Result<Avp<'_>, PulseError>> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        let parsed = parse_avp(bytes);
        match parsed {
            Ok((avp, rest)) => {
                bytes = rest;
                Some(Ok(avp))
            }
            Err(e) => {
                bytes = &[];
                Some(Err(e))
            }
        }
    })
}

fn parse_avp(bytes: &[u8]) -> Result<(Avp<'_>, &[u8]), PulseError> {
    let (head, _) = bytes
        .split_first_chunk::<8>()
        .ok_or(PulseError::BadAvp(bytes.len()))?;
    let code = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let flags = head[4];
    let len = usize::from(head[5]) << 16 | usize::from(head[6]) << 8 | usize::from(head[7]);
    let header = if flags & AVP_FLAG_VENDOR != 0 { 12 } else { 8 };
    if len < header || len > bytes.len() {
        return Err(PulseError::BadAvp(bytes.len()));
    }
    let vendor = (header == 12).then(|| {
        bytes
            .get(8..12)
            .map_or(0, |v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
    });
    let data = bytes.get(header..len).unwrap_or_default();
    let next = (len + 3) & !3;
    let rest = bytes.get(next..).unwrap_or_default();
    Ok((
        Avp {
            code,
            flags,
            vendor,
            data,
        },
        rest,
    ))
}

/// Appends Juniper's AVP `code` with `data`, padded.
pub fn push_avp(out: &mut Vec<u8>, code: u32, data: &[u8]) {
    push(out, code, AVP_FLAG_VENDOR, Some(AVP_VENDOR_JUNIPER), data);
}

/// Appends AVP 79 (EAP-Message) around `eap`, padded.
pub fn push_eap_message(out: &mut Vec<u8>, eap: &[u8]) {
    push(out, AVP_EAP_MESSAGE, AVP_FLAG_MANDATORY, None, eap);
}

fn push(out: &mut Vec<u8>, code: u32, flags: u8, vendor: Option<u32>, data: &[u8]) {
    let header = if vendor.is_some() { 12 } else { 8 };
    let len = u32::try_from(header + data.len()).unwrap_or(0xff_ffff) & 0xff_ffff;
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(u32::from(flags) << 24 | len).to_be_bytes());
    if let Some(vendor) = vendor {
        out.extend_from_slice(&vendor.to_be_bytes());
    }
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(4), 0);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn avps_as_upstream_writes_them() {
        let mut out = Vec::new();
        push_avp(&mut out, AVP_USERNAME, b"test");
        assert_eq!(
            out,
            [0, 0, 0x0d, 0x6d, 0x80, 0, 0, 0x10, 0, 0, 5, 0x83, b't', b'e', b's', b't']
        );
        let password = [&[2u8, 2, 12][..], b"mypassword"].concat();
        let inner = expanded(EAP_RESPONSE, 0, JUNIPER_2, &password);
        push_eap_message(&mut out, &inner);
        assert_eq!(&out[16..24], &[0, 0, 0, 79, 0x40, 0, 0, 33]);
        assert_eq!(out.len() % 4, 0);
        let read: Vec<_> = avps(&out).collect::<Result<_, _>>().unwrap();
        assert!(read[0].is_juniper(AVP_USERNAME) && read[0].data == b"test");
        assert_eq!((read[1].code, read[1].vendor), (AVP_EAP_MESSAGE, None));
        let eap = Eap::parse(read[1].data).unwrap();
        assert_eq!(
            (eap.code, eap.expanded, eap.data),
            (EAP_RESPONSE, Some(JUNIPER_2), &password[..])
        );
    }

    #[test]
    fn bad_avps_and_eap_are_errors() {
        assert!(avps(&[0, 0, 0, 1, 0x80, 0, 0, 0x40, 0, 0, 5, 0x83]).any(|a| a.is_err()));
        assert!(
            avps(&[0, 0, 0, 1, 0x80, 0, 0, 4]).any(|a| a.is_err()),
            "shorter than its header"
        );
        assert!(avps(&[1, 2, 3]).any(|a| a.is_err()));
        assert_eq!(avps(&[]).count(), 0);
        assert!(Eap::parse(&[1, 0, 0, 9, 1]).is_err());
        assert!(Eap::parse(&[1, 0, 0, 6, 0xfe, 0]).is_err());
        assert!(Eap::parse(&[1, 0]).is_err());
        let success = Eap::parse(&[3, 7, 0, 4]).unwrap();
        assert_eq!((success.code, success.kind), (EAP_SUCCESS, None));
    }
}
