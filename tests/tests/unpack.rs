//! End-to-end: `cairn pull` and `cairn unpack` through the real binary on
//! the real fixture images, compared with `umoci unpack` path by path (type,
//! mode, owner, size, content hash, link target, xattrs, hardlink groups),
//! plus dedup between sibling images, raw `--layer` unpacking, the layer
//! size limit and corrupt layers.
//!
//! umoci 0.4.7 cannot read zstd layers; the three `debian-min` variants have
//! one and the same diff id (the same uncompressed tar), so all three are
//! compared with umoci's unpack of the gzip one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cairn_tests::fixtures::{self, blob_path, refs};
use cairn_tests::roots::{self, Merged};
use cairn_tests::util::{run, sha256_digest};
use cairn_tests::Cairn;
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// What is compared for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: char,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Regular files: size and SHA-256; symlinks: the target; devices: rdev.
    what: String,
    /// `user.*` and `security.capability`, hex values.
    xattrs: Vec<(String, String)>,
    /// Modification time, seconds.
    mtime: i64,
}

/// A scanned tree: entries by path (root = ""), hardlink groups of regular
/// files and of symlinks (paths sharing an inode, more than one), inode by
/// path.
#[derive(Debug, Default)]
struct Scan {
    entries: BTreeMap<String, Entry>,
    groups: BTreeSet<Vec<String>>,
    inodes: HashMap<String, u64>,
}

fn rel_of(root: &Path, p: &Path) -> String {
    String::from_utf8_lossy(p.strip_prefix(root).unwrap().as_os_str().as_bytes()).into_owned()
}

fn scan(root: &Path) -> Scan {
    let xattrs = read_xattrs(root);
    let mut s = Scan::default();
    let mut by_ino: HashMap<u64, Vec<String>> = HashMap::new();
    let mut todo = vec![root.to_owned()];
    while let Some(p) = todo.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let rel = rel_of(root, &p);
        let (kind, what) = if ft.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
            ('d', String::new())
        } else if ft.is_file() {
            let mut h = Sha256::new();
            let mut f = fs::File::open(&p).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            by_ino.entry(m.ino()).or_default().push(rel.clone());
            s.inodes.insert(rel.clone(), m.ino());
            ('f', format!("{} {}", m.len(), hex::encode(h.finalize())))
        } else if ft.is_symlink() {
            by_ino.entry(m.ino()).or_default().push(rel.clone());
            s.inodes.insert(rel.clone(), m.ino());
            let t = fs::read_link(&p).unwrap();
            (
                'l',
                String::from_utf8_lossy(t.as_os_str().as_bytes()).into_owned(),
            )
        } else if ft.is_fifo() {
            ('p', String::new())
        } else if ft.is_char_device() {
            ('c', format!("{:x}", m.rdev()))
        } else if ft.is_block_device() {
            ('b', format!("{:x}", m.rdev()))
        } else {
            ('s', String::new())
        };
        s.entries.insert(
            rel.clone(),
            Entry {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                what,
                xattrs: xattrs.get(&rel).cloned().unwrap_or_default(),
                mtime: m.mtime(),
            },
        );
    }
    for (_, mut paths) in by_ino {
        if paths.len() > 1 {
            paths.sort();
            s.groups.insert(paths);
        }
    }
    s
}

/// `user.*` and `security.capability` of every path under `root`, read with
/// getfattr(1) in one run (the tests crate has no xattr binding).
fn read_xattrs(root: &Path) -> HashMap<String, Vec<(String, String)>> {
    let out = Command::new("getfattr")
        .args([
            "-R",
            "-P",
            "-h",
            "-d",
            "-e",
            "hex",
            "--absolute-names",
            "-m",
        ])
        .arg(r"^(user\.|security\.capability$)")
        .arg(root)
        .output()
        .expect("getfattr (package attr) runs");
    let mut map: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in out.stdout.split(|&b| b == b'\n') {
        if let Some(name) = line.strip_prefix(b"# file: ") {
            let p = PathBuf::from(OsStr::from_bytes(&unescape(name)));
            current = Some(rel_of(root, &p));
        } else if let (Some(cur), Some(eq)) = (&current, line.iter().position(|&b| b == b'=')) {
            let k = String::from_utf8_lossy(&line[..eq]).into_owned();
            let v = String::from_utf8_lossy(&line[eq + 1..]).into_owned();
            let list = map.entry(cur.clone()).or_default();
            list.push((k, v));
            list.sort();
        }
    }
    map
}

/// getfattr's escaping of file names: `\ooo` octal and `\\`.
fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 4 <= s.len()
            && s[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (s[i + 1] - b'0') * 64 + (s[i + 2] - b'0') * 8 + (s[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else if s[i] == b'\\' && s.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Differences between umoci's tree and cairn's. With `exact_groups`,
/// hardlink groups must be equal; without (hardlink mode, which shares
/// identical files), each of umoci's groups must be inside one of cairn's.
fn differences(want: &Scan, got: &Scan, exact_groups: bool) -> Vec<String> {
    let mut d = Vec::new();
    for (p, w) in &want.entries {
        match got.entries.get(p) {
            None => d.push(format!("missing /{p}: {w:?}")),
            Some(g) if g != w => d.push(format!("/{p}:\n    umoci {w:?}\n    cairn {g:?}")),
            _ => {}
        }
    }
    for (p, g) in &got.entries {
        if !want.entries.contains_key(p) {
            d.push(format!("extra /{p}: {g:?}"));
        }
    }
    if exact_groups {
        for g in want.groups.difference(&got.groups) {
            d.push(format!("umoci hardlink group not in cairn: {g:?}"));
        }
        for g in got.groups.difference(&want.groups) {
            d.push(format!("cairn hardlink group not in umoci: {g:?}"));
        }
    } else {
        for g in &want.groups {
            let inos: HashSet<Option<&u64>> = g.iter().map(|p| got.inodes.get(p)).collect();
            if inos.len() != 1 || inos.contains(&None) {
                d.push(format!("umoci hardlink group split in cairn: {g:?}"));
            }
        }
    }
    d
}

fn assert_same(what: &str, want: &Scan, got: &Scan, exact_groups: bool) {
    let d = differences(want, got, exact_groups);
    assert!(
        d.is_empty(),
        "{what}: {} differences from umoci (first 40):\n{}",
        d.len(),
        d.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        want.entries.len() > 10,
        "{what}: umoci's tree is too small to mean anything"
    );
}

/// umoci's unpack of a fixture, scanned once per test process (the tree
/// itself is removed right away).
fn umoci(name: &'static str) -> &'static Scan {
    static SCANS: OnceLock<std::sync::Mutex<HashMap<&'static str, &'static Scan>>> =
        OnceLock::new();
    let scans = SCANS.get_or_init(Default::default);
    let mut guard = scans.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = guard.get(name) {
        return s;
    }
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{name}", fixtures::layout().display()))
        .arg(&bundle))
    .unwrap();
    let s: &'static Scan = Box::leak(Box::new(scan(&bundle.join("rootfs"))));
    guard.insert(name, s);
    s
}

/// The fixture's manifest digest and layer digests.
fn fixture(name: &str) -> (String, Vec<String>) {
    fixtures::manifest_and_layers(name)
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

fn pull(cairn: &Cairn, name: &str) -> String {
    cairn.ok(["pull", "-q", &fixtures::oci_ref(name)]);
    fixture(name).0
}

/// The image root pull built, mounted as a container's lower layers.
fn image_root(cairn: &Cairn, manifest: &str) -> Merged {
    Merged::mount(&roots::lowers(cairn.root(), hex_of(manifest)))
}

fn unpack(cairn: &Cairn, image: &str, mode: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("rootfs");
    let mut args = vec!["unpack", "--mode", mode];
    args.extend_from_slice(extra);
    let t = target.to_str().unwrap().to_owned();
    args.extend_from_slice(&[image, &t]);
    cairn.ok(&args);
    (dir, target)
}

#[test]
fn debian_min_gzip_zstd_and_plain_unpack_like_umoci() {
    let want = umoci(refs::DEBIAN_MIN);
    let cairn = Cairn::new().unwrap();
    for name in [
        refs::DEBIAN_MIN,
        refs::DEBIAN_MIN_ZSTD,
        refs::DEBIAN_MIN_PLAIN,
    ] {
        let manifest = pull(&cairn, name);
        let (_dir, copy) = unpack(&cairn, &manifest, "copy", &[]);
        assert_same(&format!("{name} copy"), want, &scan(&copy), true);
        // The read-only image root pull built (hardlinks to objects).
        assert_same(
            &format!("{name} image root"),
            want,
            &scan(image_root(&cairn, &manifest).path()),
            false,
        );
    }
    let manifest = fixture(refs::DEBIAN_MIN).0;
    let (_dir, hl) = unpack(&cairn, &manifest, "hardlink", &[]);
    assert_same("debian-min hardlink", want, &scan(&hl), false);
}

#[test]
fn multi_layer_image_with_edge_cases_unpacks_like_umoci() {
    let want = umoci(refs::MULTI);
    // The edge cases of layer 3 are really there to be compared.
    for p in [
        "cairn/hardlink/link-to-layer1",
        "cairn/perm/setuid",
        "cairn/owner/uid1000",
        "cairn/links/escape",
        "cairn/special/fifo",
        "cairn/xattr/file",
        "cairn/opaque/new-file",
    ] {
        assert!(want.entries.contains_key(p), "umoci's tree has {p}");
    }
    assert!(!want.entries.contains_key("cairn/opaque/old-file"));
    assert!(
        !want.entries["cairn/xattr/file"].xattrs.is_empty(),
        "fixture xattrs"
    );
    assert!(!want.groups.is_empty(), "fixture hardlinks");

    let cairn = Cairn::new().unwrap();
    let manifest = pull(&cairn, refs::MULTI);
    let (_d1, copy) = unpack(&cairn, &manifest, "copy", &[]);
    assert_same("multi copy", want, &scan(&copy), true);
    let (_d2, hl) = unpack(&cairn, &manifest, "hardlink", &[]);
    assert_same("multi hardlink", want, &scan(&hl), false);
    assert_same(
        "multi image root",
        want,
        &scan(image_root(&cairn, &manifest).path()),
        false,
    );
}

#[test]
fn uid_and_gid_maps_shift_every_owner() {
    const SHIFT: u32 = 100_000;
    let want = umoci(refs::MULTI);
    let mut shifted = Scan {
        entries: want.entries.clone(),
        groups: want.groups.clone(),
        inodes: HashMap::new(),
    };
    for e in shifted.entries.values_mut() {
        e.uid += SHIFT;
        e.gid += SHIFT;
    }
    let cairn = Cairn::new().unwrap();
    let manifest = pull(&cairn, refs::MULTI);
    let map = format!("0:{SHIFT}:65536");
    let (_d, copy) = unpack(
        &cairn,
        &manifest,
        "copy",
        &["--uidmap", &map, "--gidmap", &map],
    );
    assert_same("multi with --uidmap/--gidmap", &shifted, &scan(&copy), true);
    let r = cairn.fails(
        125,
        [
            "unpack",
            "--uidmap",
            "0:1:0",
            &manifest,
            "/nonexistent-cairn",
        ],
    );
    assert!(r.stderr.contains("--uidmap"), "{}", r.stderr);
}

/// Regular files (not whiteouts) in a gzip layer blob.
fn regular_files_in(blob: &Path) -> usize {
    let gz = flate2::read::MultiGzDecoder::new(fs::File::open(blob).unwrap());
    let mut ar = tar::Archive::new(gz);
    ar.entries()
        .unwrap()
        .filter(|e| {
            let e = e.as_ref().unwrap();
            let name = e.path().unwrap();
            e.header().entry_type().is_file()
                && !name
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".wh."))
        })
        .count()
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut todo = vec![dir.to_owned()];
    while let Some(p) = todo.pop() {
        for e in fs::read_dir(&p).into_iter().flatten() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn a_sibling_image_costs_only_its_top_layer() {
    let cairn = Cairn::new().unwrap();
    let a = pull(&cairn, refs::MULTI);
    let objects_a = count_files(&cairn.root().join("objects"));
    let changesets_a = count_files(&cairn.root().join("layers"));
    let blobs_a = cairn.blobs().len();
    let chains = || fs::read_dir(cairn.root().join("chains")).unwrap().count();
    let chains_a = chains();
    let dirs_a: BTreeSet<PathBuf> = roots::lowers(cairn.root(), hex_of(&a))
        .into_iter()
        .collect();

    let b = pull(&cairn, refs::MULTI_SIBLING);
    let (_, layers_a) = fixture(refs::MULTI);
    let (_, layers_b) = fixture(refs::MULTI_SIBLING);
    let new_layers: Vec<&String> = layers_b.iter().filter(|l| !layers_a.contains(l)).collect();
    assert_eq!(
        new_layers.len(),
        1,
        "the fixture shares all but the top layer"
    );
    let top_files = regular_files_in(&blob_path(new_layers[0]));
    assert!(top_files > 0);

    let objects_b = count_files(&cairn.root().join("objects"));
    assert!(
        objects_b - objects_a <= top_files,
        "objects {objects_a} -> {objects_b}, but the new layer has only {top_files} files"
    );
    assert!(objects_b > objects_a, "the top layer's files are stored");
    assert_eq!(
        count_files(&cairn.root().join("layers")),
        changesets_a + 1,
        "one new changeset: the lower layers are not decoded again"
    );
    assert_eq!(
        cairn.blobs().len(),
        blobs_a + 3,
        "manifest, config, top layer"
    );
    // The sibling's root stacks the first image's lower layer directories
    // and builds only its top one.
    assert_eq!(chains(), chains_a + 1, "one new layer directory");
    let dirs_b = roots::lowers(cairn.root(), hex_of(&b));
    assert_eq!(dirs_b.len(), layers_b.len());
    assert!(dirs_b[1..].iter().all(|d| dirs_a.contains(d)), "{dirs_b:?}");
    assert!(!dirs_a.contains(&dirs_b[0]));

    // Shared files are one inode in both image roots.
    let (ra, rb) = (
        scan(image_root(&cairn, &a).path()),
        scan(image_root(&cairn, &b).path()),
    );
    let mut same_path_same_file = 0;
    for (p, e) in &rb.entries {
        if e.kind == 'f' && ra.entries.get(p) == Some(e) {
            assert_eq!(
                ra.inodes[p], rb.inodes[p],
                "/{p} is shared but not one inode"
            );
            same_path_same_file += 1;
        }
    }
    assert!(same_path_same_file > 1000, "{same_path_same_file}");
    let inodes_a: HashSet<u64> = ra.inodes.values().copied().collect();
    let all: HashSet<u64> = ra
        .inodes
        .values()
        .chain(rb.inodes.values())
        .copied()
        .collect();
    assert!(
        all.len() <= inodes_a.len() + top_files,
        "distinct inodes: {} in the first root, {} in both; the sibling adds {top_files} files",
        inodes_a.len(),
        all.len()
    );
}

#[test]
fn unpack_layer_applies_raw_blobs_in_order() {
    let want = umoci(refs::MULTI);
    let cairn = Cairn::new().unwrap();
    let (_, layers) = fixture(refs::MULTI);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let mut args: Vec<String> = vec!["unpack".into(), "--layer".into()];
    args.extend(layers.iter().map(|l| blob_path(l).display().to_string()));
    args.push(target.display().to_string());
    cairn.ok(&args);
    assert_same("unpack --layer", want, &scan(&target), true);
    // Raw layers are not images: nothing was recorded as one.
    assert!(cairn.refs().is_empty(), "{:?}", cairn.refs());
}

#[test]
fn max_layer_size_refuses_a_layer_that_expands_beyond_it() {
    let cairn = Cairn::new().unwrap();
    let (_, layers) = fixture(refs::DEBIAN_MIN);
    let blob = blob_path(&layers[0]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let r = cairn.fails(
        125,
        [
            "unpack",
            "--layer",
            "--max-layer-size",
            "1000000",
            blob.to_str().unwrap(),
            target.to_str().unwrap(),
        ],
    );
    let err = error_line(&r.stderr);
    assert!(err.contains("1000000"), "names the limit: {err}");
    assert!(err.contains(hex_of(&layers[0])), "names the layer: {err}");
    assert!(
        err.contains("--max-layer-size"),
        "says how to raise it: {err}"
    );
    assert!(
        !target.exists() || fs::read_dir(&target).unwrap().next().is_none(),
        "nothing unpacked"
    );
    // Exactly the layer's uncompressed size is enough; a byte less is not.
    let size = std::io::copy(
        &mut flate2::read::MultiGzDecoder::new(fs::File::open(&blob).unwrap()),
        &mut std::io::sink(),
    )
    .unwrap();
    let r = cairn.fails(
        125,
        [
            "unpack",
            "--layer",
            "--max-layer-size",
            &(size - 1).to_string(),
            blob.to_str().unwrap(),
            target.to_str().unwrap(),
        ],
    );
    assert!(
        error_line(&r.stderr).contains("expands beyond"),
        "{}",
        r.stderr
    );
    cairn.ok([
        "unpack",
        "--layer",
        "--max-layer-size",
        &size.to_string(),
        blob.to_str().unwrap(),
        target.to_str().unwrap(),
    ]);
    assert!(target.join("usr/bin/bash").exists());
}

fn error_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr:?}");
    assert!(lines[0].starts_with("Error: "), "{stderr:?}");
    lines[0]
}

/// An OCI layout with one image whose single layer blob is `blob` (stored
/// and named by its own digest, so the store accepts it) and whose config
/// lists `diff_id`, tagged `bad`. Returns the layer's and the manifest's
/// digests.
fn layout_with_layer(dir: &Path, blob: &[u8], diff_id: &str) -> (String, String) {
    layout_tagged(dir, blob, diff_id, "bad")
}

/// [`layout_with_layer`], tagged `tag`.
fn layout_tagged(dir: &Path, blob: &[u8], diff_id: &str, tag: &str) -> (String, String) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> String {
        let d = sha256_digest(bytes);
        fs::write(blobs.join(hex_of(&d)), bytes).unwrap();
        d
    };
    let layer = put(blob);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap();
    let config_digest = put(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer, "size": blob.len()}],
    }))
    .unwrap();
    let manifest_digest = put(&manifest);
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": manifest_digest, "size": manifest.len(),
                           "annotations": {"org.opencontainers.image.ref.name": tag}}],
        }))
        .unwrap(),
    )
    .unwrap();
    (layer, manifest_digest)
}

fn small_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in [("etc/a", &b"alpha"[..]), ("etc/b", b"bravo")] {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, content).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// No image root (nor a leftover of building one) for `manifest`.
fn assert_no_image_root(cairn: &Cairn, manifest: &str) {
    let images = cairn.root().join("images");
    let leftovers: Vec<String> = fs::read_dir(&images)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(hex_of(manifest)))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "image root left behind: {leftovers:?}"
    );
}

#[test]
fn a_corrupt_layer_fails_in_one_line_naming_it_and_leaves_no_image_root() {
    let tar = small_tar();
    let gz = gzip(&tar);
    let cases: Vec<(&str, Vec<u8>, String, &[&str])> = vec![
        (
            "truncated gzip",
            gz[..gz.len() / 2].to_vec(),
            sha256_digest(&tar),
            &["corrupt"],
        ),
        (
            "bad tar checksum",
            {
                let mut t = tar.clone();
                t[0] ^= 1;
                gzip(&t)
            },
            sha256_digest(&tar),
            &["corrupt"],
        ),
        (
            "wrong diff id",
            gz.clone(),
            sha256_digest(b"not this layer"),
            &["config says", "corrupt"],
        ),
    ];
    for (what, blob, diff_id, words) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (layer, manifest) = layout_with_layer(dir.path(), &blob, &diff_id);
        let cairn = Cairn::new().unwrap();
        let r = cairn.fails(
            125,
            ["pull", "-q", &format!("oci:{}:bad", dir.path().display())],
        );
        let err = error_line(&r.stderr);
        assert!(
            err.contains(hex_of(&layer)),
            "{what}: names the layer: {err}"
        );
        for w in words {
            assert!(err.contains(w), "{what}: says {w:?}: {err}");
        }
        assert_no_image_root(&cairn, &manifest);
        // Unpacking it (if the failed pull left it listed) gives the same
        // answer and still builds nothing.
        let target = dir.path().join("target");
        let r = cairn.fails(125, ["unpack", &manifest, target.to_str().unwrap()]);
        if !cairn.refs().is_empty() {
            let err = error_line(&r.stderr);
            assert!(
                err.contains(hex_of(&layer)),
                "{what}: names the layer: {err}"
            );
        }
        assert!(
            !target.exists() || fs::read_dir(&target).unwrap().next().is_none(),
            "{what}: nothing unpacked"
        );
        assert_no_image_root(&cairn, &manifest);
    }
}

/// A layer blob that stores some files, then breaks: a gzip of 40 files of
/// 64 KiB, cut at 80%.
fn layer_breaking_late() -> (Vec<u8>, String) {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..40u32 {
        let content: Vec<u8> = (0..65536u32)
            .map(|j| (j.wrapping_mul(2_654_435_761) ^ i) as u8)
            .collect();
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        b.append_data(&mut h, format!("f{i}"), &content[..])
            .unwrap();
    }
    let tar = b.into_inner().unwrap();
    let gz = gzip(&tar);
    (gz[..gz.len() * 4 / 5].to_vec(), sha256_digest(&tar))
}

/// The issue's contract: a failed unpack leaves the store unchanged. The
/// layer's files decoded before the break are removed again; no changeset,
/// no image root.
#[test]
fn a_pull_whose_layer_cannot_be_unpacked_leaves_no_derived_data() {
    let (blob, diff_id) = layer_breaking_late();
    let dir = tempfile::tempdir().unwrap();
    let (_, manifest) = layout_with_layer(dir.path(), &blob, &diff_id);
    let cairn = Cairn::new().unwrap();
    let r = cairn.fails(
        125,
        ["pull", "-q", &format!("oci:{}:bad", dir.path().display())],
    );
    assert!(error_line(&r.stderr).contains("corrupt"), "{}", r.stderr);
    assert_eq!(count_files(&cairn.root().join("objects")), 0, "objects");
    assert_eq!(count_files(&cairn.root().join("layers")), 0, "changesets");
    assert_no_image_root(&cairn, &manifest);
}

/// A pull whose layer cannot be unpacked must not leave the image listed
/// either (podman keeps no image it could not apply).
#[test]
fn a_pull_whose_layer_cannot_be_unpacked_records_no_image() {
    let (blob, diff_id) = layer_breaking_late();
    let dir = tempfile::tempdir().unwrap();
    layout_with_layer(dir.path(), &blob, &diff_id);
    let cairn = Cairn::new().unwrap();
    cairn.fails(
        125,
        ["pull", "-q", &format!("oci:{}:bad", dir.path().display())],
    );
    let listed = cairn.ok(["images", "-q"]);
    assert!(
        listed.trim().is_empty(),
        "image listed after a failed pull: {listed}"
    );
    assert!(cairn.refs().is_empty(), "{:?}", cairn.refs());
}

/// `umoci unpack` of `oci:<layout>:<tag>`, scanned.
fn umoci_of(layout: &Path, tag: &str) -> Scan {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&bundle))
    .unwrap();
    scan(&bundle.join("rootfs"))
}

/// `tar` with every regular file's header mtime moved by `by` seconds (the
/// fixture layers carry no PAX mtimes), checksums recomputed.
fn shift_file_mtimes(mut tar: Vec<u8>, by: i64) -> Vec<u8> {
    let octal = |f: &[u8]| {
        let s = String::from_utf8_lossy(f);
        let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
        u64::from_str_radix(s, 8).unwrap_or(0)
    };
    let mut at = 0;
    let mut shifted = 0;
    while at + 512 <= tar.len() && tar[at..at + 512].iter().any(|&b| b != 0) {
        let h = &mut tar[at..at + 512];
        let size = octal(&h[124..136]);
        if matches!(h[156], b'0' | 0) {
            let mtime = octal(&h[136..148]) as i64 + by;
            h[136..148].copy_from_slice(format!("{mtime:011o}\0").as_bytes());
            h[148..156].copy_from_slice(b"        ");
            let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            shifted += 1;
        }
        at += 512 + size.div_ceil(512) as usize * 512;
    }
    assert!(shifted > 1000, "{shifted} files shifted");
    tar
}

/// Every path of an image root (mounted as a container's lower layers)
/// and of `unpack` has the mtime `umoci unpack` gives it, also when an
/// image holding the same files with other mtimes was pulled first: here
/// debian-min's own layer with every file 12345 s later. (Objects keyed
/// without the mtime gave each file the mtime of whichever image stored
/// its content first.)
#[test]
fn mtimes_are_umocis_after_an_image_sharing_content_with_other_mtimes() {
    let want = umoci(refs::DEBIAN_MIN);
    let (_, layers) = fixture(refs::DEBIAN_MIN);
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(fs::File::open(blob_path(&layers[0])).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    let later = shift_file_mtimes(tar, 12345);
    let dir = tempfile::tempdir().unwrap();
    let (_, later_manifest) =
        layout_tagged(dir.path(), &gzip(&later), &sha256_digest(&later), "later");
    let cairn = Cairn::new().unwrap();
    cairn.ok(["pull", "-q", &format!("oci:{}:later", dir.path().display())]);
    let manifest = pull(&cairn, refs::DEBIAN_MIN);
    assert_same(
        "debian-min image root, pulled after the later one",
        want,
        &scan(image_root(&cairn, &manifest).path()),
        false,
    );
    let (_d, hl) = unpack(&cairn, &manifest, "hardlink", &[]);
    assert_same("debian-min hardlink", want, &scan(&hl), false);
    // In a running container, every regular file of the image.
    assert_container_mtimes_are(&cairn, &manifest, want);
    // And the later image keeps its own.
    let later_root = scan(image_root(&cairn, &later_manifest).path());
    for p in [
        "usr/share/base-passwd/group.master",
        "usr/share/base-passwd/passwd.master",
    ] {
        assert_eq!(
            later_root.entries[p].mtime,
            want.entries[p].mtime + 12345,
            "/{p} in the later image"
        );
    }
}

/// Every regular file of `image` has umoci's mtime in a running container
/// (the runtime's own /etc/hosts, hostname and resolv.conf aside).
fn assert_container_mtimes_are(cairn: &Cairn, image: &str, want: &Scan) {
    let listed = cairn.ok([
        "run",
        "--rm",
        image,
        "find",
        "/",
        "-xdev",
        "-type",
        "f",
        "-printf",
        "%Ts %p\\n",
    ]);
    let mut seen = 0;
    let mut differ = Vec::new();
    for line in listed.lines() {
        let (t, p) = line.split_once(' ').unwrap();
        let Some(w) = want.entries.get(p.trim_start_matches('/')) else {
            continue;
        };
        seen += 1;
        if w.mtime != t.parse::<i64>().unwrap()
            && !["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"].contains(&p)
        {
            differ.push(format!("{p}: umoci {}, in the container {t}", w.mtime));
        }
    }
    assert!(seen > 5000, "{seen} files listed in the container");
    assert!(differ.is_empty(), "{} differ: {differ:#?}", differ.len());
}

/// [`mtimes_are_umocis_after_an_image_sharing_content_with_other_mtimes`]
/// rootless: in the container only (owners are shifted outside it).
#[test]
fn mtimes_are_umocis_in_a_rootless_container_after_an_image_sharing_content() {
    let want = umoci(refs::DEBIAN_MIN);
    let (_, layers) = fixture(refs::DEBIAN_MIN);
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(fs::File::open(blob_path(&layers[0])).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    let later = shift_file_mtimes(tar, 12345);
    let dir = tempfile::tempdir().unwrap();
    layout_tagged(dir.path(), &gzip(&later), &sha256_digest(&later), "later");
    run(Command::new("chmod").arg("-R").arg("a+rX").arg(dir.path())).unwrap();
    let cairn = Cairn::rootless().expect("rootless environment");
    cairn.ok(["pull", "-q", &format!("oci:{}:later", dir.path().display())]);
    let manifest = pull(&cairn, refs::DEBIAN_MIN);
    assert_container_mtimes_are(&cairn, &manifest, want);
}

/// A layer whose hardlinks name symlinks (in its directory and beside it),
/// unpacked by cairn (copy, hardlink, image root) as by umoci: each
/// hardlink is a name of the symlink itself, one inode, not a second
/// symlink.
#[test]
fn hardlinks_to_symlinks_unpack_like_umoci() {
    let mut b = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, mtime: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_size(0);
        h
    };
    let mut h = header(tar::EntryType::Directory, 0o755, 1_600_000_000);
    b.append_data(&mut h, "etc/", &[][..]).unwrap();
    let mut h = header(tar::EntryType::Regular, 0o644, 1_600_000_001);
    h.set_size(5);
    b.append_data(&mut h, "etc/real", &b"real\n"[..]).unwrap();
    for (name, target) in [("etc/rel", "real"), ("etc/abs", "/etc/real")] {
        let mut h = header(tar::EntryType::Symlink, 0o777, 1_600_000_002);
        b.append_link(&mut h, name, target).unwrap();
    }
    for (name, target) in [
        ("etc/rel-link", "etc/rel"),
        ("abs-link", "etc/abs"),
        ("etc/rel-link2", "etc/rel"),
    ] {
        let mut h = header(tar::EntryType::Link, 0o777, 1_600_000_003);
        b.append_link(&mut h, name, target).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, manifest) = layout_tagged(dir.path(), &gzip(&tar), &sha256_digest(&tar), "links");
    let want = umoci_of(dir.path(), "links");
    // umoci's tree has the groups compared below.
    for g in [
        vec!["abs-link", "etc/abs"],
        vec!["etc/rel", "etc/rel-link", "etc/rel-link2"],
    ] {
        let g: Vec<String> = g.into_iter().map(String::from).collect();
        assert!(
            want.groups.contains(&g),
            "umoci group {g:?}: {:?}",
            want.groups
        );
    }
    let cairn = Cairn::new().unwrap();
    cairn.ok(["pull", "-q", &format!("oci:{}:links", dir.path().display())]);
    let (_d1, copy) = unpack(&cairn, &manifest, "copy", &[]);
    let (_d2, hl) = unpack(&cairn, &manifest, "hardlink", &[]);
    let root = image_root(&cairn, &manifest);
    for (what, got) in [
        ("copy", scan(&copy)),
        ("hardlink", scan(&hl)),
        ("image root", scan(root.path())),
    ] {
        let d = differences(&want, &got, true);
        assert!(d.is_empty(), "{what}: {d:#?}");
    }
}

/// A layer with a character and a block device (a loop device's numbers,
/// as an attack on the host would use) and a regular file. Returns the
/// layout directory (readable by everyone) and the manifest digest.
fn layout_with_devices() -> (tempfile::TempDir, String) {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_mtime(1_600_000_000);
    b.append_data(&mut h, "dev/", &[][..]).unwrap();
    for (name, kind, major, minor) in [
        ("dev/null", tar::EntryType::Char, 1, 3),
        ("dev/loop0", tar::EntryType::Block, 7, 0),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(0o660);
        h.set_size(0);
        h.set_mtime(1_600_000_000);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        b.append_data(&mut h, name, &[][..]).unwrap();
    }
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(3);
    h.set_mtime(1_600_000_000);
    b.append_data(&mut h, "dev/file", &b"abc"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, manifest) = layout_tagged(dir.path(), &gzip(&tar), &sha256_digest(&tar), "devices");
    run(Command::new("chmod").arg("-R").arg("a+rX").arg(dir.path())).unwrap();
    (dir, manifest)
}

/// Rootless, `pull` and `unpack` of an image holding device nodes skip
/// the devices (the kernel refuses them to a user namespace) and write the
/// rest, where they failed with `create device node ...: Operation not
/// permitted`; as root the devices are created with their numbers.
#[test]
fn device_nodes_never_in_image_roots_and_unpacked_as_root() {
    let (layout, manifest) = layout_with_devices();
    let source = format!("oci:{}:devices", layout.path().display());
    for rootless in [true, false] {
        let cairn = if rootless {
            Cairn::rootless().expect("rootless environment")
        } else {
            Cairn::new().unwrap()
        };
        cairn.ok(["pull", "-q", &source]);
        let lowers = roots::lowers(cairn.root(), hex_of(&manifest));
        let root_file = roots::find(&lowers, "dev/file").expect("/dev/file in the root");
        assert_eq!(fs::read(root_file).unwrap(), b"abc");
        let target = cairn.scratch().join(format!("unpacked-{rootless}"));
        cairn.ok([
            "unpack",
            "--mode",
            "copy",
            &manifest,
            target.to_str().unwrap(),
        ]);
        assert_eq!(fs::read(target.join("dev/file")).unwrap(), b"abc");
        // The store checks clean: a skipped device is no damage.
        cairn.ok(["system", "check", "--full"]);
        for (p, block, rdev) in [("dev/null", false, (1, 3)), ("dev/loop0", true, (7, 0))] {
            // Image roots never hold a layer's device nodes (attacker input
            // on the host's filesystem), as root too: the path is absent.
            assert!(
                roots::find(&lowers, p).is_none(),
                "rootless={rootless}: /{p} in the image root"
            );
            let unpacked = fs::symlink_metadata(target.join(p));
            if rootless {
                assert!(unpacked.is_err(), "rootless: /{p} unpacked");
            } else {
                // `cairn unpack` as root creates them, as umoci does.
                let m = unpacked.unwrap();
                let ft = m.file_type();
                assert!(
                    if block {
                        ft.is_block_device()
                    } else {
                        ft.is_char_device()
                    },
                    "/{p}: {ft:?}"
                );
                let dev = m.rdev();
                assert_eq!(
                    (libc_major(dev), libc_minor(dev)),
                    rdev,
                    "/{p} device numbers"
                );
                assert_eq!(m.mode() & 0o7777, 0o660);
            }
        }
    }
}

fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)
}

fn libc_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}
