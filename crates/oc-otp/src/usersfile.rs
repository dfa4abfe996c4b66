//! liboath users files (placeholder until written).

/// A problem with a liboath users file.
#[derive(Debug, thiserror::Error)]
pub enum UsersFileError {
    #[error("{line}: {problem}")]
    Malformed { line: usize, problem: String },
}
