//! Confinement of the processes that do not need root.
//!
//! The network process drops to `run-as-user`/`run-as-group` once its sockets and tun
//! device exist, loses every capability (bounding and ambient sets included), sets
//! `PR_SET_NO_NEW_PRIVS` (no set-uid or file capabilities can give them back) and stops
//! being dumpable (no core files or ptrace by the same user). With `isolate-workers = true`
//! it then allows itself only the system calls serving clients needs (seccomp filter mode).
//! This happens before any other thread exists, so every thread inherits it.

use std::collections::BTreeMap;

use caps::CapSet;
use seccompiler::{SeccompAction, SeccompFilter, TargetArch};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("run-as-user: no user {0} on this system")]
    NoUser(String),
    #[error("run-as-group: no group {0} on this system")]
    NoGroup(String),
    #[error("cannot drop privileges ({step}): {source}")]
    Drop {
        step: &'static str,
        source: nix::Error,
    },
    #[error("cannot drop capabilities: {0}")]
    Caps(String),
    #[error("cannot install the system-call filter (isolate-workers): {0}")]
    Seccomp(String),
}

/// Who the network process runs as.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub user: Option<String>,
    pub group: Option<String>,
}

/// An [`Identity`] looked up in the user database (before a chroot hides it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Resolved {
    uid: Option<nix::unistd::Uid>,
    gid: Option<nix::unistd::Gid>,
}

/// Looks `identity` up: the user's uid, and `run-as-group` or else the user's own group.
pub fn resolve(identity: &Identity) -> Result<Resolved, SandboxError> {
    use nix::unistd::{Group, User};
    let drop_err = |step| move |source| SandboxError::Drop { step, source };
    let user = match &identity.user {
        Some(name) => Some(
            User::from_name(name)
                .map_err(drop_err("user lookup"))?
                .ok_or_else(|| SandboxError::NoUser(name.clone()))?,
        ),
        None => None,
    };
    let gid = match &identity.group {
        Some(name) => Some(
            Group::from_name(name)
                .map_err(drop_err("group lookup"))?
                .ok_or_else(|| SandboxError::NoGroup(name.clone()))?
                .gid,
        ),
        None => user.as_ref().map(|u| u.gid),
    };
    Ok(Resolved {
        uid: user.map(|u| u.uid),
        gid,
    })
}

/// Drops to `identity`, then removes every capability and the way back to them.
pub fn confine(identity: &Resolved) -> Result<(), SandboxError> {
    use nix::unistd::{setgid, setgroups, setuid};
    let drop_err = |step| move |source| SandboxError::Drop { step, source };
    let (uid, gid) = (identity.uid, identity.gid);
    // The bounding set can only be emptied while CAP_SETPCAP is still effective, that is
    // before the change of user. A process without it (never root, as under uid_wrapper)
    // has no capabilities to lose there.
    let can_setpcap =
        caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP).unwrap_or(false);
    for set in [CapSet::Bounding, CapSet::Ambient, CapSet::Inheritable] {
        if matches!(set, CapSet::Bounding) && !can_setpcap {
            continue;
        }
        caps::clear(None, set).map_err(|e| SandboxError::Caps(format!("{set:?}: {e}")))?;
    }
    if let Some(gid) = gid {
        setgroups(&[gid]).map_err(drop_err("setgroups"))?;
        setgid(gid).map_err(drop_err("setgid"))?;
    }
    if let Some(uid) = uid {
        setuid(uid).map_err(drop_err("setuid"))?;
    }
    // Leaving uid 0 already cleared these; without run-as-user this is what takes root's
    // capabilities away.
    for set in [CapSet::Effective, CapSet::Permitted] {
        caps::clear(None, set).map_err(|e| SandboxError::Caps(format!("{set:?}: {e}")))?;
    }
    nix::sys::prctl::set_no_new_privs().map_err(drop_err("no_new_privs"))?;
    nix::sys::prctl::set_dumpable(false).map_err(drop_err("dumpable"))?;
    Ok(())
}

/// The privileged processes (main, security module) keep root but cannot be inspected or
/// dumped by others, and can never gain more than they have.
pub fn harden_privileged() -> Result<(), SandboxError> {
    let fail = |step| move |source| SandboxError::Drop { step, source };
    nix::sys::prctl::set_no_new_privs().map_err(fail("no_new_privs"))?;
    nix::sys::prctl::set_dumpable(false).map_err(fail("dumpable"))
}

/// The system calls a network process makes while serving: memory, threads and futexes,
/// time, epoll, sockets (TCP, UDP with GSO/GRO, Unix channels to the other processes), the
/// tun device, and reading files (per-user configuration, the CA on reload). No exec, no
/// ptrace, no mount, no module loading, no changes of identity.
const ALLOWED: &[i64] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_lseek,
    libc::SYS_openat,
    libc::SYS_getdents64,
    libc::SYS_fcntl,
    libc::SYS_ioctl,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_eventfd2,
    libc::SYS_pipe2,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_setsockopt,
    libc::SYS_getsockopt,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_shutdown,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_getrandom,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettimeofday,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_tgkill,
    libc::SYS_prctl,
    libc::SYS_uname,
    libc::SYS_sysinfo,
    libc::SYS_restart_syscall,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_statfs,
    libc::SYS_fstatfs,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_getcwd,
    libc::SYS_membarrier,
    libc::SYS_mincore,
    libc::SYS_getrlimit,
    libc::SYS_prlimit64,
    libc::SYS_getrusage,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
];

/// Installs the allow-list: any other system call fails with EPERM (as ocserv's workers
/// see it), so a compromised process cannot execute programs or reach the kernel's wider
/// surface.
pub fn restrict_system_calls() -> Result<(), SandboxError> {
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        ALLOWED.iter().map(|&nr| (nr, Vec::new())).collect();
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    let program: seccompiler::BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string()))?;
    seccompiler::apply_filter_all_threads(&program)
        .map_err(|e| SandboxError::Seccomp(e.to_string()))
}
