//! AnyConnect's host scan (Cisco Secure Desktop, "CSD"): the gateway's `<host-scan>` asks
//! the client to run its scanner, which reports to the gateway by itself; the client then
//! waits on the gateway's wait page and logs in again with the scan's token.
//!
//! openconnect never runs the scanner it could download here: the `--csd-wrapper` script
//! (upstream's `csd-post.sh` is the reference) gets openconnect's arguments and environment
//! ([`HostScan::wrapper_args`], [`HostScan::wrapper_env`]) and does the reporting.

use crate::http::Response;

/// The `<host-scan>` of an auth-request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostScan {
    /// `<host-scan-ticket>`: the scanner's `-ticket`.
    pub ticket: String,
    /// `<host-scan-token>`: the `sdesktop` cookie once the scan ran, and the auth-reply's
    /// `<host-scan-token>`.
    pub token: String,
    /// `<host-scan-base-uri>`: the scanner's `-url`, on the gateway.
    pub base_uri: String,
    /// `<host-scan-wait-uri>`: the page polled until the scan is judged.
    pub wait_uri: String,
}

/// What the server's certificate and ours hash to, for `-certhash`.
#[derive(Debug, Clone, Copy)]
pub struct CertHashes<'a> {
    pub server_md5: &'a str,
    pub client_md5: &'a str,
}

impl HostScan {
    /// Whether every part the scan needs is there.
    pub fn is_complete(&self) -> bool {
        [&self.ticket, &self.token, &self.base_uri, &self.wait_uri]
            .iter()
            .all(|s| !s.is_empty())
    }

    /// The wrapper's arguments after its own name, as openconnect passes them: the stub's
    /// file name (empty: no stub is downloaded), then `-ticket`, `-stub`, `-group`,
    /// `-certhash`, `-url` with their values in double quotes, and `-langselen`.
    pub fn wrapper_args(&self, group: &str, hashes: CertHashes<'_>, host: &str) -> Vec<String> {
        let quoted = |s: &str| format!("\"{s}\"");
        let url = match self.base_uri.starts_with('/') {
            true => format!("https://{host}{}", self.base_uri),
            false => format!("https://{host}/{}", self.base_uri),
        };
        vec![
            String::new(),
            "-ticket".into(),
            quoted(&self.ticket),
            "-stub".into(),
            quoted("0"),
            "-group".into(),
            quoted(group),
            "-certhash".into(),
            quoted(&format!("{}:{}", hashes.server_md5, hashes.client_md5)),
            "-url".into(),
            quoted(&url),
            "-langselen".into(),
        ]
    }

    /// The wrapper's environment: `CSD_SHA256` (the server key's SHA-256, base64, which
    /// `curl --pinnedpubkey` takes), `CSD_TOKEN` and `CSD_HOSTNAME`.
    pub fn wrapper_env(&self, pin_sha256: &str, host: &str) -> Vec<(&'static str, String)> {
        let pin = pin_sha256.strip_prefix("pin-sha256:").unwrap_or(pin_sha256);
        vec![
            ("CSD_SHA256", pin.to_string()),
            ("CSD_TOKEN", self.token.clone()),
            ("CSD_HOSTNAME", host.to_string()),
        ]
    }
}

/// What the wait page says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitPage {
    /// XML: the scan is judged; log in again.
    Ready,
    /// An HTML page that refreshes itself: ask again in a second.
    Refresh,
}

/// Reads one answer from the wait page, as openconnect tells them apart.
pub fn read_wait_page(resp: &Response) -> Result<WaitPage, String> {
    if resp.head.status != 200 {
        return Err(format!(
            "the host scan's wait page answered HTTP {} {}",
            resp.head.status, resp.head.reason
        ));
    }
    if resp.body.starts_with(b"<?xml") {
        return Ok(WaitPage::Ready);
    }
    let page = String::from_utf8_lossy(&resp.body).to_ascii_lowercase();
    match page.contains("http-equiv=\"refresh\"") {
        true => Ok(WaitPage::Refresh),
        false => Err("the host scan's wait page is neither XML nor a refreshing page".into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::http::ResponseHead;

    fn scan() -> HostScan {
        HostScan {
            ticket: "T1".into(),
            token: "ABC".into(),
            base_uri: "/+CSCOE+/sdesktop/scan".into(),
            wait_uri: "/+CSCOE+/sdesktop/wait.html".into(),
        }
    }

    #[test]
    fn the_wrapper_gets_openconnects_arguments() {
        let hashes = CertHashes {
            server_md5: "AB12",
            client_md5: "",
        };
        let args = scan().wrapper_args("eng", hashes, "vpn.example");
        assert_eq!(
            args,
            [
                "",
                "-ticket",
                "\"T1\"",
                "-stub",
                "\"0\"",
                "-group",
                "\"eng\"",
                "-certhash",
                "\"AB12:\"",
                "-url",
                "\"https://vpn.example/+CSCOE+/sdesktop/scan\"",
                "-langselen"
            ]
        );
        let env = scan().wrapper_env("pin-sha256:Zm9v", "vpn.example:8443");
        assert_eq!(env[0], ("CSD_SHA256", "Zm9v".to_string()));
        assert_eq!(env[1], ("CSD_TOKEN", "ABC".to_string()));
        assert_eq!(env[2], ("CSD_HOSTNAME", "vpn.example:8443".to_string()));
        assert!(scan().is_complete());
        assert!(!HostScan::default().is_complete());
    }

    #[test]
    fn wait_pages() {
        let page = |status, body: &str| Response {
            head: ResponseHead::with_headers(status, &[]),
            body: body.as_bytes().to_vec(),
        };
        assert_eq!(
            read_wait_page(&page(200, "<?xml version=\"1.0\"?><x/>")),
            Ok(WaitPage::Ready)
        );
        let refresh = "<html><META HTTP-EQUIV=\"Refresh\" CONTENT=\"1\"></html>";
        assert_eq!(read_wait_page(&page(200, refresh)), Ok(WaitPage::Refresh));
        assert!(read_wait_page(&page(200, "")).is_err());
        assert!(read_wait_page(&page(500, "<?xml")).is_err());
    }
}
