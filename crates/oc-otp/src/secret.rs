//! Token secret formats (being written).

/// A malformed token secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("token secret is malformed: {0}")]
    Malformed(String),
}
