//! The ESP engine that GlobalProtect, Pulse and Juniper NC share: RFC 4303 ESP in UDP,
//! as openconnect's esp.c and esp-seqno.c speak it.
//!
//! - [`packet`]: the layout (SPI, sequence number, IV, payload, padding 1, 2, 3 ...,
//!   pad length, next header, ICV) and the next-header values upstream knows.
//! - [`suite`]: AES-128/256-CBC with HMAC-MD5-96, HMAC-SHA-1-96 or HMAC-SHA-256-128, and
//!   [`EspKeys`], one direction's SPI and key bytes.
//! - [`replay`]: the incoming window (64 packets behind the newest, as esp-seqno.c).
//! - [`sa`]: [`EspOutbound`] (sequence counter, sealing in place) and [`EspInbound`] (the
//!   window, the previous keys' grace after a rekey, drops counted by reason).
//! - [`cipher`]: the [`EspCipher`] trait the crypto comes through (OpenSSL's is
//!   `oc_tls::esp::OpenSslEspCipher`).
//!
//! A UDP shell seals each packet in the buffer it read it into, with
//! [`EspOutbound::headroom`] bytes free in front and [`EspOutbound::tailroom`] behind,
//! and opens each received datagram (one slice of a GRO run) where it lies; nothing is
//! allocated per packet and nothing here touches a socket or a clock.

pub mod cipher;
pub mod packet;
pub mod replay;
pub mod sa;
pub mod session;
pub mod suite;

#[cfg(test)]
mod tests;

pub use cipher::{CipherFailure, EspCipher};
pub use packet::{EspHeader, NextHeader, ESP_HEADER_LEN, MAX_ESP_PACKET_LEN};
pub use replay::{Arrival, ReplayWindow};
pub use sa::{EspInbound, EspOutbound, InboundCounters, Opened};
pub use session::{EspAction, EspProber, EspSession, Incoming};
pub use suite::{EspEncryption, EspIntegrity, EspKeys, EspParams, EspSuite, SECRETS_BLOCK_LEN};

/// The probe Pulse and Juniper NC send and their gateways echo (upstream's
/// `oncp_esp_send_probes`): one zero byte of payload, with the next header of the
/// gateway's address family ([`NextHeader::for_family`]). GlobalProtect probes with an
/// ICMP echo to its magic address instead, which is that protocol's business.
pub const JUNIPER_PROBE: [u8; 1] = [0];

/// Whether an opened payload is the Pulse/NC probe's echo (`oncp_esp_catch_probe`).
pub fn is_juniper_probe(payload: &[u8]) -> bool {
    payload == JUNIPER_PROBE
}

/// Pulse's and Juniper NC's [`EspProber`]: [`JUNIPER_PROBE`] with the next header of the
/// gateway's address family, answered by the same byte.
#[derive(Debug, Clone, Copy)]
pub struct JuniperProber {
    pub gateway_is_ipv6: bool,
}

impl EspProber for JuniperProber {
    fn next_probe(&mut self) -> Option<(Vec<u8>, NextHeader)> {
        Some((
            JUNIPER_PROBE.to_vec(),
            NextHeader::for_family(self.gateway_is_ipv6),
        ))
    }

    fn is_answer(&self, payload: &[u8]) -> bool {
        is_juniper_probe(payload)
    }
}

/// Keys that cannot be used, or a packet that cannot be sealed. (Incoming packets that
/// fail are [`EspDrop`]s: dropped and counted, never fatal.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EspError {
    #[error("ESP {cipher} key of {got} bytes (it takes {wanted})")]
    EncryptionKeyLength {
        cipher: &'static str,
        got: usize,
        wanted: usize,
    },
    #[error("ESP integrity key of {got} bytes (1 to 64 are usable)")]
    IntegrityKeyLength { got: usize },
    #[error("ESP secrets of {got} bytes (the suite's keys take {wanted})")]
    ShortSecrets { got: usize, wanted: usize },
    #[error("payload {start}..{end} is not inside the {buffer}-byte buffer")]
    PayloadOutsideBuffer {
        start: usize,
        end: usize,
        buffer: usize,
    },
    #[error("an ESP packet needs at least one byte of payload")]
    EmptyPayload,
    #[error("{available} bytes before the payload; ESP needs {needed} for its header and IV")]
    NoHeadroom { needed: usize, available: usize },
    #[error(
        "{available} bytes after the payload; ESP needs {needed} for padding, trailer and ICV"
    )]
    NoTailroom { needed: usize, available: usize },
    #[error("an ESP packet of {len} bytes is longer than a UDP datagram can carry")]
    PacketTooLong { len: usize },
    /// 2^32 packets went out under these keys; a new SPI must come first (upstream would
    /// wrap to 0, which the gateway's window then refuses).
    #[error("ESP sequence numbers of SPI {spi:#010x} are used up; new keys are needed")]
    SequenceExhausted { spi: u32 },
    #[error("ESP encryption failed: {0}")]
    Cipher(String),
}

/// Why an incoming packet was dropped. Each is counted in [`InboundCounters`]; the
/// messages are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EspDrop {
    #[error("ESP packet of {len} bytes is too short (at least {min})")]
    TooShort { len: usize, min: usize },
    #[error("ESP packet of {len} bytes is longer than any datagram")]
    TooLong { len: usize },
    #[error("ESP packet whose {len} encrypted bytes are not whole {block}-byte blocks")]
    NotWholeBlocks { len: usize, block: usize },
    #[error("Received ESP packet with invalid SPI {spi:#010x}")]
    UnknownSpi { spi: u32 },
    /// The previous keys' SPI after its grace ended (upstream reports an invalid SPI).
    #[error("Received ESP packet from old SPI {spi:#010x} too late (seq {sequence})")]
    RetiredSpi { spi: u32, sequence: u32 },
    #[error("Discarding replayed ESP packet with seq {sequence}")]
    Replayed { sequence: u32 },
    #[error("Discarding ancient ESP packet with seq {sequence} (expected {expected})")]
    TooOld { sequence: u32, expected: u64 },
    #[error("Received ESP packet with invalid HMAC (SPI {spi:#010x}, seq {sequence})")]
    IntegrityCheckFailed { spi: u32, sequence: u32 },
    #[error(
        "Received ESP packet of {len} bytes with unrecognised payload type {next_header:#04x}"
    )]
    UnknownNextHeader { next_header: u8, len: usize },
    #[error("Invalid padding length {pad_len:#04x} in ESP")]
    BadPadLength { pad_len: u8 },
    #[error("Invalid padding bytes in ESP")]
    BadPadding,
    #[error("Failed to decrypt ESP packet: {0}")]
    Cipher(String),
    /// Juniper's LZO-compressed Legacy IP packet (next header 5) that does not inflate.
    #[error("LZO decompression of ESP packet failed ({len} bytes)")]
    Decompression { len: usize },
}

/// How loudly a drop deserves reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropSeverity {
    /// The network's noise: loss, reordering, strangers, stale keys (upstream: debug).
    Routine,
    /// An authentic packet that is wrong, or the crypto library failing: the peer or we
    /// are broken (upstream: error).
    Fault,
}

impl EspDrop {
    pub fn severity(&self) -> DropSeverity {
        match self {
            Self::UnknownNextHeader { .. }
            | Self::BadPadLength { .. }
            | Self::BadPadding
            | Self::Cipher(_)
            | Self::Decompression { .. } => DropSeverity::Fault,
            _ => DropSeverity::Routine,
        }
    }
}
