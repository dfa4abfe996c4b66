//! `openconnect`: the multi-protocol SSL VPN client (AnyConnect, Fortinet, F5, nullppp).

use std::process::ExitCode;

use oc_net::log::{self, LogSettings};
use openconnect::cli::{Options, PROTOCOL_VERSION};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // bash's completion function: `openconnect --autocomplete WORD...` with COMP_CWORD.
    if args.len() > 2 && args[1] == "--autocomplete" {
        return autocomplete(&args[2..]);
    }
    let opts = match Options::from_args(args) {
        Ok(o) => o,
        Err(e) => {
            let _ = e.print();
            // openconnect exits 1 on usage errors; help goes to stdout and exits 0.
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if opts.version {
        println!(
            "OpenConnect version {PROTOCOL_VERSION} (ferroconnect {})",
            env!("CARGO_PKG_VERSION")
        );
        println!("Using OpenSSL. Features present: TLS, client certificates");
        println!("{}", openconnect::protocol::version_line());
        return ExitCode::SUCCESS;
    }
    log::init(LogSettings {
        program: "openconnect",
        level: opts.log_level(),
        timestamp: opts.timestamp,
        syslog: opts.syslog,
        stdout_reserved: opts.authenticate || opts.cookieonly || opts.printcookie,
        format: opts.log_format,
        facility: log::FACILITY_DAEMON,
    });
    // One thread: the client runs one tunnel, and `-b` forks after start-up, which is only
    // sound while the process has a single thread.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the event loop: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(openconnect::run(opts)) {
        Ok(done) => {
            if !done.0.is_empty() {
                tracing::info!("{}", done.0);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

/// Prints the completions for bash (see `openconnect::complete`).
fn autocomplete(words: &[std::ffi::OsString]) -> ExitCode {
    use std::io::Write;
    match openconnect::complete::autocomplete(words, std::env::var_os("COMP_CWORD").as_deref()) {
        Ok(lines) => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&lines).and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(1),
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
