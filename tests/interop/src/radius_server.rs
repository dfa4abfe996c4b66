//! A RADIUS server for the lab: Debian's FreeRADIUS in the server's namespace with a
//! configuration written here (PAP logins from a users file, a two-step login that asks
//! for a token code with an Access-Challenge, accounting to a detail file).

use std::path::PathBuf;
use std::time::Duration;

use crate::Lab;

/// The shared secret of the lab's RADIUS clients.
pub const SECRET: &str = "testing123";

/// The server's configuration: `users` is its users file (check and reply items). The
/// user `carol` logs in in two steps: her password, then the code 123456.
fn radiusd_conf(dir: &str) -> String {
    format!(
        r#"prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {dir}
raddbdir = {dir}
radacctdir = {dir}/acct
name = freeradius
confdir = {dir}
modconfdir = {dir}
run_dir = {dir}
libdir = /usr/lib/freeradius
pidfile = {dir}/radiusd.pid
max_request_time = 30
cleanup_delay = 1
max_requests = 1024
hostname_lookups = no
log {{
	destination = stdout
	auth = yes
}}
security {{
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = no
}}
thread pool {{
	start_servers = 2
	max_servers = 4
	min_spare_servers = 1
	max_spare_servers = 3
	max_requests_per_server = 0
}}
client lab {{
	ipaddr = 0.0.0.0/0
	secret = {SECRET}
}}
modules {{
	files {{
		filename = {dir}/users
		acctusersfile = {dir}/acct_users
	}}
	pap {{
	}}
	always ok {{
		rcode = ok
	}}
	always reject {{
		rcode = reject
	}}
	detail {{
		filename = {dir}/acct/detail
		permissions = 0600
		header = "%t"
	}}
}}
server default {{
	listen {{
		type = auth
		ipaddr = *
		port = 1812
	}}
	listen {{
		type = acct
		ipaddr = *
		port = 1813
	}}
	authorize {{
		files
		if (&User-Name == "carol") {{
			if (&State) {{
				update control {{
					&Auth-Type := Token-Code
				}}
			}}
			else {{
				update control {{
					&Auth-Type := Password-Then-Code
				}}
			}}
		}}
		pap
	}}
	authenticate {{
		Auth-Type PAP {{
			pap
		}}
		Auth-Type Password-Then-Code {{
			pap
			update reply {{
				&State := "code"
				&Reply-Message := "Enter the code from your token"
			}}
			update control {{
				&Response-Packet-Type := Access-Challenge
			}}
		}}
		Auth-Type Token-Code {{
			if (&User-Password == "123456") {{
				ok
			}}
			else {{
				reject
			}}
		}}
	}}
	preacct {{
	}}
	accounting {{
		detail
	}}
	post-auth {{
	}}
}}
"#
    )
}

/// A running FreeRADIUS of a lab.
#[derive(Debug)]
pub struct RadiusServer {
    pub dir: PathBuf,
}

impl RadiusServer {
    /// Starts FreeRADIUS in the lab's server namespace with `users` as its users file,
    /// once it is ready.
    pub fn start(lab: &mut Lab, users: &str) -> Self {
        let dir = lab.dir.join("raddb");
        std::fs::create_dir_all(dir.join("acct")).unwrap();
        let d = dir.display().to_string();
        std::fs::write(dir.join("radiusd.conf"), radiusd_conf(&d)).unwrap();
        std::fs::write(dir.join("users"), users).unwrap();
        std::fs::write(dir.join("acct_users"), "").unwrap();
        let ns = lab.server_ns.clone();
        lab.spawn_in(&ns, &["freeradius", "-X", "-d", &d], "freeradius.log");
        lab.wait_for_log(
            "freeradius.log",
            "Ready to process requests",
            Duration::from_secs(20),
        );
        Self { dir }
    }

    /// A radcli configuration for our server: this server for both, `timeout` seconds
    /// and one try, the secret in a servers file (or `secret` inline when given).
    pub fn radcli_conf(&self, name: &str, secret: Option<&str>, timeout: u32) -> PathBuf {
        let d = self.dir.display();
        let servers = self.dir.join(format!("{name}.servers"));
        std::fs::write(
            &servers,
            format!("# host secret\nlocalhost/localhost {SECRET}\n"),
        )
        .unwrap();
        let host = match secret {
            Some(s) => format!("127.0.0.1:1812:{s}"),
            None => "localhost".to_owned(),
        };
        let conf = self.dir.join(format!("{name}.conf"));
        std::fs::write(
            &conf,
            format!(
                "# radcli\nauth_order radius\nauthserver {host}\nacctserver localhost\n\
                 servers {}\ndictionary /etc/radcli/dictionary\nseqfile {d}/seq\n\
                 radius_timeout {timeout}\nradius_retries 1\nbindaddr *\n",
                servers.display()
            ),
        )
        .unwrap();
        conf
    }

    /// The accounting detail file so far.
    pub fn detail(&self) -> String {
        std::fs::read_to_string(self.dir.join("acct/detail")).unwrap_or_default()
    }
}
