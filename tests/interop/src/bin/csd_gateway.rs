//! `csd_gateway`: an AnyConnect login that asks for the host scan (Cisco Secure Desktop)
//! first, with the gateway's side of what openconnect's `csd-post.sh` speaks. It is test
//! code: enough for a client to get a cookie, no tunnel.
//!
//! ```text
//! csd_gateway --listen ADDR:PORT --cert PEM --key PEM [--log FILE]
//! ```
//!
//! An `init` without a scanned `sdesktop` cookie gets `<host-scan>` with a fresh ticket and
//! token. The scanner asks `/+CSCOE+/sdesktop/token.xml?ticket=T` for the token and posts
//! its `endpoint.*` report to `/+CSCOE+/sdesktop/scan.xml` with the `sdesktop` cookie. The
//! wait page answers a refreshing HTML page once, then XML. The `init` again, with the
//! cookie, gets a password form; the auth-reply must carry the password `secret` and the
//! `<host-scan-token>`; it gets the session cookie `CSD-SESSION-<n>`. Anything else is
//! refused with a log line saying why.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Mutex;

use ferroconnect_interop::gateway::{self, field, log_line, parse_query, text, LoginPages};
use oc_proto::http::server::{Method, ServerRequest, ServerResponse};

macro_rules! log {
    ($($arg:tt)*) => { log_line(format_args!($($arg)*)) };
}

const WAIT_PAGE: &str = "/+CSCOE+/sdesktop/wait.html";

/// One host scan, by its token.
#[derive(Debug, Default)]
struct Scan {
    number: u64,
    ticket: String,
    reported: bool,
    waits: u32,
}

#[derive(Default)]
struct Gateway {
    scans: Mutex<HashMap<String, Scan>>,
    next: Mutex<u64>,
}

impl LoginPages for Gateway {
    fn page(&self, request: &ServerRequest) -> Result<ServerResponse, String> {
        match (&request.method, request.path()) {
            (Method::Get, "/+CSCOE+/sdesktop/token.xml") => self.token(request),
            (Method::Post, "/+CSCOE+/sdesktop/scan.xml") => self.report(request),
            (Method::Get, WAIT_PAGE) => self.wait(request),
            (Method::Post, _) => self.login(request),
            (_, path) => Err(format!("no such page: {path}")),
        }
    }
}

fn xml(body: &str) -> ServerResponse {
    text(
        200,
        "OK",
        "text/xml",
        &format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"),
    )
}

fn random_hex() -> Result<String, String> {
    let mut raw = [0u8; 12];
    openssl::rand::rand_bytes(&mut raw).map_err(|e| e.to_string())?;
    Ok(raw.iter().map(|b| format!("{b:02X}")).collect())
}

impl Gateway {
    fn with_scan<T>(
        &self,
        token: &str,
        f: impl FnOnce(&mut Scan) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut scans = self.scans.lock().map_err(|_| "lock")?;
        let scan = scans
            .get_mut(token)
            .ok_or_else(|| format!("unknown host scan token {token:?}"))?;
        f(scan)
    }

    fn token(&self, request: &ServerRequest) -> Result<ServerResponse, String> {
        let query = parse_query(&request.target);
        let ticket = field(&query, "ticket").ok_or("token.xml without a ticket")?;
        let scans = self.scans.lock().map_err(|_| "lock")?;
        let (token, scan) = scans
            .iter()
            .find(|(_, s)| s.ticket == ticket)
            .ok_or_else(|| format!("unknown ticket {ticket:?}"))?;
        log!("scan {}: the scanner fetched its token", scan.number);
        Ok(xml(&format!(
            "<hostscan>\n<token>{token}</token>\n</hostscan>\n"
        )))
    }

    fn report(&self, request: &ServerRequest) -> Result<ServerResponse, String> {
        let token = request
            .cookie("sdesktop")
            .ok_or("a report without sdesktop")?;
        let body = String::from_utf8_lossy(&request.body);
        if !body.contains("endpoint.os.version=") {
            return Err("the report has no endpoint.os.version".into());
        }
        self.with_scan(token, |scan| {
            scan.reported = true;
            log!(
                "scan {}: report of {} lines",
                scan.number,
                body.lines().count()
            );
            Ok(())
        })?;
        Ok(xml("<hostscan><status>TOKEN_SUCCESS</status></hostscan>\n"))
    }

    fn wait(&self, request: &ServerRequest) -> Result<ServerResponse, String> {
        let token = request
            .cookie("sdesktop")
            .ok_or("the wait page without sdesktop")?;
        self.with_scan(token, |scan| {
            scan.waits += 1;
            if !scan.reported || scan.waits == 1 {
                log!("scan {}: wait page says wait", scan.number);
                return Ok(text(
                    200,
                    "OK",
                    "text/html",
                    "<html><head><meta http-equiv=\"refresh\" content=\"1\"></head></html>\n",
                ));
            }
            log!("scan {}: wait page says done", scan.number);
            Ok(xml("<hostscan><status>done</status></hostscan>\n"))
        })
    }

    fn login(&self, request: &ServerRequest) -> Result<ServerResponse, String> {
        let body = String::from_utf8_lossy(&request.body);
        let scanned = request
            .cookie("sdesktop")
            .and_then(|token| {
                self.with_scan(token, |s| Ok(s.reported.then_some(s.number)))
                    .ok()
            })
            .flatten();
        if body.contains("type=\"init\"") {
            return match scanned {
                Some(number) => {
                    log!("scan {number}: the login resumes with a password form");
                    Ok(xml("<config-auth client=\"vpn\" type=\"auth-request\" \
                         aggregate-auth-version=\"2\"><auth id=\"main\"><message>Password \
                         please.</message><form><input type=\"password\" name=\"password\" \
                         label=\"Password:\"/></form></auth></config-auth>"))
                }
                None => self.ask_for_scan(),
            };
        }
        let number = scanned.ok_or("an auth-reply without a scanned sdesktop cookie")?;
        let token = request.cookie("sdesktop").unwrap_or_default();
        if !body.contains(&format!("<host-scan-token>{token}</host-scan-token>")) {
            return Err(format!(
                "scan {number}: the auth-reply lacks <host-scan-token>"
            ));
        }
        if !body.contains("<password>secret</password>") {
            return Err(format!("scan {number}: wrong password"));
        }
        log!("scan {number}: login complete");
        Ok(xml(&format!(
            "<config-auth client=\"vpn\" type=\"complete\" aggregate-auth-version=\"2\">\
             <session-token>CSD-SESSION-{number}</session-token><auth id=\"success\"/>\
             </config-auth>"
        )))
    }

    fn ask_for_scan(&self) -> Result<ServerResponse, String> {
        let number = {
            let mut next = self.next.lock().map_err(|_| "lock")?;
            *next += 1;
            *next
        };
        let (ticket, token) = (random_hex()?, random_hex()?);
        log!("scan {number}: asked for, ticket {ticket}");
        let body = format!(
            "<config-auth client=\"vpn\" type=\"auth-request\" aggregate-auth-version=\"2\">\
             <auth id=\"main\"><title>Login</title><message>Host scan first.</message>\
             </auth><host-scan><host-scan-ticket>{ticket}</host-scan-ticket>\
             <host-scan-token>{token}</host-scan-token>\
             <host-scan-base-uri>/+CSCOE+/sdesktop/</host-scan-base-uri>\
             <host-scan-wait-uri>{WAIT_PAGE}</host-scan-wait-uri></host-scan></config-auth>"
        );
        self.scans.lock().map_err(|_| "lock")?.insert(
            token,
            Scan {
                number,
                ticket,
                ..Scan::default()
            },
        );
        Ok(xml(&body))
    }
}

fn main() -> ExitCode {
    let usage = "usage: csd_gateway --listen ADDR:PORT --cert PEM --key PEM [--log FILE]";
    gateway::login_only_main("csd_gateway", usage, |options| match options.own.first() {
        Some((name, _)) => Err(gateway::unknown_option(name)),
        None => Ok(Gateway::default()),
    })
}
