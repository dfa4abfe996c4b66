//! The command line, flag for flag with openconnect 9.x, and its `--config` file format.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueHint};

use crate::error::ClientError;

/// The version we report in the XML `<version>` element and the User-Agent.
pub const PROTOCOL_VERSION: &str = "v9.21";

const ABOUT: &str = "\
Connect to an SSL VPN (Cisco ASA/FTD or ocserv with --protocol=anyconnect, the default; \
Palo Alto GlobalProtect with --protocol=gp; Juniper Network Connect with --protocol=nc; \
Pulse Connect Secure / Ivanti with --protocol=pulse; FortiGate with --protocol=fortinet; \
F5 BIG-IP with --protocol=f5; Array Networks with --protocol=array) and bring up a tun \
device configured by a vpnc-compatible script. Command line, script environment, cookie output and \
exit codes follow openconnect 9.x, so NetworkManager and existing scripts can use this client.";

const AFTER: &str = "\
EXIT STATUS
    0  --authenticate/--cookieonly succeeded, or the session ended on SIGINT/SIGTERM
       (logged off) or SIGHUP (detached, cookie still valid)
    1  usage error, authentication failure, TLS/certificate failure, server terminated the
       session, reconnect timeout, or any other error
    2  the server rejected the cookie (also when a reconnect returns different addresses)

SIGNALS
    SIGINT, SIGTERM  send a logoff (DISCONNECT) so the server frees the session, run the
                     script with reason=disconnect, exit 0
    SIGHUP           close without logoff (the cookie stays usable), exit 0
    SIGUSR2          drop the connection and reconnect at once with the cookie
    SIGUSR1          print connection statistics

ANSWERS
    Form fields are filled from -u (user name fields), --authgroup (the group choice), the
    --passwd-on-stdin line (the first password field) and -F FORM:FIELD=VALUE; anything
    else is asked on stderr and read as one line of standard input, terminal or not (no
    echo for passwords on a terminal; a carriage return is kept as part of the answer).
    With --non-inter nothing is asked, except that --passwd-on-stdin lets each later prompt
    take the next line: printf 'pw\\n123456\\n' | openconnect --passwd-on-stdin --non-inter
    answers a password and then an OTP. When the lines run out, --non-inter fails with
    \"User input required in non-interactive mode\"; without it the end of standard input
    ends the login. A choice matches its label ignoring case, or the one label it begins.

SERVER CERTIFICATES
    The server certificate is checked against the system CAs (unless --no-system-trust) and
    --cafile. --servercert pins a certificate instead: sha256:<hex> or sha1:<hex> of the
    public key, pin-sha256:<base64> as printed in FINGERPRINT, or bare hex for SHA-1 of the
    whole certificate; a prefix of at least 4 characters is enough.
    Servers with obsolete crypto fail the handshake with an error that names
    --allow-insecure-crypto, which re-enables (for TLS and the vendors' DTLS) what
    openconnect's OpenSSL build does: security level 0, every cipher suite of the library
    (Debian's OpenSSL 3 has no 3DES or RC4 ones), legacy renegotiation, and OpenSSL's legacy
    provider for keys and PKCS#12 files under old encryptions (DES, RC2).

CERTIFICATES ON TOKENS
    -c and -k take RFC 7512 PKCS#11 URIs for smart cards and HSMs: token=, manufacturer=,
    serial=, model= choose the token; object= (the label), id= (%-escaped bytes) and
    type= the object; pin-value= in the URI, or -p, is the PIN. With only -c, the key is
    the one the same URI names, else the one sharing the certificate's id. Tokens are
    reached through p11-kit's proxy (every module registered with p11-kit, as openconnect's
    GnuTLS build), or the module-path= of the URI's query. The key signs on the token;
    RSA and EC keys are supported (DSA is not, as in openconnect).

DTLS
    Data goes over DTLS (UDP) once it is up; TLS carries it until then, whenever DTLS fails
    (retried every 60 s) and for packets too large for a DTLS record. The client offers
    PSK-NEGOTIATE (a key derived from the TLS session; ocserv's default) and the legacy
    AnyConnect suites, in which the server resumes a session from the master secret sent
    with the CONNECT request: OC-DTLS1_2-AES256-GCM, OC-DTLS1_2-AES128-GCM (DTLS 1.2),
    AES256-SHA, AES128-SHA (Cisco's pre-standard DTLS 1.0) and, for X-DTLS12-CipherSuite,
    AES256-GCM-SHA384, AES128-GCM-SHA256. --dtls-ciphers and --dtls12-ciphers replace the
    offer (only the lists given are sent). A legacy handshake that is not a resumption is
    refused as a possible man in the middle, and DTLS stays off. The server's DTLS rekey
    interval starts a fresh handshake. --no-dtls keeps everything on TLS.
    fortinet and f5: PPP runs over certificate DTLS (the server checked as for HTTPS) when
    the gateway offers it and it is up within 5 s, else over TLS; a lost DTLS channel moves
    PPP to a new TLS connection, and DTLS is tried again after 60 s.

SOFTWARE TOKENS
    --token-mode fills one-time codes into login forms: RSA SecurID codes go into the
    primary password field (password or answer), OATH codes (totp, hotp, yubioath) into
    secondary_password, any password field of a challenge form, or the one password
    field of a form whose message asks for an OTP (ocserv's second factor). A code is tried
    twice (TOTP: now, then the next step; SecurID: the next tokencode only when the server
    asks for it); if the server still rejects it, the field is asked for on the terminal.
    totp, hotp: --token-secret is the key as raw text, base32:KEY (any case, spaces and
      padding optional) or 0xHEX, optionally after sha1:, sha256: or sha512:; HOTP keys take
      ,COUNTER at the end. Also accepted: otpauth://totp/... and otpauth://hotp/... URIs
      (secret, algorithm, digits, period, counter) and PSKC XML. @FILE or /FILE reads the
      secret from a file; for HOTP the advanced counter is written back to the file (same
      form, atomic rename) after each code.
    rsa: --token-secret is any token stoken imports: a numeric CTF string (with or without
      dashes), a base64 v3 string, an Android/iPhone URI, an .sdtid XML file or a stoken rc
      file (@FILE or /FILE); without it, ~/.stokenrc is read. A token password, device ID
      or PIN the token needs is asked for (a PIN saved by `stoken setpin` is used), or
      taken from -F stoken:devid=..., -F stoken:password=..., -F stoken:pin=... .
    yubioath: --token-secret names the credential on the YubiKey (default: the first one),
      reached through PC/SC (pcscd); a protected key asks for its PIN (or takes
      -F yubikey_oath_pin:yubikey_pin=...).
    oidc: --token-secret is an OpenID Connect bearer token (or @FILE, /FILE holding it),
      sent as the Authorization: Bearer header when an AnyConnect server (ocserv's oidc back end)
      answers 401 with a Bearer challenge; a second 401 means it was refused (see HTTP
      AUTHENTICATION).
    Token secrets are never logged.

COMPRESSION
    By default the client offers the stateless algorithms, LZ4 (oc-lz4) and LZS, on both
    channels; the server decides. --compression all (or -d) also offers deflate on TLS, a
    stream compressor whose state spans packets; --compression none (or -D) offers nothing.
    Packets under 40 bytes and packets that do not shrink are sent as they are. Compressing
    before encrypting lets someone who can inject traffic and watch packet sizes guess
    secrets in the same stream (CRIME/VORACLE); use none where that matters.

BASH COMPLETION
    A completion function (complete -F) runs openconnect --autocomplete followed by the
    words of the command line after the command, with COMP_CWORD set to the word being
    completed. It prints candidates one per line (option names, protocols, --os and
    --compression values, ...) or, for compgen to expand, FILENAME (then a compgen -X filter
    or ''), EXECUTABLE, HOSTNAME or USERNAME, then the prefix to keep (--opt=, -s), as
    openconnect does.

PROXIES
    -P sends every HTTPS connection through a proxy: http:// (or no scheme) asks an HTTP
    proxy to CONNECT, socks:// and socks5:// ask a SOCKS5 proxy. A user name and password
    may precede the host, %-escaped (DOMAIN\\user as DOMAIN%5Cuser). HTTP proxies get
    GSSAPI (Negotiate, with the desktop's Kerberos ticket), NTLM (NTLMv2), Digest (MD5,
    SHA-256, -sess forms), or Basic when --proxy-auth names it (it sends the password in
    the clear), in that order; a proxy that answers with Connection: close is reconnected
    for each try. SOCKS5 gets
    the user name and password when the URL has them, unless --proxy-auth leaves out
    basic. Without -P, the https_proxy variable names the proxy (--libproxy also reads
    HTTPS_PROXY, http_proxy, HTTP_PROXY); a server named in no_proxy (names, parent
    domains, networks, *) is reached directly. --no-proxy ignores both. Through a proxy
    there is no DTLS or ESP (as openconnect): everything goes over the proxied TLS.

SINGLE SIGN-ON
    When an AnyConnect server logs in through an identity provider (single-sign-on-v2,
    offered unless --no-external-auth), the login URL is printed and opened with
    --external-browser (default xdg-open). In its external-browser mode the server sends
    the browser back to http://localhost:29786/ with the token sealed to this client's
    key; the client listens there until it comes. A server that expects an embedded
    browser gets the token asked for instead: the value of its token cookie (named in
    the prompt) when the browser reaches the final page. In both modes
    -F main:sso-token=TOKEN (the form and field the server names) gives it up front, for
    helpers that log in by themselves.

HTTP AUTHENTICATION
    Logins offer HTTP authentication (X-Support-HTTP-Auth) as openconnect does; a server
    that answers 401 gets the methods --http-auth allows (default: all but basic; names
    basic, digest, ntlm, gssapi, bearer) that this client speaks: Negotiate (GSSAPI) with
    the desktop's Kerberos ticket (kinit; KRB5CCNAME, KRB5_CONFIG), as ocserv's gssapi
    back end asks, then Bearer with --token-mode=oidc's token (openconnect 9.x needs
    --http-auth=bearer for that; here it is the default). When neither works and the
    server allows it (X-HTTP-Auth-Support: fallback), the login goes on with its forms.
    NTLM challenges get the desktop's NTLM credentials through GSSAPI's NTLMSSP mechanism
    (gss-ntlmssp: NTLM_USER_FILE and NTLMUSER, or winbind) where openconnect runs
    winbind's ntlm_auth. Like openconnect, Basic and Digest are never sent to a server.
    Proxies get Negotiate the same way (first, when --proxy-auth allows gssapi), and NTLM
    with the desktop's credentials when the proxy URL has no password.

HOST CHECKS
    --csd-wrapper runs the script a gateway's host check needs, never a program the
    gateway sends. AnyConnect (CSD host scan): the script gets openconnect's arguments
    (an empty stub name, -ticket, -stub, -group, -certhash, -url, -langselen) and
    CSD_TOKEN, CSD_HOSTNAME (with :PORT when not 443), CSD_SHA256 (for curl's
    --pinnedpubkey); Debian's /usr/libexec/openconnect/csd-post.sh is one. Then the
    gateway's wait page is polled each second and the login starts again. GlobalProtect:
    the HIP report script (hipreport.sh). Network Connect: the TNCC helper. --csd-user
    runs it as that user (with its HOME).";

/// `--os` identities, in openconnect's order.
pub const OS_NAMES: &[&str] = &[
    "mac-intel",
    "android",
    "linux-64",
    "linux",
    "apple-ios",
    "win",
];

#[derive(Debug, Clone, Parser)]
#[command(
    name = "openconnect",
    about = "SSL VPN client for AnyConnect/ocserv, GlobalProtect, Network Connect, Pulse, FortiGate, F5 BIG-IP and Array (ferroconnect)",
    long_about = ABOUT,
    after_long_help = AFTER,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Options {
    /// VPN server: [https://]host[:port][/group]
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,

    /// VPN server, as an option (`server=...` in a --config file); the SERVER argument
    /// wins over it
    #[arg(long = "server", value_name = "SERVER", value_hint = ValueHint::Hostname, help_heading = "General")]
    pub server_option: Option<String>,

    /// AnyConnect XML profile: a HostName of its server list, given as SERVER, means that
    /// host's HostAddress and UserGroup; a newer profile the server offers after the login
    /// is downloaded into FILE
    #[arg(short = 'x', long, value_name = "FILE", value_hint = ValueHint::FilePath, help_heading = "General")]
    pub xmlconfig: Option<PathBuf>,

    /// Read further options from FILE (one long option per line, without dashes)
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath, help_heading = "General")]
    pub config: Option<PathBuf>,
    /// VPN protocol: anyconnect (the default; Cisco AnyConnect, ocserv), gp (Palo Alto
    /// GlobalProtect), nc (Juniper Network Connect), pulse (Pulse Connect Secure, Ivanti),
    /// fortinet (FortiGate SSL VPN), f5 (F5 BIG-IP), array (Array Networks), nullppp (PPP
    /// over TLS, for testing)
    #[arg(long, value_name = "PROTO", help_heading = "General")]
    pub protocol: Option<String>,
    /// More output (repeat for more)
    #[arg(short, long, action = ArgAction::Count, help_heading = "General")]
    pub verbose: u8,
    /// Less output (errors only)
    #[arg(short, long, help_heading = "General")]
    pub quiet: bool,
    /// Prefix every progress message with a timestamp
    #[arg(long, help_heading = "General")]
    pub timestamp: bool,
    /// Log progress to syslog instead of the terminal
    #[arg(short = 'l', long, help_heading = "General")]
    pub syslog: bool,
    /// Log format: text (openconnect's lines) or json (one object per line, with
    /// timestamp and level)
    #[arg(
        long,
        value_name = "FORMAT",
        value_enum,
        default_value = "text",
        help_heading = "General"
    )]
    pub log_format: oc_net::log::LogFormat,
    /// Continue in the background once the tunnel is up
    #[arg(short, long, help_heading = "General")]
    pub background: bool,
    /// Write the process id to FILE (removed on exit)
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath, help_heading = "General")]
    pub pid_file: Option<PathBuf>,
    /// Drop privileges to USER once the tun device exists
    #[arg(short = 'U', long, value_name = "USER", value_hint = ValueHint::Username, help_heading = "General")]
    pub setuid: Option<String>,
    /// Print help
    #[arg(short, long, action = ArgAction::HelpLong, help_heading = "General")]
    pub help: Option<bool>,
    /// Print version
    #[arg(short = 'V', long, help_heading = "General")]
    pub version: bool,

    /// Login username
    #[arg(short, long, value_name = "NAME", help_heading = "Authentication")]
    pub user: Option<String>,
    /// Login group (the URL path to POST to)
    #[arg(
        short = 'g',
        long,
        value_name = "GROUP",
        help_heading = "Authentication"
    )]
    pub usergroup: Option<String>,
    /// Choose the authentication group from the login form
    #[arg(long, value_name = "GROUP", help_heading = "Authentication")]
    pub authgroup: Option<String>,
    /// Answer a form field: FORM:FIELD=VALUE (FORM is the auth id, e.g. main)
    #[arg(
        short = 'F',
        long = "form-entry",
        value_name = "FORM:OPT=VALUE",
        help_heading = "Authentication"
    )]
    pub form_entry: Vec<String>,
    /// Read the password from the first line of standard input; later prompts (an OTP, a
    /// token code) take the following lines, also with --non-inter (see ANSWERS)
    #[arg(long, help_heading = "Authentication")]
    pub passwd_on_stdin: bool,
    /// Do not expect user input: a prompt that -u, -F or --passwd-on-stdin's lines do not
    /// answer fails the login
    #[arg(long, help_heading = "Authentication")]
    pub non_inter: bool,
    /// Client certificate: PEM (with chain), PKCS#12, or a PKCS#11 URI (pkcs11:token=...;
    /// object=...; see CERTIFICATES ON TOKENS)
    #[arg(
        short = 'c',
        long,
        value_name = "CERT",
        value_hint = ValueHint::FilePath,
        help_heading = "Authentication"
    )]
    pub certificate: Option<PathBuf>,
    /// Private key for the certificate (PEM, DER or a PKCS#11 URI); defaults to CERT
    #[arg(short = 'k', long, value_name = "KEY", value_hint = ValueHint::FilePath, help_heading = "Authentication")]
    pub sslkey: Option<PathBuf>,
    /// Multiple-certificate authentication: the second ("user") certificate, sent after
    /// the TLS one when the server asks (PEM, PKCS#12 or a PKCS#11 URI)
    #[arg(long, value_name = "CERT", value_hint = ValueHint::FilePath, help_heading = "Authentication")]
    pub mca_certificate: Option<PathBuf>,
    /// The second certificate's private key; defaults to its CERT
    #[arg(long, value_name = "KEY", value_hint = ValueHint::FilePath, help_heading = "Authentication")]
    pub mca_key: Option<PathBuf>,
    /// Password for the second certificate's key or PKCS#12 file
    #[arg(long, value_name = "PASS", help_heading = "Authentication")]
    pub mca_key_password: Option<String>,
    /// Password for the key or PKCS#12 file
    #[arg(
        short = 'p',
        long,
        value_name = "PASS",
        help_heading = "Authentication"
    )]
    pub key_password: Option<String>,
    /// The key's password is the ID of the file system holding the key file (in hex, as
    /// `stat -f -c %i` prints it)
    #[arg(long, help_heading = "Authentication")]
    pub key_password_from_fsid: bool,
    /// Use this webvpn cookie instead of logging in
    #[arg(
        short = 'C',
        long,
        value_name = "COOKIE",
        help_heading = "Authentication"
    )]
    pub cookie: Option<String>,
    /// Read the cookie from standard input
    #[arg(long, help_heading = "Authentication")]
    pub cookie_on_stdin: bool,
    /// Log in, print the cookie and exit
    #[arg(long, help_heading = "Authentication")]
    pub cookieonly: bool,
    /// Print the cookie, then connect
    #[arg(long, help_heading = "Authentication")]
    pub printcookie: bool,
    /// Log in, print COOKIE, HOST, CONNECT_URL, FINGERPRINT and RESOLVE for a shell, exit
    #[arg(long, help_heading = "Authentication")]
    pub authenticate: bool,
    /// Software token type: rsa, totp, hotp, yubioath, or oidc (a bearer token; see
    /// SOFTWARE TOKENS)
    #[arg(long, value_name = "MODE", help_heading = "Authentication")]
    pub token_mode: Option<String>,
    /// Token secret, SECRET[,COUNTER], @FILE or /FILE; the token itself for oidc
    #[arg(long, value_name = "SECRET", help_heading = "Authentication")]
    pub token_secret: Option<String>,

    /// Accept the server certificate whose key matches this pin (repeatable)
    #[arg(long, value_name = "PIN", help_heading = "Server validation")]
    pub servercert: Vec<String>,
    /// Trust the CAs in FILE as well
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath, help_heading = "Server validation")]
    pub cafile: Option<PathBuf>,
    /// Do not trust the system's CAs
    #[arg(long, help_heading = "Server validation")]
    pub no_system_trust: bool,
    /// Accept servers with obsolete crypto: TLS 1.0/1.1 and DTLS 1.0, SHA-1/MD5 signatures,
    /// small keys, legacy renegotiation, old key encryptions (see SERVER CERTIFICATES)
    #[arg(long, help_heading = "Server validation")]
    pub allow_insecure_crypto: bool,
    /// Require perfect forward secrecy: no key exchange by the server's RSA key in TLS 1.2
    /// and older (TLS 1.3 has none)
    #[arg(long, help_heading = "Server validation")]
    pub pfs: bool,
    /// OpenSSL cipher list for TLS 1.2 and older, in place of the default
    #[arg(long, value_name = "LIST", help_heading = "Server validation")]
    pub openssl_ciphers: Option<String>,
    /// GnuTLS's debug level in openconnect's GnuTLS builds; accepted, with a warning, as
    /// this client's TLS is OpenSSL's (-vvv traces the handshakes instead)
    #[arg(long, value_name = "LEVEL", help_heading = "Server validation")]
    pub gnutls_debug: Option<u32>,
    /// A GnuTLS priority string (as openconnect's GnuTLS build takes it), mapped to
    /// OpenSSL's versions and ciphers as the server maps tls-priorities
    #[arg(long, value_name = "STRING", help_heading = "Server validation")]
    pub gnutls_priority: Option<String>,
    /// Send NAME as TLS server name indication
    #[arg(long, value_name = "NAME", help_heading = "Server validation")]
    pub sni: Option<String>,
    /// Use IP for HOST instead of looking it up: HOST:IP
    #[arg(long, value_name = "HOST:IP", help_heading = "Server validation")]
    pub resolve: Vec<String>,

    /// Connect through this proxy: [http|socks|socks5]://[USER:PASSWORD@]HOST[:PORT]
    /// (see PROXIES)
    #[arg(short = 'P', long, value_name = "URL", help_heading = "Proxy", overrides_with_all = ["no_proxy", "libproxy"])]
    pub proxy: Option<String>,
    /// Proxy authentication methods to allow, comma-separated: basic, digest, ntlm,
    /// gssapi (default: all but basic)
    #[arg(long, value_name = "METHODS", help_heading = "Proxy")]
    pub proxy_auth: Option<String>,
    /// HTTP authentication methods to allow with the server, comma-separated: basic,
    /// digest, ntlm, gssapi, bearer (default: all but basic; see HTTP AUTHENTICATION)
    #[arg(long, value_name = "METHODS", help_heading = "Authentication")]
    pub http_auth: Option<String>,
    /// Connect directly, ignoring -P and the https_proxy variable
    #[arg(long, help_heading = "Proxy", overrides_with_all = ["proxy", "libproxy"])]
    pub no_proxy: bool,
    /// Take the proxy from the environment as libproxy does: https_proxy, HTTPS_PROXY,
    /// http_proxy, HTTP_PROXY, with no_proxy's exemptions
    #[arg(long, help_heading = "Proxy", overrides_with_all = ["proxy", "no_proxy"])]
    pub libproxy: bool,

    /// Replace the whole HTTP User-Agent
    #[arg(long, value_name = "STRING", help_heading = "Identity")]
    pub useragent: Option<String>,
    /// Version reported to the server
    #[arg(long, value_name = "STRING", help_heading = "Identity")]
    pub version_string: Option<String>,
    /// OS reported: linux, linux-64, win, mac-intel, android, apple-ios
    #[arg(long, value_name = "OS", help_heading = "Identity")]
    pub os: Option<String>,
    /// Host name reported to the server
    #[arg(long, value_name = "NAME", value_hint = ValueHint::Hostname, help_heading = "Identity")]
    pub local_hostname: Option<String>,

    /// Tun device name (default: kernel's choice, tunN)
    #[arg(short, long, value_name = "IFNAME", help_heading = "Networking")]
    pub interface: Option<String>,
    /// vpnc-compatible script, run with /bin/sh -c
    #[arg(short, long, value_name = "SCRIPT", value_hint = ValueHint::ExecutablePath, help_heading = "Networking")]
    pub script: Option<String>,
    /// No tun device: start the script (-s) once with the tunnel's variables and VPNFD,
    /// its end of a socket pair carrying one IP packet per datagram (ocproxy, tunsocks);
    /// no root needed
    #[arg(short = 'S', long, help_heading = "Networking")]
    pub script_tun: bool,
    /// Request tunnel MTU
    #[arg(short, long, value_name = "MTU", help_heading = "Networking")]
    pub mtu: Option<u16>,
    /// Link MTU towards the server (default: from TCP, else 1406)
    #[arg(long, value_name = "MTU", help_heading = "Networking")]
    pub base_mtu: Option<u16>,
    /// Do not ask for IPv6
    #[arg(long, help_heading = "Networking")]
    pub disable_ipv6: bool,
    /// Copy each packet's IPv4 TOS / IPv6 traffic class onto the DTLS or ESP datagram
    /// that carries it (every protocol's DTLS and ESP)
    #[arg(long, help_heading = "Networking")]
    pub passtos: bool,
    /// Do not use DTLS; all data goes over TLS
    #[arg(long, help_heading = "Networking")]
    pub no_dtls: bool,
    /// Offer exactly this X-DTLS-CipherSuite list (e.g. OC-DTLS1_2-AES256-GCM, AES128-SHA,
    /// PSK-NEGOTIATE)
    #[arg(long, value_name = "LIST", help_heading = "Networking")]
    pub dtls_ciphers: Option<String>,
    /// Offer exactly this X-DTLS12-CipherSuite list (e.g. AES256-GCM-SHA384)
    #[arg(long, value_name = "LIST", help_heading = "Networking")]
    pub dtls12_ciphers: Option<String>,
    /// Local UDP port for DTLS (default: any)
    #[arg(long, value_name = "PORT", help_heading = "Networking")]
    pub dtls_local_port: Option<u16>,
    /// Give up reconnecting after this many seconds
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 300,
        help_heading = "Networking"
    )]
    pub reconnect_timeout: u64,
    /// A new HTTPS connection for every request of the login (a workaround for servers
    /// that mishandle reused connections)
    #[arg(long, help_heading = "Networking")]
    pub no_http_keepalive: bool,
    /// TCP keepalive on the TLS connection, its first probe after SECONDS of silence (the
    /// system's default without a value)
    #[arg(
        long,
        value_name = "SECONDS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "0",
        help_heading = "Networking"
    )]
    pub tcp_keepalive: Option<u32>,
    /// Log every HTTP request and response of the login, header lines and bodies
    #[arg(long, help_heading = "General")]
    pub dump_http_traffic: bool,
    /// Deprecated: the same as --protocol=nc
    #[arg(long, help_heading = "General")]
    pub juniper: bool,
    /// Use this DPD interval instead of the server's
    #[arg(long, value_name = "SECONDS", help_heading = "Networking")]
    pub force_dpd: Option<u64>,
    /// Run SCRIPT for the host check: AnyConnect's CSD host scan (csd-post.sh),
    /// GlobalProtect's HIP report (hipreport.sh), Network Connect's TNCC (see HOST CHECKS)
    #[arg(long, value_name = "SCRIPT", value_hint = ValueHint::ExecutablePath, help_heading = "Host check")]
    pub csd_wrapper: Option<PathBuf>,
    /// Warn when the client certificate expires within DAYS days (or has expired)
    #[arg(
        short = 'e',
        long,
        value_name = "DAYS",
        default_value_t = 60,
        help_heading = "Authentication"
    )]
    pub cert_expire_warning: u64,
    /// Log in the legacy way: GET the login page, answer forms with url-encoded posts
    /// (servers that mishandle AnyConnect's XML posts)
    #[arg(long, help_heading = "Authentication")]
    pub no_xmlpost: bool,
    /// Never answer a login form (certificate logins only): a form is an error
    #[arg(long, help_heading = "Authentication")]
    pub no_passwd: bool,
    /// Do not tell the server that single sign-on through a browser is possible
    /// (AnyConnect's single-sign-on-v2, GlobalProtect's cas-support)
    #[arg(long, help_heading = "Authentication")]
    pub no_external_auth: bool,
    /// The browser for single-sign-on logins, started with the login URL (default:
    /// xdg-open when in PATH; the URL is printed either way)
    #[arg(long, value_name = "BROWSER", value_hint = ValueHint::ExecutablePath, help_heading = "Authentication")]
    pub external_browser: Option<PathBuf>,
    /// Run the host check script as USER (a name or a uid)
    #[arg(long, value_name = "USER", help_heading = "Host check")]
    pub csd_user: Option<String>,
    /// Repeat the host check every INTERVAL seconds, whatever the server says
    #[arg(long, value_name = "INTERVAL", help_heading = "Host check")]
    pub force_trojan: Option<u64>,
    /// openconnect's packet queue limit; accepted for scripts that pass it, with a warning:
    /// this client moves packets in batches and keeps no queue to limit
    #[arg(short = 'Q', long, value_name = "LEN", value_parser = clap::value_parser!(u32).range(1..=65535), help_heading = "Networking")]
    pub queue_len: Option<u32>,
    /// Compression to offer: stateless (LZ4, LZS; default), all (also deflate) or none
    /// (also spelled off)
    #[arg(
        long,
        value_name = "MODE",
        value_enum,
        help_heading = "Networking",
        overrides_with_all = ["deflate", "no_deflate"]
    )]
    pub compression: Option<CompressionMode>,
    /// Same as --compression all
    #[arg(
        short = 'd',
        long,
        help_heading = "Networking",
        overrides_with_all = ["compression", "no_deflate"]
    )]
    pub deflate: bool,
    /// Same as --compression none
    #[arg(
        short = 'D',
        long,
        help_heading = "Networking",
        overrides_with_all = ["compression", "deflate"]
    )]
    pub no_deflate: bool,
}

/// `--compression` values, as openconnect spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionMode {
    #[value(alias = "off")]
    None,
    All,
    Stateless,
}

impl Options {
    /// `--force-dpd` as an interval; zero, like no option, leaves the server's.
    pub fn forced_dpd(&self) -> Option<std::time::Duration> {
        self.force_dpd
            .filter(|s| *s > 0)
            .map(std::time::Duration::from_secs)
    }

    /// Parses the process arguments, expanding `--config` files in place.
    pub fn from_args(args: Vec<OsString>) -> Result<Self, clap::Error> {
        let expanded = match expand_config_files(args) {
            Ok(a) => a,
            Err(msg) => {
                return Err(clap::Error::raw(
                    clap::error::ErrorKind::InvalidValue,
                    format!("{msg}\n"),
                ));
            }
        };
        let mut opts = Self::try_parse_from(expanded)?;
        opts.paths_to_locale();
        Ok(opts)
    }

    /// File names back in the locale's bytes (the command line went to UTF-8).
    fn paths_to_locale(&mut self) {
        let charset = crate::locale::legacy_charset();
        for path in [
            &mut self.pid_file,
            &mut self.certificate,
            &mut self.sslkey,
            &mut self.cafile,
            &mut self.csd_wrapper,
        ]
        .into_iter()
        .flatten()
        {
            *path = crate::locale::path_to_locale(std::mem::take(path), charset);
        }
    }

    /// The compression offer; the last of --compression, -d and -D wins.
    pub fn compression_mode(&self) -> oc_proto::compress::Mode {
        use oc_proto::compress::Mode;
        if self.deflate {
            return Mode::All;
        }
        if self.no_deflate {
            return Mode::None;
        }
        match self.compression {
            Some(CompressionMode::All) => Mode::All,
            Some(CompressionMode::None) => Mode::None,
            Some(CompressionMode::Stateless) | None => Mode::Stateless,
        }
    }

    /// openconnect's verbosity: 0 errors, 1 info (default), 2 debug, 3 trace.
    pub fn log_level(&self) -> u8 {
        if self.quiet {
            0
        } else {
            (1 + self.verbose).min(3)
        }
    }

    /// The name the client gives the server (openconnect's `localname`): `--local-hostname`,
    /// else the system's host name, else `localhost`.
    pub fn hostname(&self) -> String {
        self.local_hostname.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_string())
        })
    }

    /// The `--protocol` name (`--juniper` is `nc`, as openconnect's deprecated switch).
    pub fn protocol_name(&self) -> Option<&str> {
        match (&self.protocol, self.juniper) {
            (Some(p), _) => Some(p.as_str()),
            (None, true) => Some("nc"),
            (None, false) => None,
        }
    }

    /// Which of the server's challenges `--http-auth` lets us answer: (Bearer, GSSAPI);
    /// both by default.
    pub fn http_auth_methods(&self) -> Result<(bool, bool), ClientError> {
        let Some(list) = &self.http_auth else {
            return Ok((true, true));
        };
        let (mut bearer, mut gssapi) = (false, false);
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name.to_ascii_lowercase().as_str() {
                "bearer" => bearer = true,
                "gssapi" | "negotiate" => gssapi = true,
                "basic" | "digest" | "ntlm" => {}
                _ => {
                    return Err(ClientError::Usage(format!(
                        "--http-auth: unknown method {name:?} (use a comma-separated list of \
                         basic, digest, ntlm, gssapi, bearer)"
                    )))
                }
            }
        }
        Ok((bearer, gssapi))
    }

    pub fn validate(&self) -> Result<(), ClientError> {
        if !self.http_auth_methods()?.0 && self.token_mode.as_deref() == Some("oidc") {
            return Err(ClientError::Usage(
                "--token-mode=oidc sends a bearer token, which --http-auth leaves out: add \
                 bearer to it"
                    .into(),
            ));
        }
        if self.juniper {
            tracing::warn!("WARNING: --juniper is deprecated, use --protocol=nc instead.");
        }
        crate::protocol::lookup(self.protocol_name())?;
        if let Some(os) = &self.os {
            if !OS_NAMES.contains(&os.as_str()) {
                return Err(ClientError::Usage(format!(
                    "invalid OS identity {os:?}; use one of {}",
                    OS_NAMES.join(", ")
                )));
            }
        }
        let protocol = crate::protocol::lookup(self.protocol_name())?.protocol;
        let host_check = matches!(
            protocol,
            crate::protocol::Protocol::AnyConnect
                | crate::protocol::Protocol::Gp
                | crate::protocol::Protocol::Nc
        );
        if self.csd_wrapper.is_some() && !host_check {
            return Err(ClientError::Usage(
                "--csd-wrapper: host checks are AnyConnect's CSD, GlobalProtect's HIP report \
                 (--protocol=gp) and Network Connect's TNCC (--protocol=nc); this protocol \
                 has none"
                    .into(),
            ));
        }
        if self.cookie.is_some() && self.cookie_on_stdin {
            return Err(ClientError::Usage(
                "--cookie and --cookie-on-stdin are exclusive".into(),
            ));
        }
        if self.passwd_on_stdin && self.cookie_on_stdin {
            return Err(ClientError::Usage(
                "--passwd-on-stdin and --cookie-on-stdin both read standard input".into(),
            ));
        }
        for (flag, v) in [("--mtu", self.mtu), ("--base-mtu", self.base_mtu)] {
            if let Some(v) = v {
                if v < 576 {
                    return Err(ClientError::Usage(format!(
                        "{flag} {v} is too small (minimum 576)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// `-F form:opt=value` entries.
    pub fn form_entries(&self) -> Result<Vec<(String, String, String)>, ClientError> {
        self.form_entry
            .iter()
            .map(|e| {
                let parsed = e
                    .split_once(':')
                    .and_then(|(form, rest)| rest.split_once('=').map(|(o, v)| (form, o, v)));
                match parsed {
                    Some((form, opt, value)) if !form.is_empty() && !opt.is_empty() => {
                        Ok((form.to_string(), opt.to_string(), value.to_string()))
                    }
                    _ => Err(ClientError::Usage(format!(
                        "invalid form entry {e:?}: expected FORM:OPT=VALUE"
                    ))),
                }
            })
            .collect()
    }

    /// `--resolve host:ip` entries.
    pub fn resolve_entries(&self) -> Result<Vec<(String, IpAddr)>, ClientError> {
        self.resolve
            .iter()
            .map(|e| {
                let (host, ip) = e.split_once(':').ok_or_else(|| {
                    ClientError::Usage(format!("invalid --resolve {e:?}: expected HOST:IP"))
                })?;
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                let ip = ip.parse().map_err(|_| {
                    ClientError::Usage(format!(
                        "invalid --resolve {e:?}: {ip:?} is not an IP address"
                    ))
                })?;
                Ok((host.to_string(), ip))
            })
            .collect()
    }
}

/// Replaces `--config FILE` / `--config=FILE` with the options in FILE, where it stands.
fn expand_config_files(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let charset = crate::locale::legacy_charset();
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        let path = match arg.to_str() {
            Some("--config") => Some(
                iter.next()
                    .ok_or_else(|| "option --config needs a file name".to_string())?,
            ),
            Some(a) if a.starts_with("--config=") => Some(OsString::from(&a["--config=".len()..])),
            _ => None,
        };
        match path {
            Some(p) => {
                let p = PathBuf::from(p);
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| format!("cannot read config file {}: {e}", p.display()))?;
                out.extend(parse_config_file(&text, &p.display().to_string())?);
            }
            // The command line's text is the locale's; a config file's is UTF-8.
            None => out.push(crate::locale::arg_to_utf8(arg, charset)),
        }
    }
    Ok(out)
}

/// openconnect's config format: one long option per line, no dashes, its value after `=`
/// or whitespace, kept as written; `#` starts a comment line.
fn parse_config_file(text: &str, file: &str) -> Result<Vec<OsString>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw
            .trim_start_matches([' ', '\t', '\r'])
            .trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let end = line
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(line.len());
        let (name, rest) = line.split_at(end);
        if name.starts_with('-') || name.is_empty() {
            return Err(format!(
                "{file}:{}: unrecognised option {name:?} (write the long name without dashes)",
                i + 1
            ));
        }
        if name == "config" {
            return Err(format!(
                "{file}:{}: 'config' cannot be used inside a config file",
                i + 1
            ));
        }
        let value = rest
            .strip_prefix('=')
            .unwrap_or_else(|| rest.trim_start_matches([' ', '\t']));
        if value.is_empty() && !rest.starts_with('=') {
            out.push(OsString::from(format!("--{name}")));
        } else {
            out.push(OsString::from(format!("--{name}={value}")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
