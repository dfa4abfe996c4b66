//! A CONNECT's session: the cookie looked up again, the limits, the address lease (vetted
//! with `ping-leases`), attaching the connection (kicking an older one), the kernel routes
//! it needs; and detaching it when the tunnel ends.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net};
use oc_proto::anyconnect::server_connect::ClientConnect;
use oc_proto::ipc::{
    CookieRefusal, MainReply, MainRequest, ScriptKind, SessionReply, SessionRequest, SessionView,
};
use tokio::sync::{mpsc, watch};
use tracing::warn;

use super::settings::lease_ask;
use super::{lock, write_lock, Kick, LiveTunnel, Runtime, Server, State};
use crate::auth::CertStatus;
use crate::config::{vhost_label, AuthMethod, Config, NetSettings};
use crate::packets::PacketBatch;
use crate::pool::{server_address_v4, server_address_v6, Lease};
use crate::script::ScriptInfo;
use crate::session_service::lease_of;

/// A CONNECT we refuse: what the client is told (no internal detail) and what we log.
pub(super) struct Refusal {
    pub(super) status: u16,
    pub(super) reason: &'static str,
    pub(super) x_reason: Option<&'static str>,
    pub(super) detail: String,
}

impl Refusal {
    /// openconnect treats 401 on CONNECT as "cookie rejected" (exit 2).
    fn cookie(detail: String) -> Self {
        Self {
            status: 401,
            reason: "Cookie is not acceptable",
            x_reason: None,
            detail,
        }
    }

    fn unavailable(x_reason: &'static str, detail: String) -> Self {
        Self {
            status: 503,
            reason: "Service Unavailable",
            x_reason: Some(x_reason),
            detail,
        }
    }
}

/// ocserv answers an undecodable cookie with 503 and an unknown or expired one with 401.
fn refusal(why: CookieRefusal, host: &Runtime) -> Refusal {
    match why {
        CookieRefusal::Malformed => Refusal::unavailable(
            "Server error",
            "cookie is not a base64 encoding of 32 bytes".into(),
        ),
        CookieRefusal::Unknown => {
            Refusal::cookie("no session has this cookie (unknown, logged out or expired)".into())
        }
        CookieRefusal::SessionTimeout => {
            Refusal::cookie("the session's lifetime (session-timeout) is over".into())
        }
        CookieRefusal::MaxSame(n) => Refusal::cookie(format!(
            "the user already has {n} sessions (max-same-clients)"
        )),
        CookieRefusal::ServerFull => {
            Refusal::unavailable("Server is full", "clients connected (max-clients)".into())
        }
        CookieRefusal::Pool(e) => Refusal::unavailable("Server error", e),
        CookieRefusal::Roaming { login } => Refusal::cookie(format!(
            "the cookie comes from another address than the login ({login}; deny-roaming)"
        )),
        CookieRefusal::OtherHost { issued_by } => Refusal::cookie(format!(
            "the cookie is from a login to virtual host {}, not {}",
            vhost_label(issued_by.as_deref()),
            vhost_label(host.name.as_deref())
        )),
        CookieRefusal::NoFamily => Refusal::unavailable(
            "Server configuration error",
            "no address family in common with the client".into(),
        ),
        CookieRefusal::Account(why) => Refusal::cookie(format!("account refused: {why}")),
        CookieRefusal::Unavailable(e) => {
            Refusal::unavailable("Server error", format!("session store: {e}"))
        }
    }
}

fn unexpected(reply: &SessionReply) -> Refusal {
    Refusal::unavailable("Server error", format!("session store answered {reply:?}"))
}

/// The session a CONNECT attached to.
pub(super) struct SessionFacts {
    pub(super) cookie: String,
    pub(super) id: u64,
    /// The public session id (occtl) and when the session was created.
    pub(super) sid: String,
    pub(super) created_unix: u64,
    pub(super) user: String,
    pub(super) group: Option<String>,
    /// The virtual host it logged in to (`None`: the default one).
    pub(super) vhost: Option<String>,
    pub(super) lease: Lease,
    pub(super) settings: NetSettings,
    /// `session-timeout`'s absolute deadline.
    pub(super) deadline: Option<Instant>,
    /// The lease was the session's already (a reconnect).
    pub(super) reused: bool,
}

pub(super) struct Opened {
    /// Networks that need a kernel route to the tun device (first use), each with whether
    /// it is an iroute.
    pub(super) new_routes: Vec<(IpNet, bool)>,
    /// The first tunnel: the server's addresses go on the tun device.
    pub(super) addresses: Option<MainRequest>,
    pub(super) kick_rx: watch::Receiver<Option<Kick>>,
    pub(super) session: SessionFacts,
}

/// One tunnel's facts once its session is attached.
pub(super) struct Attached {
    pub(super) conn: u64,
    pub(super) peer: SocketAddr,
    pub(super) local: IpAddr,
    pub(super) client: ClientConnect,
    pub(super) session: SessionFacts,
}

impl Attached {
    /// The server's own address in the user's IPv4 and IPv6 pools.
    pub(super) fn server_addresses(&self) -> (Option<IpAddr>, Option<IpAddr>) {
        let settings = &self.session.settings;
        (
            settings
                .ipv4_network
                .map(|n| IpAddr::V4(server_address_v4(n))),
            settings
                .ipv6_network
                .map(|n| IpAddr::V6(server_address_v6(n))),
        )
    }

    /// What the connect and disconnect scripts are told.
    pub(super) fn script_info<'a>(
        &'a self,
        device: &'a str,
        stats: Option<(u64, u64, u64)>,
    ) -> ScriptInfo<'a> {
        let (server_v4, server_v6) = self.server_addresses();
        let (client, session) = (&self.client, &self.session);
        ScriptInfo {
            id: session.id,
            user: &session.user,
            group: session.group.as_deref(),
            vhost: vhost_label(session.vhost.as_deref()),
            hostname: client.hostname.as_deref(),
            device,
            user_agent: &client.user_agent,
            device_type: client.device_type.as_deref(),
            platform: client.platform.as_deref(),
            remote: self.peer.ip(),
            local: self.local,
            server_v4,
            server_v6,
            lease: session.lease,
            settings: &session.settings,
            stats,
        }
    }
}

impl Server {
    /// Session lookup, limits and address lease for a CONNECT (the session store checks
    /// and attaches; the per-user settings decide the limits and the lease).
    pub(super) async fn open_tunnel(
        &self,
        cookie: &str,
        (conn, peer): (u64, IpAddr),
        client: &ClientConnect,
        cert: &CertStatus,
        host: &Runtime,
    ) -> Result<Opened, Refusal> {
        let config = &host.config;
        if *self.shutdown.borrow() {
            return Err(Refusal::unavailable(
                "Server is shutting down",
                "shutdown".into(),
            ));
        }
        let lookup = SessionRequest::Lookup {
            cookie: cookie.to_string(),
            vhost: host.name.clone(),
        };
        let found = match self.links.session(lookup).await {
            SessionReply::Found(view) => view,
            SessionReply::Refused(why) => return Err(refusal(why, host)),
            other => return Err(unexpected(&other)),
        };
        check_connect_certificate(cert, &found.user, config)?;
        let mut settings = self
            .user_settings(host, &found.user, found.group.as_deref())
            .await
            .map_err(|e| Refusal::unavailable("Server configuration error", e))?;
        if let Some(granted) = &found.granted {
            settings = settings.overlay(&super::settings::granted_settings(granted));
        }
        let server_full = config.max_clients > 0
            && lock(&self.state).tunnels.len() >= config.max_clients as usize;
        let attach = SessionRequest::Attach {
            cookie: cookie.to_string(),
            conn,
            max_same: settings.max_same_clients.unwrap_or(0),
            server_full,
            lease: lease_ask(&settings, client, config),
            peer: Some(peer),
            deny_roaming: settings.deny_roaming.unwrap_or(false),
        };
        let (view, reused, replaced) = match self.links.session(attach).await {
            SessionReply::Attached {
                session,
                reused,
                replaced,
            } => (session, reused, replaced),
            SessionReply::Refused(why) => return Err(refusal(why, host)),
            other => return Err(unexpected(&other)),
        };
        let mut state = lock(&self.state);
        let kick_rx = attach_tunnel(&mut state, replaced, conn);
        let new_routes = unrouted(&mut state, &settings);
        let addresses = (state.tunnels.len() == 1).then(|| state.server_addresses(true));
        Ok(Opened {
            new_routes,
            addresses,
            kick_rx,
            session: facts(cookie, view, settings, reused),
        })
    }

    /// Asks the main process to put the server's addresses on the tun device or take them
    /// off (`request`, when the first tunnel opens or the last one closes).
    pub(super) async fn set_server_addresses(&self, request: Option<MainRequest>) {
        if let Some(request) = request {
            if let MainReply::Failed(e) = self.links.main(request).await {
                warn!(
                    "could not set the server's addresses on {}: {e}",
                    self.tun_name
                );
            }
        }
    }

    /// Asks the main process for kernel routes to the tun device (`iroute`: a user's
    /// iroute, for which `route-add-cmd` runs when set).
    pub(super) async fn route_networks(&self, nets: Vec<(IpNet, bool)>) {
        for (net, iroute) in nets {
            let request = MainRequest::AddRoute { net, iroute };
            if let MainReply::Failed(e) = self.links.main(request).await {
                warn!("could not route {net} to {}: {e}", self.tun_name);
            }
        }
    }

    /// `ping-leases`: an IPv4 address that answers a ping is in use elsewhere on the
    /// network. It stays out of the pool (until restart) and the session gets another one.
    pub(super) async fn vet_lease(&self, t: &Attached, config: &Config) -> Lease {
        let session = &t.session;
        let mut lease = session.lease;
        for _ in 0..4 {
            let Some(addr) = lease.v4 else { return lease };
            if !self.answers_ping(addr).await {
                return lease;
            }
            warn!("{addr} answers pings, so it is in use elsewhere (ping-leases); not leasing it");
            let relocate = SessionRequest::Relocate {
                cookie: session.cookie.clone(),
                taken: addr,
                lease: lease_ask(&session.settings, &t.client, config),
            };
            match self.links.session(relocate).await {
                SessionReply::Relocated(fresh) => lease = lease_of(&fresh),
                other => {
                    warn!("no other address: {other:?}");
                    return lease;
                }
            }
        }
        lease
    }

    /// A connection of the session ended after moving `bytes` (in, out): detaches it.
    /// Returns whether the session ended with it (lease released), and the session's byte
    /// totals so far.
    pub(super) async fn close_tunnel(
        &self,
        cookie: &str,
        conn: u64,
        keep: bool,
        bytes: (u64, u64),
    ) -> (bool, (u64, u64)) {
        let addresses = {
            let mut state = lock(&self.state);
            state.tunnels.remove(&conn);
            state
                .tunnels
                .is_empty()
                .then(|| state.server_addresses(false))
        };
        self.set_server_addresses(addresses).await;
        let detach = SessionRequest::Detach {
            cookie: cookie.to_string(),
            conn,
            keep,
            bytes,
        };
        match self.links.session(detach).await {
            SessionReply::Detached { ended, carried } => (ended, carried),
            other => {
                warn!("detaching connection {conn}: {other:?}");
                (false, bytes)
            }
        }
    }

    /// The networks a tunnel owns: its addresses and the iroutes behind it.
    fn owned_networks(lease: &Lease, settings: &NetSettings) -> Vec<IpNet> {
        let mut nets: Vec<IpNet> = Vec::new();
        if let Some(v4) = lease.v4 {
            nets.push(IpNet::V4(Ipv4Net::from(v4)));
        }
        if let Some(v6) = lease.v6 {
            nets.push(IpNet::V6(v6));
        }
        nets.extend(settings.iroutes.iter().flatten().copied());
        nets
    }

    pub(super) fn add_routes(
        &self,
        conn: u64,
        lease: &Lease,
        settings: &NetSettings,
        tx: mpsc::Sender<PacketBatch>,
    ) {
        let mut routes = write_lock(&self.routes);
        for net in Self::owned_networks(lease, settings) {
            routes.insert(net, conn, tx.clone());
        }
    }

    pub(super) fn remove_routes(&self, conn: u64, lease: &Lease, settings: &NetSettings) {
        let mut routes = write_lock(&self.routes);
        for net in Self::owned_networks(lease, settings) {
            routes.remove(net, conn);
        }
    }

    /// A connect or disconnect script, run as root by the main process.
    pub(super) async fn run_script(
        &self,
        kind: ScriptKind,
        env: Vec<(String, String)>,
    ) -> Result<(), String> {
        match self.links.main(MainRequest::RunScript { kind, env }).await {
            MainReply::Done => Ok(()),
            MainReply::Failed(e) => Err(e),
            MainReply::Answer(_) | MainReply::UserFiles { .. } => Err("unexpected answer".into()),
        }
    }

    /// `ping-leases`: the main process pings (this process cannot run programs).
    async fn answers_ping(&self, addr: Ipv4Addr) -> bool {
        matches!(
            self.links.main(MainRequest::AddressInUse { addr }).await,
            MainReply::Answer(true)
        )
    }
}

/// With certificate authentication and `cisco-client-compat = false`, every connection
/// that opens a tunnel presents the certificate again, and it names the session's user (as
/// ocserv checks cookies: a stolen cookie alone opens nothing).
fn check_connect_certificate(
    cert: &CertStatus,
    user: &str,
    config: &Config,
) -> Result<(), Refusal> {
    let required = config
        .auth
        .iter()
        .any(|m| matches!(m, AuthMethod::Certificate))
        && !config.cisco_client_compat;
    if !required {
        return Ok(());
    }
    match cert {
        CertStatus::Valid(identity) if identity.user.as_deref().is_none_or(|u| u == user) => Ok(()),
        CertStatus::Valid(_) => Err(Refusal::cookie(format!(
            "the client certificate is not user '{user}''s (cisco-client-compat = false)"
        ))),
        _ => Err(Refusal::cookie(
            "no certificate provided for cookie authentication (cisco-client-compat = false)"
                .into(),
        )),
    }
}

/// What the tunnel keeps of its session.
fn facts(cookie: &str, view: SessionView, settings: NetSettings, reused: bool) -> SessionFacts {
    SessionFacts {
        cookie: cookie.to_string(),
        id: view.id,
        sid: view.sid,
        created_unix: view.created_unix,
        user: view.user,
        group: view.group,
        vhost: view.vhost,
        lease: view.lease.as_ref().map(lease_of).unwrap_or_default(),
        settings,
        deadline: view
            .remaining
            .map(|secs| Instant::now() + Duration::from_secs(secs)),
        reused,
    }
}

/// Registers connection `conn`, kicking the connection of the session it replaces.
fn attach_tunnel(
    state: &mut State,
    replaced: Option<u64>,
    conn: u64,
) -> watch::Receiver<Option<Kick>> {
    let (kick_tx, kick_rx) = watch::channel(None);
    if let Some(tunnel) = replaced.and_then(|old| state.tunnels.get(&old)) {
        tunnel.kick.send_replace(Some(Kick::Replaced));
    }
    state.tunnels.insert(
        conn,
        LiveTunnel {
            kick: kick_tx,
            view: None,
            dtls: None,
        },
    );
    kick_rx
}

/// The user's pools and iroutes that have no kernel route yet (now marked routed).
fn unrouted(state: &mut State, settings: &NetSettings) -> Vec<(IpNet, bool)> {
    let mut new_routes = Vec::new();
    let pools = [
        settings.ipv4_network.map(IpNet::V4),
        settings.ipv6_network.map(IpNet::V6),
    ];
    let iroutes = settings.iroutes.iter().flatten().map(|net| (*net, true));
    for (net, iroute) in pools
        .into_iter()
        .flatten()
        .map(|net| (net, false))
        .chain(iroutes)
    {
        if !state.routed.contains(&(net, iroute)) {
            state.routed.push((net, iroute));
            new_routes.push((net, iroute));
        }
    }
    new_routes
}
