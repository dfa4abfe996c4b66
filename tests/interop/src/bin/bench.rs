//! Benchmark suite: ferroconnect's client and server measured against Debian's openconnect
//! 9.01 and ocserv 1.1.6 in the same run, in network namespaces, with ratios ours/theirs.
//!
//! `bench [--quick] [--out DIR]` runs everything (as root) and writes `results.md` and
//! `results.json` to DIR; `bench/run.sh` builds the release binaries and runs it.
//! `bench loadgen ...` is the load client of the server-scale test: the suite starts it
//! inside the client namespace, where it logs N sessions in and holds their CSTP tunnels.
//!
//! A failed measurement becomes "error: <reason>" in the results, never the end of the run;
//! every subprocess has a time limit; the namespaces go with the [`Lab`]s, also on error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferroconnect_interop::{poll_until, Lab, Pki};
use oc_proto::anyconnect::auth::{AuthExchange, AuthSettings, AuthStep, ClientIdentity, FieldKind};
use oc_proto::anyconnect::connect::ConnectRequest;
use oc_proto::anyconnect::frame::{emit_cstp, PacketType, CSTP_HEADER_LEN};
use oc_proto::compress;
use oc_proto::http::{Limits, Request, Response, ResponseReader};
use oc_proto::url::ServerUrl;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_openssl::SslStream;

const USAGE: &str = "usage: bench [--quick] [--out DIR] [--only PAIR,...] [--profile]
                                        (as root; bench/run.sh builds and runs it)
       --only      run just these pairs (theirs, ours, our_client_vs_ocserv,
                   openconnect_vs_our_server), no scale test
       --profile   record `perf record` of the client and the server during each
                   pair's DTLS TCP upload and download into OUT/profile/
       --scale N,...
                   run just the server-scale test, with these session counts
       bench loadgen --server IP --user U --pass P --count N --concurrency C \\
                     [--sources IP,IP,...] [--timeout-secs S]   (internal: the scale test's load client)";

const USER: &str = "bench";
const PASS: &str = "secret";
const USER_AGENT: &str = "Open AnyConnect VPN Agent v9.01";
const IPERF_PORT: &str = "5201";
/// Offered rate of the UDP test.
const UDP_RATE: &str = "300M";
/// Datagram size of the UDP test: the same for every pair, whatever tunnel MTU it got.
const UDP_LEN: &str = "1200";
/// Extra client addresses the load client spreads its connections over (our server admits
/// 32 logins in progress per address; a fleet of real clients has many addresses).
const LOAD_SOURCES: u8 = 8;
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Settings and the two sides
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Settings {
    quick: bool,
    reps: usize,
    iperf_secs: u64,
    connects: usize,
    scale: Vec<usize>,
    concurrency: usize,
    out: PathBuf,
    /// `--only`: the pairs to run (all when empty); the scale test runs only with all.
    only: Vec<String>,
    /// `--profile`: perf recordings of the DTLS TCP runs.
    profile: bool,
    /// `--scale`: the scale test alone, no pairs.
    scale_only: bool,
}

impl Settings {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut quick = false;
        let mut out = None;
        let mut only = Vec::new();
        let mut profile = false;
        let mut scale_only = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--profile" => profile = true,
                "--only" => {
                    let list = it.next().ok_or("--only needs a list of pairs")?;
                    for key in list.split(',') {
                        if !PAIRS.iter().any(|(k, ..)| *k == key) {
                            return Err(format!("unknown pair {key:?} in --only"));
                        }
                        only.push(key.to_string());
                    }
                }
                "--scale" => {
                    let list = it.next().ok_or("--scale needs a list of session counts")?;
                    let counts = list
                        .split(',')
                        .map(|n| n.parse::<usize>().ok().filter(|n| *n > 0))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| format!("--scale {list:?}: not a list of counts"))?;
                    scale_only = Some(counts);
                }
                "--out" => {
                    out = Some(PathBuf::from(it.next().ok_or("--out needs a directory")?));
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let out = out.unwrap_or_else(|| repo_root().join("target/bench"));
        let mut settings = if quick {
            Self {
                quick,
                reps: 1,
                iperf_secs: 2,
                connects: 3,
                scale: if only.is_empty() { vec![100] } else { vec![] },
                concurrency: 50,
                out,
                only,
                profile,
                scale_only: false,
            }
        } else {
            Self {
                quick,
                reps: 3,
                iperf_secs: 4,
                connects: 5,
                scale: if only.is_empty() {
                    vec![100, 1000]
                } else {
                    vec![]
                },
                concurrency: 50,
                out,
                only,
                profile,
                scale_only: false,
            }
        };
        if let Some(counts) = scale_only {
            settings.scale = counts;
            settings.scale_only = true;
        }
        Ok(settings)
    }

    fn describe(&self) -> String {
        let pairs = if self.scale_only {
            "; no pairs".to_string()
        } else if self.only.is_empty() {
            String::new()
        } else {
            format!("; only {}", self.only.join(", "))
        };
        let scale = if self.scale.is_empty() {
            "no scale test".to_string()
        } else {
            format!(
                "scale N = {}, {} logins at a time",
                self.scale
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                self.concurrency
            )
        };
        format!(
            "{} ({} repetition{}, iperf3 -t {}, {} connects per pair, {scale}{pairs})",
            if self.quick { "quick" } else { "full" },
            self.reps,
            if self.reps == 1 { "" } else { "s" },
            self.iperf_secs,
            self.connects,
        )
    }
}

/// Everything the measurements need besides the lab.
#[derive(Debug)]
struct Ctx {
    s: Settings,
    /// Our release binaries.
    bin_dir: PathBuf,
    /// This program, for `loadgen`.
    exe: PathBuf,
    /// Clock ticks per second of /proc/PID/stat.
    clk_tck: f64,
    /// Where lab names are recorded for bench/run.sh's clean-up after a crash.
    labs_file: Option<PathBuf>,
}

/// Debian's programs ("theirs") or ferroconnect's ("ours").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Side {
    Theirs,
    Ours,
}

impl Side {
    fn tag(self) -> &'static str {
        match self {
            Self::Theirs => "theirs",
            Self::Ours => "ours",
        }
    }

    fn server_name(self) -> &'static str {
        match self {
            Self::Theirs => "Debian ocserv",
            Self::Ours => "our ocserv",
        }
    }

    fn client_bin(self, ctx: &Ctx) -> PathBuf {
        match self {
            Self::Theirs => PathBuf::from("/usr/sbin/openconnect"),
            Self::Ours => ctx.bin_dir.join("openconnect"),
        }
    }

    fn server_bin(self, ctx: &Ctx) -> PathBuf {
        match self {
            Self::Theirs => PathBuf::from("ocserv"),
            Self::Ours => ctx.bin_dir.join("ocserv"),
        }
    }

    fn passwd_tool(self, ctx: &Ctx) -> PathBuf {
        match self {
            Self::Theirs => PathBuf::from("ocpasswd"),
            Self::Ours => ctx.bin_dir.join("ocpasswd"),
        }
    }

    /// What the server logs once it accepts connections.
    fn ready_text(self) -> &'static str {
        match self {
            Self::Theirs => "initialized ocserv",
            Self::Ours => "listening on TCP port",
        }
    }
}

/// The four client/server pairs: key, client, server, column title.
const PAIRS: [(&str, Side, Side, &str); 4] = [
    (
        "theirs",
        Side::Theirs,
        Side::Theirs,
        "theirs: openconnect → ocserv",
    ),
    ("ours", Side::Ours, Side::Ours, "ours: ours → ours"),
    (
        "our_client_vs_ocserv",
        Side::Ours,
        Side::Theirs,
        "our client → Debian ocserv",
    ),
    (
        "openconnect_vs_our_server",
        Side::Theirs,
        Side::Ours,
        "Debian openconnect → our server",
    ),
];

fn pair_key(client: Side, server: Side) -> &'static str {
    PAIRS
        .iter()
        .find(|(_, c, s, _)| *c == client && *s == server)
        .map(|(k, ..)| *k)
        .unwrap_or("?")
}

/// Per-pair metrics: key, label, decimals.
const METRICS: [(&str, &str, usize); 13] = [
    ("tun_mtu", "tunnel MTU (client tun device)", 0),
    ("tcp_up_dtls", "TCP up, DTLS (Mbit/s)", 0),
    ("tcp_down_dtls", "TCP down (-R), DTLS (Mbit/s)", 0),
    ("tcp_up_tls", "TCP up, TLS only --no-dtls (Mbit/s)", 0),
    ("tcp_down_tls", "TCP down (-R), TLS only (Mbit/s)", 0),
    ("udp_rx", "UDP -b 300M, received (Mbit/s)", 0),
    ("udp_loss", "UDP -b 300M, loss (%)", 2),
    ("ping_avg", "ping avg, DTLS (ms)", 3),
    ("ping_mdev", "ping mdev, DTLS (ms)", 3),
    ("connect", "connect: launch → first ping (ms)", 0),
    ("cpu_total", "CPU s/GB, client+server (TCP up, DTLS)", 2),
    ("cpu_client", "CPU s/GB, client only", 2),
    ("cpu_server", "CPU s/GB, server only", 2),
];

const DTLS_METRICS: [&str; 9] = [
    "tcp_up_dtls",
    "tcp_down_dtls",
    "udp_rx",
    "udp_loss",
    "ping_avg",
    "ping_mdev",
    "cpu_total",
    "cpu_client",
    "cpu_server",
];

// ---------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------

/// Samples of one quantity, and the reasons of the attempts that failed.
#[derive(Debug, Default, Clone)]
struct Metric {
    samples: Vec<f64>,
    errors: Vec<String>,
}

impl Metric {
    fn record(&mut self, r: Result<f64, String>) {
        match r {
            Ok(v) => self.samples.push(v),
            Err(e) => self.errors.push(e),
        }
    }

    fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.errors.is_empty()
    }

    fn median(&self) -> Option<f64> {
        let mut v = self.samples.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => v.get(n / 2).copied(),
            _ => Some((v.get(n / 2 - 1)? + v.get(n / 2)?) / 2.0),
        }
    }

    fn min(&self) -> Option<f64> {
        self.samples.iter().copied().min_by(f64::total_cmp)
    }

    fn max(&self) -> Option<f64> {
        self.samples.iter().copied().max_by(f64::total_cmp)
    }

    fn cell(&self, decimals: usize) -> String {
        let Some(med) = self.median() else {
            return match self.errors.first() {
                Some(e) => format!("error: {}", md_safe(e)),
                None => "n/a".to_string(),
            };
        };
        let mut s = num(med, decimals);
        if self.samples.len() > 1 {
            let (lo, hi) = (self.min().unwrap_or(med), self.max().unwrap_or(med));
            let _ = write!(s, " ({}–{})", num(lo, decimals), num(hi, decimals));
        }
        if !self.errors.is_empty() {
            let _ = write!(s, " [{} failed]", self.errors.len());
        }
        s
    }

    fn to_json(&self) -> Value {
        json!({
            "samples": self.samples,
            "median": self.median(),
            "min": self.min(),
            "max": self.max(),
            "errors": self.errors,
        })
    }
}

#[derive(Debug, Default)]
struct PairResult {
    metrics: BTreeMap<&'static str, Metric>,
    notes: Vec<String>,
}

impl PairResult {
    fn record(&mut self, key: &'static str, r: Result<f64, String>) {
        self.metrics.entry(key).or_default().record(r);
    }

    fn fail(&mut self, keys: &[&'static str], e: &str) {
        for k in keys {
            self.record(k, Err(e.to_string()));
        }
    }

    fn median(&self, key: &str) -> Option<f64> {
        self.metrics.get(key).and_then(Metric::median)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Mem {
    rss_kib: u64,
    pss_kib: u64,
    procs: usize,
}

#[derive(Debug, Clone)]
struct ScaleRow {
    server: Side,
    n: usize,
    ok: usize,
    failed: usize,
    secs: f64,
    first_failure: String,
    mem0: Option<Mem>,
    mem_n: Option<Mem>,
    /// Sessions the server ended while they were held.
    dropped: Option<usize>,
    error: Option<String>,
}

impl ScaleRow {
    fn new(server: Side, n: usize) -> Self {
        Self {
            server,
            n,
            ok: 0,
            failed: 0,
            secs: 0.0,
            first_failure: String::new(),
            mem0: None,
            mem_n: None,
            dropped: None,
            error: None,
        }
    }

    fn rate(&self) -> Option<f64> {
        (self.ok > 0 && self.secs > 0.0).then(|| self.ok as f64 / self.secs)
    }

    fn per_session(&self, field: fn(&Mem) -> u64) -> Option<f64> {
        let (m0, m1) = (self.mem0?, self.mem_n?);
        (self.ok > 0).then(|| (field(&m1) as f64 - field(&m0) as f64) / self.ok as f64)
    }
}

#[derive(Debug, Default)]
struct Report {
    raw_veth: Metric,
    pairs: BTreeMap<&'static str, PairResult>,
    scale: Vec<ScaleRow>,
    notes: Vec<String>,
}

impl Report {
    /// A whole server's lab failed: what it should have measured becomes the error.
    fn lab_failed(&mut self, s: &Settings, server: Side, e: &str) {
        self.notes
            .push(format!("{} lab failed: {}", server.server_name(), e));
        for (key, _, srv, _) in PAIRS {
            if srv != server {
                continue;
            }
            let pair = self.pairs.entry(key).or_default();
            for (m, ..) in METRICS {
                let metric = pair.metrics.entry(m).or_default();
                if metric.is_empty() {
                    metric.errors.push(e.to_string());
                }
            }
        }
        for &n in &s.scale {
            if !self.scale.iter().any(|r| r.server == server && r.n == n) {
                let mut row = ScaleRow::new(server, n);
                row.error = Some(e.to_string());
                self.scale.push(row);
            }
        }
        if server == Side::Theirs && self.raw_veth.is_empty() {
            self.raw_veth.errors.push(e.to_string());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Processes with time limits
// ---------------------------------------------------------------------------------------

/// A child in its own process group; dropping it kills the group.
#[derive(Debug)]
struct Proc {
    child: Child,
}

impl Proc {
    fn spawn(cmd: &mut Command, what: &str) -> Result<Self, String> {
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {what}: {e}"))?;
        Ok(Self { child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn kill_group(&self) {
        signal(&format!("-{}", self.pid()), "KILL");
    }

    /// Sends `sig` to the process and waits up to `grace` for it to exit, then kills its
    /// group. True when it exited by itself.
    fn stop(&mut self, sig: &str, grace: Duration) -> bool {
        if self.alive() {
            signal(&self.pid().to_string(), sig);
        }
        let child = &mut self.child;
        let graceful = poll_until(grace, Duration::from_millis(20), || {
            child.try_wait().ok().flatten()
        })
        .is_some();
        self.kill_group();
        let _ = self.child.wait();
        graceful
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_group();
        let _ = self.child.wait();
    }
}

/// `kill -SIG -- target` (a pid, or `-PGID`), ignoring failures.
fn signal(target: &str, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = pipe {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    shorten(&s, 120)
}

/// Runs `cmd` to completion within `limit` (then its process group is killed).
fn run(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    let what = describe(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut p = Proc::spawn(cmd, &what)?;
    let out = reader(p.child.stdout.take());
    let err = reader(p.child.stderr.take());
    let child = &mut p.child;
    let status = poll_until(limit, Duration::from_millis(5), || {
        child.try_wait().ok().flatten()
    });
    if status.is_none() {
        p.kill_group();
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(format!(
            "`{what}` timed out after {} s {}",
            limit.as_secs(),
            shorten(&String::from_utf8_lossy(&stderr), 200)
        )),
    }
}

/// `ip netns exec NS args...`
fn ns_cmd<S: AsRef<std::ffi::OsStr>>(ns: &str, args: &[S]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).args(args);
    cmd
}

/// Runs a closure that may panic (the lab helpers do on failure): a panic becomes an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            Err(format!("{what}: {}", shorten(&msg, 300)))
        }
    }
}

fn shorten(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// The last lines of a log file, on one line.
fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(4);
    shorten(&lines.get(start..).unwrap_or_default().join(" / "), 400)
}

fn md_safe(s: &str) -> String {
    shorten(&s.replace('|', "/"), 160)
}

fn num(v: f64, decimals: usize) -> String {
    format!("{v:.decimals$}")
}

fn repo_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    p.canonicalize().unwrap_or(p)
}

// ---------------------------------------------------------------------------------------
// /proc sampling
// ---------------------------------------------------------------------------------------

fn ns_pids(ns: &str) -> Vec<u32> {
    run(
        Command::new("ip").args(["netns", "pids", ns]),
        Duration::from_secs(10),
    )
    .map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    })
    .unwrap_or_default()
}

fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The server's processes: everything in the server namespace but iperf3.
fn server_pids(lab: &Lab) -> Vec<u32> {
    ns_pids(&lab.server_ns)
        .into_iter()
        .filter(|p| comm(*p) != "iperf3")
        .collect()
}

/// With `--profile`: `perf record` of the client and the server processes until the
/// returned recorder is dropped, into OUT/profile/NAME.data.
fn profile(ctx: &Ctx, lab: &Lab, client: u32, name: &str) -> Option<Recorder> {
    if !ctx.s.profile {
        return None;
    }
    let dir = ctx.s.out.join("profile");
    fs::create_dir_all(&dir).ok()?;
    let mut pids = vec![client.to_string()];
    pids.extend(server_pids(lab).iter().map(u32::to_string));
    let out = dir.join(format!("{name}.data"));
    let mut cmd = Command::new("perf");
    cmd.args(["record", "-q", "-p", &pids.join(","), "-o"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match Proc::spawn(&mut cmd, "perf record") {
        Ok(p) => Some(Recorder(p)),
        Err(e) => {
            eprintln!("   --profile: {e}");
            None
        }
    }
}

/// A running `perf record`; dropping it stops the recording (SIGINT, so the file is whole).
struct Recorder(Proc);

impl Drop for Recorder {
    fn drop(&mut self) {
        self.0.stop("INT", Duration::from_secs(10));
    }
}

/// utime + stime of `pid` (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the name start at 3 (state); utime is 14 and stime 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// CPU ticks of the client and of each server process.
fn cpu_snapshot(lab: &Lab, client: u32) -> (u64, HashMap<u32, u64>) {
    let server = server_pids(lab)
        .into_iter()
        .filter_map(|p| Some((p, cpu_ticks(p)?)))
        .collect();
    (cpu_ticks(client).unwrap_or(0), server)
}

/// Rss and Pss of `pid` from smaps_rollup, in KiB.
fn rss_pss(pid: u32) -> Option<(u64, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
    };
    Some((field("Rss")?, field("Pss")?))
}

/// Total memory of the server's processes.
fn server_mem(lab: &Lab) -> Mem {
    let mut m = Mem::default();
    for pid in server_pids(lab) {
        if let Some((rss, pss)) = rss_pss(pid) {
            m.rss_kib += rss;
            m.pss_kib += pss;
            m.procs += 1;
        }
    }
    m
}

// ---------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------

/// The bench's ocserv.conf (the same for both servers): DTLS on, one user may hold any number
/// of sessions from a /16 pool, no rate limit and no bans.
fn server_config(lab: &Lab, pki: &Pki, auth: &str, subnet: u8) -> String {
    format!(
        "{}udp-port = 443\n\
         ipv4-network = 10.{subnet}.0.0\n\
         ipv4-netmask = 255.255.0.0\n\
         max-clients = 4096\n\
         max-same-clients = 0\n\
         rate-limit-ms = 0\n\
         max-ban-score = 0\n",
        lab.server_config_common(pki, auth)
    )
}

/// Starts a server with `config` and waits until it listens.
fn start_server(
    ctx: &Ctx,
    lab: &Lab,
    side: Side,
    config: &Path,
    log_name: &str,
) -> Result<Proc, String> {
    let log_path = lab.dir.join(log_name);
    let log = fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.server_ns])
        .arg(side.server_bin(ctx))
        .args(["-f", "-d", "2", "-c"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    let mut p = Proc::spawn(&mut cmd, side.server_name())?;
    let ready = poll_until(Duration::from_secs(15), Duration::from_millis(50), || {
        if fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains(side.ready_text())
        {
            Some(true)
        } else if !p.alive() {
            Some(false)
        } else {
            None
        }
    });
    match ready {
        Some(true) => Ok(p),
        Some(false) => Err(format!(
            "{} exited at start: {}",
            side.server_name(),
            log_tail(&log_path)
        )),
        None => Err(format!(
            "{} did not start listening within 15 s: {}",
            side.server_name(),
            log_tail(&log_path)
        )),
    }
}

/// SIGTERM, then SIGKILL for whatever is left in the server namespace.
fn stop_server(lab: &Lab, mut server: Proc) {
    server.stop("TERM", Duration::from_secs(5));
    for pid in ns_pids(&lab.server_ns) {
        signal(&pid.to_string(), "KILL");
    }
    let _ = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        ns_pids(&lab.server_ns).is_empty().then_some(())
    });
}

// ---------------------------------------------------------------------------------------
// Clients, ping, iperf3
// ---------------------------------------------------------------------------------------

/// A running client.
#[derive(Debug)]
struct Session {
    proc: Proc,
    log: PathBuf,
}

impl Session {
    /// SIGINT (both clients log off), SIGKILL after 10 s.
    fn stop(mut self) -> Result<(), String> {
        let graceful = self.proc.stop("INT", Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(300));
        if graceful {
            Ok(())
        } else {
            Err(format!(
                "client ignored SIGINT for 10 s: {}",
                log_tail(&self.log)
            ))
        }
    }
}

/// One ping through the tunnel, answered within 0.3 s.
fn ping_once(lab: &Lab) -> bool {
    run(
        &mut ns_cmd(
            &lab.client_ns,
            &["ping", "-n", "-q", "-c", "1", "-W", "0.3", &lab.behind_ip],
        ),
        Duration::from_secs(3),
    )
    .is_ok_and(|o| o.status.success())
}

/// Launches `client` (password on stdin) and waits for the first ping through the tunnel
/// (and the DTLS channel when `wait_dtls`); returns the session and the time to that ping.
fn establish(
    ctx: &Ctx,
    lab: &Lab,
    pki: &Pki,
    client: Side,
    dtls: bool,
    wait_dtls: bool,
    log_name: &str,
) -> Result<(Session, Duration), String> {
    let log_path = lab.dir.join(log_name);
    let log = fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let url = format!("https://{}/", lab.server_ip);
    let mut args: Vec<String> = ["-u", USER, "--passwd-on-stdin", "--non-inter", "--cafile"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(pki.ca_pem.display().to_string());
    if !dtls {
        args.push("--no-dtls".to_string());
    }
    args.push(url);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.client_ns])
        .arg(client.client_bin(ctx))
        .args(&args)
        // As on a stock system: a bundle named here makes OpenSSL parse every CA at start
        // (GnuTLS, in Debian's openconnect, ignores it).
        .env_remove("SSL_CERT_FILE")
        .stdin(Stdio::piped())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    let started = Instant::now();
    let mut proc = Proc::spawn(&mut cmd, "client")?;
    if let Some(mut stdin) = proc.child.stdin.take() {
        stdin
            .write_all(format!("{PASS}\n").as_bytes())
            .map_err(|e| format!("writing the password: {e}"))?;
    }
    let up = poll_until(CONNECT_LIMIT, Duration::from_millis(20), || {
        if ping_once(lab) {
            Some(true)
        } else if !proc.alive() {
            Some(false)
        } else {
            None
        }
    });
    let elapsed = started.elapsed();
    match up {
        Some(true) => {}
        Some(false) => return Err(format!("client exited: {}", log_tail(&log_path))),
        None => {
            return Err(format!(
                "no ping through the tunnel within {} s: {}",
                CONNECT_LIMIT.as_secs(),
                log_tail(&log_path)
            ))
        }
    }
    if wait_dtls {
        poll_until(Duration::from_secs(20), Duration::from_millis(50), || {
            fs::read_to_string(&log_path)
                .unwrap_or_default()
                .contains("Established DTLS")
                .then_some(())
        })
        .ok_or_else(|| format!("DTLS not established in 20 s: {}", log_tail(&log_path)))?;
    }
    Ok((
        Session {
            proc,
            log: log_path,
        },
        elapsed,
    ))
}

/// The MTU of the client's tun device (any link but lo and the veth).
fn tun_mtu(lab: &Lab) -> Result<f64, String> {
    let out = run(
        Command::new("ip").args(["-n", &lab.client_ns, "-o", "link", "show"]),
        Duration::from_secs(5),
    )?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .filter_map(|l| {
            let name = l.split(':').nth(1)?.trim();
            if name == "lo" || name.starts_with(&lab.name) {
                return None;
            }
            let mut words = l.split_whitespace();
            words.find(|w| *w == "mtu")?;
            words.next()?.parse::<f64>().ok()
        })
        .next()
        .ok_or_else(|| format!("no tun device in: {}", shorten(&text, 200)))
}

/// 20 pings through the tunnel: (avg, mdev) in ms.
fn ping_stats(lab: &Lab) -> Result<(f64, f64), String> {
    let out = run(
        &mut ns_cmd(
            &lab.client_ns,
            &[
                "ping",
                "-n",
                "-q",
                "-c",
                "20",
                "-i",
                "0.1",
                "-W",
                "2",
                &lab.behind_ip,
            ],
        ),
        Duration::from_secs(30),
    )?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let stats = text
        .lines()
        .find_map(|l| l.split_once("min/avg/max/mdev = "))
        .map(|(_, v)| v.trim_end_matches(" ms").split('/').collect::<Vec<_>>())
        .ok_or_else(|| format!("no rtt line in ping output: {}", shorten(&text, 200)))?;
    let get = |i: usize| -> Result<f64, String> {
        stats
            .get(i)
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("bad rtt line: {}", shorten(&text, 200)))
    };
    Ok((get(1)?, get(3)?))
}

/// A one-shot iperf3 server bound to `bind` in the server namespace, once it listens.
fn iperf_server(lab: &Lab, bind: &str) -> Result<Proc, String> {
    let mut cmd = ns_cmd(
        &lab.server_ns,
        &["iperf3", "-s", "-1", "-B", bind, "-p", IPERF_PORT],
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut p = Proc::spawn(&mut cmd, "iperf3 -s")?;
    let port = format!("sport = :{IPERF_PORT}");
    let listening = poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
        if !p.alive() {
            return Some(false);
        }
        let out = run(
            &mut ns_cmd(&lab.server_ns, &["ss", "-Hltn", &port]),
            Duration::from_secs(3),
        )
        .ok()?;
        (!out.stdout.is_empty()).then_some(true)
    });
    match listening {
        Some(true) => Ok(p),
        _ => Err("iperf3 server did not start listening".to_string()),
    }
}

/// iperf3 client in the client namespace towards `target`, JSON result.
fn iperf_client(ctx: &Ctx, lab: &Lab, target: &str, extra: &[&str]) -> Result<Value, String> {
    let secs = ctx.s.iperf_secs.to_string();
    let mut args = vec!["iperf3", "-c", target, "-p", IPERF_PORT, "-t", &secs, "-J"];
    args.extend_from_slice(extra);
    let out = run(
        &mut ns_cmd(&lab.client_ns, &args),
        Duration::from_secs(ctx.s.iperf_secs + 30),
    )?;
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "iperf3 printed no JSON ({e}): {}",
            shorten(&String::from_utf8_lossy(&out.stderr), 200)
        )
    })?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return Err(format!("iperf3: {e}"));
    }
    Ok(v)
}

/// TCP: (Mbit/s received, bytes received).
fn tcp_rate(v: &Value) -> Result<(f64, f64), String> {
    let sum = &v["end"]["sum_received"];
    match (sum["bits_per_second"].as_f64(), sum["bytes"].as_f64()) {
        (Some(bps), Some(bytes)) => Ok((bps / 1e6, bytes)),
        _ => Err("iperf3 JSON has no end.sum_received".to_string()),
    }
}

/// UDP: (Mbit/s received, loss %).
fn udp_rate(v: &Value) -> Result<(f64, f64), String> {
    let end = &v["end"];
    let loss = end["sum_received"]["lost_percent"]
        .as_f64()
        .or_else(|| end["sum"]["lost_percent"].as_f64())
        .ok_or("iperf3 JSON has no lost_percent")?;
    let rx = match end["sum_received"]["bits_per_second"].as_f64() {
        Some(bps) => bps / 1e6,
        None => {
            let sent = end["sum"]["bits_per_second"]
                .as_f64()
                .ok_or("iperf3 JSON has no end.sum")?;
            sent / 1e6 * (1.0 - loss / 100.0)
        }
    };
    Ok((rx, loss))
}

/// CPU seconds per GB of one TCP upload: (client+server, client, server).
#[derive(Debug, Clone, Copy)]
struct CpuPerGb {
    total: f64,
    client: f64,
    server: f64,
}

/// TCP upload through the tunnel with the CPU used by the client process and the server's
/// processes while it ran.
fn tcp_up_with_cpu(
    ctx: &Ctx,
    lab: &Lab,
    client_pid: u32,
) -> Result<(f64, Result<CpuPerGb, String>), String> {
    let _server = iperf_server(lab, &lab.behind_ip)?;
    let (c0, s0) = cpu_snapshot(lab, client_pid);
    let v = iperf_client(ctx, lab, &lab.behind_ip, &[])?;
    let (c1, s1) = cpu_snapshot(lab, client_pid);
    let (mbps, bytes) = tcp_rate(&v)?;
    let server_ticks: u64 = s1
        .iter()
        .map(|(pid, t)| t.saturating_sub(s0.get(pid).copied().unwrap_or(0)))
        .sum();
    let client_ticks = c1.saturating_sub(c0);
    let cpu = if bytes <= 0.0 || c1 == 0 {
        Err("no bytes moved or no client CPU reading".to_string())
    } else {
        let gb = bytes / 1e9;
        let secs = |ticks: u64| ticks as f64 / ctx.clk_tck / gb;
        Ok(CpuPerGb {
            total: secs(client_ticks + server_ticks),
            client: secs(client_ticks),
            server: secs(server_ticks),
        })
    };
    Ok((mbps, cpu))
}

fn iperf_through(ctx: &Ctx, lab: &Lab, extra: &[&str]) -> Result<Value, String> {
    let _server = iperf_server(lab, &lab.behind_ip)?;
    iperf_client(ctx, lab, &lab.behind_ip, extra)
}

// ---------------------------------------------------------------------------------------
// The measurements
// ---------------------------------------------------------------------------------------

/// iperf3 straight across the veth, no VPN: the ceiling.
fn raw_veth(ctx: &Ctx, lab: &Lab, report: &mut Report) {
    eprintln!("== raw veth throughput (no VPN)");
    for _ in 0..ctx.s.reps {
        let r = guarded("raw veth", || {
            let _server = iperf_server(lab, &lab.server_ip)?;
            let v = iperf_client(ctx, lab, &lab.server_ip, &[])?;
            tcp_rate(&v).map(|(mbps, _)| mbps)
        });
        eprintln!("   {r:?} Mbit/s");
        report.raw_veth.record(r);
    }
}

fn measure_pair(ctx: &Ctx, lab: &Lab, pki: &Pki, client: Side, server: Side) -> PairResult {
    let key = pair_key(client, server);
    eprintln!("== pair {key}");
    let mut res = PairResult::default();
    let reps = ctx.s.reps;

    // DTLS: ping, TCP up (with CPU), TCP down, UDP.
    let session = guarded("DTLS session", || {
        establish(
            ctx,
            lab,
            pki,
            client,
            true,
            true,
            &format!("client-{}-dtls.log", client.tag()),
        )
    });
    match session {
        Err(e) => {
            eprintln!("   DTLS session failed: {e}");
            res.fail(&DTLS_METRICS, &e);
            res.fail(&["tun_mtu"], &e);
        }
        Ok((mut session, _)) => {
            res.record("tun_mtu", tun_mtu(lab));
            let udp_before = guarded("UDP counter", || Ok(lab.client_udp_in())).ok();
            for rep in 0..reps {
                if !session.proc.alive() {
                    let e = format!(
                        "client exited during the DTLS measurements: {}",
                        log_tail(&session.log)
                    );
                    for _ in rep..reps {
                        res.fail(&DTLS_METRICS, &e);
                    }
                    break;
                }
                match guarded("ping", || ping_stats(lab)) {
                    Ok((avg, mdev)) => {
                        res.record("ping_avg", Ok(avg));
                        res.record("ping_mdev", Ok(mdev));
                    }
                    Err(e) => res.fail(&["ping_avg", "ping_mdev"], &e),
                }
                let pid = session.proc.pid();
                let _perf = profile(ctx, lab, pid, &format!("{key}-up-{rep}"));
                match guarded("TCP up (DTLS)", || tcp_up_with_cpu(ctx, lab, pid)) {
                    Ok((mbps, cpu)) => {
                        res.record("tcp_up_dtls", Ok(mbps));
                        match cpu {
                            Ok(c) => {
                                res.record("cpu_total", Ok(c.total));
                                res.record("cpu_client", Ok(c.client));
                                res.record("cpu_server", Ok(c.server));
                            }
                            Err(e) => res.fail(&["cpu_total", "cpu_client", "cpu_server"], &e),
                        }
                    }
                    Err(e) => res.fail(
                        &["tcp_up_dtls", "cpu_total", "cpu_client", "cpu_server"],
                        &e,
                    ),
                }
                let perf = profile(ctx, lab, pid, &format!("{key}-down-{rep}"));
                res.record(
                    "tcp_down_dtls",
                    guarded("TCP down (DTLS)", || {
                        tcp_rate(&iperf_through(ctx, lab, &["-R"])?).map(|r| r.0)
                    }),
                );
                drop(perf);
                match guarded("UDP (DTLS)", || {
                    udp_rate(&iperf_through(
                        ctx,
                        lab,
                        &["-u", "-b", UDP_RATE, "-l", UDP_LEN],
                    )?)
                }) {
                    Ok((rx, loss)) => {
                        res.record("udp_rx", Ok(rx));
                        res.record("udp_loss", Ok(loss));
                    }
                    Err(e) => res.fail(&["udp_rx", "udp_loss"], &e),
                }
            }
            let udp_after = guarded("UDP counter", || Ok(lab.client_udp_in())).ok();
            if let (Some(a), Some(b)) = (udp_before, udp_after) {
                if b.saturating_sub(a) < 1000 {
                    res.notes.push(format!(
                        "{key}: only {} UDP datagrams reached the client during the DTLS runs: \
                         the traffic did not go over DTLS",
                        b.saturating_sub(a)
                    ));
                }
            }
            if let Err(e) = session.stop() {
                res.notes.push(format!("{key}: {e}"));
            }
        }
    }

    // TLS only: TCP up and down.
    match guarded("TLS session", || {
        establish(
            ctx,
            lab,
            pki,
            client,
            false,
            false,
            &format!("client-{}-tls.log", client.tag()),
        )
    }) {
        Err(e) => {
            eprintln!("   TLS session failed: {e}");
            for _ in 0..reps {
                res.fail(&["tcp_up_tls", "tcp_down_tls"], &e);
            }
        }
        Ok((session, _)) => {
            for _ in 0..reps {
                res.record(
                    "tcp_up_tls",
                    guarded("TCP up (TLS)", || {
                        tcp_rate(&iperf_through(ctx, lab, &[])?).map(|r| r.0)
                    }),
                );
                res.record(
                    "tcp_down_tls",
                    guarded("TCP down (TLS)", || {
                        tcp_rate(&iperf_through(ctx, lab, &["-R"])?).map(|r| r.0)
                    }),
                );
            }
            if let Err(e) = session.stop() {
                res.notes.push(format!("{key}: {e}"));
            }
        }
    }

    // Connection setup: launch to the first ping, default settings (DTLS offered).
    for i in 0..ctx.s.connects {
        let r = guarded("connect", || {
            let (session, took) = establish(
                ctx,
                lab,
                pki,
                client,
                true,
                false,
                &format!("client-{}-connect-{i}.log", client.tag()),
            )?;
            session.stop()?;
            Ok(took.as_secs_f64() * 1000.0)
        });
        res.record("connect", r);
    }
    for (m, label, d) in METRICS {
        if let Some(metric) = res.metrics.get(m) {
            eprintln!("   {label}: {}", metric.cell(d));
        }
    }
    res
}

/// Opens `n` sessions with the load client and measures the handshake rate and the server's
/// memory per session.
fn scale_test(ctx: &Ctx, lab: &Lab, server: Side, config: &Path, n: usize) -> ScaleRow {
    eprintln!("== scale: {n} sessions against {}", server.server_name());
    let mut row = ScaleRow::new(server, n);
    if let Err(e) = guarded("scale", || scale_inner(ctx, lab, server, config, &mut row)) {
        row.error = Some(e);
    }
    eprintln!(
        "   up {} failed {} in {:.2} s, rate {:?}/s, PSS/session {:?} KiB, RSS/session {:?} KiB, error {:?}",
        row.ok,
        row.failed,
        row.secs,
        row.rate(),
        row.per_session(|m| m.pss_kib),
        row.per_session(|m| m.rss_kib),
        row.error
    );
    row
}

fn scale_inner(
    ctx: &Ctx,
    lab: &Lab,
    server: Side,
    config: &Path,
    row: &mut ScaleRow,
) -> Result<(), String> {
    let n = row.n;
    let srv = start_server(ctx, lab, server, config, &format!("server-scale-{n}.log"))?;
    let r = guarded("scale measurement", || scale_load(ctx, lab, row));
    stop_server(lab, srv);
    r?;
    if row.ok == 0 {
        return Err(format!("no session came up: {}", row.first_failure));
    }
    Ok(())
}

/// With the server just started: memory at rest, N sessions through the load client, memory
/// with them held.
fn scale_load(ctx: &Ctx, lab: &Lab, row: &mut ScaleRow) -> Result<(), String> {
    let n = row.n;
    std::thread::sleep(Duration::from_secs(1));
    row.mem0 = Some(server_mem(lab));
    let sources = load_sources(lab).join(",");
    let log_path = lab.dir.join(format!("loadgen-{n}.log"));
    let log = fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.client_ns])
        .arg(&ctx.exe)
        .arg("loadgen")
        .args(["--server", &lab.server_ip, "--user", USER, "--pass", PASS])
        .args(["--count", &n.to_string()])
        .args(["--concurrency", &ctx.s.concurrency.to_string()])
        .args(["--sources", &sources, "--timeout-secs", "30"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log);
    let mut load = Proc::spawn(&mut cmd, "load client")?;
    let stdin = load.child.stdin.take();
    let stdout = load.child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let limit = Duration::from_secs(60 + n as u64 / 4);
    let deadline = Instant::now() + limit;
    let mut last = String::from("nothing");
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with("RESULT ") => break line,
            Ok(line) => last = line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "load client not done within {} s (last report: {last})",
                    limit.as_secs()
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!("load client exited: {}", log_tail(&log_path)))
            }
        }
    };
    // RESULT ok=N fail=N secs=F error=TEXT
    let field = |name: &str| -> Option<&str> {
        result
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
    };
    row.ok = field("ok").and_then(|v| v.parse().ok()).unwrap_or(0);
    row.failed = field("fail").and_then(|v| v.parse().ok()).unwrap_or(0);
    row.secs = field("secs").and_then(|v| v.parse().ok()).unwrap_or(0.0);
    row.first_failure = result
        .split_once(" error=")
        .map(|(_, e)| e.to_string())
        .unwrap_or_default();
    // Let the server settle (workers finishing their set-up) before reading its memory.
    std::thread::sleep(Duration::from_secs(2));
    row.mem_n = Some(server_mem(lab));
    drop(stdin);
    let closed = rx.recv_timeout(Duration::from_secs(15));
    if let Ok(line) = closed {
        row.dropped = line
            .strip_prefix("CLOSED dropped=")
            .and_then(|v| v.trim().parse().ok());
    }
    load.stop("TERM", Duration::from_secs(5));
    Ok(())
}

/// The client namespace's addresses for the load client.
fn load_sources(lab: &Lab) -> Vec<String> {
    let prefix = lab
        .client_ip
        .rsplit_once('.')
        .map(|(p, _)| p.to_string())
        .unwrap_or_default();
    let mut v = vec![lab.client_ip.clone()];
    for k in 0..LOAD_SOURCES.saturating_sub(1) {
        v.push(format!("{prefix}.{}", 100 + k));
    }
    v
}

fn add_load_sources(lab: &Lab) -> Result<(), String> {
    for ip in load_sources(lab).iter().skip(1) {
        let out = run(
            Command::new("ip").args([
                "-n",
                &lab.client_ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                &format!("{}b", lab.name),
            ]),
            Duration::from_secs(5),
        )?;
        if !out.status.success() {
            return Err(format!(
                "ip addr add {ip}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}

/// One lab for one server kind: its pairs, then its scale tests.
fn server_lab(ctx: &Ctx, server: Side, report: &mut Report) -> Result<(), String> {
    let lab = Lab::new(&format!("bench-{}", server.tag()));
    if let Some(file) = &ctx.labs_file {
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(file) {
            let _ = writeln!(f, "{}", lab.name);
        }
    }
    let result = (|| -> Result<(), String> {
        let pki = Pki::create(&lab.dir, &lab.server_ip);
        let auth = lab.make_passwd(&server.passwd_tool(ctx), &[(USER, PASS)], None);
        let subnet: u8 = lab
            .server_ip
            .split('.')
            .nth(2)
            .and_then(|v| v.parse().ok())
            .ok_or("lab address")?;
        let config = lab.dir.join("bench-ocserv.conf");
        fs::write(&config, server_config(&lab, &pki, &auth, subnet)).map_err(|e| e.to_string())?;
        if server == Side::Theirs && !ctx.s.scale_only {
            raw_veth(ctx, &lab, report);
        }
        let clients = match server {
            Side::Theirs => [Side::Theirs, Side::Ours],
            Side::Ours => [Side::Ours, Side::Theirs],
        };
        let mut srv = start_server(ctx, &lab, server, &config, "server.log")?;
        for (i, client) in clients.into_iter().enumerate() {
            let key = pair_key(client, server);
            if ctx.s.scale_only || (!ctx.s.only.is_empty() && !ctx.s.only.iter().any(|k| k == key))
            {
                continue;
            }
            if !srv.alive() {
                report.notes.push(format!(
                    "{} had exited before the {} pair and was restarted: {}",
                    server.server_name(),
                    pair_key(client, server),
                    log_tail(&lab.dir.join("server.log"))
                ));
                srv = start_server(ctx, &lab, server, &config, &format!("server-{i}.log"))?;
            }
            let res = measure_pair(ctx, &lab, &pki, client, server);
            report.pairs.insert(pair_key(client, server), res);
        }
        if !srv.alive() {
            report.notes.push(format!(
                "{} exited during the pair measurements: {}",
                server.server_name(),
                log_tail(&lab.dir.join("server.log"))
            ));
        }
        stop_server(&lab, srv);
        if let Err(e) = add_load_sources(&lab) {
            report
                .notes
                .push(format!("extra load-client addresses: {e}"));
        }
        for &n in &ctx.s.scale {
            let row = scale_test(ctx, &lab, server, &config, n);
            report.scale.push(row);
        }
        Ok(())
    })();
    save_logs(ctx, &lab, server);
    result
}

/// Copies the lab's logs and config to OUT/logs/SIDE/ (the lab directory goes with the lab).
fn save_logs(ctx: &Ctx, lab: &Lab, server: Side) {
    let dest = ctx
        .s
        .out
        .join("logs")
        .join(format!("server-{}", server.tag()));
    let _ = fs::remove_dir_all(&dest);
    if fs::create_dir_all(&dest).is_err() {
        return;
    }
    if let Ok(entries) = fs::read_dir(&lab.dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".log") || name.ends_with(".conf") {
                let _ = fs::copy(e.path(), dest.join(&name));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Report rendering
// ---------------------------------------------------------------------------------------

fn ratio(ours: Option<f64>, theirs: Option<f64>) -> Option<f64> {
    match (ours, theirs) {
        (Some(o), Some(t)) if t != 0.0 => Some(o / t),
        _ => None,
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map(|v| num(v, decimals))
        .unwrap_or_else(|| "–".to_string())
}

fn cmd_line(program: &str, args: &[&str]) -> String {
    run(Command::new(program).args(args), Duration::from_secs(10))
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.lines().next().unwrap_or_default().trim().to_string()
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn machine_info() -> Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let repo = repo_root().display().to_string();
    let dirty = run(
        Command::new("git").args(["-C", &repo, "status", "--porcelain", "--untracked-files=no"]),
        Duration::from_secs(20),
    )
    .map(|o| !o.stdout.is_empty())
    .ok();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "kernel": fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "commit": cmd_line("git", &["-C", &repo, "rev-parse", "HEAD"]),
        "uncommitted_changes": dirty,
        "date": cmd_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "openconnect": cmd_line("/usr/sbin/openconnect", &["--version"]),
        "ocserv": cmd_line("ocserv", &["--version"]),
        "iperf3": cmd_line("iperf3", &["--version"]),
    })
}

fn largest_scale(report: &Report, server: Side) -> Option<&ScaleRow> {
    report
        .scale
        .iter()
        .filter(|r| r.server == server && r.ok > 0)
        .max_by_key(|r| r.n)
}

/// (target, measured, met) lines.
fn targets(report: &Report) -> Vec<(String, String, Option<bool>)> {
    let pair = |k: &str, m: &str| report.pairs.get(k).and_then(|p| p.median(m));
    let r = |m: &str| ratio(pair("ours", m), pair("theirs", m));
    let up = r("tcp_up_dtls");
    let down = r("tcp_down_dtls");
    let connect = r("connect");
    let rss = largest_scale(report, Side::Ours);
    let rss_val = rss.and_then(|row| row.per_session(|m| m.rss_kib));
    vec![
        (
            "DTLS TCP throughput ours/theirs ≥ 2x".to_string(),
            format!("up {}x, down {}x", opt(up, 2), opt(down, 2)),
            up.zip(down).map(|(u, d)| u >= 2.0 && d >= 2.0),
        ),
        (
            "connect time ours/theirs ≤ 0.5".to_string(),
            opt(connect, 2),
            connect.map(|c| c <= 0.5),
        ),
        (
            format!(
                "our server RSS per idle session ≤ 64 KiB{}",
                rss.map(|r| format!(" (N = {})", r.n)).unwrap_or_default()
            ),
            format!("{} KiB", opt(rss_val, 1)),
            rss_val.map(|v| v <= 64.0),
        ),
    ]
}

fn render_markdown(ctx: &Ctx, report: &Report, machine: &Value, took: Duration) -> String {
    let mut md = String::new();
    let m = |k: &str| machine[k].as_str().unwrap_or("unknown").to_string();
    let _ = writeln!(
        md,
        "## Benchmark: ferroconnect vs Debian openconnect 9.01 / ocserv 1.1.6\n"
    );
    let _ = writeln!(md, "- mode: {}", ctx.s.describe());
    let _ = writeln!(
        md,
        "- machine: nproc {}, {}, kernel {}",
        machine["nproc"],
        m("cpu"),
        m("kernel")
    );
    let _ = writeln!(
        md,
        "- commit: {}{}",
        m("commit"),
        if machine["uncommitted_changes"] == json!(true) {
            " (with uncommitted changes)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "- date: {}; the run took {:.0} s",
        m("date"),
        took.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "- raw veth TCP, no VPN (the ceiling): {} Mbit/s\n",
        report.raw_veth.cell(0)
    );
    let _ = writeln!(
        md,
        "Cells: median (min–max) over the samples; ours/theirs is the ratio of the medians \
         (throughput: higher is better; times, loss and CPU: lower is better).\n"
    );
    let title = |k: &str| {
        PAIRS
            .iter()
            .find(|p| p.0 == k)
            .map(|p| p.3)
            .unwrap_or_default()
    };
    let _ = writeln!(
        md,
        "| metric | {} | {} | ours/theirs | {} | {} |",
        title("theirs"),
        title("ours"),
        title("our_client_vs_ocserv"),
        title("openconnect_vs_our_server")
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    let empty = Metric::default();
    let get = |pair: &str, key: &str| -> &Metric {
        report
            .pairs
            .get(pair)
            .and_then(|p| p.metrics.get(key))
            .unwrap_or(&empty)
    };
    for (key, label, d) in METRICS {
        let (t, o) = (get("theirs", key), get("ours", key));
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} |",
            t.cell(d),
            o.cell(d),
            opt(ratio(o.median(), t.median()), 2),
            get("our_client_vs_ocserv", key).cell(d),
            get("openconnect_vs_our_server", key).cell(d),
        );
    }
    let _ = writeln!(
        md,
        "\n### Server scale: N sessions logged in and CONNECTed (CSTP, no tun on the client), \
         {} logins at a time from {LOAD_SOURCES} client addresses\n",
        ctx.s.concurrency
    );
    let _ = writeln!(
        md,
        "| server | N | up | failed | time to all up (s) | handshakes/s | PSS/session (KiB) | RSS/session (KiB) | server procs | dropped while held | error |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rows = report.scale.clone();
    rows.sort_by_key(|r| (r.n, r.server));
    for r in &rows {
        let mut error = r.error.clone().unwrap_or_default();
        if r.failed > 0 && !r.first_failure.is_empty() {
            if !error.is_empty() {
                error.push_str("; ");
            }
            let _ = write!(error, "first failure: {}", r.first_failure);
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} |",
            r.server.server_name(),
            r.n,
            r.ok,
            r.failed,
            r.secs,
            opt(r.rate(), 1),
            opt(r.per_session(|m| m.pss_kib), 1),
            opt(r.per_session(|m| m.rss_kib), 1),
            r.mem_n.map(|m| m.procs.to_string()).unwrap_or_default(),
            r.dropped.map(|d| d.to_string()).unwrap_or_default(),
            if error.is_empty() {
                String::new()
            } else {
                format!("error: {}", md_safe(&error))
            },
        );
    }
    for &n in &ctx.s.scale {
        let row = |s: Side| rows.iter().find(|r| r.server == s && r.n == n);
        let (o, t) = (row(Side::Ours), row(Side::Theirs));
        let _ = writeln!(
            md,
            "\nN = {n}, ours/theirs: handshake rate {}, PSS per session {}",
            opt(
                ratio(o.and_then(ScaleRow::rate), t.and_then(ScaleRow::rate)),
                2
            ),
            opt(
                ratio(
                    o.and_then(|r| r.per_session(|m| m.pss_kib)),
                    t.and_then(|r| r.per_session(|m| m.pss_kib))
                ),
                2
            ),
        );
    }
    let _ = writeln!(md, "\n### Targets (informational, not assertions)\n");
    let _ = writeln!(md, "| target | measured | met |");
    let _ = writeln!(md, "|---|---|---|");
    for (t, v, met) in targets(report) {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "no",
            None => "n/a",
        };
        let _ = writeln!(md, "| {t} | {v} | {met} |");
    }
    let notes: Vec<&String> = report
        .notes
        .iter()
        .chain(report.pairs.values().flat_map(|p| p.notes.iter()))
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(md, "\n### Notes\n");
        for n in notes {
            let _ = writeln!(md, "- {}", md_safe(n));
        }
    }
    md
}

fn render_json(ctx: &Ctx, report: &Report, machine: &Value, took: Duration) -> Value {
    let mut pairs = serde_json::Map::new();
    let mut ratios = serde_json::Map::new();
    let theirs = report.pairs.get("theirs");
    for (key, client, server, title) in PAIRS {
        let Some(p) = report.pairs.get(key) else {
            continue;
        };
        let metrics: serde_json::Map<String, Value> = p
            .metrics
            .iter()
            .map(|(k, m)| (k.to_string(), m.to_json()))
            .collect();
        pairs.insert(
            key.to_string(),
            json!({
                "title": title,
                "client": client.tag(),
                "server": server.tag(),
                "metrics": metrics,
                "notes": p.notes,
            }),
        );
        if key != "theirs" {
            let r: serde_json::Map<String, Value> = METRICS
                .iter()
                .map(|(m, ..)| {
                    (
                        m.to_string(),
                        json!(ratio(p.median(m), theirs.and_then(|t| t.median(m)))),
                    )
                })
                .collect();
            ratios.insert(key.to_string(), Value::Object(r));
        }
    }
    let mem = |m: Option<Mem>| {
        m.map(|m| json!({"rss_kib": m.rss_kib, "pss_kib": m.pss_kib, "procs": m.procs}))
    };
    let scale: Vec<Value> = report
        .scale
        .iter()
        .map(|r| {
            json!({
                "server": r.server.tag(),
                "n": r.n,
                "up": r.ok,
                "failed": r.failed,
                "secs_to_all_up": r.secs,
                "handshakes_per_sec": r.rate(),
                "pss_kib_per_session": r.per_session(|m| m.pss_kib),
                "rss_kib_per_session": r.per_session(|m| m.rss_kib),
                "mem_with_0": mem(r.mem0),
                "mem_with_n": mem(r.mem_n),
                "dropped_while_held": r.dropped,
                "first_failure": r.first_failure,
                "error": r.error,
            })
        })
        .collect();
    let scale_ratios: serde_json::Map<String, Value> = ctx
        .s
        .scale
        .iter()
        .map(|&n| {
            let row = |s: Side| report.scale.iter().find(|r| r.server == s && r.n == n);
            let (o, t) = (row(Side::Ours), row(Side::Theirs));
            (
                n.to_string(),
                json!({
                    "handshakes_per_sec": ratio(o.and_then(ScaleRow::rate), t.and_then(ScaleRow::rate)),
                    "pss_kib_per_session": ratio(
                        o.and_then(|r| r.per_session(|m| m.pss_kib)),
                        t.and_then(|r| r.per_session(|m| m.pss_kib))),
                    "rss_kib_per_session": ratio(
                        o.and_then(|r| r.per_session(|m| m.rss_kib)),
                        t.and_then(|r| r.per_session(|m| m.rss_kib))),
                }),
            )
        })
        .collect();
    let targets: Vec<Value> = targets(report)
        .into_iter()
        .map(|(t, v, met)| json!({"target": t, "measured": v, "met": met}))
        .collect();
    json!({
        "mode": if ctx.s.quick { "quick" } else { "full" },
        "settings": {
            "repetitions": ctx.s.reps,
            "iperf_secs": ctx.s.iperf_secs,
            "connects": ctx.s.connects,
            "scale": ctx.s.scale,
            "concurrency": ctx.s.concurrency,
            "load_sources": LOAD_SOURCES,
            "udp_rate": UDP_RATE,
            "udp_len": UDP_LEN,
        },
        "machine": machine,
        "duration_secs": took.as_secs_f64(),
        "units": {
            "tcp_*": "Mbit/s", "udp_rx": "Mbit/s", "udp_loss": "%", "ping_*": "ms",
            "connect": "ms", "cpu_*": "CPU seconds per GB received", "tun_mtu": "bytes",
            "raw_veth": "Mbit/s",
        },
        "raw_veth": report.raw_veth.to_json(),
        "pairs": pairs,
        "ratios_vs_theirs": ratios,
        "scale": scale,
        "scale_ratios_ours_vs_theirs": scale_ratios,
        "targets": targets,
        "notes": report.notes,
    })
}

// ---------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------

fn have(program: &str) -> bool {
    run(
        Command::new("sh").args(["-c", &format!("command -v {program}")]),
        Duration::from_secs(5),
    )
    .is_ok_and(|o| o.status.success())
}

fn run_suite(s: Settings) -> i32 {
    if cmd_line("id", &["-u"]) != "0" {
        eprintln!("bench needs root (network namespaces, tun devices)");
        return 1;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot find this program: {e}");
            return 1;
        }
    };
    // Our binaries: $FERROCONNECT_BIN_DIR, else next to this program (target/release). The
    // lab helpers' `bin()` reads the same variable.
    let bin_dir = match std::env::var_os("FERROCONNECT_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let d = exe.parent().map(Path::to_path_buf).unwrap_or_default();
            std::env::set_var("FERROCONNECT_BIN_DIR", &d);
            d
        }
    };
    let mut missing: Vec<String> = ["openconnect", "ocserv", "ocpasswd"]
        .iter()
        .map(|b| bin_dir.join(b))
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    for tool in [
        "/usr/sbin/openconnect",
        "ocserv",
        "ocpasswd",
        "iperf3",
        "ping",
        "ss",
    ] {
        if !have(tool) {
            missing.push(tool.to_string());
        }
    }
    if !missing.is_empty() {
        eprintln!(
            "missing: {} (cargo build --release --workspace; scripts/deps.sh)",
            missing.join(", ")
        );
        return 1;
    }
    if let Err(e) = fs::create_dir_all(&s.out) {
        eprintln!("cannot create {}: {e}", s.out.display());
        return 1;
    }
    let clk_tck = cmd_line("getconf", &["CLK_TCK"])
        .parse::<f64>()
        .unwrap_or(100.0);
    let ctx = Ctx {
        labs_file: std::env::var_os("BENCH_LABS_FILE").map(PathBuf::from),
        s,
        bin_dir,
        exe,
        clk_tck,
    };
    eprintln!("bench: {}", ctx.s.describe());
    let started = Instant::now();
    let mut report = Report::default();
    for server in [Side::Theirs, Side::Ours] {
        let r = guarded(&format!("{} lab", server.server_name()), || {
            server_lab(&ctx, server, &mut report)
        });
        if let Err(e) = r {
            eprintln!("{} lab failed: {e}", server.server_name());
            report.lab_failed(&ctx.s, server, &e);
        }
    }
    let took = started.elapsed();
    let machine = machine_info();
    let md = render_markdown(&ctx, &report, &machine, took);
    let js = render_json(&ctx, &report, &machine, took);
    let md_path = ctx.s.out.join("results.md");
    let js_path = ctx.s.out.join("results.json");
    let wrote = fs::write(&md_path, &md).and_then(|()| {
        fs::write(
            &js_path,
            serde_json::to_string_pretty(&js).unwrap_or_default() + "\n",
        )
    });
    println!("\n{md}");
    match wrote {
        Ok(()) => {
            println!(
                "wrote {} and {} (logs in {}/logs); took {:.0} s",
                md_path.display(),
                js_path.display(),
                ctx.s.out.display(),
                took.as_secs_f64()
            );
            0
        }
        Err(e) => {
            eprintln!("cannot write the results to {}: {e}", ctx.s.out.display());
            1
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("loadgen") {
        std::process::exit(loadgen_main(args.get(1..).unwrap_or_default()));
    }
    let settings = match Settings::parse(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    std::process::exit(run_suite(settings));
}

// ---------------------------------------------------------------------------------------
// The load client
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct LoadOpts {
    server: IpAddr,
    user: String,
    pass: String,
    count: usize,
    concurrency: usize,
    sources: Vec<IpAddr>,
    timeout: Duration,
}

impl LoadOpts {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut map: HashMap<&str, &str> = HashMap::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
            map.insert(k.as_str(), v.as_str());
        }
        let get = |k: &str| {
            map.get(k)
                .copied()
                .ok_or_else(|| format!("{k} is required"))
        };
        let parse_ip = |v: &str| v.parse::<IpAddr>().map_err(|e| format!("{v}: {e}"));
        let sources = match map.get("--sources") {
            Some(list) => list
                .split(',')
                .filter(|s| !s.is_empty())
                .map(parse_ip)
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        Ok(Self {
            server: parse_ip(get("--server")?)?,
            user: get("--user")?.to_string(),
            pass: get("--pass")?.to_string(),
            count: get("--count")?
                .parse()
                .map_err(|e| format!("--count: {e}"))?,
            concurrency: get("--concurrency")?
                .parse::<usize>()
                .map_err(|e| format!("--concurrency: {e}"))?
                .max(1),
            sources,
            timeout: Duration::from_secs(
                map.get("--timeout-secs")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(30),
            ),
        })
    }
}

/// Logs `--count` sessions in (at most `--concurrency` at a time), holds their tunnels,
/// prints `RESULT ok=N fail=N secs=F error=TEXT` once all have come up or failed, then
/// `CLOSED dropped=N` and exits when its standard input closes.
fn loadgen_main(args: &[String]) -> i32 {
    let opts = match LoadOpts::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}\n{USAGE}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return 1;
        }
    };
    rt.block_on(loadgen(opts))
}

async fn loadgen(o: LoadOpts) -> i32 {
    let connector = match SslConnector::builder(SslMethod::tls_client()) {
        Ok(mut b) => {
            // The load client measures the server, not certificate checks.
            b.set_verify(SslVerifyMode::NONE);
            Arc::new(b.build())
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            return 1;
        }
    };
    let url = match ServerUrl::parse(&format!("https://{}/", o.server)) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return 1;
        }
    };
    let sources = if o.sources.is_empty() {
        vec![IpAddr::from([0, 0, 0, 0])]
    } else {
        o.sources.clone()
    };
    let sem = Arc::new(tokio::sync::Semaphore::new(o.concurrency));
    let dropped = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let started = Instant::now();
    for i in 0..o.count {
        let source = sources.get(i % sources.len()).copied();
        let (sem, tx, dropped) = (sem.clone(), tx.clone(), dropped.clone());
        let (connector, url, o) = (connector.clone(), url.clone(), o.clone());
        tokio::spawn(async move {
            let permit = sem.acquire_owned().await;
            let addr = SocketAddr::new(o.server, 443);
            let session = tokio::time::timeout(
                o.timeout,
                open_session(&connector, source, addr, &url, &o.user, &o.pass),
            )
            .await
            .unwrap_or_else(|_| Err(format!("no tunnel within {} s", o.timeout.as_secs())));
            drop(permit);
            match session {
                Ok((stream, rest)) => {
                    let _ = tx.send(Ok(()));
                    let why = hold(stream, rest).await;
                    dropped.fetch_add(1, Ordering::SeqCst);
                    eprintln!("session {i} ended: {why}");
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
    }
    drop(tx);
    let (mut ok, mut fail, mut first) = (0usize, 0usize, None::<String>);
    while ok + fail < o.count {
        match rx.recv().await {
            Some(Ok(())) => ok += 1,
            Some(Err(e)) => {
                eprintln!("session failed: {e}");
                fail += 1;
                first.get_or_insert(e);
            }
            None => break,
        }
        if (ok + fail) % 100 == 0 {
            println!("PROGRESS ok={ok} fail={fail}");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "RESULT ok={ok} fail={fail} secs={secs:.3} error={}",
        shorten(&first.unwrap_or_default(), 300)
    );
    let _ = std::io::stdout().flush();
    // Hold the sessions until the driver closes our standard input.
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await;
    println!("CLOSED dropped={}", dropped.load(Ordering::SeqCst));
    let _ = std::io::stdout().flush();
    0
}

type Tls = SslStream<tokio::net::TcpStream>;

async fn tls_connect(
    connector: &SslConnector,
    source: Option<IpAddr>,
    addr: SocketAddr,
) -> Result<Tls, String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    if let Some(src) = source {
        socket
            .bind(SocketAddr::new(src, 0))
            .map_err(|e| format!("bind {src}: {e}"))?;
    }
    let tcp = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let ssl = connector
        .configure()
        .map_err(|e| e.to_string())?
        .use_server_name_indication(false)
        .verify_hostname(false)
        .into_ssl("vpn.test")
        .map_err(|e| e.to_string())?;
    let mut stream = SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
    Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    Ok(stream)
}

/// Sends `req` and reads one response; also returns the bytes after it.
async fn http_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    req: &Request,
    head_only: bool,
) -> Result<(Response, Vec<u8>), String> {
    let mut out = Vec::new();
    req.emit(&mut out);
    stream
        .write_all(&out)
        .await
        .map_err(|e| format!("write: {e}"))?;
    stream.flush().await.map_err(|e| format!("write: {e}"))?;
    let mut reader = ResponseReader::new(Limits::default(), head_only);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if let Some(resp) = reader.poll().map_err(|e| e.to_string())? {
            return Ok((resp, reader.take_rest()));
        }
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            let resp = reader.finish_eof().map_err(|e| e.to_string())?;
            return Ok((resp, Vec::new()));
        }
        reader
            .feed(buf.get(..n).unwrap_or_default())
            .map_err(|e| e.to_string())?;
    }
}

/// The AnyConnect login (XML aggregate auth) and `CONNECT /CSCOSSLC/tunnel`, as our client
/// does them: the CONNECT goes over the login's connection unless the server closed it, or
/// it fails there; returns the tunnel's TLS stream and any bytes already read after
/// `200 CONNECTED`.
async fn open_session(
    connector: &SslConnector,
    source: Option<IpAddr>,
    addr: SocketAddr,
    url: &ServerUrl,
    user: &str,
    pass: &str,
) -> Result<(Tls, Vec<u8>), String> {
    let mut exchange = AuthExchange::new(AuthSettings {
        url: url.clone(),
        user_agent: USER_AGENT.to_string(),
        identity: ClientIdentity {
            version: "v9.01".to_string(),
            device_id: "linux-64".to_string(),
        },
        group: None,
        xmlpost: true,
        multicert: false,
        external_auth: None,
        bearer_token: None,
        negotiator: None,
    });
    let mut stream = tls_connect(connector, source, addr).await?;
    let mut request = exchange.init_request();
    let mut password_sent = false;
    let (cookie, close) = loop {
        let (resp, _) = http_exchange(&mut stream, &request, false).await?;
        let close = resp.head.wants_close();
        match exchange.handle_response(&resp).map_err(|e| e.to_string())? {
            AuthStep::Form(form) => {
                let mut answers = Vec::new();
                for f in &form.fields {
                    let value = match &f.kind {
                        FieldKind::Password => {
                            if password_sent {
                                return Err(format!(
                                    "password asked again: {}",
                                    form.error
                                        .clone()
                                        .or(form.message.clone())
                                        .unwrap_or_default()
                                ));
                            }
                            pass.to_string()
                        }
                        FieldKind::Text if f.name == "username" => user.to_string(),
                        FieldKind::Select(options) => f
                            .value
                            .clone()
                            .or_else(|| options.first().map(|o| o.value.clone()))
                            .unwrap_or_default(),
                        FieldKind::Text | FieldKind::Hidden => f.value.clone().unwrap_or_default(),
                    };
                    answers.push((f.name.clone(), value));
                }
                if form
                    .fields
                    .iter()
                    .any(|f| matches!(f.kind, FieldKind::Password))
                {
                    password_sent = true;
                }
                request = exchange.reply(&answers);
            }
            AuthStep::Send(next) => request = next,
            AuthStep::SecondCertificate(_) => {
                return Err("the server asks for a second certificate".into())
            }
            AuthStep::SingleSignOn { .. } | AuthStep::HostScan(_) | AuthStep::NewServer { .. } => {
                return Err(
                    "the server asks for a browser login, a host scan or another server".into(),
                )
            }
            AuthStep::Success(done) => break (done.cookie, close),
        }
        if close {
            stream = tls_connect(connector, source, addr).await?;
        }
    };
    let connect = ConnectRequest {
        host: url.host_header(),
        user_agent: USER_AGENT.to_string(),
        cookie,
        local_hostname: "bench".to_string(),
        base_mtu: 1400,
        mtu: 0,
        ipv6: false,
        previous_addresses: Vec::new(),
        dtls: None,
        compression: compress::Mode::None,
    };
    let request = connect.to_request();
    let mut tunnel = if close {
        tls_connect(connector, source, addr).await?
    } else {
        stream
    };
    let (resp, rest) = match http_exchange(&mut tunnel, &request, true).await {
        Ok(answer) => answer,
        Err(_) if !close => {
            tunnel = tls_connect(connector, source, addr).await?;
            http_exchange(&mut tunnel, &request, true).await?
        }
        Err(e) => return Err(e),
    };
    if resp.head.status != 200 {
        return Err(format!(
            "CONNECT answered {} {}",
            resp.head.status, resp.head.reason
        ));
    }
    Ok((tunnel, rest))
}

/// Holds a CSTP tunnel: answers DPD requests, sends one every 30 s, ignores data. Returns
/// why it ended.
async fn hold(mut stream: Tls, mut buf: Vec<u8>) -> String {
    let mut chunk = vec![0u8; 4096];
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.tick().await;
    loop {
        while buf.len() >= CSTP_HEADER_LEN {
            if buf.get(..4) != Some(b"STF\x01".as_slice()) {
                return "bad CSTP frame from the server".to_string();
            }
            let len = usize::from(u16::from_be_bytes([
                buf.get(4).copied().unwrap_or(0),
                buf.get(5).copied().unwrap_or(0),
            ]));
            if buf.len() < CSTP_HEADER_LEN + len {
                break;
            }
            let code = buf.get(6).copied().unwrap_or(0);
            let payload = buf
                .get(CSTP_HEADER_LEN..CSTP_HEADER_LEN + len)
                .unwrap_or_default()
                .to_vec();
            buf.drain(..CSTP_HEADER_LEN + len);
            match PacketType::from_code(code) {
                Some(PacketType::DpdRequest) => {
                    let mut out = Vec::new();
                    if emit_cstp(PacketType::DpdResponse, &payload, &mut out).is_ok() {
                        if let Err(e) = stream.write_all(&out).await {
                            return format!("write: {e}");
                        }
                    }
                }
                Some(PacketType::Disconnect | PacketType::Terminate) => {
                    return "the server disconnected the session".to_string();
                }
                _ => {}
            }
        }
        tokio::select! {
            r = stream.read(&mut chunk) => match r {
                Ok(0) => return "the server closed the connection".to_string(),
                Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) => return format!("read: {e}"),
            },
            _ = tick.tick() => {
                let mut out = Vec::new();
                if emit_cstp(PacketType::DpdRequest, &[], &mut out).is_ok() {
                    if let Err(e) = stream.write_all(&out).await {
                        return format!("write: {e}");
                    }
                }
            }
        }
    }
}
