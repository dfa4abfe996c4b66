//! Log output shared by the binaries, as openconnect and ocserv print it: information on
//! stdout, errors on stderr (or everything on stderr when stdout carries machine-readable
//! output), optional timestamps, or syslog (`-l`, or a daemonised server).
//!
//! Two formats: `text` is the message alone, one line per event, as the C programs print
//! (spans such as the server's per-session one are not shown); `json` is one JSON object
//! per line with a timestamp, level, the message and its fields, and the spans it happened
//! in (user and session id for a server session).

use std::fmt;
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy)]
pub struct LogSettings {
    /// Program name for syslog lines.
    pub program: &'static str,
    /// 0 errors, 1 info, 2 debug, 3 trace.
    pub level: u8,
    pub timestamp: bool,
    pub syslog: bool,
    /// Keep stdout for `--authenticate`/`--cookieonly` output.
    pub stdout_reserved: bool,
    pub format: LogFormat,
    /// The syslog facility code (3, daemon, unless `--syslog-facility` says otherwise).
    pub facility: u8,
}

/// The facility code of a syslog facility name, as ocserv's `--syslog-facility` takes them.
pub fn facility_code(name: &str) -> Option<u8> {
    Some(match name {
        "user" => 1,
        "daemon" => 3,
        "auth" => 4,
        "authpriv" => 10,
        _ => {
            let n: u8 = name.strip_prefix("local")?.parse().ok()?;
            if n > 7 || name.len() != 6 {
                return None;
            }
            16 + n
        }
    })
}

/// The facility of the daemons (ocserv's default).
pub const FACILITY_DAEMON: u8 = 3;

pub fn init(settings: LogSettings) {
    if settings.syslog {
        // Connected now, while /dev/log is reachable: a process that later chroots (the
        // server's network process) keeps logging through this socket.
        let _ = SYSLOG.set(
            UnixDatagram::unbound()
                .and_then(|s| s.connect(SYSLOG_PATH).map(|()| s))
                .ok(),
        );
    }
    let max = match settings.level {
        0 => Level::ERROR,
        1 => Level::INFO,
        2 => Level::DEBUG,
        _ => Level::TRACE,
    };
    let sink = Sink { settings };
    let builder = tracing_subscriber::fmt()
        .with_max_level(max)
        .with_ansi(false)
        .with_writer(sink);
    match settings.format {
        LogFormat::Json => builder
            .json()
            .with_target(false)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
        LogFormat::Text => builder
            .event_format(Plain {
                timestamp: settings.timestamp && !settings.syslog,
            })
            .init(),
    }
}

const SYSLOG_PATH: &str = "/dev/log";

/// The syslog socket connected at [`init`], when syslog is on and /dev/log answered.
static SYSLOG: OnceLock<Option<UnixDatagram>> = OnceLock::new();

/// Sends one syslog datagram: on the socket connected at start, else (no socket yet, or
/// syslog restarted since) on a fresh one.
fn send_syslog(msg: &[u8]) {
    let sent = SYSLOG
        .get()
        .and_then(Option::as_ref)
        .is_some_and(|sock| sock.send(msg).is_ok());
    if !sent {
        if let Ok(sock) = UnixDatagram::unbound() {
            let _ = sock.send_to(msg, SYSLOG_PATH);
        }
    }
}

/// The message and its fields, optionally after a timestamp; no level, target or spans.
#[derive(Debug, Clone, Copy)]
struct Plain {
    timestamp: bool,
}

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.timestamp {
            SystemTime.format_time(&mut writer)?;
            writer.write_char(' ')?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[derive(Debug, Clone, Copy)]
struct Sink {
    settings: LogSettings,
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Output;

    fn make_writer(&'a self) -> Self::Writer {
        Output::Stderr
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        if self.settings.syslog {
            let priority: u16 = match *meta.level() {
                Level::ERROR => 3,
                Level::WARN => 4,
                Level::INFO => 6,
                _ => 7,
            };
            return Output::Syslog {
                program: self.settings.program,
                priority: u16::from(self.settings.facility) * 8 + priority,
                line: Vec::new(),
            };
        }
        if *meta.level() <= Level::WARN || self.settings.stdout_reserved {
            Output::Stderr
        } else {
            Output::Stdout
        }
    }
}

#[derive(Debug)]
pub enum Output {
    Stdout,
    Stderr,
    /// Collects one message and sends it to /dev/log when dropped.
    Syslog {
        program: &'static str,
        /// Facility × 8 + severity.
        priority: u16,
        line: Vec<u8>,
    },
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Stdout => io::stdout().write(buf),
            Self::Stderr => io::stderr().write(buf),
            Self::Syslog { line, .. } => {
                line.extend_from_slice(buf);
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Stdout => io::stdout().flush(),
            Self::Stderr => io::stderr().flush(),
            Self::Syslog { .. } => Ok(()),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Self::Syslog {
            program,
            priority,
            line,
        } = self
        {
            // A lost log line is not worth failing over.
            let text = String::from_utf8_lossy(line);
            let msg = format!(
                "<{}>{}[{}]: {}",
                priority,
                program,
                std::process::id(),
                text.trim_end()
            );
            send_syslog(msg.as_bytes());
        }
    }
}
