//! The gateways' log: each line with the seconds since start and the program's name, to
//! stderr and, when one was given, the log file. The `log!` macro (in `mod.rs`) formats into
//! [`log_line`].

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use super::lock;

static START: OnceLock<Instant> = OnceLock::new();
static PROGRAM: OnceLock<&'static str> = OnceLock::new();
static LOG_FILE: OnceLock<Mutex<File>> = OnceLock::new();

/// Names the program in every log line and opens `file` (appending) when given. Call once,
/// first thing in `main`.
pub fn init_log(program: &'static str, file: Option<&Path>) -> Result<(), String> {
    START.get_or_init(Instant::now);
    let _ = PROGRAM.set(program);
    if let Some(path) = file {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let _ = LOG_FILE.set(Mutex::new(file));
    }
    Ok(())
}

/// One log line, with seconds since start, to stderr and the log file.
pub fn log_line(args: fmt::Arguments<'_>) {
    let elapsed = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    let program = PROGRAM.get().copied().unwrap_or("gateway");
    let line = format!("[{elapsed:8.3}] {program}: {args}");
    // Not eprintln!: a closed stderr must not panic the gateway.
    let _ = writeln!(std::io::stderr(), "{line}");
    if let Some(file) = LOG_FILE.get() {
        let _ = writeln!(lock(file), "{line}");
    }
}

/// A kind of log line that a hostile peer could make endless (stray datagrams, forged
/// packets): written at most once a second, with how many went unwritten since.
#[derive(Debug, Default)]
pub struct Throttle {
    logged: Option<Instant>,
    unlogged: u64,
}

impl Throttle {
    /// Logs `line` unless one went out less than a second ago (then only counts it).
    pub fn log(&mut self, line: fmt::Arguments<'_>) {
        let now = Instant::now();
        if self
            .logged
            .is_some_and(|at| now.duration_since(at) < std::time::Duration::from_secs(1))
        {
            self.unlogged += 1;
            return;
        }
        log_line(format_args!(
            "{line} ({} more since the last such line)",
            self.unlogged
        ));
        self.logged = Some(now);
        self.unlogged = 0;
    }
}
