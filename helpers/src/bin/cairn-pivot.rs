//! `cairn-pivot`: see `cairn-pivot --help` and the `cairn_helpers` crate docs.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(cairn_helpers::pivot_main(
        std::env::args_os().skip(1).collect(),
    ));
}
