//! `-x/--xmlconfig` against Debian's ocserv, which offers its `user-profile` after the
//! login: the client downloads it into the `-x` file (Debian's openconnect does the same
//! first, proving the set-up), and a later run reaches the server by the profile's host
//! name. A file that is not a profile leaves SERVER a raw host name, with a warning.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::time::Duration;

use ferroconnect_interop::{login_args, output_text, Lab, Pki};

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn profiles_are_downloaded_and_name_the_server() {
    let mut lab = Lab::new("xml-profile");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let served = lab.dir.join("profile.xml");
    let profile = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AnyConnectProfile \
         xmlns=\"http://schemas.xmlsoap.org/encoding/\"><ServerList><HostEntry>\
         <HostName>Lab VPN</HostName><HostAddress>{}</HostAddress></HostEntry>\
         </ServerList></AnyConnectProfile>\n",
        lab.server_ip
    );
    fs::write(&served, &profile).unwrap();
    let extra = format!("user-profile = {}\n", served.display());
    lab.start_ocserv(&pki, &[("alice", "secret")], &extra);
    let ca = pki.ca_pem.display().to_string();
    let u = format!("https://{}/", lab.server_ip);
    let run = |client: &str, file: &str, server: &str| {
        let mut argv = vec![client, "-x", file, "--authenticate"];
        argv.extend(login_args(&ca, &[server]));
        let out = lab.run_in(&lab.client_ns, &argv, "secret\n", SECS(30));
        (out.status.code(), output_text(&out))
    };
    let theirs = lab.dir.join("theirs.xml").display().to_string();
    let (code, text) = run("/usr/sbin/openconnect", &theirs, &u);
    assert_eq!(code, Some(0), "openconnect 9.01: {text}");
    assert_eq!(
        fs::read_to_string(&theirs).unwrap(),
        profile,
        "openconnect 9.01: {text}"
    );
    let ours = lab.client_bin.display().to_string();
    let mine = lab.dir.join("mine.xml").display().to_string();
    let (code, text) = run(&ours, &mine, &u);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("treating host"), "{text}");
    assert!(text.contains("Downloaded new XML profile"), "{text}");
    assert_eq!(fs::read_to_string(&mine).unwrap(), profile);
    // Now the profile's name reaches the server, and the profile is not fetched again.
    let (code, text) = run(&ours, &mine, "Lab VPN");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "Host \"Lab VPN\" has address \"{}\"",
            lab.server_ip
        )),
        "{text}"
    );
    assert!(!text.contains("Downloaded"), "{text}");
    // Not a profile: a warning, and SERVER is a host name (here an unknown one).
    let junk = lab.dir.join("junk.xml");
    fs::write(&junk, "this is not XML <").unwrap();
    let (code, text) = run(&ours, &junk.display().to_string(), "Lab VPN");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("Failed to parse XML config file"), "{text}");
    assert!(text.contains("\"Lab VPN\""), "{text}");
}
