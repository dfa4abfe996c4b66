//! `-S/--script-tun`: instead of a tun device, the vpnc-script itself takes the tunnel's
//! packets (ocproxy, tunsocks): it runs once, in a process group of its own, with the
//! tunnel's variables and `VPNFD`, its end of a datagram socket pair carrying one IP packet
//! per datagram. No root is needed. As openconnect, the group gets SIGHUP at the end.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::signal::{killpg, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::Pid;
use tokio::net::UnixDatagram;
use tokio::sync::watch;

use crate::script::{script_command, ScriptError};

/// The script's side of the tunnel.
#[derive(Debug)]
pub struct ScriptTun {
    socket: UnixDatagram,
    /// The same socket for sends, unmediated: a send must not wait for the runtime to
    /// have seen the socket writable.
    sender: std::os::unix::net::UnixDatagram,
    group: Pid,
    /// Why the script is gone, once it is.
    exited: watch::Receiver<Option<String>>,
}

impl ScriptTun {
    /// Starts `script` with `env` (the tunnel's variables) and `VPNFD`. Needs a Tokio
    /// runtime: a task waits for the script to end.
    pub fn spawn(script: &str, env: Vec<(String, String)>) -> Result<Self, ScriptError> {
        let failed = |source: io::Error| ScriptError::Spawn {
            script: script.to_string(),
            source,
        };
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| failed(e.into()))?;
        // The script's end alone crosses the exec.
        fcntl(&theirs, FcntlArg::F_SETFD(FdFlag::empty())).map_err(|e| failed(e.into()))?;
        let mut command = script_command(script, env);
        command
            .env("VPNFD", theirs.as_raw_fd().to_string())
            .process_group(0);
        let child = tokio::process::Command::from(command)
            .spawn()
            .map_err(failed)?;
        drop(theirs);
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw)
            .ok_or_else(|| failed(io::Error::other("the script has no process id")))?;
        let (socket, sender) = datagram(ours).map_err(failed)?;
        let (tell, exited) = watch::channel(None);
        tokio::spawn(async move {
            let mut child = child;
            let why = match child.wait().await {
                Ok(status) => format!("the -S script exited ({status})"),
                Err(e) => format!("the -S script cannot be waited for: {e}"),
            };
            let _ = tell.send(Some(why));
        });
        Ok(Self {
            socket,
            sender,
            group,
            exited,
        })
    }

    /// The next packet from the script. When the script has ended: a `BrokenPipe` error
    /// saying how.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut exited = self.exited.clone();
        tokio::select! {
            read = self.socket.recv(buf) => read,
            gone = exited.wait_for(Option::is_some) => {
                let why = match gone {
                    Ok(why) => why.clone().unwrap_or_default(),
                    Err(_) => "the -S script's watcher ended".to_string(),
                };
                Err(io::Error::new(io::ErrorKind::BrokenPipe, why))
            }
        }
    }

    /// Hands a packet to the script without waiting; a full socket drops it, as a link
    /// would.
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        match self.sender.send(packet) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other.map(drop),
        }
    }
}

impl Drop for ScriptTun {
    fn drop(&mut self) {
        // The whole group, as openconnect: the script's helpers go too.
        let _ = killpg(self.group, Signal::SIGHUP);
    }
}

/// The socket for the runtime, and a second handle on it for direct sends.
fn datagram(fd: OwnedFd) -> io::Result<(UnixDatagram, std::os::unix::net::UnixDatagram)> {
    let socket = std::os::unix::net::UnixDatagram::from(fd);
    socket.set_nonblocking(true)?;
    let sender = socket.try_clone()?;
    Ok((UnixDatagram::from_std(socket)?, sender))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A script that echoes one packet back, then exits: the packet comes back through the
    /// pair, and the exit is reported as a broken pipe naming the status.
    #[tokio::test]
    async fn packets_cross_the_pair_and_the_exit_is_seen() {
        let script =
            "python3 -c 'import os,socket; s=socket.socket(fileno=int(os.environ[\"VPNFD\"])); \
                      s.send(s.recv(2000) + os.environ[\"INTERNAL_IP4_ADDRESS\"].encode())'";
        let env = vec![("INTERNAL_IP4_ADDRESS".to_string(), "10.0.0.7".to_string())];
        let tun = ScriptTun::spawn(script, env).unwrap();
        tun.send(b"\x45packet:").unwrap();
        let mut buf = [0u8; 64];
        let n = tun.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"\x45packet:10.0.0.7");
        let e = tun.recv(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert!(e.to_string().contains("exit status: 0"), "{e}");
        // Writing to a script that is gone fails, rather than vanishing unnoticed.
        assert!(tun.send(b"late").is_err());
    }

    #[tokio::test]
    async fn a_script_that_ends_at_once_is_seen() {
        let tun = ScriptTun::spawn("exit 3", Vec::new()).unwrap();
        let mut buf = [0u8; 16];
        let e = tun.recv(&mut buf).await.unwrap_err();
        assert!(e.to_string().contains("exit status: 3"), "{e}");
    }
}
