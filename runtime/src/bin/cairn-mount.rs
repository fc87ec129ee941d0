//! `cairn-mount`: see `cairn-mount --help` and the `cairn_runtime` crate docs.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(cairn_runtime::mount_main(
        std::env::args_os().skip(1).collect(),
    ));
}
