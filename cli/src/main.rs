//! `cairn`: a daemonless, podman-compatible container engine.
#![forbid(unsafe_code)]
#![recursion_limit = "256"]

mod app;
mod cmd;
mod container;
mod context;
mod exit;
mod format;
mod output;
mod progress;
mod template;
mod unpack;
mod userns;

use std::process::ExitCode;

fn main() -> ExitCode {
    cairn_helpers::restore_sigpipe();
    prefer_ca_bundle();
    let code = match app::run() {
        Ok(code) => code,
        Err(err) => exit::report(&err),
    };
    ExitCode::from(code)
}

/// Points rustls' native root loading at the distribution's CA bundle.
///
/// Without `SSL_CERT_FILE`/`SSL_CERT_DIR`, every reqwest client (oci-client
/// builds a throw-away default one per registry client) reads each of the
/// ~300 files in `/etc/ssl/certs`: 60-80 ms per pull with a cold page cache.
/// The bundle holds the same certificates in one file. A user's own
/// `SSL_CERT_FILE` or `SSL_CERT_DIR` is left alone. Runs first in `main`,
/// before any thread exists, so changing the environment is safe.
fn prefer_ca_bundle() {
    if std::env::var_os("SSL_CERT_FILE").is_some() || std::env::var_os("SSL_CERT_DIR").is_some() {
        return;
    }
    const BUNDLES: &[&str] = &[
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
    ];
    if let Some(bundle) = BUNDLES.iter().find(|p| std::path::Path::new(p).is_file()) {
        std::env::set_var("SSL_CERT_FILE", bundle);
    }
}
