//! The security module: the one process that holds the server's private keys and reads the
//! password and one-time-password files (ocserv's sec-mod).
//!
//! It stays privileged (the files are `root:root 0600`, and OTP use is recorded by
//! rewriting the users file) and never talks to the network: its only peers are the main
//! process (commands: reload, new channels from a network process) and the network
//! process (requests: check a password, check an OTP, sign a handshake). Each channel of
//! the network process is served by its own thread, so a slow SHA-crypt check does not
//! hold up a handshake's signature.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use oc_proto::ipc::{
    CommandReply, KeyRef, PasswordVerdict, SecModCommand, SecModReply, SecModRequest, SignOp,
};
use oc_tls::remote_key::{load_key_for_cert, perform, SignRequest};
use openssl::pkey::{PKey, Private};
use tracing::{error, info, warn};

use crate::channel::{Channel, Received};
use crate::config::{self, AuthMethod, Config};
use crate::otp::{self, OtpOutcome};
use crate::passwd::{check_plain, PasswdFile, PlainAuth};
use crate::session_service::{Now, SessionService};

/// The keys of one configuration generation, in `server-key` order.
struct KeySet {
    generation: u32,
    keys: Vec<PKey<Private>>,
}

/// What a reload replaces.
struct Loaded {
    /// Password and users files the configuration names: the only ones a request may use.
    passwd_files: Vec<PathBuf>,
    otp_files: Vec<PathBuf>,
    current: KeySet,
    /// The keys before the last reload, for handshakes that started before it.
    previous: Option<KeySet>,
}

pub struct SecMod {
    config_path: PathBuf,
    loaded: RwLock<Option<Loaded>>,
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

/// The keys named by `server-key`, each checked against its certificate.
pub fn load_keys(config: &Config) -> Result<Vec<PKey<Private>>, String> {
    config
        .server_pairs
        .iter()
        .map(|(cert, key)| load_key_for_cert(cert, key).map_err(|e| e.to_string()))
        .collect()
}

fn auth_files(config: &Config) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut passwd = Vec::new();
    let mut otp = Vec::new();
    for method in config.auth.iter().chain(config.enable_auth.iter()) {
        if let AuthMethod::Plain { passwd: p, otp: o } = method {
            passwd.extend(p.clone());
            otp.extend(o.clone());
        }
    }
    (passwd, otp)
}

impl SecMod {
    pub fn new(config_path: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            config_path,
            loaded: RwLock::new(None),
            sessions: Mutex::new(SessionService::new(Duration::from_secs(u64::from(
                config::defaults::COOKIE_TIMEOUT,
            )))),
        })
    }

    /// Reads the configuration and keys as `generation`; on failure the running set stays.
    fn reload(&self, generation: u32) -> Result<(), String> {
        let loaded = config::load(&self.config_path, false).map_err(|e| e.to_string())?;
        let keys = load_keys(&loaded.config)?;
        let (passwd_files, otp_files) = auth_files(&loaded.config);
        crate::server::lock(&self.sessions)
            .set_cookie_timeout(Duration::from_secs(u64::from(loaded.config.cookie_timeout)));
        let mut slot = self
            .loaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = slot.take().map(|l| l.current);
        *slot = Some(Loaded {
            passwd_files,
            otp_files,
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
                crate::server::lock(&self.sessions).detach_all(Instant::now());
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
        if let SecModRequest::Session(request) = request {
            let now = Now {
                mono: Instant::now(),
                wall: SystemTime::now(),
            };
            let mut random = |buf: &mut [u8]| {
                if let Err(e) = openssl::rand::rand_bytes(buf) {
                    error!("security module: no randomness: {e}");
                    std::process::abort();
                }
            };
            let reply = crate::server::lock(&self.sessions).handle(request, now, &mut random);
            return SecModReply::Session(reply);
        }
        let guard = self
            .loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(loaded) = guard.as_ref() else {
            return SecModReply::Refused("not configured yet".into());
        };
        match request {
            SecModRequest::CheckPassword {
                passwd,
                user,
                password,
            } => {
                let Some(path) = configured(&loaded.passwd_files, &passwd) else {
                    warn!("security module: refused a check against {passwd:?}: not a configured password file");
                    return SecModReply::Refused("not a configured password file".into());
                };
                let path = path.to_path_buf();
                drop(guard);
                SecModReply::Password(check_password(&path, &user, &password))
            }
            SecModRequest::CheckOtp { otp, user, code } => {
                let Some(path) = configured(&loaded.otp_files, &otp) else {
                    warn!("security module: refused an OTP check against {otp:?}: not a configured users file");
                    return SecModReply::Refused("not a configured OTP file".into());
                };
                let path = path.to_path_buf();
                drop(guard);
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                match otp::check_and_record(&path, &user, &code, now) {
                    OtpOutcome::Accepted => SecModReply::Otp(None),
                    OtpOutcome::Refused(why) => SecModReply::Otp(Some(why)),
                }
            }
            SecModRequest::Sign { key, op } => match sign(loaded, key, &op) {
                Ok(signature) => SecModReply::Signature(signature),
                Err(e) => {
                    warn!("security module: signature refused: {e}");
                    SecModReply::Refused(e)
                }
            },
            SecModRequest::Session(_) => SecModReply::Refused("handled above".into()),
        }
    }
}

fn configured<'a>(allowed: &'a [PathBuf], asked: &str) -> Option<&'a Path> {
    allowed
        .iter()
        .find(|p| p.as_os_str() == asked)
        .map(PathBuf::as_path)
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
    };
    perform(private, &request).map_err(|e| e.to_string())
}
