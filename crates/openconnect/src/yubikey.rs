//! `--token-mode=yubioath`: codes from a YubiKey's OATH applet over PC/SC.
//!
//! The protocol lives in [`oc_otp::yubikey::OathExchange`]; this module finds the card and
//! moves its APDUs. Like openconnect it tries every reader in the order PC/SC lists them
//! (the one that worked before goes first), selects the applet, unlocks it with the PIN
//! (asked through a callback, remembered as the derived key for later codes) and uses the
//! named credential or else the first one. Each call connects afresh and leaves the card
//! as it was (no reset), so a key unplugged between login attempts is found again.

use std::ffi::CString;

use oc_otp::yubikey::{Action, Credential, Goal, OathExchange, Outcome, PasswordKey, YubiKeyError};
use oc_otp::OtpError;
use pcsc::{Card, Context, Disposition, Protocols, Scope, ShareMode};
use tracing::{debug, error, info, warn};

use crate::error::ClientError;

/// openconnect's PIN form: its id, ...
pub const PIN_FORM_ID: &str = "yubikey_oath_pin";
/// ... the password field's name, ...
pub const PIN_FIELD_NAME: &str = "yubikey_pin";
/// ... the form message ...
pub const PIN_MESSAGE: &str = "PIN required for Yubikey OATH applet";
/// ... and the field label.
pub const PIN_LABEL: &str = "Yubikey PIN:";

/// Refused PINs per reader before giving up (openconnect asks until the user cancels).
const MAX_PIN_TRIES: u32 = 3;

/// APDUs per exchange; a card that keeps answering `6100` with no data stops here.
const MAX_APDUS: usize = 512;

/// What the PIN callback is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinRequest<'a> {
    /// The PC/SC reader the locked YubiKey is in.
    pub reader: &'a str,
    /// A PIN given earlier in this exchange was wrong.
    pub retry: bool,
}

/// Asks the user for the applet's PIN; an error (e.g. the user cancelled) ends the search.
pub type AskPin<'a> = dyn FnMut(PinRequest<'_>) -> Result<String, ClientError> + 'a;

fn yk(e: YubiKeyError) -> ClientError {
    ClientError::Token(OtpError::YubiKey(e))
}

/// Maps a PC/SC failure while `what`, telling "pcscd is not running" apart.
fn service_error(what: &'static str) -> impl Fn(pcsc::Error) -> ClientError {
    move |e| match e {
        pcsc::Error::NoService | pcsc::Error::ServiceStopped => {
            yk(YubiKeyError::ServiceUnavailable(e.to_string()))
        }
        e => yk(YubiKeyError::Pcsc {
            what,
            why: e.to_string(),
        }),
    }
}

/// Why one reader did not give a code.
enum Failure {
    /// Not the card we want (or unusable): note why and try the next reader.
    Skip(String),
    /// The applet is there but has no such credential: try the next reader.
    NoCredential(YubiKeyError),
    /// Stop searching.
    Fatal(ClientError),
}

impl From<YubiKeyError> for Failure {
    fn from(e: YubiKeyError) -> Self {
        match e {
            YubiKeyError::NoApplet { status } => {
                Failure::Skip(format!("no OATH applet (status {status:04X})"))
            }
            e @ (YubiKeyError::CredentialNotFound { .. } | YubiKeyError::NoCredentials) => {
                Failure::NoCredential(e)
            }
            e => Failure::Fatal(yk(e)),
        }
    }
}

/// A YubiKey OATH token: which credential, where it was found, and the PIN's key once it
/// unlocked the applet.
#[derive(Debug, Default)]
pub struct YubiKeyOath {
    /// `--token-secret`: the credential name (none: the first credential).
    wanted: Option<String>,
    reader: Option<CString>,
    key: Option<PasswordKey>,
    credential: Option<Credential>,
}

impl YubiKeyOath {
    /// A token for the credential `credential` (`--token-secret`; empty or none means the
    /// first credential on the key). Touches no device yet.
    pub fn new(credential: Option<&str>) -> Self {
        Self {
            wanted: credential.filter(|c| !c.is_empty()).map(str::to_string),
            ..Self::default()
        }
    }

    /// Finds the YubiKey and the credential without calculating anything, as openconnect
    /// does when the token mode is set (asking for the PIN then if the applet has one).
    pub fn probe(&mut self, ask_pin: &mut AskPin<'_>) -> Result<&Credential, ClientError> {
        let outcome = self.run(Goal::Probe, ask_pin)?;
        Ok(self.credential.insert(outcome.credential))
    }

    /// The code for `unix_time` (TOTP) or the next counter value (HOTP, which advances the
    /// key's counter). After [`YubiKeyOath::probe`] the same credential is used.
    pub fn code(
        &mut self,
        unix_time: u64,
        ask_pin: &mut AskPin<'_>,
    ) -> Result<String, ClientError> {
        info!("Generating YubiKey token code");
        let outcome = self.run(Goal::Code { unix_time }, ask_pin)?;
        let code = outcome.code.clone().ok_or_else(|| {
            yk(YubiKeyError::Malformed(
                "the exchange finished without a code".into(),
            ))
        })?;
        self.credential = Some(outcome.credential);
        Ok(code)
    }

    /// The credential found by the last probe or code.
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    /// The reader the YubiKey was found in.
    pub fn reader(&self) -> Option<String> {
        self.reader
            .as_ref()
            .map(|r| r.to_string_lossy().into_owned())
    }

    fn wanted_name(&self) -> Option<String> {
        self.wanted.clone().or_else(|| {
            self.credential
                .as_ref()
                .and_then(|c| String::from_utf8(c.id.clone()).ok())
        })
    }

    fn run(&mut self, goal: Goal, ask_pin: &mut AskPin<'_>) -> Result<Outcome, ClientError> {
        let ctx =
            Context::establish(Scope::User).map_err(service_error("establishing a context"))?;
        debug!("Established PC/SC context");
        let mut readers = ctx
            .list_readers_owned()
            .map_err(service_error("listing the readers"))?;
        if readers.is_empty() {
            return Err(yk(YubiKeyError::NoReader));
        }
        if let Some(pos) = self
            .reader
            .as_ref()
            .and_then(|known| readers.iter().position(|r| r == known))
        {
            let known = readers.remove(pos);
            readers.insert(0, known);
        }

        let wanted = self.wanted_name();
        let mut tried = Vec::new();
        let mut not_found: Option<YubiKeyError> = None;
        for reader in readers {
            let label = reader.to_string_lossy().into_owned();
            let mut card = match ctx.connect(&reader, ShareMode::Shared, Protocols::T1) {
                Ok(card) => card,
                Err(e) => {
                    debug!("Failed to connect to PC/SC reader '{label}': {e}");
                    tried.push(format!("'{label}': cannot connect: {e}"));
                    continue;
                }
            };
            debug!("Connected PC/SC reader '{label}'");
            let result = match card.transaction() {
                Ok(tx) => {
                    let card: &Card = &tx;
                    self.run_on_card(card, &label, goal, wanted.as_deref(), ask_pin)
                }
                Err(e) => Err(Failure::Skip(format!("no exclusive access: {e}"))),
            };
            // Leave the card as it is: the default on drop would reset it.
            if let Err((_, e)) = card.disconnect(Disposition::LeaveCard) {
                debug!("Disconnecting from '{label}': {e}");
            }
            match result {
                Ok(outcome) => {
                    self.reader = Some(reader);
                    return Ok(outcome);
                }
                Err(Failure::Skip(why)) => {
                    debug!("Skipping reader '{label}': {why}");
                    tried.push(format!("'{label}': {why}"));
                }
                Err(Failure::NoCredential(e)) => {
                    if let Some(w) = &wanted {
                        error!(
                            "Token '{w}' not found on YubiKey '{label}'. Searching for another YubiKey..."
                        );
                    }
                    not_found = Some(match (not_found, e) {
                        (
                            Some(YubiKeyError::CredentialNotFound {
                                wanted,
                                mut available,
                            }),
                            YubiKeyError::CredentialNotFound {
                                available: more, ..
                            },
                        ) => {
                            available.extend(more);
                            YubiKeyError::CredentialNotFound { wanted, available }
                        }
                        (Some(previous @ YubiKeyError::CredentialNotFound { .. }), _) => previous,
                        (_, e) => e,
                    });
                }
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
        Err(yk(not_found.unwrap_or(YubiKeyError::NotFound { tried })))
    }

    fn run_on_card(
        &mut self,
        card: &dyn CardIo,
        reader: &str,
        goal: Goal,
        wanted: Option<&str>,
        ask_pin: &mut AskPin<'_>,
    ) -> Result<Outcome, Failure> {
        let mut host_challenge = [0u8; 8];
        openssl::rand::rand_bytes(&mut host_challenge).map_err(|e| {
            Failure::Fatal(ClientError::System(format!(
                "cannot get random bytes for the YubiKey challenge: {e}"
            )))
        })?;
        let mut exchange = OathExchange::new(wanted, goal, host_challenge);
        if let Some(key) = &self.key {
            exchange = exchange.with_key(key.clone());
        }
        let mut buf = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
        let mut refused = 0;
        let mut action = exchange.start()?;
        for _ in 0..MAX_APDUS {
            action = match action {
                Action::Transmit(apdu) => transmit(card, reader, &mut exchange, &apdu, &mut buf)?,
                Action::TransmitAwaitingTouch(apdu) => {
                    warn!("Touch the YubiKey in '{reader}' to generate the code");
                    transmit(card, reader, &mut exchange, &apdu, &mut buf)?
                }
                Action::NeedPassword { wrong } => {
                    if wrong {
                        refused += 1;
                        error!("Wrong PIN for the YubiKey OATH applet in '{reader}'");
                        if refused >= MAX_PIN_TRIES {
                            return Err(Failure::Fatal(yk(YubiKeyError::WrongPassword)));
                        }
                    }
                    let pin = ask_pin(PinRequest {
                        reader,
                        retry: wrong,
                    })
                    .map_err(Failure::Fatal)?;
                    let next = exchange.provide_password(&pin);
                    let mut bytes = pin.into_bytes();
                    bytes.fill(0);
                    std::hint::black_box(&mut bytes);
                    next?
                }
                Action::Done(outcome) => {
                    if let Some(key) = exchange.validated_key() {
                        self.key = Some(key.clone());
                    }
                    if let Some(info) = exchange.select_info() {
                        debug!("Found ykneo-oath applet v{}", info.version_string());
                    }
                    info!(
                        "Found {} key '{}' on '{reader}'",
                        outcome.credential.kind(),
                        outcome.credential.name()
                    );
                    return Ok(outcome);
                }
            };
        }
        Err(Failure::Fatal(yk(YubiKeyError::Malformed(format!(
            "no result after {MAX_APDUS} APDUs"
        )))))
    }
}

/// The one card operation the exchange needs; a seam for tests.
trait CardIo {
    fn transmit<'b>(&self, apdu: &[u8], buf: &'b mut [u8]) -> Result<&'b [u8], pcsc::Error>;
}

impl CardIo for Card {
    fn transmit<'b>(&self, apdu: &[u8], buf: &'b mut [u8]) -> Result<&'b [u8], pcsc::Error> {
        Card::transmit(self, apdu, buf)
    }
}

/// Sends one APDU and feeds the answer to the exchange. A reader that fails before the
/// applet answered SELECT is skipped; later failures end the search.
fn transmit(
    card: &dyn CardIo,
    reader: &str,
    exchange: &mut OathExchange,
    apdu: &[u8],
    buf: &mut [u8],
) -> Result<Action, Failure> {
    match card.transmit(apdu, buf) {
        Ok(answer) => Ok(exchange.handle_response(answer)?),
        Err(e) if exchange.select_info().is_none() => {
            Err(Failure::Skip(format!("selecting the OATH applet: {e}")))
        }
        Err(e) => Err(Failure::Fatal(yk(YubiKeyError::Card {
            reader: reader.to_string(),
            what: "sending a command",
            why: e.to_string(),
        }))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const CHILD_ENV: &str = "OC_YUBIKEY_TEST_CHILD";

    /// Runs in a child process whose PCSCLITE_CSOCK_NAME points nowhere (see below); in a
    /// normal test run it does nothing.
    #[test]
    fn child_without_pcscd() {
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        let mut asked = false;
        let err = YubiKeyOath::new(Some("vpn"))
            .code(1_700_000_000, &mut |_| {
                asked = true;
                Ok("pin".into())
            })
            .unwrap_err();
        assert!(!asked);
        let text = err.to_string();
        assert!(
            text.contains("cannot reach the PC/SC service (is pcscd running?)"),
            "{text}"
        );
        assert!(matches!(
            err,
            ClientError::Token(OtpError::YubiKey(YubiKeyError::ServiceUnavailable(_)))
        ));
        let mut token = YubiKeyOath::new(None);
        assert!(token.probe(&mut |_| Ok(String::new())).is_err());
        assert!(token.credential().is_none() && token.reader().is_none());
        println!("child checked: {text}");
    }

    /// With no PC/SC service to talk to, the answer is a clear error, not a panic or a
    /// hang. The service is made unreachable for a child process only (pcsc-lite takes
    /// its socket path from PCSCLITE_CSOCK_NAME), so a running pcscd is left alone.
    #[test]
    fn no_pcsc_service_is_a_clear_error() {
        let exe = std::env::current_exe().unwrap();
        let dir = std::env::temp_dir().join(format!("oc-yubikey-test-{}", std::process::id()));
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "yubikey::tests::child_without_pcscd",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .env("PCSCLITE_CSOCK_NAME", dir.join("no-such-pcscd.comm"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("child checked:"), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "{stdout}");
    }

    use oc_otp::oath::{hotp, totp, Algorithm};
    use std::cell::RefCell;

    const SALT: [u8; 8] = *b"saltsalt";
    const SECRET: &[u8] = b"12345678901234567890";

    /// One credential on the simulated key.
    struct FakeCred {
        name: &'static str,
        totp: bool,
        digits: u8,
        touch: bool,
        counter: u64,
    }

    /// A simulated YubiKey OATH applet: enough of YKOATH to drive the shell, with codes
    /// from `oc_otp::oath` for SECRET.
    struct FakeKey {
        password: Option<&'static str>,
        creds: RefCell<Vec<FakeCred>>,
        authed: RefCell<bool>,
        touched: bool,
        /// LIST answers in two parts of this many bytes (then SEND REMAINING).
        split_list: Option<usize>,
        pending: RefCell<Vec<u8>>,
        log: RefCell<Vec<u8>>,
        fail_transmit: bool,
    }

    impl FakeKey {
        fn new(creds: Vec<FakeCred>) -> Self {
            Self {
                password: None,
                creds: RefCell::new(creds),
                authed: RefCell::new(false),
                touched: true,
                split_list: None,
                pending: RefCell::new(Vec::new()),
                log: RefCell::new(Vec::new()),
                fail_transmit: false,
            }
        }

        fn tlvs(mut data: &[u8]) -> Vec<(u8, Vec<u8>)> {
            let mut out = Vec::new();
            while let [tag, len, rest @ ..] = data {
                let len = usize::from(*len);
                out.push((*tag, rest[..len].to_vec()));
                data = &rest[len..];
            }
            out
        }

        fn answer(&self, apdu: &[u8]) -> Vec<u8> {
            let ins = apdu[1];
            self.log.borrow_mut().push(ins);
            let data = if apdu.len() > 5 { &apdu[5..] } else { &[][..] };
            let mut out = Vec::new();
            let key = self.password.map(|p| PasswordKey::derive(p, &SALT));
            let sw: u16 = match (ins, apdu[2]) {
                (0xa4, 0x04) => {
                    *self.authed.borrow_mut() = false;
                    out.extend([0x79, 3, 5, 4, 3, 0x71, 8]);
                    out.extend(SALT);
                    if self.password.is_some() {
                        out.extend([0x74, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0x7b, 1, 1]);
                    }
                    0x9000
                }
                (0xa3, _) => {
                    let t = Self::tlvs(data);
                    let key = key.unwrap();
                    if t[0].1 == key.respond(&[1, 2, 3, 4, 5, 6, 7, 8]) {
                        *self.authed.borrow_mut() = true;
                        out.extend([0x75, 20]);
                        out.extend(key.respond(&t[1].1));
                        0x9000
                    } else {
                        0x6a80
                    }
                }
                _ if self.password.is_some() && !*self.authed.borrow() => 0x6982,
                (0xa1, _) => {
                    for c in self.creds.borrow().iter() {
                        out.extend([0x72, c.name.len() as u8 + 1]);
                        out.push(if c.totp { 0x21 } else { 0x11 });
                        out.extend(c.name.as_bytes());
                    }
                    match self.split_list {
                        Some(n) if n < out.len() => {
                            *self.pending.borrow_mut() = out.split_off(n);
                            0x6100 | self.pending.borrow().len() as u16
                        }
                        _ => 0x9000,
                    }
                }
                (0xa5, _) => {
                    out = std::mem::take(&mut *self.pending.borrow_mut());
                    0x9000
                }
                (0xa4, _) => {
                    for c in self.creds.borrow().iter() {
                        out.extend([0x71, c.name.len() as u8]);
                        out.extend(c.name.as_bytes());
                        match (c.touch, c.totp) {
                            (true, _) => out.extend([0x7c, 1, c.digits]),
                            (false, false) => out.extend([0x77, 1, c.digits]),
                            (false, true) => out.extend([0x76, 5, c.digits, 0, 0, 0, 0]),
                        }
                    }
                    0x9000
                }
                (0xa2, _) => {
                    let t = Self::tlvs(data);
                    let mut creds = self.creds.borrow_mut();
                    match creds.iter_mut().find(|c| c.name.as_bytes() == t[0].1) {
                        None => 0x6984,
                        Some(c) if c.touch && !self.touched => 0x6982,
                        Some(c) => {
                            let counter = if c.totp {
                                u64::from_be_bytes(t[1].1.clone().try_into().unwrap())
                            } else {
                                c.counter += 1;
                                c.counter - 1
                            };
                            let code = hotp(Algorithm::Sha1, SECRET, counter, u32::from(c.digits));
                            let value: u32 = code.parse().unwrap();
                            out.extend([0x76, 5, c.digits]);
                            out.extend(value.to_be_bytes());
                            0x9000
                        }
                    }
                }
                _ => 0x6d00,
            };
            out.extend(sw.to_be_bytes());
            out
        }
    }

    impl CardIo for FakeKey {
        fn transmit<'b>(&self, apdu: &[u8], buf: &'b mut [u8]) -> Result<&'b [u8], pcsc::Error> {
            if self.fail_transmit {
                return Err(pcsc::Error::RemovedCard);
            }
            let answer = self.answer(apdu);
            buf[..answer.len()].copy_from_slice(&answer);
            Ok(&buf[..answer.len()])
        }
    }

    fn cred(name: &'static str, totp: bool) -> FakeCred {
        FakeCred {
            name,
            totp,
            digits: 6,
            touch: false,
            counter: 0,
        }
    }

    fn run(
        token: &mut YubiKeyOath,
        key: &FakeKey,
        goal: Goal,
        ask: &mut AskPin<'_>,
    ) -> Result<Outcome, Failure> {
        let wanted = token.wanted_name();
        token.run_on_card(key, "Fake YubiKey 00 00", goal, wanted.as_deref(), ask)
    }

    fn no_pin(_: PinRequest<'_>) -> Result<String, ClientError> {
        panic!("no PIN should be asked for")
    }

    fn failure_text(f: Failure) -> String {
        match f {
            Failure::Skip(s) => format!("skip: {s}"),
            Failure::NoCredential(e) => format!("no credential: {e}"),
            Failure::Fatal(e) => format!("fatal: {e}"),
        }
    }

    #[test]
    fn totp_and_hotp_codes_from_a_simulated_key() {
        let now = 1_111_111_109;
        let fake = FakeKey::new(vec![cred("mail", true), cred("vpn", false)]);
        fake.creds.borrow_mut()[0].digits = 8;
        // The first credential when none is named.
        let mut token = YubiKeyOath::new(None);
        let out = run(
            &mut token,
            &fake,
            Goal::Code { unix_time: now },
            &mut no_pin,
        )
        .map_err(failure_text)
        .unwrap();
        assert_eq!(out.code.unwrap(), totp(Algorithm::Sha1, SECRET, now, 30, 8));
        // A named HOTP credential advances the key's counter.
        let mut token = YubiKeyOath::new(Some("vpn"));
        for counter in 0..2 {
            let out = run(
                &mut token,
                &fake,
                Goal::Code { unix_time: now },
                &mut no_pin,
            )
            .map_err(failure_text)
            .unwrap();
            assert_eq!(out.code.unwrap(), hotp(Algorithm::Sha1, SECRET, counter, 6));
        }
        // A probe calculates nothing.
        fake.log.borrow_mut().clear();
        let out = run(&mut token, &fake, Goal::Probe, &mut no_pin)
            .map_err(failure_text)
            .unwrap();
        assert_eq!((out.code, out.credential.name()), (None, "vpn".to_string()));
        assert_eq!(*fake.log.borrow(), [0xa4, 0xa1]);
        assert_eq!(fake.creds.borrow()[1].counter, 2);
    }

    #[test]
    fn pin_is_asked_retried_and_remembered() {
        let mut fake = FakeKey::new(vec![cred("vpn", true)]);
        fake.password = Some("sesame");
        let mut token = YubiKeyOath::new(Some("vpn"));
        let mut asked = Vec::new();
        let mut answers = vec!["wrong", "sesame"].into_iter();
        let out = run(
            &mut token,
            &fake,
            Goal::Code { unix_time: 59 },
            &mut |req| {
                asked.push((req.reader.to_string(), req.retry));
                Ok(answers.next().unwrap().to_string())
            },
        )
        .map_err(failure_text)
        .unwrap();
        assert_eq!(out.code.unwrap(), totp(Algorithm::Sha1, SECRET, 59, 30, 6));
        assert_eq!(
            asked,
            [
                ("Fake YubiKey 00 00".to_string(), false),
                ("Fake YubiKey 00 00".to_string(), true)
            ]
        );
        assert_eq!(token.key, Some(PasswordKey::derive("sesame", &SALT)));
        // The next code unlocks with the remembered key, without asking.
        run(&mut token, &fake, Goal::Code { unix_time: 60 }, &mut no_pin)
            .map_err(failure_text)
            .unwrap();
    }

    #[test]
    fn wrong_pins_give_up_and_cancel_stops() {
        let mut fake = FakeKey::new(vec![cred("vpn", true)]);
        fake.password = Some("sesame");
        let mut token = YubiKeyOath::new(None);
        let mut count = 0;
        let err = run(&mut token, &fake, Goal::Probe, &mut |_| {
            count += 1;
            Ok("nope".into())
        })
        .map_err(failure_text)
        .unwrap_err();
        assert_eq!(count, MAX_PIN_TRIES);
        assert!(
            err.contains("wrong password for the YubiKey OATH applet"),
            "{err}"
        );
        let err = run(&mut token, &fake, Goal::Probe, &mut |_| {
            Err(ClientError::AuthAborted("PIN entry cancelled".into()))
        })
        .map_err(failure_text)
        .unwrap_err();
        assert!(err.starts_with("fatal: PIN entry cancelled"), "{err}");
    }

    #[test]
    fn touch_timeout_and_missing_credential() {
        let mut fake = FakeKey::new(vec![cred("a", true), cred("b", true)]);
        fake.creds.borrow_mut()[1].touch = true;
        fake.touched = false;
        let mut token = YubiKeyOath::new(Some("b"));
        let err = run(&mut token, &fake, Goal::Code { unix_time: 0 }, &mut no_pin)
            .map_err(failure_text)
            .unwrap_err();
        assert!(err.contains("'b' needs a touch"), "{err}");
        fake.touched = true;
        run(&mut token, &fake, Goal::Code { unix_time: 0 }, &mut no_pin)
            .map_err(failure_text)
            .unwrap();

        let mut token = YubiKeyOath::new(Some("c"));
        let err = run(&mut token, &fake, Goal::Probe, &mut no_pin)
            .map_err(failure_text)
            .unwrap_err();
        assert_eq!(
            err,
            "no credential: token 'c' not found on the YubiKey (it has 'a', 'b')"
        );
    }

    #[test]
    fn chained_answers_and_dead_cards() {
        let mut fake = FakeKey::new(vec![cred("first", true), cred("second", true)]);
        fake.split_list = Some(5);
        let mut token = YubiKeyOath::new(Some("second"));
        run(&mut token, &fake, Goal::Probe, &mut no_pin)
            .map_err(failure_text)
            .unwrap();
        assert_eq!(*fake.log.borrow(), [0xa4, 0xa1, 0xa5]);

        fake.fail_transmit = true;
        let err = run(&mut token, &fake, Goal::Probe, &mut no_pin)
            .map_err(failure_text)
            .unwrap_err();
        assert!(err.starts_with("skip: selecting the OATH applet"), "{err}");
    }

    #[test]
    fn failures_sort_into_skip_and_stop() {
        assert!(matches!(
            Failure::from(YubiKeyError::NoApplet { status: 0x6a82 }),
            Failure::Skip(s) if s.contains("6A82")
        ));
        assert!(matches!(
            Failure::from(YubiKeyError::NoCredentials),
            Failure::NoCredential(_)
        ));
        assert!(matches!(
            Failure::from(YubiKeyError::TouchTimeout { name: "x".into() }),
            Failure::Fatal(_)
        ));
        let token = YubiKeyOath::new(Some(""));
        assert_eq!(token.wanted_name(), None);
        let token = YubiKeyOath::new(Some("vpn"));
        assert_eq!(token.wanted_name().as_deref(), Some("vpn"));
    }
}
