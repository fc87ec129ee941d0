//! `cairn`: a daemonless, podman-compatible container engine.
#![forbid(unsafe_code)]

mod app;
mod cmd;
mod context;
mod exit;
mod format;
mod output;
mod progress;
mod template;

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = match app::run() {
        Ok(code) => code,
        Err(err) => exit::report(&err),
    };
    ExitCode::from(code)
}
