//! The client's view of the host network: the tun device and the vpnc-script contract.
//!
//! openconnect does not configure addresses, routes or DNS itself: it creates the tun device
//! and runs a vpnc-compatible script with the tunnel settings in environment variables. We
//! keep that contract byte for byte so Debian's stock `vpnc-script`, NetworkManager and
//! users' own scripts work unchanged.

pub mod log;
pub mod netlink;
pub mod script;
pub mod script_tun;
pub mod tun;
pub mod udp;

pub use script::{run_script, Reason, ScriptContext, ScriptError};
pub use script_tun::ScriptTun;
pub use tun::{open_tun, open_tun_sync, Coalescer, PacketDevice, TunError, TunReader, TunWriter};
pub use udp::{BatchSocket, RecvBatch, SendBatch};
