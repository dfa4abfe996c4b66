//! SOCKS5 `CONNECT` (RFC 1928) with no authentication or a user name and password
//! (RFC 1929).

use std::net::IpAddr;

use super::{Credentials, ProxyError};

const VERSION: u8 = 5;
const METHOD_NONE: u8 = 0;
const METHOD_GSSAPI: u8 = 1;
const METHOD_PASSWORD: u8 = 2;
const NO_ACCEPTABLE: u8 = 0xff;
const PASSWORD_VERSION: u8 = 1;

/// What the shell does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocksStep {
    NeedMore,
    /// Write these bytes, then read again.
    Send(Vec<u8>),
    /// The connection now leads to the server.
    Connected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    MethodChoice,
    Password,
    Connect,
    Done,
}

/// One SOCKS5 handshake.
#[derive(Debug)]
pub struct Socks5Connect {
    request: Vec<u8>,
    credentials: Option<Credentials>,
    stage: Stage,
    buf: Vec<u8>,
}

impl Socks5Connect {
    /// A handshake for `host:port`; `credentials` are offered when given. IP literals go
    /// as addresses, names as names for the proxy to resolve.
    pub fn new(
        host: &str,
        port: u16,
        credentials: Option<Credentials>,
    ) -> Result<Self, ProxyError> {
        let mut request = vec![VERSION, 1, 0];
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => {
                request.push(1);
                request.extend_from_slice(&v4.octets());
            }
            Ok(IpAddr::V6(v6)) => {
                request.push(4);
                request.extend_from_slice(&v6.octets());
            }
            Err(_) => {
                let len = u8::try_from(host.len())
                    .map_err(|_| ProxyError::SocksHostLength(host.to_string()))?;
                request.push(3);
                request.push(len);
                request.extend_from_slice(host.as_bytes());
            }
        }
        request.extend_from_slice(&port.to_be_bytes());
        if let Some(c) = &credentials {
            let fits = |s: &str| (1..=255).contains(&s.len());
            if !fits(&c.user) || !fits(&c.password) {
                return Err(ProxyError::SocksCredentialLength);
            }
        }
        Ok(Self {
            request,
            credentials,
            stage: Stage::MethodChoice,
            buf: Vec::new(),
        })
    }

    /// The first message: the methods we offer.
    pub fn greeting(&self) -> Vec<u8> {
        match self.credentials {
            Some(_) => vec![VERSION, 2, METHOD_NONE, METHOD_PASSWORD],
            None => vec![VERSION, 1, METHOD_NONE],
        }
    }

    /// Bytes from the proxy.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<SocksStep, ProxyError> {
        self.buf.extend_from_slice(bytes);
        // The longest reply is a connect reply naming a 255-byte host.
        if self.buf.len() > 4 + 1 + 255 + 2 {
            return Err(unexpected("connect", &self.buf));
        }
        let step = match self.stage {
            Stage::MethodChoice => self.on_method_choice()?,
            Stage::Password => self.on_password_reply()?,
            Stage::Connect => self.on_connect_reply()?,
            Stage::Done => return Err(ProxyError::TrailingData(self.buf.len())),
        };
        if step == SocksStep::Connected && !self.buf.is_empty() {
            return Err(ProxyError::TrailingData(self.buf.len()));
        }
        Ok(step)
    }

    fn on_method_choice(&mut self) -> Result<SocksStep, ProxyError> {
        let Some([version, method]) = self.take::<2>() else {
            return Ok(SocksStep::NeedMore);
        };
        if version != VERSION {
            return Err(unexpected("auth", &[version, method]));
        }
        match (method, &self.credentials) {
            (METHOD_NONE, _) => {
                self.stage = Stage::Connect;
                Ok(SocksStep::Send(self.request.clone()))
            }
            (METHOD_PASSWORD, Some(c)) => {
                self.stage = Stage::Password;
                let mut out = vec![PASSWORD_VERSION];
                for field in [&c.user, &c.password] {
                    out.push(u8::try_from(field.len()).unwrap_or(u8::MAX));
                    out.extend_from_slice(field.as_bytes());
                }
                Ok(SocksStep::Send(out))
            }
            (NO_ACCEPTABLE | METHOD_PASSWORD | METHOD_GSSAPI, _) if self.credentials.is_none() => {
                Err(ProxyError::SocksNoAcceptableMethod)
            }
            (NO_ACCEPTABLE, Some(_)) => Err(ProxyError::SocksPasswordRejected),
            (other, _) => Err(ProxyError::SocksMethod(other)),
        }
    }

    fn on_password_reply(&mut self) -> Result<SocksStep, ProxyError> {
        let Some([version, status]) = self.take::<2>() else {
            return Ok(SocksStep::NeedMore);
        };
        if version != PASSWORD_VERSION {
            return Err(unexpected("auth", &[version, status]));
        }
        if status != 0 {
            return Err(ProxyError::SocksPasswordRejected);
        }
        self.stage = Stage::Connect;
        Ok(SocksStep::Send(self.request.clone()))
    }

    fn on_connect_reply(&mut self) -> Result<SocksStep, ProxyError> {
        let Some(head) = self.buf.get(..5) else {
            return Ok(SocksStep::NeedMore);
        };
        let [version, code, _reserved, address_type, first] =
            [head[0], head[1], head[2], head[3], head[4]];
        if version != VERSION {
            return Err(unexpected("connect", head));
        }
        if code != 0 {
            return Err(ProxyError::SocksReply {
                code,
                text: reply_text(code),
            });
        }
        let address_len = match address_type {
            1 => 4,
            3 => 1 + usize::from(first),
            4 => 16,
            other => return Err(ProxyError::SocksAddressType(other)),
        };
        let total = 4 + address_len + 2;
        if self.buf.len() < total {
            return Ok(SocksStep::NeedMore);
        }
        self.buf.drain(..total);
        self.stage = Stage::Done;
        Ok(SocksStep::Connected)
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes: [u8; N] = self.buf.get(..N)?.try_into().ok()?;
        self.buf.drain(..N);
        Some(bytes)
    }
}

fn unexpected(stage: &'static str, bytes: &[u8]) -> ProxyError {
    let shown: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    ProxyError::SocksUnexpected {
        stage,
        bytes: shown.join(" "),
    }
}

/// RFC 1928's reply codes, in openconnect's words.
fn reply_text(code: u8) -> &'static str {
    match code {
        1 => "general failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused by destination host",
        6 => "TTL expired",
        7 => "command not supported / protocol error",
        8 => "address type not supported",
        _ => "unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Option<Credentials> {
        Some(Credentials {
            user: "alice".into(),
            password: "pw".into(),
        })
    }

    #[test]
    fn password_login_then_connect_by_name() {
        let mut s = Socks5Connect::new("vpn.example", 443, creds()).unwrap();
        assert_eq!(s.greeting(), [5, 2, 0, 2]);
        let SocksStep::Send(auth) = s.feed(&[5, 2]).unwrap() else {
            panic!("no password sent")
        };
        assert_eq!(auth, b"\x01\x05alice\x02pw");
        let SocksStep::Send(connect) = s.feed(&[1, 0]).unwrap() else {
            panic!("no connect sent")
        };
        assert_eq!(connect, b"\x05\x01\x00\x03\x0bvpn.example\x01\xbb");
        // The reply arrives in pieces, with a bound name.
        assert_eq!(s.feed(&[5, 0, 0, 3]).unwrap(), SocksStep::NeedMore);
        assert_eq!(s.feed(&[4, b'h', b'o']).unwrap(), SocksStep::NeedMore);
        assert_eq!(s.feed(&[b's', b't', 0, 80]).unwrap(), SocksStep::Connected);
    }

    #[test]
    fn addresses_go_as_addresses() {
        let mut s = Socks5Connect::new("fd00::2", 8443, None).unwrap();
        assert_eq!(s.greeting(), [5, 1, 0]);
        let SocksStep::Send(connect) = s.feed(&[5, 0]).unwrap() else {
            panic!("no connect sent")
        };
        assert_eq!(connect.get(3), Some(&4));
        assert_eq!(connect.len(), 4 + 16 + 2);
        let reply = [5, 0, 0, 1, 10, 0, 0, 1, 1, 187];
        assert_eq!(s.feed(&reply).unwrap(), SocksStep::Connected);
        let s = Socks5Connect::new("192.0.2.1", 443, None).unwrap();
        assert_eq!(s.request, [5, 1, 0, 1, 192, 0, 2, 1, 1, 187]);
    }

    #[test]
    fn refusals_are_named() {
        let mut s = Socks5Connect::new("h", 443, None).unwrap();
        assert_eq!(s.feed(&[5, 0xff]), Err(ProxyError::SocksNoAcceptableMethod));
        let mut s = Socks5Connect::new("h", 443, creds()).unwrap();
        s.feed(&[5, 2]).unwrap();
        assert_eq!(s.feed(&[1, 1]), Err(ProxyError::SocksPasswordRejected));
        let mut s = Socks5Connect::new("h", 443, None).unwrap();
        s.feed(&[5, 0]).unwrap();
        let e = s.feed(&[5, 5, 0, 1, 0]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "SOCKS proxy error 05: connection refused by destination host"
        );
        let mut s = Socks5Connect::new("h", 443, None).unwrap();
        assert!(matches!(
            s.feed(&[4, 0]),
            Err(ProxyError::SocksUnexpected { .. })
        ));
        let mut s = Socks5Connect::new("h", 443, None).unwrap();
        assert_eq!(s.feed(&[5, 0x80]), Err(ProxyError::SocksMethod(0x80)));
        let mut s = Socks5Connect::new("h", 443, None).unwrap();
        s.feed(&[5, 0]).unwrap();
        assert_eq!(
            s.feed(&[5, 0, 0, 9, 0]),
            Err(ProxyError::SocksAddressType(9))
        );
    }

    #[test]
    fn hostile_sizes() {
        let long = "a".repeat(256);
        assert!(matches!(
            Socks5Connect::new(&long, 443, None),
            Err(ProxyError::SocksHostLength(_))
        ));
        let c = Credentials {
            user: String::new(),
            password: "x".into(),
        };
        assert_eq!(
            Socks5Connect::new("h", 1, Some(c)).unwrap_err(),
            ProxyError::SocksCredentialLength
        );
        let mut s = Socks5Connect::new("h", 443, None).unwrap();
        s.feed(&[5, 0]).unwrap();
        assert_eq!(s.feed(&[]).unwrap(), SocksStep::NeedMore);
        assert!(s.feed(&[0u8; 4096]).is_err());
        // Bytes after the reply are not the server's to read as TLS.
        let mut s = Socks5Connect::new("h", 443, None).unwrap();
        s.feed(&[5, 0]).unwrap();
        assert_eq!(
            s.feed(&[5, 0, 0, 1, 1, 2, 3, 4, 0, 1, 0x16]),
            Err(ProxyError::TrailingData(1))
        );
    }
}
