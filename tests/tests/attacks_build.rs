//! Attacks on `cairn build`, performed for real through the real binaries, as root and as the
//! rootless test user (`Cairn::rootless()`). The attacker writes the Containerfile and the
//! context (a cloned repository, a tar on stdin) and may name a hostile base image; the build
//! runs as the caller. Every test asserts the host is untouched: directories planted under
//! `/tmp` keep exactly their one secret file (content and mtime), no secret of the host (a
//! planted file, `/etc/shadow`, a file next to the context) appears in any file of the store
//! (blobs decompressed, layer directories, containers, cache mounts), the store's `tmp/` ends
//! empty and `system check` finds nothing. Where the attack's content lands inside the image,
//! that is checked by running the image.
//!
//! The defences under attack: COPY/ADD write through `__build-copy`, a child chrooted into the
//! step container's overlay root, so a symlink of the image resolves inside it; `COPY --from`
//! reads through a child chrooted into the source image; context sources and tar contexts are
//! resolved in the context root (openat2-style); RUN's mounts are read-only binds; RUN's
//! processes die with the step (its pid namespace) before the next COPY; inputs read from
//! files and stdin are bounded.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cairn_tests::attack::{self, Entry, HostDir, RawEntry};
use cairn_tests::fixtures::{self, refs};
use cairn_tests::Cairn;

/// The name the fixture image gets in every store.
const IMAGE: &str = "localhost/debian-min:latest";

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

fn env(rootless: bool) -> Env {
    let c = if rootless {
        Cairn::rootless().expect("rootless environment")
    } else {
        Cairn::new().expect("cairn environment")
    };
    c.pull_fixture_as(refs::DEBIAN_MIN, IMAGE);
    Env(c)
}

/// A context directory `name` under the environment's scratch dir with `files` (path →
/// content) and `links` (path → symlink target), owned by the environment's user.
fn context(c: &Cairn, name: &str, files: &[(&str, &[u8])], links: &[(&str, &str)]) -> PathBuf {
    let dir = c.scratch().join(name);
    fs::create_dir_all(&dir).unwrap();
    for (p, data) in files {
        let path = dir.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, data).unwrap();
    }
    for (p, target) in links {
        std::os::unix::fs::symlink(target, dir.join(p)).unwrap();
    }
    chown_to_user(c, &dir);
    dir
}

fn chown_to_user(c: &Cairn, path: &Path) {
    if let Some(u) = c.user() {
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", u.uid, u.gid))
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// `cairn build -t TAG DIR` (cwd: `cwd`): exit code and stdout+stderr.
fn build_in(c: &Cairn, tag: &str, dir: &Path, cwd: &Path) -> (i32, String) {
    let out = c
        .command(["build", "-t", tag])
        .arg(dir)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn build(c: &Cairn, tag: &str, dir: &Path) -> (i32, String) {
    build_in(c, tag, dir, dir)
}

/// `cairn build -t TAG -` with `input` on stdin.
fn build_stdin(c: &Cairn, tag: &str, input: &[u8]) -> (i32, String) {
    let mut child = c
        .command(["build", "-t", tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `sh -c SCRIPT` in a container of `image`: its stdout.
fn inspect(c: &Cairn, image: &str, script: &str) -> String {
    c.ok([
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        script,
    ])
}

/// The host-side checks after each build: the planted directories and the store's tmp/.
fn assert_dirs_untouched(c: &Cairn, dirs: &[&HostDir], what: &str) {
    let mut findings: Vec<String> = dirs.iter().flat_map(|d| d.findings()).collect();
    let tmp = c.temp_files();
    if !tmp.is_empty() {
        findings.push(format!("left in the store's tmp/: {tmp:?}"));
    }
    assert!(
        findings.is_empty(),
        "{what}: the host was touched:\n{findings:#?}"
    );
}

/// The host-side checks every test ends with: also no secret in any file of the store, and
/// `system check` clean.
fn assert_host_untouched(c: &Cairn, dirs: &[&HostDir], extra_needles: &[&str], what: &str) {
    let mut findings: Vec<String> = dirs.iter().flat_map(|d| d.findings()).collect();
    let mut needles: Vec<&str> = dirs.iter().map(|d| d.secret.as_str()).collect();
    needles.extend_from_slice(extra_needles);
    findings.extend(attack::store_holding(c, &needles));
    let tmp = c.temp_files();
    if !tmp.is_empty() {
        findings.push(format!("left in the store's tmp/: {tmp:?}"));
    }
    assert!(
        findings.is_empty(),
        "{what}: the host was touched:\n{findings:#?}"
    );
    c.assert_clean_after(what);
}

/// A line of the host's /etc/shadow that no image holds (the test user's entry).
fn host_shadow_needle() -> String {
    let text = fs::read_to_string("/etc/shadow").unwrap_or_default();
    let user = std::env::var("CAIRN_TEST_USER").unwrap_or_else(|_| "cairntest".into());
    text.lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .map(str::to_owned)
        .unwrap_or_default()
}

/// Attack 1: a hostile base image whose paths are absolute (and climbing) symlinks to host
/// directories; COPY, COPY of a directory, ADD of an archive, WORKDIR + COPY and COPY --chown
/// onto them. Nothing may land in the host directories; the content lands inside the image, at
/// the symlinks' targets resolved in its root.
fn hostile_base_symlinks(rootless: bool) {
    let env = env(rootless);
    let c = &*env;
    let user = c.user().cloned();
    let app = HostDir::new("app", user.as_ref()).unwrap();
    let lib = HostDir::new("lib", user.as_ref()).unwrap();
    let wd = HostDir::new("wd", user.as_ref()).unwrap();
    let rel = HostDir::new("rel", user.as_ref()).unwrap();
    let p = |d: &HostDir| d.path.display().to_string();
    let layout = c.scratch().join("layout");
    let reference = attack::derive_image(
        &fixtures::layout(),
        refs::DEBIAN_MIN,
        &layout,
        "hostile",
        &[
            // The targets exist in the image too (as they do on the host): a copy that
            // resolved the links on the host would write there.
            Entry::Dir("tmp/".into()),
            Entry::Dir(format!("{}/", &p(&app)[1..])),
            Entry::Dir(format!("{}/", &p(&lib)[1..])),
            Entry::Dir(format!("{}/", &p(&wd)[1..])),
            Entry::Dir(format!("{}/", &p(&rel)[1..])),
            Entry::Symlink("dangling".into(), format!("{}/missing", p(&app))),
            Entry::Symlink("app".into(), p(&app)),
            Entry::Dir("usr/local/lib/".into()),
            Entry::Symlink("usr/local/lib/x".into(), p(&lib)),
            Entry::Symlink("w".into(), p(&wd)),
            Entry::Symlink("rel".into(), format!("../../../../../../..{}", p(&rel))),
        ],
    )
    .unwrap();
    let id = c.ok(["pull", "-q", &reference]);
    c.ok(["tag", id.trim(), "localhost/hostile:latest"]);
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(9);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    archive
        .append_data(&mut h, "added.txt", &b"ADDED-TXT"[..])
        .unwrap();
    let archive = archive.into_inner().unwrap().finish().unwrap();
    let dir = context(
        c,
        "ctx",
        &[
            (
                "Containerfile",
                b"FROM localhost/hostile:latest\n\
                  COPY file /app/\n\
                  COPY dir/ /app/sub/\n\
                  ADD archive.tar.gz /app/\n\
                  COPY --chown=1:1 owned /usr/local/lib/x/\n\
                  COPY --chown=2:2 file /app/owned2\n\
                  COPY file /rel/\n\
                  WORKDIR /w\n\
                  COPY wfile .\n\
                  RUN --mount=type=cache,target=/app/cache --mount=type=tmpfs,target=/w/tmp \
                      --mount=type=bind,source=dir,target=/usr/local/lib/x/bind \
                      --mount=type=cache,id=rel,target=/rel/cache \
                      sh -c 'echo MOUNTED > /app/cache/m; ls /usr/local/lib/x/bind > /bound'\n",
            ),
            ("file", b"CTX-FILE"),
            ("dir/f", b"CTX-DIR-F"),
            ("owned", b"CTX-OWNED"),
            ("wfile", b"CTX-WFILE"),
            ("archive.tar.gz", &archive),
        ],
        &[],
    );
    let (code, out) = build(c, "localhost/built:latest", &dir);
    assert_dirs_untouched(c, &[&app, &lib, &wd, &rel], "COPY onto symlinks");
    assert_eq!(code, 0, "the build over the hostile base failed:\n{out}");
    // A link to a directory the image does not have (BuildKit makes it in the image).
    fs::write(
        dir.join("Containerfile"),
        "FROM localhost/hostile:latest\nCOPY file /dangling/\n",
    )
    .unwrap();
    let (dcode, dout) = build(c, "localhost/dangling:latest", &dir);
    assert_host_untouched(c, &[&app, &lib, &wd, &rel], &[], "COPY onto symlinks");
    if dcode == 0 {
        let got = inspect(
            c,
            "localhost/dangling:latest",
            &format!("cat {}/missing/file", p(&app)),
        );
        assert_eq!(got, "CTX-FILE", "{dout}");
    } else {
        assert!(dout.contains("/dangling/"), "{dout}");
        eprintln!(
            "COPY onto a dangling symlink: {}",
            dout.lines().last().unwrap_or("")
        );
    }
    // In the image the links lead to their targets in its own root (as BuildKit's copy).
    let got = inspect(
        c,
        "localhost/built:latest",
        &format!(
            "cat {a}/file {a}/sub/f {a}/added.txt {l}/owned {w}/wfile {r}/file; echo; \
             stat -c %u:%g {l}/owned {a}/owned2; readlink /app; cat /bound",
            a = p(&app),
            l = p(&lib),
            w = p(&wd),
            r = p(&rel)
        ),
    );
    assert_eq!(
        got,
        format!(
            "CTX-FILECTX-DIR-FADDED-TXTCTX-OWNEDCTX-WFILECTX-FILE\n1:1\n2:2\n{}\nf\n",
            p(&app)
        ),
        "{out}"
    );
}

#[test]
fn hostile_base_symlinks_as_root() {
    hostile_base_symlinks(false);
}

#[test]
fn hostile_base_symlinks_rootless() {
    hostile_base_symlinks(true);
}

/// Attack 2: a stage whose files are symlinks to `/etc/shadow`, to a planted host secret and
/// `../../..` up to `/etc`, read with `COPY --from`: the stage's own files come out (the links
/// resolve in the stage's root), never the host's.
fn hostile_stage(rootless: bool) {
    let env = env(rootless);
    let c = &*env;
    let user = c.user().cloned();
    let planted = HostDir::new("stage", user.as_ref()).unwrap();
    let secret = planted.secret_file().display().to_string();
    let cf = format!(
        "FROM {IMAGE} AS evil\n\
         RUN echo STAGE-SHADOW > /etc/shadow && mkdir -p /out {dir} && echo STAGE-PLANTED > {secret} \
         && echo STAGE-OWN > /out/own && ln -s /etc/shadow /out/secret \
         && ln -s ../../../../../../etc /out/up && ln -s {secret} /out/planted \
         && mkdir /fifo && mkfifo /fifo/f && ln -s /fifo/f /fifo/l\n\
         FROM {IMAGE}\n\
         COPY --from=evil /out/secret /x\n\
         COPY --from=evil /out/ /y/\n\
         COPY --from=evil /out/up/shadow /z\n\
         COPY --from=evil /out/planted /p\n\
         COPY --from=evil /fifo/l /q\n\
         COPY --from=evil /fifo/ /fifos/\n",
        dir = planted.path.display()
    );
    let dir = context(c, "ctx", &[("Containerfile", cf.as_bytes())], &[]);
    // A FIFO source with no writer must not block the build: 60 s at most.
    let mut cmd = c.command(["build", "-t", "localhost/built:latest"]);
    cmd.arg(&dir);
    let m = attack::run_measured(&cmd, Duration::from_secs(60), 4 << 30).unwrap();
    assert!(
        !m.timed_out,
        "COPY --from of a FIFO hung the build: {}",
        m.stderr
    );
    let (code, out) = (m.code, format!("{}{}", m.stdout, m.stderr));
    let shadow = host_shadow_needle();
    assert_host_untouched(c, &[&planted], &[&shadow], "COPY --from a hostile stage");
    assert_eq!(code, 0, "{out}");
    let got = inspect(
        c,
        "localhost/built:latest",
        "cat /x /z /p /y/own; readlink /y/secret /y/up /y/planted",
    );
    assert_eq!(
        got,
        format!(
            "STAGE-SHADOW\nSTAGE-SHADOW\nSTAGE-PLANTED\nSTAGE-OWN\n/etc/shadow\n../../../../../../etc\n{secret}\n"
        ),
        "{out}"
    );
}

#[test]
fn hostile_stage_copy_from_as_root() {
    hostile_stage(false);
}

#[test]
fn hostile_stage_copy_from_rootless() {
    hostile_stage(true);
}

/// Attack 3: hostile tars. An ADD archive with `../../x`, an absolute name into a host
/// directory, a hard link climbing out (all normalized under the destination); a second one
/// with a symlink to a host directory followed by a file through it, a hard link to
/// `/etc/shadow` and device nodes; and tar contexts on stdin with each trick. Nothing lands
/// outside the container root or the scratch directory; what is refused fails cleanly (no image
/// named, no leftovers).
fn hostile_tars(rootless: bool) {
    let env = env(rootless);
    let c = &*env;
    let user = c.user().cloned();
    let host = HostDir::new("tar", user.as_ref()).unwrap();
    let hp = host.path.display().to_string();
    let hname = hp.trim_start_matches('/').to_owned();
    let tag = attack::unique_tag("esc");
    let benign = attack::raw_tar(&[
        RawEntry::File(format!("../../../../{tag}"), b"ESC-DOTDOT".to_vec()),
        RawEntry::File(format!("{hp}/abs"), b"ESC-ABS".to_vec()),
        RawEntry::Hardlink("hl".into(), format!("../../../../{tag}")),
    ]);
    let through = attack::raw_tar(&[
        RawEntry::Symlink("a".into(), hp.clone()),
        RawEntry::File("a/through".into(), b"ESC-THROUGH".to_vec()),
    ]);
    let shadow_link = attack::raw_tar(&[RawEntry::Hardlink("hl".into(), "/etc/shadow".into())]);
    let devices = attack::raw_tar(&[
        RawEntry::Char("mem".into(), 1, 1),
        RawEntry::Block("disk".into(), 7, 255),
    ]);
    let dir = context(
        c,
        "ctx",
        &[
            (
                "Containerfile",
                format!("FROM {IMAGE}\nADD benign.tar /dest/\n").as_bytes(),
            ),
            ("benign.tar", &benign),
        ],
        &[],
    );
    let (code, out) = build(c, "localhost/benign:latest", &dir);
    assert_dirs_untouched(c, &[&host], "ADD of a tar with ../ and absolute names");
    assert_eq!(code, 0, "{out}");
    let got = inspect(
        c,
        "localhost/benign:latest",
        &format!("cat /dest/{tag} /dest/{hname}/abs /dest/hl"),
    );
    assert_eq!(got, "ESC-DOTDOTESC-ABSESC-DOTDOT", "{out}");
    for (name, tar) in [
        ("through", &through),
        ("shadowlink", &shadow_link),
        ("devices", &devices),
    ] {
        let d = context(
            c,
            &format!("ctx-{name}"),
            &[
                (
                    "Containerfile",
                    format!("FROM {IMAGE}\nADD {name}.tar /dest/\n").as_bytes(),
                ),
                (&format!("{name}.tar"), tar),
            ],
            &[],
        );
        let t = format!("localhost/{name}:latest");
        let (code, out) = build(c, &t, &d);
        eprintln!(
            "ADD {name}.tar: exit {code}: {}",
            out.lines().last().unwrap_or("")
        );
        assert_dirs_untouched(c, &[&host], &format!("ADD {name}.tar"));
        if code == 0 {
            // Accepted: what it made is inside the image.
            let got = inspect(
                c,
                &t,
                "ls -A /dest; cat /dest/a/through 2>/dev/null; cat /dest/hl 2>/dev/null; \
                 for f in /dest/*; do [ -b \"$f\" -o -c \"$f\" ] && echo DEVICE $f; done; true",
            );
            assert!(
                !got.contains("root:") && !got.contains("DEVICE"),
                "ADD {name}.tar: {got}"
            );
        } else {
            assert!(
                !c.refs().iter().any(|r| r.contains(name)),
                "a failed ADD {name}.tar named an image: {out}"
            );
        }
    }
    // The same archives as the first layer of a FROM scratch stage: made without a container,
    // written by the store's unpacker.
    for (name, tar) in [
        ("benign", &benign),
        ("through", &through),
        ("shadowlink", &shadow_link),
    ] {
        let d = context(
            c,
            &format!("ctx-scratch-{name}"),
            &[
                (
                    "Containerfile",
                    format!("FROM scratch\nADD {name}.tar /dest/\n").as_bytes(),
                ),
                (&format!("{name}.tar"), tar),
            ],
            &[],
        );
        let (code, out) = build(c, &format!("localhost/scratch-{name}:latest"), &d);
        eprintln!(
            "FROM scratch + ADD {name}.tar: exit {code}: {}",
            out.lines().last().unwrap_or("")
        );
        assert_dirs_untouched(c, &[&host], &format!("FROM scratch + ADD {name}.tar"));
        if name == "benign" {
            assert_eq!(code, 0, "{out}");
        }
    }
    // Tar contexts on stdin.
    let cf = RawEntry::File(
        "Containerfile".into(),
        format!("FROM {IMAGE}\nCOPY . /ctx/\n").into_bytes(),
    );
    for (name, entries) in [
        (
            "dotdot",
            vec![
                cf.clone(),
                RawEntry::File(format!("../../{tag}"), b"E".to_vec()),
            ],
        ),
        (
            "abs",
            vec![
                cf.clone(),
                RawEntry::File(format!("{hp}/abs"), b"E".to_vec()),
            ],
        ),
        (
            "through",
            vec![
                cf.clone(),
                RawEntry::Symlink("a".into(), hp.clone()),
                RawEntry::File("a/through".into(), b"E".to_vec()),
            ],
        ),
        (
            "shadowlink",
            vec![
                cf.clone(),
                RawEntry::Hardlink("hl".into(), "/etc/shadow".into()),
            ],
        ),
        (
            "devices",
            vec![cf.clone(), RawEntry::Block("disk".into(), 7, 255)],
        ),
    ] {
        let t = format!("localhost/stdin-{name}:latest");
        let (code, out) = build_stdin(c, &t, &attack::raw_tar(&entries));
        assert_dirs_untouched(c, &[&host], &format!("tar context {name}"));
        if code == 0 {
            let got = inspect(c, &t, "ls -A /ctx; cat /ctx/hl 2>/dev/null; true");
            assert!(!got.contains("root:"), "tar context {name}: {got}");
        }
        eprintln!(
            "tar context {name}: exit {code}: {}",
            out.lines().last().unwrap_or("")
        );
    }
    assert!(
        !Path::new("/").join(&tag).exists() && !Path::new("/tmp").join(&tag).exists(),
        "a ../ entry landed on the host"
    );
    assert_host_untouched(c, &[&host], &[&host_shadow_needle()], "hostile tars");
}

#[test]
fn hostile_tars_as_root() {
    hostile_tars(false);
}

#[test]
fn hostile_tars_rootless() {
    hostile_tars(true);
}

/// Attack 4: symlinks in the context (`evil -> /etc`, a link to a host secret) and a file name
/// that smuggles options into RUN's bind mount (`d,source=..`: the mount's source would become
/// the parent of the caller's working directory). Sources resolve inside the context, `COPY .`
/// keeps the links as links, binds name only context paths.
fn context_symlinks(rootless: bool) {
    let env = env(rootless);
    let c = &*env;
    let user = c.user().cloned();
    let mut host = HostDir::new("ctx", user.as_ref()).unwrap();
    host.allow("proj");
    let secret = host.secret_file().display().to_string();
    let hostdir = host.path.display().to_string();
    // The caller runs the build from `host/proj` (a checkout inside a directory of secrets).
    let cwd = host.path.join("proj");
    fs::create_dir(&cwd).unwrap();
    chown_to_user(c, &cwd);
    let shadow = host_shadow_needle();
    let refused = [
        "COPY evil/shadow /x",
        "COPY evil /x/",
        "COPY evilf /x",
        "RUN --mount=type=bind,source=evil,target=/m cat /m/shadow > /stolen",
    ];
    for (i, inst) in refused.iter().enumerate() {
        let dir = context(
            c,
            &format!("ctx{i}"),
            &[(
                "Containerfile",
                format!("FROM {IMAGE}\n{inst}\n").as_bytes(),
            )],
            &[("evil", "/etc"), ("evilf", &secret)],
        );
        let (code, out) = build_in(c, "localhost/refused:latest", &dir, &cwd);
        assert_ne!(code, 0, "{inst}: read outside the context:\n{out}");
        assert!(
            out.contains("not found in the build context"),
            "{inst}: {out}"
        );
    }
    context_files_outside(c, &mut host, &cwd);
    // Links in the context are copied as links, and a bind of the context shows them as links
    // resolved in the container.
    let dir = context(
        c,
        "ctx-ok",
        &[(
            "Containerfile",
            format!(
                "FROM {IMAGE}\n\
                 COPY . /ctx/\n\
                 RUN --mount=type=bind,source=.,target=/m cat /m/evild/secret /m/evilf > /through 2>&1; true\n"
            )
            .as_bytes(),
        )],
        &[("evil", "/etc"), ("evilf", &secret), ("evild", &hostdir)],
    );
    let (code, out) = build_in(c, "localhost/built:latest", &dir, &cwd);
    assert_dirs_untouched(c, &[&host], "COPY . and a bind of the context");
    assert_eq!(code, 0, "{out}");
    let got = inspect(
        c,
        "localhost/built:latest",
        "readlink /ctx/evil /ctx/evilf; cat /through",
    );
    assert!(
        got.starts_with(&format!(
            "/etc\n{secret}\ncat: /m/evild/secret: No such file or directory\ncat: /m/evilf: No such file"
        )),
        "COPY . did not keep the links, or the bind followed one on the host: {got}"
    );
    // A file name that adds options to the bind (`source=..`: the parent of the caller's working
    // directory, where the secret is): refused, or the bind is the context's directory.
    let dir = context(
        c,
        "ctx-comma",
        &[
            (
                "Containerfile",
                format!(
                    "FROM {IMAGE}\n\
                     RUN --mount=type=bind,source=d*,target=/m cat /m/secret > /stolen 2>&1; ls /m >> /stolen; true\n"
                )
                .as_bytes(),
            ),
            // One directory named `d,source=..`.
            ("d,source=../inside", b"INSIDE"),
        ],
        &[],
    );
    let (code, out) = build_in(c, "localhost/comma:latest", &dir, &cwd);
    assert_host_untouched(c, &[&host], &[&shadow], "context symlinks and bind options");
    if code == 0 {
        let got = inspect(c, "localhost/comma:latest", "cat /stolen");
        assert!(
            got.ends_with("inside\n"),
            "the bind is not the context's directory: {got}"
        );
    } else {
        assert!(out.contains("d,source=.."), "{out}");
    }
}

/// Attack 4, continued: the context's Containerfile and ignore file linked to host files,
/// `--iidfile` onto a planted link, a bind of a context whose .dockerignore excludes files.
fn context_files_outside(c: &Cairn, host: &mut HostDir, cwd: &Path) {
    let secret = host.secret_file().display().to_string();
    // The context's Containerfile and ignore file as links to host files: neither is read
    // (their text would be shown in errors, kept in the history or used as patterns).
    let ign = host.path.join("ign");
    fs::write(&ign, format!("[{}\n", host.secret)).unwrap();
    host.allow("ign");
    let ign = ign.display().to_string();
    for (name, files, links) in [
        ("cf", vec![], vec![("Containerfile", secret.as_str())]),
        (
            "ign",
            vec![("Containerfile", format!("FROM {IMAGE}\nCOPY . /c/\n"))],
            vec![(".dockerignore", ign.as_str())],
        ),
    ] {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(n, t)| (*n, t.as_bytes())).collect();
        let dir = context(c, &format!("ctx-{name}"), &files, &links);
        let (_, out) = build_in(c, "localhost/linked:latest", &dir, cwd);
        assert!(
            !out.contains(&host.secret),
            "{name}: a host file's text came out of the build: {out}"
        );
    }
    // --iidfile where someone planted a link to a file of the caller's: the link is replaced,
    // its target kept.
    let iid = host.path.join("iid");
    std::os::unix::fs::symlink(host.secret_file(), &iid).unwrap();
    host.allow("iid");
    let dir = context(
        c,
        "ctx-iid",
        &[("Containerfile", format!("FROM {IMAGE}\n").as_bytes())],
        &[],
    );
    let out = c
        .command(["build", "-q", "--iidfile"])
        .arg(&iid)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_dirs_untouched(c, &[host], "--iidfile onto a link");
    let written = fs::read_to_string(&iid).unwrap();
    assert!(
        written.starts_with("sha256:") && !fs::symlink_metadata(&iid).unwrap().is_symlink(),
        "--iidfile: {written:?}"
    );
    // A file the context's .dockerignore excludes (an untracked .env) is not in a bind of the
    // context either.
    let ignored = attack::unique_tag("CAIRN-IGNORED");
    let dir = context(
        c,
        "ctx-dockerignore",
        &[
            (
                "Containerfile",
                format!(
                    "FROM {IMAGE}\nRUN --mount=type=bind,target=/m cat /m/.env /m/sub/.env > /leak 2>&1; true\n"
                )
                .as_bytes(),
            ),
            (".dockerignore", b"**/.env\n"),
            (".env", ignored.as_bytes()),
            ("sub/.env", ignored.as_bytes()),
        ],
        &[],
    );
    let (code, out) = build_in(c, "localhost/ignored:latest", &dir, cwd);
    assert_eq!(code, 0, "{out}");
    assert_host_untouched(
        c,
        &[host],
        &[&ignored],
        "a bind of a context with exclusions",
    );
}

#[test]
fn context_symlinks_as_root() {
    context_symlinks(false);
}

#[test]
fn context_symlinks_rootless() {
    context_symlinks(true);
}

/// Attack 5: a RUN step as root in the build container. It walks `/proc/*/fd`, `cwd`, `root`
/// and `exe` of every process it can see for a directory or binary of the host (the probe's
/// `race` mode); writes to the secret and to the context bind (both read-only) and tries to
/// remount them; writes into a cache mount, which another store's build (another user's, for
/// the rootless run) must not see; and leaves a process behind that swaps `/app` between a
/// directory and a symlink to a host directory while the next COPY writes there. No build
/// container runs while a COPY does: the swapper dies with its step.
fn run_step(rootless: bool) {
    let env = env(rootless);
    let c = &*env;
    let user = c.user().cloned();
    let host = HostDir::new("run", user.as_ref()).unwrap();
    let tag = attack::unique_tag("cache");
    let secret_src = c.scratch().join("secret.txt");
    fs::write(&secret_src, "BUILD-SECRET").unwrap();
    chown_to_user(c, &secret_src);
    let secret_mtime = fs::metadata(&secret_src).unwrap().modified().unwrap();
    let probe_dir = c.scratch().join("probe");
    attack::probe(&probe_dir).unwrap();
    let probe = fs::read(probe_dir.join("probe")).unwrap();
    let hp = host.path.display();
    let cf = format!(
        "FROM {IMAGE}\n\
         COPY probe /probe\n\
         RUN --mount=type=secret,id=s,target=/s --mount=type=bind,source=.,target=/m \
             --mount=type=cache,id=shared,target=/c sh -c '\
             (echo PWNED >> /s) 2>/dev/null && echo secret-writable >> /report; \
             (touch /m/pwned) 2>/dev/null && echo context-writable >> /report; \
             mount -o remount,rw /s 2>/dev/null && echo secret-remounted >> /report; \
             mount -o remount,rw /m 2>/dev/null && echo context-remounted >> /report; \
             echo {tag} > /c/marker; touch /report'\n\
         RUN mkdir /race && /probe race build /race 2 > /dev/null 2>&1; true\n\
         RUN mkdir -p /app {hp} && (setsid perl -e '\
             $0 = \"cairn-swapper-{tag}\"; symlink(\"{hp}\", \"/app.l\"); mkdir \"/app.d\"; \
             while (1) {{ rename \"/app\", \"/app.d\"; rename \"/app.l\", \"/app\"; \
             rename \"/app\", \"/app.l\"; rename \"/app.d\", \"/app\"; }}' \
             </dev/null >/dev/null 2>&1 &) ; sleep 0.5\n\
         COPY file /app/\n\
         COPY file /app/\n"
    );
    let dir = context(
        c,
        "ctx",
        &[
            ("Containerfile", cf.as_bytes()),
            ("file", b"CTX-FILE"),
            ("probe", &probe),
        ],
        &[],
    );
    fs::set_permissions(dir.join("probe"), fs::Permissions::from_mode(0o755)).unwrap();
    let out = c
        .command(["build", "--secret"])
        .arg(format!("id=s,src={}", secret_src.display()))
        .args(["-t", "localhost/built:latest"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let left = cairn_tests::util::processes_with(&format!("cairn-swapper-{tag}"));
    for (pid, _) in &left {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    assert!(
        left.is_empty(),
        "a RUN step's process outlived its step: {left:?}"
    );
    assert_host_untouched(c, &[&host], &["BUILD-SECRET"], "RUN as root in the build");
    assert_eq!(fs::read_to_string(&secret_src).unwrap(), "BUILD-SECRET");
    assert_eq!(
        fs::metadata(&secret_src).unwrap().modified().unwrap(),
        secret_mtime
    );
    assert!(
        !dir.join("pwned").exists(),
        "the RUN wrote into the context"
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    let report = inspect(c, "localhost/built:latest", "cat /report");
    assert_eq!(report, "", "a read-only mount gave way: {report}");
    let report = inspect(c, "localhost/built:latest", "cat /race/log");
    let log = attack::RaceLog::parse(&report);
    assert!(
        log.foreign_dirs().is_empty()
            && log.escape_count == 0
            && log.exe_writes.iter().all(|(_, r)| r != "ok"),
        "the RUN step reached the host through /proc: {report}"
    );
    assert!(log.done.is_some(), "the probe did not finish: {report}");
    // Another store (another user's, for the rootless run) does not share the cache mount.
    let other = if rootless {
        Env({
            let o = Cairn::new().unwrap();
            o.pull_fixture_as(refs::DEBIAN_MIN, IMAGE);
            o
        })
    } else {
        env_other()
    };
    let odir = context(
        &other,
        "ctx",
        &[(
            "Containerfile",
            format!(
                "FROM {IMAGE}\nRUN --mount=type=cache,id=shared,target=/c cat /c/marker > /seen 2>&1; true\n"
            )
            .as_bytes(),
        )],
        &[],
    );
    let (code, out) = build(&other, "localhost/other:latest", &odir);
    assert_eq!(code, 0, "{out}");
    let seen = inspect(&other, "localhost/other:latest", "cat /seen");
    assert!(
        !seen.contains(&tag),
        "another store's build saw the cache mount: {seen}"
    );
}

fn env_other() -> Env {
    let o = Cairn::rootless().unwrap();
    o.pull_fixture_as(refs::DEBIAN_MIN, IMAGE);
    Env(o)
}

#[test]
fn run_step_as_root() {
    run_step(false);
}

#[test]
fn run_step_rootless() {
    run_step(true);
}

/// Attack 6: unbounded input. A 200 MB Containerfile of comments, one of 100k lines, a heredoc
/// that never ends, a gzip bomb (1 GiB of zeros) as a tar context on stdin and an endless
/// non-tar stream on stdin: cairn fails or succeeds with bounded memory and leaves nothing in
/// its store's tmp/.
fn unbounded(rootless: bool) {
    let env = env(rootless);
    let c = &*env;
    let limit = 3u64 << 30;
    let measure = |what: &str, cmd: Command| {
        let m = attack::run_measured(&cmd, Duration::from_secs(60), limit).unwrap();
        eprintln!(
            "{what}: exit {} in {:?}, peak RSS {} MiB: {}",
            m.code,
            m.elapsed,
            m.max_rss_kib / 1024,
            m.stderr.lines().last().unwrap_or("")
        );
        assert!(!m.timed_out, "{what}: timed out");
        let tmp = c.temp_files();
        assert!(tmp.is_empty(), "{what}: left in tmp/: {tmp:?}");
        m
    };
    let dir = c.scratch().join("big");
    fs::create_dir_all(&dir).unwrap();
    // 200 MB of comments.
    let mut f = std::io::BufWriter::new(fs::File::create(dir.join("Comments")).unwrap());
    writeln!(f, "FROM {IMAGE}").unwrap();
    let line = format!("# {}\n", "x".repeat(1021));
    for _ in 0..200 * 1024 {
        f.write_all(line.as_bytes()).unwrap();
    }
    writeln!(f, "LABEL big=comments").unwrap();
    drop(f);
    // 100k lines of global ARGs.
    let mut t = String::new();
    for i in 0..100_000 {
        t.push_str(&format!("ARG A{i}={i}\n"));
    }
    t.push_str(&format!("FROM {IMAGE}\nARG A99999\nLABEL last=$A99999\n"));
    fs::write(dir.join("Lines"), t).unwrap();
    // A heredoc without its end (1M lines).
    let mut f = std::io::BufWriter::new(fs::File::create(dir.join("Heredoc")).unwrap());
    writeln!(f, "FROM {IMAGE}\nRUN <<EOF").unwrap();
    for _ in 0..1_000_000 {
        f.write_all(b"echo never ends\n").unwrap();
    }
    drop(f);
    chown_to_user(c, &dir);
    let mut bounded = Vec::new();
    for (name, size) in [
        ("Comments", 200u64 << 20),
        ("Lines", 1 << 20),
        ("Heredoc", 16 << 20),
    ] {
        let mut cmd = c.command(["build", "-t", "localhost/big:latest", "-f"]);
        cmd.arg(dir.join(name)).arg(&dir);
        let m = measure(name, cmd);
        bounded.push((name, m.max_rss_kib, size));
    }
    // A gzip bomb: a tar context of 1 GiB of zeros, compressed.
    let bomb = gzip_bomb(c);
    // Through sh (as the environment's user) for the redirection: cairn itself, by path.
    let cairn = format!(
        "'{}' build -t localhost/stdin:latest -",
        cairn_tests::cairn::binary().display()
    );
    let mut bcmd = c.tool("sh");
    bcmd.args(["-c", &format!("exec {cairn} < '{}'", bomb.display())]);
    let m = measure("gzip bomb", bcmd);
    assert_eq!(
        m.code, 0,
        "the gzip bomb context (a valid one) failed: {}",
        m.stderr
    );
    bounded.push(("gzip bomb", m.max_rss_kib, 0));
    // An endless stream that is not a tar: 1 GiB of text.
    let mut scmd = c.tool("sh");
    scmd.args([
        "-c",
        &format!("head -c 1073741824 /dev/zero | tr '\\0' x | exec {cairn}"),
    ]);
    let m = measure("endless stdin", scmd);
    assert_ne!(m.code, 0, "an endless stdin built");
    bounded.push(("endless stdin", m.max_rss_kib, 0));
    for (name, rss, _) in &bounded {
        assert!(
            *rss < 160 * 1024,
            "{name}: peak RSS {} MiB: the input is not bounded: {bounded:?}",
            rss / 1024
        );
    }
    c.assert_clean_after("unbounded inputs");
}

/// A gzipped tar: a Containerfile, a small file and `zeros` (1 GiB of zeros), readable by the
/// test user. Made of gzip members (a reader of gzip reads them as one stream, as GNU tar
/// does): the headers, 64 copies of one member of 16 MiB of zeros, the end of the archive.
fn gzip_bomb(c: &Cairn) -> PathBuf {
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        (
            "Containerfile",
            format!("FROM {IMAGE}\nCOPY small /small\n"),
        ),
        ("small", "small".to_owned()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, name, data.as_bytes()).unwrap();
    }
    let mut head = b.get_ref().clone();
    let mut h = tar::Header::new_ustar();
    h.set_path("zeros").unwrap();
    h.set_size(1 << 30);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    head.extend_from_slice(h.as_bytes());
    let zeros = gz(&vec![0u8; 16 << 20]);
    let mut out = gz(&head);
    for _ in 0..64 {
        out.extend_from_slice(&zeros);
    }
    out.extend_from_slice(&gz(&[0u8; 1024]));
    let path = c.scratch().join("bomb.tar.gz");
    fs::write(&path, out).unwrap();
    chown_to_user(c, &path);
    path
}

#[test]
fn unbounded_input_as_root() {
    unbounded(false);
}

#[test]
fn unbounded_input_rootless() {
    unbounded(true);
}
