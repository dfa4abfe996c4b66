//! Messages between the server's processes, without I/O.
//!
//! The server runs as three processes (see ARCHITECTURE.md): the privileged main process,
//! the security module (keys, password and OTP files) and the unprivileged network process.
//! They talk over Unix stream socketpairs in frames of
//! `[length: u32 big-endian][version: u8][postcard payload]`, where `length` counts the
//! version byte and the payload and is at most [`MAX_FRAME`].
//!
//! The network process is the one facing the Internet, so what it may ask is limited to
//! what a client could cause: check these credentials, sign this handshake, run the
//! configured connect script for this session, route this network to the tun device. It
//! can never ask for a key or name a command.
//!
//! Every message is a request answered by exactly one reply on the same socket, so a
//! channel carries one exchange at a time and needs no request ids.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Version of the message set; processes of one binary always agree, a mismatch means a
/// stale process or garbage.
pub const IPC_VERSION: u8 = 3;
/// Bytes of a frame's length prefix and version.
pub const FRAME_HEADER_LEN: usize = 5;
/// Largest frame (version byte and payload): a configuration with its certificate chains
/// fits with room to spare.
pub const MAX_FRAME: usize = 1024 * 1024;
/// Longest environment variable value a script request may carry.
pub const MAX_ENV_VALUE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpcError {
    #[error("empty frame (length 0): no version byte")]
    Empty,
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("message version {found}, this process speaks {IPC_VERSION}")]
    Version { found: u8 },
    #[error("undecodable {what}: {detail}")]
    Decode { what: &'static str, detail: String },
    #[error("{what} carries {len} trailing bytes")]
    Trailing { what: &'static str, len: usize },
    #[error("cannot encode {what}: {detail}")]
    Encode { what: &'static str, detail: String },
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}

/// Reads a frame header: the number of bytes (version and payload) that follow it.
pub fn frame_len(header: [u8; FRAME_HEADER_LEN - 1]) -> Result<usize, IpcError> {
    let len = u32::from_be_bytes(header) as usize;
    match len {
        0 => Err(IpcError::Empty),
        n if n > MAX_FRAME => Err(IpcError::TooLarge(n)),
        n => Ok(n),
    }
}

/// Encodes `msg` as one whole frame, length prefix included.
pub fn encode<T: Serialize + Message>(msg: &T) -> Result<Vec<u8>, IpcError> {
    let mut out = vec![0u8; FRAME_HEADER_LEN];
    out = postcard::to_extend(msg, out).map_err(|e| IpcError::Encode {
        what: T::NAME,
        detail: e.to_string(),
    })?;
    let len = out.len() - (FRAME_HEADER_LEN - 1);
    if len > MAX_FRAME {
        return Err(IpcError::TooLarge(len));
    }
    let prefix = u32::try_from(len).map_err(|_| IpcError::TooLarge(len))?;
    if let Some(head) = out.get_mut(..FRAME_HEADER_LEN) {
        head[..4].copy_from_slice(&prefix.to_be_bytes());
        head[4] = IPC_VERSION;
    }
    Ok(out)
}

/// Decodes a frame's body (version byte and payload, as counted by [`frame_len`]) and
/// checks the message's own invariants.
pub fn decode<T: DeserializeOwned + Message>(body: &[u8]) -> Result<T, IpcError> {
    let (&version, payload) = body.split_first().ok_or(IpcError::Empty)?;
    if version != IPC_VERSION {
        return Err(IpcError::Version { found: version });
    }
    if body.len() > MAX_FRAME {
        return Err(IpcError::TooLarge(body.len()));
    }
    let (msg, rest): (T, &[u8]) =
        postcard::take_from_bytes(payload).map_err(|e| IpcError::Decode {
            what: T::NAME,
            detail: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(IpcError::Trailing {
            what: T::NAME,
            len: rest.len(),
        });
    }
    msg.check()?;
    Ok(msg)
}

/// A message type: its name for errors, and the checks a decoded value must pass beyond
/// its shape.
pub trait Message {
    const NAME: &'static str;
    fn check(&self) -> Result<(), IpcError> {
        Ok(())
    }
}

fn invalid(what: &'static str, detail: impl Into<String>) -> IpcError {
    IpcError::Invalid {
        what,
        detail: detail.into(),
    }
}

// ---------------------------------------------------------------------------------------
// Network process -> security module
// ---------------------------------------------------------------------------------------

/// Which private key: the configuration generation (bumped on every reload, so a handshake
/// that started before a reload still signs with the key of its certificate) and the index
/// of the `server-cert`/`server-key` pair, counted over the default host's pairs and then
/// each virtual host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRef {
    pub generation: u32,
    pub index: u32,
}

/// A private-key operation of a TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignOp {
    /// RSA PKCS#1 v1.5 over a DER DigestInfo.
    RsaPkcs1 { digest_info: Vec<u8> },
    /// RSA-PSS: an EMSA-PSS encoded block (the holder checks its structure).
    RsaPss { encoded: Vec<u8> },
    /// ECDSA over a digest.
    Ecdsa { digest: Vec<u8> },
    /// EdDSA (Ed25519, Ed448) over the message (the holder checks it is TLS server content).
    EdDsa { message: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecModRequest {
    /// Check `password` for `user` in the password file `passwd`, which must be one the
    /// configuration names for the virtual host `vhost` (`None`: the default host).
    CheckPassword {
        passwd: String,
        user: String,
        password: String,
        vhost: Option<String>,
    },
    /// Check and record the one-time `code` of `user` in the users file `otp`, which must
    /// be one the configuration names.
    CheckOtp {
        otp: String,
        user: String,
        code: String,
    },
    Sign {
        key: KeyRef,
        op: SignOp,
    },
    /// A step of a PAM login (`auth = pam`).
    Pam(PamRequest),
    /// An Access-Request for a RADIUS login (`auth = radius`).
    Radius(RadiusCheck),
    /// A client's SPNEGO token (`auth = gssapi`): `id` names the context it continues.
    Gssapi {
        id: Option<u64>,
        token: Vec<u8>,
        vhost: Option<String>,
    },
    /// A client's OpenID Connect bearer token (`auth = oidc`).
    Oidc {
        token: String,
        vhost: Option<String>,
    },
    /// A browser login (`auth = oidc` with `sso`): the provider's login page for these
    /// parameters (`OidcSsoLogin(None)` when browser logins are not configured).
    OidcSsoStart {
        vhost: Option<String>,
        login: SsoLogin,
        state: String,
        challenge: String,
    },
    /// The browser came back with `code`: trade it (with the PKCE `verifier`) for an ID
    /// token and check it against this login's nonce.
    OidcSsoCode {
        vhost: Option<String>,
        login: SsoLogin,
        code: String,
        verifier: String,
    },
    /// The session store: cookies and address leases outlive the network process.
    Session(SessionRequest),
}

/// Where a session's addresses come from (the network process's view of the user's
/// settings and the client's wishes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseAsk {
    pub v4: Option<ipnet::Ipv4Net>,
    /// The network and the prefix length each client gets.
    pub v6: Option<(ipnet::Ipv6Net, u8)>,
    pub predictable: bool,
    pub explicit_v4: Option<Ipv4Addr>,
    pub explicit_v6: Option<std::net::Ipv6Addr>,
}

/// The addresses one session holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseView {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<ipnet::Ipv6Net>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionRequest {
    /// After a successful login: `ticket` from the check that completed it (none for a
    /// certificate login, which only the network process sees).
    Create {
        user: String,
        group: Option<String>,
        ticket: Option<AuthTicket>,
        /// `session-timeout`, seconds.
        timeout: Option<u32>,
        /// Where the user logged in from.
        login_ip: Option<IpAddr>,
        /// The virtual host logged in to (`None`: the default one).
        vhost: Option<String>,
        /// What the back end granted: set by the security module from the ticket (the
        /// network process's value is ignored).
        granted: Option<Box<Granted>>,
    },
    /// Who holds this cookie (before the per-user settings are read), on a connection to
    /// virtual host `vhost` (`None`: the default host).
    Lookup {
        cookie: String,
        vhost: Option<String>,
    },
    /// A CONNECT with this cookie on connection `conn`: checks, leases, attaches.
    Attach {
        cookie: String,
        conn: u64,
        /// `max-same-clients` (0: no limit).
        max_same: u32,
        /// `max-clients` is reached by the tunnels already up.
        server_full: bool,
        lease: LeaseAsk,
        /// The client's address, and whether `deny-roaming` holds the cookie to the
        /// address it logged in from.
        peer: Option<IpAddr>,
        deny_roaming: bool,
    },
    /// `ping-leases`: `taken` answers pings; give the session another IPv4 address.
    Relocate {
        cookie: String,
        taken: Ipv4Addr,
        lease: LeaseAsk,
    },
    /// Connection `conn` ended after moving `bytes` (in, out); `keep` the session for a
    /// reconnect, or end it.
    Detach {
        cookie: String,
        conn: u64,
        keep: bool,
        bytes: (u64, u64),
    },
    /// The interim report of a tunnel that moved `current` bytes (in, out) so far: the
    /// reply has the bytes of the session's ended connections; the security module sends
    /// the session's interim accounting.
    Interim { cookie: String, current: (u64, u64) },
    /// occtl: every session.
    List,
    /// occtl: end the sessions whose public id starts with `sid`, or all of `user`'s; the
    /// ones a connection holds end when it closes (the reply names those connections).
    End {
        sid: Option<String>,
        user: Option<String>,
    },
}

/// A PAM conversation runs in the security module while the network process shows its
/// prompts as forms; each answer goes back until PAM decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PamRequest {
    /// Starts PAM service `service` (one the configuration names for virtual host
    /// `vhost`) for `user`, logging in from `rhost`.
    Start {
        service: String,
        user: String,
        rhost: Option<String>,
        vhost: Option<String>,
    },
    /// The answer to the prompt of conversation `id`.
    Answer { id: u64, answer: String },
    /// The client went away: conversation `id` ends.
    Abort { id: u64 },
}

/// Where a PAM conversation stands after a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PamEvent {
    /// PAM asks: `message` (its information and error lines, then the prompt); `echo`
    /// when the answer may be shown as it is typed.
    Prompt {
        id: u64,
        message: String,
        echo: bool,
    },
    /// Authenticated and the account allowed: the user PAM settled on, their Unix groups
    /// (primary first; `None`: no such Unix user), and the ticket for the session.
    Accepted {
        user: String,
        groups: Option<Vec<String>>,
        ticket: AuthTicket,
    },
    /// PAM refused; `reason` is for the log.
    Rejected { reason: String },
}

/// A RADIUS login step: the user's answer (password, or the response to challenge
/// `challenge`) for the method whose radcli file is `config` (one the configuration names
/// for virtual host `vhost`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RadiusCheck {
    pub config: String,
    pub vhost: Option<String>,
    pub user: String,
    pub answer: String,
    pub challenge: Option<u64>,
    /// The client's address (Calling-Station-Id) and the one it reached (NAS address).
    pub calling_station: String,
    pub nas_address: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// The RADIUS server's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RadiusVerdict {
    /// With the groups of its Class attributes and the ticket for the session (which
    /// carries what the Access-Accept granted).
    Accepted {
        groups: Vec<String>,
        ticket: AuthTicket,
    },
    /// Ask the user `message`; the answer goes back with `challenge: Some(id)`.
    Challenge { id: u64, message: String },
    /// `retry`: a wrong password that may be tried again (no challenge was under way).
    Rejected { reason: String, retry: bool },
}

/// Where a GSSAPI login stands after a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GssapiVerdict {
    /// Send `token` back (`WWW-Authenticate: Negotiate`); the next one continues `id`.
    Continue {
        id: u64,
        token: Vec<u8>,
    },
    /// The user (the local name, or the principal), their Unix groups, the last token
    /// and the ticket for the session.
    Accepted {
        user: String,
        groups: Vec<String>,
        token: Vec<u8>,
        ticket: AuthTicket,
    },
    Rejected {
        reason: String,
    },
}

/// What a browser login was started with: where the provider sends the browser back, and
/// the nonce its ID token must carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoLogin {
    pub redirect_uri: String,
    pub nonce: String,
}

/// The security module's verdict on a bearer token: the user its claims name, with the
/// ticket for the session, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OidcVerdict {
    Accepted { user: String, ticket: AuthTicket },
    Rejected { reason: String },
}

/// Longest SPNEGO token the security module takes (Kerberos tickets with a large PAC
/// are tens of kilobytes).
pub const MAX_GSSAPI_TOKEN: usize = 64 * 1024;

/// What a back end granted with the login (RADIUS's Access-Accept with `groupconfig`):
/// it overrides the user's configured settings for the session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Granted {
    pub ipv4: Option<Ipv4Addr>,
    pub ipv4_netmask: Option<Ipv4Addr>,
    pub ipv6: Option<ipnet::Ipv6Net>,
    pub routes: Vec<IpNet>,
    pub dns: Vec<IpAddr>,
    pub session_timeout: Option<u32>,
    pub idle_timeout: Option<u32>,
    /// Seconds between interim accounting reports.
    pub interim_interval: Option<u32>,
    /// Bytes per second from the client, and to it.
    pub rx_per_sec: Option<u64>,
    pub tx_per_sec: Option<u64>,
}

/// Longest user name, password or code the security module looks at.
pub const MAX_CREDENTIAL: usize = 1024;

impl Message for SecModRequest {
    const NAME: &'static str = "security-module request";
    fn check(&self) -> Result<(), IpcError> {
        let long = |s: &String| s.len() > MAX_CREDENTIAL;
        match self {
            Self::CheckPassword {
                passwd,
                user,
                password,
                ..
            } if long(passwd) || long(user) || long(password) => {
                Err(invalid(Self::NAME, "credential longer than 1024 bytes"))
            }
            Self::CheckOtp { otp, user, code } if long(otp) || long(user) || long(code) => {
                Err(invalid(Self::NAME, "credential longer than 1024 bytes"))
            }
            Self::Pam(PamRequest::Start { service, user, .. }) if long(service) || long(user) => {
                Err(invalid(Self::NAME, "credential longer than 1024 bytes"))
            }
            Self::Gssapi { token, .. } if token.is_empty() || token.len() > MAX_GSSAPI_TOKEN => {
                Err(invalid(
                    Self::NAME,
                    format!("a {}-byte SPNEGO token", token.len()),
                ))
            }
            Self::Oidc { token, .. }
                if token.is_empty() || token.len() > crate::oidc::MAX_TOKEN =>
            {
                Err(invalid(
                    Self::NAME,
                    format!("a {}-byte bearer token", token.len()),
                ))
            }
            Self::OidcSsoStart {
                login,
                state,
                challenge,
                ..
            } if long(&login.redirect_uri)
                || long(&login.nonce)
                || long(state)
                || long(challenge) =>
            {
                Err(invalid(
                    Self::NAME,
                    "browser login field longer than 1024 bytes",
                ))
            }
            Self::OidcSsoCode {
                login,
                code,
                verifier,
                ..
            } if long(&login.redirect_uri)
                || long(&login.nonce)
                || code.len() > crate::oidc::MAX_SSO_FIELD
                || long(verifier) =>
            {
                Err(invalid(Self::NAME, "browser login field too long"))
            }
            Self::Pam(PamRequest::Answer { answer, .. }) if long(answer) => {
                Err(invalid(Self::NAME, "credential longer than 1024 bytes"))
            }
            Self::Radius(RadiusCheck {
                config,
                user,
                answer,
                user_agent,
                calling_station,
                ..
            }) if long(config)
                || long(user)
                || long(answer)
                || long(calling_station)
                || user_agent.as_ref().is_some_and(long) =>
            {
                Err(invalid(Self::NAME, "credential longer than 1024 bytes"))
            }
            Self::Sign { op, .. } => {
                let input = match op {
                    SignOp::RsaPkcs1 { digest_info } => digest_info,
                    SignOp::RsaPss { encoded } => encoded,
                    SignOp::Ecdsa { digest } => digest,
                    SignOp::EdDsa { message } => message,
                };
                // RSA-16384 is 2 KiB; nothing longer is a key we sign with.
                if input.is_empty() || input.len() > 2048 {
                    return Err(invalid(
                        Self::NAME,
                        format!("signature input of {} bytes", input.len()),
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The verdict on a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PasswordVerdict {
    Accepted {
        groups: Vec<String>,
    },
    /// The user's entry has no password: the one-time password alone decides.
    NoPasswordSet {
        groups: Vec<String>,
    },
    Rejected,
}

/// Proof, for creating a session, that the security module checked a user's credentials
/// (the network process cannot make one up).
pub type AuthTicket = [u8; 16];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecModReply {
    /// With a ticket when the check completes the user's credentials (no OTP to follow).
    Password {
        verdict: PasswordVerdict,
        ticket: Option<AuthTicket>,
    },
    /// `refused`: `None` when the code was accepted (then with a ticket), else the reason
    /// for the log.
    Otp {
        refused: Option<String>,
        ticket: Option<AuthTicket>,
    },
    Signature(Vec<u8>),
    Pam(PamEvent),
    Radius(RadiusVerdict),
    Gssapi(GssapiVerdict),
    Oidc(OidcVerdict),
    /// The provider's login page for a browser login, if they are configured.
    OidcSsoLogin(Option<String>),
    Session(SessionReply),
    /// The request was refused; the reason is for the log.
    Refused(String),
}

/// A session as the network process sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// occtl's ID.
    pub id: u64,
    /// The public id (hex of a hash of the cookie).
    pub sid: String,
    pub user: String,
    pub group: Option<String>,
    pub lease: Option<LeaseView>,
    /// Seconds left until `session-timeout` ends it.
    pub remaining: Option<u64>,
    pub created_unix: u64,
    /// The connection holding it.
    pub attached: Option<u64>,
    /// Seconds it stays usable while no connection holds it.
    pub expires_in: u64,
    /// Bytes of its ended connections (in, out).
    pub carried: (u64, u64),
    /// Where the user logged in from.
    pub login_ip: Option<IpAddr>,
    /// The virtual host the user logged in to (`None`: the default one).
    pub vhost: Option<String>,
    /// What the login's back end granted (RADIUS), over the configured settings.
    pub granted: Option<Box<Granted>>,
}

/// Why a cookie opens no tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CookieRefusal {
    Malformed,
    Unknown,
    SessionTimeout,
    /// `max-same-clients`: the user has this many sessions connected.
    MaxSame(u32),
    /// `max-clients`: the server is full.
    ServerFull,
    /// No address could be leased (the pool's words).
    Pool(String),
    /// The client wants no address family the server has.
    NoFamily,
    /// `deny-roaming`: the cookie comes from another address than the login did.
    Roaming {
        login: IpAddr,
    },
    /// The cookie was issued by another virtual host (`None`: the default one).
    OtherHost {
        issued_by: Option<String>,
    },
    /// The account may not be used now (`acct = pam`: PAM's account check refused it).
    Account(String),
    /// The session store could not be asked (the reason is for the log).
    Unavailable(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionReply {
    Created {
        cookie: String,
    },
    Found(SessionView),
    Attached {
        session: SessionView,
        /// The lease was the session's already (a reconnect).
        reused: bool,
        /// The connection that held the session before, to be told to go.
        replaced: Option<u64>,
    },
    Relocated(LeaseView),
    Detached {
        ended: bool,
        carried: (u64, u64),
    },
    Carried((u64, u64)),
    List(Vec<SessionView>),
    /// The connections holding matching sessions (to be disconnected; their sessions end
    /// as they close) and how many sessions matched.
    Ended {
        conns: Vec<u64>,
        count: usize,
    },
    Refused(CookieRefusal),
}

impl Message for SecModReply {
    const NAME: &'static str = "security-module reply";
}

// ---------------------------------------------------------------------------------------
// Network process -> main process
// ---------------------------------------------------------------------------------------

/// Which configured script to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScriptKind {
    Connect,
    Disconnect,
    /// `host-update-script`: the client named its host (`X-CSTP-Hostname`).
    HostUpdate,
}

/// The environment variables a connect or disconnect script may receive (ocserv's set);
/// anything else in a request is refused, so the network process cannot set `PATH`,
/// `LD_PRELOAD` or the like for a root shell.
pub const SCRIPT_VARIABLES: &[&str] = &[
    "REASON",
    "VHOST",
    "USERNAME",
    "GROUPNAME",
    "HOSTNAME",
    "DEVICE",
    "USER_AGENT",
    "DEVICE_TYPE",
    "DEVICE_PLATFORM",
    "IP_REAL",
    "IP_REAL_LOCAL",
    "IP_LOCAL",
    "IP_REMOTE",
    "IPV6_LOCAL",
    "IPV6_REMOTE",
    "IPV6_PREFIX",
    "ID",
    "REMOTE_HOSTNAME",
    "OCSERV_ROUTES",
    "OCSERV_ROUTES4",
    "OCSERV_ROUTES6",
    "OCSERV_NO_ROUTES",
    "OCSERV_NO_ROUTES4",
    "OCSERV_NO_ROUTES6",
    "OCSERV_DNS",
    "OCSERV_DNS4",
    "OCSERV_DNS6",
    "OCSERV_RESTRICT_TO_ROUTES",
    "OCSERV_ALLOW_PORTS",
    "OCSERV_DENY_PORTS",
    "STATS_BYTES_IN",
    "STATS_BYTES_OUT",
    "STATS_DURATION",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MainRequest {
    /// Run the configured connect or disconnect script with this environment.
    RunScript {
        kind: ScriptKind,
        env: Vec<(String, String)>,
    },
    /// Route `net` (an address pool, or with `iroute` a user's iroute) to the tun device.
    AddRoute { net: IpNet, iroute: bool },
    /// `ping-leases`: does this address answer a ping (in use elsewhere)?
    AddressInUse { addr: Ipv4Addr },
    /// The server's address in each pool on the tun device (`present`) or off it: as on
    /// ocserv's per-client devices, it exists only while a tunnel is up. Requests can
    /// overtake one another on the channels: one whose `seq` is not newer than the last
    /// applied is stale and ignored.
    ServerAddresses { seq: u64, present: bool },
    /// The per-group and per-user settings files that apply to a session
    /// (`config-per-group`/`config-per-user`, else the default files): the network process
    /// may run chrooted and unprivileged, so the main process reads them. The directories
    /// are those of virtual host `vhost` (`None`: the default host).
    UserFiles {
        user: String,
        group: Option<String>,
        vhost: Option<String>,
    },
    /// occtl's `reload`: read the configuration again (as SIGHUP does).
    Reload,
    /// occtl's `stop now`: stop the server.
    Stop,
}

impl Message for MainRequest {
    const NAME: &'static str = "main-process request";
    fn check(&self) -> Result<(), IpcError> {
        match self {
            Self::RunScript { env, .. } => {
                if env.len() > SCRIPT_VARIABLES.len() {
                    return Err(invalid(Self::NAME, "too many script variables"));
                }
                for (name, value) in env {
                    if !SCRIPT_VARIABLES.contains(&name.as_str()) {
                        return Err(invalid(
                            Self::NAME,
                            format!("script variable {name:?} is not one ocserv sets"),
                        ));
                    }
                    if value.len() > MAX_ENV_VALUE || value.contains('\0') {
                        return Err(invalid(
                            Self::NAME,
                            format!("script variable {name} has an unusable value"),
                        ));
                    }
                }
                Ok(())
            }
            Self::UserFiles { user, group, .. } => {
                for name in std::iter::once(user).chain(group) {
                    if let Some(why) = file_name_problem(name) {
                        return Err(invalid(
                            Self::NAME,
                            format!("{name:?} cannot name a settings file: {why}"),
                        ));
                    }
                }
                Ok(())
            }
            // A default route through the tun device would capture the host's traffic.
            Self::AddRoute { net, .. } if net.prefix_len() == 0 => Err(invalid(
                Self::NAME,
                format!("route {net} covers everything"),
            )),
            _ => Ok(()),
        }
    }
}

/// Why a user or group name (the client's) cannot be looked up as a file in a
/// configuration directory, if it cannot: it must stay one path component inside it.
pub fn file_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("the name is empty")
    } else if name.len() > 255 {
        Some("the name is longer than 255 bytes")
    } else if name.contains('/') {
        Some("the name contains '/'")
    } else if name.starts_with('.') {
        Some("the name starts with '.'")
    } else if name.chars().any(char::is_control) {
        Some("the name contains a control character")
    } else {
        None
    }
}

/// One per-user or per-group settings file, as read (its bytes: the reader parses them and
/// reports invalid UTF-8 at its line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MainReply {
    Done,
    Answer(bool),
    /// The group's file, then the user's (each absent when none applies).
    UserFiles {
        group: Option<SettingsFile>,
        user: Option<SettingsFile>,
    },
    Failed(String),
}

impl Message for MainReply {
    const NAME: &'static str = "main-process reply";
}

// ---------------------------------------------------------------------------------------
// Main process -> network process and security module
// ---------------------------------------------------------------------------------------

/// What the network process needs to serve one host (the default or a `[vhost:...]`),
/// read for it by the main process (it cannot read root-only files once it runs as
/// `run-as-user`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSetup {
    /// PEM certificate chains, in the order of the host's `server-cert` lines. Their keys
    /// are numbered across hosts in this order (see [`KeyRef`]).
    pub cert_chains: Vec<Vec<u8>>,
    /// The `ca-cert` file (PEM), when set.
    pub ca_pem: Option<Vec<u8>>,
    /// The `crl` file (PEM), when set.
    pub crl_pem: Option<Vec<u8>>,
    /// The `ocsp-response` file (DER), when set.
    pub ocsp_der: Option<Vec<u8>>,
    /// The login form's group list: `(value, label)`.
    pub groups: Vec<(String, String)>,
    /// With `expose-iroutes`: the iroutes of every file in the host's `config-per-user`.
    pub known_iroutes: Vec<IpNet>,
}

/// What the main process sends a network process to serve with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSetup {
    /// Which key generation the certificates belong to (see [`KeyRef`]).
    pub generation: u32,
    pub config_path: String,
    pub config_text: String,
    /// What each host serves: the default host's first, then each `[vhost:...]`
    /// section's in file order.
    pub hosts: Vec<HostSetup>,
    /// The security module's process id (shown by occtl).
    pub secmod_pid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerCommand {
    /// The first message to a new network process, with descriptors attached: the first
    /// `secmod_channels` are channels to the security module, the rest channels to the
    /// main process. It answers [`CommandReply::Started`] once it serves.
    Start {
        setup: WorkerSetup,
        secmod_channels: u32,
    },
    /// Serve with this configuration from now on (reload).
    Configure(WorkerSetup),
    /// Disconnect every client and exit.
    Stop,
    /// Close the TCP listeners and keep serving the tunnels (`server-drain-ms`).
    StopAccepting,
}

impl Message for WorkerCommand {
    const NAME: &'static str = "network-process command";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecModCommand {
    /// Read the configuration, keys and files again as generation `generation`; the
    /// previous generation's keys stay usable for handshakes already under way.
    Reload { generation: u32 },
    /// Serve the channels attached to this message (a new network process's). Sessions
    /// attached to connections of an earlier network process are detached first: those
    /// connections are gone, and their clients come back with their cookies.
    Serve,
}

impl Message for SecModCommand {
    const NAME: &'static str = "security-module command";
}

/// The answer to a command from the main process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandReply {
    Done,
    /// The network process serves; its tun device is `device`.
    Started {
        device: String,
    },
    Failed(String),
}

impl Message for CommandReply {
    const NAME: &'static str = "command reply";
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn round_trip<T>(msg: T)
    where
        T: Serialize + DeserializeOwned + Message + PartialEq + std::fmt::Debug,
    {
        let frame = encode(&msg).unwrap();
        let len = frame_len(frame[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, frame.len() - 4);
        assert_eq!(decode::<T>(&frame[4..]).unwrap(), msg);
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(SecModRequest::CheckPassword {
            passwd: "/etc/ocserv/ocpasswd".into(),
            user: "alice".into(),
            password: "pw".into(),
            vhost: Some("vpn.example.com".into()),
        });
        round_trip(SecModRequest::Sign {
            key: KeyRef {
                generation: 3,
                index: 1,
            },
            op: SignOp::Ecdsa {
                digest: vec![7; 32],
            },
        });
        round_trip(SecModReply::Password {
            verdict: PasswordVerdict::Accepted {
                groups: vec!["staff".into()],
            },
            ticket: Some([7; 16]),
        });
        round_trip(MainRequest::AddRoute {
            net: "10.1.0.0/16".parse().unwrap(),
            iroute: true,
        });
        round_trip(MainRequest::RunScript {
            kind: ScriptKind::Connect,
            env: vec![("USERNAME".into(), "alice".into())],
        });
        round_trip(WorkerCommand::Configure(WorkerSetup {
            generation: 1,
            config_path: "/etc/ocserv/ocserv.conf".into(),
            config_text: "tcp-port = 443\n".into(),
            hosts: vec![HostSetup {
                cert_chains: vec![b"-----BEGIN CERTIFICATE-----".to_vec()],
                ca_pem: None,
                crl_pem: None,
                ocsp_der: Some(vec![0x30, 0x03, 0x0a, 0x01, 0x00]),
                groups: vec![("a".into(), "A".into())],
                known_iroutes: vec!["10.7.0.0/16".parse().unwrap()],
            }],
            secmod_pid: 7,
        }));
        round_trip(CommandReply::Failed("no".into()));
    }

    #[test]
    fn empty_and_oversized_frames_are_refused() {
        assert_eq!(frame_len([0; 4]), Err(IpcError::Empty));
        assert!(matches!(
            frame_len(u32::MAX.to_be_bytes()),
            Err(IpcError::TooLarge(_))
        ));
        assert_eq!(frame_len((MAX_FRAME as u32).to_be_bytes()), Ok(MAX_FRAME));
        assert_eq!(decode::<MainReply>(&[]), Err(IpcError::Empty));
        // A version byte and nothing else is not a message.
        assert!(matches!(
            decode::<MainReply>(&[IPC_VERSION]),
            Err(IpcError::Decode { .. })
        ));
    }

    #[test]
    fn wrong_version_and_trailing_bytes_are_refused() {
        let frame = encode(&MainReply::Done).unwrap();
        let mut body = frame[4..].to_vec();
        body[0] = IPC_VERSION + 1;
        assert_eq!(
            decode::<MainReply>(&body),
            Err(IpcError::Version {
                found: IPC_VERSION + 1
            })
        );
        let mut body = frame[4..].to_vec();
        body.push(0);
        assert!(matches!(
            decode::<MainReply>(&body),
            Err(IpcError::Trailing { len: 1, .. })
        ));
    }

    #[test]
    fn the_network_process_cannot_set_arbitrary_script_variables() {
        let bad = MainRequest::RunScript {
            kind: ScriptKind::Connect,
            env: vec![("LD_PRELOAD".into(), "/tmp/x.so".into())],
        };
        let frame = encode(&bad).unwrap();
        assert!(matches!(
            decode::<MainRequest>(&frame[4..]),
            Err(IpcError::Invalid { .. })
        ));
        let nul = MainRequest::RunScript {
            kind: ScriptKind::Connect,
            env: vec![("USERNAME".into(), "a\0b".into())],
        };
        let frame = encode(&nul).unwrap();
        assert!(decode::<MainRequest>(&frame[4..]).is_err());
    }

    #[test]
    fn settings_files_are_looked_up_by_plain_names_only() {
        for bad in ["", ".", "..", "../etc/shadow", "a/b", "a\nb"] {
            let request = MainRequest::UserFiles {
                user: bad.into(),
                group: None,
                vhost: None,
            };
            let frame = encode(&request).unwrap();
            assert!(decode::<MainRequest>(&frame[4..]).is_err(), "{bad:?}");
        }
        round_trip(MainRequest::UserFiles {
            user: "alice".into(),
            group: Some("staff".into()),
            vhost: Some("vpn.example.com".into()),
        });
    }

    #[test]
    fn no_default_route_and_no_oversized_credentials() {
        let route = MainRequest::AddRoute {
            net: "0.0.0.0/0".parse().unwrap(),
            iroute: false,
        };
        let frame = encode(&route).unwrap();
        assert!(decode::<MainRequest>(&frame[4..]).is_err());
        let long = SecModRequest::CheckPassword {
            passwd: "/p".into(),
            user: "u".repeat(MAX_CREDENTIAL + 1),
            password: String::new(),
            vhost: None,
        };
        let frame = encode(&long).unwrap();
        assert!(decode::<SecModRequest>(&frame[4..]).is_err());
        let empty_sig = SecModRequest::Sign {
            key: KeyRef {
                generation: 0,
                index: 0,
            },
            op: SignOp::RsaPss { encoded: vec![] },
        };
        let frame = encode(&empty_sig).unwrap();
        assert!(decode::<SecModRequest>(&frame[4..]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode::<SecModRequest>(&body);
            let _ = decode::<MainRequest>(&body);
            let _ = decode::<WorkerCommand>(&body);
        }
    }
}
