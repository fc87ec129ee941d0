//! End-to-end: `commit`, `export`, `import`, `history` and `image tree`
//! through the real binaries, with real containers of the Debian test image
//! (root, and rootless as the test user). The committed image's unpacked
//! tree (cairn's unpack, and umoci's of a `skopeo copy` out of the store) is
//! compared with the container's merged root entry by entry: path, type,
//! mode, owner, size, content hash, link target, xattrs.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cairn_tests::fixtures::refs;
use cairn_tests::util::{is_root, sha256_digest};
use cairn_tests::Cairn;

/// The name the fixture image gets in every store.
const IMAGE: &str = "localhost/debian-min:latest";

/// Paths the engine owns in every container, left out of commits (and so
/// of the comparisons).
const ENGINE_PATHS: &[&str] = &[
    "dev",
    "proc",
    "sys",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
    "run/.containerenv",
    "run/secrets",
];

/// A store with the fixture image; every container removed on drop.
struct Env(Cairn);

impl std::ops::Deref for Env {
    type Target = Cairn;
    fn deref(&self) -> &Cairn {
        &self.0
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // A failed test may leave a root mounted by `cairn mount`.
        if is_root() {
            let _ = self.0.run(["unmount", "-a"]);
        }
        let _ = self.0.run(["rm", "-a", "-f", "-t", "0"]);
    }
}

fn env() -> Env {
    let c = Cairn::new().expect("cairn environment");
    c.pull_fixture_as(refs::DEBIAN_MIN, IMAGE);
    Env(c)
}

fn rootless_env() -> Env {
    let c = Cairn::rootless().expect("rootless environment");
    c.pull_fixture_as(refs::DEBIAN_MIN, IMAGE);
    Env(c)
}

/// One entry of a tree as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    hash: String,
    link: String,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn xattrs_of(p: &Path) -> Vec<(String, Vec<u8>)> {
    let out = Command::new("getfattr")
        .args(["-h", "-d", "-m", "-", "-e", "hex", "--absolute-names"])
        .arg(p)
        .output()
        .expect("getfattr runs");
    let mut v: Vec<(String, Vec<u8>)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.contains(".overlay.") && !k.starts_with("security.selinux"))
        .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
        .collect();
    v.sort();
    v
}

/// Every entry under `root` but the engine's paths, by relative path.
fn tree(root: &Path, with_xattrs: bool) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    for e in walkdir(root) {
        let rel = e.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if ENGINE_PATHS
            .iter()
            .any(|s| rel == *s || rel.starts_with(&format!("{s}/")))
        {
            continue;
        }
        let m = fs::symlink_metadata(&e).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else {
            "other"
        };
        let hash = if ft.is_file() {
            sha256_digest(&fs::read(&e).unwrap())
        } else {
            String::new()
        };
        out.insert(
            rel,
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                size: if ft.is_file() { m.len() } else { 0 },
                hash,
                link: fs::read_link(&e)
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                xattrs: if with_xattrs && !ft.is_symlink() {
                    xattrs_of(&e)
                } else {
                    Vec::new()
                },
            },
        );
    }
    out
}

fn walkdir(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// Asserts two trees are equal, printing the first differences.
fn assert_same(what: &str, a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>) {
    let diffs: Vec<String> = a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .take(10)
        .map(|k| format!("{k}:\n  {:?}\n  {:?}", a.get(k), b.get(k)))
        .collect();
    assert!(
        diffs.is_empty(),
        "{what}: {} vs {} entries, differences:\n{}",
        a.len(),
        b.len(),
        diffs.join("\n")
    );
}

/// What the test container does: deletes files, replaces a directory by a
/// file and another by a file and then a directory again, changes modes
/// and owners, makes hardlinks, a symlink and a FIFO.
const CHANGES: &str = "set -e; \
    echo hi > /x; chown 1000:1001 /x; ln /x /x-link; ln -s /x /x-sym; \
    rm /etc/os-release; rm -rf /usr/share/doc; \
    rm -rf /var/lib/apt; echo file > /var/lib/apt; \
    rm -rf /usr/share/zoneinfo; touch /usr/share/zoneinfo; rm /usr/share/zoneinfo; \
    mkdir -p /usr/share/zoneinfo/new; echo z > /usr/share/zoneinfo/new/z; \
    chmod 4711 /usr/bin/true; chown 1000 /usr/bin/env; chmod 700 /root; \
    mkfifo /fifo; mkdir -p /data/deep; echo d > /data/deep/f; \
    echo changed >> /etc/debian_version";

/// The container's merged root, mounted by `cairn mount` (root only).
fn merged(c: &Cairn, name: &str) -> PathBuf {
    PathBuf::from(c.ok(["mount", name]).trim())
}

#[test]
fn commit_equals_merged_root_for_cairn_and_umoci() {
    if !is_root() {
        eprintln!("skipped: cairn mount needs root");
        return;
    }
    let c = env();
    c.ok(["run", "--name", "c1", IMAGE, "sh", "-c", CHANGES]);
    // An xattr the container's files carry (the image has no setfattr):
    // set on the upper file, as a process in the container would.
    let upper = c.root().join("containers");
    let id = c.ok(["inspect", "--format", "{{.Id}}", "c1"]);
    let upper = upper.join(id.trim()).join("upper");
    let st = Command::new("setfattr")
        .args(["-n", "user.cairn", "-v", "kept"])
        .arg(upper.join("x"))
        .status()
        .unwrap();
    assert!(st.success());
    let id = c.ok(["commit", "-q", "c1", "committed"]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "commit prints the full image id: {id}");

    let root = merged(&c, "c1");
    let want = tree(&root, true);
    assert!(want.contains_key("x-link") && want.contains_key("usr/share/zoneinfo/new/z"));
    assert!(!want.contains_key("etc/os-release"));
    assert_eq!(want["x"].uid, 1000);
    assert_eq!(want["x"].gid, 1001);
    assert_eq!(want["usr/bin/true"].mode, 0o4711);
    assert_eq!(want["var/lib/apt"].kind, "file");

    let out = c.scratch().join("unpacked");
    c.ok(["unpack", "committed", out.to_str().unwrap()]);
    assert_same("cairn unpack vs merged root", &want, &tree(&out, true));

    // umoci reads the layer as an OCI tool does: whiteouts, opaque
    // directories, hardlinks and xattrs from the tar alone.
    let layout = c.scratch().join("layout");
    let src = format!(
        "oci:{}:{}",
        c.root().display(),
        "localhost/committed:latest"
    );
    let dst = format!("oci:{}:x", layout.display());
    cairn_tests::util::skopeo(&["copy", "-q", &src, &dst]).unwrap();
    let bundle = c.scratch().join("bundle");
    let st = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:x", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert_same(
        "umoci unpack vs merged root",
        &want,
        &tree(&bundle.join("rootfs"), true),
    );
    c.ok(["unmount", "c1"]);

    // The new image runs with the changes.
    let out = c.ok([
        "run",
        "--rm",
        "committed",
        "sh",
        "-c",
        "cat /x; stat -c '%u:%g %a' /x /usr/bin/true; ls /usr/share/doc 2>&1; test -f /var/lib/apt && echo file",
    ]);
    assert!(out.starts_with("hi\n1000:1001 644\n0:0 4711\n"), "{out}");
    assert!(out.contains("No such file"), "{out}");
    assert!(out.ends_with("file\n"), "{out}");
    c.assert_clean();
}

#[test]
fn change_fields_reach_the_config_and_history() {
    let c = env();
    c.ok(["run", "--name", "c2", IMAGE, "true"]);
    c.ok([
        "commit",
        "-q",
        "--author",
        "Ann Author",
        "--message",
        "my message",
        "-c",
        r#"CMD ["/bin/echo", "from cmd"]"#,
        "-c",
        "ENTRYPOINT /bin/sh -c",
        "-c",
        "ENV A=1 B=\"two words\"",
        "-c",
        "EXPOSE 8080/udp",
        "-c",
        "LABEL org.test=yes",
        "-c",
        "USER 1000:1000",
        "-c",
        "VOLUME /vol",
        "-c",
        "WORKDIR /srv",
        "-c",
        "STOPSIGNAL SIGINT",
        "c2",
        "changed",
    ]);
    let cfg: serde_json::Value = serde_json::from_str(&c.ok([
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        "changed",
    ]))
    .unwrap();
    assert_eq!(cfg["Cmd"], serde_json::json!(["/bin/echo", "from cmd"]));
    assert_eq!(
        cfg["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c", "/bin/sh -c"])
    );
    let env: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        env.contains(&"A=1") && env.contains(&"B=two words"),
        "{env:?}"
    );
    assert!(cfg["ExposedPorts"].get("8080/udp").is_some(), "{cfg}");
    assert_eq!(cfg["Labels"]["org.test"], "yes");
    assert_eq!(cfg["User"], "1000:1000");
    assert!(cfg["Volumes"].get("/vol").is_some(), "{cfg}");
    assert_eq!(cfg["WorkingDir"], "/srv");
    assert_eq!(cfg["StopSignal"], "SIGINT");
    let author = c.ok(["image", "inspect", "--format", "{{.Author}}", "changed"]);
    assert_eq!(author.trim(), "Ann Author");

    let hist = c.ok(["history", "--no-trunc", "changed"]);
    let lines: Vec<&str> = hist.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("CREATED BY"),
        "{hist}"
    );
    assert!(
        lines[1].contains("true") && lines[1].ends_with("my message"),
        "{hist}"
    );
    assert_eq!(lines.len(), 3, "the base layer and the commit: {hist}");
    let q = c.ok(["history", "-q", "changed"]);
    let id = c.ok(["image", "inspect", "--format", "{{.Id}}", "changed"]);
    assert_eq!(q.lines().next().unwrap(), &id.trim()[..12]);
    let f = c.ok([
        "history",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "changed",
    ]);
    assert_eq!(f.lines().next().unwrap(), "true|my message");
    let tree = c.ok(["image", "tree", "changed"]);
    assert!(tree.contains("Image Layers\n├── ID: "), "{tree}");
    assert!(
        tree.contains("Top Layer of: [localhost/changed:latest]"),
        "{tree}"
    );

    // --format docker: docker media types throughout.
    c.ok(["commit", "-q", "--format", "docker", "c2", "dock"]);
    let mt = c.ok(["image", "inspect", "--format", "{{.ManifestType}}", "dock"]);
    assert_eq!(
        mt.trim(),
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    c.assert_clean();
}

/// The diff id of the top layer of `image`.
fn top_layer(c: &Cairn, image: &str) -> String {
    let layers = c.ok([
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        image,
    ]);
    let v: Vec<String> = serde_json::from_str(&layers).unwrap();
    v.last().unwrap().clone()
}

#[test]
fn same_change_with_source_date_epoch_gives_the_same_layer() {
    let mut c = env();
    let script = "mkdir -p /app/sub; echo same > /app/sub/f; rm /etc/os-release";
    c.ok(["run", "--name", "a", IMAGE, "sh", "-c", script]);
    std::thread::sleep(Duration::from_millis(1100));
    c.ok(["run", "--name", "b", IMAGE, "sh", "-c", script]);
    c.0.env("SOURCE_DATE_EPOCH", "1700000000");
    c.ok(["commit", "-q", "a", "ia"]);
    c.ok(["commit", "-q", "b", "ib"]);
    assert_eq!(top_layer(&c, "ia"), top_layer(&c, "ib"));
    let created = c.ok(["image", "inspect", "--format", "{{.Created}}", "ia"]);
    assert!(created.starts_with("2023-11-14 22:13:20"), "{created}");
    // Without it, the mtimes differ and so do the layers.
    c.0.unset_env("SOURCE_DATE_EPOCH");
    c.ok(["commit", "-q", "--timestamp", "1600000000", "a", "ta"]);
    c.ok(["commit", "-q", "b", "nb"]);
    assert_ne!(top_layer(&c, "ta"), top_layer(&c, "nb"));
}

#[test]
fn rootless_commit_keeps_image_ids() {
    let c = rootless_env();
    c.ok([
        "run",
        "--name",
        "r",
        IMAGE,
        "sh",
        "-c",
        "echo u > /owned; chown 1000:1000 /owned; rm /etc/os-release; rm -rf /usr/share/doc; mkdir /usr/share/doc; touch /usr/share/doc/new",
    ]);
    c.ok(["commit", "-q", "r", "rimg"]);
    let out = c.ok([
        "run",
        "--rm",
        "rimg",
        "sh",
        "-c",
        "stat -c '%u:%g' /owned; ls /usr/share/doc; test -e /etc/os-release || echo gone",
    ]);
    assert_eq!(out, "1000:1000\nnew\ngone\n");
    // The layer's tar itself says uid 1000 and has the OCI whiteouts.
    let tar = c.scratch().join("r.tar");
    let st = c
        .command(["export", "r"])
        .stdout(fs::File::create(&tar).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    let mut a = tar::Archive::new(fs::File::open(&tar).unwrap());
    let owned = a
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().to_str() == Some("owned"))
        .expect("owned in the export");
    assert_eq!(owned.header().uid().unwrap(), 1000);

    // --userns keep-id: the container has an id map of its own (the
    // caller's uid is itself inside); a file it owns keeps that uid.
    let uid = c.user().unwrap().uid;
    c.ok([
        "run",
        "--name",
        "k",
        "--userns",
        "keep-id",
        IMAGE,
        "sh",
        "-c",
        "echo me > /tmp/mine",
    ]);
    c.ok(["commit", "-q", "k", "kimg"]);
    let out = c.ok(["run", "--rm", "kimg", "stat", "-c", "%u:%g", "/tmp/mine"]);
    let gid = c.user().unwrap().gid;
    assert_eq!(out, format!("{uid}:{gid}\n"));
    c.assert_clean();
}

#[test]
fn export_imports_back_into_a_runnable_image() {
    if !is_root() {
        eprintln!("skipped: cairn mount needs root");
        return;
    }
    let c = env();
    c.ok(["run", "--name", "e", IMAGE, "sh", "-c", CHANGES]);
    let tar = c.scratch().join("e.tar");
    c.ok(["export", "-o", tar.to_str().unwrap(), "e"]);
    // To stdout (not a terminal): the same bytes.
    let out = c.command(["export", "e"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, fs::read(&tar).unwrap());
    // Hardlinks are the container's own, not files the image's store
    // happens to share.
    let mut a = tar::Archive::new(fs::File::open(&tar).unwrap());
    let links: Vec<(String, String)> = a
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .filter(|e| e.header().entry_type() == tar::EntryType::Link)
        .map(|e| {
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                e.link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            )
        })
        .collect();
    assert_eq!(links, vec![("x-link".to_owned(), "x".to_owned())]);

    let id = c.ok([
        "import",
        "-q",
        "--message",
        "imported it",
        "-c",
        "CMD [\"/bin/cat\", \"/x\"]",
        tar.to_str().unwrap(),
        "imported",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(c.ok(["run", "--rm", "imported"]), "hi\n");
    let want = tree(&merged(&c, "e"), false);
    let out = c.scratch().join("imp");
    c.ok(["unpack", "imported", out.to_str().unwrap()]);
    assert_same("import of export vs merged root", &want, &tree(&out, false));
    c.ok(["unmount", "e"]);
    let hist = c.ok(["history", "--format", "{{.Comment}}", "imported"]);
    assert_eq!(hist, "imported it\n");

    // gzip on stdin, detected.
    let gz = c.scratch().join("e.tar.gz");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {} > {}", tar.display(), gz.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let r = c
        .command(["import", "-q", "-", "fromstdin"])
        .stdin(fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(c.ok(["run", "--rm", "fromstdin", "cat", "/x"]), "hi\n");
    c.assert_clean();
}

#[test]
fn kill_during_commit_leaves_the_store_clean() {
    let c = env();
    // Enough data that the commit takes a while.
    c.ok([
        "run",
        "--name",
        "big",
        IMAGE,
        "sh",
        "-c",
        "head -c 150000000 /dev/urandom > /big",
    ]);
    let refs_before = c.refs();
    for delay in [50u64, 200, 500] {
        let mut child = c.spawn(["commit", "-q", "big", "killed"]).unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        c.assert_clean_after(&format!("kill -9 after {delay} ms"));
        let refs = c.refs();
        assert!(
            refs == refs_before || refs.contains(&"localhost/killed:latest".to_owned()),
            "{refs:?}"
        );
        if refs.contains(&"localhost/killed:latest".to_owned()) {
            // Finished before the kill: a whole image.
            c.ok(["image", "inspect", "killed"]);
            c.ok(["rmi", "killed"]);
        }
    }
    // The next commit sweeps what a killed one left in tmp/.
    c.ok(["commit", "-q", "big", "whole"]);
    assert!(c.temp_files().is_empty(), "{:?}", c.temp_files());
    c.assert_clean();
}

/// A failure's stderr: one line, `Error: ` and the words expected.
fn one_line(r: &cairn_tests::Run, words: &[&str]) {
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", r.stderr);
    assert!(lines[0].starts_with("Error: "), "{}", r.stderr);
    for w in words {
        assert!(lines[0].contains(w), "{w:?} in {}", r.stderr);
    }
}

#[test]
fn bad_input_is_one_line_and_exit_125() {
    let c = env();
    c.ok(["run", "--name", "ok", IMAGE, "true"]);
    let blobs = c.blobs();
    let r = c.fails(125, ["commit", "nosuch", "x"]);
    one_line(&r, &["nosuch", "no such container"]);
    let r = c.fails(125, ["commit", "-c", "RUN make", "ok", "x"]);
    one_line(&r, &["RUN make", "CMD"]);
    let r = c.fails(125, ["commit", "-c", "EXPOSE 70000", "ok", "x"]);
    one_line(&r, &["70000", "port"]);
    let r = c.fails(125, ["commit", "--format", "v1", "ok", "x"]);
    one_line(&r, &["--format", "oci or docker"]);
    let r = c.fails(125, ["commit", "ok", "Bad:Name:x"]);
    one_line(&r, &["Bad:Name:x"]);
    let r = c.fails(125, ["export", "-o", "/nonexistent/dir/x.tar", "ok"]);
    one_line(&r, &["/nonexistent/dir/x.tar"]);
    let not_tar = c.scratch().join("not.tar");
    fs::write(&not_tar, vec![b'x'; 4096]).unwrap();
    let r = c.fails(125, ["import", not_tar.to_str().unwrap(), "x"]);
    one_line(&r, &["not a tar archive"]);
    let r = c.fails(125, ["import", "http://example.invalid/x.tar"]);
    one_line(&r, &["URL"]);
    let r = c.fails(125, ["history", "nosuchimage"]);
    assert!(r.stderr.contains("nosuchimage"), "{}", r.stderr);
    // Nothing was written: no blob, no ref, nothing in tmp/.
    assert_eq!(c.blobs(), blobs);
    assert!(
        c.refs().iter().all(|r| !r.contains("/x:")),
        "{:?}",
        c.refs()
    );
    assert!(c.temp_files().is_empty(), "{:?}", c.temp_files());
    c.assert_clean();
}

#[test]
fn container_removed_before_the_commit_locks_it() {
    let c = env();
    c.ok(["run", "--name", "gone", IMAGE, "true"]);
    // Hold the container's lock, so commit waits; remove the container
    // meanwhile (rm renames it away, then waits for nothing of ours).
    let id = c.ok(["inspect", "--format", "{{.Id}}", "gone"]);
    let dir = c.root().join("containers").join(id.trim());
    let lock = fs::File::open(dir.join("lock")).unwrap();
    lock.lock().unwrap();
    let child = c.spawn(["commit", "-q", "gone", "fromgone"]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // rm needs the lock too: drop ours once rm is on its way.
    let rm = c.spawn(["rm", "gone"]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(lock);
    let rm = rm.wait_with_output().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    // Either commit got the lock first (a whole image), or rm did (one
    // line, exit 125, no image).
    if out.status.success() {
        c.ok(["image", "inspect", "fromgone"]);
    } else {
        assert_eq!(out.status.code(), Some(125), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("gone"), "{stderr}");
        assert!(!c.refs().iter().any(|r| r.contains("fromgone")));
    }
    c.assert_clean();
}

#[test]
fn full_disk_during_commit_leaves_nothing() {
    if !is_root() {
        eprintln!("skipped: mounting a small disk needs root");
        return;
    }
    let disk = cairn_tests::util::temp_dir("commit-full").unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=600m,mode=0755", "tmpfs"])
        .arg(disk.path())
        .status()
        .unwrap();
    assert!(st.success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _u = Unmount(disk.path().to_owned());
    let mut c = Cairn::new().unwrap();
    c.set_root(&disk.path().join("store"));
    let c = Env(c);
    c.pull_fixture_as(refs::DEBIAN_MIN, IMAGE);
    c.ok([
        "run",
        "--name",
        "full",
        IMAGE,
        "sh",
        "-c",
        "head -c 60000000 /dev/urandom > /r",
    ]);
    // Leave ~10 MB: less than the 60 MB layer.
    let filler = disk.path().join("filler");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dd if=/dev/zero of={} bs=1M 2>/dev/null; truncate -s -10M {}",
            filler.display(),
            filler.display()
        ))
        .status()
        .unwrap();
    assert!(st.success() || filler.exists());
    let blobs = c.blobs();
    let r = c.fails(125, ["commit", "-q", "full", "nospace"]);
    one_line(&r, &["full", "no space left"]);
    assert_eq!(c.blobs(), blobs, "no blob left behind");
    assert!(c.temp_files().is_empty(), "{:?}", c.temp_files());
    assert!(!c.refs().iter().any(|r| r.contains("nospace")));
    fs::remove_file(&filler).unwrap();
    c.assert_clean();
    c.ok(["commit", "-q", "full", "nospace"]);
    assert_eq!(
        c.ok(["run", "--rm", "nospace", "sh", "-c", "wc -c < /r"]),
        "60000000\n"
    );
}

/// The state letters of `pid` and its descendants (`T`: stopped).
fn states_under(pid: i32) -> Vec<char> {
    let out = Command::new("ps")
        .args(["-e", "-o", "pid=,ppid=,stat="])
        .output()
        .unwrap();
    let rows: Vec<(i32, i32, char)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.parse().ok()?,
                f.get(1)?.parse().ok()?,
                f.get(2)?.chars().next()?,
            ))
        })
        .collect();
    let mut set = vec![pid];
    loop {
        let before = set.len();
        for &(p, pp, _) in &rows {
            if set.contains(&pp) && !set.contains(&p) {
                set.push(p);
            }
        }
        if set.len() == before {
            break;
        }
    }
    rows.iter()
        .filter(|(p, _, _)| set.contains(p))
        .map(|r| r.2)
        .collect()
}

#[test]
fn pause_stops_and_continues_a_running_container() {
    let c = env();
    c.ok([
        "run",
        "-d",
        "--name",
        "busy",
        IMAGE,
        "sh",
        "-c",
        // Replaced by rename: a commit that stops the loop between a
        // truncation and the write would rightly keep an empty file.
        "while :; do date +%s%N > /tick.new; mv /tick.new /tick; sleep 0.05; done",
    ]);
    // The loop has written its file once.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.run(["exec", "busy", "test", "-s", "/tick"]).code != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the loop never wrote /tick"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    c.ok(["commit", "-q", "--pause", "busy", "paused"]);
    let pid: i32 = c
        .ok(["inspect", "--format", "{{.State.Pid}}", "busy"])
        .trim()
        .parse()
        .unwrap();
    // Continued: none of its processes stays stopped (polled: `ps` may
    // catch one between our SIGCONTs on a loaded machine).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let states = states_under(pid);
        if !states.is_empty() && !states.contains(&'T') {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still stopped after the commit: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // And it makes progress: the loop's file changes.
    let a = c.ok(["exec", "busy", "cat", "/tick"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let b = c.ok(["exec", "busy", "cat", "/tick"]);
        if !b.trim().is_empty() && b != a {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the container did not run on after the commit: {a:?} {b:?}"
        );
    }
    // The committed image has the file the loop wrote.
    let t = c.ok(["run", "--rm", "paused", "cat", "/tick"]);
    assert!(!t.trim().is_empty());
}

#[test]
fn volumes_are_left_out_and_included_as_config_when_asked() {
    let c = env();
    c.ok([
        "run",
        "--name",
        "v",
        "-v",
        "commitvol:/data",
        IMAGE,
        "sh",
        "-c",
        "echo in-volume > /data/x; echo outside > /y",
    ]);
    c.ok(["commit", "-q", "v", "novol"]);
    let out = c.ok([
        "run",
        "--rm",
        "novol",
        "sh",
        "-c",
        "cat /y; test -e /data/x || echo no-volume-data; test -e /etc/hostname && wc -c < /etc/hostname",
    ]);
    assert!(out.starts_with("outside\nno-volume-data\n"), "{out}");
    let vols = c.ok([
        "image",
        "inspect",
        "--format",
        "{{json .Config.Volumes}}",
        "novol",
    ]);
    assert!(!vols.contains("/data"), "{vols}");
    c.ok(["commit", "-q", "--include-volumes", "v", "withvol"]);
    let vols = c.ok([
        "image",
        "inspect",
        "--format",
        "{{json .Config.Volumes}}",
        "withvol",
    ]);
    assert!(vols.contains("\"/data\""), "{vols}");
    let _ = c.run(["rm", "-f", "v"]);
    let _ = c.run(["volume", "rm", "commitvol"]);
}

#[test]
fn squash_is_one_layer_with_the_same_tree() {
    let c = env();
    c.ok(["run", "--name", "s", IMAGE, "sh", "-c", CHANGES]);
    c.ok(["commit", "-q", "s", "layered"]);
    c.ok(["commit", "-q", "--squash", "s", "squashed"]);
    let n = c.ok([
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        "squashed",
    ]);
    assert_eq!(n.trim(), "1");
    let (a, b) = (c.scratch().join("layered"), c.scratch().join("squashed"));
    c.ok(["unpack", "layered", a.to_str().unwrap()]);
    c.ok(["unpack", "squashed", b.to_str().unwrap()]);
    assert_same("squashed vs layered", &tree(&a, true), &tree(&b, true));
    let hist = c.ok(["history", "-q", "squashed"]);
    assert_eq!(hist.lines().count(), 1, "{hist}");
}

/// podman commits the same change to the same image: the two new images'
/// trees are equal (mtimes aside, which neither the change nor the
/// comparison fixes).
#[test]
fn same_tree_as_podman_commit() {
    if !is_root() {
        eprintln!("skipped: podman image mount needs root");
        return;
    }
    let podman =
        cairn_tests::podman::Podman::new().unwrap_or_else(|e| panic!("podman is needed: {e:#}"));
    podman.import_fixture(refs::DEBIAN_MIN, IMAGE).unwrap();
    let c = env();
    c.ok(["run", "--name", "same", IMAGE, "sh", "-c", CHANGES]);
    c.ok(["commit", "-q", "same", "ours"]);
    podman.ok(["run", "--name", "same", IMAGE, "sh", "-c", CHANGES]);
    podman.ok(["commit", "-q", "same", "theirs"]);
    let theirs = PathBuf::from(podman.ok(["image", "mount", "theirs"]).trim());
    let ours = c.scratch().join("ours");
    c.ok(["unpack", "ours", ours.to_str().unwrap()]);
    let mut t = tree(&theirs, true);
    let _ = podman.run(["image", "unmount", "theirs"]);
    // crun makes /etc/mtab (→ /proc/mounts) in every container that lacks
    // it, and podman commits it; cairn's runtime makes no such file.
    assert_eq!(
        t.remove("etc/mtab").map(|n| n.link).as_deref(),
        Some("/proc/mounts")
    );
    assert_same("cairn's commit vs podman's", &t, &tree(&ours, true));
}
