//! The REF parser (`dbos_engine::parse_ref`): any text gives a `RefSpec`
//! or an error, never a panic, with "now" anywhere in the range of real
//! clocks; a parsed spec is stable under surrounding blanks.
#![no_main]

use dbos_engine::parse_ref;
use libfuzzer_sys::fuzz_target;

/// 2026-11-24T00:00:00Z in microseconds: a realistic "now".
const NOW_US: i64 = 1_795_478_400_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = parse_ref(text, NOW_US);
    let padded = parse_ref(&format!("  {text}\t"), NOW_US);
    assert_eq!(first.is_ok(), padded.is_ok(), "{text:?}");
    if let (Ok(a), Ok(b)) = (&first, &padded) {
        assert_eq!(a, b, "{text:?}");
    }
    let _ = parse_ref(text, 0);
});
