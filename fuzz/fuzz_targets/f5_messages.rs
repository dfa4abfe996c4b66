//! F5's login pages and XML from a hostile gateway, and the HTML form reader under them.
//!
//! The input is read as a login page (`f5::login_form`, which always yields a form to
//! fill), as the VPN resource list and as the numbered configuration. None may panic; a
//! form never holds more than its bound of fields; an accepted configuration has the
//! session id and `Z` that the tunnel request needs. The input is also the DTLS answer
//! record: only a 200 is accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::f5::{login_form, parse_config, read_dtls_answer, tunnel_request, vpn_resource};
use oc_proto::udp_link::ProbeAnswer;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let page = login_form(&text);
    assert!(
        !page.form.fields.is_empty(),
        "a login page always asks something"
    );
    assert!(page.form.fields.len() <= 65);
    let _ = vpn_resource(&text);
    if let Ok(config) = parse_config(&text) {
        let req = tunnel_request("vpn", "UA", &config, true, "host");
        assert!(req.path.starts_with("/myvpn?sess="));
        assert!(req.path.contains(&format!("&Z={}", config.ur_z)));
    }
    if let ProbeAnswer::Accepted { .. } = read_dtls_answer(data) {
        assert!(data.starts_with(b"HTTP/") && data.get(9..12) == Some(b"200"));
    }
});
