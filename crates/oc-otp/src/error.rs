//! The error type at this crate's boundary. Each module has a detailed enum of its own;
//! [`OtpError`] carries whichever one a caller ran into. Messages never contain secrets.

/// Any failure of this crate.
#[derive(Debug, thiserror::Error)]
pub enum OtpError {
    #[error(transparent)]
    Secret(#[from] crate::secret::SecretError),
    #[error(transparent)]
    SecurId(#[from] crate::securid::SecurIdError),
    #[error(transparent)]
    YubiKey(#[from] crate::yubikey::YubiKeyError),
    #[error(transparent)]
    UsersFile(#[from] crate::usersfile::UsersFileError),
}
