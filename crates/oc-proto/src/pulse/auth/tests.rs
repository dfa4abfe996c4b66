//! The client's login against the gateway side's messages, and against the bytes
//! upstream's fake server sends.

use super::*;
use crate::pulse::ift::decode_all;
use crate::pulse::server::{self, Answer};
use crate::pulse::ttls::{PlainTls, TtlsLink};

fn info() -> ClientInfo {
    ClientInfo {
        hostname: "laptop".into(),
        local_ip: Some("10.202.1.1".parse().unwrap()),
        os: "Linux".into(),
        user_agent: "Pulse-Secure/22.2.1.1295 (test)".into(),
    }
}

/// The one message in `bytes`, owned.
fn one(bytes: &[u8]) -> (u32, u32, u32, Vec<u8>) {
    let mut got = decode_all(bytes);
    assert_eq!(got.len(), 1, "{bytes:02x?}");
    got.pop().unwrap()
}

fn feed(auth: &mut PulseAuth, bytes: &[u8]) -> Result<AuthStep, PulseError> {
    let (vendor, kind, seq, payload) = one(bytes);
    auth.on_message(IftPacket {
        vendor,
        kind,
        seq,
        payload: &payload,
    })
}

fn sent(step: Result<AuthStep, PulseError>) -> Vec<u8> {
    match step.unwrap() {
        AuthStep::Send(bytes) => bytes,
        other => panic!("expected bytes to send, got {other:?}"),
    }
}

/// The client's answer as the gateway reads it.
fn answer_of(bytes: &[u8]) -> Answer {
    let (vendor, kind, seq, payload) = one(bytes);
    let msg = IftPacket {
        vendor,
        kind,
        seq,
        payload: &payload,
    };
    let eap = server::response(&msg).unwrap();
    assert_eq!(eap.expanded, Some(JUNIPER_1));
    Answer::parse(eap.data).unwrap()
}

/// Up to the first Juniper/1 request (the server info): the client's first answer.
fn start(held: Option<&str>) -> (PulseAuth, Answer) {
    let (mut auth, first) = PulseAuth::new(info(), held.map(str::to_string));
    assert_eq!(
        first,
        [0, 0, 0x55, 0x97, 0, 0, 0, 1, 0, 0, 0, 0x14, 0, 0, 0, 0, 0, 1, 2, 2]
    );
    let client_info = sent(feed(&mut auth, &server::version_response()));
    let (_, kind, seq, text) = one(&client_info);
    assert_eq!((kind, seq), (JUNIPER_CLIENT_INFO, 1));
    assert_eq!(
        text,
        b"clientHostName=laptop clientIp=10.202.1.1 clientCapabilities={}\n\0"
    );
    let identity = sent(feed(&mut auth, &server::auth_start()));
    assert_eq!(
        identity,
        [
            &[0, 0, 0x55, 0x97, 0, 0, 0, 6, 0, 0, 0, 0x22, 0, 0, 0, 2, 0, 0x0a, 0x4c, 1][..],
            &[2, 1, 0, 0x0e, 1],
            b"anonymous"
        ]
        .concat()
    );
    let first = sent(feed(&mut auth, &server::request(0, &[])));
    (auth, answer_of(&first))
}

#[test]
fn a_password_login_as_upstreams_fake_server_runs_it() {
    let (mut auth, first) = start(None);
    assert_eq!(first.text(AVP_OS).as_deref(), Some("Linux"));
    assert!(first
        .text(AVP_USER_AGENT)
        .unwrap()
        .starts_with("Pulse-Secure/"));
    assert_eq!(first.text(AVP_COOKIE), None);
    // The fake server's password request, byte for byte.
    let request = [
        0x00, 0x00, 0x55, 0x97, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x38, 0, 0, 0, 0, 0x00,
        0x0a, 0x4c, 0x01, 0x01, 0x00, 0x00, 0x24, 0xfe, 0x00, 0x0a, 0x4c, 0, 0, 0, 1, 0x00, 0x00,
        0x00, 0x4f, 0x00, 0x00, 0x00, 0x15, 0x01, 0x00, 0x00, 0x0d, 0xfe, 0x00, 0x0a, 0x4c, 0x00,
        0x00, 0x00, 0x02, 0x01, 0x00, 0x00, 0x00,
    ];
    let AuthStep::Ask(form) = feed(&mut auth, &request).unwrap() else {
        panic!("no form");
    };
    assert_eq!(form.id, "pulse_user");
    let names: Vec<_> = form.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["username", "password"]);
    let reply = auth
        .answer(&[
            ("username".into(), "test".into()),
            ("password".into(), "mypassword".into()),
        ])
        .unwrap();
    assert_eq!(reply.len(), 0x54, "what the fake server expects");
    let answer = answer_of(&reply);
    assert_eq!(answer.username.as_deref(), Some("test"));
    assert_eq!(answer.password, Some(("mypassword".into(), false)));
    let mut cookie = Vec::new();
    push_avp(&mut cookie, AVP_COOKIE, &[b'c'; 32]);
    let empty = sent(feed(&mut auth, &server::request(0, &cookie)));
    assert_eq!(empty.len(), 0x20);
    let done = feed(&mut auth, &server::success(0)).unwrap();
    assert_eq!(
        done,
        AuthStep::Done {
            cookie: "c".repeat(32)
        }
    );
    assert_eq!(auth.next_seq(), 6);
}

#[test]
fn juniper5_passwords_are_exactly_eighteen_bytes() {
    for (given, sent_as) in [
        ("mypassword", "mypassword"),
        ("longpassword34567890", "longpassword345678"),
    ] {
        let (mut auth, _) = start(None);
        let request = server::request(3, &server::password_request(9, J2_PASSWORD, true));
        let AuthStep::Ask(_) = feed(&mut auth, &request).unwrap() else {
            panic!("no form");
        };
        let reply = auth
            .answer(&[
                ("username".into(), "test".into()),
                ("password".into(), given.into()),
            ])
            .unwrap();
        assert_eq!(reply.len(), 0x58);
        assert_eq!(answer_of(&reply).password, Some((sent_as.into(), true)));
    }
}

#[test]
fn realms_tokens_banners_and_secondary_prompts() {
    let (mut auth, _) = start(None);
    let mut realms = Vec::new();
    for r in ["Users", "Staff"] {
        push_avp(&mut realms, AVP_REALM_CHOICE, r.as_bytes());
    }
    let AuthStep::Ask(form) = feed(&mut auth, &server::request(1, &realms)).unwrap() else {
        panic!("no realm form");
    };
    assert_eq!(
        (
            form.id.as_str(),
            form.group_field().map(|f| f.name.as_str())
        ),
        ("pulse_realm_choice", Some("realm_choice"))
    );
    let reply = auth
        .answer(&[("realm_choice".into(), "Staff".into())])
        .unwrap();
    assert_eq!(answer_of(&reply).text(AVP_REALM).as_deref(), Some("Staff"));

    let mut banner = Vec::new();
    push_avp(&mut banner, AVP_BANNER, b"Authorised use only");
    let AuthStep::Ask(form) = feed(&mut auth, &server::request(2, &banner)).unwrap() else {
        panic!("no banner");
    };
    assert_eq!(
        (form.banner.as_deref(), form.fields.len()),
        (Some("Authorised use only"), 0)
    );
    let ack = answer_of(&auth.answer(&[]).unwrap());
    assert_eq!(ack.values, vec![(AVP_BANNER_ACK, vec![0, 0, 0, 1])]);

    // A secondary login that asks for the password only, then a token.
    let mut prompts = Vec::new();
    push_avp(&mut prompts, AVP_PROMPTS, &3u32.to_be_bytes());
    push_avp(&mut prompts, AVP_PASS2_LABEL, b"PIN");
    prompts.extend_from_slice(&server::password_request(4, J2_RETRY, false));
    let AuthStep::Ask(form) = feed(&mut auth, &server::request(3, &prompts)).unwrap() else {
        panic!("no form");
    };
    assert_eq!(form.id, "pulse_secondary");
    assert!(form.error.is_some(), "a retry says so");
    assert_eq!(form.fields.len(), 1);
    assert_eq!(form.fields[0].label, "PIN:");
    let reply = answer_of(&auth.answer(&[("password".into(), "1234".into())]).unwrap());
    assert_eq!(
        (reply.username, reply.password),
        (None, Some(("1234".into(), false)))
    );

    let AuthStep::Ask(form) = feed(
        &mut auth,
        &server::request(4, &server::token_request(5, "Enter PASSCODE")),
    )
    .unwrap() else {
        panic!("no token form");
    };
    assert_eq!(form.id, "pulse_gtc");
    assert!(form.fields.iter().any(|f| f.name == "tokencode" && f.token));
    let reply = answer_of(
        &auth
            .answer(&[("tokencode".into(), "246810".into())])
            .unwrap(),
    );
    assert_eq!(reply.token.as_deref(), Some("246810"));
}

#[test]
fn a_held_cookie_is_presented_and_a_question_back_means_it_is_dead() {
    let (mut auth, first) = start(Some("DSIDVALUE"));
    assert_eq!(first.text(AVP_COOKIE).as_deref(), Some("DSIDVALUE"));
    let request = server::request(1, &server::password_request(0, J2_PASSWORD, false));
    assert_eq!(feed(&mut auth, &request), Err(PulseError::CookieRejected));
}

#[test]
fn refusals_and_what_is_not_spoken_are_errors() {
    let (mut auth, _) = start(None);
    let mut failure = Vec::new();
    push_avp(&mut failure, AVP_FAILURE, &0x0du32.to_be_bytes());
    assert_eq!(
        feed(&mut auth, &server::request(1, &failure)),
        Err(PulseError::Refused("Account locked out".into()))
    );
    let (mut auth, _) = start(None);
    let mut checker = Vec::new();
    push_eap_message(
        &mut checker,
        &expanded(EAP_REQUEST, 0, JUNIPER_HOST_CHECKER, &[1]),
    );
    assert!(matches!(
        feed(&mut auth, &server::request(1, &checker)),
        Err(PulseError::Unsupported(_))
    ));
    let (mut auth, _) = start(None);
    let mut failed = Vec::new();
    push_eap_message(
        &mut failed,
        &expanded(
            EAP_REQUEST,
            0,
            JUNIPER_2,
            &[J2_FAILURE, 1, 7, b'N', b'o', b'p', b'e', b'!'],
        ),
    );
    assert_eq!(
        feed(&mut auth, &server::request(1, &failed)),
        Err(PulseError::Refused("Nope!".into()))
    );
    // Two kinds of question at once, or none.
    let (mut auth, _) = start(None);
    let mut both = Vec::new();
    push_avp(&mut both, AVP_REALM_ENTRY, b"");
    push_avp(&mut both, AVP_REGION_CHOICE, b"EU");
    assert!(feed(&mut auth, &server::request(1, &both)).is_err());
    let (mut auth, _) = start(None);
    assert!(feed(&mut auth, &server::request(1, &[])).is_err());
    // A server that never stops asking.
    let (mut auth, _) = start(None);
    let mut realm = Vec::new();
    push_avp(&mut realm, AVP_REALM_ENTRY, b"");
    let mut asked = 0;
    while let Ok(AuthStep::Ask(_)) = feed(&mut auth, &server::request(1, &realm)) {
        auth.answer(&[("realm".into(), "x".into())]).unwrap();
        asked += 1;
    }
    assert_eq!(asked, MAX_ROUNDS);
    // The wrong message at each early stage.
    let (mut auth, _) = PulseAuth::new(info(), None);
    assert!(feed(&mut auth, &server::auth_start()).is_err());
    assert!(auth.answer(&[]).is_err(), "no question was asked");
}

/// The gateway's end of EAP-TTLS in these tests: [`PlainTls`], its messages cut into
/// pieces of `max` bytes.
struct TtlsGateway {
    link: TtlsLink,
    id: u8,
}

impl TtlsGateway {
    fn new(max: usize) -> Self {
        Self {
            link: TtlsLink::new(Box::new(PlainTls::server()), max, 0x40),
            id: 10,
        }
    }

    fn request(&mut self, body: &[u8]) -> Vec<u8> {
        self.id = self.id.wrapping_add(1);
        server::ttls_request(self.id, body)
    }

    /// The client's steps until its whole message is in (`None`) or it does something
    /// other than send (`Some`); fragments and acknowledgements go back and forth.
    fn pump(
        &mut self,
        auth: &mut PulseAuth,
        mut step: Result<AuthStep, PulseError>,
    ) -> Result<Option<AuthStep>, PulseError> {
        loop {
            let bytes = match step? {
                AuthStep::Send(bytes) => bytes,
                other => return Ok(Some(other)),
            };
            let (vendor, kind, seq, payload) = one(&bytes);
            let msg = IftPacket {
                vendor,
                kind,
                seq,
                payload: &payload,
            };
            let eap = server::response(&msg)?;
            assert_eq!(eap.kind, Some(EAP_TYPE_TTLS));
            assert_eq!(eap.id, self.id, "the answer carries the request's id");
            match self.link.on_packet(eap.data)? {
                Some(reply) => {
                    let request = self.request(&reply);
                    step = feed(auth, &request);
                }
                None => return Ok(None),
            }
        }
    }

    /// `eap` (if any) and what the TLS connection has to send, to the client.
    fn say(
        &mut self,
        auth: &mut PulseAuth,
        eap: Option<&[u8]>,
    ) -> Result<Option<AuthStep>, PulseError> {
        if let Some(eap) = eap {
            self.link.send_eap(eap)?;
        }
        let body = self.link.flush();
        let request = self.request(&body);
        let step = feed(auth, &request);
        self.pump(auth, step)
    }

    /// The client's next EAP packet inside, as the gateway reads a Juniper/1 answer.
    fn heard(&mut self) -> Answer {
        let eap = self.link.next_eap().unwrap().expect("an EAP packet inside");
        let eap = Eap::parse(&eap).unwrap();
        assert_eq!(eap.expanded, Some(JUNIPER_1));
        Answer::parse(eap.data).unwrap()
    }
}

/// Up to the server's EAP-TTLS start: the client asks for its TLS connection.
fn start_ttls(held: Option<&str>, gateway: &mut TtlsGateway) -> PulseAuth {
    let (mut auth, _) = PulseAuth::new(info(), held.map(str::to_string));
    sent(feed(&mut auth, &server::version_response()));
    sent(feed(&mut auth, &server::auth_start()));
    let start = gateway.request(&[crate::pulse::ttls::FLAG_START]);
    assert_eq!(feed(&mut auth, &start), Ok(AuthStep::StartTls));
    let hello = auth.start_tls(Box::new(PlainTls::default()));
    assert_eq!(gateway.pump(&mut auth, hello), Ok(None));
    // The handshake's answer: the client is in, and says who it is inside.
    assert_eq!(gateway.say(&mut auth, None), Ok(None));
    let identity = gateway.link.next_eap().unwrap().unwrap();
    assert_eq!(
        identity,
        eap(EAP_RESPONSE, 1, EAP_TYPE_IDENTITY, b"anonymous")
    );
    auth
}

fn j1_request(id: u8, avps: &[u8]) -> Vec<u8> {
    expanded(EAP_REQUEST, id, JUNIPER_1, avps)
}

#[test]
fn a_password_login_inside_eap_ttls_with_the_servers_messages_in_pieces() {
    // Pieces of 7 bytes: every message of the gateway's comes in fragments.
    let mut gateway = TtlsGateway::new(7);
    let mut auth = start_ttls(None, &mut gateway);
    assert_eq!(gateway.say(&mut auth, Some(&j1_request(3, &[]))), Ok(None));
    assert_eq!(gateway.heard().text(AVP_OS).as_deref(), Some("Linux"));
    let password = j1_request(4, &server::password_request(1, J2_PASSWORD, false));
    let Ok(Some(AuthStep::Ask(form))) = gateway.say(&mut auth, Some(&password)) else {
        panic!("no form");
    };
    assert_eq!(form.id, "pulse_user");
    let reply = auth.answer(&[
        ("username".into(), "alice".into()),
        ("password".into(), "secret".into()),
    ]);
    assert_eq!(gateway.pump(&mut auth, reply.map(AuthStep::Send)), Ok(None));
    let answer = gateway.heard();
    assert_eq!(answer.username.as_deref(), Some("alice"));
    assert_eq!(answer.password, Some(("secret".into(), false)));
    let mut cookie = Vec::new();
    push_avp(&mut cookie, AVP_COOKIE, b"0123456789abcdef");
    assert_eq!(
        gateway.say(&mut auth, Some(&j1_request(5, &cookie))),
        Ok(None)
    );
    assert_eq!(gateway.heard(), Answer::default());
    // Success comes outside EAP-TTLS.
    assert_eq!(
        feed(&mut auth, &server::success(5)),
        Ok(AuthStep::Done {
            cookie: "0123456789abcdef".into()
        })
    );
}

#[test]
fn a_long_answer_goes_in_fragments_each_acknowledged() {
    // A held cookie longer than a fragment: the client's answer is cut, and each piece
    // waits for the gateway's acknowledgement.
    let held = "c".repeat(20_000);
    let mut gateway = TtlsGateway::new(MAX_FRAGMENT);
    let mut auth = start_ttls(Some(&held), &mut gateway);
    assert_eq!(gateway.say(&mut auth, Some(&j1_request(3, &[]))), Ok(None));
    assert_eq!(gateway.heard().text(AVP_COOKIE), Some(held));
}

#[test]
fn eap_ttls_that_goes_wrong_is_an_error_never_a_loop() {
    // A request that is not the start.
    let mut gateway = TtlsGateway::new(MAX_FRAGMENT);
    let (mut auth, _) = PulseAuth::new(info(), None);
    sent(feed(&mut auth, &server::version_response()));
    sent(feed(&mut auth, &server::auth_start()));
    assert!(feed(&mut auth, &gateway.request(&[0, 1, 2])).is_err());
    // A handshake answer the TLS connection refuses.
    let mut auth = start_ttls(None, &mut TtlsGateway::new(MAX_FRAGMENT));
    let (mut fresh, _) = PulseAuth::new(info(), None);
    sent(feed(&mut fresh, &server::version_response()));
    sent(feed(&mut fresh, &server::auth_start()));
    feed(
        &mut fresh,
        &gateway.request(&[crate::pulse::ttls::FLAG_START]),
    )
    .unwrap();
    sent(fresh.start_tls(Box::new(PlainTls::default())));
    assert!(matches!(
        feed(&mut fresh, &gateway.request(&[0, b'?'])),
        Err(PulseError::Ttls(_))
    ));
    // Something other than an acknowledgement while our fragments wait.
    let held = "c".repeat(20_000);
    let mut long = TtlsGateway::new(MAX_FRAGMENT);
    let mut waiting = start_ttls(Some(&held), &mut long);
    long.link.send_eap(&j1_request(3, &[])).unwrap();
    let body = long.link.flush();
    sent(feed(&mut waiting, &long.request(&body)));
    assert!(matches!(
        feed(&mut waiting, &long.request(&[0, 1])),
        Err(PulseError::BadTtls(_))
    ));
    // A server that sends empty packets for ever.
    let mut refused = None;
    for _ in 0..=MAX_TTLS_PACKETS {
        if let Err(e) = feed(&mut auth, &gateway.request(&[0])) {
            refused = Some(e);
            break;
        }
    }
    assert!(
        matches!(refused, Some(PulseError::Refused(_))),
        "{refused:?}"
    );
}
