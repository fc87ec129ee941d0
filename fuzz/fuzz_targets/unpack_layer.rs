//! A layer blob (any bytes: gzip, zstd or tar, hostile names, links, whiteouts)
//! decoded, planned on top of a fixed lower layer, and materialized. Whatever
//! the input, nothing may appear outside the target directory, and nothing
//! may panic.
#![no_main]

use std::path::Path;

use cairn_unpacker::{decode, materialize, DecodeOptions, MaterializeOptions, Mode, ObjectStore, Ownership, Plan};
use libfuzzer_sys::fuzz_target;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let jail = tempfile::tempdir().expect("tempdir");
    let store = jail.path().join("store");
    let target = jail.path().join("target");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::write(jail.path().join("sentinel"), b"keep").expect("write");
    let objects = ObjectStore::open(&store, Ownership::Ignore).expect("objects");
    let opts = DecodeOptions {
        max_layer_size: 8 << 20,
        ..DecodeOptions::default()
    };
    let Ok(decoded) = decode(data, "fuzz", None, &objects, &opts) else {
        return;
    };
    let Ok(plan) = Plan::from_layers([&decoded.changeset]) else {
        return;
    };
    let _ = materialize(
        &plan,
        &objects,
        &target,
        MaterializeOptions {
            mode: Mode::Copy,
            ownership: Ownership::Ignore,
            devices: cairn_unpacker::Devices::Create,
        },
    );
    // Only the store, the target and the sentinel (unchanged) may exist.
    assert_eq!(names(jail.path()), vec!["sentinel", "store", "target"]);
    assert_eq!(std::fs::read(jail.path().join("sentinel")).expect("sentinel"), b"keep");
});
