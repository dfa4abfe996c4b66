//! The cryptography of one security association, behind a trait so that the engine stays
//! free of any crypto library (the OpenSSL one lives in `oc_tls::esp`; tests use a fake).

use super::EspSuite;

/// Why a cipher could not seal or open a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherFailure {
    /// The ICV does not match: forged, corrupted, or under other keys.
    #[error("the ICV does not match")]
    IntegrityCheck,
    /// The crypto library refused (what it said).
    #[error("{0}")]
    Library(String),
}

/// Seals and opens whole ESP packets of one security association in place.
///
/// `packet` is always one complete packet as the engine lays it out:
/// `SPI | sequence | IV (suite's length) | encrypted part (whole blocks) | ICV (suite's
/// length)`. The engine checks those lengths before calling, but an implementation must
/// still refuse (never panic on) any other shape. Nothing is allocated per packet.
pub trait EspCipher {
    /// The suite, whose IV, block and ICV lengths the engine lays packets out by.
    fn suite(&self) -> EspSuite;

    /// Fills the IV, encrypts the encrypted part in place (the engine wrote the payload,
    /// padding and trailer there), then writes the ICV over everything before it.
    fn seal(&mut self, packet: &mut [u8]) -> Result<(), CipherFailure>;

    /// Checks the ICV over everything before it (in constant time) and only then
    /// decrypts the encrypted part in place. On failure the packet is dropped, whatever
    /// its bytes now hold.
    fn open(&mut self, packet: &mut [u8]) -> Result<(), CipherFailure>;
}

impl<C: EspCipher + ?Sized> EspCipher for Box<C> {
    fn suite(&self) -> EspSuite {
        (**self).suite()
    }

    fn seal(&mut self, packet: &mut [u8]) -> Result<(), CipherFailure> {
        (**self).seal(packet)
    }

    fn open(&mut self, packet: &mut [u8]) -> Result<(), CipherFailure> {
        (**self).open(packet)
    }
}
