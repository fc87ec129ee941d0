//! Stage 1: one layer blob into a changeset and the object store, for each
//! compression, into an empty store (a new image) and into a store that has
//! every object already (a layer another image stored the files of).
//!
//! `cargo bench -p cairn-unpacker --bench decode`

mod common;

use std::time::Duration;

use cairn_unpacker::{decode, DecodeOptions};
use criterion::{criterion_main, BatchSize, Criterion, Throughput};

const FILES: usize = 1000;

fn decode_layer(c: &mut Criterion) {
    let tar = common::layer(1, FILES);
    let blobs = [
        ("plain", tar.clone()),
        ("gzip", common::gzip(&tar)),
        ("zstd", common::zstd(&tar)),
    ];
    let opts = DecodeOptions::default();
    let mut g = c.benchmark_group("decode");
    // Uncompressed bytes: MB/s comparable across compressions.
    g.throughput(Throughput::Bytes(tar.len() as u64));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, blob) in &blobs {
        g.bench_function(format!("{name}, empty store"), |b| {
            b.iter_batched(
                common::store,
                |(dir, objects)| {
                    let d = decode(&blob[..], name, None, &objects, &opts).unwrap();
                    assert_eq!(d.changeset.changes.len(), FILES + 20);
                    // Returned: the store is removed outside the timing.
                    (dir, objects)
                },
                BatchSize::PerIteration,
            )
        });
    }
    let (_dir, objects) = common::store();
    let gz = &blobs[1].1;
    decode(&gz[..], "gzip", None, &objects, &opts).unwrap();
    g.bench_function("gzip, objects present", |b| {
        b.iter(|| decode(&gz[..], "gzip", None, &objects, &opts).unwrap())
    });
    g.finish();
}

/// The group `cargo bench` runs.
#[allow(missing_docs)] // `criterion_group!` writes an undocumented `pub fn`.
mod group {
    criterion::criterion_group!(benches, super::decode_layer);
}
criterion_main!(group::benches);
