//! What a hostile proxy can send the client: HTTP CONNECT replies (authentication rounds,
//! NTLM challenges included) and SOCKS5 replies, cut into pieces at arbitrary points; and
//! the text of a proxy URL or challenge. Nothing may panic; the HTTP exchange must end within its round
//! limit, and a connected SOCKS handshake must have consumed every byte it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::client_proxy::auth::{parse_challenges, AllowedMethods, Fresh, ProxyAuth};
use oc_proto::client_proxy::http_connect::{HttpConnect, HttpStep};
use oc_proto::client_proxy::socks5::{Socks5Connect, SocksStep};
use oc_proto::client_proxy::{Credentials, ProxyUrl};

fn credentials() -> Option<Credentials> {
    Some(Credentials {
        user: "alice".into(),
        password: "pw".into(),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let piece = usize::from(selector >> 2).max(1);
    match selector & 3 {
        0 => {
            let allowed = AllowedMethods::parse("basic,digest,ntlm").unwrap();
            let fresh = Fresh {
                random: [7; 16],
                unix_time: 1_700_000_000,
            };
            let auth = ProxyAuth::new(allowed, credentials());
            let mut connect = HttpConnect::new("vpn.example", 443, "fuzz", auth);
            let mut retries = 0;
            for chunk in rest.chunks(piece) {
                match connect.feed(chunk, &fresh) {
                    Err(_) | Ok(HttpStep::Connected) => return,
                    Ok(HttpStep::Retry { .. }) => {
                        retries += 1;
                        assert!(retries <= 8, "more than 8 authentication rounds");
                        assert!(!connect.request().is_empty());
                    }
                    Ok(HttpStep::NeedMore) => {}
                }
            }
            let _ = connect.eof(&fresh);
        }
        1 => {
            let Ok(mut socks) = Socks5Connect::new("vpn.example", 443, credentials()) else {
                return;
            };
            for chunk in rest.chunks(piece) {
                match socks.feed(chunk) {
                    Err(_) | Ok(SocksStep::Connected) => return,
                    Ok(SocksStep::Send(bytes)) => assert!(!bytes.is_empty()),
                    Ok(SocksStep::NeedMore) => {}
                }
            }
        }
        2 => {
            let text = String::from_utf8_lossy(rest);
            for challenge in parse_challenges(&text) {
                assert!(!challenge.scheme.is_empty());
            }
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            if let Ok(url) = ProxyUrl::parse(&text) {
                assert!(!url.host.is_empty() && url.port != 0);
                if let Some(c) = &url.credentials {
                    if !c.password.is_empty() {
                        assert!(!url.to_string().contains(&format!(":{}@", c.password)));
                    }
                }
            }
        }
    }
});
