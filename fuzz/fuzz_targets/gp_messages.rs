//! GlobalProtect's answers from a hostile server, and a hostile client's posts to a
//! gateway, through `oc_proto::gp`'s readers.
//!
//! The input is an answer body (HTTP 200): classified by `read_body` (XML, challenge,
//! JavaScript, error) and, when XML, read as every document the client takes (prelogin,
//! portal configuration, JNLP login arguments, gateway configuration, HIP check). None may
//! panic, and what they accept keeps its promises: a challenge makes a two-field form; a
//! portal configuration has gateways in priority order and a default choice; login
//! arguments make a cookie that names the session; a gateway configuration offers ESP
//! magic only with ESP keys, and the gateway's own rendering of it reads back with the
//! same addresses, name servers and keys. The input is also a form post, a tunnel request
//! target, a cookie string and the first bytes of the tunnel's answer; and it is every
//! answer a `LoginFlow` gets (prelogin, login, a wrong password), which never panics and
//! fills only forms it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::gp::client::TunnelAnswer;
use oc_proto::gp::server::{parse_form, LoginRequest, SessionRequest, TunnelRequest, MAX_FIELDS};
use oc_proto::gp::{
    challenge_form, read_body, read_tunnel_answer, ClientInfo, GatewayConfig, GpCookie, LoginArgs,
    LoginFlow, Next, PortalConfig, Prelogin, Reply, Start,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match read_body(&text) {
        Ok(Reply::Challenge(challenge)) => {
            let login = Prelogin::default().form(None, None);
            let form = challenge_form(&login, &challenge);
            assert_eq!(form.fields.len(), 2);
            assert_eq!(form.fields[1].value, None);
        }
        Ok(reply @ Reply::Xml(_)) => {
            if let Ok(prelogin) = Prelogin::parse(&reply) {
                assert_eq!(prelogin.form(None, None).fields.len(), 2);
            }
            let region = text.get(..4);
            if let Ok(portal) = PortalConfig::parse(&reply, region) {
                assert!(!portal.gateways.is_empty());
                let prio: Vec<u32> = portal
                    .gateways
                    .iter()
                    .map(|g| g.priority.unwrap_or(u32::MAX))
                    .collect();
                assert!(prio.windows(2).all(|w| w[0] <= w[1]));
                assert!(portal.choose(None).is_ok());
            }
            if let Ok(args) = LoginArgs::parse(&reply) {
                let cookie = args.cookie("pc");
                assert!(cookie.check().is_ok());
                assert_eq!(cookie.get("user").as_deref(), Some(args.user.as_str()));
                assert_eq!(GpCookie::parse(&cookie.to_string()), cookie);
            }
            if let Ok(config) = GatewayConfig::parse(&reply, true, true) {
                if config.esp_magic().is_some() {
                    assert!(config.esp.is_some());
                }
                let again = read_body(&config.to_xml()).expect("our own answer reads");
                let again = GatewayConfig::parse(&again, true, true).expect("and parses");
                assert_eq!(again.esp, config.esp);
                assert_eq!(again.ip.ipv4, config.ip.ipv4);
                assert_eq!(again.ip.ipv6, config.ip.ipv6);
                assert_eq!(again.ip.dns, config.ip.dns);
                assert_eq!(again.esp_magic(), config.esp_magic());
            }
            let _ = oc_proto::gp::read_hip_check(&reply);
        }
        Err(_) => {}
    }
    // A login driven by hostile answers.
    let mut flow = LoginFlow::new(
        ClientInfo::new("linux-64", "pc"),
        "h",
        Start::Auto,
        None,
        true,
    );
    flow.start();
    if let Ok(Next::Fill(form)) = flow.handle(200, data) {
        assert_eq!(form.fields.len(), 2);
        flow.submit(&form);
        if let Ok(Next::Choose(portal)) = flow.handle(200, data) {
            assert!(!portal.gateways.is_empty());
            flow.gateway_chosen("gw");
        }
        let _ = flow.handle(512, data);
    }
    // A hostile client's post.
    let form = parse_form(data);
    assert!(form.len() <= MAX_FIELDS);
    let _ = LoginRequest::from_form(&form);
    let _ = SessionRequest::from_form(&form);
    let _ = TunnelRequest::parse(&text, None);
    let cookie = GpCookie::parse(&text);
    assert_eq!(GpCookie::parse(&cookie.to_string()), cookie);
    if let Ok(TunnelAnswer::Started { rest }) = read_tunnel_answer(data) {
        assert_eq!(rest, 12);
        assert!(data.starts_with(b"START_TUNNEL"));
    }
});
