//! YubiKey OATH applet APDUs (placeholder until written).

/// A problem talking to the YubiKey OATH applet.
#[derive(Debug, thiserror::Error)]
pub enum YubiKeyError {
    #[error("YubiKey answer is malformed: {0}")]
    Malformed(String),
}
