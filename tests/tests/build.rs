//! End-to-end: `cairn build` through the real binaries, over the Debian
//! test image, as root and as the rootless test user. What is built is
//! checked as files: the image unpacked by umoci (after `skopeo copy` out
//! of cairn's store) and compared entry by entry (type, mode, owner, size,
//! content, link target) with what Debian's `buildah bud` builds from the
//! same Containerfile and context, and the configs compared field by field.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cairn_tests::fixtures::refs;
use cairn_tests::podman::Podman;
use cairn_tests::util::{is_root, sha256_digest};
use cairn_tests::Cairn;

/// The name the fixture image gets in every store.
const IMAGE: &str = "localhost/debian-min:latest";

/// Paths an engine owns in every container: left out of the comparisons.
const ENGINE_PATHS: &[&str] = &[
    "dev",
    "proc",
    "sys",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
    "run",
];

struct Env(Cairn);

impl std::ops::Deref for Env {
    type Target = Cairn;
    fn deref(&self) -> &Cairn {
        &self.0
    }
}

impl Drop for Env {
    fn drop(&mut self) {
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

/// A context directory under the environment's scratch dir with `files`
/// (path → content), readable by the environment's user.
fn context(c: &Cairn, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = c.scratch().join(name);
    for (p, text) in files {
        let path = dir.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
    }
    fs::create_dir_all(&dir).unwrap();
    if let Some(u) = c.user() {
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", u.uid, u.gid))
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success());
    }
    dir
}

/// One entry of an unpacked tree, as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    hash: String,
    link: String,
}

fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if ENGINE_PATHS
                .iter()
                .any(|s| rel == *s || rel.starts_with(&format!("{s}/")))
            {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            if ft.is_dir() {
                stack.push(p.clone());
            }
            let kind = if ft.is_dir() {
                "dir"
            } else if ft.is_file() {
                "file"
            } else if ft.is_symlink() {
                "symlink"
            } else {
                "other"
            };
            out.insert(
                rel,
                Node {
                    kind,
                    mode: m.mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                    size: if ft.is_file() { m.len() } else { 0 },
                    hash: if ft.is_file() {
                        sha256_digest(&fs::read(&p).unwrap())
                    } else {
                        String::new()
                    },
                    link: fs::read_link(&p)
                        .map(|l| l.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                },
            );
        }
    }
    out
}

fn assert_same(what: &str, a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>) {
    let diffs: Vec<String> = a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .take(12)
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

/// umoci's unpacking of the OCI layout `layout:tag` into `dir/rootfs`.
fn umoci_unpack(layout: &Path, tag: &str, dir: &Path) -> PathBuf {
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("rootfs")
}

/// cairn's image `name` unpacked by umoci, and its config.
fn cairn_image(c: &Cairn, name: &str, tag: &str) -> (BTreeMap<String, Node>, serde_json::Value) {
    let layout = c.scratch().join(format!("layout-{tag}"));
    let src = format!("oci:{}:{name}", c.root().display());
    let dst = format!("oci:{}:{tag}", layout.display());
    cairn_tests::util::skopeo(&["copy", "-q", &src, &dst]).unwrap();
    let rootfs = umoci_unpack(&layout, tag, &c.scratch().join(format!("bundle-{tag}")));
    let config: serde_json::Value =
        serde_json::from_str(&c.ok(["image", "inspect", "--format", "{{json .Config}}", name]))
            .unwrap();
    (tree(&rootfs), config)
}

/// A Containerfile over the test image exercising multi-stage builds, ARG
/// before FROM, USER changes, deletions across steps, COPY
/// --from/--chown/--chmod and the config instructions. (No heredocs:
/// buildah 1.28 has none; [`HEREDOCS`] adds them where buildah is not the
/// peer.)
const MULTI: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=localhost/debian-min:latest
FROM $BASE AS builder
ARG GREETING=hello
RUN mkdir -p /out/sub && echo "$GREETING from the builder" > /out/greeting \
 && echo nested > /out/sub/n && ln -s greeting /out/link
FROM ${BASE}
RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd \
 && echo 'app:x:1000:' >> /etc/group && mkdir -p /home/app && chown app:app /home/app
COPY --from=builder /out/greeting /greeting
COPY --from=builder /out/ /from-builder/
COPY --from=builder /out /from-builder-dir
RUN rm -rf /usr/share/doc /etc/os-release && mkdir /gone && touch /gone/f
RUN rm -rf /gone
USER app
RUN echo mine > /home/app/made-by-app && mkdir /home/app/d
USER root
COPY --chown=app:app app/ /app/
COPY --chmod=0750 tool.sh /usr/local/bin/
RUN chmod 4755 /usr/local/bin/tool.sh
ENV A=1 B="two words"
ENV C=$A-$B
WORKDIR /app
EXPOSE 8080 53/udp
LABEL org.test.name=built org.test.second="two words"
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /greeting"]
"#;

/// Heredocs, appended to [`MULTI`] for the rootless build.
const HEREDOCS: &str = r#"RUN <<EOF
set -e
echo one > /heredoc
echo two >> /heredoc
EOF
COPY <<EOT /etc/motd
hello from a heredoc
EOT
"#;

fn multi_context(c: &Cairn, heredocs: bool) -> PathBuf {
    let file = if heredocs {
        format!("{MULTI}{HEREDOCS}")
    } else {
        MULTI.to_owned()
    };
    let dir = context(
        c,
        "multi",
        &[
            ("Containerfile", file.as_str()),
            ("app/main.txt", "main\n"),
            ("app/lib/l.txt", "lib\n"),
            ("app/debug.log", "excluded by .dockerignore\n"),
            ("app/keep.log", "re-included by !\n"),
            ("tool.sh", "#!/bin/sh\necho tool\n"),
            (".dockerignore", "**/*.log\n!app/keep.log\n"),
        ],
    );
    fs::set_permissions(dir.join("tool.sh"), fs::Permissions::from_mode(0o644)).unwrap();
    dir
}

/// Checks the multi-stage image's files and config (root or rootless).
fn check_multi(tree: &BTreeMap<String, Node>, config: &serde_json::Value, heredocs: bool) {
    assert_eq!(
        tree["greeting"].hash,
        sha256_digest(b"hi from the builder\n")
    );
    assert_eq!(tree["from-builder/sub/n"].kind, "file");
    assert_eq!(tree["from-builder/link"].link, "greeting");
    assert_eq!(
        tree["from-builder-dir/sub/n"].kind, "file",
        "a directory source, no /"
    );
    assert!(!tree.contains_key("usr/share/doc"), "deleted in a step");
    assert!(!tree.contains_key("etc/os-release"));
    assert!(!tree.contains_key("gone"), "made and deleted across steps");
    let mine = &tree["home/app/made-by-app"];
    assert_eq!((mine.uid, mine.gid), (1000, 1000), "made by USER app");
    assert_eq!(tree["app/main.txt"].uid, 1000, "COPY --chown");
    assert_eq!(tree["app/lib/l.txt"].gid, 1000);
    assert!(!tree.contains_key("app/debug.log"), ".dockerignore");
    assert!(tree.contains_key("app/keep.log"), "! re-includes");
    assert!(!tree.contains_key("app/Containerfile"));
    assert_eq!(tree["usr/local/bin/tool.sh"].mode, 0o4755, "setuid kept");
    if heredocs {
        assert_eq!(tree["heredoc"].hash, sha256_digest(b"one\ntwo\n"));
        let motd = sha256_digest(b"hello from a heredoc\n");
        assert_eq!(tree["etc/motd"].hash, motd);
    }
    let env: Vec<&str> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in ["A=1", "B=two words", "C=1-two words"] {
        assert!(env.contains(&want), "{want} in {env:?}");
    }
    assert!(
        !env.iter().any(|e| e.starts_with("GREETING=")),
        "ARGs stay out: {env:?}"
    );
    assert_eq!(config["WorkingDir"], "/app");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(config["Cmd"], serde_json::json!(["cat /greeting"]));
    assert_eq!(config["Labels"]["org.test.second"], "two words");
    assert!(config["ExposedPorts"]["53/udp"].is_object());
    assert!(config["ExposedPorts"]["8080/tcp"].is_object());
    assert_eq!(config["StopSignal"], "SIGTERM");
}

#[test]
fn multi_stage_build_equals_buildah_and_runs() {
    assert!(
        is_root(),
        "this test runs as root (scripts/test runs the suite as root)"
    );
    let c = env();
    let ctx = multi_context(&c, false);
    let ctx_s = ctx.to_str().unwrap();
    let out = c.ok([
        "build",
        "--network",
        "none",
        "--build-arg",
        "GREETING=hi",
        "-t",
        "multi",
        ctx_s,
    ]);
    assert!(
        out.contains("[1/2] STEP 1/3: FROM $BASE AS builder"),
        "{out}"
    );
    assert!(
        out.contains("Successfully tagged localhost/multi:latest"),
        "{out}"
    );
    let run = c.ok(["run", "--rm", "--network", "none", "multi"]);
    assert_eq!(run, "hi from the builder\n");
    let (ours, config) = cairn_image(&c, "localhost/multi:latest", "multi");
    check_multi(&ours, &config, false);

    // buildah, same Containerfile and context.
    let p = Podman::new().expect("podman");
    p.import_fixture(refs::DEBIAN_MIN, IMAGE).unwrap();
    let b = p
        .buildah([
            "bud",
            "--layers",
            "--network",
            "none",
            "--build-arg",
            "GREETING=hi",
            "-t",
            "localhost/multi:latest",
            ctx_s,
        ])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(
        b.status.success(),
        "buildah bud: {}",
        String::from_utf8_lossy(&b.stderr)
    );
    let layout = c.scratch().join("buildah-layout");
    let push = p
        .buildah(["push", "localhost/multi:latest"])
        .arg(format!("oci:{}:b", layout.display()))
        .output()
        .unwrap();
    assert!(
        push.status.success(),
        "buildah push: {}",
        String::from_utf8_lossy(&push.stderr)
    );
    let theirs = tree(&umoci_unpack(
        &layout,
        "b",
        &c.scratch().join("bundle-buildah"),
    ));
    assert_same(
        "cairn build vs buildah bud (unpacked by umoci)",
        &ours,
        &theirs,
    );
    let their_config: serde_json::Value = serde_json::from_str(&p.ok([
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        "localhost/multi:latest",
    ]))
    .unwrap();
    for key in [
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "ExposedPorts",
        "StopSignal",
    ] {
        assert_eq!(
            config.get(key).filter(|v| !v.is_null()),
            their_config.get(key).filter(|v| !v.is_null()),
            "config {key}"
        );
    }
    let mut their_labels = their_config["Labels"].clone();
    their_labels
        .as_object_mut()
        .unwrap()
        .remove("io.buildah.version");
    assert_eq!(config["Labels"], their_labels, "labels but buildah's own");
}

#[test]
fn rootless_multi_stage_build_keeps_image_ids() {
    let c = rootless_env();
    let ctx = multi_context(&c, true);
    c.ok([
        "build",
        "--network",
        "none",
        "--build-arg",
        "GREETING=hi",
        "-t",
        "multi",
        ctx.to_str().unwrap(),
    ]);
    let run = c.ok(["run", "--rm", "--network", "none", "multi"]);
    assert_eq!(run, "hi from the builder\n");
    // The layers as root reads them back: ids are image ids, not the
    // namespace's host ids.
    let layout = c.scratch().join("layout-rl");
    let src = format!("oci:{}:localhost/multi:latest", c.root().display());
    cairn_tests::util::skopeo(&["copy", "-q", &src, &format!("oci:{}:x", layout.display())])
        .unwrap();
    let rootfs = umoci_unpack(&layout, "x", &c.scratch().join("bundle-rl"));
    let config: serde_json::Value = serde_json::from_str(&c.ok([
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        "localhost/multi:latest",
    ]))
    .unwrap();
    check_multi(&tree(&rootfs), &config, true);
}

/// `--> Using cache` lines of a build's output.
fn cache_hits(out: &str) -> usize {
    out.lines()
        .filter(|l| l.starts_with("--> Using cache"))
        .count()
}

#[test]
fn cached_rebuild_runs_no_step_and_a_changed_file_reruns_from_its_step() {
    let c = env();
    let file = "FROM localhost/debian-min:latest\n\
                RUN echo first > /first\n\
                COPY a.txt /a.txt\n\
                RUN cat /a.txt > /derived\n\
                COPY b.txt /b.txt\n\
                CMD [\"cat\", \"/derived\"]\n";
    let ctx = context(
        &c,
        "cache",
        &[("Containerfile", file), ("a.txt", "A1\n"), ("b.txt", "B\n")],
    );
    let ctx_s = ctx.to_str().unwrap();
    let first = c.ok(["build", "--network", "none", "-t", "cached", ctx_s]);
    assert_eq!(cache_hits(&first), 0, "{first}");
    let id1 = first.lines().last().unwrap().to_owned();

    let again = c.ok(["build", "--network", "none", "-t", "cached", ctx_s]);
    assert_eq!(cache_hits(&again), 5, "every step from the cache:\n{again}");
    assert_eq!(again.lines().last().unwrap(), id1, "same image");
    assert!(
        c.ok(["ps", "-aq"]).trim().is_empty(),
        "no step container left"
    );

    // An mtime alone does not bust the cache.
    let now = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    fs::File::options()
        .write(true)
        .open(ctx.join("a.txt"))
        .unwrap()
        .set_modified(now)
        .unwrap();
    let touched = c.ok(["build", "--network", "none", "-t", "cached", ctx_s]);
    assert_eq!(cache_hits(&touched), 5, "{touched}");

    fs::write(ctx.join("a.txt"), "A2\n").unwrap();
    let changed = c.ok(["build", "--network", "none", "-t", "cached", ctx_s]);
    assert_eq!(
        cache_hits(&changed),
        1,
        "only the RUN before COPY a.txt:\n{changed}"
    );
    assert_ne!(changed.lines().last().unwrap(), id1);
    assert_eq!(c.ok(["run", "--rm", "--network", "none", "cached"]), "A2\n");

    // --no-cache runs everything.
    let none = c.ok([
        "build",
        "--no-cache",
        "--network",
        "none",
        "-t",
        "cached",
        ctx_s,
    ]);
    assert_eq!(cache_hits(&none), 0, "{none}");
    // Intermediate images are listed only with -a.
    let listed = c.ok(["images", "-q"]);
    let all = c.ok(["images", "-aq"]);
    assert!(
        all.lines().count() > listed.lines().count(),
        "{listed}\n--\n{all}"
    );
    // image prune keeps the step images the tagged image was built on (they
    // are its parents, as podman's), so the cache survives it...
    c.ok(["image", "prune", "-f"]);
    let again = c.ok(["build", "--network", "none", "-t", "cached", ctx_s]);
    assert_eq!(cache_hits(&again), 5, "after prune:\n{again}");
    // ...and removes them once nothing is built on them.
    c.ok(["rmi", "cached"]);
    c.ok(["image", "prune", "-f"]);
    let left = c.ok(["images", "-a", "--format", "{{.Repository}}"]);
    assert_eq!(left.trim(), "localhost/debian-min", "{left}");
}

#[test]
fn source_date_epoch_builds_are_reproducible() {
    let mut c = env();
    c.0.env("SOURCE_DATE_EPOCH", "1700000000");
    let file = "FROM localhost/debian-min:latest\n\
                RUN mkdir -p /opt/x && echo made > /opt/x/f && touch /opt/x/g\n\
                COPY f.txt /opt/f.txt\n\
                ENV V=1\n";
    let ctx = context(&c, "repro", &[("Containerfile", file), ("f.txt", "f\n")]);
    let ctx_s = ctx.to_str().unwrap();
    let a = c.ok(["build", "-q", "--no-cache", "--network", "none", ctx_s]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = c.ok(["build", "-q", "--no-cache", "--network", "none", ctx_s]);
    assert_eq!(a, b, "two builds, one digest");
    let created = c.ok(["image", "inspect", "--format", "{{.Created}}", a.trim()]);
    assert!(created.starts_with("2023-11-14"), "{created}");
}

#[test]
fn a_secret_is_readable_in_its_step_and_in_no_layer_or_history() {
    let c = env();
    let secret = c.scratch().join("token");
    fs::write(&secret, "s3cr3t-t0ken-value\n").unwrap();
    // The Containerfile names the secret by its hash only (its text is in
    // the history).
    let want = sha256_digest(b"s3cr3t-t0ken-value\n");
    let want = want.trim_start_matches("sha256:");
    let file = format!(
        "FROM localhost/debian-min:latest\n\
         RUN --mount=type=secret,id=tok,required=true test \"$(sha256sum < /run/secrets/tok | cut -c1-64)\" = {want} && echo used > /used\n\
         RUN --mount=type=secret,id=tok,target=/etc/tok cp /etc/tok /leak-attempt-ok && rm /leak-attempt-ok\n"
    );
    let ctx = context(&c, "secret", &[("Containerfile", &file)]);
    let arg = format!("id=tok,src={}", secret.display());
    c.ok([
        "build",
        "--network",
        "none",
        "--secret",
        &arg,
        "-t",
        "sec",
        ctx.to_str().unwrap(),
    ]);
    // No blob of the store holds the secret: layers are stored uncompressed.
    let blobs = c.root().join("blobs/sha256");
    for e in fs::read_dir(&blobs).unwrap().flatten() {
        let bytes = fs::read(e.path()).unwrap();
        assert!(
            !bytes.windows(18).any(|w| w == b"s3cr3t-t0ken-value"),
            "the secret is in blob {}",
            e.path().display()
        );
    }
    let (t, _) = cairn_image(&c, "localhost/sec:latest", "sec");
    assert!(t.contains_key("used"));
    assert!(
        !t.contains_key("etc/tok"),
        "a secret's mount point is not in the layer"
    );
    let history = c.ok(["history", "--no-trunc", "--format", "{{.CreatedBy}}", "sec"]);
    assert!(!history.contains("s3cr3t"), "{history}");
    // And a RUN that needs it fails without it, naming the flag.
    let r = c.fails(
        125,
        [
            "build",
            "--network",
            "none",
            "--no-cache",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(r.stderr.contains("--secret id=tok"), "{}", r.stderr);
}

#[test]
fn a_failing_run_stops_the_build_with_its_code_and_tags_nothing() {
    let c = env();
    let file = "FROM localhost/debian-min:latest\nRUN echo before > /b\nRUN echo to-stdout; exit 7\nRUN echo never\n";
    let ctx = context(&c, "fail", &[("Containerfile", file)]);
    let r = c.fails(
        7,
        [
            "build",
            "--network",
            "none",
            "-t",
            "failed",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(
        r.stdout.contains("to-stdout"),
        "the step's output is shown: {}",
        r.stdout
    );
    assert!(
        r.stderr.contains(
            "building at STEP \"RUN echo to-stdout; exit 7\": while running runtime: exit status 7"
        ),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("never"));
    assert!(
        !c.refs().iter().any(|n| n.contains("failed")),
        "nothing tagged: {:?}",
        c.refs()
    );
    assert!(
        c.ok(["ps", "-aq"]).trim().is_empty(),
        "no step container left"
    );
}

#[test]
fn bad_containerfiles_and_sources_are_one_line_errors() {
    let c = env();
    let cases: &[(&str, &str)] = &[
        (
            "FORM localhost/debian-min:latest\n",
            "Containerfile:1:1: unknown instruction: FORM",
        ),
        (
            "FROM localhost/debian-min:latest\nCOPY ../outside /x\n",
            "outside",
        ),
        (
            "FROM localhost/debian-min:latest\nCOPY missing.txt /x\n",
            "missing.txt",
        ),
        (
            "FROM localhost/debian-min:latest\nCOPY evil/passwd /x\n",
            "evil/passwd",
        ),
        (
            "FROM localhost/debian-min:latest\nADD https://example.invalid/x /x\n",
            "remote sources are not fetched",
        ),
    ];
    for (i, (file, want)) in cases.iter().enumerate() {
        let ctx = context(&c, &format!("bad{i}"), &[("Containerfile", file)]);
        let _ = std::os::unix::fs::symlink("/etc", ctx.join("evil"));
        fs::write(c.scratch().join("outside"), "host file\n").unwrap();
        let r = c.fails(125, ["build", "-t", "bad", ctx.to_str().unwrap()]);
        assert!(
            r.stderr.contains(want),
            "case {i}: want {want:?} in {}",
            r.stderr
        );
        assert_eq!(r.stderr.trim().lines().count(), 1, "one line: {}", r.stderr);
    }
    assert!(
        !c.refs().iter().any(|n| n.contains("bad")),
        "{:?}",
        c.refs()
    );
}

/// `cairn ARGS` with `input` on its stdin; it must succeed.
fn build_with_stdin(c: &Cairn, args: &[&str], input: &[u8]) {
    use std::io::Write as _;
    let mut child = c
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn containerfile_and_tar_context_from_stdin() {
    let c = env();
    let ctx = context(&c, "stdin", &[("data.txt", "from the tar context\n")]);
    fs::write(
        ctx.join("Containerfile"),
        "FROM localhost/debian-min:latest\nCOPY data.txt /data.txt\n",
    )
    .unwrap();
    // A tar of the context on stdin.
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&ctx)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(tar.status.success());
    build_with_stdin(&c, &["build", "-q", "-t", "fromtar", "-"], &tar.stdout);
    assert_eq!(
        c.ok([
            "run",
            "--rm",
            "--network",
            "none",
            "fromtar",
            "cat",
            "/data.txt"
        ]),
        "from the tar context\n"
    );
    // -f - with a directory context.
    let ctx_s = ctx.to_str().unwrap();
    build_with_stdin(
        &c,
        &["build", "-q", "-t", "fromfile", "-f", "-", ctx_s],
        b"FROM localhost/debian-min:latest\nCOPY data.txt /again.txt\n",
    );
    assert_eq!(
        c.ok([
            "run",
            "--rm",
            "--network",
            "none",
            "fromfile",
            "cat",
            "/again.txt"
        ]),
        "from the tar context\n"
    );
}

#[test]
fn scratch_stages_layers_false_and_squash() {
    let c = env();
    let file = "FROM localhost/debian-min:latest AS b\n\
                RUN mkdir /out && echo built > /out/f\n\
                FROM scratch\n\
                COPY --from=b /out/f /f\n\
                COPY x.txt /dir/\n";
    let ctx = context(&c, "scratch", &[("Containerfile", file), ("x.txt", "x\n")]);
    c.ok(["build", "-q", "-t", "fromscratch", ctx.to_str().unwrap()]);
    let (t, _) = cairn_image(&c, "localhost/fromscratch:latest", "s");
    let names: Vec<&String> = t.keys().collect();
    assert_eq!(names, ["dir", "dir/x.txt", "f"]);
    assert_eq!(t["f"].hash, sha256_digest(b"built\n"));

    // One layer per stage with --layers=false, one in all with --squash-all.
    let file2 = "FROM localhost/debian-min:latest\n\
                 RUN echo 1 > /one\nRUN echo 2 > /two && rm /one\nCOPY x.txt /x\n";
    let ctx2 = context(&c, "flat", &[("Containerfile", file2), ("x.txt", "x\n")]);
    let layers = |name: &str| -> usize {
        c.ok([
            "image",
            "inspect",
            "--format",
            "{{len .RootFS.Layers}}",
            name,
        ])
        .trim()
        .parse()
        .unwrap()
    };
    let base = layers(IMAGE);
    c.ok([
        "build",
        "-q",
        "--network",
        "none",
        "--layers=false",
        "-t",
        "flat",
        ctx2.to_str().unwrap(),
    ]);
    assert_eq!(layers("flat"), base + 1);
    let (ft, _) = cairn_image(&c, "localhost/flat:latest", "flat");
    assert!(ft.contains_key("two") && ft.contains_key("x") && !ft.contains_key("one"));
    c.ok([
        "build",
        "-q",
        "--network",
        "none",
        "--squash",
        "-t",
        "squash",
        ctx2.to_str().unwrap(),
    ]);
    assert_eq!(
        layers("squash"),
        base + 1,
        "--squash: the new layers as one"
    );
    c.ok([
        "build",
        "-q",
        "--network",
        "none",
        "--squash-all",
        "-t",
        "squashed",
        ctx2.to_str().unwrap(),
    ]);
    assert_eq!(layers("squashed"), 1);
}

#[test]
fn quiet_run_flags_annotations_and_unsetenv() {
    let c = env();
    let file = "FROM localhost/debian-min:latest\n\
                ENV DROP_ME=1 KEEP=2\n\
                RUN grep -q 'cairn-added 1.2.3.4' /etc/hosts \\\n\
                    || (echo 'no --add-host entry' >&2; exit 3); echo to-stdout; echo to-stderr >&2\n";
    let ctx = context(&c, "flags", &[("Containerfile", file)]);
    let ctx_s = ctx.to_str().unwrap();
    let r = c.run([
        "build",
        "-q",
        "--network",
        "none",
        "--add-host",
        "cairn-added:1.2.3.4",
        "--annotation",
        "org.test.note=yes",
        "--unsetenv",
        "DROP_ME",
        "--label",
        "org.test.label=l",
        "--env",
        "ADDED=1",
        "--format",
        "docker",
        "-t",
        "flagged",
        ctx_s,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // podman's -q: the image id alone on stdout, the step's stderr kept.
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert_eq!(r.stdout.trim().len(), 64, "{}", r.stdout);
    assert!(r.stderr.contains("to-stderr"), "{}", r.stderr);
    let notes = c.ok([
        "image",
        "inspect",
        "--format",
        "{{json .Annotations}}",
        "flagged",
    ]);
    assert!(notes.contains("\"org.test.note\":\"yes\""), "{notes}");
    let env = c.ok([
        "image",
        "inspect",
        "--format",
        "{{json .Config.Env}}",
        "flagged",
    ]);
    assert!(env.contains("KEEP=2") && !env.contains("DROP_ME"), "{env}");
    assert!(env.contains("ADDED=1"), "{env}");
    let labels = c.ok([
        "image",
        "inspect",
        "--format",
        "{{json .Labels}}",
        "flagged",
    ]);
    assert!(labels.contains("\"org.test.label\":\"l\""), "{labels}");
    let index = c.index();
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["annotations"]["org.opencontainers.image.ref.name"] == "localhost/flagged:latest"
        })
        .expect("the tag in index.json");
    assert_eq!(
        desc["mediaType"], "application/vnd.docker.distribution.manifest.v2+json",
        "--format docker"
    );
}
