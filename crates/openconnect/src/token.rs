//! Software tokens (`--token-mode`, `--token-secret`): where the secret comes from and goes
//! back to, which form field a code fills, and the two automatic tries openconnect allows
//! before it asks the user instead. The codes themselves come from `oc-otp`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use oc_otp::secret::{OathKind, OathSecret};
use oc_otp::securid::{validate_pin, PinMode, SecurIdError, SecurIdToken};
use oc_otp::OtpError;
use oc_proto::anyconnect::auth::{AuthForm, FieldKind, FormField};
use tracing::{debug, error, info, warn};

use crate::error::ClientError;
use crate::yubikey::{self, YubiKeyOath};

/// Asks for a secret the token itself needs: (form id, field name, label) -> answer. The
/// login's `-F` entries and the terminal stand behind it, as openconnect's token forms.
pub type AskSecret<'a> = dyn FnMut(&str, &str, &str) -> Result<String, ClientError> + 'a;

/// Token files are small; anything bigger is a mistake, not a token.
const MAX_TOKEN_FILE: u64 = 1 << 20;

/// Automatic codes per login before the field is asked for (avoids account lockouts).
const AUTOMATIC_TRIES: u32 = 2;

/// `--token-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    Rsa,
    Totp,
    Hotp,
    YubiOath,
}

impl TokenMode {
    /// The `--token-mode` names, in openconnect's order (`stoken` is another name of `rsa`).
    pub const NAMES: &'static [&'static str] = &["totp", "hotp", "oidc", "rsa", "yubioath"];

    pub fn parse(text: &str) -> Result<Self, ClientError> {
        match text {
            "rsa" | "stoken" => Ok(Self::Rsa),
            "totp" => Ok(Self::Totp),
            "hotp" => Ok(Self::Hotp),
            "yubioath" => Ok(Self::YubiOath),
            "oidc" => Err(ClientError::Usage(
                "--token-mode=oidc is a bearer token, not a code generator".into(),
            )),
            other => Err(ClientError::Usage(format!(
                "invalid software token mode {other:?} (use rsa, totp, hotp, yubioath or oidc)"
            ))),
        }
    }
}

/// Where the secret text came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Inline,
    /// `@FILE` or `/FILE`; the white space after the secret is kept on write-back.
    File {
        path: PathBuf,
        trailing: String,
    },
}

#[derive(Debug)]
enum Generator {
    Oath(OathSecret),
    YubiKey(YubiKeyOath),
    SecurId(SecurIdToken, SecurIdPin),
}

/// The PIN of a SecurID token, as openconnect keeps it.
#[derive(Default)]
struct SecurIdPin {
    /// What the user typed (none: the token's saved PIN, or no PIN).
    typed: Option<String>,
}

impl std::fmt::Debug for SecurIdPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.typed.is_some() {
            "<typed PIN>"
        } else {
            "<none>"
        })
    }
}

/// Form id of the questions a SecurID token asks (`-F stoken:devid=...`, `stoken:password=`,
/// `stoken:pin=`).
pub const STOKEN_FORM: &str = "stoken";
/// Questions asked before giving up on a token secret (wrong password, bad PIN format).
const SECRET_QUESTIONS: u32 = 3;

/// Unlocks a password- or device-bound token as openconnect does ("Enter credentials to
/// unlock software token."). `Ok(false)`: the user left everything empty (token bypassed).
fn unlock_securid(token: &mut SecurIdToken, ask: &mut AskSecret<'_>) -> Result<bool, ClientError> {
    if !token.needs_password() && !token.needs_devid() {
        return Ok(true);
    }
    info!("Enter credentials to unlock software token.");
    for _ in 0..SECRET_QUESTIONS {
        let devid = match token.needs_devid() {
            true => Some(ask(STOKEN_FORM, "devid", "Device ID:")?),
            false => None,
        };
        let password = match token.needs_password() {
            true => Some(ask(STOKEN_FORM, "password", "Password:")?),
            false => None,
        };
        let answers = [&devid, &password];
        if answers
            .iter()
            .all(|a| a.as_deref().is_none_or(str::is_empty))
        {
            info!("User bypassed soft token.");
            return Ok(false);
        }
        if answers.iter().any(|a| a.as_deref() == Some("")) {
            info!("All fields are required; try again.");
            continue;
        }
        match token.decrypt(password.as_deref(), devid.as_deref()) {
            Ok(()) => return Ok(true),
            Err(SecurIdError::WrongPassword | SecurIdError::WrongDevid) => {
                info!("Incorrect device ID or password; try again.");
            }
            Err(e) => return Err(OtpError::from(e).into()),
        }
    }
    Err(ClientError::AuthAborted(
        "could not unlock the SecurID token (wrong device ID or password)".into(),
    ))
}

/// Asks for the PIN when the token mixes one in and has none saved, or (optionally, may be
/// empty) when the server wants it typed in front of the code, as openconnect does.
fn securid_pin(token: &SecurIdToken, ask: &mut AskSecret<'_>) -> Result<SecurIdPin, ClientError> {
    let prepend = token.pin_mode() == Some(PinMode::Prepend);
    if !prepend && !token.needs_pin() {
        return Ok(SecurIdPin::default());
    }
    info!("Enter software token PIN.");
    for _ in 0..SECRET_QUESTIONS {
        let pin = ask(STOKEN_FORM, "pin", "PIN:")?;
        if pin.is_empty() {
            if prepend {
                return Ok(SecurIdPin::default());
            }
            info!("All fields are required; try again.");
            continue;
        }
        if !prepend && validate_pin(&pin).is_err() {
            info!("Invalid PIN format; try again.");
            continue;
        }
        return Ok(SecurIdPin { typed: Some(pin) });
    }
    Err(ClientError::AuthAborted(
        "no usable SecurID PIN (4 to 8 digits)".into(),
    ))
}

/// `~/.stokenrc`, stoken's default token store.
fn default_stokenrc() -> Result<String, ClientError> {
    let home = std::env::var_os("HOME")
        .ok_or_else(|| ClientError::Usage("HOME is not set; cannot find ~/.stokenrc".into()))?;
    let path = PathBuf::from(home).join(".stokenrc");
    read_token_file(&path).map_err(|_| {
        ClientError::Usage(format!(
            "Can't open ~/.stokenrc file ({}); give the token with --token-secret",
            path.display()
        ))
    })
}

/// The YubiKey's PIN through `ask`, as openconnect's PIN form.
fn yubikey_pin<'a, 'b>(
    ask: &'a mut AskSecret<'b>,
) -> impl FnMut(yubikey::PinRequest<'_>) -> Result<String, ClientError> + use<'a, 'b> {
    move |request| {
        if request.retry {
            warn!("Wrong PIN for the YubiKey in {}", request.reader);
        }
        info!("{}", yubikey::PIN_MESSAGE);
        ask(
            yubikey::PIN_FORM_ID,
            yubikey::PIN_FIELD_NAME,
            yubikey::PIN_LABEL,
        )
    }
}

/// A software token set up from the command line.
#[derive(Debug)]
pub struct SoftToken {
    source: Source,
    generator: Generator,
    tries: u32,
    /// Time-based tokens: the time of the first code; the second try uses the next step.
    first_time: Option<u64>,
    bypassed: bool,
}

/// The time a time-based code is made for: now on the first try, one step after the first
/// try's time on the second (openconnect's "next tokencode").
fn attempt_time(first: &mut Option<u64>, now: u64, step: u64) -> u64 {
    match *first {
        None => *first.insert(now),
        Some(first) => first.saturating_add(step),
    }
}

/// `@FILE` or `/FILE` name a file; anything else is the secret itself.
/// `--token-mode=oidc`'s bearer token: `--token-secret` itself, or the file it names
/// (`@FILE`, `/FILE`), its trailing white space dropped. It goes into an HTTP header, so it
/// must be printable ASCII without spaces.
pub fn bearer_token(secret: Option<&str>) -> Result<String, ClientError> {
    let secret = secret.ok_or_else(|| {
        ClientError::Usage(
            "--token-mode=oidc needs --token-secret (the token, @FILE or /FILE)".into(),
        )
    })?;
    let token = match file_reference(secret) {
        Some(path) => read_token_file(&path)?.trim_end().to_string(),
        None => secret.to_string(),
    };
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ClientError::Usage(
            "--token-secret for --token-mode=oidc: the token must be non-empty printable \
             ASCII without spaces (a JWT or opaque access token)"
                .into(),
        ));
    }
    Ok(token)
}

fn file_reference(secret: &str) -> Option<PathBuf> {
    if let Some(path) = secret.strip_prefix('@') {
        Some(PathBuf::from(path))
    } else if secret.starts_with('/') {
        Some(PathBuf::from(secret))
    } else {
        None
    }
}

fn read_token_file(path: &Path) -> Result<String, ClientError> {
    let meta = fs::metadata(path).map_err(|e| {
        ClientError::Usage(format!("cannot read token file {}: {e}", path.display()))
    })?;
    if meta.len() > MAX_TOKEN_FILE {
        return Err(ClientError::Usage(format!(
            "token file {} is {} bytes; a token file is at most {MAX_TOKEN_FILE}",
            path.display(),
            meta.len()
        )));
    }
    fs::read_to_string(path)
        .map_err(|e| ClientError::Usage(format!("cannot read token file {}: {e}", path.display())))
}

/// Replaces `path`'s contents in one step: a sibling temporary file, then a rename, so a
/// crash leaves the old or the new token, never half of one.
fn write_atomically(path: &Path, contents: &str) -> Result<(), ClientError> {
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "token".into());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        if let Ok(meta) = fs::metadata(&target) {
            file.set_permissions(meta.permissions())?;
        }
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temp, &target)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&temp);
        ClientError::System(format!(
            "cannot write the token back to {}: {e}",
            target.display()
        ))
    })
}

impl SoftToken {
    /// Sets up the token from `--token-mode` and `--token-secret`.
    /// For a YubiKey the key is looked for now (asking for its PIN if locked), as
    /// openconnect does, so a missing key fails before the login starts.
    pub fn from_options(
        mode: &str,
        secret: Option<&str>,
        ask: &mut AskSecret<'_>,
    ) -> Result<Self, ClientError> {
        let mode = TokenMode::parse(mode)?;
        // A YubiKey's secret is its credential's name, never a file.
        let file_secret = secret.filter(|_| mode != TokenMode::YubiOath);
        let (text, source) = match file_secret.map(|s| (s, file_reference(s))) {
            Some((_, Some(path))) => {
                let text = read_token_file(&path)?;
                let trailing = text[text.trim_end().len()..].to_string();
                (Some(text), Source::File { path, trailing })
            }
            Some((inline, None)) => (Some(inline.to_string()), Source::Inline),
            None => (None, Source::Inline),
        };
        let generator = match mode {
            TokenMode::Totp | TokenMode::Hotp => {
                let kind = if mode == TokenMode::Totp {
                    OathKind::Totp
                } else {
                    OathKind::Hotp
                };
                let text = text.ok_or_else(|| {
                    ClientError::Usage(format!("--token-mode={} needs --token-secret", kind.name()))
                })?;
                Generator::Oath(OathSecret::parse(&text, kind).map_err(OtpError::from)?)
            }
            TokenMode::YubiOath => {
                let mut token = YubiKeyOath::new(secret);
                let credential = token.probe(&mut yubikey_pin(ask))?;
                info!(
                    "Using YubiKey credential {} ({})",
                    credential.name(),
                    credential.kind()
                );
                Generator::YubiKey(token)
            }
            TokenMode::Rsa => {
                let text = match text {
                    Some(t) => t,
                    None => default_stokenrc()?,
                };
                let mut token = SecurIdToken::import(&text).map_err(OtpError::from)?;
                if !unlock_securid(&mut token, ask)? {
                    let mut bypassed =
                        Self::new(source, Generator::SecurId(token, SecurIdPin::default()));
                    bypassed.bypassed = true;
                    return Ok(bypassed);
                }
                let pin = securid_pin(&token, ask)?;
                Generator::SecurId(token, pin)
            }
        };
        Ok(Self::new(source, generator))
    }

    fn new(source: Source, generator: Generator) -> Self {
        Self {
            source,
            generator,
            tries: 0,
            first_time: None,
            bypassed: false,
        }
    }

    /// Whether a code belongs in `field` (a password field), as openconnect places them:
    /// SecurID in the primary password ("password" or "answer"), OATH in
    /// "secondary_password" or any password field of a "challenge" form. Beyond
    /// openconnect, OATH also fills the single password field of a form whose message asks
    /// for an OTP, which is how ocserv asks for its second factor.
    pub fn fills(&self, form: &AuthForm, field: &FormField) -> bool {
        if self.bypassed || field.kind != FieldKind::Password {
            return false;
        }
        if field.token {
            return true;
        }
        if matches!(self.generator, Generator::SecurId(..)) {
            return field.name == "password" || field.name == "answer";
        }
        if field.name == "secondary_password" || form.id == "challenge" {
            return true;
        }
        let asks_for_otp = form.message.as_deref().is_some_and(|m| {
            m.contains("OTP") || m.to_ascii_lowercase().contains("one-time password")
        });
        let password_fields = form
            .fields
            .iter()
            .filter(|f| f.kind == FieldKind::Password)
            .count();
        asks_for_otp && password_fields == 1
    }

    /// The next code for a field [`Self::fills`] accepted in `form`, or `None` once the
    /// server has rejected two codes (the caller asks the user from then on). SecurID makes
    /// a second code only when the server asks for the "next tokencode", as openconnect.
    pub fn next_code(
        &mut self,
        form: &AuthForm,
        now: u64,
        ask: &mut AskSecret<'_>,
    ) -> Result<Option<String>, ClientError> {
        let wants_next = form
            .message
            .as_deref()
            .is_some_and(|m| m.to_ascii_lowercase().contains("next tokencode"));
        let securid_gives_up =
            matches!(self.generator, Generator::SecurId(..)) && self.tries == 1 && !wants_next;
        if self.tries >= AUTOMATIC_TRIES || securid_gives_up {
            if !self.bypassed {
                info!("Server is rejecting the soft token; switching to manual entry");
                self.bypassed = true;
            }
            return Ok(None);
        }
        let code = match &mut self.generator {
            Generator::Oath(secret) => match secret.kind() {
                OathKind::Totp => {
                    info!("Generating OATH TOTP token code");
                    secret.totp(attempt_time(&mut self.first_time, now, secret.period()))
                }
                OathKind::Hotp => {
                    info!("Generating OATH HOTP token code");
                    if let Source::File { path, .. } = &self.source {
                        // Another process may have used the token since we read it.
                        let text = read_token_file(path)?;
                        *secret =
                            OathSecret::parse(&text, OathKind::Hotp).map_err(OtpError::from)?;
                    }
                    let code = secret.next_hotp();
                    if let Source::File { path, trailing } = &self.source {
                        write_atomically(path, &format!("{}{trailing}", secret.render()))?;
                        debug!(
                            "HOTP counter {} saved to {}",
                            secret.counter(),
                            path.display()
                        );
                    }
                    code
                }
            },
            Generator::SecurId(token, pin) => {
                info!("Generating RSA token code");
                let interval = u64::from(token.interval().unwrap_or(60));
                let time = attempt_time(&mut self.first_time, now, interval);
                token
                    .passcode(time, pin.typed.as_deref())
                    .map_err(OtpError::from)?
            }
            Generator::YubiKey(token) => {
                // TOTP credentials: the second try is the next step, as for soft TOTP.
                let period = token.credential().map_or(30, |c| c.period());
                let time = attempt_time(&mut self.first_time, now, period);
                match token.code(time, &mut yubikey_pin(ask)) {
                    Ok(code) => code,
                    Err(e) => {
                        // As openconnect: a token failure means typing the code instead.
                        error!("{e}");
                        self.bypassed = true;
                        return Ok(None);
                    }
                }
            }
        };
        self.tries += 1;
        Ok(Some(code))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use oc_proto::anyconnect::auth::parse_auth_document;

    fn form(xml: &str) -> AuthForm {
        parse_auth_document(xml).unwrap().form
    }

    const RFC_HEX: &str = "0x3132333435363738393031323334353637383930";

    fn no_ask(form: &str, field: &str, _: &str) -> Result<String, ClientError> {
        panic!("unexpected question {form}:{field}")
    }

    fn any_form() -> AuthForm {
        form(
            r#"<auth id="main"><form><input type="password" name="password" label="Password:"/></form></auth>"#,
        )
    }

    /// A SecurID token string (stoken's v2 format) with this PIN mode and protection.
    fn securid_string(pin_mode: u8, password: Option<&str>) -> String {
        let token = SecurIdToken::from_params(&oc_otp::securid::TokenParams {
            serial: "123456789012".into(),
            seed: *b"0123456789abcdef",
            digits: 8,
            interval: 60,
            pin_mode,
            expiry_days: 16000,
        })
        .unwrap();
        token.export_v2(password, None, false).unwrap()
    }

    #[test]
    fn securid_unlocks_asks_the_pin_and_fills_the_primary_password() {
        let text = securid_string(3, Some("tokenpw"));
        let mut asked = Vec::new();
        let mut answers = |form: &str, field: &str, _: &str| {
            asked.push(format!("{form}:{field}"));
            Ok(match field {
                "password" => "tokenpw".to_string(),
                _ => "1234".to_string(),
            })
        };
        let mut token = SoftToken::from_options("rsa", Some(&text), &mut answers).unwrap();
        assert_eq!(asked, ["stoken:password", "stoken:pin"]);
        let login = any_form();
        assert!(token.fills(&login, &login.fields[0]));
        let secondary = form(
            r#"<auth id="main"><form><input type="password" name="secondary_password" label="P:"/></form></auth>"#,
        );
        assert!(
            !token.fills(&secondary, &secondary.fields[0]),
            "OATH's field"
        );
        let mut expected = SecurIdToken::import(&text).unwrap();
        expected.decrypt(Some("tokenpw"), None).unwrap();
        assert_eq!(
            token
                .next_code(&login, 1_700_000_000, &mut no_ask)
                .unwrap()
                .unwrap(),
            expected.code(1_700_000_000, Some("1234")).unwrap()
        );
        // A second code only when the server asks for the next tokencode.
        let next = form(
            r#"<auth id="main"><message>Please enter the next tokencode</message><form><input type="password" name="password" label="Password:"/></form></auth>"#,
        );
        assert_eq!(
            token
                .next_code(&next, 1_700_000_005, &mut no_ask)
                .unwrap()
                .unwrap(),
            expected.code(1_700_000_060, Some("1234")).unwrap()
        );
        assert_eq!(token.next_code(&next, 0, &mut no_ask).unwrap(), None);
    }

    #[test]
    fn securid_prepends_a_typed_pin_and_stops_without_next_tokencode() {
        let text = securid_string(0, None);
        let mut token =
            SoftToken::from_options("rsa", Some(&text), &mut |_, _, _| Ok("9876".into())).unwrap();
        let code = SecurIdToken::import(&text)
            .unwrap()
            .code(1_700_000_000, None)
            .unwrap();
        assert_eq!(
            token
                .next_code(&any_form(), 1_700_000_000, &mut no_ask)
                .unwrap()
                .unwrap(),
            format!("9876{code}")
        );
        assert_eq!(
            token
                .next_code(&any_form(), 1_700_000_000, &mut no_ask)
                .unwrap(),
            None
        );
        // Wrong token password three times: a clear error. All fields empty: bypassed.
        let locked = securid_string(0, Some("right"));
        let err = SoftToken::from_options("rsa", Some(&locked), &mut |_, _, _| Ok("wrong".into()))
            .unwrap_err();
        assert!(err.to_string().contains("could not unlock"), "{err}");
        let bypassed =
            SoftToken::from_options("rsa", Some(&locked), &mut |_, _, _| Ok(String::new()))
                .unwrap();
        let login = any_form();
        assert!(!bypassed.fills(&login, &login.fields[0]));
        let err = SoftToken::from_options("rsa", Some("12345"), &mut no_ask).unwrap_err();
        assert!(err.to_string().contains("SecurID"), "{err}");
    }

    #[test]
    fn modes() {
        assert_eq!(TokenMode::parse("yubioath").unwrap(), TokenMode::YubiOath);
        let err = TokenMode::parse("sms").unwrap_err().to_string();
        assert!(err.contains("sms") && err.contains("rsa, totp"), "{err}");
        assert!(bearer_token(None).is_err());
        assert_eq!(bearer_token(Some("eyJ.x-y_z.s")).unwrap(), "eyJ.x-y_z.s");
        for bad in ["two words", "line\nbreak", ""] {
            assert!(bearer_token(Some(bad)).is_err(), "{bad:?}");
        }
        let file = std::env::temp_dir().join(format!("oidc-token-{}", std::process::id()));
        fs::write(&file, "from.file.token\n").unwrap();
        let at = format!("@{}", file.display());
        assert_eq!(bearer_token(Some(&at)).unwrap(), "from.file.token");
        let _ = fs::remove_file(&file);
        let err = SoftToken::from_options("totp", None, &mut no_ask)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--token-secret"), "{err}");
        let err = SoftToken::from_options("totp", Some("base32:AB1C"), &mut no_ask)
            .unwrap_err()
            .to_string();
        assert!(err.contains("position 3"), "{err}");
        assert!(!err.contains("AB1C"), "secret in message: {err}");
    }

    #[test]
    fn placement_follows_openconnect_plus_ocserv_otp_forms() {
        let totp = SoftToken::from_options("totp", Some(RFC_HEX), &mut no_ask).unwrap();
        let login = form(
            r#"<auth id="main"><message>Please enter your username and password.</message><form>
            <input type="text" name="username" label="Username:"/>
            <input type="password" name="password" label="Password:"/></form></auth>"#,
        );
        assert!(!totp.fills(&login, &login.fields[1]));
        let second = form(
            r#"<auth id="main"><form><input type="password" name="password" label="Password:"/>
            <input type="password" name="secondary_password" label="Password1:"/></form></auth>"#,
        );
        assert!(!totp.fills(&second, &second.fields[0]));
        assert!(totp.fills(&second, &second.fields[1]));
        let challenge = form(
            r#"<auth id="challenge"><form><input type="password" name="answer" label="Code:"/></form></auth>"#,
        );
        assert!(totp.fills(&challenge, &challenge.fields[0]));
        let ocserv_otp = form(
            r#"<auth id="main"><message>Please enter your OTP password.</message><form>
            <input type="password" name="password" label="Password:"/></form></auth>"#,
        );
        assert!(totp.fills(&ocserv_otp, &ocserv_otp.fields[0]));
        // A field the protocol marks as a token field (Fortinet's `_challenge` code, as
        // upstream's token-typed field), whatever its name and the form's message.
        let body = "ret=2,reqid=1,polid=2,grp=3,portal=4,magic=5,tokeninfo=,chal_msg=Enter it";
        let response = oc_proto::http::Response {
            head: oc_proto::http::ResponseHead::with_headers(200, &[]),
            body: body.as_bytes().to_vec(),
        };
        let Ok(oc_proto::fortinet::LoginStep::Challenge { form: forti, .. }) =
            oc_proto::fortinet::login_response(&response)
        else {
            panic!("not a challenge");
        };
        assert!(totp.fills(&forti, &forti.fields[0]));
        assert!(!totp.fills(
            &oc_proto::fortinet::login_form(),
            &oc_proto::fortinet::login_form().fields[1]
        ));
    }

    #[test]
    fn totp_tries_now_then_the_next_step_then_gives_up() {
        let mut token = SoftToken::from_options("totp", Some(RFC_HEX), &mut no_ask).unwrap();
        let key = b"12345678901234567890";
        let sha1 = oc_otp::oath::Algorithm::Sha1;
        assert_eq!(
            token
                .next_code(&any_form(), 59, &mut no_ask)
                .unwrap()
                .unwrap(),
            oc_otp::oath::totp(sha1, key, 59, 30, 6)
        );
        assert_eq!(
            token
                .next_code(&any_form(), 60, &mut no_ask)
                .unwrap()
                .unwrap(),
            oc_otp::oath::totp(sha1, key, 89, 30, 6)
        );
        assert_eq!(token.next_code(&any_form(), 61, &mut no_ask).unwrap(), None);
        let ocserv_otp = form(
            r#"<auth id="main"><message>Please enter your OTP password.</message><form>
            <input type="password" name="password" label="Password:"/></form></auth>"#,
        );
        assert!(!token.fills(&ocserv_otp, &ocserv_otp.fields[0]), "bypassed");
    }

    #[test]
    fn hotp_file_is_written_back_in_its_form() {
        let dir = std::env::temp_dir().join(format!("fc-token-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hotp");
        fs::write(&file, format!("sha1:{RFC_HEX},3\n")).unwrap();
        let arg = format!("@{}", file.display());
        let mut token = SoftToken::from_options("hotp", Some(&arg), &mut no_ask).unwrap();
        assert_eq!(
            token
                .next_code(&any_form(), 0, &mut no_ask)
                .unwrap()
                .unwrap(),
            "969429"
        );
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!("sha1:{RFC_HEX},4\n")
        );
        // Someone else used the token meanwhile: we continue from the file.
        fs::write(&file, format!("sha1:{RFC_HEX},7\n")).unwrap();
        assert_eq!(
            token
                .next_code(&any_form(), 0, &mut no_ask)
                .unwrap()
                .unwrap(),
            "162583"
        );
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!("sha1:{RFC_HEX},8\n")
        );
        // Absolute paths work without '@'.
        let mut by_path =
            SoftToken::from_options("hotp", Some(file.to_str().unwrap()), &mut no_ask).unwrap();
        assert_eq!(
            by_path
                .next_code(&any_form(), 0, &mut no_ask)
                .unwrap()
                .unwrap(),
            "399871"
        );
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left");
        fs::remove_dir_all(&dir).unwrap();
        let err = SoftToken::from_options("hotp", Some("@/nonexistent/x"), &mut no_ask)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/x"), "{err}");
    }
}
