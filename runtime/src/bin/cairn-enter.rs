//! `cairn-enter`: see `cairn-enter --help` and the `cairn_runtime` crate docs.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(cairn_runtime::enter_main(
        std::env::args_os().skip(1).collect(),
    ));
}
