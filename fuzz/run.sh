#!/usr/bin/env bash
# Builds every fuzz target and runs each for ${CAIRN_FUZZ_SECONDS:-20} seconds
# (CI); any crash fails. cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP
# enables them on the stable toolchain this machine has.
#
# With CAIRN_FUZZ_LEDGER=FILE, each run appends one line to FILE:
#   date  commit  target  seconds  executions  result
# fuzz/ledger.tsv is the committed record the README's fuzzing hours add up.
set -euo pipefail
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
seconds=${CAIRN_FUZZ_SECONDS:-20}
ledger=${CAIRN_FUZZ_LEDGER:-}
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
targets=${CAIRN_FUZZ_TARGETS:-$(cargo fuzz list)}
for target in $targets; do
    mkdir -p "corpus/$target"
    echo "== fuzz $target for ${seconds}s" >&2
    log=$(mktemp)
    result=clean
    cargo fuzz run -O "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1 || result=crash
    tail -n 3 "$log"
    # libFuzzer's last words: "Done 123456 runs in 60 second(s)".
    runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
    took=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -n 1)
    if [ -n "$ledger" ]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$commit" "$target" \
            "${took:-$seconds}" "${runs:-?}" "$result" >>"$ledger"
    fi
    if [ "$result" = crash ]; then
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
done
