//! A gateway's `main` around its [`Site`]: the command line and usage, the log, what it
//! opens before serving ([`listen`]), and the single-threaded runtime it serves HTTPS and
//! DTLS on.

use std::future::Future;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use openssl::ssl::{SslAcceptor, SslContext};
use tokio::net::{TcpListener, UdpSocket};

use super::{
    init_log, open_dtls, serve_dtls, serve_site, tls_acceptor, Common, DtlsSite, Site, TunLink,
};

/// A gateway's `main`: `parse` reads the command line; its usage goes out for `--help` (to
/// stdout) or after an error (to stderr, exit status 2). Then the log starts (to stderr and
/// the configuration's log file), the gateway opens what it needs ([`listen`]), `make`
/// builds its site from the configuration and the tun device, and it serves HTTPS
/// ([`serve_site`]) and, unless `--no-dtls`, DTLS ([`serve_dtls`]) for ever on a
/// single-threaded runtime: it returns only on a fatal error.
pub fn main<C, S>(
    program: &'static str,
    usage: &str,
    parse: impl FnOnce(std::iter::Skip<std::env::Args>) -> Result<Option<C>, String>,
    make: impl FnOnce(C, TunLink) -> S,
) -> ExitCode
where
    C: AsRef<Common>,
    S: Site + DtlsSite,
{
    main_with(program, usage, parse, make, |site, dtls| async move {
        if let Some((socket, ctx)) = dtls {
            log!(
                "DTLS on udp://{}",
                socket.local_addr().map_err(|e| e.to_string())?
            );
            serve_dtls(socket, ctx, site).await;
        }
        Ok(())
    })
}

/// [`main`] for a gateway whose UDP side is its own (GlobalProtect's ESP): `udp` serves it
/// next to HTTPS, given the site and the DTLS socket and context [`listen`] opened (none
/// when the configuration has no DTLS). HTTPS goes on when `udp` returns `Ok`; an error
/// is fatal.
pub fn main_with<C, S, U, F>(
    program: &'static str,
    usage: &str,
    parse: impl FnOnce(std::iter::Skip<std::env::Args>) -> Result<Option<C>, String>,
    make: impl FnOnce(C, TunLink) -> S,
    udp: U,
) -> ExitCode
where
    C: AsRef<Common>,
    S: Site,
    U: FnOnce(Arc<S>, Option<(UdpSocket, SslContext)>) -> F,
    F: Future<Output = Result<(), String>>,
{
    let config = match parse(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            let _ = writeln!(std::io::stdout(), "{usage}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{program}: {e}\n\n{usage}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_log(program, config.as_ref().log.as_deref()) {
        log!("{e}");
        return ExitCode::FAILURE;
    }
    let serve = async {
        let Listening {
            acceptor,
            link,
            listener,
            dtls,
        } = listen(config.as_ref()).await?;
        let site = Arc::new(make(config, link));
        let https = serve_site(&listener, acceptor, Arc::clone(&site));
        tokio::pin!(https);
        tokio::select! {
            served = udp(site, dtls) => {
                served?;
                (&mut https).await;
            }
            () = &mut https => {}
        }
        Ok(())
    };
    match runtime().and_then(|runtime| runtime.block_on(serve)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log!("fatal: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A single-threaded runtime for `main` to block on.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// What a gateway opens before it serves ([`listen`]).
pub struct Listening {
    pub acceptor: SslAcceptor,
    pub link: TunLink,
    pub listener: TcpListener,
    /// The UDP socket and the DTLS context, unless `--no-dtls`.
    pub dtls: Option<(UdpSocket, SslContext)>,
}

impl std::fmt::Debug for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listening")
            .field("link", &self.link)
            .field("listener", &self.listener)
            .field("dtls", &self.dtls.as_ref().map(|(socket, _)| socket))
            .finish_non_exhaustive()
    }
}

/// What a gateway opens before it serves, in this order: the TLS acceptor for its
/// certificate, its tun device, the listening socket, and the DTLS socket and context.
pub async fn listen(common: &Common) -> Result<Listening, String> {
    let acceptor = tls_acceptor(&common.cert, &common.key)?;
    let link = TunLink::open(&common.tun)?;
    let listener = TcpListener::bind(common.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", common.listen))?;
    let dtls = open_dtls(common).await?;
    Ok(Listening {
        acceptor,
        link,
        listener,
        dtls,
    })
}
