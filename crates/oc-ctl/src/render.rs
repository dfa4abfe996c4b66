//! What occtl prints for each response, as text or JSON.
//!
//! The layouts follow ocserv 1.4's `occtl` (`unix.c`, `print.c`, `time.c`,
//! `nl.c`): same labels, key order, column widths, relative-time and byte
//! formats, and the same `raw_*` numeric keys in JSON. Differences, all
//! deliberate:
//!
//! * Absolute times are printed in UTC (`%Y-%m-%d %H:%M`), shifted by
//!   [`RenderOptions::utc_offset_secs`] if the caller knows its offset;
//!   ocserv prints local time. "Now" is [`RenderOptions::now_unix`]: this
//!   crate never reads a clock.
//! * JSON is produced by `serde_json` (with a formatter imitating ocserv's
//!   layout), so it is valid for any data: strings are fully escaped (ocserv
//!   did not escape list entries and mangled non-ASCII bytes), lists are
//!   always arrays, no key appears twice and there are no trailing commas.
//! * In text output, control characters in data (user names, user agents,
//!   hostnames…) are shown as `\xNN` so a client cannot forge table rows or
//!   send terminal escapes to the administrator's screen.
//! * Column padding counts characters, not bytes (identical for ASCII).
//! * `RX`/`TX` of a user come from the server's counters, not the tun
//!   device's kernel statistics, and are printed whenever known.
//! * `Location` is always `unknown`, as in an ocserv built without GeoIP.
//! * `IPv4`/`IPv6` lines are printed when the client's VPN address is known
//!   even if the point-to-point address is not (ocserv needs both).
//! * The `show sessions` header is printed before the first listed row
//!   (ocserv printed it only if the very first session passed the filter).
//! * `show events` in JSON mode prints each event as ocserv does (an array
//!   with the user's full record) plus `"Event"` and, for disconnects,
//!   `"Disconnect reason"` keys; the "Press 'q'" hint goes to stderr there.

mod jsonfmt;

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::model::{state, BanInfo, Event, IrouteInfo, ServerStatus, SessionInfo, UserInfo};
use crate::proto::{Request, Response};

use jsonfmt::to_occtl_json;

/// Printed by ocserv's occtl (to stderr) when the server cannot be reached.
pub const ERR_SERVER_UNREACHABLE: &str =
    "could not send message; possibly insufficient permissions or server is offline.\n";

/// Printed after the initial user list of `show events`.
pub const EVENTS_HINT: &str = "\nPress 'q' or CTRL+C to quit\n\n";

/// Shown instead of an empty user name or group (ocserv's `NO_USER`).
pub const NO_USER: &str = "(none)";

/// Output style: ocserv's text or `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON (`occtl --json`).
    Json,
}

/// Everything rendering needs besides the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RenderOptions {
    /// Text or JSON.
    pub format: Format,
    /// The current time in unix seconds, for relative times ("  1h:05m").
    pub now_unix: u64,
    /// `occtl --debug`: adds `Sec-mod client entries` and `TLS DB entries`
    /// to `show status`.
    pub debug: bool,
    /// Offset added to absolute times before formatting them; 0 prints UTC.
    pub utc_offset_secs: i32,
}

impl RenderOptions {
    /// Text output at `now_unix`, UTC.
    pub fn text(now_unix: u64) -> Self {
        RenderOptions {
            format: Format::Text,
            now_unix,
            ..Self::default()
        }
    }

    /// JSON output at `now_unix`, UTC.
    pub fn json(now_unix: u64) -> Self {
        RenderOptions {
            format: Format::Json,
            now_unix,
            ..Self::default()
        }
    }

    fn is_json(&self) -> bool {
        self.format == Format::Json
    }
}

/// What occtl should print and how it should exit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Text for standard output.
    pub stdout: String,
    /// Text for standard error.
    pub stderr: String,
    /// Process exit status, as ocserv's occtl: 0 success, 1 failure, 2 user
    /// or ID not found (`show user`, `show id`).
    pub exit_code: i32,
}

impl Output {
    fn ok(stdout: String) -> Self {
        Output {
            stdout,
            stderr: String::new(),
            exit_code: 0,
        }
    }

    fn fail(stdout: String, stderr: String) -> Self {
        Output {
            stdout,
            stderr,
            exit_code: 1,
        }
    }
}

// ---------------------------------------------------------------------------
// Formatting helpers (print.c / time.c / occtl.c equivalents)
// ---------------------------------------------------------------------------

/// ocserv's `bytes2human`: `N bytes` up to 1000, then `%.1f kB`, `MB`,
/// `GB` (powers of 1000), followed by `suffix` (e.g. `/s`).
pub fn bytes_to_human(bytes: u64, suffix: &str) -> String {
    const K: u64 = 1000;
    // Precision loss above 2^53 bytes only affects the last printed digit.
    #[allow(clippy::cast_precision_loss)]
    let f = bytes as f64;
    if bytes > K && bytes < K * K {
        format!("{:.1} kB{suffix}", f / 1e3)
    } else if (K * K..K * K * K).contains(&bytes) {
        format!("{:.1} MB{suffix}", f / 1e6)
    } else if bytes >= K * K * K {
        format!("{:.1} GB{suffix}", f / 1e9)
    } else {
        format!("{bytes} bytes{suffix}")
    }
}

/// ocserv's `print_time_ival7`: the interval `later - earlier` in at most 7
/// columns: `   42s`, ` 5m:07s`, ` 3h:09m`, ` 4days`, or `   ?   ` when
/// negative.
pub fn time_interval7(later: u64, earlier: u64) -> String {
    let t = i128::from(later) - i128::from(earlier);
    if t < 0 {
        "   ?   ".to_string()
    } else if t >= 48 * 3600 {
        format!("{:2}days", t / 86400)
    } else if t >= 3600 {
        format!("{:2}h:{:02}m", t / 3600, (t / 60) % 60)
    } else if t > 60 {
        format!("{:2}m:{:02}s", t / 60, t % 60)
    } else {
        format!("{t:5}s")
    }
}

/// `%Y-%m-%d %H:%M` (ocserv's `DATE_TIME_FMT`) of `unix + utc_offset_secs`.
pub fn format_date_time(unix: u64, utc_offset_secs: i32) -> String {
    let secs = i128::from(unix) + i128::from(utc_offset_secs);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's algorithm).
fn civil_from_days(days: i128) -> (i128, i128, i128) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i128::from(m <= 2);
    (y, m, d)
}

/// ocserv's `time2human` for latencies given in microseconds.
pub fn latency_to_human(microseconds: u64) -> String {
    if microseconds < 1000 {
        "<1ms".to_string()
    } else if microseconds < 1_000_000 {
        format!("{}ms", microseconds / 1000)
    } else {
        format!("{}s", microseconds / 1_000_000)
    }
}

/// ocserv's `fix_ciphersuite` for the `show users` table: strips the
/// `(DTLS1.2)-(PSK)-` style prefix of a DTLS description, or returns
/// `(no-dtls)`.
pub fn dtls_cipher_short(desc: &str) -> &str {
    const NO_DTLS: &str = "(no-dtls)";
    let b = desc.as_bytes();
    if b.len() <= 16 || !b.starts_with(b"(DTLS") {
        return NO_DTLS;
    }
    let at = |i: usize, pat: &[u8]| b.get(i..).is_some_and(|s| s.starts_with(pat));
    let skip = if at(8, b")-(RSA)-") || at(8, b")-(PSK)-") {
        16
    } else if at(8, b")-(ECDHE-RSA)-") {
        22
    } else {
        10
    };
    desc.get(skip..).unwrap_or(NO_DTLS)
}

fn has_dtls(desc: &str) -> bool {
    !desc.is_empty() && desc != "(no-dtls)"
}

/// Makes data safe to print on a terminal: control characters become
/// `\xNN` (C1 controls `\u{NN}`).
fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            let n = u32::from(c);
            if n < 0x80 {
                let _ = write!(out, "\\x{n:02x}");
            } else {
                let _ = write!(out, "\\u{{{n:x}}}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        NO_USER
    } else {
        s
    }
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        state::UNKNOWN
    } else {
        s
    }
}

/// Truncates to at most `n` bytes on a character boundary (C's `%.Ns`).
fn trunc(s: &str, n: usize) -> &str {
    let mut end = n.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

fn bool_word(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

// ---------------------------------------------------------------------------
// Text building blocks (print.c)
// ---------------------------------------------------------------------------

/// A key/value sink: ocserv's text block ([`Text`]) or JSON object
/// ([`Obj`]). Both skip empty strings, so a field sequence written once
/// against this trait keeps the same keys in the same order in both formats.
trait Fields {
    /// `name: value`, skipped when `value` is empty.
    fn single(&mut self, name: &str, value: &str);
    /// `name: value` for a number, always printed.
    fn int(&mut self, name: &str, value: u64);
    /// `name: value (extra)` as text, `name` and `_name` keys in JSON;
    /// skipped when `value` is empty.
    fn ex(&mut self, name: &str, value: &str, extra: &str);
    /// Two fields, on one text line (each skipped when empty).
    fn pair(&mut self, name1: &str, value1: &str, name2: &str, value2: &str);
    /// A list: one text line per entry, always a JSON array.
    fn list(&mut self, name: &str, values: &[String]);
    /// The JSON object, for keys only ocserv's JSON has; `None` for text.
    fn json_only(&mut self) -> Option<&mut Obj> {
        None
    }
    /// A `raw_*` number ocserv adds next to a formatted value in JSON only.
    fn raw(&mut self, name: &str, value: u64) {
        if let Some(o) = self.json_only() {
            o.int(name, value);
        }
    }
}

/// Text key/value block writer with ocserv's rules (empty values skipped).
struct Text<'a> {
    out: &'a mut String,
}

impl Fields for Text<'_> {
    fn single(&mut self, name: &str, value: &str) {
        if !value.is_empty() {
            let _ = writeln!(self.out, "\t{name}: {}", clean(value));
        }
    }

    fn int(&mut self, name: &str, value: u64) {
        let _ = writeln!(self.out, "\t{name}: {value}");
    }

    fn ex(&mut self, name: &str, value: &str, extra: &str) {
        if !value.is_empty() {
            let _ = writeln!(self.out, "\t{name}: {} ({})", clean(value), clean(extra));
        }
    }

    fn pair(&mut self, name1: &str, value1: &str, name2: &str, value2: &str) {
        if !value1.is_empty() {
            let _ = write!(self.out, "\t{name1}: {}", clean(value1));
        }
        if !value2.is_empty() {
            let _ = write!(self.out, "   {name2}: {}", clean(value2));
        }
        if !value1.is_empty() || !value2.is_empty() {
            self.out.push('\n');
        }
    }

    fn list(&mut self, name: &str, values: &[String]) {
        for (i, v) in values.iter().enumerate() {
            let _ = if i == 0 {
                writeln!(self.out, "\t{name}: {}", clean(v))
            } else {
                writeln!(self.out, "\t\t{}", clean(v))
            };
        }
    }
}

/// JSON object builder with ocserv's rules (empty strings skipped, lists
/// always present).
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Fields for Obj {
    fn single(&mut self, name: &str, value: &str) {
        if !value.is_empty() {
            self.0.insert(name.into(), Value::String(value.into()));
        }
    }

    fn int(&mut self, name: &str, value: u64) {
        self.0.insert(name.into(), Value::from(value));
    }

    fn ex(&mut self, name: &str, value: &str, extra: &str) {
        if !value.is_empty() {
            self.0.insert(name.into(), Value::String(value.into()));
            self.0
                .insert(format!("_{name}"), Value::String(extra.into()));
        }
    }

    fn pair(&mut self, name1: &str, value1: &str, name2: &str, value2: &str) {
        self.single(name1, value1);
        self.single(name2, value2);
    }

    fn list(&mut self, name: &str, values: &[String]) {
        self.0.insert(
            name.into(),
            Value::Array(values.iter().map(|v| Value::String(v.clone())).collect()),
        );
    }

    fn json_only(&mut self) -> Option<&mut Obj> {
        Some(self)
    }
}

impl Obj {
    fn value(self) -> Value {
        Value::Object(self.0)
    }
}

/// A JSON array with one object per item, each filled in by `fill`, in
/// occtl's layout (`[\n]` when there are none).
fn objects_json<T>(
    items: impl IntoIterator<Item = T>,
    mut fill: impl FnMut(&mut Obj, T),
) -> String {
    let arr = items
        .into_iter()
        .map(|item| {
            let mut o = Obj::default();
            fill(&mut o, item);
            o.value()
        })
        .collect();
    to_occtl_json(&Value::Array(arr))
}

// ---------------------------------------------------------------------------
// show users / show user / show id
// ---------------------------------------------------------------------------

/// The `show users` table (ocserv's `common_user_list`): a header line and
/// one row per tunnel; nothing at all when the list is empty.
pub fn users_table(users: &[UserInfo], opts: &RenderOptions) -> String {
    let mut out = String::new();
    if users.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:>8} {:>8} {:>8} {:>14} {:>14} {:>6} {:>7} {:>14} {:>9}",
        "id", "user", "vhost", "ip", "vpn-ip", "device", "since", "dtls-cipher", "status"
    );
    for u in users {
        let _ = writeln!(
            out,
            "{:>8} {:>8} {:>8} {:>14} {:>14} {:>6} {} {:>14} {:>9}",
            u.id,
            clean(or_none(&u.username)),
            clean(&u.vhost),
            clean(&u.remote_ip),
            clean(u.vpn_ip()),
            clean(&u.device),
            time_interval7(opts.now_unix, u.connected_at),
            clean(dtls_cipher_short(&u.dtls_cipher)),
            clean(or_unknown(&u.state)),
        );
    }
    out
}

fn average_speed(bytes: u64, since: u64, now: u64) -> String {
    let elapsed = now.saturating_sub(since);
    let speed = bytes.checked_div(elapsed).unwrap_or(0);
    bytes_to_human(speed, "/s")
}

/// `show user` fields from `ID` to the rate limits, both formats.
fn user_head(f: &mut impl Fields, u: &UserInfo) {
    f.int("ID", u.id);
    f.pair(
        "Username",
        or_none(&u.username),
        "Groupname",
        or_none(&u.groupname),
    );
    f.single("State", or_unknown(&u.state));
    f.single("vhost", &u.vhost);
    // One text line; in JSON two keys, the MTU as a string (as ocserv).
    match u.mtu {
        Some(mtu) => f.pair("Device", &u.device, "MTU", &mtu.to_string()),
        None => f.single("Device", &u.device),
    }
    f.pair("Remote IP", &u.remote_ip, "Location", "unknown");
    f.single("Local Device IP", &u.local_device_ip);
    let ip4 = u.ipv4.as_deref().unwrap_or_default();
    if !ip4.is_empty() {
        f.pair(
            "IPv4",
            ip4,
            "P-t-P IPv4",
            u.ptp_ipv4.as_deref().unwrap_or_default(),
        );
    }
    let ip6 = u.ipv6.as_deref().unwrap_or_default();
    if !ip6.is_empty() {
        f.pair(
            "IPv6",
            ip6,
            "P-t-P IPv6",
            u.ptp_ipv6.as_deref().unwrap_or_default(),
        );
    }
    f.single("User-Agent", &u.user_agent);
    limits(u, |n1, v1, n2, v2| f.pair(n1, v1, n2, v2));
}

/// `show user` fields from `DPD` to the compression methods, both formats.
fn user_connection(f: &mut impl Fields, u: &UserInfo, opts: &RenderOptions) {
    let now = opts.now_unix;
    f.pair(
        "DPD",
        &u.dpd.to_string(),
        "KeepAlive",
        &u.keepalive.to_string(),
    );
    f.single("Hostname", &u.hostname);
    f.ex(
        "Last connected at",
        &format_date_time(u.connected_at, opts.utc_offset_secs),
        &time_interval7(now, u.connected_at),
    );
    f.ex(
        "Session started at",
        &format_date_time(u.session_started_at, opts.utc_offset_secs),
        &time_interval7(now, u.session_started_at),
    );
    f.raw("raw_connected_at", u.connected_at);
    f.raw("raw_session_started_at", u.session_started_at);
    if let Some(o) = f.json_only() {
        o.single("Full session", &u.full_session);
    }
    f.single("Session", &u.session);
    f.single("TLS ciphersuite", &u.tls_ciphersuite);
    if has_dtls(&u.dtls_cipher) {
        f.single("DTLS cipher", &u.dtls_cipher);
    }
    f.pair(
        "CSTP compression",
        u.cstp_compression.as_deref().unwrap_or_default(),
        "DTLS compression",
        u.dtls_compression.as_deref().unwrap_or_default(),
    );
}

/// `show user` fields from `DNS` to `Restricted to routes`, both formats.
fn user_network(f: &mut impl Fields, u: &UserInfo) {
    f.list("DNS", &u.dns);
    f.list("NBNS", &u.nbns);
    f.list("Split-DNS-Domains", &u.split_dns);
    // An empty list prints no text line (and `[]` in JSON).
    if u.routes.is_empty() && u.default_route {
        f.single("Routes", "defaultroute");
    } else {
        f.list("Routes", &u.routes);
    }
    f.list("No-routes", &u.no_routes);
    f.list("iRoutes", &u.iroutes);
    f.single("Restricted to routes", bool_word(u.restricted_to_routes));
}

fn user_text(out: &mut String, u: &UserInfo, opts: &RenderOptions) {
    let now = opts.now_unix;
    let mut t = Text { out };
    user_head(&mut t, u);
    let _ = writeln!(
        t.out,
        "\tRX: {} ({})   TX: {} ({})",
        u.rx_bytes,
        bytes_to_human(u.rx_bytes, ""),
        u.tx_bytes,
        bytes_to_human(u.tx_bytes, "")
    );
    let _ = writeln!(
        t.out,
        "\tAverage bandwidth RX: {}  TX: {}",
        average_speed(u.rx_bytes, u.connected_at, now),
        average_speed(u.tx_bytes, u.connected_at, now)
    );
    user_connection(&mut t, u, opts);
    t.out.push('\n');
    user_network(&mut t, u);
    // ocserv prints this line's newline even when there are no entries.
    if !u.restricted_to_ports.is_empty() {
        let ports: Vec<Cow<'_, str>> = u.restricted_to_ports.iter().map(|p| clean(p)).collect();
        let _ = write!(t.out, "\tRestricted to ports: {}", ports.join(", "));
    }
    t.out.push('\n');
}

/// Calls `f(name1, value1, name2, value2)` for the rate-limit line ocserv
/// prints when a limit is set.
fn limits(u: &UserInfo, mut f: impl FnMut(&str, &str, &str, &str)) {
    let rx = bytes_to_human(u.rx_limit_per_sec, "/s");
    let tx = bytes_to_human(u.tx_limit_per_sec, "/s");
    match (u.rx_limit_per_sec > 0, u.tx_limit_per_sec > 0) {
        (true, true) => f("Limit RX", &rx, "Limit TX", &tx),
        (false, true) => f("Limit TX", &tx, "", ""),
        (true, false) => f("Limit RX", &rx, "", ""),
        (false, false) => {}
    }
}

/// The `show user` / `show id` text: one block per tunnel separated by an
/// empty line, or `user or ID not found` when the list is empty.
pub fn user_details_text(users: &[UserInfo], opts: &RenderOptions) -> String {
    let mut out = String::new();
    if users.is_empty() {
        out.push_str("user or ID not found\n");
    }
    for (i, u) in users.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        user_text(&mut out, u, opts);
    }
    out
}

fn user_json(o: &mut Obj, u: &UserInfo, opts: &RenderOptions) {
    let now = opts.now_unix;
    user_head(o, u);
    // ocserv prints the byte counters as strings.
    o.single("RX", &u.rx_bytes.to_string());
    o.single("TX", &u.tx_bytes.to_string());
    o.single("_RX", &bytes_to_human(u.rx_bytes, ""));
    o.single("_TX", &bytes_to_human(u.tx_bytes, ""));
    o.single(
        "Average RX",
        &average_speed(u.rx_bytes, u.connected_at, now),
    );
    o.single(
        "Average TX",
        &average_speed(u.tx_bytes, u.connected_at, now),
    );
    user_connection(o, u, opts);
    user_network(o, u);
    o.list("Restricted to ports", &u.restricted_to_ports);
}

/// JSON for `show users`, `show user`, `show id` (ocserv's
/// `common_info_cmd`): an array of user objects, `[]` when empty.
pub fn users_json(users: &[UserInfo], opts: &RenderOptions) -> String {
    objects_json(users, |o, u| user_json(o, u, opts))
}

// ---------------------------------------------------------------------------
// show status
// ---------------------------------------------------------------------------

const STATUS_NOTE: &str = "Note: the printed statistics are not real-time; session time\n\
                           as well as RX and TX data are updated on user disconnect\n";

/// `show status` fields of the "General info" part, both formats.
fn status_general(f: &mut impl Fields, s: &ServerStatus, opts: &RenderOptions) {
    let now = opts.now_unix;
    f.single("Status", "online");
    f.int("Server PID", u64::from(s.server_pid));
    f.int("Sec-mod PID", u64::from(s.sec_mod_pid));
    f.int("Sec-mod instance count", u64::from(s.sec_mod_instances));
    f.ex(
        "Up since",
        &format_date_time(s.up_since, opts.utc_offset_secs),
        &time_interval7(now, s.up_since),
    );
    f.raw("raw_up_since", s.up_since);
    f.raw("uptime", now.saturating_sub(s.up_since));
    f.int("Active sessions", s.active_sessions);
    f.int("Total sessions", s.total_sessions);
    f.int("Total authentication failures", s.total_auth_failures);
    f.int("IPs in ban list", s.ips_in_ban_list);
    if opts.debug {
        f.int("Sec-mod client entries", s.secmod_client_entries);
        f.int("TLS DB entries", s.tls_db_entries);
    }
    if let Some(median) = s.latency_median_us {
        let stdev = s.latency_stdev_us.unwrap_or(0);
        f.single("Median latency", &latency_to_human(median));
        f.raw("raw_median_latency", median);
        f.single("STDEV latency", &latency_to_human(stdev));
        f.raw("raw_stdev_latency", stdev);
    }
}

/// `show status` fields of the "Current stats period" part, both formats.
fn status_period(f: &mut impl Fields, s: &ServerStatus, opts: &RenderOptions) {
    if s.last_stats_reset > 0 {
        f.ex(
            "Last stats reset",
            &format_date_time(s.last_stats_reset, opts.utc_offset_secs),
            &time_interval7(opts.now_unix, s.last_stats_reset),
        );
        f.raw("raw_last_stats_reset", s.last_stats_reset);
    }
    f.int("Sessions handled", s.sessions_handled);
    f.int("Timed out sessions", s.timed_out_sessions);
    f.int("Timed out (idle) sessions", s.timed_out_idle_sessions);
    f.int(
        "Closed due to error sessions",
        s.closed_due_to_error_sessions,
    );
    f.int("Authentication failures", s.auth_failures);
    let times = [
        ("Average auth time", "raw_avg_auth_time", s.avg_auth_time),
        ("Max auth time", "raw_max_auth_time", s.max_auth_time),
        (
            "Average session time",
            "raw_avg_session_time",
            s.avg_session_time,
        ),
        (
            "Max session time",
            "raw_max_session_time",
            s.max_session_time,
        ),
    ];
    for (name, raw, secs) in times {
        f.single(name, &time_interval7(secs, 0));
        f.raw(raw, secs);
    }
    if let Some(mtu) = s.min_mtu.filter(|&m| m > 0) {
        f.int("Min MTU", u64::from(mtu));
    }
    if let Some(mtu) = s.max_mtu.filter(|&m| m > 0) {
        f.int("Max MTU", u64::from(mtu));
    }
    f.single("RX", &bytes_to_human(s.rx_bytes, ""));
    f.raw("raw_rx", s.rx_bytes);
    f.single("TX", &bytes_to_human(s.tx_bytes, ""));
    f.raw("raw_tx", s.tx_bytes);
}

/// `show status` as text.
pub fn status_text(s: &ServerStatus, opts: &RenderOptions) -> String {
    let mut out = String::from(STATUS_NOTE);
    out.push_str("\nGeneral info:\n");
    status_general(&mut Text { out: &mut out }, s, opts);
    out.push_str("\nCurrent stats period:\n");
    status_period(&mut Text { out: &mut out }, s, opts);
    out
}

/// `show status` as JSON (one object).
pub fn status_json(s: &ServerStatus, opts: &RenderOptions) -> String {
    let mut o = Obj::default();
    status_general(&mut o, s, opts);
    status_period(&mut o, s, opts);
    to_occtl_json(&o.value())
}

/// What ocserv's `show status` prints when the server cannot be reached:
/// the note and `Status: offline` as text, `{"Status": "offline"}` as JSON.
pub fn status_offline(format: Format) -> String {
    match format {
        Format::Text => format!("{STATUS_NOTE}\tStatus: offline\n"),
        Format::Json => {
            let mut o = Obj::default();
            o.single("Status", "offline");
            to_occtl_json(&o.value())
        }
    }
}

// ---------------------------------------------------------------------------
// show sessions / show session
// ---------------------------------------------------------------------------

/// The `show sessions all|valid` table (ocserv's `session_list`). With
/// `valid_only` only `authenticated` sessions are listed. Empty output for
/// an empty list.
pub fn sessions_table(sessions: &[SessionInfo], valid_only: bool, opts: &RenderOptions) -> String {
    let mut out = String::new();
    let mut header = false;
    for s in sessions.iter().filter(|s| !valid_only || s.is_valid()) {
        if !header {
            let _ = writeln!(
                out,
                "{:>6} {:>8} {:>8} {:>14} {:>24} {:>8} {:>8}",
                "session", "user", "vhost", "ip", "user agent", "created", "status"
            );
            header = true;
        }
        let created = if s.created > 0 {
            time_interval7(opts.now_unix, s.created)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{} {:>8} {:>8} {:>14} {} {:>8} {:>8}",
            clean(trunc(&s.session, 6)),
            clean(or_none(&s.username)),
            clean(&s.vhost),
            clean(&s.remote_ip),
            clean(trunc(&s.user_agent, 24)),
            created,
            clean(or_unknown(&s.state)),
        );
    }
    out
}

/// `show session` fields from `Created` to `Remote IP`, both formats.
fn session_fields(f: &mut impl Fields, s: &SessionInfo, opts: &RenderOptions) {
    f.pair(
        "Created",
        &date_or_empty(s.created, opts),
        "Expires",
        &date_or_empty(s.expires, opts),
    );
    f.single("State", or_unknown(&s.state));
    f.pair(
        "Username",
        or_none(&s.username),
        "Groupname",
        or_none(&s.groupname),
    );
    f.pair("vhost", &s.vhost, "User-Agent", &s.user_agent);
    f.pair("Remote IP", &s.remote_ip, "Location", "unknown");
}

fn session_text(out: &mut String, s: &SessionInfo, opts: &RenderOptions) {
    let mut t = Text { out };
    t.single("Session", &s.session);
    t.single("Full session ID", &s.full_session);
    session_fields(&mut t, s, opts);
    t.pair(
        "In use",
        bool_word(s.in_use > 0),
        "Activated",
        bool_word(s.session_is_open),
    );
    t.single("Certificate auth", bool_word(s.tls_auth_ok));
}

fn date_or_empty(t: u64, opts: &RenderOptions) -> String {
    if t > 0 {
        format_date_time(t, opts.utc_offset_secs)
    } else {
        String::new()
    }
}

/// The `show session SID` text: one block per session whose short id
/// starts with `query` (all sessions if `query` is `None`), separated by an
/// empty line; `Session ID not found or expired` if none.
pub fn session_details_text(
    sessions: &[SessionInfo],
    query: Option<&str>,
    opts: &RenderOptions,
) -> String {
    let mut out = String::new();
    let mut n = 0;
    for s in sessions
        .iter()
        .filter(|s| query.is_none_or(|q| s.matches(q)))
    {
        if n > 0 {
            out.push('\n');
        }
        session_text(&mut out, s, opts);
        n += 1;
    }
    if n == 0 {
        out.push_str("Session ID not found or expired\n");
    }
    out
}

fn session_json(o: &mut Obj, s: &SessionInfo, opts: &RenderOptions) {
    o.single("Session", &s.session);
    o.single("Full session", &s.full_session);
    session_fields(o, s, opts);
    o.int("session_is_open", u64::from(s.session_is_open));
    o.int("tls_auth_ok", u64::from(s.tls_auth_ok));
    o.int("in_use", u64::from(s.in_use));
}

/// JSON for `show sessions` and `show session` (ocserv's
/// `session_info_cmd`): an array of session objects. `valid_only` keeps
/// `authenticated` sessions, `query` keeps sessions whose short id starts
/// with it.
pub fn sessions_json(
    sessions: &[SessionInfo],
    valid_only: bool,
    query: Option<&str>,
    opts: &RenderOptions,
) -> String {
    let listed = sessions
        .iter()
        .filter(|s| !valid_only || s.is_valid())
        .filter(|s| query.is_none_or(|q| s.matches(q)));
    objects_json(listed, |o, s| session_json(o, s, opts))
}

// ---------------------------------------------------------------------------
// show ip bans / show ip ban points
// ---------------------------------------------------------------------------

fn active_bans<'a>(bans: &'a [BanInfo], now: u64) -> impl Iterator<Item = (&'a BanInfo, u64)> + 'a {
    bans.iter()
        .filter_map(move |b| b.banned_until.filter(|&t| t > now).map(|t| (b, t)))
}

/// `show ip bans` as text: addresses with an unexpired ban, with the time
/// the ban ends. Empty output when none.
pub fn bans_text(bans: &[BanInfo], opts: &RenderOptions) -> String {
    let mut out = String::new();
    for (i, (b, until)) in active_bans(bans, opts.now_unix).enumerate() {
        if i == 0 {
            let _ = writeln!(out, "{:>15} {:>10} {:>30}", "IP", "score", "expires");
        }
        let _ = writeln!(
            out,
            "{:>15} {:>10} {:>30} ({})",
            clean(&b.ip),
            b.score,
            format_date_time(until, opts.utc_offset_secs),
            time_interval7(until, opts.now_unix)
        );
    }
    out
}

/// `show ip bans` as JSON: `[{"IP", "Since", "_Since", "Score"}]`. As in
/// ocserv, `Since` holds the time the ban *ends* and `_Since` the time left.
pub fn bans_json(bans: &[BanInfo], opts: &RenderOptions) -> String {
    objects_json(active_bans(bans, opts.now_unix), |o, (b, until)| {
        o.single("IP", &b.ip);
        o.ex(
            "Since",
            &format_date_time(until, opts.utc_offset_secs),
            &time_interval7(until, opts.now_unix),
        );
        o.int("Score", u64::from(b.score));
    })
}

/// `show ip ban points` as text: every known address with its score.
pub fn ban_points_text(bans: &[BanInfo]) -> String {
    let mut out = String::new();
    for (i, b) in bans.iter().enumerate() {
        if i == 0 {
            let _ = writeln!(out, "{:>15} {:>10}", "IP", "score");
        }
        let _ = writeln!(out, "{:>15} {:>10}", clean(&b.ip), b.score);
    }
    out
}

/// `show ip ban points` as JSON: `[{"IP", "Score"}]`.
pub fn ban_points_json(bans: &[BanInfo]) -> String {
    objects_json(bans, |o, b| {
        o.single("IP", &b.ip);
        o.int("Score", u64::from(b.score));
    })
}

// ---------------------------------------------------------------------------
// show iroutes
// ---------------------------------------------------------------------------

/// `show iroutes` as text: a header (when the list is not empty) and one
/// row per route.
pub fn iroutes_text(entries: &[IrouteInfo]) -> String {
    let mut out = String::new();
    if entries.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:>6} {:>8} {:>8} {:>6} {:>16} {:>28}",
        "id", "user", "vhost", "device", "vpn-ip", "iroute"
    );
    for e in entries {
        for r in &e.iroutes {
            let _ = writeln!(
                out,
                "{:>6} {:>8} {:>8} {:>6} {:>16} {:>28}",
                e.id,
                clean(or_none(&e.user)),
                clean(&e.vhost),
                clean(&e.device),
                clean(&e.ip),
                clean(r)
            );
        }
    }
    out
}

/// `show iroutes` as JSON: `[{"ID", "Username", "vhost", "Device", "IP",
/// "iRoutes": [...]}]`.
pub fn iroutes_json(entries: &[IrouteInfo]) -> String {
    objects_json(entries, |o, e| {
        o.int("ID", e.id);
        o.single("Username", or_none(&e.user));
        o.single("vhost", &e.vhost);
        o.single("Device", &e.device);
        o.single("IP", &e.ip);
        o.list("iRoutes", &e.iroutes);
    })
}

// ---------------------------------------------------------------------------
// show events
// ---------------------------------------------------------------------------

/// One `show events` line as text.
pub fn event_text(event: &Event, opts: &RenderOptions) -> String {
    let u = event.user();
    match event {
        Event::Connect { .. } => format!(
            "{}: connected user '{}' ({}) from {} with IP {}\n",
            clean(&u.vhost),
            clean(&u.username),
            u.id,
            clean(&u.remote_ip),
            clean(u.vpn_ip())
        ),
        Event::Disconnect { reason, .. } => format!(
            "{}: disconnect user '{}' ({}) from {} with IP {} (reason: {}, time: {})\n",
            clean(&u.vhost),
            clean(&u.username),
            u.id,
            clean(&u.remote_ip),
            clean(u.vpn_ip()),
            clean(if reason.is_empty() { "unknown" } else { reason }),
            time_interval7(opts.now_unix, u.connected_at)
        ),
    }
}

/// One `show events` entry as JSON: an array holding the user's full record
/// (as ocserv prints it) plus `"Event"` and, for disconnects,
/// `"Disconnect reason"`.
pub fn event_json(event: &Event, opts: &RenderOptions) -> String {
    let mut o = Obj::default();
    user_json(&mut o, event.user(), opts);
    match event {
        Event::Connect { .. } => o.single("Event", "connect"),
        Event::Disconnect { reason, .. } => {
            o.single("Event", "disconnect");
            o.single(
                "Disconnect reason",
                if reason.is_empty() { "unknown" } else { reason },
            );
        }
    }
    to_occtl_json(&Value::Array(vec![o.value()]))
}

// ---------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------

/// The line ocserv's occtl prints for an action request, on success (`ok`)
/// or failure; `None` for requests that are not actions.
pub fn action_message(request: &Request, ok: bool) -> Option<String> {
    let m = match (request, ok) {
        (Request::DisconnectUser(n), true) => format!("user '{}' was disconnected", clean(n)),
        (Request::DisconnectUser(n), false) => format!("could not disconnect user '{}'", clean(n)),
        (Request::DisconnectId(id), true) => format!("connection ID '{id}' was disconnected"),
        (Request::DisconnectId(id), false) => format!("could not disconnect ID '{id}'"),
        (Request::TerminateUser(n), true) => {
            format!("user '{}' was terminated (session invalidated)", clean(n))
        }
        (Request::TerminateUser(n), false) => format!("could not terminate user '{}'", clean(n)),
        (Request::TerminateId(id), true) => {
            format!("connection ID '{id}' was terminated (session invalidated)")
        }
        (Request::TerminateId(id), false) => format!("could not terminate ID '{id}'"),
        (Request::TerminateSession(s), true) => {
            format!("session '{}' was terminated", clean(trunc(s, 6)))
        }
        (Request::TerminateSession(s), false) => {
            format!("could not terminate session '{}'", clean(trunc(s, 6)))
        }
        (Request::UnbanIp(ip), true) => format!("IP '{}' was unbanned", clean(ip)),
        (Request::UnbanIp(ip), false) => format!("could not unban IP '{}'", clean(ip)),
        (Request::Reload, true) => "Server scheduled to reload".to_string(),
        (Request::Reload, false) => "Error scheduling reload".to_string(),
        (Request::StopNow, true) => "Server scheduled to stop".to_string(),
        (Request::StopNow, false) => "Error scheduling server stop".to_string(),
        _ => return None,
    };
    Some(m + "\n")
}

// ---------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------

/// Renders `response` as the answer to `request`, like ocserv's occtl.
///
/// For `show events`, call this for the first response (the user list,
/// printed followed by [`EVENTS_HINT`]) and again for every
/// [`Response::Event`] line.
///
/// Action requests print ocserv's plain-text confirmation in both formats
/// (ocserv does the same; scripts use the exit status). A
/// [`Response::Error`] is printed to stderr with exit status 1 (for
/// actions after ocserv's "could not …" line on stdout; for `show status`
/// after the offline status). A response of the wrong kind is reported on
/// stderr with exit status 1.
pub fn render(request: &Request, response: &Response, opts: &RenderOptions) -> Output {
    let json = opts.is_json();
    let err_line = |m: &str| {
        if m.is_empty() {
            String::new()
        } else {
            format!("{}\n", clean(m))
        }
    };

    if request.is_action() {
        return match response {
            Response::Done { .. } => Output::ok(action_message(request, true).unwrap_or_default()),
            Response::Error { message } => Output::fail(
                action_message(request, false).unwrap_or_default(),
                err_line(message),
            ),
            other => unexpected(request, other),
        };
    }

    match (request, response) {
        (Request::ShowStatus, Response::Error { message }) => {
            Output::fail(status_offline(opts.format), err_line(message))
        }
        (_, Response::Error { message }) => Output::fail(
            String::new(),
            if message.is_empty() {
                ERR_SERVER_UNREACHABLE.to_string()
            } else {
                err_line(message)
            },
        ),
        (Request::ShowStatus, Response::Status(s)) => Output::ok(if json {
            status_json(s, opts)
        } else {
            status_text(s, opts)
        }),
        (Request::ShowUsers, Response::Users(users)) => Output::ok(if json {
            users_json(users, opts)
        } else {
            users_table(users, opts)
        }),
        (Request::ShowUser(_) | Request::ShowId(_), Response::Users(users)) => Output {
            stdout: if json {
                users_json(users, opts)
            } else {
                user_details_text(users, opts)
            },
            stderr: String::new(),
            exit_code: if users.is_empty() { 2 } else { 0 },
        },
        (Request::ShowSessions { valid_only }, Response::Sessions(sessions)) => {
            Output::ok(if json {
                sessions_json(sessions, *valid_only, None, opts)
            } else {
                sessions_table(sessions, *valid_only, opts)
            })
        }
        (Request::ShowSession(query), Response::Sessions(sessions)) => Output::ok(if json {
            sessions_json(sessions, false, Some(query), opts)
        } else {
            session_details_text(sessions, Some(query), opts)
        }),
        (Request::ShowIpBans, Response::Bans(bans)) => Output::ok(if json {
            bans_json(bans, opts)
        } else {
            bans_text(bans, opts)
        }),
        (Request::ShowIpBanPoints, Response::Bans(bans)) => Output::ok(if json {
            ban_points_json(bans)
        } else {
            ban_points_text(bans)
        }),
        (Request::ShowIroutes, Response::Iroutes(entries)) => Output::ok(if json {
            iroutes_json(entries)
        } else {
            iroutes_text(entries)
        }),
        (Request::ShowEvents, Response::Users(users)) => {
            if json {
                Output {
                    stdout: users_json(users, opts),
                    stderr: EVENTS_HINT.trim_start_matches('\n').to_string(),
                    exit_code: 0,
                }
            } else {
                Output::ok(users_table(users, opts) + EVENTS_HINT)
            }
        }
        (Request::ShowEvents, Response::Event(event)) => Output::ok(if json {
            event_json(event, opts)
        } else {
            event_text(event, opts)
        }),
        (request, other) => unexpected(request, other),
    }
}

fn unexpected(request: &Request, response: &Response) -> Output {
    Output::fail(
        String::new(),
        format!(
            "unexpected '{}' response from the server to '{}'\n",
            response.kind(),
            clean(&request.command_line())
        ),
    )
}

/// What occtl prints when the server could not be reached at all (connect
/// or I/O failure), like ocserv: the offline status for `show status`,
/// ocserv's "Error scheduling …" lines for `reload` / `stop now`, and
/// [`ERR_SERVER_UNREACHABLE`] otherwise. Exit status 1.
pub fn render_unreachable(request: &Request, opts: &RenderOptions) -> Output {
    match request {
        Request::ShowStatus => Output::fail(status_offline(opts.format), String::new()),
        Request::Reload | Request::StopNow => Output::fail(
            action_message(request, false).unwrap_or_default(),
            String::new(),
        ),
        _ => Output::fail(String::new(), ERR_SERVER_UNREACHABLE.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
