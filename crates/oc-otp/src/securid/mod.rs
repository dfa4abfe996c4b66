//! RSA SecurID software tokens (placeholder until written).

/// A problem with a SecurID token.
#[derive(Debug, thiserror::Error)]
pub enum SecurIdError {
    #[error("SecurID token string is malformed: {0}")]
    Malformed(String),
}
