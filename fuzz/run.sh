#!/usr/bin/env bash
# Builds every fuzz target and runs each for ${CAIRN_FUZZ_SECONDS:-20} seconds
# (CI); any crash fails. cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP
# enables them on the stable toolchain this machine has.
set -euo pipefail
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
seconds=${CAIRN_FUZZ_SECONDS:-20}
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    echo "== fuzz $target for ${seconds}s" >&2
    cargo fuzz run -O "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 | tail -n 3
done
