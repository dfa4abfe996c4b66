//! A Pulse gateway's side of the login, for test gateways: the messages it sends (the
//! version it picks, the start of Juniper/1 authentication, requests with AVPs, the
//! password, token and realm requests, success) and what it reads from a client's
//! answers (its AVPs, the password in its Juniper/2 or /5 message, its token). With
//! EAP-TTLS the same requests go inside [`super::ttls::TtlsLink`], in [`ttls_request`]s.

use super::eap::*;
use super::ift::{
    packet, IftPacket, TCG_AUTH_CHALLENGE, TCG_AUTH_RESPONSE, TCG_AUTH_SUCCESS,
    TCG_VERSION_RESPONSE, VENDOR_TCG,
};
use super::PulseError;

/// The version answer: 2, as current servers pick.
pub fn version_response() -> Vec<u8> {
    packet(VENDOR_TCG, TCG_VERSION_RESPONSE, 0, &[0, 0, 0, 2])
}

/// The start of Juniper/1 authentication.
pub fn auth_start() -> Vec<u8> {
    packet(VENDOR_TCG, TCG_AUTH_CHALLENGE, 0, &AUTH_JUNIPER_1)
}

/// A Juniper/1 request `id` with `avps`.
pub fn request(id: u8, avps: &[u8]) -> Vec<u8> {
    challenge(&expanded(EAP_REQUEST, id, JUNIPER_1, avps))
}

/// An EAP-TTLS request `id` with `body` (flags and data; [`super::ttls::FLAG_START`]
/// alone starts it).
pub fn ttls_request(id: u8, body: &[u8]) -> Vec<u8> {
    challenge(&super::ttls::ttls_packet(EAP_REQUEST, id, body))
}

/// A TCG/5 around the EAP packet `eap`.
pub fn challenge(eap: &[u8]) -> Vec<u8> {
    packet(
        VENDOR_TCG,
        TCG_AUTH_CHALLENGE,
        0,
        &[&AUTH_JUNIPER_1[..], eap].concat(),
    )
}

/// Success, ending the login.
pub fn success(id: u8) -> Vec<u8> {
    packet(
        VENDOR_TCG,
        TCG_AUTH_SUCCESS,
        0,
        &[&AUTH_JUNIPER_1[..], &[EAP_SUCCESS, id, 0, 4]].concat(),
    )
}

/// The AVP asking for the password: Juniper/2 (`code` [`J2_PASSWORD`] or [`J2_RETRY`])
/// or, `juniper5`, the newer Juniper/5.
pub fn password_request(inner_id: u8, code: u8, juniper5: bool) -> Vec<u8> {
    let inner = if juniper5 {
        expanded(EAP_REQUEST, inner_id, JUNIPER_5, &[1, 0, 0, 0, 0, 0])
    } else {
        expanded(EAP_REQUEST, inner_id, JUNIPER_2, &[code])
    };
    let mut avps = Vec::new();
    push_eap_message(&mut avps, &inner);
    avps
}

/// The AVP asking for a token code (EAP-GTC) with `prompt`.
pub fn token_request(inner_id: u8, prompt: &str) -> Vec<u8> {
    let mut avps = Vec::new();
    push_eap_message(
        &mut avps,
        &eap(EAP_REQUEST, inner_id, EAP_TYPE_GTC, prompt.as_bytes()),
    );
    avps
}

/// The EAP packet of a client's answer (TCG/6 with the Juniper/1 auth type).
pub fn response<'m>(msg: &IftPacket<'m>) -> Result<Eap<'m>, PulseError> {
    if !msg.is(VENDOR_TCG, TCG_AUTH_RESPONSE) {
        return Err(PulseError::Unexpected(format!(
            "not an authentication response (vendor {:#x}, type {})",
            msg.vendor, msg.kind
        )));
    }
    let eap = msg
        .payload
        .strip_prefix(&AUTH_JUNIPER_1[..])
        .ok_or_else(|| PulseError::Unexpected("another auth type".into()))?;
    let eap = Eap::parse(eap)?;
    if eap.code != EAP_RESPONSE {
        return Err(PulseError::BadEap("not a response"));
    }
    Ok(eap)
}

/// What a client answered in a Juniper/1 response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// Juniper AVPs other than the ones below: (code, value).
    pub values: Vec<(u32, Vec<u8>)>,
    pub username: Option<String>,
    /// The password of a Juniper/2 answer, or of a Juniper/5 one (its zero padding
    /// removed), and which it was.
    pub password: Option<(String, bool)>,
    pub token: Option<String>,
}

impl Answer {
    pub fn parse(avp_bytes: &[u8]) -> Result<Self, PulseError> {
        let mut answer = Self::default();
        for avp in avps(avp_bytes) {
            let avp = avp?;
            if avp.code == AVP_EAP_MESSAGE && avp.vendor.is_none() {
                answer.inner(&Eap::parse(avp.data)?)?;
            } else if avp.is_juniper(AVP_USERNAME) {
                answer.username = Some(avp.text());
            } else if avp.vendor == Some(AVP_VENDOR_JUNIPER) {
                answer.values.push((avp.code, avp.data.to_vec()));
            }
        }
        Ok(answer)
    }

    fn inner(&mut self, eap: &Eap<'_>) -> Result<(), PulseError> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match (eap.kind, eap.expanded, eap.data) {
            (Some(EAP_TYPE_GTC), _, token) => self.token = Some(text(token)),
            (_, Some(JUNIPER_2), [2, 2, len, rest @ ..]) => {
                let n = usize::from(*len).saturating_sub(2);
                let password = rest
                    .get(..n)
                    .ok_or(PulseError::BadEap("a short password"))?;
                self.password = Some((text(password), false));
            }
            (_, Some(JUNIPER_5), [1, rest @ ..]) if rest.len() == J5_PASSWORD_LEN => {
                let end = rest.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
                self.password = Some((text(rest.get(..end).unwrap_or_default()), true));
            }
            _ => return Err(PulseError::BadEap("an answer of an unknown kind")),
        }
        Ok(())
    }

    /// The value of Juniper AVP `code`, as text.
    pub fn text(&self, code: u32) -> Option<String> {
        self.values
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}
