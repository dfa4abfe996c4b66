//! A gateway's `main` around its [`Site`]: the command line and usage, the log, what it
//! opens before serving ([`listen`]), and the single-threaded runtime it serves on.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use openssl::ssl::SslAcceptor;
use tokio::net::TcpListener;

use super::{init_log, serve_site, tls_acceptor, Common, Site, TunLink};

/// A gateway's `main`: `parse` reads the command line; its usage goes out for `--help` (to
/// stdout) or after an error (to stderr, exit status 2). Then the log starts (to stderr and
/// the configuration's log file), the gateway opens what it needs ([`listen`]), `make`
/// builds its site from the configuration and the tun device, and it serves
/// ([`serve_site`]) for ever on a single-threaded runtime: it returns only on a fatal error.
pub fn main<C, S>(
    program: &'static str,
    usage: &str,
    parse: impl FnOnce(std::iter::Skip<std::env::Args>) -> Result<Option<C>, String>,
    make: impl FnOnce(C, TunLink) -> S,
) -> ExitCode
where
    C: AsRef<Common>,
    S: Site,
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
        let (acceptor, link, listener) = listen(config.as_ref()).await?;
        let site = Arc::new(make(config, link));
        serve_site(&listener, acceptor, site).await;
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

/// What a gateway opens before it serves, in this order: the TLS acceptor for its
/// certificate, its tun device, and the listening socket.
pub async fn listen(common: &Common) -> Result<(SslAcceptor, TunLink, TcpListener), String> {
    let acceptor = tls_acceptor(&common.cert, &common.key)?;
    let link = TunLink::open(&common.tun)?;
    let listener = TcpListener::bind(common.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", common.listen))?;
    Ok((acceptor, link, listener))
}
