//! The verbs of images leaving the machine, chained as a user chains them:
//! what `commit` made and what `load` stored is pushed to a real registry
//! and pulled back by cairn, skopeo and podman; `push` to the local
//! transports (`oci:`, `oci-archive:`, `docker-archive:`, `dir:`) is read by
//! skopeo and loaded back. Each verb's own suite is beside this one
//! (`commit.rs`, `push.rs`, `archive.rs`).

use std::fs;

use cairn_tests::fixtures::refs;
use cairn_tests::podman::Podman;
use cairn_tests::util::{is_root, skopeo};
use cairn_tests::{Cairn, Registry, RegistryOptions};
use serde_json::Value;

const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The manifest `repo_ref` has in `reg`, parsed.
fn manifest(reg: &Registry, repo_ref: &str) -> Value {
    let m = reg.manifest(repo_ref).expect("manifest in the registry");
    serde_json::from_slice(&m.bytes).expect("JSON")
}

/// A container of `image` that changed a file, deleted one and made a
/// directory, committed as `name`; returns the new image's id.
fn committed(c: &Cairn, image: &str, name: &str) -> String {
    c.ok([
        "run",
        "--name",
        "maker",
        image,
        "sh",
        "-c",
        "echo made-by-cairn > /made && rm /etc/debian_version && mkdir -p /opt/new && echo x > /opt/new/f",
    ]);
    // podman prints the id without its algorithm; keep it that way here.
    let id = c.ok(["commit", "-q", "maker", name]).trim().to_owned();
    assert!(!id.starts_with("sha256:") && id.len() == 64, "{id}");
    c.ok(["rm", "maker"]);
    id
}

#[test]
fn a_committed_image_pushed_pulls_back_gzip_compressed_into_cairn_skopeo_and_podman() {
    assert!(is_root(), "run as root");
    let reg = Registry::start(RegistryOptions::default()).expect("registry starts");
    let c = Cairn::new().unwrap();
    let base = c.pull_fixture_as(refs::DEBIAN_MIN, "localhost/base:1");
    let name = format!("{}/made/debian:1", reg.host());
    let id = committed(&c, &base, &name);
    let digestfile = c.scratch().join("digest");
    c.ok([
        "push",
        "-q",
        "--tls-verify=false",
        "--digestfile",
        digestfile.to_str().unwrap(),
        &name,
    ]);
    let pushed = fs::read_to_string(&digestfile).unwrap();
    assert_eq!(pushed, reg.manifest_digest("made/debian:1").unwrap());

    // The committed layer was kept uncompressed; the registry gets gzip,
    // as podman pushes it, and the image id (the config) is unchanged.
    let m = manifest(&reg, "made/debian:1");
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "the base's layer and the commit's: {m}");
    assert!(
        layers.iter().all(|l| l["mediaType"] == LAYER_GZIP),
        "layers pushed gzip-compressed: {m}"
    );
    assert_eq!(m["config"]["digest"], format!("sha256:{id}"));

    let out = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{name}")]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], pushed.as_str());

    let podman = Podman::new().unwrap();
    podman.ok(["pull", "-q", "--tls-verify=false", &name]);
    let pd = podman.ok(["image", "inspect", "--format", "{{.Digest}} {{.Id}}", &name]);
    assert_eq!(
        pd.trim(),
        format!("{pushed} {}", id.trim_start_matches("sha256:"))
    );
    let seen = podman.ok([
        "run",
        "--rm",
        &name,
        "sh",
        "-c",
        "cat /made /opt/new/f; test -e /etc/debian_version && echo still-there || echo deleted",
    ]);
    assert_eq!(seen, "made-by-cairn\nx\ndeleted\n");

    let other = Cairn::new().unwrap();
    let back = other.ok(["pull", "-q", "--tls-verify=false", &name]);
    assert_eq!(back.trim(), id.trim_start_matches("sha256:"));
    let seen = other.ok([
        "run",
        "--rm",
        &name,
        "sh",
        "-c",
        "cat /made; test -e /etc/debian_version && echo still-there || echo deleted",
    ]);
    assert_eq!(seen, "made-by-cairn\ndeleted\n");
    c.assert_clean();
    other.assert_clean();
}

#[test]
fn an_image_loaded_from_podmans_save_is_pushed_and_pulled_back() {
    assert!(is_root(), "run as root");
    let reg = Registry::start(RegistryOptions::default()).expect("registry starts");
    let podman = Podman::new().unwrap();
    let pid = podman
        .import_fixture(refs::DEBIAN_MIN, "localhost/from-podman:1")
        .unwrap();
    let archive = podman.dir().join("saved.tar");
    podman.ok([
        "save",
        "-q",
        "-o",
        archive.to_str().unwrap(),
        "localhost/from-podman:1",
    ]);
    let c = Cairn::new().unwrap();
    let loaded = c.ok(["load", "-i", archive.to_str().unwrap()]);
    assert!(loaded.contains("localhost/from-podman:1"), "{loaded}");
    let name = format!("{}/loaded/debian:1", reg.host());
    c.ok(["tag", "localhost/from-podman:1", &name]);
    c.ok(["push", "-q", "--tls-verify=false", &name]);
    let m = manifest(&reg, "loaded/debian:1");
    assert!(
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["mediaType"] == LAYER_GZIP
                || l["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"),
        "a docker archive's plain layers go out compressed: {m}"
    );
    let other = Cairn::new().unwrap();
    let back = other.ok(["pull", "-q", "--tls-verify=false", &name]);
    assert_eq!(
        back.trim(),
        pid.trim().trim_start_matches("sha256:"),
        "the image id podman gave it"
    );
    other.ok(["run", "--rm", &name, "true"]);
}

#[test]
fn push_to_local_transports_is_read_by_skopeo_and_loads_back() {
    assert!(is_root(), "run as root");
    let c = Cairn::new().unwrap();
    let id = c.pull_fixture_as(refs::DEBIAN_MIN, "localhost/local:1");
    let dir = c.scratch().join("out");
    fs::create_dir_all(&dir).unwrap();
    let layout = dir.join("layout");
    let oci_tar = dir.join("img-oci.tar");
    let docker_tar = dir.join("img-docker.tar");
    let plain_dir = dir.join("plain");
    let dests = [
        format!("oci:{}:v1", layout.display()),
        format!("oci-archive:{}", oci_tar.display()),
        format!("docker-archive:{}", docker_tar.display()),
        format!("dir:{}", plain_dir.display()),
    ];
    for d in &dests {
        c.ok(["push", "-q", "localhost/local:1", d]);
        let out = skopeo(&["inspect", d]).unwrap_or_else(|e| panic!("skopeo inspect {d}: {e}"));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert!(
            v["Layers"].as_array().is_some_and(|l| !l.is_empty()),
            "{d}: {v}"
        );
    }
    // Each loads back into a fresh store as the same image.
    for src in [&oci_tar, &docker_tar] {
        let other = Cairn::new().unwrap();
        let out = other.ok(["load", "-i", src.to_str().unwrap()]);
        assert!(!out.trim().is_empty());
        let got = other.ok(["images", "-q", "--no-trunc"]);
        assert_eq!(
            got.trim().trim_start_matches("sha256:"),
            id.trim().trim_start_matches("sha256:"),
            "{}",
            src.display()
        );
        other.ok(["run", "--rm", &id, "true"]);
    }
    // A bad transport is one line and 125.
    let r = c.run(["push", "localhost/local:1", "containers-storage:x"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_eq!(
        r.stderr.lines().filter(|l| l.starts_with("Error:")).count(),
        1
    );
}

#[test]
fn save_load_and_commit_as_the_test_user() {
    let c = Cairn::rootless().expect("rootless environment (tests/support/test-user.sh)");
    let id = c.pull_fixture_as(refs::DEBIAN_MIN, "localhost/rl:1");
    let archive = c.scratch().join("rl.tar");
    c.ok(["save", "-o", archive.to_str().unwrap(), "localhost/rl:1"]);
    c.ok([
        "run",
        "--name",
        "rl",
        "localhost/rl:1",
        "sh",
        "-c",
        "echo mine > /mine && chown 1000:1000 /mine",
    ]);
    c.ok(["commit", "-q", "rl", "localhost/rl-made:1"]);
    c.ok(["rm", "rl"]);
    c.ok(["rmi", "localhost/rl:1"]);
    let out = c.ok(["load", "-i", archive.to_str().unwrap()]);
    assert!(out.contains("localhost/rl:1"), "{out}");
    let back = c.ok(["image", "inspect", "--format", "{{.Id}}", "localhost/rl:1"]);
    assert_eq!(
        back.trim().trim_start_matches("sha256:"),
        id.trim().trim_start_matches("sha256:")
    );
    // The committed file keeps the container's ids, not the host's.
    let seen = c.ok([
        "run",
        "--rm",
        "localhost/rl-made:1",
        "stat",
        "-c",
        "%u:%g %n",
        "/mine",
    ]);
    assert_eq!(seen.trim(), "1000:1000 /mine");
    c.assert_clean();
}
