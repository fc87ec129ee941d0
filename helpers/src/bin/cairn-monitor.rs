//! `cairn-monitor`: see `cairn-monitor --help` and the `cairn_helpers` crate docs.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(cairn_helpers::monitor_main(
        std::env::args_os().skip(1).collect(),
    ));
}
