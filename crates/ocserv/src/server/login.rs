//! Before the tunnel: accepting connections, the TLS handshake, and the HTTP login phase
//! (the auth conversation, password and OTP checks in the security module, bans, the
//! session cookie) up to the CONNECT request.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use oc_proto::anyconnect::camouflage::Gate;
use oc_proto::anyconnect::server_auth::{
    complete_xml, parse_client_auth, svc_logged_in, svc_login_prompt, svc_refused, ClientAuth,
    FormInputs,
};
use oc_proto::anyconnect::server_connect::is_tunnel_target;
use oc_proto::http::server::{Method, RequestLimits, RequestReader, ServerRequest, ServerResponse};
use oc_proto::ipc::{AuthTicket, PamRequest, SecModRequest, SessionReply, SessionRequest};
use oc_proto::oidc::{CALLBACK_PATH, DONE_PATH};
use oc_proto::proxy_proto::{self, Parse, ProxyHeader};
use oc_tls::server::{cert_field, verified_client_cert};
use oc_tls::TlsStream;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn, Instrument};

use super::login_checks::http_auth;
use super::reply::{answer_and_close, refuse, send, INCLUDED_HEADERS};
use super::sso::page;
use super::{lock, random_fill, Runtime, Server, MAX_PRELOGIN};
use crate::auth::{valid_name, AuthStep, CertIdentity, CertStatus, Conversation};
use crate::config::{CertOid, Config};
use crate::metrics::AuthFailure;
use crate::sessions::{decode_cookie, COOKIE_BYTES};

/// HTTP requests allowed on one connection before CONNECT (ocserv allows 16).
const MAX_REQUESTS: usize = 16;
/// A TLS handshake must finish within this (or auth-timeout, if shorter).
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// A request must arrive whole within this of its first byte: trickling senders
/// (slowloris) are cut off.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// Unsent bytes a TLS connection's socket queues (`TCP_NOTSENT_LOWAT`).
const NOTSENT_LOWAT: u32 = 128 * 1024;
/// Connections from one address still logging in; more are closed at once.
const MAX_PRELOGIN_PER_IP: usize = 32;

/// One of an address's [`MAX_PRELOGIN_PER_IP`] login slots, given back when dropped.
struct PreloginSlot<'a> {
    server: &'a Server,
    ip: IpAddr,
}

impl<'a> PreloginSlot<'a> {
    fn take(server: &'a Server, ip: IpAddr) -> Option<Self> {
        let mut state = lock(&server.state);
        let count = state.prelogin_by_ip.entry(ip).or_insert(0);
        if *count >= MAX_PRELOGIN_PER_IP {
            return None;
        }
        *count += 1;
        Some(Self { server, ip })
    }
}

impl Drop for PreloginSlot<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.server.state);
        if let Some(count) = state.prelogin_by_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                state.prelogin_by_ip.remove(&self.ip);
            }
        }
    }
}

/// How the HTTP phase of a connection ended: its CONNECT request, and whether it showed
/// the camouflage secret (or a session cookie) on the way.
pub(super) struct LoginOutcome {
    pub(super) request: ServerRequest,
    pub(super) showed_secret: bool,
}

/// A connection's login conversation; a PAM login waiting for this client's answer ends
/// with it (whichever way the connection ends: CONNECT, close, auth-timeout).
struct LoginConversation {
    conversation: Conversation,
    links: Arc<crate::worker::Links>,
}

impl Drop for LoginConversation {
    fn drop(&mut self) {
        if let Some(id) = self.conversation.pam_waiting() {
            let links = self.links.clone();
            tokio::spawn(async move {
                links
                    .secmod(SecModRequest::Pam(PamRequest::Abort { id }))
                    .await;
            });
        }
    }
}

/// What answering a login request needs besides the request: who asks, the settings the
/// connection started with, its `webvpncontext` cookie and when it was accepted.
pub(super) struct Login<'a> {
    pub(super) peer: SocketAddr,
    pub(super) rt: &'a Runtime,
    pub(super) context_cookie: &'a str,
    pub(super) accepted: Instant,
}

impl Server {
    /// Accepts connections on one listener until shutdown; closes it (and waits for
    /// shutdown) when told to stop accepting.
    pub async fn run_listener(self: Arc<Self>, listener: TcpListener) {
        let mut shutdown = self.shutdown.subscribe();
        let mut accepting = self.accepting.subscribe();
        let mut last_accept: Option<Instant> = None;
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => return,
                () = async { let _ = accepting.wait_for(|a| !a).await; } => {
                    drop(listener);
                    let _ = shutdown.wait_for(|s| *s).await;
                    return;
                }
            };
            let (tcp, peer) = match accepted {
                // A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d; logs, bans,
                // scripts and occtl use a.b.c.d, as ocserv does.
                Ok((tcp, peer)) => (tcp, crate::addr::canonical_addr(peer)),
                Err(e) => {
                    warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let rate = Duration::from_millis(self.runtime().config.rate_limit_ms);
            if let Some(since) = last_accept.map(|t| t.elapsed()) {
                if since < rate {
                    tokio::time::sleep(rate - since).await;
                }
            }
            last_accept = Some(Instant::now());
            tokio::spawn(self.clone().serve_connection(tcp, peer));
        }
    }

    /// Reads the balancer's PROXY protocol header first if `listen-proxy-proto` asks for it
    /// (the client's address in it replaces the balancer's everywhere), then serves the
    /// connection with that address in every log line.
    async fn serve_connection(self: Arc<Self>, mut tcp: TcpStream, mut peer: SocketAddr) {
        let mut local = tcp.local_addr().ok();
        if self.runtime().config.listen_proxy_proto {
            match read_proxy_header(&mut tcp).await {
                Ok(header) => {
                    if let Some(addrs) = header.addresses {
                        debug!(
                            "{peer}: PROXY v{} header: client {}, balancer {}",
                            header.version, addrs.source, addrs.destination
                        );
                        peer = crate::addr::canonical_addr(addrs.source);
                        local = Some(addrs.destination);
                    }
                }
                Err(why) => {
                    info!("{peer}: {why}; closed (listen-proxy-proto is set)");
                    return;
                }
            }
        }
        // In JSON logs every line of this connection carries the peer, and once logged
        // in the user and session id.
        let span = tracing::info_span!(
            "connection",
            %peer,
            user = tracing::field::Empty,
            session = tracing::field::Empty
        );
        let local = local.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| {
            crate::addr::canonical_addr(a).ip()
        });
        self.handle_connection(tcp, peer, local)
            .instrument(span)
            .await;
    }

    async fn handle_connection(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, local: IpAddr) {
        let rt = self.runtime();
        let config = &rt.config;
        let now = Instant::now();
        if lock(&self.state).bans.is_banned(peer.ip(), now) {
            info!("{peer}: connection refused, address is banned");
            return;
        }
        self.add_ban_points(peer, config.ban_points_connection, "connections");
        let Ok(prelogin) = self.prelogin.clone().try_acquire_owned() else {
            warn!("{peer}: closed, {MAX_PRELOGIN} connections are already logging in");
            return;
        };
        let Some(per_ip) = PreloginSlot::take(&self, peer.ip()) else {
            info!(
                "{peer}: closed, {MAX_PRELOGIN_PER_IP} connections from this address are \
                 already logging in"
            );
            return;
        };
        let _ = tcp.set_nodelay(true);
        // Unsent data beyond this makes writes wait: a client that stops reading is seen
        // within a second or two of traffic (then WRITE_LIMIT ends it), not after the
        // kernel's megabytes of send buffer, and queued packets stay fresh.
        let _ = socket2::SockRef::from(&tcp).set_tcp_notsent_lowat(NOTSENT_LOWAT);
        let auth_deadline = tokio::time::Instant::now()
            + Duration::from_secs(u64::from(config.auth_timeout.max(1)));
        let Some(stream) = self.handshake(tcp, peer, &rt, auth_deadline).await else {
            return;
        };
        // From here on the connection is served as the host its server name chose.
        let rt = rt.host_of(&stream);
        if let Some(name) = &rt.name {
            debug!("{peer}: virtual host {name}");
        }
        let included = Arc::new(rt.config.included_http_headers.clone());
        let cert = cert_status(&stream, &rt.config);
        let login = tokio::time::timeout_at(
            auth_deadline,
            INCLUDED_HEADERS.scope(
                included.clone(),
                self.clone().http_phase(stream, peer, rt.clone(), cert, now),
            ),
        )
        .await;
        match login {
            Ok(Some((stream, outcome))) => {
                drop(prelogin);
                drop(per_ip);
                let tunnel = self.tunnel(stream, peer, local, rt, outcome);
                INCLUDED_HEADERS.scope(included, tunnel).await;
            }
            Ok(None) => {}
            Err(_) => {
                info!("{peer}: authentication not completed within auth-timeout; closed");
                self.metrics.auth_failed(AuthFailure::Timeout);
            }
        }
    }

    /// The TLS handshake, within [`HANDSHAKE_LIMIT`] and the auth deadline.
    async fn handshake(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        rt: &Runtime,
        auth_deadline: tokio::time::Instant,
    ) -> Option<TlsStream> {
        let started = Instant::now();
        let deadline = auth_deadline.min(tokio::time::Instant::now() + HANDSHAKE_LIMIT);
        match tokio::time::timeout_at(deadline, rt.tls.accept(tcp, &peer.to_string())).await {
            Ok(Ok(s)) => {
                self.metrics.handshake_took(started.elapsed());
                Some(s)
            }
            Ok(Err(e)) => {
                debug!("{e}");
                None
            }
            Err(_) => {
                let limit = if deadline < auth_deadline {
                    format!("{} s", HANDSHAKE_LIMIT.as_secs())
                } else {
                    "auth-timeout".into()
                };
                info!("{peer}: no TLS handshake within {limit}; closed");
                self.metrics.auth_failed(AuthFailure::Timeout);
                None
            }
        }
    }

    /// Serves HTTP requests until a CONNECT (returned) or the connection ends.
    async fn http_phase(
        self: Arc<Self>,
        mut stream: TlsStream,
        peer: SocketAddr,
        rt: Arc<Runtime>,
        cert: CertStatus,
        accepted: Instant,
    ) -> Option<(TlsStream, LoginOutcome)> {
        let mut conversation = LoginConversation {
            conversation: Conversation::new(&rt.config.auth, &rt.config.enable_auth, cert),
            links: self.links.clone(),
        };
        let conversation = &mut conversation.conversation;
        let mut reader = RequestReader::new(RequestLimits::default());
        let mut buf = vec![0u8; 16 * 1024];
        let context_cookie = random_cookie_text();
        let login = Login {
            peer,
            rt: &rt,
            context_cookie: &context_cookie,
            accepted,
        };
        let mut showed_secret = false;
        for _ in 0..MAX_REQUESTS {
            let request = read_request(&mut stream, &mut reader, &mut buf, peer).await?;
            let path = request.path().to_string();
            debug!("{peer}: {:?} {path}", request.method);
            if let (Some(camouflage), false) = (&rt.config.camouflage, showed_secret) {
                let has_cookie = request
                    .cookie("webvpn")
                    .is_some_and(|c| decode_cookie(c).is_ok());
                match camouflage.gate(&request.method, &request.target, has_cookie) {
                    Gate::Admit => showed_secret = true,
                    Gate::Undecided => {}
                    Gate::Refuse(response) => {
                        info!("{peer}: camouflage: no secret in the URL; declined");
                        answer_and_close(&mut stream, &response).await;
                        return None;
                    }
                }
            }
            let go_on = match request.method {
                Method::Connect if is_tunnel_target(&path) => {
                    let outcome = LoginOutcome {
                        request,
                        showed_secret,
                    };
                    return Some((stream, outcome));
                }
                Method::Get if path == "/logout" => {
                    let resp = ServerResponse::new(200, "OK")
                        .header("Content-Type", "text/html; charset=utf-8")
                        .body("<html></html>");
                    send(&mut stream, &resp).await.is_ok()
                }
                Method::Get if path == CALLBACK_PATH => {
                    self.sso_callback(&mut stream, &request, &login).await
                }
                Method::Get if path == DONE_PATH => {
                    let done = "You are logged in; return to the VPN client.";
                    send(&mut stream, &page(200, "OK", done)).await.is_ok()
                }
                Method::Get if path == "/svc" => {
                    send(&mut stream, &svc_login_prompt()).await.is_ok()
                }
                Method::Post if rt.config.kkdcp.iter().any(|r| r.path == path) => {
                    let routes: Vec<_> =
                        rt.config.kkdcp.iter().filter(|r| r.path == path).collect();
                    self.kkdcp_request(&mut stream, &request, &routes, &login)
                        .await
                }
                Method::Post if path == "/svc" => {
                    self.svc_login(&mut stream, conversation, &request, &login)
                        .await
                }
                Method::Get | Method::Post
                    if is_auth_path(&path)
                        || request.method == Method::Post
                        || group_in_url(&path, &rt.config).is_some() =>
                {
                    self.auth_request(&mut stream, conversation, &request, &login)
                        .await
                }
                _ => {
                    let resp = ServerResponse::new(404, "Not Found").header("Connection", "close");
                    let _ = send(&mut stream, &resp).await;
                    false
                }
            };
            if !go_on {
                return None;
            }
        }
        debug!("{peer}: too many requests on one connection");
        None
    }

    /// One step of the login conversation; false when the connection is done.
    async fn auth_request(
        &self,
        stream: &mut TlsStream,
        conversation: &mut Conversation,
        request: &ServerRequest,
        login: &Login<'_>,
    ) -> bool {
        let peer = login.peer;
        let msg = if request.method == Method::Post {
            parse_client_auth(&request.body)
        } else {
            ClientAuth::default()
        };
        let refusal = ServerResponse::new(401, "Unauthorized");
        if self.refused_as_banned(stream, peer, &refusal).await {
            return false;
        }
        if let Some(group) = group_in_url(request.path(), &login.rt.config) {
            conversation.force_group(group);
        }
        let mut step = match conversation.on_http_auth(&http_auth(request)) {
            Some(step) => step,
            None => conversation.on_post(&msg, &login.rt.forms),
        };
        if let AuthStep::SsoStart { external } = step {
            step = self.sso_start(request, external, conversation, login).await;
        }
        let (step, ticket) = self.run_checks(step, conversation, login).await;
        self.answer_step(stream, step, ticket, login).await
    }

    /// Ban points earned on other connections count at once: a client that keeps one
    /// connection open cannot go on guessing. True when `peer` was told `refusal`.
    async fn refused_as_banned(
        &self,
        stream: &mut TlsStream,
        peer: SocketAddr,
        refusal: &ServerResponse,
    ) -> bool {
        if !lock(&self.state).bans.is_banned(peer.ip(), Instant::now()) {
            return false;
        }
        info!("{peer}: login attempt refused, address is banned");
        answer_and_close(stream, refusal).await;
        true
    }

    /// Cisco's SVC login, as IP phones use it: username and password in one form post (or
    /// the client certificate), the cookie in a header; no forms and no second factor.
    /// False when the connection is done.
    async fn svc_login(
        &self,
        stream: &mut TlsStream,
        conversation: &mut Conversation,
        request: &ServerRequest,
        login: &Login<'_>,
    ) -> bool {
        let peer = login.peer;
        if self.refused_as_banned(stream, peer, &svc_refused()).await {
            return false;
        }
        let msg = parse_client_auth(&request.body);
        let step = conversation.on_post(&msg, &login.rt.forms);
        let (step, ticket) = self.run_checks(step, conversation, login).await;
        match step {
            AuthStep::Success { user, group } => {
                match self
                    .create_session(&user, group.as_deref(), ticket, login)
                    .await
                {
                    Some(cookie) => {
                        info!("{peer}: user '{user}' authenticated (SVC login)");
                        send(stream, &svc_logged_in(&cookie)).await.is_ok()
                    }
                    None => {
                        answer_and_close(stream, &svc_refused()).await;
                        false
                    }
                }
            }
            AuthStep::Form(_) if msg.username.is_none() || msg.password.is_none() => {
                send(stream, &svc_login_prompt()).await.is_ok()
            }
            other => {
                if let AuthStep::Failed { reason } = other {
                    info!("{peer}: authentication failed: {reason}");
                    self.metrics.auth_failed(AuthFailure::Other);
                }
                // A wrong password was logged and counted by the check; a second factor
                // cannot be asked for here.
                answer_and_close(stream, &svc_refused()).await;
                false
            }
        }
    }

    /// Answers a step of the conversation; false when the connection is done.
    async fn answer_step(
        &self,
        stream: &mut TlsStream,
        step: AuthStep,
        ticket: Option<AuthTicket>,
        login: &Login<'_>,
    ) -> bool {
        let peer = login.peer;
        match step {
            AuthStep::Form(form) => {
                // As ocserv: the context exists once credentials are under way; the first
                // form (and a certificate's group choice) clears any old one.
                let context = match form.inputs {
                    FormInputs::Password { .. } | FormInputs::Text { .. } | FormInputs::Sso(_) => {
                        format!("webvpncontext={}; Secure; HttpOnly", login.context_cookie)
                    }
                    FormInputs::UsernamePassword | FormInputs::None => {
                        "webvpncontext=; expires=Thu, 01 Jan 1970 22:00:00 GMT; path=/; Secure; \
                         HttpOnly"
                            .to_owned()
                    }
                };
                let resp = xml_response(form.to_xml()).header("Set-Cookie", context);
                send(stream, &resp).await.is_ok()
            }
            AuthStep::Success { user, group } => {
                self.logged_in(stream, &user, group.as_deref(), ticket, login)
                    .await
            }
            AuthStep::Failed { reason } => {
                info!("{peer}: authentication failed: {reason}");
                self.metrics.auth_failed(AuthFailure::Other);
                answer_and_close(stream, &ServerResponse::new(401, reason)).await;
                false
            }
            AuthStep::Negotiate { token, fallback } => {
                let challenge = match token {
                    Some(t) if !t.is_empty() => format!("Negotiate {}", B64.encode(t)),
                    _ => "Negotiate".to_owned(),
                };
                let mut resp =
                    ServerResponse::new(401, "Unauthorized").header("WWW-Authenticate", challenge);
                if fallback {
                    resp = resp.header("X-HTTP-Auth-Support", "fallback");
                }
                send(stream, &resp).await.is_ok()
            }
            AuthStep::BearerChallenge => {
                let resp =
                    ServerResponse::new(401, "Unauthorized").header("WWW-Authenticate", "Bearer");
                send(stream, &resp).await.is_ok()
            }
            AuthStep::CheckPassword { .. }
            | AuthStep::OidcCheck { .. }
            | AuthStep::SsoStart { .. }
            | AuthStep::SsoRedeem { .. }
            | AuthStep::GssapiAccept { .. }
            | AuthStep::CheckOtp { .. }
            | AuthStep::PamStart { .. }
            | AuthStep::PamAnswer { .. }
            | AuthStep::RadiusCheck { .. } => false,
        }
    }

    /// A successful login: a new session and its cookie for the client.
    async fn logged_in(
        &self,
        stream: &mut TlsStream,
        user: &str,
        group: Option<&str>,
        ticket: Option<AuthTicket>,
        login: &Login<'_>,
    ) -> bool {
        let (peer, config) = (login.peer, &login.rt.config);
        let Some(cookie) = self.create_session(user, group, ticket, login).await else {
            answer_and_close(stream, &ServerResponse::new(401, "Internal error")).await;
            return false;
        };
        info!(
            "{peer}: user '{user}' authenticated{}",
            group.map(|g| format!(" (group {g})")).unwrap_or_default()
        );
        let context = login.context_cookie;
        let resp = xml_response(complete_xml(config.banner.as_deref()))
            .header(
                "Set-Cookie",
                format!("webvpncontext={context}; Secure; HttpOnly"),
            )
            .header("Set-Cookie", format!("webvpn={cookie}; Secure; HttpOnly"))
            .header(
                "Set-Cookie",
                "webvpnc=; expires=Thu, 01 Jan 1970 22:00:00 GMT; path=/; Secure; HttpOnly",
            );
        send(stream, &resp).await.is_ok()
    }

    /// Ban points for a connection or a refused password or one-time password; `for_what`
    /// names what earned them, for the log.
    pub(super) fn add_ban_points(&self, peer: SocketAddr, points: u32, for_what: &str) {
        let now = Instant::now();
        if lock(&self.state).bans.add(peer.ip(), points, now) {
            self.metrics.bans.inc();
            info!("{peer}: banned after repeated {for_what}");
        }
    }

    /// A completed login, counted: a new session in the session store (the security
    /// module) and its cookie, or `None` when it is refused (logged).
    async fn create_session(
        &self,
        user: &str,
        group: Option<&str>,
        ticket: Option<AuthTicket>,
        login: &Login<'_>,
    ) -> Option<String> {
        lock(&self.totals).logged_in(login.accepted.elapsed());
        let created = async {
            let settings = self.user_settings(login.rt, user, group).await?;
            let create = SessionRequest::Create {
                user: user.to_string(),
                group: group.map(str::to_string),
                timeout: settings.session_timeout,
                ticket,
                login_ip: Some(login.peer.ip()),
                vhost: login.rt.name.clone(),
                granted: None,
            };
            match self.links.session(create).await {
                SessionReply::Created { cookie } => Ok(cookie),
                other => Err(format!("session store: {other:?}")),
            }
        };
        created
            .await
            .inspect_err(|e| warn!("{}: user '{user}' refused: {e}", login.peer))
            .ok()
    }
}

/// Reads a PROXY protocol header (v1 or v2) within [`HANDSHAKE_LIMIT`], never a byte past
/// it: what follows is the client's TLS handshake.
async fn read_proxy_header(tcp: &mut TcpStream) -> Result<ProxyHeader, String> {
    let read = async {
        let mut buf = Vec::new();
        loop {
            match proxy_proto::parse(&buf).map_err(|e| e.to_string())? {
                Parse::Complete { header, .. } => return Ok(header),
                Parse::Incomplete { need } => {
                    let have = buf.len();
                    buf.resize(need, 0);
                    match tcp.read_exact(&mut buf[have..]).await {
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            return Err("connection closed in the PROXY header".into())
                        }
                        Err(e) => return Err(format!("reading the PROXY header: {e}")),
                    }
                }
            }
        }
    };
    tokio::time::timeout(HANDSHAKE_LIMIT, read)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no PROXY header within {} s",
                HANDSHAKE_LIMIT.as_secs()
            ))
        })
}

/// Reads one whole request; on a malformed, oversized or trickled one the client is told
/// why and `None` returned, as when the connection ends.
async fn read_request(
    stream: &mut TlsStream,
    reader: &mut RequestReader,
    buf: &mut [u8],
    peer: SocketAddr,
) -> Option<ServerRequest> {
    // When the current request's first byte arrived.
    let mut started: Option<tokio::time::Instant> = None;
    loop {
        match reader.poll() {
            Ok(Some(r)) => return Some(r),
            Ok(None) => {}
            Err(e) => {
                refuse(stream, peer, &e.to_string(), e.status()).await;
                return None;
            }
        }
        if !reader.is_idle() {
            started.get_or_insert_with(tokio::time::Instant::now);
        }
        let read = match started {
            Some(t) => match tokio::time::timeout_at(t + REQUEST_LIMIT, stream.read(buf)).await {
                Ok(read) => read,
                Err(_) => {
                    let why = format!(
                        "request not complete within {} s of its first byte",
                        REQUEST_LIMIT.as_secs()
                    );
                    refuse(stream, peer, &why, (408, "Request Timeout")).await;
                    return None;
                }
            },
            None => stream.read(buf).await,
        };
        let n = match read {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        if let Err(e) = reader.feed(buf.get(..n).unwrap_or_default()) {
            refuse(stream, peer, &e.to_string(), e.status()).await;
            return None;
        }
    }
}

pub(super) fn cert_status(stream: &TlsStream, config: &Config) -> CertStatus {
    match verified_client_cert(stream) {
        Ok(None) => CertStatus::None,
        Err(why) => {
            debug!("client certificate rejected: {why}");
            CertStatus::Invalid(why)
        }
        Ok(Some(cert)) => {
            let field = |oid: &Option<CertOid>| -> Vec<String> {
                match oid {
                    Some(CertOid::Oid(o)) => cert_field(&cert, o),
                    Some(CertOid::SanRfc822Name) => cert_field(&cert, "SAN(rfc822name)"),
                    None => Vec::new(),
                }
            };
            // Certificate fields reach logs and scripts: same rules as typed names.
            CertStatus::Valid(CertIdentity {
                user: field(&config.cert_user_oid)
                    .into_iter()
                    .next()
                    .filter(|u| valid_name(u)),
                groups: field(&config.cert_group_oid)
                    .into_iter()
                    .filter(|g| valid_name(g))
                    .collect(),
            })
        }
    }
}

fn is_auth_path(path: &str) -> bool {
    ["/", "/auth", "/VPN"].contains(&path)
}

/// `select-group-by-url`: `https://server/GROUP` names one of the `select-group` groups.
fn group_in_url<'a>(path: &str, config: &'a Config) -> Option<&'a str> {
    let name = path.strip_prefix('/')?;
    config
        .select_group_by_url
        .then(|| config.select_groups.iter().find(|(g, _)| g == name))
        .flatten()
        .map(|(g, _)| g.as_str())
}

fn xml_response(body: String) -> ServerResponse {
    ServerResponse::new(200, "OK")
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("X-Transcend-Version", "1")
        .body(body)
}

fn random_cookie_text() -> String {
    let mut raw = [0u8; COOKIE_BYTES];
    random_fill(&mut raw);
    crate::sessions::encode_cookie(&raw)
}
