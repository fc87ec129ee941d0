//! `cairn-enter`: see `cairn-enter --help` and the `cairn_helpers` crate docs.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(cairn_helpers::enter_main(
        std::env::args_os().skip(1).collect(),
    ));
}
