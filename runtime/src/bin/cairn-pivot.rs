//! `cairn-pivot`: see `cairn-pivot --help` and the `cairn_runtime` crate docs.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(cairn_runtime::pivot_main(
        std::env::args_os().skip(1).collect(),
    ));
}
