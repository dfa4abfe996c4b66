use super::*;
use crate::http::ResponseHead;

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
    Response {
        head: ResponseHead::with_headers(status, headers),
        body: body.as_bytes().to_vec(),
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn the_login_post_is_what_gateways_expect() {
    let req = login_request(
        "vpn.example",
        "",
        &pairs(&[("username", "alice"), ("credential", "s3cr&t")]),
    );
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/remote/logincheck");
    assert_eq!(
        String::from_utf8(req.body).unwrap(),
        "username=alice&credential=s3cr%26t&realm=&ajax=1&just_logged_in=1"
    );
    assert!(req
        .headers
        .iter()
        .any(|(n, v)| n == "User-Agent" && v == USER_AGENT));
    let form = login_form();
    assert_eq!(form.id, "_login");
    assert_eq!(form.fields.len(), 2);
}

#[test]
fn a_set_cookie_is_success_and_405_is_a_wrong_password() {
    let ok = response(
        200,
        &[(
            "Set-Cookie",
            "SVPNCOOKIE=abc%2B1==; path=/; secure; httponly",
        )],
        "ret=1,redir=/remote/fortisslvpn_xml",
    );
    assert_eq!(
        login_response(&ok).unwrap(),
        LoginStep::Success("abc%2B1==".into())
    );
    // An empty cookie (a logout's) is not a login.
    let cleared = response(200, &[("Set-Cookie", "SVPNCOOKIE=; path=/")], "ret=0");
    assert!(login_response(&cleared).is_err());
    assert_eq!(
        login_response(&response(405, &[], "")).unwrap(),
        LoginStep::BadCredentials
    );
    let odd = login_response(&response(500, &[], "oops")).unwrap_err();
    assert!(
        odd.to_string().contains("500") && odd.to_string().contains("oops"),
        "{odd}"
    );
}

#[test]
fn a_token_challenge_echoes_its_fields_and_a_push_drops_magic() {
    let body = "ret=2,reqid=123,polid=1-1-9,grp=G,portal=P,magic=1-55,tokeninfo=,chal_msg=Enter code, please";
    let LoginStep::Challenge { form, echo } = login_response(&response(200, &[], body)).unwrap()
    else {
        panic!("not a challenge");
    };
    assert_eq!(form.id, "_challenge");
    assert_eq!(form.fields[0].name, "code");
    assert_eq!(form.message.as_deref(), Some("Enter code, please"));
    assert_eq!(
        echo,
        pairs(&[
            ("reqid", "123"),
            ("polid", "1-1-9"),
            ("grp", "G"),
            ("portal", "P"),
            ("magic", "1-55")
        ])
    );
    let answers = challenge_answers(pairs(&[("username", "alice"), ("code", "123456")]), &echo);
    assert!(answers.contains(&("magic".into(), "1-55".into())));
    // On the wire as upstream: the answers, the realm, the echo; no ajax.
    let req = challenge_request(
        "vpn",
        "r1",
        &pairs(&[("username", "alice"), ("code", "123456")]),
        &echo,
    );
    assert_eq!(
        String::from_utf8(req.body).unwrap(),
        "username=alice&code=123456&realm=r1&reqid=123&polid=1-1-9&grp=G&portal=P&magic=1-55"
    );
    let push = challenge_answers(pairs(&[("code", "")]), &echo);
    assert!(!push.iter().any(|(k, _)| k == "magic"));
    assert!(push.contains(&("ftmpush".into(), "1".into())));
}

#[test]
fn an_html_second_factor_is_read_from_its_form() {
    let body = r#"<html><body><form action="/remote/logincheck" method="POST">
        <b>Enter the code we sent</b>
        <input type="hidden" name="magic" value="1-77">
        <input type="hidden" name="username" value="alice">
        <input type="hidden" name="reqid" value="42">
        <input type="password" name="credential">
        </form></body></html>"#;
    let LoginStep::HtmlForm(form) = login_response(&response(401, &[], body)).unwrap() else {
        panic!("not an HTML second factor");
    };
    // Upstream's name for it, so that the same `-F unknown:credential=...` answers it.
    assert_eq!(form.id, "unknown");
    let names: Vec<&str> = form.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["magic", "username", "reqid", "credential"]);
    assert_eq!(form.fields[0].value.as_deref(), Some("1-77"));
    assert!(form.fields[3].token);
    assert_eq!(form.fields[3].label, "Enter the code we sent");
    assert_eq!(form.message.as_deref(), Some("Enter the code we sent"));
    // Posted as the login form is, as upstream: the fields, the realm, then ajax.
    let answers = pairs(&[
        ("magic", "1-77"),
        ("username", "alice"),
        ("reqid", "42"),
        ("credential", "123456"),
    ]);
    assert_eq!(
        String::from_utf8(login_request("vpn", "", &answers).body).unwrap(),
        "magic=1-77&username=alice&reqid=42&credential=123456&realm=&ajax=1&just_logged_in=1"
    );
    // A 401 without a form is an error, not a challenge.
    assert!(login_response(&response(401, &[], "denied")).is_err());
}

const CONFIG: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<sslvpn-tunnel ver="2" dtls="1" patch="1">
  <dtls-config heartbeat-interval="10" heartbeat-fail-count="10" heartbeat-idle-timeout="10" client-hello-timeout="10"/>
  <tunnel-method value="ppp"/>
  <tunnel-method value="tun"/>
  <fos platform="FGT60F" major="7" minor="2" patch="5" build="1517" branch="1517"/>
  <auth-ses tun-connect-without-reauth="1" check-src-ip="0" tun-user-ses-timeout="240"/>
  <ipv4>
    <dns ip="198.51.100.53"/>
    <dns ip="198.51.100.54" domain="corp.example\059lab.example"/>
    <assigned-addr ipv4="10.11.1.123"/>
    <split-tunnel-info>
      <addr ip="10.11.10.10" mask="255.255.255.255"/>
      <addr ip="10.11.1.7" mask="255.255.255.0"/>
    </split-tunnel-info>
    <split-tunnel-info negate="1">
      <addr ip="9.9.9.9" mask="255.255.255.255"/>
    </split-tunnel-info>
  </ipv4>
  <ipv6>
    <dns ipv6="2001:db8::53"/>
    <assigned-addr ipv6="2001:db8:1::7" prefix-len="64"/>
    <split-tunnel-info><addr ipv6="2001:db8:2::" prefix-len="48"/></split-tunnel-info>
  </ipv6>
  <idle-timeout val="3600"/>
  <auth-timeout val="18000"/>
</sslvpn-tunnel>"#;

#[test]
fn the_xml_configuration_becomes_the_tunnel_settings() {
    let c = parse_config(CONFIG).unwrap();
    assert!(c.dtls);
    assert_eq!(c.dpd, Some(Duration::from_secs(10)));
    assert_eq!(c.resume_within, Some(Duration::from_secs(240)));
    assert_eq!(c.version.as_deref(), Some("FGT60F 7.2.5 build 1517"));
    assert_eq!(c.ip.ipv4, Some(Ipv4Addr::new(10, 11, 1, 123)));
    assert_eq!(
        c.ip.ipv6.map(|n| n.to_string()).as_deref(),
        Some("2001:db8:1::7/64")
    );
    let dns: Vec<String> = c.ip.dns.iter().map(ToString::to_string).collect();
    assert_eq!(dns, ["198.51.100.53", "198.51.100.54", "2001:db8::53"]);
    assert_eq!(
        c.ip.default_domain.as_deref(),
        Some("corp.example lab.example")
    );
    let inc: Vec<String> =
        c.ip.split_include4
            .iter()
            .map(ToString::to_string)
            .collect();
    assert_eq!(inc, ["10.11.10.10/32", "10.11.1.0/24"]);
    assert_eq!(c.ip.split_exclude4.len(), 1);
    assert_eq!(c.ip.split_include6[0].to_string(), "2001:db8:2::/48");
    assert_eq!(c.ip.idle_timeout, Some(Duration::from_secs(3600)));
}

#[test]
fn configurations_we_cannot_use_are_named() {
    assert_eq!(
        parse_config("<html>old</html>"),
        Err(FortinetError::NotTunnelConfig)
    );
    let tun_only = r#"<sslvpn-tunnel><tunnel-method value="tun"/><ipv4><assigned-addr ipv4="10.0.0.1"/></ipv4></sslvpn-tunnel>"#;
    assert!(matches!(parse_config(tun_only), Err(FortinetError::NoPpp(m)) if m == "tun"));
    assert_eq!(
        parse_config("<sslvpn-tunnel/>"),
        Err(FortinetError::NoAddress)
    );
    assert!(matches!(
        parse_config("<sslvpn-tunnel><a></b>"),
        Err(FortinetError::BadXml(_))
    ));
    assert_eq!(parse_config(""), Err(FortinetError::NotTunnelConfig));
}

#[test]
fn an_http_answer_to_the_tunnel_request_is_told_from_ppp() {
    assert_eq!(
        http_status_instead_of_ppp(b"HTTP/1.1 403 Forbidden\r\n"),
        Some(403)
    );
    assert_eq!(http_status_instead_of_ppp(b"HTTP/1.1 bogus"), Some(500));
    assert_eq!(http_status_instead_of_ppp(&[0x00, 0x1a, 0x50, 0x50]), None);
    assert_eq!(http_status_instead_of_ppp(b""), None);
}

#[test]
fn ppp_holds_back_until_the_first_bytes_or_a_second_and_only_they_are_checked() {
    let t0 = Instant::now();
    let second = Duration::from_secs(1);
    let mut start = TunnelStart::new(t0);
    assert_eq!(start.holding_until(t0), Some(t0 + second));
    assert_eq!(
        start.holding_until(t0 + second),
        None,
        "a silent gateway waits for us"
    );
    assert_eq!(start.first_bytes(b"HTTP/1.1 403 Forbidden\r\n"), Err(403));
    assert_eq!(start.holding_until(t0), None);
    // Later reads are PPP whatever they hold.
    assert_eq!(start.first_bytes(b"HTTP/1.1 403 Forbidden\r\n"), Ok(()));

    let mut start = TunnelStart::new(t0);
    assert_eq!(start.first_bytes(&[0x00, 0x1a, 0x50, 0x50]), Ok(()));
    assert_eq!(start.holding_until(t0), None);
}
