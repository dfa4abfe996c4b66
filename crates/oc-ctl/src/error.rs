//! The single error type of this crate.

use thiserror::Error;

/// Everything that can go wrong while framing, decoding or parsing control
/// traffic and occtl command lines.
///
/// Every variant carries enough context to print a useful one-line message
/// (its `Display`), so callers can show it to an administrator unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CtlError {
    /// A protocol line is longer than the limit for its direction. `len` is
    /// the number of bytes seen so far (the real line may be longer still).
    #[error("control line too long: {len} bytes exceeds the limit of {max} bytes")]
    LineTooLong {
        /// Bytes seen (at least).
        len: usize,
        /// The limit that was exceeded.
        max: usize,
    },

    /// A [`crate::LineBuffer`] refused an oversized line earlier; the stream
    /// cannot be resynchronised and must be closed.
    #[error("control stream unusable after an oversized line; close the connection")]
    StreamPoisoned,

    /// The line is not a JSON envelope of the expected shape.
    #[error("malformed control message: {0}")]
    Malformed(String),

    /// The envelope has no usable `version` field.
    #[error("control message carries no protocol version (expected \"version\": {expected})")]
    MissingVersion {
        /// The version this build speaks.
        expected: u32,
    },

    /// The peer speaks another protocol version.
    #[error(
        "unsupported control protocol version {got}: this build speaks version {expected}; \
         use an occtl from the same release as the server"
    )]
    VersionMismatch {
        /// The version found in the envelope.
        got: u64,
        /// The version this build speaks.
        expected: u32,
    },

    /// The command line holds nothing but whitespace.
    #[error("no command given; use help or '?' to get a list of the available commands")]
    EmptyCommand,

    /// A word of the command line matches no command.
    #[error("unknown command: {input}: unexpected word '{word}'{position}; expected {expected}")]
    UnknownCommand {
        /// The (whitespace-normalised) command line.
        input: String,
        /// The first word that matched nothing.
        word: String,
        /// Where the word was found, e.g. `" after 'show ip'"` or `""`.
        position: String,
        /// What would have been accepted there.
        expected: String,
    },

    /// The command line stops before naming a complete command
    /// (e.g. `show ip`).
    #[error("incomplete command '{input}': it must be followed by {expected}")]
    IncompleteCommand {
        /// The (whitespace-normalised) command line.
        input: String,
        /// The words that may follow.
        expected: String,
    },

    /// A command that needs an argument got none.
    #[error("{command} needs {expected}")]
    MissingArgument {
        /// The command, e.g. `disconnect user`.
        command: String,
        /// What it needs, e.g. `a user NAME`.
        expected: String,
    },

    /// A command's argument is not of the expected form.
    #[error("{command} needs {expected}, got '{got}'")]
    InvalidArgument {
        /// The command, e.g. `disconnect id`.
        command: String,
        /// What it needs.
        expected: String,
        /// What was given.
        got: String,
    },

    /// A command that takes no argument was given one.
    #[error("{command} takes no argument, got '{got}'")]
    UnexpectedArgument {
        /// The command, e.g. `show users`.
        command: String,
        /// The extra text.
        got: String,
    },

    /// An argument is longer than [`crate::MAX_ARG_LEN`].
    #[error("{command}: argument of {len} bytes is longer than the limit of {max} bytes")]
    ArgumentTooLong {
        /// The command.
        command: String,
        /// Length of the argument.
        len: usize,
        /// The limit.
        max: usize,
    },
}
