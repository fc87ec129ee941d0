//! `cairn`: a daemonless, podman-compatible container engine.
#![forbid(unsafe_code)]
#![recursion_limit = "256"]

mod app;
mod cmd;
mod context;
mod exit;
mod format;
mod global;
mod inspect;
mod output;
mod progress;
mod unpack;
mod verbs;

use std::process::ExitCode;

fn main() -> ExitCode {
    cairn_engine::restore_sigpipe();
    prefer_ca_bundle();
    let code = match app::run() {
        Ok(code) => code,
        Err(err) => exit::report(&err),
    };
    ExitCode::from(code)
}

/// Points rustls' native root loading at one file.
///
/// A registry client (cairn-registry) for which cairn's own root loading
/// found no roots (a `certs.d` CA is then added to the platform's) is
/// built with reqwest's platform verifier, which reads every
/// root when it is built: with `SSL_CERT_DIR` set (CI images often export
/// it) or neither variable set, that is each of the ~300 files in
/// `/etc/ssl/certs`, 60-80 ms with a cold page cache, per client. So, first
/// in `main` (before any thread exists, so changing the environment is
/// safe): a user's `SSL_CERT_FILE`/`SSL_CERT_DIR` are kept in
/// `CAIRN_SSL_CERT_FILE` and `CAIRN_SSL_CERT_DIR`, where cairn's own root
/// loading (which decides what its registry clients trust) and re-executed
/// cairns read them, and the platform verifier is left the distribution's
/// bundle. Other programs cairn starts do no TLS.
fn prefer_ca_bundle() {
    const BUNDLES: &[&str] = &[
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
    ];
    let Some(bundle) = BUNDLES.iter().find(|p| std::path::Path::new(p).is_file()) else {
        return;
    };
    let saved = cairn_registry::tls::SAVED_DIR;
    if std::env::var_os(saved).is_none() {
        let dir = std::env::var_os("SSL_CERT_DIR").unwrap_or_default();
        let file = std::env::var_os("SSL_CERT_FILE").unwrap_or_default();
        if dir.is_empty() && !file.is_empty() {
            // One file already: nothing to narrow.
            return;
        }
        std::env::set_var(saved, dir);
        std::env::set_var(cairn_registry::tls::SAVED_FILE, file);
    }
    std::env::remove_var("SSL_CERT_DIR");
    std::env::set_var("SSL_CERT_FILE", bundle);
}
