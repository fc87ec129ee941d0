//! Reference and digest parsing: never panics, and what parses prints back
//! to something that parses to the same value.
#![no_main]

use cairn_store::{Digest, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(r) = s.parse::<Reference>() {
        let again: Reference = r.to_string().parse().expect("a printed reference parses");
        assert_eq!(again, r);
    }
    if let Ok(d) = s.parse::<Digest>() {
        assert_eq!(d.to_string().parse::<Digest>().expect("reparse"), d);
    }
});
