//! A tunnel's life, CONNECT to close: attach the session, run the connect script, offer
//! DTLS, plan the tunnel (`oc_proto::anyconnect::tunnel_plan`), send the grant, run the
//! packet loop, then detach, account and run the disconnect script.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;
use oc_ctl::model::{Event, UserInfo};
use oc_proto::anyconnect::server_connect::ClientConnect;
use oc_proto::anyconnect::server_session::ServerSession;
use oc_proto::anyconnect::tunnel_plan::{plan_tunnel, Addresses, PlanInput, TlsFacts, TunnelPlan};
use oc_proto::http::server::ServerResponse;
use oc_proto::ipc::ScriptKind;
use oc_tls::TlsStream;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::connect::{Attached, Opened, Refusal};
use super::login::cert_status;
use super::login::LoginOutcome;
use super::packet_loop::{End, Outcome, PacketFilter, Report, Traffic};
use super::reply::{answer_and_close, refuse};
use super::settings::plan_settings;
use super::{lock, unix_seconds, Kick, Runtime, Server};
use crate::config::Config;
use crate::metrics::{AuthFailure, TunnelMeters};
use crate::pool::Lease;
use crate::script;
use crate::udp::{DtlsId, TunnelDtls};
use oc_proto::anyconnect::camouflage::Camouflage;
use oc_proto::rate_limit::RateLimit;

/// Tun reads' worth of packets queued towards one client before new ones are dropped
/// (each at most 64 KiB: one super-packet split).
const SESSION_QUEUE: usize = 128;

/// Counts a tunnel task from its start until its disconnect script has run.
struct TaskGuard<'a>(&'a AtomicU64);

impl<'a> TaskGuard<'a> {
    fn new(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for TaskGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A planned tunnel being served: its plan, DTLS channel, meters and what occtl shows.
struct Serving {
    plan: TunnelPlan,
    /// The addresses the client got (routes and the packet filter follow these).
    granted: Lease,
    dtls: Option<(DtlsId, TunnelDtls)>,
    meters: TunnelMeters,
    view: UserInfo,
    /// When the grant went out (for the tunnel's duration).
    started: Instant,
}

impl Server {
    pub(super) async fn tunnel(
        self: Arc<Self>,
        mut stream: TlsStream,
        peer: SocketAddr,
        local: IpAddr,
        rt: Arc<Runtime>,
        login: LoginOutcome,
    ) {
        let LoginOutcome {
            request,
            showed_secret,
        } = login;
        let config = &rt.config;
        let client = ClientConnect::from_request(&request);
        let Some(cookie) = client.cookie.clone() else {
            let status = (503, "Service Unavailable");
            refuse(&mut stream, peer, "CONNECT without a cookie", status).await;
            return;
        };
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let _task = TaskGuard::new(&self.tunnel_tasks);
        let Opened {
            new_routes,
            addresses,
            kick_rx,
            session,
        } = match self
            .open_tunnel(
                &cookie,
                (conn, peer.ip()),
                &client,
                &cert_status(&stream, config),
                &rt,
            )
            .await
        {
            Ok(o) => o,
            Err(refusal) => {
                let disguised = config.camouflage.is_some() && !showed_secret;
                return self
                    .refuse_connect(&mut stream, peer, refusal, disguised)
                    .await;
            }
        };
        let span = tracing::Span::current();
        span.record("user", session.user.as_str());
        span.record("session", session.id);
        self.set_server_addresses(addresses).await;
        self.route_networks(new_routes).await;
        let mut t = Attached {
            conn,
            peer,
            local,
            client,
            session,
        };
        if config.ping_leases && !t.session.reused {
            t.session.lease = self.vet_lease(&t, config).await;
        }
        if config.connect_script.is_some() && !self.connect_script(&mut stream, &t).await {
            return;
        }
        if config.host_update_script.is_some() && t.client.hostname.is_some() {
            self.host_update_script(&t);
        }
        let now = Instant::now();
        let mut serving = self.plan(&stream, &t, config, now);
        let outcome = self
            .serve(&mut stream, &t, &mut serving, kick_rx, now)
            .await;
        self.finish(&t, serving, outcome, config).await;
    }

    /// Tells the client why its CONNECT is refused, and closes; `disguised` (camouflage,
    /// on a connection that never showed the secret) answers as a web server would.
    async fn refuse_connect(
        &self,
        stream: &mut TlsStream,
        peer: SocketAddr,
        refusal: Refusal,
        disguised: bool,
    ) {
        info!("{peer}: tunnel refused: {}", refusal.detail);
        if refusal.status == 401 {
            self.metrics.auth_failed(AuthFailure::Cookie);
        }
        let mut resp = ServerResponse::new(refusal.status, refusal.reason);
        if let Some(why) = refusal.x_reason {
            resp.push_header("X-Reason", why);
        }
        if disguised {
            resp = Camouflage::cookie_refusal();
        }
        answer_and_close(stream, &resp).await;
    }

    /// `host-update-script`, as ocserv runs it once the client named its host; the tunnel
    /// does not wait for it.
    fn host_update_script(self: &Arc<Self>, t: &Attached) {
        let env = script::script_env(ScriptKind::HostUpdate, &t.script_info(&self.tun_name, None));
        let (server, user) = (self.clone(), t.session.user.clone());
        tokio::spawn(async move {
            if let Err(e) = server.run_script(ScriptKind::HostUpdate, env).await {
                warn!("user '{user}': host-update-script: {e}");
            }
        });
    }

    /// The connect script; when it refuses the session, the client is told and the
    /// connection detached (false).
    async fn connect_script(&self, stream: &mut TlsStream, t: &Attached) -> bool {
        let env = script::script_env(ScriptKind::Connect, &t.script_info(&self.tun_name, None));
        let Err(e) = self.run_script(ScriptKind::Connect, env).await else {
            return true;
        };
        let (peer, user) = (t.peer, &t.session.user);
        warn!("{peer}: user '{user}': connect-script refused the session: {e}");
        self.close_tunnel(&t.session.cookie, t.conn, false, (0, 0))
            .await;
        let resp = ServerResponse::new(503, "Service Unavailable")
            .header("X-Reason", "Server configuration error");
        answer_and_close(stream, &resp).await;
        false
    }

    /// Offers DTLS, plans the tunnel and starts what the plan grants: the DTLS channel,
    /// the meters and the occtl view.
    fn plan(&self, stream: &TlsStream, t: &Attached, config: &Config, now: Instant) -> Serving {
        let session = &t.session;
        let offered = self.offer_dtls(stream, &t.client, &session.settings, config);
        let settings = plan_settings(&session.settings, config);
        let plan = plan_tunnel(&PlanInput {
            client: &t.client,
            settings: &settings,
            user: &session.user,
            group: session.group.as_deref(),
            lease: Addresses {
                v4: session.lease.v4,
                v6: session.lease.v6,
            },
            ipv6_peer: t.peer.is_ipv6(),
            tls: tls_facts(stream),
            dtls: offered.as_ref().map(|o| o.offer),
            session_left: session.deadline.map(|d| d.saturating_duration_since(now)),
        });
        let dtls_description = offered.as_ref().map(|o| o.description.clone());
        let dtls = offered.map(|o| self.start_dtls(o, plan.grant.base_mtu, config));
        for (channel, algorithm) in [
            ("DTLS", plan.dtls_compression()),
            ("CSTP", plan.cstp_compression()),
        ] {
            if let Some(a) = algorithm {
                info!("{}: selected {channel} compression method {a}", t.peer);
            }
        }
        let granted = Lease {
            v4: plan.granted.v4,
            v6: plan.granted.v6,
        };
        let view = self.user_view(t, &plan, stream, dtls_description);
        Serving {
            plan,
            granted,
            dtls,
            meters: self.metrics.tunnel_meters(&session.user),
            view,
            started: now,
        }
    }

    /// Routes the granted addresses to this tunnel, sends the grant and runs the packet
    /// loop until the tunnel ends.
    async fn serve(
        &self,
        stream: &mut TlsStream,
        t: &Attached,
        serving: &mut Serving,
        kick_rx: watch::Receiver<Option<Kick>>,
        now: Instant,
    ) -> Outcome {
        let (session, plan) = (&t.session, &serving.plan);
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        self.add_routes(t.conn, &serving.granted, &session.settings, tx);
        let mut out = Vec::new();
        plan.grant.to_response().emit(&mut out);
        self.announce(t, serving);
        let filter = PacketFilter {
            v4: serving.granted.v4,
            v6: serving.granted.v6,
            restrict: plan.restrict.clone(),
            iroutes: session.settings.iroutes.clone().unwrap_or_default(),
            ports: session.settings.restrict_user_to_ports.clone(),
            dns: session.settings.dns.clone().unwrap_or_default(),
        };
        serving.started = Instant::now();
        self.metrics.sessions_opened.inc();
        if stream.write_all(&out).await.is_err() {
            return Outcome::default();
        }
        let timers = plan.server_timers(session.deadline);
        let limit = |rate: Option<u64>| {
            rate.filter(|r| *r > 0)
                .map(|r| RateLimit::new(r, Instant::now()))
        };
        let renegotiations = plan.client_renegotiates.then(|| {
            oc_tls::allow_client_renegotiation(stream.ssl());
            oc_tls::Renegotiations::new(stream.ssl())
        });
        let traffic = Traffic {
            renegotiations,
            filter: &filter,
            rx_limit: limit(session.settings.rx_data_per_sec),
            tx_limit: limit(session.settings.tx_data_per_sec),
            meters: &serving.meters,
            report: session
                .settings
                .stats_report_time
                .filter(|t| *t > 0)
                .map(|t| Report {
                    every: Duration::from_secs(u64::from(t)),
                    cookie: session.cookie.clone(),
                }),
        };
        self.packet_loop(
            stream,
            ServerSession::new(timers, now).with_compression(plan.compression()),
            rx,
            kick_rx,
            serving.dtls.as_mut().map(|(_, d)| d),
            traffic,
        )
        .await
    }

    /// Logs the tunnel up and shows it to occtl.
    fn announce(&self, t: &Attached, serving: &Serving) {
        let granted = &serving.granted;
        // ocserv's line for each tunnel's device (here the one all tunnels share).
        debug!("{}: assigning tun device {}", t.peer, self.tun_name);
        info!(
            "{}: user '{}' tunnel up{}: {}{}",
            t.peer,
            t.session.user,
            if t.session.reused {
                " (session reused)"
            } else {
                ""
            },
            granted.v4.map(|a| a.to_string()).unwrap_or_default(),
            granted.v6.map(|a| format!(" {a}")).unwrap_or_default(),
        );
        if let Some(live) = lock(&self.state).tunnels.get_mut(&t.conn) {
            live.view = Some((serving.view.clone(), serving.meters.clone()));
            live.dtls = serving.dtls.as_ref().map(|(id, _)| *id);
        }
        let _ = self.events.send(Event::Connect {
            user: serving.view.clone(),
        });
    }

    /// After the packet loop: routes and DTLS id released, the session detached (kept for
    /// a reconnect unless the way it ended ends it), accounting, the disconnect script.
    async fn finish(&self, t: &Attached, serving: Serving, outcome: Outcome, config: &Config) {
        let (session, meters) = (&t.session, &serving.meters);
        let keep = match outcome.end {
            End::UserLogout => config.persistent_cookies,
            End::Kicked(Kick::Shutdown | Kick::Admin) | End::SessionOver => false,
            End::Kicked(Kick::Replaced) | End::Lost => true,
        };
        self.remove_routes(t.conn, &serving.granted, &session.settings);
        if let Some((id, _)) = &serving.dtls {
            lock(&self.dtls_registry).unregister(id);
        }
        let (ended, session_bytes) = self
            .close_tunnel(&session.cookie, t.conn, keep, (meters.rx(), meters.tx()))
            .await;
        let mtu = serving.plan.mtu();
        lock(&self.totals).tunnel_ended(outcome.closed, serving.started.elapsed(), mtu);
        let _ = self.events.send(Event::Disconnect {
            user: UserInfo {
                rx_bytes: meters.rx(),
                tx_bytes: meters.tx(),
                ..serving.view
            },
            reason: outcome.why.clone(),
        });
        info!(
            rx_bytes = meters.rx(),
            tx_bytes = meters.tx(),
            session_rx_bytes = session_bytes.0,
            session_tx_bytes = session_bytes.1,
            "{}: user '{}' tunnel closed ({}); session {}",
            t.peer,
            session.user,
            outcome.why,
            if ended { "ended" } else { "kept for reconnect" },
        );
        if config.disconnect_script.is_some() {
            let stats = Some((
                meters.rx(),
                meters.tx(),
                serving.started.elapsed().as_secs(),
            ));
            let env = script::script_env(
                ScriptKind::Disconnect,
                &t.script_info(&self.tun_name, stats),
            );
            if let Err(e) = self.run_script(ScriptKind::Disconnect, env).await {
                warn!("user '{}': disconnect-script: {e}", session.user);
            }
        }
    }

    /// What occtl shows of this tunnel; `dtls` describes the DTLS channel offered (shown
    /// only when the plan granted it: no line at all without one, as ocserv).
    fn user_view(
        &self,
        t: &Attached,
        plan: &TunnelPlan,
        stream: &TlsStream,
        dtls: Option<String>,
    ) -> UserInfo {
        let (session, client, grant) = (&t.session, &t.client, &plan.grant);
        let settings = &session.settings;
        let (server_v4, server_v6) = t.server_addresses();
        let texts =
            |list: &Option<Vec<IpAddr>>| list.iter().flatten().map(ToString::to_string).collect();
        // ocserv's form, which scripts grep for: IPv4 as address/netmask.
        let nets = |list: &[IpNet]| list.iter().map(script::route_text).collect();
        let (sid, session_started_at) = (session.sid.clone(), session.created_unix);
        UserInfo {
            id: t.conn,
            username: session.user.clone(),
            groupname: session.group.clone().unwrap_or_default(),
            state: oc_ctl::model::state::CONNECTED.into(),
            vhost: crate::config::vhost_label(session.vhost.as_deref()).to_owned(),
            device: self.tun_name.clone(),
            mtu: Some(plan.mtu()),
            remote_ip: t.peer.ip().to_string(),
            local_device_ip: t.local.to_string(),
            ipv4: plan.granted.v4.map(|a| a.to_string()),
            ptp_ipv4: server_v4
                .filter(|_| plan.granted.v4.is_some())
                .map(|a| a.to_string()),
            ipv6: plan.granted.v6.map(|a| a.addr().to_string()),
            ptp_ipv6: server_v6
                .filter(|_| plan.granted.v6.is_some())
                .map(|a| a.to_string()),
            user_agent: client.user_agent.clone(),
            dpd: grant.dpd.unwrap_or_default(),
            keepalive: grant.keepalive,
            hostname: client.hostname.clone().unwrap_or_default(),
            connected_at: unix_seconds(SystemTime::now()),
            session_started_at,
            session: sid.chars().take(6).collect(),
            full_session: sid,
            tls_ciphersuite: tls_facts(stream).cipher.to_string(),
            dtls_cipher: grant.dtls.as_ref().and(dtls).unwrap_or_default(),
            cstp_compression: plan.cstp_compression().map(|a| a.token().to_string()),
            dtls_compression: plan.dtls_compression().map(|a| a.token().to_string()),
            dns: texts(&settings.dns),
            nbns: texts(&settings.nbns),
            split_dns: settings.split_dns.clone().unwrap_or_default(),
            routes: nets(&grant.routes),
            default_route: grant.default_route,
            no_routes: nets(settings.no_routes.as_deref().unwrap_or_default()),
            iroutes: nets(settings.iroutes.as_deref().unwrap_or_default()),
            restricted_to_routes: settings.restrict_user_to_routes.unwrap_or(false),
            rx_limit_per_sec: settings.rx_data_per_sec.unwrap_or(0),
            tx_limit_per_sec: settings.tx_data_per_sec.unwrap_or(0),
            ..UserInfo::default()
        }
    }
}

/// The CSTP session's suite and whether it runs TLS 1.3.
fn tls_facts(stream: &TlsStream) -> TlsFacts<'_> {
    let ssl = stream.ssl();
    TlsFacts {
        cipher: ssl.current_cipher().map(|c| c.name()).unwrap_or_default(),
        tls13: ssl.version2() == Some(openssl::ssl::SslVersion::TLS1_3),
    }
}
