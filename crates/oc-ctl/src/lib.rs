//! Everything about ocserv's control tool `occtl` except I/O.
//!
//! The ocserv-compatible server serves a unix control socket and the `occtl`
//! binary talks to it; both link this crate so that they agree on every
//! byte. The crate is sans-IO: it opens no sockets or files and never reads
//! the clock (callers pass "now" as unix seconds).
//!
//! The work is split in four steps:
//!
//! 1. **The server fills the model** ([`model`]): [`UserInfo`] per tunnel,
//!    [`ServerStatus`], [`SessionInfo`] per session cookie, [`BanInfo`],
//!    [`IrouteInfo`] and [`Event`]s — plain serde data, no behaviour.
//! 2. **occtl parses what the administrator typed** ([`command`]):
//!    [`parse_words`] / [`parse_line`] turn `show user alice` into
//!    [`Command::Remote`]`(`[`Request::ShowUser`]`("alice"))` following
//!    ocserv's matching rules, and [`help_text`] / [`help_output`] print
//!    ocserv's help.
//! 3. **The protocol carries it** ([`proto`]): versioned, newline-delimited
//!    JSON. occtl sends [`encode_request`], the server reads lines with a
//!    bounded [`LineBuffer`], [`decode_request`]s them, builds a
//!    [`Response`] from the model and sends [`encode_response`]; occtl
//!    [`decode_response`]s it.
//! 4. **occtl renders it** ([`mod@render`]): [`render()`] produces exactly what
//!    ocserv's occtl prints — text tables and key/value blocks, or
//!    `--json` — plus the exit status, as an [`Output`] the binary writes
//!    to stdout/stderr.
//!
//! A minimal client exchange, without the socket:
//!
//! ```
//! use oc_ctl::*;
//!
//! let Command::Remote(req) = parse_words(&["show", "users"]).unwrap() else { unreachable!() };
//! let wire = encode_request(&req);
//! // ... server side ...
//! let got = decode_request(&wire).unwrap();
//! assert_eq!(got, Request::ShowUsers);
//! let reply = encode_response(&Response::Users(vec![]));
//! // ... client side ...
//! let resp = decode_response(&reply).unwrap();
//! let out = render(&req, &resp, &RenderOptions::text(1_700_000_000));
//! assert_eq!(out.stdout, "");
//! assert_eq!(out.exit_code, 0);
//! ```

pub mod command;
pub mod error;
pub mod model;
pub mod proto;
pub mod render;

pub use command::{
    help_for, help_output, help_text, parse_line, parse_words, Command, MAX_ARG_LEN,
};
pub use error::CtlError;
pub use model::{
    session_id_matches, state, BanInfo, Event, IrouteInfo, ServerStatus, SessionInfo, UserInfo,
};
pub use proto::{
    decode_request, decode_response, encode_request, encode_response, LineBuffer, Request,
    Response, MAX_REQUEST_LINE, MAX_RESPONSE_LINE, PROTOCOL_VERSION,
};
pub use render::{
    render, render_unreachable, Format, Output, RenderOptions, ERR_SERVER_UNREACHABLE, EVENTS_HINT,
};
