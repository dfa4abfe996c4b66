//! Proxy authentication: the `Proxy-Authenticate` challenges, which methods `--proxy-auth`
//! allows, and the `Proxy-Authorization` answer, tried in openconnect's order (GSSAPI,
//! NTLM, Digest, Basic), each method at most once.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::digest::digest_authorization;
use super::{ntlm, Credentials, ProxyError};

/// The GSSAPI mechanisms HTTP authentication uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `Negotiate`: SPNEGO, with Kerberos in practice (one round).
    Spnego,
    /// `NTLM` with the desktop's credentials (gss-ntlmssp or winbind): NEGOTIATE, then
    /// AUTHENTICATE for the peer's CHALLENGE.
    Ntlm,
}

/// Single sign-on with the desktop's credentials through GSSAPI, provided by the shell:
/// security contexts for `HTTP@host`.
pub trait Negotiator: Send + Sync {
    fn start(&self, mechanism: Mechanism, host: &str) -> Result<Box<dyn SecurityContext>, String>;
}

/// One GSSAPI security context: each step takes the peer's last token (none at first)
/// and makes ours.
pub trait SecurityContext: Send {
    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, String>;
}

/// A shared [`Negotiator`], for settings that are compared and printed.
#[derive(Clone)]
pub struct NegotiatorHandle(pub std::sync::Arc<dyn Negotiator>);

impl std::fmt::Debug for NegotiatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Negotiator")
    }
}

impl PartialEq for NegotiatorHandle {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for NegotiatorHandle {}

/// The `Negotiate` header value for `host`, or why there is none.
pub fn negotiate_header(negotiator: &NegotiatorHandle, host: &str) -> Result<String, String> {
    let token = negotiator.0.start(Mechanism::Spnego, host)?.step(None)?;
    Ok(format!("Negotiate {}", BASE64.encode(token)))
}

/// An NTLM exchange with the desktop's credentials, between NEGOTIATE and AUTHENTICATE.
pub struct NtlmSso(Box<dyn SecurityContext>);

impl std::fmt::Debug for NtlmSso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NtlmSso")
    }
}

impl NtlmSso {
    /// Starts one for `host`: the `NTLM` header with the NEGOTIATE message.
    pub fn start(negotiator: &NegotiatorHandle, host: &str) -> Result<(Self, String), String> {
        let mut context = negotiator.0.start(Mechanism::Ntlm, host)?;
        let negotiate = context.step(None)?;
        Ok((Self(context), format!("NTLM {}", BASE64.encode(negotiate))))
    }

    /// The `NTLM` header with AUTHENTICATE for the CHALLENGE in the peer's challenges.
    pub fn authenticate(&mut self, challenges: &[Challenge]) -> Result<String, String> {
        let data = challenges
            .iter()
            .filter(|c| c.is(AuthMethod::Ntlm))
            .find_map(|c| c.token68.as_deref())
            .ok_or("the NTLM answer has no CHALLENGE")?;
        let challenge = BASE64
            .decode(data)
            .map_err(|e| format!("the NTLM CHALLENGE is not base64: {e}"))?;
        let answer = self.0.step(Some(&challenge))?;
        Ok(format!("NTLM {}", BASE64.encode(answer)))
    }
}

/// An HTTP authentication method openconnect knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Negotiate,
    Ntlm,
    Digest,
    Basic,
}

/// openconnect's order of preference.
const PREFERENCE: [AuthMethod; 4] = [
    AuthMethod::Negotiate,
    AuthMethod::Ntlm,
    AuthMethod::Digest,
    AuthMethod::Basic,
];

impl AuthMethod {
    /// The scheme name in challenges and answers.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Negotiate => "Negotiate",
            Self::Ntlm => "NTLM",
            Self::Digest => "Digest",
            Self::Basic => "Basic",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Self::Negotiate => 1,
            Self::Ntlm => 2,
            Self::Digest => 4,
            Self::Basic => 8,
        }
    }
}

/// The methods `--proxy-auth` allows. By default every method but Basic, which must be
/// named because it sends the password in the clear (as openconnect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedMethods {
    bits: u8,
    explicit: bool,
}

impl Default for AllowedMethods {
    fn default() -> Self {
        Self {
            bits: 1 | 2 | 4,
            explicit: false,
        }
    }
}

impl AllowedMethods {
    /// Parses `--proxy-auth`'s comma-separated list (`basic`, `digest`, `ntlm`, `gssapi`
    /// or `negotiate`; any case).
    pub fn parse(list: &str) -> Result<Self, ProxyError> {
        let mut bits = 0;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let method = match name.to_ascii_lowercase().as_str() {
                "basic" => AuthMethod::Basic,
                "digest" => AuthMethod::Digest,
                "ntlm" => AuthMethod::Ntlm,
                "gssapi" | "negotiate" => AuthMethod::Negotiate,
                _ => return Err(ProxyError::UnknownMethod(name.to_string())),
            };
            bits |= method.bit();
        }
        Ok(Self {
            bits,
            explicit: true,
        })
    }

    pub fn allows(self, method: AuthMethod) -> bool {
        self.bits & method.bit() != 0
    }

    /// SOCKS's user name and password are sent as Basic is, but a password given in the
    /// URL is enough to allow it unless `--proxy-auth` lists methods without Basic.
    pub fn allows_socks_password(self) -> bool {
        !self.explicit || self.allows(AuthMethod::Basic)
    }

    fn names(self) -> String {
        let names: Vec<&str> = PREFERENCE
            .iter()
            .filter(|m| self.allows(**m))
            .map(|m| m.scheme())
            .collect();
        match names.is_empty() {
            true => "none".into(),
            false => names.join(", "),
        }
    }
}

/// One challenge of a `Proxy-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    /// `name=value` parameters, names in lower case, values unquoted.
    pub params: Vec<(String, String)>,
    /// A bare token after the scheme (NTLM's and Negotiate's data).
    pub token68: Option<String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn is(&self, method: AuthMethod) -> bool {
        self.scheme.eq_ignore_ascii_case(method.scheme())
    }
}

/// The challenges of one header value (RFC 7235: several may share a header).
pub fn parse_challenges(value: &str) -> Vec<Challenge> {
    let b = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        i = skip(b, i, b" \t,");
        let (scheme, next) = token(b, i);
        if scheme.is_empty() {
            return out;
        }
        i = next;
        let mut challenge = Challenge {
            scheme,
            params: Vec::new(),
            token68: None,
        };
        i = skip(b, i, b" \t");
        let (t68, after) = token68(b, i);
        if !t68.is_empty() && matches!(b.get(skip(b, after, b" \t")), None | Some(b',')) {
            challenge.token68 = Some(t68);
            i = after;
        } else {
            i = parse_params(b, i, &mut challenge.params);
        }
        out.push(challenge);
    }
}

/// `name=value` pairs separated by commas; stops before a word that starts a new
/// challenge.
fn parse_params(b: &[u8], mut i: usize, params: &mut Vec<(String, String)>) -> usize {
    loop {
        let start = i;
        let (name, after_name) = token(b, skip(b, i, b" \t"));
        let eq = skip(b, after_name, b" \t");
        if name.is_empty() || b.get(eq) != Some(&b'=') {
            return start;
        }
        let value_at = skip(b, eq + 1, b" \t");
        let (value, after_value) = match b.get(value_at) {
            Some(b'"') => quoted(b, value_at + 1),
            _ => token(b, value_at),
        };
        params.push((name.to_ascii_lowercase(), value));
        i = skip(b, after_value, b" \t");
        match b.get(i) {
            Some(b',') => i += 1,
            _ => return i,
        }
    }
}

fn skip(b: &[u8], mut i: usize, set: &[u8]) -> usize {
    while b.get(i).is_some_and(|c| set.contains(c)) {
        i += 1;
    }
    i
}

fn take_while(b: &[u8], start: usize, keep: impl Fn(u8) -> bool) -> (String, usize) {
    let mut i = start;
    while b.get(i).is_some_and(|c| keep(*c)) {
        i += 1;
    }
    let text = b.get(start..i).unwrap_or_default();
    (String::from_utf8_lossy(text).into_owned(), i)
}

fn token(b: &[u8], start: usize) -> (String, usize) {
    take_while(b, start, |c| {
        c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
    })
}

fn token68(b: &[u8], start: usize) -> (String, usize) {
    let (body, i) = take_while(b, start, |c| {
        c.is_ascii_alphanumeric() || b"-._~+/".contains(&c)
    });
    if body.is_empty() {
        return (body, start);
    }
    let (pad, end) = take_while(b, i, |c| c == b'=');
    (body + &pad, end)
}

/// A quoted string starting after its opening quote, with `\` escapes; an unterminated
/// one runs to the end.
fn quoted(b: &[u8], start: usize) -> (String, usize) {
    let mut out = Vec::new();
    let mut i = start;
    while let Some(&c) = b.get(i) {
        i += 1;
        match c {
            b'"' => break,
            b'\\' => {
                if let Some(&escaped) = b.get(i) {
                    out.push(escaped);
                    i += 1;
                }
            }
            _ => out.push(c),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), i)
}

/// What an answer needs from outside: fresh randomness (Digest's client nonce, NTLM's
/// client challenge) and the time (NTLMv2's timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fresh {
    pub random: [u8; 16],
    pub unix_time: u64,
}

/// What the request being authenticated is, for Digest.
#[derive(Debug, Clone, Copy)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    pub uri: &'a str,
}

/// The state of authenticating to one proxy.
#[derive(Debug)]
pub struct ProxyAuth {
    allowed: AllowedMethods,
    credentials: Option<Credentials>,
    in_progress: Option<AuthMethod>,
    failed: Vec<AuthMethod>,
    digest_nonce: String,
    digest_count: u32,
    /// NTLM's NEGOTIATE went out: the next 407 carries its CHALLENGE.
    ntlm_negotiating: bool,
    /// GSSAPI for Negotiate, and the proxy's host name its tokens are for.
    negotiator: Option<(NegotiatorHandle, String)>,
    /// Why no Negotiate token could be made, for the error when nothing else is left.
    negotiate_failure: Option<String>,
    /// NTLM with the desktop's credentials (no password in the proxy URL), under way.
    ntlm_sso: Option<NtlmSso>,
}

impl ProxyAuth {
    pub fn new(allowed: AllowedMethods, credentials: Option<Credentials>) -> Self {
        Self {
            allowed,
            credentials,
            in_progress: None,
            failed: Vec::new(),
            digest_nonce: String::new(),
            digest_count: 0,
            ntlm_negotiating: false,
            negotiator: None,
            negotiate_failure: None,
            ntlm_sso: None,
        }
    }

    /// Answers Negotiate challenges with tokens for `HTTP@proxy_host`.
    pub fn with_negotiator(mut self, negotiator: NegotiatorHandle, proxy_host: &str) -> Self {
        self.negotiator = Some((negotiator, proxy_host.to_string()));
        self
    }

    /// The method whose answer was sent last, until the proxy replies.
    pub fn in_progress(&self) -> Option<AuthMethod> {
        self.in_progress
    }

    /// The `Proxy-Authorization` value to send after a 407 with these challenges, or why
    /// there is none.
    pub fn answer(
        &mut self,
        challenges: &[Challenge],
        request: RequestLine<'_>,
        fresh: &Fresh,
    ) -> Result<String, ProxyError> {
        let just_failed = self.in_progress.take();
        if just_failed == Some(AuthMethod::Ntlm) && std::mem::take(&mut self.ntlm_negotiating) {
            if let Some(value) = self.ntlm_authenticate(challenges, fresh) {
                self.in_progress = Some(AuthMethod::Ntlm);
                return Ok(value);
            }
        }
        if let Some(method) = just_failed {
            if !is_stale_digest(method, challenges) {
                self.failed.push(method);
            }
        }
        let offered: Vec<AuthMethod> = PREFERENCE
            .into_iter()
            .filter(|m| challenges.iter().any(|c| c.is(*m)))
            .collect();
        for &method in &offered {
            if self.failed.contains(&method) || !self.allowed.allows(method) {
                continue;
            }
            let Some(challenge) = challenges.iter().find(|c| c.is(method)) else {
                continue;
            };
            if let Some(value) = self.authorization(method, challenge, request, fresh)? {
                self.in_progress = Some(method);
                return Ok(value);
            }
        }
        Err(self.nothing_left(&offered, just_failed))
    }

    /// The header value for one method, `None` when this method cannot be answered (not
    /// implemented, or a challenge we cannot meet).
    fn authorization(
        &mut self,
        method: AuthMethod,
        challenge: &Challenge,
        request: RequestLine<'_>,
        fresh: &Fresh,
    ) -> Result<Option<String>, ProxyError> {
        let needs_credentials = || ProxyError::NoCredentials {
            method: method.scheme(),
        };
        match method {
            AuthMethod::Negotiate => {
                let Some((negotiator, host)) = &self.negotiator else {
                    return Ok(None);
                };
                match negotiate_header(negotiator, host) {
                    Ok(value) => Ok(Some(value)),
                    Err(why) => {
                        self.negotiate_failure = Some(why);
                        Ok(None)
                    }
                }
            }
            AuthMethod::Ntlm => {
                let negotiate = match (&self.credentials, &self.negotiator) {
                    (Some(_), _) => format!("NTLM {}", BASE64.encode(ntlm::negotiate())),
                    (None, Some((negotiator, host))) => match NtlmSso::start(negotiator, host) {
                        Ok((sso, header)) => {
                            self.ntlm_sso = Some(sso);
                            header
                        }
                        Err(_) => return Err(needs_credentials()),
                    },
                    (None, None) => return Err(needs_credentials()),
                };
                self.ntlm_negotiating = true;
                Ok(Some(negotiate))
            }
            AuthMethod::Basic => {
                let c = self.credentials.as_ref().ok_or_else(needs_credentials)?;
                let raw = format!("{}:{}", c.user, c.password);
                let encoded = BASE64.encode(raw);
                Ok(Some(format!("Basic {encoded}")))
            }
            AuthMethod::Digest => {
                let c = self.credentials.clone().ok_or_else(needs_credentials)?;
                let nonce = challenge.param("nonce").unwrap_or_default();
                if nonce != self.digest_nonce {
                    self.digest_nonce = nonce.to_string();
                    self.digest_count = 0;
                }
                self.digest_count = self.digest_count.wrapping_add(1);
                let cnonce = crate::hex::encode(&fresh.random);
                Ok(digest_authorization(
                    challenge,
                    &c,
                    request,
                    &cnonce,
                    self.digest_count,
                ))
            }
        }
    }

    /// NTLM's AUTHENTICATE, answering the CHALLENGE in the proxy's `NTLM` header.
    fn ntlm_authenticate(&mut self, challenges: &[Challenge], fresh: &Fresh) -> Option<String> {
        if let Some(sso) = self.ntlm_sso.as_mut() {
            return sso.authenticate(challenges).ok();
        }
        let credentials = self.credentials.as_ref()?;
        let data = challenges
            .iter()
            .filter(|c| c.is(AuthMethod::Ntlm))
            .find_map(|c| c.token68.as_deref())?;
        let message = BASE64.decode(data).ok()?;
        let challenge = ntlm::parse_challenge(&message)?;
        let client_nonce: [u8; 8] = fresh.random.get(..8)?.try_into().ok()?;
        let answer = ntlm::authenticate(
            &challenge,
            &credentials.user,
            &credentials.password,
            client_nonce,
            fresh.unix_time,
        );
        Some(format!("NTLM {}", BASE64.encode(answer)))
    }

    fn nothing_left(&self, offered: &[AuthMethod], just_failed: Option<AuthMethod>) -> ProxyError {
        if let Some(method) = just_failed {
            return ProxyError::Rejected {
                method: method.scheme(),
            };
        }
        if offered.contains(&AuthMethod::Basic) && !self.allowed.explicit {
            return ProxyError::BasicDisabled;
        }
        if let Some(why) = &self.negotiate_failure {
            return ProxyError::Negotiate(why.clone());
        }
        let offered = match offered.is_empty() {
            true => "nothing we know".to_string(),
            false => offered
                .iter()
                .map(|m| m.scheme())
                .collect::<Vec<_>>()
                .join(", "),
        };
        ProxyError::NoUsableMethod {
            offered,
            allowed: self.allowed.names(),
        }
    }
}

/// A Digest answer refused only because its nonce expired (`stale=true`) is tried again.
fn is_stale_digest(method: AuthMethod, challenges: &[Challenge]) -> bool {
    method == AuthMethod::Digest
        && challenges.iter().any(|c| {
            c.is(AuthMethod::Digest)
                && c.param("stale")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        })
}

#[cfg(test)]
pub(crate) mod tests;
