//! Trust roots for registry TLS.
//!
//! reqwest's platform verifier reads every file of `/etc/ssl/certs` (some
//! 300 on Debian): 60-80 ms with a cold page cache, for every client built.
//! cairn reads the roots once per process and hands them to its clients as
//! their only roots: `$SSL_CERT_FILE`/`$SSL_CERT_DIR` when set (as rustls'
//! native loader reads them), else the distribution's bundle, which holds
//! the same certificates as the directory in one file. If nothing is found,
//! the platform verifier is left to do its job.
//!
//! Per-registry CAs come from podman's `certs.d` directories:
//! `--cert-dir`, else `/etc/containers/certs.d/<host[:port]>/`,
//! `/etc/docker/certs.d/<host[:port]>/` and, not as root,
//! `$XDG_CONFIG_HOME/containers/certs.d/<host[:port]>/`: every `*.crt`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cairn_fsutil::IoContext as _;

use crate::error::Error;

const BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Where a program that narrows `SSL_CERT_DIR`/`SSL_CERT_FILE` for its
/// throw-away clients (the cli does, first thing) keeps the user's values
/// (empty: unset); when `SAVED_DIR` is present, they are what counts here.
pub const SAVED_DIR: &str = "CAIRN_SSL_CERT_DIR";
/// See [`SAVED_DIR`].
pub const SAVED_FILE: &str = "CAIRN_SSL_CERT_FILE";

/// The system roots as PEM blocks, read once per process; empty if none
/// are found. `$SSL_CERT_FILE` and `$SSL_CERT_DIR` (colon-separated) are
/// honored exactly as rustls' native loader does: if either is set, only
/// they are read. Otherwise the distribution's bundle file.
fn system_roots() -> &'static [Vec<u8>] {
    static ROOTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        // The user's own values, if the cli moved them (see SAVED_DIR).
        let saved = std::env::var_os(SAVED_DIR).is_some();
        let var = |name: &str, saved_name: &str| {
            if saved {
                std::env::var_os(saved_name).filter(|v| !v.is_empty())
            } else {
                std::env::var_os(name)
            }
        };
        let file = var("SSL_CERT_FILE", SAVED_FILE).map(PathBuf::from);
        let dirs: Vec<PathBuf> = var("SSL_CERT_DIR", SAVED_DIR)
            .map(|d| {
                std::env::split_paths(&d)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if file.is_none() && dirs.is_empty() {
            for path in BUNDLES {
                if let Ok(text) = fs::read(path) {
                    let blocks = pem_blocks(&text);
                    if !blocks.is_empty() {
                        return blocks;
                    }
                }
            }
            return Vec::new();
        }
        let mut seen = std::collections::HashSet::new();
        let mut blocks = Vec::new();
        let mut read = |path: &Path| {
            use std::os::unix::fs::MetadataExt;
            let Ok(meta) = fs::metadata(path) else { return };
            if !meta.is_file() || !seen.insert((meta.dev(), meta.ino())) {
                return;
            }
            if let Ok(text) = fs::read(path) {
                blocks.extend(pem_blocks(&text));
            }
        };
        if let Some(f) = &file {
            read(f);
        }
        for d in &dirs {
            if let Ok(rd) = fs::read_dir(d) {
                let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
                paths.sort();
                for p in paths {
                    read(&p);
                }
            }
        }
        blocks.sort();
        blocks.dedup();
        blocks
    })
}

/// Splits a PEM bundle into its certificate blocks.
fn pem_blocks(text: &[u8]) -> Vec<Vec<u8>> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = find(rest, BEGIN) {
        let Some(end) = find(&rest[start..], END) else {
            break;
        };
        let stop = start + end + END.len();
        let mut block = rest[start..stop].to_vec();
        block.push(b'\n');
        out.push(block);
        rest = &rest[stop..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The roots for a registry: system roots plus its `certs.d` CAs.
#[derive(Debug, Default, Clone)]
pub(crate) struct Roots {
    /// PEM certificates to trust, exclusively.
    pub pem: Vec<Vec<u8>>,
    /// Whether `pem` replaces the platform verifier (a bundle was found).
    pub exclusive: bool,
}

impl Roots {
    /// Roots for `registry` (host[:port]), with an explicit `--cert-dir`.
    pub(crate) fn for_registry(registry: &str, cert_dir: Option<&Path>) -> Result<Roots, Error> {
        let mut pem: Vec<Vec<u8>> = system_roots().to_vec();
        let exclusive = !pem.is_empty();
        for dir in cert_dirs(registry, cert_dir) {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "crt"))
                .collect();
            files.sort();
            for f in files {
                let text = fs::read(&f).io_context("read registry CA certificate", &f)?;
                let blocks = pem_blocks(&text);
                if blocks.is_empty() {
                    return Err(Error::Config {
                        path: f,
                        message: "no PEM certificate in this .crt file".into(),
                    });
                }
                pem.extend(blocks);
            }
        }
        Ok(Roots { pem, exclusive })
    }

    /// As reqwest wants them (unparsable blocks are skipped, as the platform
    /// verifier would).
    pub(crate) fn reqwest(&self) -> Vec<reqwest::Certificate> {
        self.pem
            .iter()
            .filter_map(|p| reqwest::Certificate::from_pem(p).ok())
            .collect()
    }
}

fn cert_dirs(registry: &str, explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(d) = explicit {
        return vec![d.to_owned()];
    }
    let mut dirs = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        let cfg = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        if let Some(c) = cfg {
            dirs.push(c.join("containers/certs.d").join(registry));
        }
    }
    dirs.push(Path::new("/etc/containers/certs.d").join(registry));
    dirs.push(Path::new("/etc/docker/certs.d").join(registry));
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_bundles() {
        let text = b"junk\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n# comment\n-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nunterminated";
        let blocks = pem_blocks(text);
        assert_eq!(blocks.len(), 2);
        assert!(blocks[1].starts_with(b"-----BEGIN CERTIFICATE-----\nBBB"));
        assert!(blocks[0].ends_with(b"-----END CERTIFICATE-----\n"));
    }

    #[test]
    fn cert_dir_files_are_added_and_bad_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("ca.crt"),
            "-----BEGIN CERTIFICATE-----\nCCC\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        fs::write(dir.path().join("ignored.key"), "x").unwrap();
        let roots = Roots::for_registry("x:1", Some(dir.path())).unwrap();
        assert_eq!(roots.pem.len(), system_roots().len() + 1);
        fs::write(dir.path().join("bad.crt"), "not pem").unwrap();
        let err = Roots::for_registry("x:1", Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.crt"), "{err}");
    }
}
