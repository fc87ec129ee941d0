//! `cairn-mount`: see `cairn-mount --help` and the `cairn_helpers` crate docs.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(cairn_helpers::mount_main(
        std::env::args_os().skip(1).collect(),
    ));
}
