//! The project's real test images (Debian root filesystems built with
//! mmdebstrap, layered with umoci), built once by
//! `tests/support/build-images.sh` and cached between runs, and what their
//! OCI layout holds (manifest digests, layer digests, blob paths).

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock, Weak};

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

/// A store holding the fixture `debian-min` under one name, for one test;
/// its containers are removed (SIGKILL at once) when it is dropped: nothing
/// of a failed test's containers matters, but none may outlive it.
#[derive(Debug)]
pub struct FixtureStore {
    cairn: crate::Cairn,
    unpause: bool,
    _template: Option<Arc<tempfile::TempDir>>,
}

impl std::ops::Deref for FixtureStore {
    type Target = crate::Cairn;
    fn deref(&self) -> &crate::Cairn {
        &self.cairn
    }
}

impl std::ops::DerefMut for FixtureStore {
    fn deref_mut(&mut self) -> &mut crate::Cairn {
        &mut self.cairn
    }
}

impl Drop for FixtureStore {
    fn drop(&mut self) {
        if self.unpause {
            let _ = self.cairn.run(["unpause", "--all"]);
        }
        let _ = self.cairn.run(["rm", "-a", "-f", "-t", "0"]);
    }
}

impl FixtureStore {
    /// `debian-min` pulled into `cairn`'s own store (a rootless user's,
    /// say) and named `name` alone.
    pub fn pulled(cairn: crate::Cairn, name: &str) -> FixtureStore {
        cairn.pull_fixture_as(refs::DEBIAN_MIN, name);
        FixtureStore {
            cairn,
            unpause: false,
            _template: None,
        }
    }

    /// A root store with `debian-min` named `name`: a hard-linked copy of
    /// one import shared by the tests of this process running at the same
    /// time. Importing unpacks 120 MB, which is slow on this VM's disk
    /// (seconds, see DESIGN.md); blobs, objects and image roots are never
    /// written in place (new files are renamed in, overlay lower
    /// directories are read-only), so they are linked, and the small
    /// mutable files are copied.
    pub fn linked(name: &str) -> FixtureStore {
        let template = template(name);
        let cairn = crate::Cairn::new().expect("cairn environment");
        let from = template.path().join("store");
        let to = cairn.root();
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(&from).unwrap().flatten() {
            let entry_name = entry.file_name();
            if ["blobs", "objects", "images", "layers"].contains(&entry_name.to_str().unwrap()) {
                let st = Command::new("cp")
                    .arg("-al")
                    .arg(entry.path())
                    .arg(to.join(&entry_name))
                    .status()
                    .unwrap();
                assert!(st.success(), "cp -al {}", entry.path().display());
            } else if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), to.join(&entry_name)).unwrap();
            } else {
                // locks/, tmp/, containers/, events/: fresh and empty.
                std::fs::create_dir(to.join(&entry_name)).unwrap();
            }
        }
        FixtureStore {
            cairn,
            unpause: false,
            _template: Some(template),
        }
    }

    /// Unpauses every container before they are removed on drop (a frozen
    /// container's processes would wait for the thaw).
    pub fn unpausing(mut self) -> FixtureStore {
        self.unpause = true;
        self
    }
}

/// The import [`FixtureStore::linked`] copies for `name`, made on first use
/// and kept while a store linked from it lives.
fn template(name: &str) -> Arc<tempfile::TempDir> {
    static TEMPLATES: Mutex<Vec<(String, Weak<tempfile::TempDir>)>> = Mutex::new(Vec::new());
    let mut guard = TEMPLATES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = guard
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, t)| t.upgrade())
    {
        return t;
    }
    let dir = crate::util::temp_dir("fixture-store").expect("temp dir");
    let mut cairn = crate::Cairn::new().expect("cairn environment");
    cairn.set_root(&dir.path().join("store"));
    cairn.pull_fixture_as(refs::DEBIAN_MIN, name);
    let t = Arc::new(dir);
    guard.retain(|(n, _)| n != name);
    guard.push((name.to_owned(), Arc::downgrade(&t)));
    t
}
