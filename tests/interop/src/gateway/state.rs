//! What a gateway keeps between requests: a lock that survives a panicked task, random
//! tokens, and bounded lists of what it remembers.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::MAX_REMEMBERED;

/// A poisoned lock only means another task panicked mid-update; the data is still usable
/// for a test gateway, and refusing service would hide the first failure.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // OpenSSL fails here only when it cannot seed, and then the TLS handshakes would fail
    // too; zeroes would still make a working test value.
    let _ = openssl::rand::rand_bytes(&mut buf);
    buf
}

pub fn random_hex<const N: usize>() -> String {
    random_bytes::<N>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends `item`, forgetting the oldest when [`MAX_REMEMBERED`] are already there.
pub fn remember<T>(list: &mut VecDeque<T>, item: T) {
    if list.len() >= MAX_REMEMBERED {
        list.pop_front();
    }
    list.push_back(item);
}
