//! The project's real test images (Debian root filesystems built with
//! mmdebstrap, layered with umoci), built once by
//! `tests/support/build-images.sh` and cached between runs, and what their
//! OCI layout holds (manifest digests, layer digests, blob paths).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Refs in the fixture layout.
pub mod refs {
    /// One gzip layer: Debian bookworm minbase.
    pub const DEBIAN_MIN: &str = "debian-min";
    /// Same root filesystem, zstd layer.
    pub const DEBIAN_MIN_ZSTD: &str = "debian-min-zstd";
    /// Same root filesystem, uncompressed layer.
    pub const DEBIAN_MIN_PLAIN: &str = "debian-min-plain";
    /// Four layers with whiteouts, hardlinks, setuid, owners, xattrs.
    pub const MULTI: &str = "multi";
    /// Shares all but the top layer with `multi`.
    pub const MULTI_SIBLING: &str = "multi-sibling";
    /// An index: linux/amd64, linux/arm64, linux/arm/v7 and an attestation.
    pub const PLATFORMS: &str = "platforms";
    /// debian-min plus what real clients' in-container set-up needs (distrobox-init's packages,
    /// capsh, sudo) and a user `dev` (uid 1000): tests/tests/clients.rs.
    pub const CLIENTS: &str = "clients";
    /// debian-min plus python3, curl, iperf3 and iproute2, with `udp-echo` (port 9000) and
    /// `tcp-echo` (port 9001) in /usr/local/bin and `ExposedPorts` 8000/tcp and 9000/udp:
    /// tests/tests/network.rs and benches/network.py.
    pub const NET: &str = "net";
}

/// The fixture OCI layout, built on first use (a few minutes when the
/// cache is cold). `$CAIRN_TEST_IMAGES` points at a prebuilt one.
pub fn layout() -> PathBuf {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("CAIRN_TEST_IMAGES") {
                return PathBuf::from(p);
            }
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/build-images.sh");
            let out = Command::new("bash")
                .arg(&script)
                .output()
                .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
            assert!(
                out.status.success(),
                "{} failed:\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            let last = stdout.lines().last().unwrap_or_default().trim();
            PathBuf::from(last)
        })
        .clone()
}

/// `oci:<layout>:<ref>` for skopeo.
pub fn oci_ref(name: &str) -> String {
    format!("oci:{}:{name}", layout().display())
}

/// Where the blob `digest` (`sha256:…`) of the fixture layout is.
pub fn blob_path(digest: &str) -> PathBuf {
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("{digest} is not a sha256 digest"));
    layout().join("blobs/sha256").join(hex)
}

/// The fixture image `name`'s manifest digest and its layer digests, bottom layer first.
pub fn manifest_and_layers(name: &str) -> (String, Vec<String>) {
    let digest = crate::image::tagged_digest(&layout(), name);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob_path(&digest)).expect("the manifest blob"))
            .expect("the manifest is JSON");
    let layers = manifest["layers"]
        .as_array()
        .expect("the manifest has layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("a layer digest").to_owned())
        .collect();
    (digest, layers)
}
