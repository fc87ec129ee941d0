//! Stages 2 and 3: planning two layers (whiteouts, an opaque directory) in
//! memory, and writing the planned tree into an empty directory with
//! hardlinks to the objects (an image root) or private copies.
//!
//! `cargo bench -p cairn-unpacker --bench materialize`

mod common;

use std::time::Duration;

use cairn_unpacker::{
    decode, materialize, Changeset, DecodeOptions, MaterializeOptions, Mode, Plan,
};
use criterion::{criterion_main, BatchSize, Criterion, Throughput};

const FILES: usize = 1000;

fn plan_and_materialize(c: &mut Criterion) {
    let (_dir, objects) = common::store();
    let opts = DecodeOptions::default();
    let layers: Vec<Changeset> = [common::layer(1, FILES), common::upper_layer(1, FILES)]
        .iter()
        .map(|l| {
            decode(&l[..], "layer", None, &objects, &opts)
                .unwrap()
                .changeset
        })
        .collect();
    let entries: usize = layers.iter().map(|l| l.changes.len()).sum();
    let plan = Plan::from_layers(&layers).unwrap();

    let mut g = c.benchmark_group("plan");
    g.throughput(Throughput::Elements(entries as u64));
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("two layers", |b| {
        b.iter(|| Plan::from_layers(&layers).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("materialize");
    let mut nodes = 0u64;
    plan.walk(|_, _| nodes += 1);
    g.throughput(Throughput::Elements(nodes));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, mode) in [("hardlink", Mode::Hardlink), ("copy", Mode::Copy)] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let dir = common::scratch();
                    std::fs::create_dir(dir.path().join("root")).unwrap();
                    dir
                },
                |dir| {
                    let target = dir.path().join("root");
                    let o = MaterializeOptions {
                        mode,
                        ownership: common::ownership(),
                        devices: cairn_unpacker::Devices::Create,
                    };
                    materialize(&plan, &objects, &target, o).unwrap();
                    // Returned: the tree is removed outside the timing.
                    dir
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
    let check = common::scratch();
    let target = check.path().join("root");
    std::fs::create_dir(&target).unwrap();
    materialize(
        &plan,
        &objects,
        &target,
        MaterializeOptions {
            mode: Mode::Hardlink,
            ownership: common::ownership(),
            devices: cairn_unpacker::Devices::Create,
        },
    )
    .unwrap();
    assert_eq!(
        common::count(&target) as u64,
        nodes - 1,
        "every node written"
    );
}

/// The group `cargo bench` runs.
#[allow(missing_docs)] // `criterion_group!` writes an undocumented `pub fn`.
mod group {
    criterion::criterion_group!(benches, super::plan_and_materialize);
}
criterion_main!(group::benches);
