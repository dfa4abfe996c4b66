//! Log output shared by the binaries, as openconnect and ocserv print it: information on
//! stdout, errors on stderr (or everything on stderr when stdout carries machine-readable
//! output), optional timestamps, or syslog (`-l`, or a daemonised server).

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

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
}

pub fn init(settings: LogSettings) {
    let max = match settings.level {
        0 => Level::ERROR,
        1 => Level::INFO,
        2 => Level::DEBUG,
        _ => Level::TRACE,
    };
    let sink = Sink { settings };
    let builder = tracing_subscriber::fmt()
        .with_max_level(max)
        .with_target(false)
        .with_level(false)
        .with_ansi(false)
        .with_writer(sink);
    if settings.timestamp && !settings.syslog {
        builder.init();
    } else {
        builder.without_time().init();
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
            let priority = match *meta.level() {
                Level::ERROR => 3,
                Level::WARN => 4,
                Level::INFO => 6,
                _ => 7,
            };
            return Output::Syslog {
                program: self.settings.program,
                priority,
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
        priority: u8,
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
            // Facility LOG_DAEMON (3 << 3). A lost log line is not worth failing over.
            let text = String::from_utf8_lossy(line);
            let msg = format!(
                "<{}>{}[{}]: {}",
                24 + u32::from(*priority),
                program,
                std::process::id(),
                text.trim_end()
            );
            if let Ok(sock) = UnixDatagram::unbound() {
                let _ = sock.send_to(msg.as_bytes(), "/dev/log");
            }
        }
    }
}
