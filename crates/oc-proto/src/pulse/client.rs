//! The client's side of a Pulse connection after the login, without I/O, as upstream's
//! `pulse_connect` and mainloop read it: what each of the server's messages is
//! ([`ServerMessage`]), the configuration phase's rules ([`ConfigPhase`]: the main
//! configuration, then ESP's keys, until the end of the configuration; session
//! information acknowledged; a fatal error the end), and our numbered messages
//! ([`Outgoing`]: the login's numbering goes on).

use super::config::{
    esp_control, esp_reply, parse_esp_config, sub_type, PulseConfig, ESP_CONFIG, ESP_SECRETS_LEN,
    MAIN_CONFIG, MAIN_CONFIG_R14,
};
use super::ift::{
    packet, IftPacket, HEADER_LEN, JUNIPER_CONFIG, JUNIPER_DATA, JUNIPER_END_OF_CONFIG,
    JUNIPER_FATAL, JUNIPER_SESSION_INFO, JUNIPER_SESSION_INFO_ACK, VENDOR_JUNIPER,
};
use super::{fatal_text, PulseError};
use crate::esp::{EspKeys, EspParams};

/// The acknowledgement newer servers want for their session information (0x96).
const SESSION_INFO_ACK: [u8; 2] = [0x0a, 0x00];

/// What the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage<'a> {
    /// An IP packet (Juniper/4).
    Packet(&'a [u8]),
    /// The main configuration.
    Config(Box<PulseConfig>),
    /// ESP keys for what we send (the first, or a rekey); `payload` is what our reply
    /// copies.
    EspKeys {
        spi: u32,
        secrets: &'a [u8],
        payload: &'a [u8],
    },
    EndOfConfig,
    /// Session information (0x96), to acknowledge.
    SessionInfo,
    /// The server ends the session (0x93): upstream's words for it.
    Fatal(String),
    /// Anything else, for the log.
    Other(String),
}

impl<'a> ServerMessage<'a> {
    /// Reads one of the server's messages; a configuration message that cannot be read is
    /// an error.
    pub fn read(msg: IftPacket<'a>) -> Result<Self, PulseError> {
        if msg.vendor != VENDOR_JUNIPER {
            return Ok(Self::other(&msg));
        }
        Ok(match msg.kind {
            JUNIPER_DATA => Self::Packet(msg.payload),
            JUNIPER_END_OF_CONFIG => Self::EndOfConfig,
            JUNIPER_SESSION_INFO => Self::SessionInfo,
            JUNIPER_FATAL => Self::Fatal(fatal_text(msg.payload)),
            JUNIPER_CONFIG => match sub_type(msg.payload)? {
                MAIN_CONFIG | MAIN_CONFIG_R14 => {
                    Self::Config(Box::new(PulseConfig::parse(msg.payload)?))
                }
                ESP_CONFIG => {
                    let (spi, secrets) = parse_esp_config(msg.payload)?;
                    Self::EspKeys {
                        spi,
                        secrets,
                        payload: msg.payload,
                    }
                }
                other => Self::Other(format!(
                    "Skipping Pulse configuration message {other:#010x}"
                )),
            },
            _ => Self::other(&msg),
        })
    }

    fn other(msg: &IftPacket<'_>) -> Self {
        Self::Other(format!(
            "Unknown Pulse packet of {} bytes (vendor {:#05x}, type {:#04x})",
            msg.payload.len() + HEADER_LEN,
            msg.vendor,
            msg.kind
        ))
    }
}

/// What to do after a message of the configuration phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigStep<'a> {
    /// Nothing; a line for the debug log when there is one.
    Continue(Option<String>),
    /// Acknowledge the session information ([`Outgoing::session_info_ack`]).
    AcknowledgeSessionInfo,
    /// ESP's keys: what we send with (or why ESP cannot be), and the configuration's ESP
    /// parameters (port, fallback, replay protection). Answer with
    /// [`Outgoing::esp_answer`], at once, as upstream does.
    EspKeys {
        outbound: Result<EspKeys, String>,
        params: EspParams,
        payload: &'a [u8],
    },
    /// The whole configuration.
    Done(Box<PulseConfig>),
}

/// The configuration phase.
#[derive(Debug, Default)]
pub struct ConfigPhase {
    config: Option<PulseConfig>,
}

impl ConfigPhase {
    pub fn on_message<'a>(&mut self, msg: IftPacket<'a>) -> Result<ConfigStep<'a>, PulseError> {
        let insufficient = |what| PulseError::BadConfig(what);
        Ok(match ServerMessage::read(msg)? {
            ServerMessage::Config(config) => {
                let unknown = config
                    .unknown
                    .iter()
                    .map(|(kind, len)| format!("Unknown attr {kind:#06x} len {len}"))
                    .collect::<Vec<_>>();
                self.config = Some(*config);
                ConfigStep::Continue((!unknown.is_empty()).then(|| unknown.join("; ")))
            }
            ServerMessage::EspKeys {
                spi,
                secrets,
                payload,
            } => {
                let main = self
                    .config
                    .as_ref()
                    .ok_or(insufficient("ESP keys before the main configuration"))?;
                let outbound = match main.esp.suite() {
                    Some(suite) => EspKeys::from_block(spi, suite, secrets)
                        .map_err(|e| format!("ESP keys: {e}")),
                    None => Err("no ESP suite in the configuration".into()),
                };
                ConfigStep::EspKeys {
                    outbound,
                    params: main.esp.clone(),
                    payload,
                }
            }
            ServerMessage::EndOfConfig => {
                let config = self
                    .config
                    .take()
                    .ok_or(insufficient("Insufficient configuration found: none"))?;
                if config.ip.mtu == 0 || config.ip.addresses().is_empty() {
                    return Err(insufficient(
                        "Insufficient configuration found: no MTU or no address",
                    ));
                }
                ConfigStep::Done(Box::new(config))
            }
            ServerMessage::SessionInfo => ConfigStep::AcknowledgeSessionInfo,
            ServerMessage::Fatal(text) => return Err(PulseError::Terminated(text)),
            ServerMessage::Packet(_) => {
                ConfigStep::Continue(Some("Discarding a packet before the configuration".into()))
            }
            ServerMessage::Other(line) => ConfigStep::Continue(Some(line)),
        })
    }
}

/// Our messages, numbered on from the login's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    seq: u32,
}

impl Outgoing {
    pub fn new(seq: u32) -> Self {
        Self { seq }
    }

    /// The next number (a data message framed in place takes one).
    pub fn take_seq(&mut self) -> u32 {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        seq
    }

    /// A Juniper message of `kind`.
    pub fn message(&mut self, kind: u32, payload: &[u8]) -> Vec<u8> {
        let seq = self.take_seq();
        packet(VENDOR_JUNIPER, kind, seq, payload)
    }

    pub fn session_info_ack(&mut self) -> Vec<u8> {
        self.message(JUNIPER_SESSION_INFO_ACK, &SESSION_INFO_ACK)
    }

    /// The answer to ESP keys (`payload`): ours, `spi` and `secrets` (fresh ones nobody
    /// will use when ESP cannot be), then `ncmo=1` when ESP will be tried, else `ncmo=0`
    /// so that the server keeps to TLS.
    pub fn esp_answer(
        &mut self,
        payload: &[u8],
        spi: u32,
        secrets: &[u8; ESP_SECRETS_LEN],
        on: bool,
    ) -> Result<Vec<u8>, PulseError> {
        let mut out = self.esp_reply(payload, spi, secrets)?;
        out.extend_from_slice(&self.esp_control(on));
        Ok(out)
    }

    /// Our keys in answer to a rekey's `payload`.
    pub fn esp_reply(
        &mut self,
        payload: &[u8],
        spi: u32,
        secrets: &[u8; ESP_SECRETS_LEN],
    ) -> Result<Vec<u8>, PulseError> {
        let reply = esp_reply(self.seq, payload, spi, secrets)?;
        self.take_seq();
        Ok(reply)
    }

    /// Where the server is to send: ESP (`ncmo=1`) or TLS.
    pub fn esp_control(&mut self, on: bool) -> Vec<u8> {
        let seq = self.take_seq();
        esp_control(seq, on)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests;
