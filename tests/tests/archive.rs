//! `save` and `load` beside podman 4.3, both ways: docker and OCI archives
//! written by cairn load into podman with the same image id, and
//! podman's load into cairn with the same ids and run there; a docker
//! archive cairn writes is byte for byte podman's; `oci-dir` and
//! `docker-dir` output is read by skopeo and umoci; several images in one
//! docker archive; gzip- and zstd-compressed archives; hostile archives
//! (paths and links leaving the archive, a manifest naming outside files,
//! a huge manifest.json, wrong digests, truncation) each refused in one
//! line with exit 125 and nothing left in the store; and `load` killed
//! with SIGKILL leaves a consistent store without a ref.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use cairn_tests::fixtures::refs;
use cairn_tests::podman::Podman;
use cairn_tests::util::{run, sha256_digest, temp_dir};
use cairn_tests::{Cairn, Run};

const IMAGE: &str = "localhost/debian-min:latest";
const ZSTD_IMAGE: &str = "localhost/debian-min-zstd:latest";

fn cairn_with(fixture: &str, name: &str) -> (Cairn, String) {
    let c = Cairn::new().expect("cairn environment");
    let id = c.pull_fixture_as(fixture, name);
    (c, id)
}

fn podman() -> Podman {
    Podman::new().unwrap_or_else(|e| panic!("podman is needed here: {e:#}"))
}

fn inspect(c: &Cairn, fmt: &str, image: &str) -> String {
    c.ok(["image", "inspect", "--format", fmt, image])
        .trim()
        .to_owned()
}

fn podman_inspect(p: &Podman, fmt: &str, image: &str) -> String {
    p.ok(["image", "inspect", "--format", fmt, image])
        .trim()
        .to_owned()
}

/// The image runs in cairn and sees the fixture's Debian.
fn runs(c: &Cairn, image: &str) {
    let out = c.ok(["run", "--rm", image, "cat", "/etc/debian_version"]);
    assert!(
        out.trim().starts_with("12"),
        "{image}: /etc/debian_version is {out:?}"
    );
}

/// The store's refs; none if the killed command did not get as far as
/// creating the store.
fn refs(c: &Cairn) -> Vec<String> {
    if c.root().join("index.json").exists() {
        c.refs()
    } else {
        Vec::new()
    }
}

fn no_refs_and_clean(c: &Cairn, what: &str) {
    assert!(refs(c).is_empty(), "{what}: refs left: {:?}", refs(c));
    c.assert_clean_after(what);
    // The next command (here a check) finds no blob the failed load added.
    assert!(c.blobs().is_empty(), "{what}: blobs left: {:?}", c.blobs());
    let left: Vec<String> = c
        .temp_files()
        .into_iter()
        .filter(|f| !f.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{what}: tmp/ holds {left:?}");
}

#[test]
fn docker_archive_both_ways_with_podman() {
    let (c, id) = cairn_with(refs::DEBIAN_MIN, IMAGE);
    let p = podman();
    let dir = temp_dir("archive").unwrap();
    // cairn → podman.
    let ours = dir.path().join("cairn.tar");
    c.ok(["save", "-o", ours.to_str().unwrap(), IMAGE]);
    let out = p.ok(["load", "-i", ours.to_str().unwrap()]);
    assert_eq!(out.trim(), format!("Loaded image: {IMAGE}"));
    assert_eq!(podman_inspect(&p, "{{.Id}}", IMAGE), id);
    // podman → cairn (a fresh root): the same id, the name, and it runs.
    let theirs = dir.path().join("podman.tar");
    p.ok(["save", "-o", theirs.to_str().unwrap(), IMAGE]);
    // The same image saved by both is the same archive, byte for byte.
    assert!(
        fs::read(&ours).unwrap() == fs::read(&theirs).unwrap(),
        "cairn's docker archive differs from podman's"
    );
    // By id (no RepoTags) and with extra names (recorded first, as podman
    // does): still podman's bytes. (podman refuses an extra name that is
    // no name of the image's, unless it is new under localhost/; the one
    // here is made a name on both sides.)
    c.ok(["tag", IMAGE, "quay.io/x/y:2"]);
    p.ok(["tag", IMAGE, "quay.io/x/y:2"]);
    for extra in [
        vec![id.as_str()],
        vec![IMAGE, "quay.io/x/y:2", "localhost/other:5"],
    ] {
        let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
        // Neither rewrites an existing docker archive.
        let _ = (fs::remove_file(&a), fs::remove_file(&b));
        let mut args = vec!["save", "-o", a.to_str().unwrap()];
        args.extend(&extra);
        c.ok(&args);
        args[2] = b.to_str().unwrap();
        p.ok(&args);
        assert!(
            fs::read(&a).unwrap() == fs::read(&b).unwrap(),
            "save {extra:?}: cairn's archive differs from podman's"
        );
    }
    let fresh = Cairn::new().unwrap();
    let out = fresh.ok(["load", "-i", theirs.to_str().unwrap()]);
    assert_eq!(out.trim(), format!("Loaded image: {IMAGE}"));
    assert_eq!(inspect(&fresh, "{{.Id}}", IMAGE), id);
    runs(&fresh, IMAGE);
    fresh.assert_clean();
    // save again from the loaded store (layers stored uncompressed now):
    // still the same bytes.
    let again = dir.path().join("again.tar");
    fresh.ok(["save", "-o", again.to_str().unwrap(), IMAGE]);
    assert!(fs::read(&again).unwrap() == fs::read(&theirs).unwrap());
    // --compress: the uncompressed layer goes into dir: gzip-compressed,
    // and the image comes back through skopeo with the same id.
    let dd = dir.path().join("dd");
    fresh.ok([
        "save",
        "--format",
        "docker-dir",
        "--compress",
        "-o",
        dd.to_str().unwrap(),
        IMAGE,
    ]);
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(dd.join("manifest.json")).unwrap()).unwrap();
    let layer = &m["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let blob = fs::read(dd.join(&layer["digest"].as_str().unwrap()[7..])).unwrap();
    assert_eq!(&blob[..2], &[0x1f, 0x8b]);
    let back = dir.path().join("back");
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--insecure-policy",
        &format!("dir:{}", dd.display()),
        &format!("oci:{}:x", back.display()),
    ]))
    .unwrap();
    let other = Cairn::new().unwrap();
    let got = other.ok(["pull", "-q", &format!("oci:{}:x", back.display())]);
    assert_eq!(got.trim(), id);
    runs(&other, &id);
}

#[test]
fn oci_archive_both_ways_with_podman() {
    let (c, id) = cairn_with(refs::DEBIAN_MIN, IMAGE);
    let p = podman();
    let dir = temp_dir("archive").unwrap();
    let ours = dir.path().join("cairn-oci.tar");
    c.ok([
        "save",
        "--format",
        "oci-archive",
        "-o",
        ours.to_str().unwrap(),
        IMAGE,
    ]);
    p.ok(["load", "-i", ours.to_str().unwrap()]);
    assert_eq!(podman_inspect(&p, "{{.Id}}", IMAGE), id);
    // The OCI manifest went out unchanged (podman converts it on load, so
    // its own digest differs).
    assert_eq!(
        archive_manifest_digest(&ours),
        inspect(&c, "{{.Digest}}", IMAGE)
    );
    let theirs = dir.path().join("podman-oci.tar");
    p.ok([
        "save",
        "--format",
        "oci-archive",
        "-o",
        theirs.to_str().unwrap(),
        IMAGE,
    ]);
    let fresh = Cairn::new().unwrap();
    // From standard input.
    let r = load_stdin(&fresh, &fs::read(&theirs).unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), format!("Loaded image: {IMAGE}"));
    assert_eq!(inspect(&fresh, "{{.Id}}", IMAGE), id);
    assert_eq!(
        inspect(&fresh, "{{.Digest}}", IMAGE),
        archive_manifest_digest(&theirs)
    );
    runs(&fresh, IMAGE);
    fresh.assert_clean();
}

/// The manifest digest an OCI archive's index.json names.
fn archive_manifest_digest(file: &Path) -> String {
    let mut a = tar::Archive::new(fs::File::open(file).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("index.json") {
            let v: serde_json::Value = serde_json::from_reader(&mut e).unwrap();
            return v["manifests"][0]["digest"].as_str().unwrap().to_owned();
        }
    }
    panic!("{}: no index.json", file.display());
}

fn load_stdin(c: &Cairn, data: &[u8]) -> Run {
    let mut cmd = c.command(["load"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn cairn load");
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn save_then_load_in_a_fresh_root_keeps_the_id() {
    for format in ["docker-archive", "oci-archive"] {
        let (c, id) = cairn_with(refs::DEBIAN_MIN_ZSTD, ZSTD_IMAGE);
        let dir = temp_dir("archive").unwrap();
        let x = dir.path().join("x.tar");
        c.ok([
            "save",
            "--format",
            format,
            "-o",
            x.to_str().unwrap(),
            ZSTD_IMAGE,
        ]);
        // Written under a temporary name: nothing else beside x.tar.
        assert_eq!(cairn_tests::util::dir_names(dir.path()), vec!["x.tar"]);
        let fresh = Cairn::new().unwrap();
        fresh.ok(["load", "-i", x.to_str().unwrap()]);
        assert_eq!(inspect(&fresh, "{{.Id}}", ZSTD_IMAGE), id, "{format}");
        runs(&fresh, ZSTD_IMAGE);
        fresh.assert_clean();
    }
}

#[test]
fn oci_dir_and_docker_dir_read_by_skopeo_and_umoci() {
    let (c, id) = cairn_with(refs::DEBIAN_MIN, IMAGE);
    let dir = temp_dir("archive").unwrap();
    let oci = dir.path().join("oci");
    c.ok([
        "save",
        "--format",
        "oci-dir",
        "-o",
        oci.to_str().unwrap(),
        IMAGE,
    ]);
    let manifest_digest = inspect(&c, "{{.Digest}}", IMAGE);
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:{IMAGE}", oci.display()),
    ]))
    .unwrap();
    assert_eq!(sha256_digest(raw.as_bytes()), manifest_digest);
    let cfg = run(Command::new("skopeo").args([
        "inspect",
        "--config",
        "--raw",
        &format!("oci:{}:{IMAGE}", oci.display()),
    ]))
    .unwrap();
    assert_eq!(sha256_digest(cfg.as_bytes()), format!("sha256:{id}"));
    let bundle = dir.path().join("bundle");
    run(Command::new("umoci").args([
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:{IMAGE}", oci.display()),
        bundle.to_str().unwrap(),
    ]))
    .unwrap();
    assert!(fs::read_to_string(bundle.join("rootfs/etc/debian_version"))
        .unwrap()
        .starts_with("12"));
    // A second image goes into the same layout beside the first.
    c.ok(["tag", IMAGE, "localhost/second:1"]);
    c.ok([
        "save",
        "--format",
        "oci-dir",
        "-o",
        oci.to_str().unwrap(),
        "localhost/second:1",
    ]);
    let tags = run(Command::new("umoci").args(["ls", "--layout", oci.to_str().unwrap()])).unwrap();
    let mut tags: Vec<&str> = tags.lines().collect();
    tags.sort();
    assert_eq!(tags, vec![IMAGE, "localhost/second:1"]);

    let dd = dir.path().join("dd");
    c.ok([
        "save",
        "--format",
        "docker-dir",
        "-o",
        dd.to_str().unwrap(),
        IMAGE,
    ]);
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(dd.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        fs::read_to_string(dd.join("version")).unwrap(),
        "Directory Transport Version: 1.1\n"
    );
    let cfg = run(Command::new("skopeo").args([
        "inspect",
        "--config",
        "--raw",
        &format!("dir:{}", dd.display()),
    ]))
    .unwrap();
    assert_eq!(sha256_digest(cfg.as_bytes()), format!("sha256:{id}"));
    // And back in through skopeo into a fresh cairn.
    let back = dir.path().join("back");
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--insecure-policy",
        &format!("dir:{}", dd.display()),
        &format!("oci:{}:x", back.display()),
    ]))
    .unwrap();
    let fresh = Cairn::new().unwrap();
    let got = fresh.ok(["pull", "-q", &format!("oci:{}:x", back.display())]);
    assert_eq!(got.trim(), id);
}

#[test]
fn several_images_in_one_docker_archive() {
    let c = Cairn::new().unwrap();
    let a = c.pull_fixture_as(refs::DEBIAN_MIN, IMAGE);
    let b = c.pull_fixture_as(refs::CLIENTS, "localhost/clients:latest");
    let dir = temp_dir("archive").unwrap();
    let x = dir.path().join("multi.tar");
    c.ok([
        "save",
        "-m",
        "-o",
        x.to_str().unwrap(),
        IMAGE,
        "localhost/clients:latest",
    ]);
    let fresh = Cairn::new().unwrap();
    let out = fresh.ok(["load", "-i", x.to_str().unwrap()]);
    assert_eq!(
        out,
        format!("Loaded image: {IMAGE}\nLoaded image: localhost/clients:latest\n")
    );
    assert_eq!(inspect(&fresh, "{{.Id}}", IMAGE), a);
    assert_eq!(inspect(&fresh, "{{.Id}}", "localhost/clients:latest"), b);
    fresh.assert_clean();
    let p = podman();
    p.ok(["load", "-i", x.to_str().unwrap()]);
    assert_eq!(podman_inspect(&p, "{{.Id}}", IMAGE), a);
    assert_eq!(podman_inspect(&p, "{{.Id}}", "localhost/clients:latest"), b);
}

#[test]
fn compressed_archives_load() {
    let (c, id) = cairn_with(refs::DEBIAN_MIN, IMAGE);
    let dir = temp_dir("archive").unwrap();
    let x = dir.path().join("x.tar");
    c.ok(["save", "-o", x.to_str().unwrap(), IMAGE]);
    // The same bytes to standard output, with -o /dev/stdout (written in
    // place, the link never replaced) or without -o.
    let bytes = fs::read(&x).unwrap();
    for args in [
        vec!["save", "-o", "/dev/stdout", IMAGE],
        vec!["save", IMAGE],
    ] {
        let out = c.command(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            out.stdout == bytes,
            "{args:?}: not the archive -o FILE wrote"
        );
    }
    assert!(fs::symlink_metadata("/dev/stdout")
        .unwrap()
        .file_type()
        .is_symlink());
    let gz = dir.path().join("x.tar.gz");
    let mut enc =
        flate2::write::GzEncoder::new(fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    std::io::copy(&mut fs::File::open(&x).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap();
    let zst = dir.path().join("x.tar.zst");
    run(Command::new("zstd").args(["-q", "-1", "-o", zst.to_str().unwrap(), x.to_str().unwrap()]))
        .unwrap();
    for f in [&gz, &zst] {
        let fresh = Cairn::new().unwrap();
        fresh.ok(["load", "-i", f.to_str().unwrap()]);
        assert_eq!(inspect(&fresh, "{{.Id}}", IMAGE), id, "{}", f.display());
        fresh.assert_clean();
    }
}

// ---------------------------------------------------------------------------
// Hostile archives

/// A tar built entry by entry with raw names (the tar crate refuses `..`
/// in the paths it sets; these archives need them).
struct Evil {
    b: tar::Builder<Vec<u8>>,
}

impl Evil {
    fn new() -> Evil {
        Evil {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(name: &str, kind: tar::EntryType, size: u64, link: Option<&str>) -> tar::Header {
        let mut h = tar::Header::new_old();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            old.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        h
    }

    fn file(mut self, name: &str, data: &[u8]) -> Evil {
        let h = Self::header(name, tar::EntryType::Regular, data.len() as u64, None);
        self.b.append(&h, data).unwrap();
        self
    }

    fn link(mut self, name: &str, kind: tar::EntryType, target: &str) -> Evil {
        let h = Self::header(name, kind, 0, Some(target));
        self.b.append(&h, std::io::empty()).unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// A small valid image: one uncompressed layer with one file, its config
/// and (by default) the manifest.json naming them.
struct Small {
    layer: Vec<u8>,
    config: Vec<u8>,
}

impl Small {
    fn new() -> Small {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(6);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "hello.txt", &b"hello\n"[..]).unwrap();
        let layer = b.into_inner().unwrap();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer)]},
        }))
        .unwrap();
        Small { layer, config }
    }

    fn layer_name(&self) -> String {
        format!("{}.tar", &sha256_digest(&self.layer)[7..])
    }

    fn config_name(&self) -> String {
        format!("{}.json", &sha256_digest(&self.config)[7..])
    }

    fn manifest(&self, config: &str, layer: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!([
            {"Config": config, "RepoTags": ["localhost/evil:1"], "Layers": [layer]}
        ]))
        .unwrap()
    }

    /// The archive, well-formed.
    fn good(&self) -> Evil {
        Evil::new()
            .file(&self.layer_name(), &self.layer)
            .file(&self.config_name(), &self.config)
            .file(
                "manifest.json",
                &self.manifest(&self.config_name(), &self.layer_name()),
            )
    }
}

/// The hostile archives: what each is, its bytes, and what the error says.
fn hostile_cases(
    s: &Small,
    outside: &Path,
    good: &[u8],
) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let huge = vec![b' '; 5 << 20];
    let mut truncated = good.to_vec();
    truncated.truncate(512 + s.layer.len() / 2);
    let mut wrong = s.layer.clone();
    let last = wrong.len() - 1100;
    wrong[last] ^= 1;
    vec![
        (
            "dotdot",
            s.good().file("../../outside/x", b"x").bytes(),
            "leaves the archive",
        ),
        (
            "absolute",
            s.good()
                .file(&format!("{}/abs", outside.display()), b"x")
                .bytes(),
            "leaves the archive",
        ),
        (
            "symlink out",
            s.good()
                .link(
                    "id/layer.tar",
                    tar::EntryType::Symlink,
                    "../../../outside/x",
                )
                .bytes(),
            "points outside the archive",
        ),
        (
            "absolute symlink",
            s.good()
                .link("l.tar", tar::EntryType::Symlink, "/etc/passwd")
                .bytes(),
            "points outside the archive",
        ),
        (
            "hardlink out",
            s.good()
                .link("h.tar", tar::EntryType::Link, "../outside/x")
                .bytes(),
            "points outside the archive",
        ),
        (
            "manifest names an outside file",
            Evil::new()
                .file(&s.layer_name(), &s.layer)
                .file(&s.config_name(), &s.config)
                .file(
                    "manifest.json",
                    &s.manifest(&s.config_name(), "../../../etc/passwd"),
                )
                .bytes(),
            "leaves the archive",
        ),
        (
            "manifest names a missing file",
            Evil::new()
                .file(&s.config_name(), &s.config)
                .link("l.tar", tar::EntryType::Symlink, "nothing.tar")
                .file("manifest.json", &s.manifest(&s.config_name(), "l.tar"))
                .bytes(),
            "not in the archive",
        ),
        (
            "huge manifest.json",
            Evil::new()
                .file(&s.layer_name(), &s.layer)
                .file(&s.config_name(), &s.config)
                .file("manifest.json", &huge)
                .bytes(),
            "more than",
        ),
        (
            "layer not its digest",
            Evil::new()
                .file(&s.layer_name(), &wrong)
                .file(&s.config_name(), &s.config)
                .file(
                    "manifest.json",
                    &s.manifest(&s.config_name(), &s.layer_name()),
                )
                .bytes(),
            "digest mismatch",
        ),
        (
            "layer not its diff id",
            Evil::new()
                .file("id/layer.tar", &wrong)
                .file(&s.config_name(), &s.config)
                .file(
                    "manifest.json",
                    &s.manifest(&s.config_name(), "id/layer.tar"),
                )
                .bytes(),
            "not to its diff id",
        ),
        ("truncated", truncated, "truncated"),
        (
            "device node",
            s.good().link("dev", tar::EntryType::Char, "").bytes(),
            "no place in an image archive",
        ),
    ]
}

#[test]
fn hostile_archives_are_refused_and_leave_nothing() {
    let s = Small::new();
    let dir = temp_dir("archive").unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    // The archive sits two levels under `dir`: `../../outside/x` from its
    // directory would reach `outside`, were any path followed.
    let arch_dir = dir.path().join("a/b");
    fs::create_dir_all(&arch_dir).unwrap();
    let good = s.good().bytes();
    let fresh = Cairn::new().unwrap();
    let f = arch_dir.join("good.tar");
    fs::write(&f, &good).unwrap();
    fresh.ok(["load", "-i", f.to_str().unwrap()]);
    assert_eq!(
        fresh.refs(),
        vec!["localhost/evil:1"],
        "the well-formed one loads"
    );

    let cases = hostile_cases(&s, &outside, &good);
    for (what, bytes, says) in cases {
        let c = Cairn::new().unwrap();
        let f = arch_dir.join("evil.tar");
        fs::write(&f, &bytes).unwrap();
        let r = c.fails(125, ["load", "-i", f.to_str().unwrap()]);
        let err = r.stderr.trim();
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert!(err.contains("evil.tar"), "{what}: names the file: {err}");
        assert!(err.contains(says), "{what}: says {says:?}: {err}");
        no_refs_and_clean(&c, what);
        assert!(
            cairn_tests::util::dir_names(&outside).is_empty(),
            "{what}: wrote outside"
        );
        assert_eq!(
            cairn_tests::util::dir_names(&arch_dir),
            vec!["evil.tar", "good.tar"],
            "{what}: wrote beside the archive"
        );
    }
}

#[test]
fn killed_load_leaves_a_consistent_store() {
    let (c, id) = cairn_with(refs::DEBIAN_MIN, IMAGE);
    let dir = temp_dir("archive").unwrap();
    let x = dir.path().join("x.tar");
    c.ok(["save", "-o", x.to_str().unwrap(), IMAGE]);
    // How long a whole load takes, the shortest of two (other tests share
    // the machine): the kills land at fractions of it.
    let mut full = (0..2)
        .map(|_| {
            let probe = Cairn::new().unwrap();
            let t = Instant::now();
            probe.ok(["load", "-i", x.to_str().unwrap()]);
            t.elapsed()
        })
        .min()
        .unwrap();
    let mut landed = 0;
    for i in 0..12 {
        let fresh = Cairn::new().unwrap();
        let delay = full.mul_f64(f64::from(i % 6 + 1) / 8.0);
        let mut child = fresh.spawn(["load", "-i", x.to_str().unwrap()]).unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            landed += 1;
        } else {
            // The load was over before the kill: loads run faster now
            // than when measured, so the next kills come sooner.
            full = full.mul_f64(0.75);
        }
        let _ = child.kill();
        let _ = child.wait();
        if refs(&fresh).is_empty() {
            fresh.assert_clean_after(&format!("kill after {delay:?}"));
        }
        // The load runs again to completion.
        fresh.ok(["load", "-i", x.to_str().unwrap()]);
        assert_eq!(inspect(&fresh, "{{.Id}}", IMAGE), id);
        fresh.assert_clean_after(&format!("rerun after kill at {delay:?}"));
        assert!(fresh.temp_files().is_empty(), "{:?}", fresh.temp_files());
    }
    assert!(
        landed >= 4,
        "only {landed} kills landed on a running load ({full:?} each)"
    );
}

#[test]
fn refusals() {
    let (c, _) = cairn_with(refs::DEBIAN_MIN, IMAGE);
    let dir = temp_dir("archive").unwrap();
    let r = c.fails(
        125,
        [
            "save",
            "--format",
            "oci-archive",
            "-o",
            dir.path().join("x").to_str().unwrap(),
            "-m",
            IMAGE,
        ],
    );
    assert!(r.stderr.contains("docker-archive"), "{}", r.stderr);
    // An existing docker archive is not rewritten (podman's rule), an OCI
    // archive is replaced.
    let old = dir.path().join("old.tar");
    fs::write(&old, b"keep").unwrap();
    let r = c.fails(125, ["save", "-o", old.to_str().unwrap(), IMAGE]);
    assert!(
        r.stderr
            .contains("doesn't support modifying existing images"),
        "{}",
        r.stderr
    );
    assert_eq!(fs::read(&old).unwrap(), b"keep");
    c.ok([
        "save",
        "--format",
        "oci-archive",
        "-o",
        old.to_str().unwrap(),
        IMAGE,
    ]);
    assert!(fs::metadata(&old).unwrap().len() > 1 << 20);
    let r = c.fails(125, ["save", "-o", "/tmp/never", "localhost/nothing"]);
    assert!(r.stderr.contains("localhost/nothing"), "{}", r.stderr);
    assert!(!Path::new("/tmp/never").exists());
    // Not an archive at all.
    let f: PathBuf = dir.path().join("junk");
    fs::write(&f, b"junk").unwrap();
    let r = c.fails(125, ["load", "-i", f.to_str().unwrap()]);
    assert!(r.stderr.contains("junk"), "{}", r.stderr);
}
