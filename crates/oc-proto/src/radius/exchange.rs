//! When to send a request again and when to move to the next server, as radcli does:
//! each server gets `retries` sends, each waiting `timeout` for an answer; then the next
//! server in the configured order; after the last, the request has failed.

use std::time::Duration;

/// What the shell does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Send (or send again) to server `server` and wait `wait` for the reply.
    Send {
        server: usize,
        /// The first send to this server: encode the request for its secret.
        first: bool,
        wait: Duration,
    },
    /// Every server had its tries.
    Exhausted,
}

/// One request's schedule over the configured servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    servers: usize,
    tries_per_server: u32,
    wait: Duration,
    server: usize,
    tries: u32,
}

impl Exchange {
    /// `retries` as radcli's `radius_retries` (at least one send per server), `timeout` as
    /// its `radius_timeout`.
    pub fn new(servers: usize, retries: u32, timeout: Duration) -> Self {
        Self {
            servers,
            tries_per_server: retries.max(1),
            wait: timeout.max(Duration::from_millis(100)),
            server: 0,
            tries: 0,
        }
    }

    /// The next send after the last one got no (valid) answer within its wait.
    pub fn next_attempt(&mut self) -> Attempt {
        if self.tries >= self.tries_per_server {
            self.server += 1;
            self.tries = 0;
        }
        if self.server >= self.servers {
            return Attempt::Exhausted;
        }
        self.tries += 1;
        Attempt::Send {
            server: self.server,
            first: self.tries == 1,
            wait: self.wait,
        }
    }
}
