//! One-time passwords without I/O, shared by the client and the server.
//!
//! - [`oath`]: HOTP (RFC 4226) and TOTP (RFC 6238) codes with SHA-1/256/512.
//! - [`secret`]: every form openconnect's `--token-secret` takes for TOTP/HOTP tokens
//!   (raw, `base32:`, `0x` hex, `sha256:`/`sha512:`, `otpauth://` URIs, PSKC XML), and
//!   writing an HOTP secret back with its new counter in the form it came in.
//! - [`securid`]: RSA SecurID software tokens as `stoken` imports them, and their codes.
//! - [`yubikey`]: the YubiKey OATH applet's APDUs (select, list, calculate, validate).
//! - [`usersfile`]: liboath's users file as ocserv's `otp=` uses it: parse, verify a code
//!   with a drift window and replay refusal, and the updated file text.
//!
//! Nothing here reads a clock, a file or a device: times, file contents and card
//! responses come in as arguments; new file contents and APDUs go out.

pub mod calendar;
pub mod error;
pub mod oath;
pub mod secret;
pub mod securid;
pub mod usersfile;
pub mod yubikey;

pub use error::OtpError;
