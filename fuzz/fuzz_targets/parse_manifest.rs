//! Manifest and index parsing and platform selection: never panics.
#![no_main]

use cairn_store::media::{host_platform, ManifestKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match ManifestKind::parse(data, None) {
        Ok(ManifestKind::Image(m)) => {
            let _ = m.check_runnable();
            let _ = m.effective_media_type();
        }
        Ok(ManifestKind::Index(i)) => {
            let _ = i.select(&host_platform());
            let _ = i.platforms();
        }
        Err(_) => {}
    }
});
