//! Sources, tar streams and checksums over real temporary directories.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use super::*;

const HOST_SECRET: &str = "HOST-SECRET-5c1f";

/// A context directory `ctx` inside a temp dir, beside a `host/` directory
/// that stands for the host outside the context.
struct Fixture {
    t: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("ctx")).unwrap();
        fs::create_dir(t.path().join("host")).unwrap();
        fs::write(t.path().join("host/secret"), HOST_SECRET).unwrap();
        Fixture { t }
    }
    fn ctx(&self) -> std::path::PathBuf {
        self.t.path().join("ctx")
    }
    fn file(&self, rel: &str, content: &str) {
        let p = self.ctx().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    fn open(&self, ignore: &str) -> Context {
        Context::open(&self.ctx(), Ignore::parse(ignore).unwrap()).unwrap()
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// One tar entry, read back: (name, type char, mode, uid, gid, link, content).
type Got = (String, char, u32, u64, u64, String, String);

fn read_tar(bytes: &[u8]) -> Vec<Got> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut content = String::new();
        e.read_to_string(&mut content).unwrap();
        let t = match h.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Regular => '-',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Fifo => 'p',
            tar::EntryType::Char => 'c',
            _ => '?',
        };
        out.push((
            name,
            t,
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            link,
            content,
        ));
    }
    out
}

fn tar_of(ctx: &Context, patterns: &[&str], opts: &TarOptions) -> (Vec<u8>, TarStats) {
    let srcs = if opts.extract_archives {
        ctx.sources_for_add(&strings(patterns)).unwrap()
    } else {
        ctx.sources(&strings(patterns)).unwrap()
    };
    let mut out = Vec::new();
    let stats = tar_sources(ctx, &srcs, opts, &mut out).unwrap();
    (out, stats)
}

fn names(bytes: &[u8]) -> Vec<String> {
    read_tar(bytes).into_iter().map(|g| g.0).collect()
}

fn sum(ctx: &Context, patterns: &[&str], opts: &TarOptions) -> String {
    let srcs = ctx.sources(&strings(patterns)).unwrap();
    checksum(ctx, &srcs, opts).unwrap()
}

#[test]
fn glob_sources_in_name_order() {
    let f = Fixture::new();
    for p in [
        "b.txt",
        "a.txt",
        "c.md",
        "dir/x.txt",
        "dir/y.md",
        "dar/z.txt",
    ] {
        f.file(p, p);
    }
    let ctx = f.open("");
    let got = |pats: &[&str]| -> Vec<(String, SourceKind)> {
        ctx.sources(&strings(pats))
            .unwrap()
            .into_iter()
            .map(|s| (s.path, s.kind))
            .collect()
    };
    assert_eq!(
        got(&["*.txt"]),
        [
            ("a.txt".into(), SourceKind::File),
            ("b.txt".into(), SourceKind::File)
        ]
    );
    // Globs per path element: `*` does not cross `/`.
    assert_eq!(
        got(&["d?r/*.txt"]),
        [
            ("dar/z.txt".into(), SourceKind::File),
            ("dir/x.txt".into(), SourceKind::File)
        ]
    );
    assert_eq!(got(&["d[i]r"]), [("dir".into(), SourceKind::Dir)]);
    // `.` and `./` name the context root; order of patterns is kept.
    assert_eq!(
        got(&["c.md", "."]),
        [
            ("c.md".into(), SourceKind::File),
            (String::new(), SourceKind::Dir)
        ]
    );
    let err = ctx.sources(&strings(&["a[.txt"])).unwrap_err().to_string();
    assert!(
        err.contains("\"a[.txt\"") && err.contains("not closed"),
        "{err}"
    );
}

#[test]
fn missing_or_excluded_source_is_one_clear_line() {
    let f = Fixture::new();
    f.file("a.txt", "a");
    f.file("secret.txt", "s");
    let ctx = f.open("secret.txt");
    for pat in ["nope.txt", "*.nope", "secret.txt", "secr*"] {
        let err = ctx.sources(&strings(&[pat])).unwrap_err().to_string();
        assert!(
            err.contains(&format!("COPY source \"{pat}\" not found")),
            "{err}"
        );
        assert!(err.contains(&f.ctx().display().to_string()), "{err}");
        assert!(err.contains("excluded by"), "{err}");
        assert!(!err.contains('\n'));
    }
    // An excluded file is not in a glob's matches either.
    let s = ctx.sources(&strings(&["*.txt"])).unwrap();
    assert_eq!(
        s.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
        ["a.txt"]
    );
}

#[test]
fn sources_cannot_leave_the_context() {
    let f = Fixture::new();
    f.file("real.txt", "real");
    let host = f.t.path().join("host");
    // An absolute link to the host, a relative one climbing past the root.
    symlink(&host, f.ctx().join("evil")).unwrap();
    symlink("/etc", f.ctx().join("etc-link")).unwrap();
    symlink("../../..", f.ctx().join("up")).unwrap();
    symlink("../host/secret", f.ctx().join("rel-secret")).unwrap();
    symlink("/real.txt", f.ctx().join("abs-real")).unwrap();
    let ctx = f.open("");
    for pat in [
        "../host/secret",
        "../../../../../etc/passwd",
        "evil/secret",
        "etc-link/passwd",
        "rel-secret",
        "up/host/secret",
        "/host/secret",
    ] {
        let err = ctx.sources(&strings(&[pat])).unwrap_err().to_string();
        assert!(
            err.contains("not found") && err.contains(pat),
            "{pat}: {err}"
        );
    }
    let err = ctx
        .sources(&strings(&["../host/secret"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot leave it"), "{err}");
    // `up` climbs to the root and stays there: it is the context itself.
    let s = ctx.sources(&strings(&["up"])).unwrap();
    assert_eq!((s[0].path.as_str(), s[0].kind), ("", SourceKind::Dir));
    // An absolute target is context-relative; the link's name is kept.
    let s = ctx.sources(&strings(&["abs-real"])).unwrap();
    assert_eq!(
        (s[0].path.as_str(), s[0].name.as_str()),
        ("real.txt", "abs-real")
    );
    // A copy of the whole context stores the links as links and never
    // reads the host file.
    for pats in [&["up"][..], &["."], &["*"]] {
        let (bytes, _) = tar_of(&ctx, pats, &TarOptions::default());
        assert!(
            !String::from_utf8_lossy(&bytes).contains(HOST_SECRET),
            "{pats:?}"
        );
        let evil = read_tar(&bytes).into_iter().find(|g| g.0 == "evil");
        if let Some(g) = evil {
            assert_eq!((g.1, g.5.as_str()), ('l', host.to_str().unwrap()));
        }
    }
    // A decoy inside the context is what an escaping link finds.
    f.file("etc/passwd", "decoy");
    let (bytes, _) = tar_of(&ctx, &["etc-link/passwd"], &TarOptions::default());
    assert_eq!(read_tar(&bytes)[0].6, "decoy");
}

#[test]
fn symlink_loops_are_an_error() {
    let f = Fixture::new();
    symlink("b", f.ctx().join("a")).unwrap();
    symlink("a", f.ctx().join("b")).unwrap();
    let err = f
        .open("")
        .sources(&strings(&["a"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than 40 symlinks"), "{err}");
}

#[test]
fn dir_source_contributes_its_contents_with_ignore_rules_inside() {
    let f = Fixture::new();
    f.file("docs/a.md", "a");
    f.file("docs/keep.txt", "k");
    f.file("docs/sub/b.md", "b");
    f.file("src/main.rs", "m");
    f.file("README.md", "r");
    // `docs` excluded, `docs/keep.txt` re-included by the exception; `*.md`
    // only at the root.
    let ctx = f.open("docs\n!docs/keep.txt\n*.md");
    let (bytes, _) = tar_of(&ctx, &["docs"], &TarOptions::default());
    assert_eq!(names(&bytes), ["keep.txt"]);
    let (bytes, _) = tar_of(&ctx, &["."], &TarOptions::default());
    assert_eq!(
        names(&bytes),
        ["docs", "docs/keep.txt", "src", "src/main.rs"]
    );
    // A file source is one entry under its own name.
    let (bytes, _) = tar_of(&ctx, &["src/main.rs"], &TarOptions::default());
    assert_eq!(names(&bytes), ["main.rs"]);
}

#[test]
fn exclude_option_and_chmod() {
    let f = Fixture::new();
    f.file("d/a.txt", "a");
    f.file("d/b.md", "b");
    f.file("d/sub/c.txt", "c");
    let ctx = f.open("");
    let opts = TarOptions {
        exclude: strings(&["**/*.txt"]),
        chmod: Some(0o640),
        ..Default::default()
    };
    let (bytes, _) = tar_of(&ctx, &["d"], &opts);
    let got = read_tar(&bytes);
    // `sub` is left out: it is not excluded itself but... it is kept as a
    // directory (only its .txt is excluded), like BuildKit's copy.
    let summary: Vec<(&str, char, u32)> = got.iter().map(|g| (g.0.as_str(), g.1, g.2)).collect();
    assert_eq!(summary, [("b.md", '-', 0o640), ("sub", 'd', 0o640)]);
    // --exclude applies to a file source by its name.
    let (bytes, _) = tar_of(&ctx, &["d/a.txt", "d/b.md"], &opts);
    assert_eq!(names(&bytes), ["b.md"]);
}

#[test]
fn entries_keep_modes_owner_zero_links_and_fifos() {
    let f = Fixture::new();
    f.file("d/x", "x");
    fs::set_permissions(f.ctx().join("d/x"), fs::Permissions::from_mode(0o4751)).unwrap();
    fs::hard_link(f.ctx().join("d/x"), f.ctx().join("d/y")).unwrap();
    symlink("x", f.ctx().join("d/l")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        f.ctx().join("d/fifo").as_path(),
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(f.ctx().join("d/sock")).unwrap();
    let ctx = f.open("");
    let (bytes, stats) = tar_of(&ctx, &["d"], &TarOptions::default());
    let got = read_tar(&bytes);
    let summary: Vec<(&str, char, u32, u64, u64, &str)> = got
        .iter()
        .map(|g| (g.0.as_str(), g.1, g.2, g.3, g.4, g.5.as_str()))
        .collect();
    // As buildah's layer of the same COPY: FIFO kept, socket left out,
    // hard link as a tar link, owner 0. (buildah 1.28 strips the setuid
    // bit; BuildKit keeps it, and so do we.)
    assert_eq!(
        summary,
        [
            ("fifo", 'p', 0o644, 0, 0, ""),
            ("l", 'l', 0o777, 0, 0, "x"),
            ("x", '-', 0o4751, 0, 0, ""),
            ("y", 'h', 0o4751, 0, 0, "x"),
        ]
    );
    assert_eq!(
        stats,
        TarStats {
            entries: 4,
            bytes: 1
        }
    );
    // The mtime is the file's.
    let mut ar = tar::Archive::new(&bytes[..]);
    let mtime = ar
        .entries()
        .unwrap()
        .nth(2)
        .unwrap()
        .unwrap()
        .header()
        .mtime()
        .unwrap();
    let disk = fs::metadata(f.ctx().join("d/x")).unwrap();
    assert_eq!(mtime as i64, std::os::unix::fs::MetadataExt::mtime(&disk));
}

#[test]
fn tar_is_deterministic_and_checksum_tracks_content_not_mtime() {
    let f = Fixture::new();
    f.file("app/a.txt", "alpha");
    f.file("app/b/c.txt", "gamma");
    // Past tar's 100-byte name field: a GNU long name, read back whole.
    let long = format!("app/{}/{}.txt", "d".repeat(80), "f".repeat(60));
    f.file(&long, "long");
    let ctx = f.open("");
    let (bytes, _) = tar_of(&ctx, &["app"], &TarOptions::default());
    assert!(names(&bytes).contains(&long["app/".len()..].to_string()));
    let opts = TarOptions::default();
    let (one, _) = tar_of(&ctx, &["app"], &opts);
    let (two, _) = tar_of(&ctx, &["app"], &opts);
    assert_eq!(one, two);
    let base = sum(&ctx, &["app"], &opts);
    assert!(base.starts_with("sha256:") && base.len() == 71, "{base}");
    assert_eq!(base, sum(&ctx, &["app"], &opts));
    // mtime: tar changes, checksum does not.
    let t = fs::File::options()
        .write(true)
        .open(f.ctx().join("app/a.txt"))
        .unwrap();
    t.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000))
        .unwrap();
    assert_eq!(base, sum(&ctx, &["app"], &opts));
    assert_ne!(one, tar_of(&ctx, &["app"], &opts).0);
    // content
    f.file("app/a.txt", "alphA");
    let c1 = sum(&ctx, &["app"], &opts);
    assert_ne!(base, c1);
    // mode
    fs::set_permissions(f.ctx().join("app/a.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    let c2 = sum(&ctx, &["app"], &opts);
    assert_ne!(c1, c2);
    // --chmod changes it too.
    let c3 = sum(
        &ctx,
        &["app"],
        &TarOptions {
            chmod: Some(0o755),
            ..Default::default()
        },
    );
    assert_ne!(c2, c3);
    // name
    fs::rename(f.ctx().join("app/a.txt"), f.ctx().join("app/A.txt")).unwrap();
    assert_ne!(c2, sum(&ctx, &["app"], &opts));
}

/// A gzip tar with hostile names, built in memory.
fn hostile_tar_gz(outside: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &[u8], kind: tar::EntryType, link: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o640);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_size(data.len() as u64);
        // Raw names: the builder would refuse `..` itself.
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add(b"ok/file.txt", tar::EntryType::Regular, "", b"ok");
    add(b"../evil.txt", tar::EntryType::Regular, "", b"evil");
    add(b"/abs.txt", tar::EntryType::Regular, "", b"abs");
    add(
        b"lnk",
        tar::EntryType::Symlink,
        outside.to_str().unwrap(),
        b"",
    );
    add(b"lnk/pwned", tar::EntryType::Regular, "", b"pwned");
    add(b"hl", tar::EntryType::Link, "ok/file.txt", b"");
    let raw = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    gz.finish().unwrap()
}

#[test]
fn add_extracts_a_local_tar_gz_with_normalized_names() {
    let f = Fixture::new();
    let outside = f.t.path().join("host");
    fs::write(f.ctx().join("a.tar.gz"), hostile_tar_gz(&outside)).unwrap();
    f.file("plain.gz", "not a tar");
    let ctx = f.open("");
    let s = ctx
        .sources_for_add(&strings(&["a.tar.gz", "plain.gz"]))
        .unwrap();
    assert_eq!(
        (s[0].kind, s[1].kind),
        (SourceKind::Archive, SourceKind::File)
    );
    // COPY never reports archives.
    assert_eq!(
        ctx.sources(&strings(&["a.tar.gz"])).unwrap()[0].kind,
        SourceKind::File
    );
    let opts = TarOptions {
        extract_archives: true,
        ..Default::default()
    };
    let (bytes, _) = tar_of(&ctx, &["a.tar.gz"], &opts);
    let got = read_tar(&bytes);
    let summary: Vec<(&str, char, u64, &str)> = got
        .iter()
        .map(|g| (g.0.as_str(), g.1, g.3, g.5.as_str()))
        .collect();
    // `..` and `/` are folded under the destination (joined to "/" and
    // cleaned, as BuildKit); owners from the archive are kept; the link
    // target stays as written (the extractor runs chrooted in the container).
    assert_eq!(
        summary,
        [
            ("ok/file.txt", '-', 1000, ""),
            ("evil.txt", '-', 1000, ""),
            ("abs.txt", '-', 1000, ""),
            ("lnk", 'l', 1000, outside.to_str().unwrap()),
            ("lnk/pwned", '-', 1000, ""),
            ("hl", 'h', 1000, "ok/file.txt"),
        ]
    );
    // The checksum covers the archive's entries, not only its bytes.
    let srcs = ctx.sources_for_add(&strings(&["a.tar.gz"])).unwrap();
    assert_ne!(
        checksum(&ctx, &srcs, &opts).unwrap(),
        checksum(&ctx, &srcs, &TarOptions::default()).unwrap()
    );
}

#[test]
fn tar_context_lands_nothing_outside_scratch() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let scratch = t.path().join("scratch");
    fs::create_dir(&scratch).unwrap();
    let err = Context::from_tar(&hostile_tar_gz(&outside)[..], &scratch, true).unwrap_err();
    assert!(err.to_string().contains("\"../evil.txt\""), "{err}");
    assert!(!t.path().join("evil.txt").exists());

    // Without the `..` entry: the symlinked parent is refused.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "lnk", &outside).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o644);
    b.append_data(&mut h, "lnk/pwned", &b"pwned"[..]).unwrap();
    let scratch2 = t.path().join("scratch2");
    fs::create_dir(&scratch2).unwrap();
    let err = Context::from_tar(&b.into_inner().unwrap()[..], &scratch2, true).unwrap_err();
    assert!(
        err.to_string().contains("\"lnk/pwned\"") && err.to_string().contains("symlink"),
        "{err}"
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn tar_context_unpacks_and_applies_its_ignore_file() {
    let t = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("./.dockerignore", "**/*.log\n"),
        ("./app/main.rs", "fn main() {}"),
        ("./app/debug.log", "noise"),
        ("/top.log", "noise"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_000_000);
        // `append_data` refuses a leading `/`: write the name raw.
        let n = name.as_bytes();
        h.as_old_mut().name[..n.len()].copy_from_slice(n);
        h.set_cksum();
        b.append(&h, data.as_bytes()).unwrap();
    }
    let raw = b.into_inner().unwrap();
    let zst = zstd::encode_all(&raw[..], 1).unwrap();
    for (i, (stream, ignore)) in [(&raw, true), (&zst, true), (&raw, false)]
        .into_iter()
        .enumerate()
    {
        let scratch = t.path().join(format!("s{i}"));
        fs::create_dir(&scratch).unwrap();
        let ctx = Context::from_tar(&stream[..], &scratch, ignore).unwrap();
        assert_eq!(ctx.root(), scratch);
        let (bytes, _) = tar_of(&ctx, &["."], &TarOptions::default());
        let mut want = vec![".dockerignore", "app"];
        if !ignore {
            want.push("app/debug.log");
        }
        want.push("app/main.rs");
        if !ignore {
            want.push("top.log");
        }
        assert_eq!(names(&bytes), want, "stream {i}");
        let mtime = fs::metadata(scratch.join("app/main.rs")).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::mtime(&mtime), 1_000_000);
    }
}

#[test]
fn open_names_a_missing_context() {
    let t = tempfile::tempdir().unwrap();
    let err = Context::open(&t.path().join("nope"), Ignore::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nope") && err.contains("build context"),
        "{err}"
    );
}

/// The same tree and rules given to `buildah bud` (1.28, `FROM scratch`,
/// `COPY . /c/`): its layer held exactly these paths under `c/`, except
/// `barfoo`: buildah's older matcher compiles `**foo` to `(.*/)?foo`,
/// BuildKit's patternmatcher treats `**` + literal text as a suffix test
/// and excludes it. We follow patternmatcher.
#[test]
fn copy_of_the_context_matches_buildah_layer() {
    let f = Fixture::new();
    for p in [
        "README.md",
        "docs/a.md",
        "docs/keep.txt",
        "docs/sub/b.md",
        "app/x.log",
        "top.log",
        "node_modules/m/i.js",
        "src/node_modules/n.js",
        "barfoo",
        "foo/x",
        "keep.md",
    ] {
        f.file(p, p);
    }
    let rules = "*.md\ndocs\n!docs/keep.txt\n**/*.log\nnode_modules\n**foo\n!keep.md\n";
    f.file(".dockerignore", rules);
    let ctx = Context::open(&f.ctx(), Ignore::read_for(&f.ctx(), None).unwrap()).unwrap();
    let (bytes, _) = tar_of(&ctx, &["."], &TarOptions::default());
    assert_eq!(
        names(&bytes),
        [
            ".dockerignore",
            "app",
            "docs",
            "docs/keep.txt",
            "keep.md",
            "src",
            "src/node_modules",
            "src/node_modules/n.js",
        ]
    );
}

/// Archives made by GNU tar with each compression it has (and zstd by the
/// crate) are recognized and extracted; a compressed non-tar is a file.
#[test]
fn add_recognizes_every_compression_gnu_tar_writes() {
    let f = Fixture::new();
    let payload = f.t.path().join("payload");
    fs::create_dir_all(payload.join("sub")).unwrap();
    fs::write(payload.join("sub/f.txt"), "payload").unwrap();
    let mut names_in = Vec::new();
    for (flag, name) in [
        ("", "p.tar"),
        ("-z", "p.tgz"),
        ("-j", "p.tar.bz2"),
        ("-J", "p.tar.xz"),
    ] {
        let mut cmd = std::process::Command::new("tar");
        if !flag.is_empty() {
            cmd.arg(flag);
        }
        let st = cmd
            .args(["--owner=7", "--group=8", "-C"])
            .arg(&payload)
            .arg("-cf")
            .arg(f.ctx().join(name))
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success(), "tar {flag}");
        names_in.push(name);
    }
    let plain = fs::read(f.ctx().join("p.tar")).unwrap();
    fs::write(
        f.ctx().join("p.tar.zst"),
        zstd::encode_all(&plain[..], 3).unwrap(),
    )
    .unwrap();
    names_in.push("p.tar.zst");
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, b"just text, gzipped").unwrap();
        e.finish().unwrap()
    };
    fs::write(f.ctx().join("notes.txt.gz"), gz).unwrap();
    let ctx = f.open("");
    let s = ctx.sources_for_add(&strings(&["notes.txt.gz"])).unwrap();
    assert_eq!(s[0].kind, SourceKind::File);
    let opts = TarOptions {
        extract_archives: true,
        ..Default::default()
    };
    for name in names_in {
        let s = ctx.sources_for_add(&strings(&[name])).unwrap();
        assert_eq!(s[0].kind, SourceKind::Archive, "{name}");
        let (bytes, _) = tar_of(&ctx, &[name], &opts);
        let got: Vec<(String, char, u64, String)> = read_tar(&bytes)
            .into_iter()
            .map(|g| (g.0, g.1, g.3, g.6))
            .collect();
        assert_eq!(
            got,
            [
                ("sub".to_string(), 'd', 7, String::new()),
                ("sub/f.txt".to_string(), '-', 7, "payload".to_string()),
            ],
            "{name}"
        );
    }
}

/// An unreadable file is one line naming it and what to do; excluding it
/// lets the build go on. As root nothing is unreadable, so the check runs
/// in this test binary re-executed as `nobody` (setpriv).
#[test]
fn unreadable_file_is_one_clear_line() {
    const CHILD: &str = "CAIRN_TEST_UNREADABLE_CTX";
    if let Ok(dir) = std::env::var(CHILD) {
        let dir = Path::new(&dir);
        let ctx = Context::open(dir, Ignore::default()).unwrap();
        let srcs = ctx.sources(&strings(&["."])).unwrap();
        let err = checksum(&ctx, &srcs, &TarOptions::default()).unwrap_err();
        println!("ERR:{err}");
        let ctx = Context::open(dir, Ignore::parse("secret.txt").unwrap()).unwrap();
        let srcs = ctx.sources(&strings(&["."])).unwrap();
        checksum(&ctx, &srcs, &TarOptions::default()).unwrap();
        println!("EXCLUDED-OK");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = t.path().join("ctx");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("ok.txt"), "ok").unwrap();
    fs::write(dir.join("secret.txt"), "s").unwrap();
    fs::set_permissions(dir.join("secret.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut cmd = if rustix::process::getuid().is_root() {
        // A copy `nobody` can run wherever the build tree is.
        let bin = t.path().join("test-bin");
        fs::copy(&exe, &bin).unwrap();
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin);
        c
    } else {
        std::process::Command::new(exe)
    };
    let out = cmd
        .args([
            "--exact",
            "context::tests::unreadable_file_is_one_clear_line",
            "--nocapture",
        ])
        .env(CHILD, &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ERR:"))
        .unwrap_or_else(|| {
            panic!(
                "no error line: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(
        line,
        format!(
            "opening secret.txt in the build context {}: Permission denied (os error 13); \
             make it readable or exclude it in .containerignore",
            dir.display()
        )
    );
    assert!(stdout.contains("EXCLUDED-OK"), "{stdout}");
}

/// buildah 1.28 keeps a character device of the context in the layer
/// (`crw-r--r-- 0/0 1,3 d/null`); so do we, with its numbers. Creating
/// one needs root: unprivileged, the test checks that mknod is refused.
#[test]
fn char_devices_are_kept_like_buildah() {
    let f = Fixture::new();
    f.file("d/x", "x");
    let made = rustix::fs::mknodat(
        rustix::fs::CWD,
        f.ctx().join("d/null").as_path(),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o644),
        rustix::fs::makedev(1, 3),
    );
    if !rustix::process::getuid().is_root() {
        assert_eq!(made, Err(rustix::io::Errno::PERM));
        return;
    }
    made.unwrap();
    let ctx = f.open("");
    let (bytes, _) = tar_of(&ctx, &["d"], &TarOptions::default());
    let mut ar = tar::Archive::new(&bytes[..]);
    let e = ar.entries().unwrap().next().unwrap().unwrap();
    let h = e.header();
    assert_eq!(e.path().unwrap().to_str(), Some("null"));
    assert_eq!(h.entry_type(), tar::EntryType::Char);
    assert_eq!(
        (h.device_major().unwrap(), h.device_minor().unwrap()),
        (Some(1), Some(3))
    );
    assert_eq!((h.mode().unwrap(), h.uid().unwrap()), (0o644, 0));
}

/// A source swapped for a symlink to the host between `sources` and
/// `tar_sources`/`checksum` is refused, never followed.
#[test]
fn source_swapped_for_a_symlink_after_resolving_is_refused() {
    let f = Fixture::new();
    f.file("a.txt", "a");
    f.file("d/b.txt", "b");
    let ctx = f.open("");
    let srcs = ctx.sources(&strings(&["a.txt", "d"])).unwrap();
    let host = f.t.path().join("host");
    fs::remove_file(f.ctx().join("a.txt")).unwrap();
    symlink(host.join("secret"), f.ctx().join("a.txt")).unwrap();
    let mut out = Vec::new();
    let err = tar_sources(&ctx, &srcs, &TarOptions::default(), &mut out).unwrap_err();
    assert!(
        err.to_string().contains("a.txt") && err.to_string().contains("symlink"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out).contains(HOST_SECRET));
    // The directory source swapped too.
    fs::remove_file(f.ctx().join("a.txt")).unwrap();
    f.file("a.txt", "a");
    fs::rename(f.ctx().join("d"), f.ctx().join("d.old")).unwrap();
    symlink(&host, f.ctx().join("d")).unwrap();
    let err = checksum(&ctx, &srcs, &TarOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("opening d in the build context"),
        "{err}"
    );
}
