//! PAM in the security module: logins through the system's PAM stack (`auth = pam`) and
//! the account check before a tunnel (`acct = pam`).
//!
//! A PAM login is a conversation: the modules ask (password, then perhaps a code, a new
//! password), the client answers through forms on later HTTP requests. Each login runs
//! `pam_authenticate` and `pam_acct_mgmt` on a thread of its own whose conversation
//! function hands every prompt to the network process and waits for the answer, so a slow
//! module (LDAP, RADIUS behind PAM) never holds up other logins or the key operations.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::unistd::{Group, User};
use oc_proto::ipc::PamEvent;
use pam_client2::conv_null::Conversation as NullConversation;
use pam_client2::{Context, ConversationHandler, ErrorCode, Flag, SessionToken};
use tracing::{debug, error, info, warn};

use crate::server::lock;

/// PAM logins under way at once; more are refused (each holds a thread).
const MAX_CONVERSATIONS: usize = 256;
/// How long the PAM stack may take to produce its next prompt or verdict (within the
/// network process's 30 s wait for the security module).
const PAM_STEP_LIMIT: Duration = Duration::from_secs(20);
/// Groups looked at per user (ocserv's limit too).
const MAX_GROUPS: usize = 256;

/// What a login thread reports.
enum Step {
    Prompt { message: String, echo: bool },
    Done(Result<Authenticated, String>),
}

/// A successful PAM login.
#[derive(Debug)]
pub struct Authenticated {
    pub user: String,
    pub groups: Option<Vec<String>>,
    pub origin: PamOrigin,
}

/// Where a PAM login came from: the service and the client's address, for its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PamOrigin {
    pub service: String,
    pub rhost: Option<String>,
}

/// A login waiting for the client's answer.
struct Waiting {
    answers: SyncSender<String>,
    steps: Receiver<Step>,
    /// When the prompt went out: the thread gives up after `answer_wait`.
    since: Instant,
}

/// The PAM logins under way, by conversation id.
pub struct PamLogins {
    waiting: Mutex<HashMap<u64, Waiting>>,
}

/// The outcome of a request, before the security module adds its ticket.
#[derive(Debug)]
pub enum Outcome {
    Prompt {
        id: u64,
        message: String,
        echo: bool,
    },
    Accepted(Authenticated),
    Rejected(String),
}

impl Outcome {
    /// As the network process gets it; `ticket` makes a session possible.
    pub fn into_event(self, ticket: impl FnOnce(&Authenticated) -> [u8; 16]) -> PamEvent {
        match self {
            Self::Prompt { id, message, echo } => PamEvent::Prompt { id, message, echo },
            Self::Accepted(a) => PamEvent::Accepted {
                ticket: ticket(&a),
                user: a.user,
                groups: a.groups,
            },
            Self::Rejected(reason) => PamEvent::Rejected { reason },
        }
    }
}

impl std::fmt::Debug for PamLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PamLogins")
            .field("waiting", &lock(&self.waiting).len())
            .finish()
    }
}

impl Default for PamLogins {
    fn default() -> Self {
        Self::new()
    }
}

impl PamLogins {
    pub fn new() -> Self {
        Self {
            waiting: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a login of `user` with PAM service `service`; `answer_wait` is how long a
    /// prompt waits for the client (auth-timeout).
    pub fn start(
        &self,
        service: &str,
        user: &str,
        rhost: Option<&str>,
        answer_wait: Duration,
        new_id: impl FnOnce() -> u64,
    ) -> Outcome {
        {
            let mut waiting = lock(&self.waiting);
            // A client that never answered: its thread has given up by now.
            waiting.retain(|_, w| w.since.elapsed() < answer_wait + PAM_STEP_LIMIT);
            if waiting.len() >= MAX_CONVERSATIONS {
                return Outcome::Rejected(format!(
                    "{MAX_CONVERSATIONS} PAM logins are already waiting for answers"
                ));
            }
        }
        let (answers_tx, answers_rx) = mpsc::sync_channel(1);
        let (steps_tx, steps_rx) = mpsc::sync_channel(1);
        let login = LoginThread {
            service: service.to_owned(),
            user: user.to_owned(),
            rhost: rhost.map(str::to_owned),
            answer_wait,
        };
        let spawned = std::thread::Builder::new()
            .name("sec-mod-pam".into())
            .spawn(move || login.run(&steps_tx, answers_rx));
        if let Err(e) = spawned {
            return Outcome::Rejected(format!("cannot start a thread for PAM: {e}"));
        }
        let waiting = Waiting {
            answers: answers_tx,
            steps: steps_rx,
            since: Instant::now(),
        };
        self.next_step(new_id(), waiting)
    }

    /// The client's answer to the prompt of conversation `id`.
    pub fn answer(&self, id: u64, answer: String) -> Outcome {
        let Some(waiting) = lock(&self.waiting).remove(&id) else {
            return Outcome::Rejected(format!("no PAM login {id} is waiting for an answer"));
        };
        if waiting.answers.try_send(answer).is_err() {
            return Outcome::Rejected("the PAM login gave up waiting for the answer".into());
        }
        self.next_step(id, waiting)
    }

    /// The client went away: the thread's next wait fails, ending its PAM transaction.
    pub fn abort(&self, id: u64) {
        lock(&self.waiting).remove(&id);
    }

    fn next_step(&self, id: u64, mut waiting: Waiting) -> Outcome {
        match waiting.steps.recv_timeout(PAM_STEP_LIMIT) {
            Ok(Step::Prompt { message, echo }) => {
                waiting.since = Instant::now();
                lock(&self.waiting).insert(id, waiting);
                Outcome::Prompt { id, message, echo }
            }
            Ok(Step::Done(Ok(authenticated))) => Outcome::Accepted(authenticated),
            Ok(Step::Done(Err(reason))) => Outcome::Rejected(reason),
            Err(RecvTimeoutError::Timeout) => Outcome::Rejected(format!(
                "the PAM stack gave no prompt or verdict within {} s",
                PAM_STEP_LIMIT.as_secs()
            )),
            Err(RecvTimeoutError::Disconnected) => {
                Outcome::Rejected("the PAM login ended without a verdict".into())
            }
        }
    }
}

/// One login's PAM transaction, run on its own thread.
struct LoginThread {
    service: String,
    user: String,
    rhost: Option<String>,
    answer_wait: Duration,
}

impl LoginThread {
    fn run(self, steps: &SyncSender<Step>, answers: Receiver<String>) {
        let relay = Relay {
            steps: steps.clone(),
            answers,
            answer_wait: self.answer_wait,
            notes: String::new(),
        };
        let verdict = self.authenticate(relay);
        match &verdict {
            Ok(a) => info!("PAM: user '{}' authenticated ({})", a.user, self.service),
            Err(why) => info!("PAM: login of '{}' refused: {why}", self.user),
        }
        let _ = steps.send(Step::Done(verdict));
    }

    fn authenticate(&self, relay: Relay) -> Result<Authenticated, String> {
        let failed = |what: &str, e: pam_client2::Error| format!("{what}: {e}");
        let mut context = Context::new(&self.service, Some(&self.user), relay)
            .map_err(|e| failed(&format!("PAM service {:?}", self.service), e))?;
        if let Some(rhost) = &self.rhost {
            context
                .set_rhost(Some(rhost))
                .map_err(|e| failed("PAM_RHOST", e))?;
        }
        context
            .authenticate(Flag::NONE)
            .map_err(|e| failed("authentication", e))?;
        match context.acct_mgmt(Flag::NONE) {
            Ok(()) => {}
            Err(e) if e.code() == ErrorCode::NEW_AUTHTOK_REQD => {
                info!(
                    "PAM: the password of '{}' has expired; asking for a new one",
                    self.user
                );
                context
                    .conversation_mut()
                    .notes
                    .push_str("Please enter the new password. ");
                context
                    .chauthtok(Flag::CHANGE_EXPIRED_AUTHTOK)
                    .map_err(|e| failed("password change", e))?;
            }
            Err(e) => return Err(failed("account", e)),
        }
        // A module may map the name (e.g. to its canonical case).
        let user = context.user().unwrap_or_else(|_| self.user.clone());
        let groups = unix_groups(&user);
        let origin = PamOrigin {
            service: self.service.clone(),
            rhost: self.rhost.clone(),
        };
        Ok(Authenticated {
            user,
            groups,
            origin,
        })
    }
}

/// The conversation function: PAM's messages and prompts go to the network process as a
/// form; the answer comes back on `answers`.
struct Relay {
    steps: SyncSender<Step>,
    answers: Receiver<String>,
    answer_wait: Duration,
    /// Information and error lines waiting to be shown with the next prompt.
    notes: String,
}

impl Relay {
    fn ask(&mut self, prompt: &CStr, echo: bool) -> Result<CString, ErrorCode> {
        let mut message = std::mem::take(&mut self.notes);
        message.push_str(&prompt.to_string_lossy());
        debug!(
            "PAM asks (echo {}): {message:?}",
            if echo { "on" } else { "off" }
        );
        self.steps
            .send(Step::Prompt { message, echo })
            .map_err(|_| ErrorCode::CONV_ERR)?;
        let answer = self
            .answers
            .recv_timeout(self.answer_wait)
            .map_err(|_| ErrorCode::CONV_ERR)?;
        CString::new(answer).map_err(|_| ErrorCode::CONV_ERR)
    }

    fn note(&mut self, msg: &CStr) {
        // Bounded: a module that chatters cannot grow the form without end.
        if self.notes.len() < 4096 {
            self.notes.push_str(&msg.to_string_lossy());
            self.notes.push(' ');
        }
    }
}

impl ConversationHandler for Relay {
    fn prompt_echo_on(&mut self, prompt: &CStr) -> Result<CString, ErrorCode> {
        self.ask(prompt, true)
    }

    fn prompt_echo_off(&mut self, prompt: &CStr) -> Result<CString, ErrorCode> {
        self.ask(prompt, false)
    }

    fn text_info(&mut self, msg: &CStr) {
        self.note(msg);
    }

    fn error_msg(&mut self, msg: &CStr) {
        self.note(msg);
    }
}

/// The Unix groups of `user`, the primary one first; `None` when there is no such user.
pub fn unix_groups(user: &str) -> Option<Vec<String>> {
    let account = User::from_name(user).ok().flatten()?;
    let mut names = Vec::new();
    let primary = Group::from_gid(account.gid).ok().flatten();
    names.extend(primary.map(|g| g.name));
    let name = CString::new(user).ok()?;
    let gids = nix::unistd::getgrouplist(&name, account.gid).unwrap_or_default();
    for gid in gids.into_iter().take(MAX_GROUPS) {
        if let Ok(Some(group)) = Group::from_gid(gid) {
            if !names.contains(&group.name) {
                names.push(group.name);
            }
        }
    }
    Some(names)
}

/// Every group with an id of at least `gid_min`, for `auto-select-group` (ocserv lists
/// the system's groups the same way, through NSS).
pub fn unix_group_list(gid_min: u32) -> Vec<String> {
    oc_tls::os::group_names(gid_min, MAX_GROUPS)
}

/// The PAM service of `acct = pam`, as ocserv names it.
const ACCT_SERVICE: &str = "ocserv";

/// `acct = pam`: may `user`'s account be used now (`pam_acct_mgmt`)? The reason when not.
pub fn account_allowed(user: &str) -> Result<(), String> {
    let mut context = Context::new(ACCT_SERVICE, Some(user), NullConversation::new())
        .map_err(|e| format!("PAM service {ACCT_SERVICE:?}: {e}"))?;
    context.acct_mgmt(Flag::DISALLOW_NULL_AUTHTOK).map_err(|e| {
        warn!("PAM account check of '{user}' refused: {e}");
        format!("PAM account check: {e}")
    })
}

/// Open PAM sessions at most; past it, new ones are not opened (logged).
const MAX_SESSIONS: usize = 65_536;

/// What the session thread is asked to do.
enum SessionCommand {
    Open {
        sid: String,
        user: String,
        origin: PamOrigin,
    },
    Close {
        sid: String,
    },
}

/// The PAM sessions of VPN sessions that began with a PAM login: opened
/// (`pam_open_session`) when the VPN session is created and closed when it ends, each on
/// the PAM handle kept meanwhile. One thread makes the calls in order, so a slow session
/// module holds up only other sessions' opening and closing, never a login.
#[derive(Debug)]
pub struct PamSessions {
    commands: Mutex<mpsc::Sender<SessionCommand>>,
}

impl PamSessions {
    pub fn start() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("sec-mod-pam-sessions".into())
            .spawn(move || serve_sessions(&rx))?;
        Ok(Self {
            commands: Mutex::new(tx),
        })
    }

    pub fn open(&self, sid: &str, user: &str, origin: PamOrigin) {
        self.send(SessionCommand::Open {
            sid: sid.to_owned(),
            user: user.to_owned(),
            origin,
        });
    }

    /// Closes `sid`'s PAM session, if it has one.
    pub fn close(&self, sid: &str) {
        self.send(SessionCommand::Close {
            sid: sid.to_owned(),
        });
    }

    fn send(&self, command: SessionCommand) {
        if lock(&self.commands).send(command).is_err() {
            // The thread only ends when this sender is gone; a panic in a PAM module
            // would end it: say so loudly, as the sessions it held are lost.
            error!("PAM session thread is gone: PAM sessions are no longer opened or closed");
        }
    }
}

fn serve_sessions(commands: &Receiver<SessionCommand>) {
    let mut open: HashMap<String, (Context<NullConversation>, SessionToken, String)> =
        HashMap::new();
    for command in commands {
        match command {
            SessionCommand::Open { sid, user, origin } => {
                if open.len() >= MAX_SESSIONS {
                    warn!("PAM: {MAX_SESSIONS} sessions open; not opening one for '{user}'");
                    continue;
                }
                match open_session(&user, &origin) {
                    Ok((context, token)) => {
                        info!("PAM: session opened for '{user}' ({})", origin.service);
                        open.insert(sid, (context, token, user));
                    }
                    Err(e) => warn!("PAM: no session for '{user}' ({}): {e}", origin.service),
                }
            }
            SessionCommand::Close { sid } => {
                let Some((mut context, token, user)) = open.remove(&sid) else {
                    continue;
                };
                let closed = context
                    .unleak_session(token)
                    .close(Flag::NONE)
                    .map_err(|e| e.to_string());
                match closed {
                    Ok(()) => info!("PAM: session closed for '{user}'"),
                    Err(e) => warn!("PAM: closing the session of '{user}': {e}"),
                }
            }
        }
    }
}

fn open_session(
    user: &str,
    origin: &PamOrigin,
) -> Result<(Context<NullConversation>, SessionToken), pam_client2::Error> {
    let mut context = Context::new(&origin.service, Some(user), NullConversation::new())?;
    if let Some(rhost) = &origin.rhost {
        context.set_rhost(Some(rhost))?;
    }
    let token = context.open_session(Flag::NONE)?.leak();
    Ok((context, token))
}
