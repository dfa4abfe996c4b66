//! Whole messages as upstream's fake server (tests/fake-gp-server.py) and real gateways send
//! them, read as the client reads them; and the gateway's answers read back.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::*;
use crate::esp::{EspEncryption, EspIntegrity, EspKeys, EspSuite};
use crate::form::FieldKind;
use crate::ip_config::IpConfig;

fn xml(text: &str) -> Reply {
    read_body(text).unwrap()
}

const FAKE_PRELOGIN: &str = "
<prelogin-response>
<status>Success</status>
<ccusername/>
<autosubmit>false</autosubmit>
<msg/>
<newmsg/>
<authentication-message>Greetings, user from EARTH. Please login to this fake GP VPN portal</authentication-message>
<username-label>Username</username-label>
<password-label>Password</password-label>
<panos-version>1</panos-version>
<region>EARTH</region>
</prelogin-response>";

#[test]
fn fake_server_prelogin_and_its_form() {
    let p = Prelogin::parse(&xml(FAKE_PRELOGIN)).unwrap();
    assert_eq!(p.region.as_deref(), Some("EARTH"));
    assert!(p.saml.is_none());
    let form = p.form(None, None);
    assert_eq!(form.id, LOGIN_FORM);
    assert_eq!(
        form.message.as_deref(),
        Some("Greetings, user from EARTH. Please login to this fake GP VPN portal")
    );
    assert_eq!(form.fields[0].name, "user");
    assert_eq!(form.fields[0].label, "Username: ");
    assert_eq!(form.fields[0].kind, FieldKind::Text);
    assert_eq!(form.fields[1].name, "passwd");
    assert_eq!(form.fields[1].kind, FieldKind::Password);
    assert!(!form.fields[1].token);
    // Known user, external secret field: hidden user, the secret named after the field.
    let form = p.form(Some("alice"), Some("prelogin-cookie"));
    assert_eq!(form.fields[0].kind, FieldKind::Hidden);
    assert_eq!(form.fields[0].value.as_deref(), Some("alice"));
    assert_eq!(form.fields[1].name, "prelogin-cookie");
    assert_eq!(form.fields[1].label, "prelogin-cookie: ");
    // A label other than "Password" makes the first secret a code.
    let p = Prelogin::parse(&xml(
        "<prelogin-response><status>Success</status><username-label> </username-label>\
         <password-label>Passcode</password-label></prelogin-response>",
    ))
    .unwrap();
    assert_eq!(p.username_label, None, "blank labels are ignored");
    let form = p.form(None, None);
    assert!(form.fields[1].token);
    assert_eq!(form.fields[1].label, "Passcode: ");
    assert_eq!(
        form.message.as_deref(),
        Some("Please enter your username and password")
    );
}

#[test]
fn saml_prelogins() {
    // REDIRECT: the URL in base64 (fake-gp-server.py's).
    let redirect = "<prelogin-response><status>Success</status>\
        <saml-auth-method>REDIRECT</saml-auth-method>\
        <saml-request>aHR0cHM6Ly9sb2NhbGhvc3QvQU5PVEhFUi1IT1NUL1NBTUwtRU5EUE9JTlQ/dG9rZW49MQ==</saml-request>\
        </prelogin-response>";
    let p = Prelogin::parse(&xml(redirect)).unwrap();
    assert_eq!(
        p.saml,
        Some(Saml {
            method: SamlMethod::Redirect,
            target: "https://localhost/ANOTHER-HOST/SAML-ENDPOINT?token=1".into()
        })
    );
    assert_eq!(
        p.form(None, None).message.as_deref(),
        Some("SAML REDIRECT authentication in progress")
    );
    let post = redirect.replace("REDIRECT", "POST");
    let p = Prelogin::parse(&xml(&post)).unwrap();
    assert!(p
        .saml
        .unwrap()
        .target
        .starts_with("data:text/html;base64,aHR0"));
    let odd = redirect.replace("REDIRECT", "CARRIER-PIGEON");
    assert_eq!(
        Prelogin::parse(&xml(&odd)),
        Err(GpError::UnknownSamlMethod("CARRIER-PIGEON".into()))
    );
    let bad = redirect.replace("aHR0", "!!!!");
    assert_eq!(Prelogin::parse(&xml(&bad)), Err(GpError::BadSamlRequest));
}

const FAKE_PORTAL: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>
    <policy><version> 6.7.8-9 </version><gateways><external><list>
<entry name="localhost:443">
  <description>foo</description>
  <priority-rule>
    <entry name="VENUS"><priority>3</priority></entry>
    <entry name="Any"><priority>99</priority></entry>
  </priority-rule>
</entry>
<entry name="localhost:443">
  <description>bar</description>
  <priority-rule>
    <entry name="EARTH"><priority>2</priority></entry>
    <entry name="Any"><priority>99</priority></entry>
  </priority-rule>
</entry>
<entry name="other:4443">
  <description>baz</description>
</entry></list></external></gateways>
    <hip-collection><hip-report-interval>600</hip-report-interval></hip-collection>
    <portal-userauthcookie>portal-cookie-7</portal-userauthcookie><portal-prelogonuserauthcookie>empty</portal-prelogonuserauthcookie></policy>"#;

#[test]
fn fake_server_portal_config() {
    let portal = PortalConfig::parse(&xml(FAKE_PORTAL), Some("EARTH")).unwrap();
    let names: Vec<&str> = portal
        .gateways
        .iter()
        .map(|g| g.description.as_str())
        .collect();
    assert_eq!(
        names,
        ["bar", "foo", "baz"],
        "by priority for EARTH, unprioritised last"
    );
    assert_eq!(portal.gateways[0].priority, Some(2));
    assert_eq!(portal.gateways[1].priority, Some(99));
    assert_eq!(portal.version.as_deref(), Some("6.7.8-9"));
    assert_eq!(portal.hip_report_interval, Some(Duration::from_secs(600)));
    assert_eq!(
        portal.portal_userauthcookie.as_deref(),
        Some("portal-cookie-7")
    );
    assert_eq!(
        portal.portal_prelogonuserauthcookie, None,
        "'empty' is none"
    );
    // Without a region, the portal's order.
    let plain = PortalConfig::parse(&xml(FAKE_PORTAL), None).unwrap();
    assert_eq!(plain.gateways[0].description, "foo");
    // --authgroup: the description, whole or a unique beginning, any letter case; a name.
    assert_eq!(portal.choose(None).unwrap().description, "bar");
    assert_eq!(
        portal.choose(Some("BAZ")).unwrap().url(),
        "https://other:4443"
    );
    assert_eq!(portal.choose(Some("f")).unwrap().description, "foo");
    assert_eq!(
        portal.choose(Some("ba")),
        Err(GpError::AmbiguousGateway("ba".into()))
    );
    assert_eq!(
        portal.choose(Some("other:4443")).unwrap().description,
        "baz"
    );
    assert!(portal.choose(Some("nowhere")).is_err());
    // No gateways.
    let empty = "<policy><gateways><external><list/></external></gateways></policy>";
    assert_eq!(
        PortalConfig::parse(&xml(empty), None),
        Err(GpError::NoGateways)
    );
    assert_eq!(
        PortalConfig::parse(&xml("<policy/>"), None),
        Err(GpError::NoGateways)
    );
    assert!(matches!(
        PortalConfig::parse(&xml("<response/>"), None),
        Err(GpError::UnexpectedRoot { .. })
    ));
}

const FAKE_JNLP: &str = r#"<?xml version="1.0" encoding="utf-8"?> <jnlp> <application-desc>
        <argument>(null)</argument>
            <argument>eyJhdXRoIjogMX0=</argument>
            <argument>PersistentCookie</argument>
            <argument>Portal7</argument>
            <argument>test</argument>
            <argument>TestAuth</argument>
            <argument>vsys1</argument>
            <argument>%28empty_domain%29</argument>
            <argument>(null)</argument>
            <argument/>
            <argument></argument>
            <argument></argument>
            <argument>tunnel</argument>
            <argument>-1</argument>
            <argument>4100</argument>
            <argument>192.168.5.6</argument>
            <argument></argument>
            <argument></argument>
            <argument>fd00::1234</argument>
            </application-desc></jnlp>"#;

#[test]
fn fake_server_gateway_login() {
    let args = LoginArgs::parse(&xml(FAKE_JNLP)).unwrap();
    assert_eq!(args.authcookie, "eyJhdXRoIjogMX0=");
    assert_eq!(args.user, "test");
    assert_eq!(args.domain.as_deref(), Some("(empty_domain)"));
    assert_eq!(args.password_expiration_days, None);
    assert!(args.unexpected.is_empty());
    let cookie = args.cookie("my-pc");
    assert_eq!(
        cookie.to_string(),
        "authcookie=eyJhdXRoIjogMX0%3D&portal=Portal7&user=test&domain=%28empty_domain%29\
         &preferred-ip=192.168.5.6&preferred-ipv6=fd00%3A%3A1234&computer=my-pc"
    );
    // What upstream refuses.
    let no_tunnel = FAKE_JNLP.replace(">tunnel<", ">portal<");
    assert!(matches!(
        LoginArgs::parse(&xml(&no_tunnel)),
        Err(GpError::UnexpectedLoginArgument {
            name: "connection-type",
            ..
        })
    ));
    let no_cookie = FAKE_JNLP.replace("eyJhdXRoIjogMX0=", "");
    assert_eq!(
        LoginArgs::parse(&xml(&no_cookie)),
        Err(GpError::MissingLoginArgument("authcookie"))
    );
    let extra = FAKE_JNLP.replace("<argument/>", "<argument>surprise</argument>");
    assert_eq!(
        LoginArgs::parse(&xml(&extra)).unwrap().unexpected,
        [(9, "surprise".to_string())]
    );
    // The gateway's own answer reads back the same.
    assert_eq!(LoginArgs::parse(&xml(&args.to_xml())), Ok(args));
}

const FAKE_GETCONFIG: &str = "<response><ip-address>192.168.5.6</ip-address>\
    <gw-address>127.0.0.1</gw-address><gw-address-v6>::1</gw-address-v6>\
    <ipsec>
            <udp-port>4501</udp-port>
            <ipsec-mode>esp-tunnel</ipsec-mode>
            <enc-algo>aes-128-cbc</enc-algo>
            <hmac-algo>sha1</hmac-alog>
            <c2s-spi>0xa5a5a5a5</c2s-spi>
            <s2c-spi>0x5a5a5a5a</s2c-spi>
            <akey-s2c><bits>160</bits><val>deadbeefdeadbeefdeadbeefdeadbeefdeadbeef</val></akey-s2c>
            <akey-c2s><bits>160</bits><val>deadbeefdeadbeefdeadbeefdeadbeefdeadbee1</val></akey-c2s>
            <ekey-s2c><bits>128</bits><val>deadbeefdeadbeefdeadbeefdeadbeef</val></ekey-s2c>
            <ekey-c2s><bits>128</bits><val>deadbeefdeadbeefdeadbeefdeadbee1</val></ekey-c2s>
        </ipsec><ssl-tunnel-url>/ssl-tunnel-connect.sslvpn</ssl-tunnel-url></response>";

#[test]
fn fake_server_gateway_config_with_esp() {
    let config = GatewayConfig::parse(&xml(FAKE_GETCONFIG), true, true).unwrap();
    assert_eq!(config.ip.ipv4, Some(Ipv4Addr::new(192, 168, 5, 6)));
    assert_eq!(config.tunnel_path, "/ssl-tunnel-connect.sslvpn");
    let esp = config.esp.clone().unwrap();
    assert_eq!(esp.port, Some(4501));
    assert_eq!(esp.client_to_server.spi(), 0xa5a5_a5a5);
    assert_eq!(esp.server_to_client.spi(), 0x5a5a_5a5a);
    assert_eq!(
        esp.client_to_server.suite(),
        EspSuite::new(EspEncryption::Aes128Cbc, EspIntegrity::HmacSha1_96)
    );
    assert_eq!(esp.client_to_server.integrity_key().last(), Some(&0xe1));
    assert_eq!(esp.server_to_client.encryption_key().len(), 16);
    // Only an IPv4 client address: the IPv4 magic, though both came (upstream since 9.02).
    assert_eq!(config.esp_magic(), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    // ESP off: no keys read, no magic.
    let config = GatewayConfig::parse(&xml(FAKE_GETCONFIG), false, true).unwrap();
    assert_eq!(config.esp, None);
    assert_eq!(config.esp_magic(), None);
}

/// A configuration as real gateways send it (fields from upstream's parser and reports).
const REAL_GETCONFIG: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><response>\
    <need-tunnel>yes</need-tunnel><ssl-tunnel-url>/ssl-tunnel-connect.sslvpn</ssl-tunnel-url>\
    <portal>Portal1</portal><user>alice</user><quarantine>no</quarantine>\
    <lifetime>2592000</lifetime><timeout>10800</timeout><disconnect-on-idle>3600</disconnect-on-idle>\
    <bw-c2s>1000</bw-c2s><bw-s2c>1000</bw-s2c><gw-address>203.0.113.7</gw-address>\
    <ip-address>10.8.0.5</ip-address><netmask>255.255.255.255</netmask>\
    <ip-address-v6>fd12::5</ip-address-v6>\
    <dns><member>10.1.1.1</member><member>10.1.1.2</member></dns>\
    <dns-v6><member>10.1.1.1</member><member>fd12::53</member><member>fd12::54</member></dns-v6>\
    <wins><member>10.1.1.9</member></wins>\
    <dns-suffix><member>corp.example</member><member>example.com</member></dns-suffix>\
    <default-gateway>10.8.0.1</default-gateway><mtu>0</mtu>\
    <access-routes><member>10.0.0.0/8</member><member>192.0.2.7</member></access-routes>\
    <access-routes-v6><member>fd12::/16</member></access-routes-v6>\
    <exclude-access-routes><member>10.9.0.0/16</member></exclude-access-routes>\
    <exclude-access-routes-v6><member>fd12:9::/32</member></exclude-access-routes-v6>\
    <new-shiny-thing>1</new-shiny-thing><ipv6-foo>x</ipv6-foo></response>";

#[test]
fn a_real_gateways_config() {
    let config = GatewayConfig::parse(&xml(REAL_GETCONFIG), true, true).unwrap();
    let ip = &config.ip;
    assert_eq!(ip.ipv4, Some(Ipv4Addr::new(10, 8, 0, 5)));
    assert_eq!(ip.ipv4_netmask, Some(Ipv4Addr::BROADCAST));
    assert_eq!(
        ip.ipv6.map(|n| n.to_string()).as_deref(),
        Some("fd12::5/128")
    );
    let dns: Vec<String> = ip.dns.iter().map(ToString::to_string).collect();
    assert_eq!(
        dns,
        ["10.1.1.1", "10.1.1.2", "fd12::53"],
        "three, without repeats"
    );
    assert_eq!(ip.nbns.len(), 1);
    assert_eq!(
        ip.default_domain.as_deref(),
        Some("corp.example example.com")
    );
    assert_eq!(ip.split_include4.len(), 2);
    assert_eq!(ip.split_include4[1].to_string(), "192.0.2.7/32");
    assert_eq!(ip.split_include6.len(), 1, "access-routes-v6 are includes");
    assert_eq!(ip.split_exclude4.len(), 1);
    assert_eq!(ip.split_exclude6.len(), 1);
    assert_eq!(ip.mtu, 0);
    assert_eq!(ip.idle_timeout, Some(Duration::from_secs(3600)));
    assert_eq!(config.lifetime, Some(Duration::from_secs(2_592_000)));
    assert_eq!(config.rekey, Some(Duration::from_secs(10800)));
    assert_eq!(config.quarantine, None);
    assert_eq!(config.esp, None);
    assert_eq!(config.esp_magic(), None, "no keys, no ESP");
    assert_eq!(config.notes.len(), 2, "{:?}", config.notes);
    assert!(config.notes[1].starts_with("Potential IPv6-related"));
    // --disable-ipv6: the IPv6 address is left out.
    let v4 = GatewayConfig::parse(&xml(REAL_GETCONFIG), true, false).unwrap();
    assert_eq!(v4.ip.ipv6, None);
}

#[test]
fn bad_and_incomplete_configs() {
    let bad_addr = "<response><ip-address>10.8.0.500</ip-address></response>";
    assert!(matches!(
        GatewayConfig::parse(&xml(bad_addr), true, true),
        Err(GpError::BadConfigValue {
            tag: "ip-address",
            ..
        })
    ));
    // No address at all (or only an IPv6 one the client does not take).
    for none in [
        "<response><mtu>1400</mtu></response>",
        "<response><ip-address-v6>fd00::2</ip-address-v6></response>",
    ] {
        assert_eq!(
            GatewayConfig::parse(&xml(none), true, false),
            Err(GpError::NoAddress)
        );
    }
    // Keys whose length is not what <bits> says, unknown algorithms: no ESP, a note.
    for broken in [
        FAKE_GETCONFIG.replace("<bits>128</bits>", "<bits>256</bits>"),
        FAKE_GETCONFIG.replace("aes-128-cbc", "aes-128-gcm"),
        FAKE_GETCONFIG.replace(">sha1<", ">sha512<"),
        FAKE_GETCONFIG.replace("0xa5a5a5a5", "0xnothex"),
        // `from_str_radix` would take these signs; hex digits only.
        FAKE_GETCONFIG.replace("0xa5a5a5a5", "0x+5a5a5a5"),
        FAKE_GETCONFIG.replace(
            "deadbeefdeadbeefdeadbeefdeadbee1</val></ekey-c2s>",
            "+eadbeefdeadbeefdeadbeefdeadbee1</val></ekey-c2s>",
        ),
        FAKE_GETCONFIG.replace(
            "deadbeefdeadbeefdeadbeefdeadbee1</val></ekey-c2s>",
            "zz</val></ekey-c2s>",
        ),
        FAKE_GETCONFIG.replace("<udp-port>4501", "<udp-port>99999"),
    ] {
        let config = GatewayConfig::parse(&xml(&broken), true, true).unwrap();
        assert_eq!(config.esp, None, "{broken}");
        assert!(
            config.notes.iter().any(|n| n.contains("incomplete")),
            "{:?}",
            config.notes
        );
    }
    let odd_mode = FAKE_GETCONFIG.replace("esp-tunnel", "esp-transport");
    let config = GatewayConfig::parse(&xml(&odd_mode), true, true).unwrap();
    assert!(config.esp.is_some());
    assert!(config
        .notes
        .iter()
        .any(|n| n.contains("ipsec-mode=esp-transport")));
}

#[test]
fn the_gateways_config_reads_back() {
    let suite = EspSuite::new(EspEncryption::Aes256Cbc, EspIntegrity::HmacSha256_128);
    let config = GatewayConfig {
        ip: IpConfig {
            mtu: 1400,
            ipv4: Some(Ipv4Addr::new(198, 19, 100, 2)),
            ipv4_netmask: Some(Ipv4Addr::BROADCAST),
            dns: vec![IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))],
            default_domain: Some("a.example b.example".into()),
            split_include4: vec!["198.19.0.1/32".parse().unwrap()],
            split_exclude6: vec!["fd00::/8".parse().unwrap()],
            idle_timeout: Some(Duration::from_secs(600)),
            ..IpConfig::default()
        },
        lifetime: Some(Duration::from_secs(86400)),
        rekey: Some(Duration::from_secs(3600)),
        tunnel_path: TUNNEL_PATH.into(),
        magic4: Some(Ipv4Addr::new(198, 18, 0, 1)),
        magic6: None,
        esp: Some(EspConfig {
            client_to_server: EspKeys::new(0x1234, suite, &[1; 32], &[2; 32]).unwrap(),
            server_to_client: EspKeys::new(0xabcd_ef01, suite, &[3; 32], &[4; 32]).unwrap(),
            port: Some(ESP_PORT),
            mode: Some("esp-tunnel".into()),
        }),
        quarantine: None,
        notes: Vec::new(),
    };
    let text = config.to_xml();
    assert_eq!(
        GatewayConfig::parse(&xml(&text), true, true),
        Ok(config.clone())
    );
    assert!(text.contains("<c2s-spi>0x00001234</c2s-spi>"), "{text}");
    assert_eq!(
        config.esp_magic(),
        Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)))
    );
    // The portal's and prelogin's answers read back too.
    let prelogin = Prelogin {
        message: Some("Welcome & login".into()),
        username_label: Some("Username".into()),
        password_label: Some("Password".into()),
        region: Some("US".into()),
        saml: None,
    };
    assert_eq!(Prelogin::parse(&xml(&prelogin.to_xml())), Ok(prelogin));
    let portal = PortalConfig {
        gateways: vec![
            GatewayEntry {
                name: "gw1.example".into(),
                description: "One".into(),
                priority: Some(1),
            },
            GatewayEntry {
                name: "gw2.example:4443".into(),
                description: "Two".into(),
                priority: Some(2),
            },
        ],
        portal_name: Some("portal".into()),
        portal_userauthcookie: Some("puac".into()),
        portal_prelogonuserauthcookie: None,
        hip_report_interval: Some(Duration::from_secs(3600)),
        version: Some("6.3.0-33".into()),
    };
    assert_eq!(
        PortalConfig::parse(&xml(&portal.to_xml()), Some("US")),
        Ok(portal)
    );
}

#[test]
fn challenge_forms_follow_the_login_form() {
    let p = Prelogin::parse(&xml(FAKE_PRELOGIN)).unwrap();
    let mut login = p.form(None, None);
    login.fields[0].value = Some("alice".into());
    login.fields[1].value = Some("secret".into());
    let Reply::Challenge(challenge) = xml(
        "<challenge><user>alice</user><inputstr>0a1b</inputstr><respmsg>Enter code</respmsg></challenge>",
    ) else {
        panic!("not a challenge");
    };
    let form = challenge_form(&login, &challenge);
    assert_eq!(form.id, CHALLENGE_FORM);
    assert_eq!(form.message.as_deref(), Some("Enter code"));
    assert_eq!(form.fields[0].kind, FieldKind::Hidden);
    assert_eq!(form.fields[0].value.as_deref(), Some("alice"));
    assert_eq!(form.fields[1].name, "passwd");
    assert_eq!(form.fields[1].label, "Challenge: ");
    assert_eq!(form.fields[1].value, None);
    assert!(form.fields[1].token, "a password, then a code");
    assert!(
        !challenge_form(&form, &challenge).fields[1].token,
        "then a password again"
    );
    assert_eq!(challenge.input_str, "0a1b");
}
