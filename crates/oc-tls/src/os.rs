//! What neither std nor nix offers: Linux's `TCP_INFO` socket option, for the path MTU
//! openconnect bases its tunnel MTU on, and the system's group list through NSS
//! (`getgrent`), which ocserv's `auto-select-group` offers for PAM logins.

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

/// The MTU-related fields of `TCP_INFO`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpPathInfo {
    /// `tcpi_pmtu`: the path MTU, IP and TCP headers included.
    pub pmtu: u32,
    pub rcv_mss: u32,
    pub snd_mss: u32,
}

/// `TCP_INFO` of a connected TCP socket, or `None` when the kernel will not say.
pub fn tcp_path_info(socket: BorrowedFd<'_>) -> Option<TcpPathInfo> {
    // SAFETY: `tcp_info` is a plain C struct of integers, so all-zero bytes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the descriptor is borrowed (open for the call); `info` and `len` are live
    // locals, and `len` tells the kernel how many bytes it may write into `info`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(TcpPathInfo {
        pmtu: info.tcpi_pmtu,
        rcv_mss: info.tcpi_rcv_mss,
        snd_mss: info.tcpi_snd_mss,
    })
}

/// `getgrent` walks one process-wide cursor: one walk at a time.
static GROUP_WALK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The names of the system's groups (files, LDAP, whatever NSS is set to) whose id is at
/// least `gid_min`, at most `limit` of them, in NSS order.
pub fn group_names(gid_min: u32, limit: usize) -> Vec<String> {
    let _walk = GROUP_WALK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut names = Vec::new();
    // SAFETY: setgrent/getgrent/endgrent are called under GROUP_WALK, so no other walk in
    // this process moves the cursor; each entry is read (name copied) before the next call
    // overwrites the static buffer it lives in.
    unsafe {
        libc::setgrent();
        while names.len() < limit {
            let entry = libc::getgrent();
            if entry.is_null() {
                break;
            }
            if (*entry).gr_gid >= gid_min && !(*entry).gr_name.is_null() {
                let name = std::ffi::CStr::from_ptr((*entry).gr_name);
                names.push(name.to_string_lossy().into_owned());
            }
        }
        libc::endgrent();
    }
    names
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn loopback_connection_reports_its_path_mtu() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let info = tcp_path_info(client.as_fd()).unwrap();
        // Loopback's MTU is 65536; the MSS is below it.
        assert!(info.pmtu >= 1280, "{info:?}");
        assert!(info.snd_mss > 0 && info.snd_mss < info.pmtu, "{info:?}");
        let file = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(tcp_path_info(file.as_fd()), None);
    }
}
