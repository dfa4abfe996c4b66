//! `select-group-by-url` (upstream's test-config-per-group-url-*): Debian's openconnect
//! connecting to `https://server/GROUP` logs in to that group, whose config-per-group file
//! then applies, without a group choice in the form.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{bin, login_args, wait_until, Lab, Pki, ServerKind};

#[test]
fn the_url_names_the_group_and_its_file_applies() {
    let mut lab = Lab::new("group-url");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let groups = lab.dir.join("groups");
    std::fs::create_dir_all(&groups).unwrap();
    std::fs::write(groups.join("ops"), "dns = 198.19.0.77\n").unwrap();
    let auth = lab.make_passwd(&bin("ocpasswd"), &[("alice", "secret")], Some("staff,ops"));
    let extra = format!(
        "select-group = staff\nselect-group = ops\nselect-group-by-url = true\n\
         config-per-group = {}/\n",
        groups.display()
    );
    let config = lab.server_config(&pki, &auth, &extra);
    lab.start_server_with_config(ServerKind::Ours, &config);
    let script = lab.recording_script();
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/ops", lab.server_ip);
    lab.spawn_client(&login_args(&ca, &["-s", &script, &url]), "secret\n");
    lab.assert_tunnel("in the group the URL named");
    let dns = wait_until(Duration::from_secs(10), || {
        lab.log("env.connect")
            .lines()
            .find_map(|l| l.strip_prefix("INTERNAL_IP4_DNS="))
            .map(str::to_owned)
    });
    assert_eq!(
        dns.as_deref(),
        Some("198.19.0.77"),
        "{}",
        lab.log("ocserv.log")
    );
    assert!(
        lab.log("ocserv.log").contains("(group ops)"),
        "{}",
        lab.log("ocserv.log")
    );
}
