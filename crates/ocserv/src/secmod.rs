//! The security module: the one process that holds the server's private keys and reads the
//! password and one-time-password files (ocserv's sec-mod).
//!
//! It stays privileged (the files are `root:root 0600`, and OTP use is recorded by
//! rewriting the users file) and never talks to the network: its only peers are the main
//! process (commands: reload, new channels from a network process) and the network
//! process (requests: check a password, check an OTP, sign a handshake). Each channel of
//! the network process is served by its own thread, so a slow SHA-crypt check does not
//! hold up a handshake's signature.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use oc_proto::ipc::{
    AuthTicket, CommandReply, CookieRefusal, GssapiVerdict, KeyRef, OidcVerdict, PamRequest,
    PasswordVerdict, RadiusCheck, RadiusVerdict, SecModCommand, SecModReply, SecModRequest,
    SessionReply, SessionRequest, SignOp, SsoLogin,
};
use oc_tls::remote_key::{load_key_for_cert, perform, SignRequest};
use openssl::pkey::{PKey, Private};
use tracing::{error, info, warn};

use crate::channel::{Channel, Received};
use crate::config::{self, AcctMethod, AuthMethod, Config, GssapiMethod, RadiusMethod};
use crate::gssapi_login::{Accepted, GssapiLogins};
use crate::oidc_login::{OidcProvider, SsoParams};
use crate::otp::{self, OtpOutcome};
use crate::pam::{self, PamLogins, PamSessions};
use crate::passwd::{check_plain, PasswdFile, PlainAuth};
use crate::radius::RadiusClient;
use crate::radius_acct::Accounting;
use crate::radius_login::{Checked, LoginExtras, RadiusLogins};
use crate::server::{lock, read_lock, write_lock};
use crate::session_service::{Now, SessionService};

/// The keys of one configuration generation, in `server-key` order.
struct KeySet {
    generation: u32,
    keys: Vec<PKey<Private>>,
}

/// A `radius` method's host (`None`: the default one), options and servers.
type RadiusHost = (Option<String>, RadiusMethod, Arc<RadiusClient>);

/// An `oidc` method's host (`None`: the default one) and provider.
type OidcHost = (Option<String>, Arc<OidcProvider>);

/// A `plain` method's host (`None`: the default one), password file and OTP users file.
type PlainFiles = (Option<String>, Option<PathBuf>, Option<PathBuf>);

/// What a reload replaces.
struct Loaded {
    /// The `plain` methods' password and users files: the only ones a request may use.
    methods: Vec<PlainFiles>,
    /// The `pam` methods' services, by host (`None`: the default one).
    pam_services: Vec<(Option<String>, String)>,
    /// `auth-timeout`: how long a PAM prompt waits for the client.
    auth_timeout: Duration,
    /// `acct = pam`: the account is checked before each tunnel.
    pam_acct: bool,
    /// The `radius` methods, by host, with their servers.
    radius: Vec<RadiusHost>,
    /// The `gssapi` method of each host that has one.
    gssapi: Vec<(Option<String>, GssapiMethod)>,
    /// The `oidc` method of each host that has one, with its provider's keys.
    oidc: Vec<OidcHost>,
    /// A certificate method is configured: its logins are checked by the network process
    /// (the TLS handshake), so sessions may be created without a ticket.
    certificate: bool,
    current: KeySet,
    /// The keys before the last reload, for handshakes that started before it.
    previous: Option<KeySet>,
}

/// How long a ticket for checked credentials waits for its session (auth-timeout's
/// default is 240 s), and how many wait at once.
const GRANT_LIFETIME: Duration = Duration::from_secs(600);
const MAX_GRANTS: usize = 4096;

/// Tickets for checked credentials, until a session is created with one: the network
/// process cannot create a session for a user whose password nobody checked. A ticket
/// also carries what the login's back end granted the session.
#[derive(Debug, Default)]
struct Grants {
    issued: HashMap<AuthTicket, Issued>,
}

#[derive(Debug)]
struct Issued {
    user: String,
    at: Instant,
    extras: LoginExtras,
}

impl Grants {
    fn issue(&mut self, user: &str, extras: LoginExtras, now: Instant) -> AuthTicket {
        self.issued
            .retain(|_, i| now.duration_since(i.at) < GRANT_LIFETIME);
        if self.issued.len() >= MAX_GRANTS {
            let oldest = self
                .issued
                .iter()
                .min_by_key(|(_, i)| i.at)
                .map(|(t, _)| *t);
            if let Some(t) = oldest {
                self.issued.remove(&t);
            }
        }
        let mut ticket = [0u8; 16];
        fill_random(&mut ticket);
        let issued = Issued {
            user: user.to_string(),
            at: now,
            extras,
        };
        self.issued.insert(ticket, issued);
        ticket
    }

    /// The login's extras when the ticket is `user`'s and fresh.
    fn redeem(&mut self, ticket: &AuthTicket, user: &str, now: Instant) -> Option<LoginExtras> {
        let issued = self.issued.remove(ticket)?;
        (issued.user == user && now.duration_since(issued.at) < GRANT_LIFETIME)
            .then_some(issued.extras)
    }
}

pub(crate) fn fill_random(buf: &mut [u8]) {
    if let Err(e) = openssl::rand::rand_bytes(buf) {
        error!("security module: no randomness: {e}");
        std::process::abort();
    }
}

pub struct SecMod {
    config_path: PathBuf,
    loaded: RwLock<Option<Loaded>>,
    grants: Mutex<Grants>,
    pam: PamLogins,
    radius: RadiusLogins,
    gssapi: GssapiLogins,
    /// The PAM sessions of sessions that began with a PAM login.
    pam_sessions: PamSessions,
    accounting: Accounting,
    /// Cookies and leases: they outlive a network process.
    sessions: Mutex<SessionService>,
}

impl std::fmt::Debug for SecMod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecMod")
            .field("config", &self.config_path)
            .finish_non_exhaustive()
    }
}

/// The keys named by `server-key`, each checked against its certificate; encrypted ones
/// opened with `key-pin`, else the first line of `pin-file`. Every host's, numbered as
/// [`KeyRef`] counts them: the default host's, then each virtual host's.
pub fn load_keys(config: &Config) -> Result<Vec<PKey<Private>>, String> {
    let mut keys = Vec::new();
    for (_, host) in config.hosts() {
        let pin = match (&host.key_pin, &host.pin_file) {
            (Some(pin), _) => Some(pin.clone()),
            (None, Some(file)) => Some(read_pin(file)?),
            (None, None) => None,
        };
        for (cert, key) in &host.server_pairs {
            keys.push(load_key_for_cert(cert, key, pin.as_deref()).map_err(|e| e.to_string())?);
        }
    }
    Ok(keys)
}

/// The PIN in `file`: its first line, as ocserv reads it.
fn read_pin(file: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("pin-file {}: {e}", file.display()))?;
    let pin = text.lines().next().unwrap_or_default();
    if pin.is_empty() {
        return Err(format!("pin-file {}: no PIN in it", file.display()));
    }
    Ok(pin.to_owned())
}

/// The `plain` methods' files of every host, and whether a certificate method is
/// configured for any.
fn auth_methods(config: &Config) -> (Vec<PlainFiles>, bool) {
    let all = || {
        config.hosts().flat_map(|(name, host)| {
            let methods = host.auth.iter().chain(host.enable_auth.iter());
            methods.map(move |m| (name.map(str::to_owned), m))
        })
    };
    let plain = all()
        .filter_map(|(name, m)| match m {
            AuthMethod::Plain { passwd, otp } => Some((name, passwd.clone(), otp.clone())),
            AuthMethod::Certificate
            | AuthMethod::Pam(_)
            | AuthMethod::Radius(_)
            | AuthMethod::Gssapi(_)
            | AuthMethod::Oidc { .. } => None,
        })
        .collect();
    (
        plain,
        all().any(|(_, m)| matches!(m, AuthMethod::Certificate)),
    )
}

/// Every host's `radius` methods with their servers (radcli's files are read here, as
/// root: their secrets are not the network process's to see).
fn radius_methods(config: &Config) -> Result<Vec<RadiusHost>, String> {
    let mut out = Vec::new();
    for (name, host) in config.hosts() {
        for method in host.auth.iter().chain(host.enable_auth.iter()) {
            if let AuthMethod::Radius(radius) = method {
                let client = Arc::new(RadiusClient::load(&radius.config)?);
                out.push((name.map(str::to_owned), radius.clone(), client));
            }
        }
    }
    Ok(out)
}

/// The first `gssapi` method of every host.
fn gssapi_methods(config: &Config) -> Vec<(Option<String>, GssapiMethod)> {
    config
        .hosts()
        .filter_map(|(name, host)| {
            host.auth
                .iter()
                .chain(host.enable_auth.iter())
                .find_map(|m| match m {
                    AuthMethod::Gssapi(g) => Some((name.map(str::to_owned), g.clone())),
                    _ => None,
                })
        })
        .collect()
}

/// Every host's `oidc` method with its provider's keys (fetched here, at start and reload;
/// a provider whose keys cannot be fetched stops the start, as in ocserv). A reload keeps
/// the running providers' keys when their settings file is the same.
fn oidc_providers(config: &Config, running: &[OidcHost]) -> Result<Vec<OidcHost>, String> {
    let mut out = Vec::new();
    for (name, host) in config.hosts() {
        let Some(AuthMethod::Oidc { config: file }) = host
            .auth
            .iter()
            .find(|m| matches!(m, AuthMethod::Oidc { .. }))
        else {
            continue;
        };
        let name = name.map(str::to_owned);
        let provider = match running
            .iter()
            .find(|(h, p)| *h == name && p.config() == file)
        {
            Some((_, p)) => p.clone(),
            None => Arc::new(OidcProvider::load(file)?),
        };
        out.push((name, provider));
    }
    Ok(out)
}

fn oidc_provider(loaded: &Loaded, vhost: Option<&str>) -> Option<Arc<OidcProvider>> {
    loaded
        .oidc
        .iter()
        .find(|(h, _)| h.as_deref() == vhost)
        .map(|(_, p)| p.clone())
}

fn sso_params(login: &SsoLogin) -> SsoParams<'_> {
    SsoParams {
        redirect_uri: &login.redirect_uri,
        nonce: &login.nonce,
    }
}

/// The PAM services of every host's `pam` methods.
fn pam_services(config: &Config) -> Vec<(Option<String>, String)> {
    config
        .hosts()
        .flat_map(|(name, host)| {
            let methods = host.auth.iter().chain(host.enable_auth.iter());
            methods.filter_map(move |m| match m {
                AuthMethod::Pam(pam) => Some((name.map(str::to_owned), pam.service.clone())),
                _ => None,
            })
        })
        .collect()
}

impl SecMod {
    pub fn new(config_path: PathBuf) -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            config_path,
            loaded: RwLock::new(None),
            grants: Mutex::new(Grants::default()),
            pam: PamLogins::new(),
            radius: RadiusLogins::default(),
            gssapi: GssapiLogins::default(),
            pam_sessions: PamSessions::start()?,
            accounting: Accounting::start()?,
            sessions: Mutex::new(SessionService::new(Duration::from_secs(u64::from(
                config::defaults::COOKIE_TIMEOUT,
            )))),
        }))
    }

    /// Reads the configuration and keys as `generation`; on failure the running set stays.
    fn reload(&self, generation: u32) -> Result<(), String> {
        let loaded = config::load(&self.config_path, false).map_err(|e| e.to_string())?;
        let keys = load_keys(&loaded.config)?;
        let (methods, certificate) = auth_methods(&loaded.config);
        let pam_services = pam_services(&loaded.config);
        let auth_timeout = Duration::from_secs(u64::from(loaded.config.auth_timeout.max(1)));
        let pam_acct = loaded.config.acct == Some(AcctMethod::Pam);
        let radius = radius_methods(&loaded.config)?;
        let gssapi = gssapi_methods(&loaded.config);
        let running_oidc = read_lock(&self.loaded)
            .as_ref()
            .map(|l| l.oidc.clone())
            .unwrap_or_default();
        let oidc = oidc_providers(&loaded.config, &running_oidc)?;
        let acct_target = match &loaded.config.acct {
            Some(AcctMethod::Radius(method)) => Some((
                method.clone(),
                Arc::new(RadiusClient::load(&method.config)?),
            )),
            _ => None,
        };
        self.accounting.configure(acct_target);
        lock(&self.sessions)
            .set_cookie_timeout(Duration::from_secs(u64::from(loaded.config.cookie_timeout)));
        let mut slot = write_lock(&self.loaded);
        let previous = slot.take().map(|l| l.current);
        *slot = Some(Loaded {
            methods,
            pam_services,
            auth_timeout,
            pam_acct,
            radius,
            gssapi,
            oidc,
            certificate,
            current: KeySet { generation, keys },
            previous,
        });
        Ok(())
    }

    /// Serves the main process's commands until it goes away; then this process ends.
    pub fn serve_main(self: Arc<Self>, channel: Channel) -> ! {
        let stopped = channel.serve(|r: Received<SecModCommand>| self.command(r));
        info!("security module: main process gone ({stopped}); exiting");
        std::process::exit(0)
    }

    fn command(self: &Arc<Self>, received: Received<SecModCommand>) -> CommandReply {
        match received.msg {
            SecModCommand::Reload { generation } => match self.reload(generation) {
                Ok(()) => CommandReply::Done,
                Err(e) => {
                    error!("security module: reload failed: {e}");
                    CommandReply::Failed(e)
                }
            },
            SecModCommand::Serve => {
                // A new network process: the connections of the one before are gone.
                lock(&self.sessions).detach_all(Instant::now());
                for fd in received.fds {
                    self.clone().spawn_worker_channel(fd);
                }
                CommandReply::Done
            }
        }
    }

    fn spawn_worker_channel(self: Arc<Self>, fd: OwnedFd) {
        let channel = Channel::new(fd, "network process");
        let spawned = std::thread::Builder::new()
            .name("sec-mod".into())
            .spawn(move || {
                let stopped = channel.serve(|r: Received<SecModRequest>| self.request(r.msg));
                if !matches!(stopped, crate::channel::ChannelError::Closed { .. }) {
                    warn!("security module: channel closed: {stopped}");
                }
            });
        if let Err(e) = spawned {
            error!("security module: cannot start a thread for a channel: {e}");
        }
    }

    fn request(&self, request: SecModRequest) -> SecModReply {
        let guard = read_lock(&self.loaded);
        let Some(loaded) = guard.as_ref() else {
            return SecModReply::Refused("not configured yet".into());
        };
        match request {
            SecModRequest::CheckPassword {
                passwd,
                user,
                password,
                vhost,
            } => {
                let Some((path, otp)) = loaded.methods.iter().find_map(|(host, p, o)| {
                    let p = p.as_ref().filter(|p| p.as_os_str() == passwd.as_str())?;
                    (*host == vhost).then_some((p, o))
                }) else {
                    return refuse("a password file", &passwd);
                };
                let (path, otp_follows) = (path.clone(), otp.is_some());
                drop(guard);
                let verdict = check_password(&path, &user, &password);
                let done = matches!(verdict, PasswordVerdict::Accepted { .. }) && !otp_follows;
                let ticket = done.then(|| self.grant(&user));
                SecModReply::Password { verdict, ticket }
            }
            SecModRequest::CheckOtp { otp, user, code } => {
                let Some(path) = loaded
                    .methods
                    .iter()
                    .find_map(|(_, _, o)| o.as_ref().filter(|o| o.as_os_str() == otp.as_str()))
                    .cloned()
                else {
                    return refuse("an OTP users file", &otp);
                };
                drop(guard);
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                match otp::check_and_record(&path, &user, &code, now) {
                    OtpOutcome::Accepted => SecModReply::Otp {
                        refused: None,
                        ticket: Some(self.grant(&user)),
                    },
                    OtpOutcome::Refused(why) => SecModReply::Otp {
                        refused: Some(why),
                        ticket: None,
                    },
                }
            }
            SecModRequest::Sign { key, op } => match sign(loaded, key, &op) {
                Ok(signature) => SecModReply::Signature(signature),
                Err(e) => {
                    warn!("security module: signature refused: {e}");
                    SecModReply::Refused(e)
                }
            },
            SecModRequest::Radius(check) => {
                let Some((method, client)) = loaded
                    .radius
                    .iter()
                    .find(|(h, m, _)| {
                        *h == check.vhost && m.config.as_os_str() == check.config.as_str()
                    })
                    .map(|(_, m, c)| (m.clone(), c.clone()))
                else {
                    return refuse("a RADIUS configuration", &check.config);
                };
                drop(guard);
                self.radius_step(&check, &method, &client)
            }
            SecModRequest::Gssapi { id, token, vhost } => {
                let Some(method) = loaded
                    .gssapi
                    .iter()
                    .find(|(h, _)| *h == vhost)
                    .map(|(_, m)| m.clone())
                else {
                    return refuse("a host with gssapi", vhost.as_deref().unwrap_or("default"));
                };
                drop(guard);
                self.gssapi_step(&method, id, &token)
            }
            SecModRequest::Oidc { token, vhost } => {
                let Some(provider) = oidc_provider(loaded, vhost.as_deref()) else {
                    return refuse("a host with oidc", vhost.as_deref().unwrap_or("default"));
                };
                drop(guard);
                self.oidc_check(&provider, &token)
            }
            SecModRequest::OidcSsoStart {
                vhost,
                login,
                state,
                challenge,
            } => {
                let url = oidc_provider(loaded, vhost.as_deref())
                    .and_then(|p| p.sso_login_url(sso_params(&login), &state, &challenge));
                SecModReply::OidcSsoLogin(url)
            }
            SecModRequest::OidcSsoCode {
                vhost,
                login,
                code,
                verifier,
            } => {
                let Some(provider) = oidc_provider(loaded, vhost.as_deref()) else {
                    return refuse("a host with oidc", vhost.as_deref().unwrap_or("default"));
                };
                drop(guard);
                let outcome = provider.redeem_code(sso_params(&login), &code, &verifier);
                self.oidc_verdict(outcome, "browser login")
            }
            SecModRequest::Pam(request) => {
                let (services, wait) = (loaded.pam_services.clone(), loaded.auth_timeout);
                drop(guard);
                self.pam_step(request, &services, wait)
            }
            SecModRequest::Session(request) => {
                let (certificate, pam_acct) = (loaded.certificate, loaded.pam_acct);
                drop(guard);
                if pam_acct {
                    if let Some(refused) = self.pam_account_refused(&request) {
                        return refused;
                    }
                }
                self.session(request, certificate)
            }
        }
    }

    /// A step of a PAM login: only a service the host's configuration names may run.
    fn pam_step(
        &self,
        request: PamRequest,
        services: &[(Option<String>, String)],
        answer_wait: Duration,
    ) -> SecModReply {
        let outcome = match request {
            PamRequest::Start {
                service,
                user,
                rhost,
                vhost,
            } => {
                if !services.iter().any(|(h, s)| *h == vhost && *s == service) {
                    return refuse("a PAM service", &service);
                }
                let new_id = || {
                    let mut id = [0u8; 8];
                    fill_random(&mut id);
                    u64::from_le_bytes(id)
                };
                self.pam
                    .start(&service, &user, rhost.as_deref(), answer_wait, new_id)
            }
            PamRequest::Answer { id, answer } => self.pam.answer(id, answer),
            PamRequest::Abort { id } => {
                self.pam.abort(id);
                pam::Outcome::Rejected("aborted".into())
            }
        };
        SecModReply::Pam(outcome.into_event(|a| {
            let extras = LoginExtras {
                pam: Some(a.origin.clone()),
                ..LoginExtras::default()
            };
            lock(&self.grants).issue(&a.user, extras, Instant::now())
        }))
    }

    /// A RADIUS login step: the verdict, with a ticket when accepted.
    fn radius_step(
        &self,
        check: &RadiusCheck,
        method: &RadiusMethod,
        client: &RadiusClient,
    ) -> SecModReply {
        let new_id = || {
            let mut id = [0u8; 8];
            fill_random(&mut id);
            u64::from_le_bytes(id)
        };
        let verdict = match self.radius.check(client, method, check, new_id) {
            Checked::Accepted { groups, extras } => {
                info!("RADIUS: user '{}' accepted", check.user);
                let ticket = lock(&self.grants).issue(&check.user, *extras, Instant::now());
                RadiusVerdict::Accepted { groups, ticket }
            }
            Checked::Challenge { id, message } => RadiusVerdict::Challenge { id, message },
            Checked::Rejected { reason, retry } => {
                info!("RADIUS: user '{}' refused: {reason}", check.user);
                RadiusVerdict::Rejected { reason, retry }
            }
        };
        SecModReply::Radius(verdict)
    }

    /// A GSSAPI token: the next token, or the user with their Unix groups and a ticket.
    fn gssapi_step(&self, method: &GssapiMethod, id: Option<u64>, token: &[u8]) -> SecModReply {
        let new_id = || {
            let mut id = [0u8; 8];
            fill_random(&mut id);
            u64::from_le_bytes(id)
        };
        let verdict = match self.gssapi.step(method, id, token, new_id) {
            Accepted::Continue { id, token } => GssapiVerdict::Continue { id, token },
            Accepted::Done { user, token } => GssapiVerdict::Accepted {
                groups: pam::unix_groups(&user).unwrap_or_default(),
                ticket: self.grant(&user),
                user,
                token,
            },
            Accepted::Refused(reason) => GssapiVerdict::Rejected { reason },
        };
        SecModReply::Gssapi(verdict)
    }

    /// A bearer token: the user its claims name, with a ticket.
    fn oidc_check(&self, provider: &OidcProvider, token: &str) -> SecModReply {
        self.oidc_verdict(provider.verify(token), "token")
    }

    fn oidc_verdict(&self, outcome: Result<String, String>, what: &str) -> SecModReply {
        let verdict = match outcome {
            Ok(user) => {
                info!("oidc: {what} accepted for user '{user}'");
                OidcVerdict::Accepted {
                    ticket: self.grant(&user),
                    user,
                }
            }
            Err(reason) => {
                info!("oidc: {what} refused: {reason}");
                OidcVerdict::Rejected { reason }
            }
        };
        SecModReply::Oidc(verdict)
    }

    /// `acct = pam`: a CONNECT's session whose account PAM refuses is not attached.
    fn pam_account_refused(&self, request: &SessionRequest) -> Option<SecModReply> {
        let SessionRequest::Attach { cookie, .. } = request else {
            return None;
        };
        let user = lock(&self.sessions).user_of(cookie)?;
        let why = pam::account_allowed(&user).err()?;
        Some(SecModReply::Session(SessionReply::Refused(
            CookieRefusal::Account(why),
        )))
    }

    fn grant(&self, user: &str) -> AuthTicket {
        lock(&self.grants).issue(user, LoginExtras::default(), Instant::now())
    }

    /// A session request; a new session needs the ticket of a completed credential check
    /// (unless certificate logins, which only the network process sees, are configured).
    /// Accounting hears of sessions created, tunnels up, interim reports and ends.
    fn session(&self, mut request: SessionRequest, certificate: bool) -> SecModReply {
        let now = Now {
            mono: Instant::now(),
            wall: SystemTime::now(),
        };
        let mut login_extras = LoginExtras::default();
        if let SessionRequest::Create {
            user,
            ticket,
            granted,
            timeout,
            ..
        } = &mut request
        {
            let extras = ticket
                .as_ref()
                .and_then(|t| lock(&self.grants).redeem(t, user, now.mono));
            if extras.is_none() && !certificate {
                warn!("security module: refused a session for '{user}': no credentials were checked for it");
                return SecModReply::Session(SessionReply::Refused(CookieRefusal::Unavailable(
                    "no checked credentials for this user".into(),
                )));
            }
            // Only what the security module granted counts, never the network process's.
            let extras = extras.unwrap_or_default();
            *granted = extras.granted.clone().map(Box::new);
            if let Some(t) = granted.as_ref().and_then(|g| g.session_timeout) {
                *timeout = Some(t);
            }
            login_extras = extras;
        }
        let mut sessions = lock(&self.sessions);
        let reply = sessions.handle(request.clone(), now, &mut fill_random);
        let ended = sessions.take_ended();
        let sid_of = |cookie: &str| sessions.sid_of(cookie);
        match (&request, &reply) {
            (SessionRequest::Create { user, login_ip, .. }, SessionReply::Created { cookie }) => {
                if let Some(sid) = sid_of(cookie) {
                    if let Some(origin) = login_extras.pam.clone() {
                        self.pam_sessions.open(&sid, user, origin);
                    }
                    self.accounting.created(&sid, user, *login_ip, login_extras);
                }
            }
            (SessionRequest::Attach { .. }, SessionReply::Attached { session, .. }) => {
                self.accounting
                    .attached(&session.sid, session.lease.as_ref());
            }
            (SessionRequest::Interim { cookie, current }, SessionReply::Carried(carried)) => {
                if let Some(sid) = sid_of(cookie) {
                    let total = (carried.0 + current.0, carried.1 + current.1);
                    self.accounting.interim(&sid, total);
                }
            }
            _ => {}
        }
        drop(sessions);
        for e in ended {
            self.pam_sessions.close(&e.sid);
            self.accounting.ended(&e.sid, e.bytes, e.cause);
        }
        SecModReply::Session(reply)
    }
}

fn refuse(what: &str, asked: &str) -> SecModReply {
    warn!("security module: refused a check against {asked:?}: not {what} the configuration names");
    SecModReply::Refused(format!("not {what} the configuration names"))
}

fn check_password(path: &Path, user: &str, password: &str) -> PasswordVerdict {
    match PasswdFile::load(path) {
        Ok(file) => match check_plain(&file, user, password) {
            PlainAuth::Accepted { groups } => PasswordVerdict::Accepted { groups },
            PlainAuth::NoPasswordSet { groups } => PasswordVerdict::NoPasswordSet { groups },
            PlainAuth::Rejected => PasswordVerdict::Rejected,
        },
        Err(e) => {
            warn!("{e}");
            PasswordVerdict::Rejected
        }
    }
}

fn sign(loaded: &Loaded, key: KeyRef, op: &SignOp) -> Result<Vec<u8>, String> {
    let set = [Some(&loaded.current), loaded.previous.as_ref()]
        .into_iter()
        .flatten()
        .find(|s| s.generation == key.generation)
        .ok_or_else(|| format!("no keys of generation {}", key.generation))?;
    let private = usize::try_from(key.index)
        .ok()
        .and_then(|i| set.keys.get(i))
        .ok_or_else(|| format!("no key {}", key.index))?;
    let request = match op {
        SignOp::RsaPkcs1 { digest_info } => SignRequest::RsaPkcs1 {
            key: key.index,
            digest_info: digest_info.clone(),
        },
        SignOp::RsaPss { encoded } => SignRequest::RsaPss {
            key: key.index,
            encoded: encoded.clone(),
        },
        SignOp::Ecdsa { digest } => SignRequest::Ecdsa {
            key: key.index,
            digest: digest.clone(),
        },
        SignOp::EdDsa { message } => SignRequest::EdDsa {
            key: key.index,
            message: message.clone(),
        },
    };
    perform(private, &request).map_err(|e| e.to_string())
}
