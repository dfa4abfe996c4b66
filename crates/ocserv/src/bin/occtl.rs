//! occtl: the control tool of the ocserv-compatible server. Commands and output follow
//! ocserv's occtl; the socket protocol is ours (see the oc-ctl crate).

use std::io::{IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command as Process, ExitCode, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use oc_ctl::proto::{decode_response, encode_request, LineBuffer, Request, Response};
use oc_ctl::render::{self, Format, Output, RenderOptions, EVENTS_HINT};
use oc_ctl::{help_output, parse_line, parse_words, Command};

/// How long to wait for the server's answer.
const ANSWER_LIMIT: Duration = Duration::from_secs(30);

const AFTER_HELP: &str = "\
COMMANDS
    show status | users | user NAME | id ID | sessions all|valid | session SID
    show ip bans | ip ban points | iroutes | events
    disconnect user NAME | id ID       drop the tunnel and end its session
    terminate user NAME | id ID | session SID
                                       also end the user's or session's cookies
    unban ip IP | reload | stop now | help
  Without a command, occtl reads commands at a prompt (with history).

OUTPUT
    Text and JSON (-j) follow ocserv 1.x's occtl, field for field; times are UTC. The
    server must have use-occtl = true; the socket (occtl-socket-file, default
    /var/run/occtl.socket) is root's only.

EXIT STATUS
    0  success; 1  failure (server unreachable, command refused); 2  user or id not found";

#[derive(Debug, Parser)]
#[command(
    name = "occtl",
    version,
    about = "Control a running ocserv (ferroconnect)",
    after_help = AFTER_HELP,
    disable_version_flag = true
)]
struct Cli {
    /// Print JSON instead of text
    #[arg(short = 'j', long = "json")]
    json: bool,
    /// Do not page long output through $PAGER
    #[arg(short = 'n', long = "no-pager")]
    no_pager: bool,
    /// The server's control socket
    #[arg(short = 's', long = "socket-file", value_name = "FILE")]
    socket_file: Option<PathBuf>,
    /// Show more detail (debug counters in show status)
    #[arg(short = 'd', long = "debug")]
    debug: bool,
    /// Print the version and exit
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: (),
    /// The command, e.g. `show users` (none: interactive prompt)
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    command: Vec<String>,
}

struct Ctl {
    socket: PathBuf,
    format: Format,
    debug: bool,
    pager: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctl = Ctl {
        socket: cli
            .socket_file
            .unwrap_or_else(|| PathBuf::from(ocserv::config::defaults::OCCTL_SOCKET)),
        format: if cli.json { Format::Json } else { Format::Text },
        debug: cli.debug,
        pager: !cli.no_pager && std::io::stdout().is_terminal(),
    };
    if cli.command.is_empty() {
        return interactive(&ctl);
    }
    let code = match parse_words(&cli.command) {
        Ok(command) => ctl.run(command, &cli.command.join(" "), false),
        Err(e) => {
            eprintln!("occtl: {e}");
            1
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

impl Ctl {
    fn options(&self) -> RenderOptions {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        RenderOptions {
            format: self.format,
            now_unix: now,
            debug: self.debug,
            utc_offset_secs: 0,
        }
    }

    /// Runs one command; returns the exit status.
    fn run(&self, command: Command, line: &str, interactive: bool) -> i32 {
        match command {
            Command::Help => {
                print!("{}", help_output(line, interactive));
                0
            }
            Command::Exit => 0,
            Command::Reset => {
                // Clear the screen and home the cursor.
                print!("\x1b[2J\x1b[H");
                0
            }
            Command::Remote(request) if request.is_streaming() => self.events(&request),
            Command::Remote(request) => {
                let opts = self.options();
                let output = match self.ask(&request) {
                    Ok(response) => render::render(&request, &response, &opts),
                    Err(why) => {
                        let mut out = render::render_unreachable(&request, &opts);
                        out.stderr = format!("occtl: {why}\n{}", out.stderr);
                        out
                    }
                };
                self.show(&output)
            }
        }
    }

    fn connect(&self) -> Result<UnixStream, String> {
        let stream = UnixStream::connect(&self.socket)
            .map_err(|e| format!("cannot connect to {}: {e}", self.socket.display()))?;
        stream
            .set_read_timeout(Some(ANSWER_LIMIT))
            .map_err(|e| e.to_string())?;
        Ok(stream)
    }

    /// One request, one response line.
    fn ask(&self, request: &Request) -> Result<Response, String> {
        let mut stream = self.connect()?;
        stream
            .write_all(&encode_request(request))
            .map_err(|e| format!("cannot send to the server: {e}"))?;
        let mut lines = LineBuffer::for_responses();
        next_response(&mut stream, &mut lines)?
            .ok_or_else(|| "the server closed the connection".into())
    }

    /// `show events`: the current users, then each connect and disconnect as it happens.
    fn events(&self, request: &Request) -> i32 {
        let mut stream = match self.connect() {
            Ok(s) => s,
            Err(why) => {
                eprintln!("occtl: {why}");
                return self.show(&render::render_unreachable(request, &self.options()));
            }
        };
        // Events may be hours apart.
        let _ = stream.set_read_timeout(None);
        if stream.write_all(&encode_request(request)).is_err() {
            return 1;
        }
        if self.format == Format::Text {
            eprint!("{EVENTS_HINT}");
        }
        let mut lines = LineBuffer::for_responses();
        loop {
            match next_response(&mut stream, &mut lines) {
                Ok(Some(response)) => {
                    let out = render::render(request, &response, &self.options());
                    print!("{}", out.stdout);
                    eprint!("{}", out.stderr);
                    let _ = std::io::stdout().flush();
                }
                Ok(None) => return 0,
                Err(why) => {
                    eprintln!("occtl: {why}");
                    return 1;
                }
            }
        }
    }

    fn show(&self, output: &Output) -> i32 {
        eprint!("{}", output.stderr);
        if self.pager && output.stdout.lines().count() > terminal_rows() {
            page(&output.stdout);
        } else {
            print!("{}", output.stdout);
        }
        output.exit_code
    }
}

/// Reads until a whole response line arrived; `None` at end of stream.
fn next_response(
    stream: &mut UnixStream,
    lines: &mut LineBuffer,
) -> Result<Option<Response>, String> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match lines.next_line() {
            Ok(Some(line)) => return decode_response(&line).map(Some).map_err(|e| e.to_string()),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("no answer from the server: {e}"))?;
        if n == 0 {
            return Ok(None);
        }
        lines
            .push(buf.get(..n).unwrap_or_default())
            .map_err(|e| e.to_string())?;
    }
}

fn terminal_rows() -> usize {
    std::env::var("LINES")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(24)
}

/// Shows `text` through $PAGER (default `less`, with ocserv's LESS=FRSX).
fn page(text: &str) {
    let pager = std::env::var("PAGER").unwrap_or_else(|_| "less".into());
    let child = Process::new("/bin/sh")
        .arg("-c")
        .arg(&pager)
        .env(
            "LESS",
            std::env::var("LESS").unwrap_or_else(|_| "FRSX".into()),
        )
        .stdin(Stdio::piped())
        .spawn();
    match child {
        Ok(mut child) => {
            if let Some(mut input) = child.stdin.take() {
                let _ = input.write_all(text.as_bytes());
            }
            let _ = child.wait();
        }
        Err(_) => print!("{text}"),
    }
}

fn interactive(ctl: &Ctl) -> ExitCode {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("occtl: cannot read commands: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        let line = match editor.readline("occtl> ") {
            Ok(line) => line,
            // End of input or Ctrl-C.
            Err(_) => return ExitCode::SUCCESS,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        match parse_line(line) {
            Ok(Command::Exit) => return ExitCode::SUCCESS,
            Ok(command) => {
                ctl.run(command, line, true);
            }
            Err(e) => eprintln!("{e}"),
        }
    }
}
