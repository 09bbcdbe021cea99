//! Syslog datagram parsing (`dbos_init::syslog::parse`, RFC 3164 and
//! RFC 5424 with a raw fallback): any bytes give a message, never a panic,
//! and the message turns into a log entry.
#![no_main]

use dbos_init::syslog::parse;
use libfuzzer_sys::fuzz_target;

/// 2026-11-24T00:00:00Z in microseconds.
const NOW_US: i64 = 1_795_478_400_000_000;

fuzz_target!(|data: &[u8]| {
    let m = parse(data, NOW_US);
    assert!(m.severity <= 7, "{m:?}");
    assert!(m.facility.is_none_or(|f| f <= 23), "{m:?}");
    let _ = m.to_entry(NOW_US);
    // A year-less RFC 3164 stamp near the turn of a year.
    let m = parse(data, 1_798_761_599_000_000);
    let _ = m.to_entry(0);
});
