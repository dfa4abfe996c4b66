//! `restrict-user-to-ports`: the setting's parser on hostile text (from a per-user file)
//! and the packet filter on hostile packets (from a client). A parsed value must print
//! back to an equal value; the filter must decide every packet without panicking, and an
//! allow list never passes what it cannot read.
//!
//! Input layout: byte 0 is the length of the setting text (clamped); the rest is a packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::port_filter::PortRules;

const DEFAULT: &str = "tcp(443), udp(53), icmp(), icmpv6(), esp()";

fuzz_target!(|data: &[u8]| {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let (text, packet) = rest.split_at(usize::from(len).min(rest.len()));
    let rules = match std::str::from_utf8(text).ok().map(PortRules::parse) {
        Some(Ok(rules)) => {
            let again = PortRules::parse(&rules.to_string()).expect("printed form parses");
            assert_eq!(again, rules);
            rules
        }
        _ => PortRules::parse(DEFAULT).expect("default"),
    };
    let dns = ["192.0.2.53".parse().unwrap()];
    let allowed = rules.allows(packet, &dns);
    if !rules.negated && packet.first().is_none_or(|b| !matches!(b >> 4, 4 | 6)) {
        assert!(!allowed, "an allow list passed an unreadable packet");
    }
});
