//! Id-map parsing (`--uidmap`, `--gidmap`) and mapping: never panics or
//! overflows; a parsed map prints back to the same map; keep-id maps are
//! consistent (the kept id maps to itself, no two container ids share a host id).
#![no_main]

use cairn_unpacker::IdMap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(m) = IdMap::parse_all(s.lines()) {
        if !m.is_identity() {
            let again =
                IdMap::parse_all([m.to_string().as_str()]).expect("a printed map parses");
            assert_eq!(again, m);
        }
        for id in [0u32, 1, 999, 1000, 65534, 65535, u32::MAX - 1, u32::MAX] {
            let _ = m.to_host(id);
        }
    }
    // keep-id from fuzzed numbers: uid, then (start, count) pairs.
    let nums: Vec<u32> = data
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .take(9)
        .collect();
    if let Some((&uid, rest)) = nums.split_first() {
        let subs: Vec<(u32, u32)> = rest
            .chunks_exact(2)
            .map(|p| (p[0], p[1] % 100_000))
            .collect();
        if let Ok(m) = IdMap::keep_id(uid, &subs) {
            assert_eq!(m.to_host(uid), Ok(uid));
        }
    }
});
