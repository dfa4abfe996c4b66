use super::*;

const LOGIN_PAGE: &str = r#"<html><body><table>
<tr><td id="credentials_table_header">Welcome to the lab</td></tr>
<tr><td id="credentials_table_postheader">The username or password is not correct.</td></tr></table>
<form id="auth_form" name="e1" method="post" action="/my.policy">
<input type="text" name="username"><input type="password" name="password">
<select name="domain"><option value="corp">Corp</option></select>
<input type="hidden" name="vhost" value="standard"></form></body></html>"#;

#[test]
fn the_login_page_gives_the_form_its_error_and_where_it_goes() {
    let f = login_form(LOGIN_PAGE);
    assert_eq!(f.action.as_deref(), Some("/my.policy"));
    assert_eq!(f.form.id, "auth_form");
    assert_eq!(f.form.message.as_deref(), Some("Welcome to the lab"));
    assert_eq!(
        f.form.error.as_deref(),
        Some("The username or password is not correct.")
    );
    let names: Vec<&str> = f.form.fields.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["username", "password", "domain", "vhost"]);
    assert!(
        !f.form.fields[1].token,
        "a password with a user name is not a code"
    );
    // A page without a form: username and password, as upstream assumes.
    let empty = login_form(r#"<form id="auth_form"><input type="submit"></form>"#);
    assert_eq!(
        empty.form.fields.len(),
        2,
        "a form with nothing to fill is no form"
    );
    let bare = login_form("<html>please log on</html>");
    let names: Vec<&str> = bare.form.fields.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["username", "password"]);
    // A form asking only for a secret is a second factor: tokens fill it.
    let otp =
        login_form(r#"<form id="auth_form"><input type="password" name="otp_password"></form>"#);
    assert!(otp.form.fields[0].token);
    let req = login_request(
        "vpn",
        "UA",
        f.action.as_deref(),
        "/",
        &[("username".into(), "a b".into())],
    );
    assert_eq!((req.method, req.path.as_str()), ("POST", "/my.policy"));
    assert_eq!(req.body, b"username=a+b");
    // Another server's action is not followed; a form without one goes back to its page.
    let elsewhere = login_request("vpn", "UA", Some("https://evil.example/x"), "/p", &[]);
    assert_eq!(elsewhere.path, "/p");
    let scheme_relative = login_request("vpn", "UA", Some("//evil.example/x"), "/p", &[]);
    assert_eq!(scheme_relative.path, "/p");
    let scripted = login_request("vpn", "UA", None, "/my.policy?x=1", &[]);
    assert_eq!(scripted.path, "/my.policy?x=1");
    let nowhere = login_request("vpn", "UA", None, "https://odd/", &[]);
    assert_eq!(nowhere.path, "/my.policy");
}

#[test]
fn the_first_vpn_resource_is_taken() {
    let xml = r#"<?xml version="1.0" encoding="utf-8"?><favorites type="VPN" limited="YES">
        <favorite id="/Common/na"><caption>na</caption><name>/Common/na</name>
        <params>resourcename=/Common/na</params></favorite>
        <favorite id="/Common/b"><params>resourcename=/Common/b</params></favorite></favorites>"#;
    assert_eq!(vpn_resource(xml).unwrap(), "resourcename=/Common/na");
    assert_eq!(
        config_path("resourcename=/Common/na"),
        "/vdesk/vpn/connect.php3?resourcename=/Common/na&outform=xml&client_version=2.0"
    );
    assert_eq!(
        vpn_resource("<favorites type=\"VPN\"/>"),
        Err(F5Error::NoVpnResource)
    );
    assert_eq!(
        vpn_resource(
            r#"<favorites type="APP"><favorite><params>x</params></favorite></favorites>"#
        ),
        Err(F5Error::NoVpnResource)
    );
}

const CONFIG: &str = r#"<?xml version="1.0" encoding="utf-8"?><favorite id="/Common/na">
<object ID="ID_na" CLASSID="CLSID:x"><ur_Z>zzz</ur_Z><Session_ID>s123</Session_ID>
<IPV4_0>1</IPV4_0><IPV6_0>0</IPV6_0><hdlc_framing>yes</hdlc_framing>
<idle_session_timeout>900</idle_session_timeout><tunnel_dtls>1</tunnel_dtls><tunnel_port_dtls>4433</tunnel_port_dtls>
<UseDefaultGateway0>0</UseDefaultGateway0><DNS0>198.18.0.53</DNS0><DNS1>198.18.0.54</DNS1><WINS0>198.18.0.55</WINS0>
<DNSSuffix0>corp.example,lab.example</DNSSuffix0><LAN0>10.1.0.7/16 10.2.0.0/24</LAN0><LAN6_0>fd00::/64</LAN6_0>
<ExcludeSubnets0>10.1.9.0/24</ExcludeSubnets0></object></favorite>"#;

#[test]
fn the_numbered_configuration_becomes_the_tunnel_settings() {
    let c = parse_config(CONFIG).unwrap();
    assert_eq!((c.session_id.as_str(), c.ur_z.as_str()), ("s123", "zzz"));
    assert!(c.ipv4 && !c.ipv6 && c.hdlc);
    assert_eq!(c.dtls_port, Some(4433));
    assert_eq!(c.ip.idle_timeout, Some(Duration::from_secs(900)));
    let dns: Vec<String> = c.ip.dns.iter().map(ToString::to_string).collect();
    assert_eq!(dns, ["198.18.0.53", "198.18.0.54"]);
    assert_eq!(c.ip.nbns.len(), 1);
    assert_eq!(
        c.ip.default_domain.as_deref(),
        Some("corp.example lab.example")
    );
    let inc: Vec<String> =
        c.ip.split_include4
            .iter()
            .map(ToString::to_string)
            .collect();
    assert_eq!(inc, ["10.1.0.0/16", "10.2.0.0/24"]);
    assert_eq!(c.ip.split_include6[0].to_string(), "fd00::/64");
    assert_eq!(c.ip.split_exclude4[0].to_string(), "10.1.9.0/24");
    // Full tunnel: the LAN lists are not split routes.
    let full = CONFIG.replace("<UseDefaultGateway0>0", "<UseDefaultGateway0>1");
    assert!(parse_config(&full).unwrap().ip.split_include4.is_empty());
    let no_session = CONFIG.replace("<Session_ID>s123</Session_ID>", "");
    assert_eq!(
        parse_config(&no_session),
        Err(F5Error::Missing("Session_ID"))
    );
    assert!(matches!(
        parse_config("<a><b></a>"),
        Err(F5Error::BadXml(_))
    ));
}

#[test]
fn the_tunnel_request_and_its_answer() {
    let c = parse_config(CONFIG).unwrap();
    let req = tunnel_request("vpn.example", "UA", &c, true, "host1");
    assert_eq!(
        req.path,
        "/myvpn?sess=s123&hdlc_framing=yes&ipv4=yes&ipv6=no&Z=zzz&hostname=aG9zdDE="
    );
    assert!(!req.headers.iter().any(|(n, _)| n == "Cookie"));
    let head = ResponseHead::with_headers;
    let ok = head(
        201,
        &[
            ("X-VPN-client-IP", "10.3.0.9"),
            ("X-VPN-client-IPv6", "fd00::9"),
        ],
    );
    assert_eq!(
        tunnel_response(&ok).unwrap(),
        (Some(Ipv4Addr::new(10, 3, 0, 9)), "fd00::9".parse().ok())
    );
    assert_eq!(
        tunnel_response(&head(504, &[])),
        Err(F5Error::SessionRejected)
    );
    assert_eq!(
        tunnel_response(&head(403, &[])),
        Err(F5Error::TunnelRefused(403))
    );
}

#[test]
fn a_script_built_form_is_read_from_app_loader_configure() {
    let page = r#"<html><head><script type="text/javascript">appLoader.configure({
      "logon": {"form": {"id": "auth_form", "title": "JSON logon",
        "fields": [{"type": "text", "name": "username", "caption": "Username"},
                   {"type": "password", "name": "password", "caption": "Password"},
                   {"type": "hidden_thing", "name": "vhost", "value": "standard", "disabled": true}]}}});
      </script></head><body>Script-built</body></html>"#;
    let f = login_form(page);
    assert_eq!(f.form.id, "auth_form");
    assert_eq!(f.form.banner.as_deref(), Some("JSON logon"));
    let names: Vec<(&str, &str)> = f
        .form
        .fields
        .iter()
        .map(|x| (x.name.as_str(), x.label.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("username", "Username:"),
            ("password", "Password:"),
            ("vhost", "vhost:")
        ]
    );
    assert_eq!(f.form.fields[1].kind, FieldKind::Password);
    assert_eq!(f.form.fields[2].value.as_deref(), Some("standard"));
    // Broken JSON: the username/password fallback.
    let broken = login_form("<script>appLoader.configure({\"logon\": [</script>");
    assert_eq!(broken.form.fields.len(), 2);
}

#[test]
fn dtls_answer_accepts_200_with_addresses_and_refuses_the_rest() {
    let ok = b"HTTP/1.1 200 OK\r\nX-VPN-client-IP: 10.9.0.2\r\nX-VPN-client-IPv6: fd00::2\r\n\r\n";
    assert_eq!(
        read_dtls_answer(ok),
        ProbeAnswer::Accepted {
            ipv4: Some("10.9.0.2".parse().unwrap()),
            ipv6: Some("fd00::2".parse().unwrap()),
        }
    );
    for (record, expect) in [
        (&b"HTTP/1.1 504 Gateway Timeout\r\n\r\n"[..], "504"),
        (b"HTTP/1.1 403 Forbidden\r\n\r\n", "403"),
        (b"HTTP/1.1 201 Created\r\n\r\n", "201"),
        (b"HTTP/1.1 200 OK\r\nX-VPN", "cut short"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "not valid HTTP"),
    ] {
        match read_dtls_answer(record) {
            ProbeAnswer::Refused { why, permanent } => {
                assert!(why.contains(expect), "{why}");
                assert!(!permanent);
            }
            other => panic!("{other:?}"),
        }
    }
    // A PPP frame that overtook the answer, and the empty record.
    assert_eq!(
        read_dtls_answer(&[0xf5, 0, 0, 4, 0xff, 3, 0xc0, 0x21]),
        ProbeAnswer::Unrecognised
    );
    assert_eq!(read_dtls_answer(b""), ProbeAnswer::Unrecognised);
}

#[test]
fn dtls_version_follows_dtls_v1_2_supported() {
    let base = "<favorite><object><Session_ID>s</Session_ID><ur_Z>z</ur_Z>";
    let old = parse_config(&format!("{base}</object></favorite>")).unwrap();
    assert!(!old.dtls12);
    let new = parse_config(&format!(
        "{base}<dtls_v1_2_supported>1</dtls_v1_2_supported></object></favorite>"
    ))
    .unwrap();
    assert!(new.dtls12);
}
