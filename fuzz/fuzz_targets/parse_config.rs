//! Image config parsing, as `Store::config` does it (JSON value, then the
//! typed config), and the platform it declares: never panics, and what
//! parses serializes back to a config that parses to the same value.
#![no_main]

use cairn_store::media::{ImageConfig, Platform};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(config) = serde_json::from_value::<ImageConfig>(raw) else {
        return;
    };
    let again: ImageConfig =
        serde_json::from_slice(&serde_json::to_vec(&config).expect("a config serializes"))
            .expect("a serialized config parses");
    assert_eq!(again, config);
    let mut platform = format!("{}/{}", config.os, config.architecture);
    if let Some(v) = &config.variant {
        platform.push('/');
        platform.push_str(v);
    }
    let _ = Platform::parse(&platform);
});
