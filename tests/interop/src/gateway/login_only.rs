//! The `main` of a gateway that only logs in (no tunnel, no tun device): `--listen`,
//! `--cert`, `--key`, `--log` and the gateway's own options, then HTTPS for ever.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use oc_proto::http::server::{RequestLimits, ServerRequest, ServerResponse};

use super::{init_log, parse_value, runtime, serve_site, split_options, text, tls_acceptor};
use super::{Answer, OptionArg, Site, Upgraded};

/// The pages of a login-only gateway.
pub trait LoginPages: Send + Sync + 'static {
    /// The bounds of each request.
    fn limits(&self) -> RequestLimits {
        RequestLimits::default()
    }

    /// The answer to one request; an error is refused with `403` and logged.
    fn page(&self, request: &ServerRequest) -> Result<ServerResponse, String>;
}

/// A [`LoginPages`] served as a [`Site`] without a tunnel.
struct LoginSite<P>(P);

impl<P: LoginPages> Site for LoginSite<P> {
    type Upgrade = ();

    fn limits(&self) -> RequestLimits {
        self.0.limits()
    }

    fn answer(&self, peer: SocketAddr, request: &ServerRequest) -> Answer<()> {
        reply_or_refuse(peer, self.0.page(request))
    }

    async fn tunnel(&self, _: Upgraded<()>) -> Result<String, String> {
        Err("this gateway has no tunnel".into())
    }
}

/// A login-only gateway's command line.
#[derive(Debug)]
pub struct LoginOnly {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub log: Option<PathBuf>,
    /// The gateway's own options, in order.
    pub own: Vec<OptionArg>,
}

impl LoginOnly {
    fn parse(args: impl Iterator<Item = String>) -> Result<Option<Self>, String> {
        let Some(options) = split_options(args, &[])? else {
            return Ok(None);
        };
        let (mut listen, mut cert, mut key, mut log, mut own) =
            (None, None, None, None, Vec::new());
        for (name, value) in options {
            let value_of = || value.clone().unwrap_or_default();
            match name.as_str() {
                "--listen" => listen = Some(parse_value(&name, &value_of())?),
                "--cert" => cert = Some(PathBuf::from(value_of())),
                "--key" => key = Some(PathBuf::from(value_of())),
                "--log" => log = Some(PathBuf::from(value_of())),
                _ => own.push((name, value)),
            }
        }
        let need = |what: &str| format!("{what} is required");
        Ok(Some(Self {
            listen: listen.ok_or_else(|| need("--listen"))?,
            cert: cert.ok_or_else(|| need("--cert"))?,
            key: key.ok_or_else(|| need("--key"))?,
            log,
            own,
        }))
    }
}

/// Parses the command line (`usage` for `--help` or an error, exit status 2), builds the
/// site with `make` from it, and serves HTTPS on `--listen` for ever; `listening on
/// https://ADDR` on stdout says it is up.
pub fn login_only_main<P: LoginPages>(
    program: &'static str,
    usage: &str,
    make: impl FnOnce(&LoginOnly) -> Result<P, String>,
) -> ExitCode {
    let run = || -> Result<bool, String> {
        let Some(options) = LoginOnly::parse(std::env::args().skip(1))? else {
            return Ok(false);
        };
        init_log(program, options.log.as_deref())?;
        let site = LoginSite(make(&options)?);
        let acceptor = tls_acceptor(&options.cert, &options.key)?;
        runtime()?.block_on(async {
            let listener = tokio::net::TcpListener::bind(options.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
            println!("listening on https://{}", options.listen);
            serve_site(&listener, acceptor, Arc::new(site)).await;
            Ok(true)
        })
    };
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            let _ = writeln!(std::io::stdout(), "{usage}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{program}: {e}\n\n{usage}");
            ExitCode::from(2)
        }
    }
}

/// A page's answer, or a `403` that closes the connection with the reason logged.
fn reply_or_refuse(peer: SocketAddr, outcome: Result<ServerResponse, String>) -> Answer<()> {
    match outcome {
        Ok(response) => Answer::Reply(response),
        Err(why) => {
            log!("{peer}: refused: {why}");
            Answer::Final(text(403, "Forbidden", "text/plain", "refused\n"))
        }
    }
}

/// An option a login-only gateway does not know.
pub fn unknown_option(name: &str) -> String {
    format!("unknown option {name}")
}
