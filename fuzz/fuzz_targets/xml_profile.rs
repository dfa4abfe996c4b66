//! AnyConnect XML profiles (`-x`), a file anyone may have handed the user: any bytes must
//! give host entries or an error, never a panic, and every entry comes from a ServerList.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::anyconnect::profile::{find_host, host_entries, MAX_PROFILE_BYTES};

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = host_entries(data) {
        assert!(data.len() <= MAX_PROFILE_BYTES);
        assert!(entries.is_empty() || String::from_utf8_lossy(data).contains("ServerList"));
        if let Some(first) = entries.first() {
            assert!(find_host(&entries, &first.name).is_some());
        }
    }
});
