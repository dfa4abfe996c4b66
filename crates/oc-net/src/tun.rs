//! Linux tun devices (layer 3, no packet-information header).

use thiserror::Error;
use tun_rs::{AsyncDevice, DeviceBuilder};

#[derive(Debug, Error)]
pub enum TunError {
    #[error("cannot create tun device{}: {source} (are you root, and does /dev/net/tun exist?)", name.as_ref().map(|n| format!(" {n}")).unwrap_or_default())]
    Create {
        name: Option<String>,
        source: std::io::Error,
    },
    #[error("tun device name {0:?} is invalid (at most 15 characters, no '/' or spaces)")]
    BadName(String),
}

/// Creates a tun device. With no name the kernel picks `tunN`, as for openconnect. Address,
/// MTU and link state are left to the vpnc-script.
pub fn open_tun(name: Option<&str>) -> Result<(AsyncDevice, String), TunError> {
    if let Some(n) = name {
        if n.is_empty() || n.len() > 15 || n.contains(['/', ' ', '\0']) {
            return Err(TunError::BadName(n.to_string()));
        }
    }
    let mut builder = DeviceBuilder::new().inherit_enable_state();
    if let Some(n) = name {
        builder = builder.name(n);
    }
    let err = |source| TunError::Create {
        name: name.map(str::to_string),
        source,
    };
    let device = builder.build_async().map_err(err)?;
    let actual = device.name().map_err(err)?;
    Ok((device, actual))
}
