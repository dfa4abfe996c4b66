//! The administrator's interfaces of a running server: the Prometheus endpoint
//! (`metrics-listen`) and the occtl control socket.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_ctl::model::{session_id_matches, BanInfo, IrouteInfo, ServerStatus, SessionInfo, UserInfo};
use oc_ctl::proto::{decode_request, encode_response, LineBuffer, Request, Response};
use oc_ctl::CtlError;
use oc_proto::http::server::{Method, RequestLimits, RequestReader, ServerResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::broadcast;
use tracing::debug;

use super::{lock, AdminRequest, Kick, Server};
use crate::metrics::Direction;
use oc_proto::ipc::{SessionReply, SessionRequest, SessionView};

/// A scrape must arrive and be answered within this time.
const SCRAPE_LIMIT: Duration = Duration::from_secs(10);
/// Scrapes served at once; more wait for the listener.
const MAX_SCRAPES: usize = 8;

impl Server {
    /// Serves `GET /metrics` in the OpenMetrics text format, one request per connection.
    pub async fn run_metrics(self: Arc<Self>, listener: TcpListener) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    debug!("metrics: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let server = self.clone();
            tokio::spawn(async move {
                if tokio::time::timeout(SCRAPE_LIMIT, server.scrape(stream))
                    .await
                    .is_err()
                {
                    debug!("metrics: {peer} too slow; closed");
                }
                drop(permit);
            });
        }
    }

    async fn scrape(&self, mut stream: TcpStream) {
        let mut reader = RequestReader::new(RequestLimits::default());
        let mut buf = [0u8; 4096];
        let request = loop {
            match reader.poll() {
                Ok(Some(r)) => break r,
                Ok(None) => {}
                Err(e) => {
                    let (code, reason) = e.status();
                    answer(&mut stream, ServerResponse::new(code, reason)).await;
                    return;
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if reader.feed(buf.get(..n).unwrap_or_default()).is_err() {
                        answer(&mut stream, ServerResponse::new(400, "Bad Request")).await;
                        return;
                    }
                }
            }
        };
        let response = match (&request.method, request.path()) {
            (Method::Get, "/metrics") => {
                self.refresh_gauges().await;
                ServerResponse::new(200, "OK")
                    .header(
                        "Content-Type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )
                    .body(self.metrics.encode())
            }
            (Method::Get, _) => ServerResponse::new(404, "Not Found"),
            _ => ServerResponse::new(405, "Method Not Allowed").header("Allow", "GET"),
        };
        answer(&mut stream, response).await;
    }

    /// Every session in the session store (the security module).
    async fn sessions(&self) -> Vec<SessionView> {
        match self.links.session(SessionRequest::List).await {
            SessionReply::List(all) => all,
            other => {
                debug!("session store: {other:?}");
                Vec::new()
            }
        }
    }

    /// Gauges that are read from the server's state rather than counted as things happen.
    /// Returns the number of sessions in the store.
    async fn refresh_gauges(&self) -> usize {
        let sessions = self.sessions().await;
        let leases = sessions.iter().filter_map(|s| s.lease);
        let v4 = leases.clone().filter(|l| l.v4.is_some()).count();
        let v6 = leases.filter(|l| l.v6.is_some()).count();
        self.metrics.set_leases(v4, v6);
        let now = Instant::now();
        let state = lock(&self.state);
        self.metrics
            .sessions_active
            .set(i64::try_from(state.tunnels.len()).unwrap_or(i64::MAX));
        self.metrics
            .banned_ips
            .set(i64::try_from(state.bans.banned(now).len()).unwrap_or(i64::MAX));
        sessions.len()
    }
}

async fn answer(stream: &mut TcpStream, response: ServerResponse) {
    let mut out = Vec::new();
    response.header("Connection", "close").emit(&mut out);
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
}

/// Requests a client may have in flight on one control connection before it is closed.
const MAX_CONTROL_CLIENTS: usize = 16;
/// A control client has this long to send its request.
const REQUEST_LIMIT: Duration = Duration::from_secs(30);

impl Server {
    /// Serves occtl on the control socket (`occtl-socket-file`): one request per line, one
    /// response per request; `show events` streams until the client goes away.
    pub async fn run_control(self: Arc<Self>, listener: UnixListener) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONTROL_CLIENTS));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    debug!("control socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let server = self.clone();
            tokio::spawn(async move {
                server.control_client(stream).await;
                drop(permit);
            });
        }
    }

    async fn control_client(&self, mut stream: UnixStream) {
        let mut lines = LineBuffer::for_requests();
        loop {
            let request = match read_request(&mut stream, &mut lines).await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    let message = e.to_string();
                    reply(&mut stream, &Response::Error { message }).await;
                    return;
                }
            };
            if request == Request::ShowEvents {
                self.stream_events(&mut stream).await;
                return;
            }
            let response = self.answer(request).await;
            if !reply(&mut stream, &response).await {
                return;
            }
        }
    }

    /// The current users, then one event per connect and disconnect.
    async fn stream_events(&self, stream: &mut UnixStream) {
        let mut events = self.events.subscribe();
        if !reply(stream, &Response::Users(self.ctl_users())).await {
            return;
        }
        let mut probe = [0u8; 64];
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(e) => {
                        if !reply(stream, &Response::Event(e)).await {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        debug!("control socket: an event listener missed {n} events");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                // The client closing its end (or sending anything) ends the stream.
                _ = stream.read(&mut probe) => return,
            }
        }
    }

    async fn answer(&self, request: Request) -> Response {
        match request {
            Request::ShowStatus => Response::Status(self.ctl_status().await),
            Request::ShowUsers => Response::Users(self.ctl_users()),
            Request::ShowUser(name) => Response::Users(
                self.ctl_users()
                    .into_iter()
                    .filter(|u| u.username == name)
                    .collect(),
            ),
            Request::ShowId(id) => Response::Users(
                self.ctl_users()
                    .into_iter()
                    .filter(|u| u.id == id)
                    .collect(),
            ),
            Request::ShowSessions { valid_only } => Response::Sessions(
                self.ctl_sessions()
                    .await
                    .into_iter()
                    .filter(|s| !valid_only || s.is_valid())
                    .collect(),
            ),
            Request::ShowSession(sid) => Response::Sessions(
                self.ctl_sessions()
                    .await
                    .into_iter()
                    .filter(|s| s.matches(&sid))
                    .collect(),
            ),
            Request::ShowIpBans => Response::Bans(self.ctl_bans(true)),
            Request::ShowIpBanPoints => Response::Bans(self.ctl_bans(false)),
            Request::ShowIroutes => Response::Iroutes(
                self.ctl_users()
                    .iter()
                    .filter(|u| !u.iroutes.is_empty())
                    .map(IrouteInfo::from_user)
                    .collect(),
            ),
            Request::ShowEvents => Response::Users(self.ctl_users()),
            Request::DisconnectUser(name) => {
                let kicked = self.kick(|t| t.username == name, false).await;
                done_or_missing(kicked, "user", &name)
            }
            Request::DisconnectId(id) => {
                let kicked = self.kick(|t| t.id == id, false).await;
                done_or_missing(kicked, "id", &id.to_string())
            }
            Request::TerminateUser(name) => {
                let kicked = self.kick(|t| t.username == name, true).await;
                done_or_missing(kicked, "user", &name)
            }
            Request::TerminateId(id) => {
                let kicked = self.kick(|t| t.id == id, true).await;
                done_or_missing(kicked, "id", &id.to_string())
            }
            Request::TerminateSession(sid) => self.terminate_session(&sid).await,
            Request::UnbanIp(ip) => match ip.parse::<IpAddr>() {
                Ok(addr) if lock(&self.state).bans.unban(addr, Instant::now()) => Response::Done {
                    message: format!("IP '{ip}' was unbanned"),
                },
                Ok(_) => Response::Error {
                    message: format!("IP '{ip}' is not banned"),
                },
                Err(_) => Response::Error {
                    message: format!("'{ip}' is not an IP address"),
                },
            },
            Request::Reload => {
                self.admin_requests.send_replace(Some(AdminRequest::Reload));
                Response::Done {
                    message: "server is reloading its configuration".into(),
                }
            }
            Request::StopNow => {
                self.admin_requests.send_replace(Some(AdminRequest::Stop));
                Response::Done {
                    message: "server is stopping".into(),
                }
            }
        }
    }

    /// Every live tunnel as occtl shows it, by id.
    pub fn ctl_users(&self) -> Vec<UserInfo> {
        let views: Vec<(UserInfo, Option<crate::udp::DtlsId>)> = lock(&self.state)
            .tunnels
            .values()
            .filter_map(|t| t.view.as_ref().map(|(view, meters)| (view, meters, t.dtls)))
            .map(|(view, meters, dtls)| {
                let user = UserInfo {
                    rx_bytes: meters.rx(),
                    tx_bytes: meters.tx(),
                    ..view.clone()
                };
                (user, dtls)
            })
            .collect();
        // As ocserv, the DTLS cipher shows once a DTLS channel is up (the registry is
        // asked after the state lock is given back).
        let registry = lock(&self.dtls_registry);
        let mut users: Vec<UserInfo> = views
            .into_iter()
            .map(|(mut user, dtls)| {
                if !dtls.is_some_and(|id| registry.established(&id)) {
                    user.dtls_cipher.clear();
                }
                user
            })
            .collect();
        drop(registry);
        users.sort_by_key(|u| u.id);
        users
    }

    async fn ctl_status(&self) -> ServerStatus {
        let entries = self.refresh_gauges().await;
        let totals = *lock(&self.totals);
        let (active, banned) = {
            let state = lock(&self.state);
            (state.tunnels.len(), state.bans.banned(Instant::now()).len())
        };
        let up_since = super::unix_seconds(self.started);
        ServerStatus {
            // The main process, as ocserv shows it (this process is its child).
            server_pid: nix::unistd::getppid().as_raw().unsigned_abs(),
            sec_mod_pid: self.runtime().secmod_pid,
            sec_mod_instances: 1,
            up_since,
            active_sessions: active as u64,
            total_sessions: self.metrics.sessions_opened.get(),
            total_auth_failures: self.metrics.auth_failures_total(),
            ips_in_ban_list: banned as u64,
            secmod_client_entries: entries as u64,
            last_stats_reset: up_since,
            sessions_handled: totals.closed,
            timed_out_sessions: totals.timed_out,
            timed_out_idle_sessions: totals.timed_out_idle,
            closed_due_to_error_sessions: totals.errors,
            auth_failures: self.metrics.auth_failures_total(),
            avg_auth_time: totals.avg_auth_secs(),
            max_auth_time: totals.max_auth_secs,
            avg_session_time: totals.avg_session_secs(),
            max_session_time: totals.max_session_secs,
            min_mtu: totals.min_mtu,
            max_mtu: totals.max_mtu,
            rx_bytes: self.metrics.bytes(Direction::Rx),
            tx_bytes: self.metrics.bytes(Direction::Tx),
            ..ServerStatus::default()
        }
    }

    async fn ctl_sessions(&self) -> Vec<SessionInfo> {
        let wall = std::time::SystemTime::now();
        let records = self.sessions().await;
        let state = lock(&self.state);
        let users: std::collections::HashMap<u64, &UserInfo> = state
            .tunnels
            .iter()
            .filter_map(|(conn, t)| t.view.as_ref().map(|(v, _)| (*conn, v)))
            .collect();
        let mut sessions: Vec<SessionInfo> = records
            .iter()
            .map(|r| {
                let tunnel = r.attached.and_then(|c| users.get(&c));
                let valid = r.attached.is_some() || r.expires_in > 0;
                SessionInfo {
                    session: r.sid.chars().take(6).collect(),
                    full_session: r.sid.clone(),
                    username: r.user.clone(),
                    groupname: r.group.clone().unwrap_or_default(),
                    vhost: crate::config::vhost_label(r.vhost.as_deref()).to_owned(),
                    created: r.created_unix,
                    expires: super::unix_seconds(wall + Duration::from_secs(r.expires_in)),
                    state: if valid {
                        oc_ctl::model::state::AUTHENTICATED.into()
                    } else {
                        oc_ctl::model::state::UNKNOWN.into()
                    },
                    remote_ip: tunnel.map(|u| u.remote_ip.clone()).unwrap_or_default(),
                    user_agent: tunnel.map(|u| u.user_agent.clone()).unwrap_or_default(),
                    in_use: u32::from(r.attached.is_some()),
                    session_is_open: r.attached.is_some(),
                    tls_auth_ok: true,
                }
            })
            .collect();
        sessions.sort_by(|a, b| a.created.cmp(&b.created).then(a.session.cmp(&b.session)));
        sessions
    }

    /// Banned addresses (`banned_only`) or every address with points.
    fn ctl_bans(&self, banned_only: bool) -> Vec<BanInfo> {
        let now = Instant::now();
        let wall = std::time::SystemTime::now();
        let state = lock(&self.state);
        let mut bans: Vec<BanInfo> = state
            .bans
            .entries(now)
            .into_iter()
            .filter(|e| !banned_only || e.banned)
            .map(|e| BanInfo {
                ip: e.ip.to_string(),
                score: e.score,
                banned_until: e.banned.then(|| super::unix_seconds(wall + e.resets_in)),
            })
            .collect();
        bans.sort_by(|a, b| a.ip.cmp(&b.ip));
        bans
    }

    /// Kicks the tunnels whose view matches; with `terminate` also ends their users'
    /// other sessions. Returns how many tunnels were kicked.
    async fn kick(&self, matches: impl Fn(&UserInfo) -> bool, terminate: bool) -> usize {
        let mut users = std::collections::BTreeSet::new();
        let mut kicked = 0;
        for tunnel in lock(&self.state).tunnels.values() {
            if let Some((view, _)) = tunnel.view.as_ref().filter(|(v, _)| matches(v)) {
                tunnel.kick.send_replace(Some(Kick::Admin));
                users.insert(view.username.clone());
                kicked += 1;
            }
        }
        if terminate {
            for user in users {
                self.end_and_kick(SessionRequest::End {
                    sid: None,
                    user: Some(user),
                })
                .await;
            }
        }
        kicked
    }

    /// Ends sessions in the store and kicks the tunnels that hold them (those end their
    /// own sessions as they close).
    async fn end_and_kick(&self, end: SessionRequest) {
        if let SessionReply::Ended { conns, .. } = self.links.session(end).await {
            let state = lock(&self.state);
            for conn in conns {
                if let Some(tunnel) = state.tunnels.get(&conn) {
                    tunnel.kick.send_replace(Some(Kick::Admin));
                }
            }
        }
    }

    /// Ends the sessions whose id starts with `sid`, and their tunnels.
    async fn terminate_session(&self, sid: &str) -> Response {
        let sessions = self.sessions().await;
        let found: Vec<&SessionView> = sessions
            .iter()
            .filter(|r| session_id_matches(&r.sid, sid) || r.sid == sid)
            .collect();
        let full = match found.as_slice() {
            [one] => one.sid.clone(),
            [] => {
                return Response::Error {
                    message: format!("session '{sid}' was not found"),
                }
            }
            _ => {
                return Response::Error {
                    message: format!("session id '{sid}' is ambiguous; give more of it"),
                }
            }
        };
        self.end_and_kick(SessionRequest::End {
            sid: Some(full),
            user: None,
        })
        .await;
        Response::Done {
            message: format!("session '{sid}' was terminated"),
        }
    }
}

fn done_or_missing(kicked: usize, what: &str, name: &str) -> Response {
    if kicked > 0 {
        Response::Done {
            message: format!("{what} '{name}' was disconnected"),
        }
    } else {
        Response::Error {
            message: format!("could not disconnect {what} '{name}': not connected"),
        }
    }
}

/// The next request on a control connection; `None` when the client closed it or stayed
/// silent past [`REQUEST_LIMIT`].
async fn read_request(
    stream: &mut UnixStream,
    lines: &mut LineBuffer,
) -> Result<Option<Request>, CtlError> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(line) = lines.next_line()? {
            return decode_request(&line).map(Some);
        }
        match tokio::time::timeout(REQUEST_LIMIT, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => lines.push(buf.get(..n).unwrap_or_default())?,
            _ => return Ok(None),
        }
    }
}

/// Writes one response line; false when the client is gone.
async fn reply(stream: &mut UnixStream, response: &Response) -> bool {
    stream.write_all(&encode_response(response)).await.is_ok()
}
