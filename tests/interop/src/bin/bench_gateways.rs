//! Throughput of the protocols whose servers cannot run here: Debian's openconnect 9.01 and
//! our client, each against our test gateways in the same run (Fortinet over DTLS and TLS,
//! GlobalProtect over ESP and TLS), upload and download (iperf3 TCP through the tunnel to
//! the host behind the gateway). The gateway is ours for both clients; the ratio compares
//! clients.
//!
//!   bench_gateways [--quick] [--out DIR]     (as root; run by bench/run.sh)

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use ferroconnect_interop::gateway_lab::{GatewayLab, Vendor};
use serde_json::{json, Value};

/// A gateway and the channel its tunnel runs over.
#[derive(Debug, Clone, Copy)]
enum Carrier {
    FortinetDtls,
    FortinetTls,
    GpEsp,
    GpTls,
}

impl Carrier {
    const ALL: [Self; 4] = [
        Self::FortinetDtls,
        Self::FortinetTls,
        Self::GpEsp,
        Self::GpTls,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::FortinetDtls => "fortinet DTLS",
            Self::FortinetTls => "fortinet TLS",
            Self::GpEsp => "gp ESP",
            Self::GpTls => "gp TLS",
        }
    }

    fn vendor(self) -> Vendor {
        match self {
            Self::FortinetDtls | Self::FortinetTls => Vendor::Fortinet,
            Self::GpEsp | Self::GpTls => Vendor::Gp,
        }
    }

    /// The client's options for this carrier.
    fn client_args(self) -> &'static [&'static str] {
        match self {
            Self::FortinetDtls | Self::GpEsp => &[],
            Self::FortinetTls | Self::GpTls => &["--no-dtls"],
        }
    }

    /// Whether the gateway's log says the tunnel runs over the datagram channel.
    fn over_udp(self, gateway_log: &str) -> bool {
        match self.vendor() {
            Vendor::Gp => gateway_log.contains("ESP tunnel "),
            _ => gateway_log.contains("DTLS tunnel for session"),
        }
    }

    fn wants_udp(self) -> bool {
        matches!(self, Self::FortinetDtls | Self::GpEsp)
    }
}

struct Settings {
    seconds: u32,
    repetitions: usize,
    out: PathBuf,
}

fn settings() -> Result<Settings, String> {
    let mut s = Settings {
        seconds: 4,
        repetitions: 3,
        out: PathBuf::from("target/bench"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => {
                s.seconds = 2;
                s.repetitions = 1;
            }
            "--out" => s.out = PathBuf::from(args.next().ok_or("--out needs a directory")?),
            other => return Err(format!("bench_gateways: unknown argument {other}")),
        }
    }
    Ok(s)
}

/// One client's tunnel through the gateway, measured both ways: Mbit/s up and down.
fn measure(carrier: Carrier, real_client: bool, seconds: u32) -> Result<(f64, f64), String> {
    let run = std::panic::catch_unwind(|| {
        let mut lab = GatewayLab::start("bench-gw", carrier.vendor(), &[], real_client);
        lab.spawn_client(carrier.client_args());
        if !lab.lab.ping_behind(Duration::from_secs(30)) {
            return Err(format!("no tunnel:\n{}", lab.logs()));
        }
        if carrier.over_udp(&lab.gateway_log()) != carrier.wants_udp() {
            return Err(format!(
                "the tunnel did not run over {}:\n{}",
                carrier.name(),
                lab.logs()
            ));
        }
        let up = iperf_mbits(&lab, &format!("-J -t {seconds}"))?;
        let down = iperf_mbits(&lab, &format!("-J -t {seconds} -R"))?;
        Ok((up, down))
    });
    run.map_err(|_| "the measurement panicked (see its output)".to_string())?
}

/// iperf3's received rate in Mbit/s.
fn iperf_mbits(lab: &GatewayLab, args: &str) -> Result<f64, String> {
    let out = lab.lab.iperf(args);
    let text = String::from_utf8_lossy(&out.stdout);
    let json: Value =
        serde_json::from_str(&text).map_err(|e| format!("iperf3 {args}: {e}: {text}"))?;
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e6)
        .ok_or_else(|| format!("iperf3 {args} reported no rate: {text}"))
}

fn median(mut samples: Vec<f64>) -> Option<f64> {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied()
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "error".into(), |v| format!("{v:.0}"))
}

fn main() {
    let s = match settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut table = String::from(
        "| our gateway, carrier | direction | openconnect 9.01 Mbit/s | ours Mbit/s | ours/9.01 |\n|---|---|---|---|---|\n",
    );
    let mut raw = Vec::new();
    for carrier in Carrier::ALL {
        let mut rates: [[Vec<f64>; 2]; 2] = Default::default();
        for (client, real) in [(0, true), (1, false)] {
            for _ in 0..s.repetitions {
                match measure(carrier, real, s.seconds) {
                    Ok((up, down)) => {
                        rates[client][0].push(up);
                        rates[client][1].push(down);
                    }
                    Err(e) => eprintln!("bench_gateways: {} {}: {e}", carrier.name(), client),
                }
            }
        }
        for (dir, name) in [(0, "upload"), (1, "download")] {
            let theirs = median(rates[0][dir].clone());
            let ours = median(rates[1][dir].clone());
            let ratio = theirs
                .zip(ours)
                .map_or_else(|| "-".into(), |(t, o)| format!("{:.2}", o / t));
            let _ = writeln!(
                table,
                "| {} | {name} | {} | {} | {ratio} |",
                carrier.name(),
                cell(theirs),
                cell(ours)
            );
            raw.push(json!({
                "carrier": carrier.name(), "direction": name,
                "theirs": rates[0][dir], "ours": rates[1][dir],
            }));
        }
    }
    println!("{table}");
    let _ = std::fs::create_dir_all(&s.out);
    let _ = std::fs::write(s.out.join("gateway-results.md"), &table);
    let _ = std::fs::write(
        s.out.join("gateway-results.json"),
        serde_json::to_string_pretty(&raw).unwrap_or_default(),
    );
}
