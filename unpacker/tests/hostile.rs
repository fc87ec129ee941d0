//! Hostile layers, built byte by byte: every case is decoded, planned and
//! materialized (hardlink and copy modes) into a target that sits in a
//! "jail" next to a sentinel tree the layers aim at. Whatever the layer
//! says, nothing outside the target may be created, changed or deleted
//! (the jail is snapshotted before and after), and the result inside is
//! exactly the expected tree, or the unpack fails with the expected kind of
//! error.
//!
//! Expected trees follow the documented semantics: names are normalized
//! lexically (`..` stops at the root, absolute names start at it), parent
//! paths through symlinks resolve inside the tree as a chroot would, and
//! symlink targets are kept verbatim and never followed.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use cairn_unpacker::{DecodeOptions, Error, Meta, Mode, ObjectStore, PlanError, Stats};
use common::*;

type Layers = Box<dyn Fn(&Jail) -> Vec<Vec<u8>>>;
type Check = Box<dyn Fn(&Jail, Mode, &Stats)>;

enum Expect {
    /// Success, and exactly this tree (tokens of [`listing`], `{J}`,
    /// `{JDIRS}`, `{JABS}` expanded).
    Tree(&'static str),
    /// Success; the check decides.
    Ok,
    /// Decoding a layer fails with this kind of error.
    Decode(&'static str, fn(&Error) -> bool),
    /// Planning fails with this kind of error.
    Plan(&'static str, fn(&PlanError) -> bool),
    /// Materializing fails (after which only the target may have changed).
    Materialize(&'static str, fn(&Error) -> bool),
}

struct Case {
    name: &'static str,
    layers: Layers,
    max: Option<u64>,
    diff_ids: Vec<Option<String>>,
    expect: Expect,
    check: Option<Check>,
}

fn case(name: &'static str, layers: impl Fn(&Jail) -> Vec<Vec<u8>> + 'static) -> Case {
    Case {
        name,
        layers: Box::new(layers),
        max: None,
        diff_ids: Vec::new(),
        expect: Expect::Ok,
        check: None,
    }
}

impl Case {
    fn tree(mut self, t: &'static str) -> Case {
        self.expect = Expect::Tree(t);
        self
    }
    fn decode_err(mut self, what: &'static str, f: fn(&Error) -> bool) -> Case {
        self.expect = Expect::Decode(what, f);
        self
    }
    fn plan_err(mut self, what: &'static str, f: fn(&PlanError) -> bool) -> Case {
        self.expect = Expect::Plan(what, f);
        self
    }
    fn materialize_err(mut self, what: &'static str, f: fn(&Error) -> bool) -> Case {
        self.expect = Expect::Materialize(what, f);
        self
    }
    fn max(mut self, n: u64) -> Case {
        self.max = Some(n);
        self
    }
    fn diff_ids(mut self, d: Vec<Option<String>>) -> Case {
        self.diff_ids = d;
        self
    }
    fn check(mut self, f: impl Fn(&Jail, Mode, &Stats) + 'static) -> Case {
        self.check = Some(Box::new(f));
        self
    }
}

fn corrupt(e: &Error) -> bool {
    matches!(root_cause(e), Error::Corrupt { .. })
}
fn too_large(e: &Error) -> bool {
    matches!(root_cause(e), Error::TooLarge { .. })
}
fn unsupported(e: &Error) -> bool {
    matches!(root_cause(e), Error::Unsupported { .. })
}
fn diff_id_mismatch(e: &Error) -> bool {
    matches!(root_cause(e), Error::DiffIdMismatch { .. })
}
fn corrupt_or_mismatch(e: &Error) -> bool {
    corrupt(e) || diff_id_mismatch(e)
}
fn io_error(e: &Error) -> bool {
    matches!(root_cause(e), Error::Io(_))
}
fn root_replaced(e: &PlanError) -> bool {
    matches!(e, PlanError::RootReplaced { .. })
}
fn dangling(e: &PlanError) -> bool {
    matches!(e, PlanError::DanglingHardlink { .. })
}
fn symlink_loop(e: &PlanError) -> bool {
    matches!(e, PlanError::Loop { .. })
}
fn not_a_dir(e: &PlanError) -> bool {
    matches!(e, PlanError::NotADirectory { .. })
}

/// One plain tar layer.
fn one(t: Tar) -> Vec<Vec<u8>> {
    vec![t.finish()]
}

/// An object already in the store before every case: `etc/a` of
/// [`small_tar`]. A failing layer holding it finds it present and must
/// leave it (`common::unpack` asserts a failed decode changes no object).
/// Its content is used nowhere a file's mtime is checked: in hardlink mode
/// a file gets the mtime of the object it shares.
fn seed(objects: &ObjectStore) {
    let meta = Meta {
        mode: 0o644,
        mtime: 1_600_000_000,
        ..Meta::default()
    };
    objects.put_bytes(b"alpha", &meta).unwrap();
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// Runs one case in one mode; `Err` describes what went wrong.
fn run_case(c: &Case, mode: Mode) -> Result<(), String> {
    let jail = Jail::new();
    let objects = ObjectStore::open(&jail.store(), ownership()).unwrap();
    seed(&objects);
    let layers = (c.layers)(&jail);
    let before = jail.snapshot();
    let mut opts = DecodeOptions::default();
    if let Some(m) = c.max {
        opts.max_layer_size = m;
    }
    let diff_ids: Vec<Option<cairn_store::Digest>> = c
        .diff_ids
        .iter()
        .map(|d| d.as_ref().map(|s| s.parse().unwrap()))
        .collect();
    let result = unpack(&layers, &diff_ids, &objects, &opts, &jail.target(), mode);
    let after = jail.snapshot();
    if before != after {
        let mut diff = Vec::new();
        for (k, v) in &before {
            match after.get(k) {
                None => diff.push(format!("  deleted {}: {v}", k.display())),
                Some(w) if w != v => {
                    diff.push(format!("  changed {}:\n    {v}\n    {w}", k.display()))
                }
                _ => {}
            }
        }
        for (k, v) in &after {
            if !before.contains_key(k) {
                diff.push(format!("  created {}: {v}", k.display()));
            }
        }
        return Err(format!(
            "OUTSIDE THE TARGET CHANGED ({result:?}):\n{}",
            diff.join("\n")
        ));
    }
    let shown = |r: &Result<Stats, Failure>| match r {
        Ok(_) => format!("Ok, tree {:?}", listing(&jail.target())),
        Err(Failure::Decode(i, e)) => format!("decode error in layer {i}: {e} ({e:?})"),
        Err(Failure::Plan(e)) => format!("plan error: {e} ({e:?})"),
        Err(Failure::Materialize(e)) => format!("materialize error: {e} ({e:?})"),
    };
    match (&c.expect, &result) {
        (Expect::Tree(t), Ok(_)) => {
            let want = tokens(&jail.expand(t));
            let got = listing(&jail.target());
            if want != got {
                return Err(format!("tree differs:\n  want {want:?}\n  got  {got:?}"));
            }
        }
        (Expect::Ok, Ok(_)) => {}
        (Expect::Decode(_, f), Err(Failure::Decode(_, e))) if f(e) => {
            if e.to_string().is_empty() {
                return Err("empty error message".into());
            }
        }
        (Expect::Plan(_, f), Err(Failure::Plan(e))) if f(e) => {}
        (Expect::Materialize(_, f), Err(Failure::Materialize(e))) if f(e) => {}
        (Expect::Tree(_) | Expect::Ok, r) => return Err(format!("want success, got {}", shown(r))),
        (Expect::Decode(w, _), r) => {
            return Err(format!("want decode error {w}, got {}", shown(r)))
        }
        (Expect::Plan(w, _), r) => return Err(format!("want plan error {w}, got {}", shown(r))),
        (Expect::Materialize(w, _), r) => {
            return Err(format!("want materialize error {w}, got {}", shown(r)))
        }
    }
    if let (Some(check), Ok(stats)) = (&c.check, &result) {
        catch_unwind(AssertUnwindSafe(|| check(&jail, mode, stats)))
            .map_err(|p| format!("check failed: {}", panic_message(&*p)))?;
    }
    Ok(())
}

/// Runs every case in both modes and reports every failure at once.
fn run_table(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in &cases {
        for mode in [Mode::Hardlink, Mode::Copy] {
            let r = catch_unwind(AssertUnwindSafe(|| run_case(c, mode)))
                .unwrap_or_else(|p| Err(format!("panicked: {}", panic_message(&*p))));
            if let Err(e) = r {
                failures.push(format!("[{}] ({mode:?}): {e}", c.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len() * 2,
        failures.join("\n")
    );
}

#[test]
fn traversal_in_names_is_rerooted_inside_the_target() {
    let dots = "../".repeat(40);
    run_table(vec![
        case("dotdot prefix", |_| {
            one(Tar::new().file("../../../sentinel/pwned", b"x"))
        })
        .tree("sentinel/ sentinel/pwned=x"),
        case("dotdot in the middle", |_| {
            one(Tar::new().file("a/b/../../../../pwned", b"x"))
        })
        .tree("pwned=x"),
        case("dotdot directory", |_| {
            one(Tar::new()
                .dir("../escape-dir")
                .file("../escape-dir/f", b"x"))
        })
        .tree("escape-dir/ escape-dir/f=x"),
        case("name that is only ..", |_| one(Tar::new().file("..", b"x")))
            .plan_err("root replaced", root_replaced),
        case("absolute name into the sentinel", |j| {
            one(Tar::new().file(format!("{}/sentinel/pwned", j.abs()), b"x"))
        })
        .tree("{JDIRS} {J}/sentinel/ {J}/sentinel/pwned=x"),
        case("absolute name over the sentinel's file", |j| {
            one(Tar::new().file(format!("{}/sentinel/secret", j.abs()), b"over"))
        })
        .tree("{JDIRS} {J}/sentinel/ {J}/sentinel/secret=over"),
        case(
            "absolute short name",
            |_| one(Tar::new().file("/abs", b"x")),
        )
        .tree("abs=x"),
        case("ustar prefix with dotdot", |_| {
            let mut h = Hdr::new(b"sentinel/prefixed", b'0');
            h.prefix = b"../../..".to_vec();
            one(Tar::new().file_hdr(h, b"x"))
        })
        .tree("sentinel/ sentinel/prefixed=x"),
        case("PAX path with dotdot", |_| {
            one(Tar::new()
                .pax(&[(b"path", b"../../sentinel/pax")])
                .file("harmless", b"x"))
        })
        .tree("sentinel/ sentinel/pax=x"),
        case("PAX path absolute", |j| {
            let p = format!("{}/sentinel/pax", j.abs());
            one(Tar::new()
                .pax(&[(b"path", p.as_bytes())])
                .file("harmless", b"x"))
        })
        .tree("{JDIRS} {J}/sentinel/ {J}/sentinel/pax=x"),
        case("PAX path with a NUL byte", |_| {
            one(Tar::new().pax(&[(b"path", b"a\0b")]).file("harmless", b"x"))
        })
        .decode_err("unsupported (NUL)", unsupported),
        case("GNU long name with dotdot", move |_| {
            let name = format!("{dots}sentinel/gnu");
            one(Tar::new()
                .gnu_long_name(name.as_bytes())
                .file("harmless", b"x"))
        })
        .tree("sentinel/ sentinel/gnu=x"),
        case("GNU long name absolute", |j| {
            let name = format!("{}/sentinel/{}/f", j.abs(), "d".repeat(100));
            one(Tar::new()
                .gnu_long_name(name.as_bytes())
                .file("harmless", b"x"))
        })
        .check(|j, _, _| {
            let p = j
                .target()
                .join(j.rel())
                .join("sentinel")
                .join("d".repeat(100))
                .join("f");
            assert_eq!(fs::read(&p).unwrap(), b"x", "{}", p.display());
        }),
        case("GNU long name with a NUL byte", |_| {
            one(Tar::new()
                .gnu_long_name(b"a\0/../../b")
                .file("harmless", b"x"))
        })
        .decode_err("unsupported (NUL)", unsupported),
        case("non-UTF-8 name kept byte for byte", |_| {
            one(Tar::new().file(b"caf\xe9", b"x"))
        })
        .check(|j, _, _| {
            assert_eq!(fs::read(j.target().join(os(b"caf\xe9"))).unwrap(), b"x");
        }),
        case("component longer than NAME_MAX", |_| {
            let name = "n".repeat(300);
            one(Tar::new()
                .pax(&[(b"path", name.as_bytes())])
                .file("harmless", b"x"))
        })
        .materialize_err("an I/O error naming the path", io_error),
    ]);
}

#[test]
#[allow(clippy::too_many_lines)] // A table: one row per layer.
fn symlinks_never_lead_outside() {
    run_table(vec![
        case("absolute symlink then a file through it, same layer", |j| {
            one(Tar::new()
                .symlink("out", format!("{}/sentinel", j.abs()))
                .file("out/pwned", b"x"))
        })
        .tree("out->{JABS}/sentinel {JDIRS} {J}/sentinel/ {J}/sentinel/pwned=x"),
        case("relative escaping symlink then a file through it", |_| {
            one(Tar::new()
                .symlink("out", "../sentinel")
                .file("out/pwned", b"x"))
        })
        .tree("out->../sentinel sentinel/ sentinel/pwned=x"),
        case("deep relative escaping symlink", |_| {
            one(Tar::new()
                .dir("a")
                .dir("a/b")
                .symlink("a/b/out", "../../../../../../sentinel")
                .file("a/b/out/pwned", b"x"))
        })
        .tree("a/ a/b/ a/b/out->../../../../../../sentinel sentinel/ sentinel/pwned=x"),
        case("chain of symlinks ending outside", |j| {
            one(Tar::new()
                .symlink("a", "b")
                .symlink("b", "../c")
                .symlink("c", format!("{}/sentinel", j.abs()))
                .file("a/pwned", b"x"))
        })
        .tree("a->b b->../c c->{JABS}/sentinel {JDIRS} {J}/sentinel/ {J}/sentinel/pwned=x"),
        case("symlink loop", |_| {
            one(Tar::new()
                .symlink("a", "b")
                .symlink("b", "a")
                .file("a/pwned", b"x"))
        })
        .plan_err("symlink loop", symlink_loop),
        case("self loop", |_| {
            one(Tar::new().symlink("a", "a").dir("a/x"))
        })
        .plan_err("symlink loop", symlink_loop),
        case("later layer writes through an escaping symlink", |_| {
            vec![
                Tar::new().symlink("out", "../sentinel").finish(),
                Tar::new()
                    .file("out/pwned", b"x")
                    .dir("out/newdir")
                    .symlink("out/newlink", "/etc")
                    .finish(),
            ]
        })
        .tree(
            "out->../sentinel sentinel/ sentinel/newdir/ sentinel/newlink->/etc sentinel/pwned=x",
        ),
        case("later layer writes through an absolute symlink", |j| {
            vec![
                Tar::new()
                    .symlink("out", format!("{}/sentinel", j.abs()))
                    .finish(),
                Tar::new().file("out/secret", b"over").finish(),
            ]
        })
        .tree("out->{JABS}/sentinel {JDIRS} {J}/sentinel/ {J}/sentinel/secret=over"),
        case("symlink to .. used repeatedly", |_| {
            one(Tar::new().symlink("up", "..").file("up/up/up/pwned", b"x"))
        })
        .tree("up->.. pwned=x"),
        case("file over a symlink to a file outside, later layer", |j| {
            vec![
                Tar::new()
                    .symlink("secret", format!("{}/sentinel/secret", j.abs()))
                    .finish(),
                Tar::new().file("secret", b"over").finish(),
            ]
        })
        .tree("secret=over"),
        case("file over a symlink, same layer", |_| {
            one(Tar::new()
                .symlink("l", "../sentinel/secret")
                .file("l", b"over"))
        })
        .tree("l=over"),
        case("directory over a symlink, later layer", |_| {
            vec![
                Tar::new().symlink("l", "../sentinel").finish(),
                Tar::new().dir("l").file("l/f", b"x").finish(),
            ]
        })
        .tree("l/ l/f=x"),
        case("directory over a symlink, same layer", |j| {
            one(Tar::new()
                .symlink("l", format!("{}/sentinel", j.abs()))
                .dir("l")
                .file("l/f", b"x"))
        })
        .tree("l/ l/f=x"),
        case(
            "directory replaced by an escaping symlink, then written through",
            |_| {
                vec![
                    Tar::new().dir("d").file("d/x", b"x").finish(),
                    Tar::new().symlink("d", "../sentinel").finish(),
                    Tar::new().file("d/pwned", b"y").finish(),
                ]
            },
        )
        .tree("d->../sentinel sentinel/ sentinel/pwned=y"),
        case("dangling escaping symlink kept verbatim", |_| {
            one(Tar::new().symlink("escape", "../../../../../../../../etc/passwd"))
        })
        .tree("escape->../../../../../../../../etc/passwd"),
        case("PAX linkpath escaping, then written through", |_| {
            one(Tar::new()
                .pax(&[(b"linkpath", b"../../../sentinel")])
                .symlink("lnk", "harmless")
                .file("lnk/pwned", b"x"))
        })
        .tree("lnk->../../../sentinel sentinel/ sentinel/pwned=x"),
        case("GNU long link target kept verbatim", |_| {
            let target = format!("{}sentinel/{}", "../".repeat(40), "t".repeat(50));
            one(Tar::new()
                .gnu_long_link(target.as_bytes())
                .symlink("lnk", "harmless"))
        })
        .check(|j, _, _| {
            let want = format!("{}sentinel/{}", "../".repeat(40), "t".repeat(50));
            let got = fs::read_link(j.target().join("lnk")).unwrap();
            assert_eq!(got.to_str().unwrap(), want);
        }),
        case("hardlink to a symlink that points outside", |j| {
            one(Tar::new()
                .symlink("s", format!("{}/sentinel/secret", j.abs()))
                .hardlink("h", "s"))
        })
        .tree("h->{JABS}/sentinel/secret s->{JABS}/sentinel/secret"),
    ]);
}

#[test]
fn hardlinks_never_reach_outside() {
    let dots = "../".repeat(40);
    run_table(vec![
        case("hardlink to ../sentinel/secret", |_| {
            one(Tar::new().hardlink("h", "../sentinel/secret"))
        })
        .plan_err("dangling hardlink", dangling),
        case("hardlink to the sentinel, absolute", |j| {
            one(Tar::new().hardlink("h", format!("{}/sentinel/secret", j.abs())))
        })
        .plan_err("dangling hardlink", dangling),
        case(
            "hardlink through a symlinked parent pointing outside",
            |_| {
                vec![
                    Tar::new().symlink("s", "../sentinel").finish(),
                    Tar::new().hardlink("h", "s/secret").finish(),
                ]
            },
        )
        .plan_err("dangling hardlink", dangling),
        case("hardlink through an absolute symlinked parent", |j| {
            one(Tar::new()
                .symlink("s", format!("{}/sentinel", j.abs()))
                .hardlink("h", "s/secret"))
        })
        .plan_err("dangling hardlink", dangling),
        case(
            "hardlink through a symlinked parent resolves inside",
            |_| {
                vec![
                    Tar::new()
                        .dir("sentinel")
                        .file("sentinel/secret", b"inside")
                        .symlink("s", "../../sentinel")
                        .finish(),
                    Tar::new().hardlink("h", "s/secret").finish(),
                ]
            },
        )
        .tree("h=inside s->../../sentinel sentinel/ sentinel/secret=inside")
        .check(|j, _, _| {
            let t = j.target();
            assert_eq!(ino_of(&t.join("h")), ino_of(&t.join("sentinel/secret")));
        }),
        case("hardlink placed through a symlinked parent", |j| {
            vec![
                Tar::new()
                    .file("f", b"x")
                    .symlink("s", format!("{}/sentinel", j.abs()))
                    .finish(),
                Tar::new().hardlink("s/h", "f").finish(),
            ]
        })
        .tree("f=x s->{JABS}/sentinel {JDIRS} {J}/sentinel/ {J}/sentinel/h=x"),
        // A hardlink to a symlink is a name of the link itself (as umoci
        // and `linkat` without AT_SYMLINK_FOLLOW make it), never a link to
        // what it points at, in its layer and across layers.
        case("hardlink to a symlink pointing outside", |j| {
            vec![
                Tar::new()
                    .symlink("s", format!("{}/sentinel/secret", j.abs()))
                    .hardlink("h", "s")
                    .finish(),
                Tar::new().dir("d").hardlink("d/h2", "h").finish(),
            ]
        })
        .tree("d/ d/h2->{JABS}/sentinel/secret h->{JABS}/sentinel/secret s->{JABS}/sentinel/secret")
        .check(|j, _, stats| {
            let t = j.target();
            let s = fs::symlink_metadata(t.join("s")).unwrap();
            assert!(s.file_type().is_symlink());
            assert_eq!(s.nlink(), 3, "one symlink inode, three names");
            assert_eq!(ino_of(&t.join("h")), s.ino());
            assert_eq!(ino_of(&t.join("d/h2")), s.ino());
            assert_eq!(stats.symlinks, 3);
        }),
        case("hardlink to a directory", |_| {
            one(Tar::new().dir("d").hardlink("h", "d"))
        })
        .plan_err("dangling hardlink", dangling),
        case("hardlink to itself", |_| one(Tar::new().hardlink("h", "h")))
            .plan_err("dangling hardlink", dangling),
        case("hardlink by GNU long link escaping", move |_| {
            let target = format!("{dots}sentinel/secret");
            one(Tar::new()
                .gnu_long_link(target.as_bytes())
                .hardlink("h", "harmless"))
        })
        .plan_err("dangling hardlink", dangling),
        case("hardlink by PAX linkpath, absolute", |j| {
            let target = format!("{}/sentinel/secret", j.abs());
            one(Tar::new()
                .pax(&[(b"linkpath", target.as_bytes())])
                .hardlink("h", "harmless"))
        })
        .plan_err("dangling hardlink", dangling),
    ]);
}

#[test]
fn hostile_whiteouts_stay_inside() {
    run_table(vec![
        case(".wh.. is refused", |_| {
            one(Tar::new().dir("a").whiteout("a/.wh.."))
        })
        .decode_err("unsupported whiteout", unsupported),
        case(".wh... is refused", |_| {
            one(Tar::new().dir("a").whiteout("a/.wh..."))
        })
        .decode_err("unsupported whiteout", unsupported),
        case(".wh. is refused", |_| one(Tar::new().whiteout(".wh.")))
            .decode_err("unsupported whiteout", unsupported),
        case("whiteout with dotdot in its path", |_| {
            vec![
                Tar::new()
                    .dir("sentinel")
                    .file("sentinel/secret", b"inside")
                    .finish(),
                Tar::new().whiteout("../../.wh.sentinel").finish(),
            ]
        })
        .tree(""),
        case("whiteout through a symlink pointing outside", |_| {
            vec![
                Tar::new().symlink("s", "../sentinel").finish(),
                Tar::new().whiteout("s/.wh.secret").finish(),
            ]
        })
        .tree("s->../sentinel"),
        case("whiteout through an absolute symlink", |j| {
            vec![
                Tar::new()
                    .symlink("s", format!("{}/sentinel", j.abs()))
                    .finish(),
                Tar::new()
                    .whiteout("s/.wh.secret")
                    .whiteout("s/.wh.sub")
                    .finish(),
            ]
        })
        .tree("s->{JABS}/sentinel"),
        case("whiteout through a symlink inside the tree", |_| {
            vec![
                Tar::new()
                    .dir("real")
                    .file("real/f", b"f")
                    .file("real/g", b"g")
                    .symlink("s", "/real")
                    .finish(),
                Tar::new().whiteout("s/.wh.f").finish(),
            ]
        })
        .tree("real/ real/g=g s->/real"),
        case("opaque marker through a symlink pointing outside", |_| {
            vec![
                Tar::new().symlink("s", "../sentinel").finish(),
                Tar::new().whiteout("s/.wh..wh..opq").finish(),
            ]
        })
        .tree("s->../sentinel"),
        case(
            "whiteout of a symlink removes the link, not its target",
            |_| {
                vec![
                    Tar::new()
                        .dir("t")
                        .file("t/f", b"x")
                        .symlink("s", "t")
                        .finish(),
                    Tar::new().whiteout(".wh.s").finish(),
                ]
            },
        )
        .tree("t/ t/f=x"),
        case("whiteout carried by a symlink entry", |j| {
            vec![
                Tar::new().file("x", b"x").finish(),
                Tar::new()
                    .symlink(".wh.x", format!("{}/sentinel", j.abs()))
                    .finish(),
            ]
        })
        .tree(""),
        case("whiteout of a lower directory removes its subtree", |_| {
            vec![
                Tar::new()
                    .dir("d")
                    .file("d/a", b"a")
                    .dir("d/sub")
                    .file("d/sub/b", b"b")
                    .file("keep", b"k")
                    .finish(),
                Tar::new().whiteout(".wh.d").finish(),
            ]
        })
        .tree("keep=k"),
        case("opaque marker at the root", |_| {
            vec![
                Tar::new()
                    .dir("d")
                    .file("d/a", b"a")
                    .file("f", b"f")
                    .finish(),
                Tar::new()
                    .whiteout(".wh..wh..opq")
                    .file("new", b"n")
                    .finish(),
            ]
        })
        .tree("new=n"),
    ]);
}

#[test]
fn the_root_cannot_be_replaced() {
    run_table(vec![
        case("root replaced by a symlink", |j| {
            one(Tar::new().symlink("./", format!("{}/sentinel", j.abs())))
        })
        .plan_err("root replaced", root_replaced),
        case("root replaced by a symlink named .", |_| {
            one(Tar::new().symlink(".", ".."))
        })
        .plan_err("root replaced", root_replaced),
        case("root replaced by a symlink named a/..", |_| {
            one(Tar::new().dir("a").symlink("a/..", "/"))
        })
        .plan_err("root replaced", root_replaced),
        case("root replaced by a file", |_| {
            one(Tar::new().file("./", b"x"))
        })
        .plan_err("root replaced", root_replaced),
        case("root replaced by a hardlink", |_| {
            one(Tar::new().file("a", b"x").hardlink(".", "a"))
        })
        .plan_err("root replaced", root_replaced),
        case("root replaced by a symlink in a later layer", |j| {
            vec![
                Tar::new().file("a", b"x").finish(),
                Tar::new()
                    .symlink(".", format!("{}/sentinel", j.abs()))
                    .finish(),
            ]
        })
        .plan_err("root replaced", root_replaced),
        case("root directory entry sets the root's metadata", |_| {
            let mut h = Hdr::new(b"./", b'5');
            h.mode = 0o750;
            h.mtime = 1_000_000_005;
            one(Tar::new().entry(&h, &[]).file("a", b"x"))
        })
        .tree("a=x")
        .check(|j, _, _| {
            let m = fs::metadata(j.target()).unwrap();
            assert_eq!(m.mode() & 0o7777, 0o750);
            assert_eq!(m.mtime(), 1_000_000_005);
        }),
    ]);
}

#[test]
fn devices_and_fifos() {
    run_table(vec![
        case("device nodes", |_| {
            one(Tar::new()
                .dir("dev")
                .device("dev/mem", false, 1, 1)
                .device("dev/sda", true, 8, 0))
        })
        .check(|j, _, stats| {
            let t = j.target();
            if is_root() {
                assert_eq!(
                    listing(&t),
                    tokens("dev/ dev/mem!c1:1 dev/sda!b8:0"),
                    "devices created with their numbers"
                );
                assert_eq!(mode_of(&t.join("dev/mem")), 0o640);
                assert!(stats.skipped_devices.is_empty());
            } else {
                assert_eq!(listing(&t), tokens("dev/"));
                assert_eq!(stats.skipped_devices.len(), 2);
            }
        }),
        case("fifo", |_| one(Tar::new().fifo("run/ctl", 0o620)))
            .tree("run/ run/ctl|")
            .check(|j, _, _| assert_eq!(mode_of(&j.target().join("run/ctl")), 0o620)),
        case("a device over an escaping symlink", |j| {
            vec![
                Tar::new()
                    .symlink("null", format!("{}/sentinel/secret", j.abs()))
                    .finish(),
                Tar::new().fifo("null", 0o644).finish(),
            ]
        })
        .tree("null|"),
    ]);
}

fn small_tar() -> Vec<u8> {
    Tar::new()
        .dir("etc")
        .file("etc/a", b"alpha")
        .file("etc/b", b"bravo")
        .finish()
}

fn big_file_tar(size: usize) -> Vec<u8> {
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    Tar::new().file("big", &content).finish()
}

/// Flips one bit at `at` (negative: from the end).
fn flip(mut data: Vec<u8>, at: isize) -> Vec<u8> {
    let i = if at < 0 {
        (data.len() as isize + at) as usize
    } else {
        at as usize
    };
    data[i] ^= 0x10;
    data
}

fn cut(mut data: Vec<u8>, len: usize) -> Vec<u8> {
    data.truncate(len);
    data
}

#[test]
fn corrupt_and_truncated_layers_are_refused() {
    run_table(vec![
        case("bad checksum in the first header", |_| {
            vec![flip(small_tar(), 3)]
        })
        .decode_err("corrupt", corrupt),
        case("bad checksum in a later header", |_| {
            // Blocks: etc/, etc/a, its data, etc/b (header 3), its data.
            vec![flip(small_tar(), 3 * 512 + 2)]
        })
        .decode_err("corrupt", corrupt),
        case(
            "a failing layer removes what it stored, keeps what it found",
            |_| {
                // etc/a is in the store already; big (streamed) and new (queued
                // to the writers) are stored, then the last header is corrupt.
                let t = Tar::new()
                    .file("etc/a", b"alpha")
                    .file("big", &vec![3u8; 5 << 20])
                    .file("new", b"new content")
                    .file("last", b"last")
                    .finish();
                let last_header = t.len() - 2 * 512 - 2 * 512;
                vec![flip(t, last_header as isize + 1)]
            },
        )
        .decode_err("corrupt", corrupt),
        case("invalid octal in a size field", |_| {
            let mut t = small_tar();
            t[512 + 124] = b'9';
            set_checksum(&mut t[512..1024]);
            vec![t]
        })
        .decode_err("corrupt", corrupt),
        case("truncated inside a small file's content", |_| {
            let t = Tar::new().file("f", &[7u8; 3000]).finish();
            vec![cut(t, 512 + 1000)]
        })
        .decode_err("corrupt", corrupt),
        case("truncated inside a 300 KiB file", |_| {
            vec![cut(big_file_tar(300 << 10), 200 << 10)]
        })
        .decode_err("corrupt", corrupt),
        case("truncated inside a 5 MiB file", |_| {
            vec![cut(big_file_tar(5 << 20), 3 << 20)]
        })
        .decode_err("corrupt", corrupt),
        case("truncated inside a header", |_| {
            vec![cut(small_tar(), 512 + 300)]
        })
        .decode_err("corrupt", corrupt),
        case("extension header with no entry after it", |_| {
            vec![Tar::new().file("a", b"x").pax(&[(b"path", b"b")]).finish()]
        })
        .decode_err("corrupt", corrupt),
        case("PAX size far beyond the data", |_| {
            vec![Tar::new()
                .pax(&[(b"size", b"1099511627776")])
                .file("f", b"x")
                .finish()]
        })
        .decode_err("corrupt", corrupt),
        case("truncated gzip", |_| {
            let gz = gzip(&big_file_tar(1 << 20));
            let n = gz.len() / 2;
            vec![cut(gz, n)]
        })
        .decode_err("corrupt", corrupt),
        case("gzip without its trailer", |_| {
            let gz = gzip(&small_tar());
            let n = gz.len() - 8;
            vec![cut(gz, n)]
        })
        .decode_err("corrupt", corrupt),
        case("gzip with a wrong CRC", |_| {
            vec![flip(gzip(&small_tar()), -6)]
        })
        .decode_err("corrupt", corrupt),
        case("gzip with a corrupt deflate stream", |_| {
            let gz = gzip(&big_file_tar(1 << 20));
            let n = gz.len() / 2;
            vec![flip(gz, n as isize)]
        })
        .decode_err("corrupt", corrupt),
        case("gzip header only", |_| vec![cut(gzip(&small_tar()), 10)])
            .decode_err("corrupt", corrupt),
        case("truncated zstd", |_| {
            let z = zstd(&big_file_tar(1 << 20));
            let n = z.len() / 2;
            vec![cut(z, n)]
        })
        .decode_err("corrupt", corrupt),
        case("zstd magic only", |_| vec![cut(zstd(&small_tar()), 6)])
            .decode_err("corrupt", corrupt),
        case("corrupt checksummed zstd", |_| {
            let z = zstd_checksummed(&small_tar());
            let n = z.len() / 2;
            vec![flip(z, n as isize)]
        })
        .decode_err("corrupt", corrupt),
        case("corrupt zstd with the right diff id", |_| {
            let z = zstd(&small_tar());
            let n = z.len() / 2;
            vec![flip(z, n as isize)]
        })
        .diff_ids(vec![Some(sha256_digest(&small_tar()))])
        .decode_err("corrupt or diff id mismatch", corrupt_or_mismatch),
    ]);
}

#[test]
fn decompression_bombs_are_refused() {
    const MIB: u64 = 1 << 20;
    run_table(vec![
        case("gzip of zeros past the end of the archive", |_| {
            let mut t = Tar::new().file("a", b"x").finish();
            t.resize(64 << 20, 0);
            vec![gzip(&t)]
        })
        .max(MIB)
        .decode_err("too large", too_large),
        case("gzip of only zeros", |_| vec![gzip(&vec![0u8; 64 << 20])])
            .max(MIB)
            .decode_err("too large", too_large),
        case("gzip of one 64 MiB file of zeros", |_| {
            vec![gzip(&Tar::new().file("z", &vec![0u8; 64 << 20]).finish())]
        })
        .max(MIB)
        .decode_err("too large", too_large),
        case("gzip of one 2 MiB file (in-memory path)", |_| {
            vec![gzip(&Tar::new().file("z", &vec![0u8; 2 << 20]).finish())]
        })
        .max(MIB)
        .decode_err("too large", too_large),
        case("gzip of many small files", |_| {
            let mut t = Tar::new();
            for i in 0..4000 {
                t = t.file(format!("f{i}"), &[0u8; 600]);
            }
            vec![gzip(&t.finish())]
        })
        .max(MIB)
        .decode_err("too large", too_large),
        case("zstd of one 64 MiB file of zeros", |_| {
            vec![zstd(&Tar::new().file("z", &vec![0u8; 64 << 20]).finish())]
        })
        .max(MIB)
        .decode_err("too large", too_large),
        case("GNU sparse file expanding to 64 MiB", |_| {
            // 1.5 KiB of archive that expands to a 64 MiB file: the hole is
            // not in the stream, but it is written out.
            vec![gzip(
                &Tar::new()
                    .gnu_sparse(b"sparse", 64 << 20, &[((64 << 20) - 512, &[1u8; 512])])
                    .finish(),
            )]
        })
        .max(MIB)
        .decode_err("too large", too_large),
        case(
            "GNU sparse files each under the limit, over it together",
            |_| {
                let mut t = Tar::new();
                for i in 0..4 {
                    let name = format!("sparse{i}");
                    t = t.gnu_sparse(
                        name.as_bytes(),
                        300 << 10,
                        &[((300 << 10) - 512, &[1u8; 512])],
                    );
                }
                vec![gzip(&t.finish())]
            },
        )
        .max(MIB)
        .decode_err("too large", too_large),
        case("a layer just under the limit is fine", |_| {
            vec![gzip(&Tar::new().file("z", &vec![0u8; 500 << 10]).finish())]
        })
        .max(MIB)
        .tree("z=#512000"),
    ]);
}

#[test]
fn diff_ids_are_checked() {
    let layer = small_tar();
    let right = sha256_digest(&layer);
    let wrong = sha256_digest(b"something else");
    let (l1, l2, l3) = (layer.clone(), layer.clone(), layer);
    run_table(vec![
        case("wrong diff id (plain)", move |_| vec![l1.clone()])
            .diff_ids(vec![Some(wrong.clone())])
            .decode_err("diff id mismatch", diff_id_mismatch),
        case("wrong diff id (gzip)", move |_| vec![gzip(&l2)])
            .diff_ids(vec![Some(sha256_digest(b"x"))])
            .decode_err("diff id mismatch", diff_id_mismatch),
        case("right diff id (zstd)", move |_| vec![zstd(&l3)])
            .diff_ids(vec![Some(right.clone())])
            .tree("etc/ etc/a=alpha etc/b=bravo"),
    ]);
}

/// Content with a recognizable pattern per chunk.
fn chunk(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| tag.wrapping_add((i % 7) as u8)).collect()
}

/// The expanded content of a sparse file.
fn expand(real: u64, chunks: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0u8; real as usize];
    for (off, d) in chunks {
        out[*off as usize..*off as usize + d.len()].copy_from_slice(d);
    }
    out
}

#[test]
#[allow(clippy::too_many_lines)] // A table: one row per layer.
fn tar_formats() {
    let sparse2: Vec<(u64, Vec<u8>)> = vec![(0, chunk(b'a', 512)), (8192, chunk(b'b', 100))];
    let sparse6: Vec<(u64, Vec<u8>)> = (0..6u64)
        .map(|i| (i * 4096 + 1024, chunk(b'c' + i as u8, 512)))
        .collect();
    let (s2a, s2b) = (sparse2.clone(), sparse2);
    let (s6a, s6b) = (sparse6.clone(), sparse6);
    run_table(vec![
        case("PAX sparse 1.0 is refused", |_| {
            one(Tar::new()
                .pax(&[
                    (b"GNU.sparse.major", b"1"),
                    (b"GNU.sparse.minor", b"0"),
                    (b"GNU.sparse.name", b"sparse"),
                    (b"GNU.sparse.realsize", b"8192"),
                ])
                .file("GNUSparseFile.0/sparse", b"1\n0\n5\n"))
        })
        .decode_err("unsupported (PAX sparse)", unsupported),
        case("PAX sparse 0.1 is refused", |_| {
            one(Tar::new()
                .pax(&[
                    (b"GNU.sparse.size", b"8192"),
                    (b"GNU.sparse.numblocks", b"1"),
                    (b"GNU.sparse.map", b"0,5"),
                ])
                .file("sparse", b"hello"))
        })
        .decode_err("unsupported (PAX sparse)", unsupported),
        case("GNU sparse with a hole", move |_| {
            let c: Vec<(u64, &[u8])> = s2a.iter().map(|(o, d)| (*o, &d[..])).collect();
            one(Tar::new()
                .gnu_sparse(b"sparse", 8192 + 100, &c)
                .file("after", b"ok"))
        })
        .check(move |j, _, _| {
            let got = fs::read(j.target().join("sparse")).unwrap();
            assert!(got == expand(8192 + 100, &s2b), "sparse content differs");
            assert_eq!(fs::read(j.target().join("after")).unwrap(), b"ok");
        }),
        case(
            "GNU sparse with extension blocks and a trailing hole",
            move |_| {
                let mut c: Vec<(u64, &[u8])> = s6a.iter().map(|(o, d)| (*o, &d[..])).collect();
                c.push((40960, &[]));
                one(Tar::new()
                    .gnu_sparse(b"sparse", 40960, &c)
                    .file("after", b"ok"))
            },
        )
        .check(move |j, _, _| {
            let got = fs::read(j.target().join("sparse")).unwrap();
            assert_eq!(got.len(), 40960);
            assert!(got == expand(40960, &s6b), "sparse content differs");
            assert_eq!(fs::read(j.target().join("after")).unwrap(), b"ok");
        }),
        case("PAX global header is ignored", |_| {
            one(Tar::new()
                .global(&[
                    (b"path", b"../../sentinel/global"),
                    (b"mtime", b"1"),
                    (b"uid", b"4242"),
                ])
                .file("a", b"x"))
        })
        .tree("a=x")
        .check(|j, _, _| {
            let m = fs::metadata(j.target().join("a")).unwrap();
            assert_eq!(m.mtime(), 1_600_000_000, "global mtime not applied");
            if is_root() {
                assert_eq!(m.uid(), 0, "global uid not applied");
            }
        }),
        case("PAX local header applies to one entry only", |_| {
            one(Tar::new()
                .pax(&[(b"path", b"renamed"), (b"mtime", b"1500000000.75")])
                .file("a", b"x")
                .file("b", b"y"))
        })
        .tree("renamed=x b=y")
        .check(|j, _, _| {
            let t = j.target();
            assert_eq!(
                fs::metadata(t.join("renamed")).unwrap().mtime(),
                1_500_000_000
            );
            assert_eq!(fs::metadata(t.join("b")).unwrap().mtime(), 1_600_000_000);
        }),
        case("duplicate entries: the last wins", |_| {
            one(Tar::new()
                .file("a", b"1")
                .file("a", b"2")
                .file("a", b"3")
                .dir_mode("d", 0o700)
                .dir_mode("d", 0o751)
                .file("x", b"file")
                .dir("x")
                .file("x/in", b"in"))
        })
        .tree("a=3 d/ x/ x/in=in")
        .check(|j, _, _| assert_eq!(mode_of(&j.target().join("d")), 0o751)),
        case("entry and its whiteout in the same layer", |_| {
            vec![
                Tar::new().file("a", b"1").file("b", b"1").finish(),
                Tar::new()
                    .whiteout(".wh.a")
                    .file("a", b"2")
                    .file("b", b"2")
                    .whiteout(".wh.b")
                    .finish(),
            ]
        })
        .tree("a=2 b=2"),
        case("opaque marker anywhere in the layer", |_| {
            vec![
                Tar::new()
                    .dir("d")
                    .file("d/old", b"old")
                    .dir("d/olddir")
                    .file("d/olddir/x", b"x")
                    .dir("e")
                    .file("e/old", b"old")
                    .finish(),
                Tar::new()
                    .dir("d")
                    .file("d/new", b"new")
                    .file("other", b"o")
                    .whiteout("d/.wh..wh..opq")
                    .whiteout("e/.wh..wh..opq")
                    .dir("e")
                    .file("e/new", b"new")
                    .finish(),
            ]
        })
        .tree("d/ d/new=new e/ e/new=new other=o"),
        case("file to dir, dir to file, symlink to dir", |j| {
            vec![
                Tar::new()
                    .file("fd", b"1")
                    .dir("df")
                    .file("df/c", b"2")
                    .symlink("sd", format!("{}/sentinel", j.abs()))
                    .finish(),
                Tar::new()
                    .dir("fd")
                    .file("fd/in", b"3")
                    .file("df", b"4")
                    .dir("sd")
                    .file("sd/in", b"5")
                    .finish(),
            ]
        })
        .tree("df=4 fd/ fd/in=3 sd/ sd/in=5"),
        case("a path under a file", |_| {
            one(Tar::new().file("a", b"x").file("a/b", b"y"))
        })
        .plan_err("not a directory", not_a_dir),
        case("hardlinks within and across layers share an inode", |_| {
            vec![
                Tar::new().file("a", b"same").hardlink("b", "a").finish(),
                Tar::new().hardlink("c", "b").finish(),
            ]
        })
        .tree("a=same b=same c=same")
        .check(|j, _, _| {
            let t = j.target();
            let i = ino_of(&t.join("a"));
            assert_eq!(ino_of(&t.join("b")), i);
            assert_eq!(ino_of(&t.join("c")), i);
        }),
        case("multi-member gzip", |_| {
            let t = Tar::new().file("a", b"1").file("b", b"2").finish();
            let mid = 2 * 512;
            let mut blob = gzip(&t[..mid]);
            blob.extend(gzip(&t[mid..]));
            vec![blob]
        })
        .tree("a=1 b=2"),
        case("zstd with a skippable frame and two frames", |_| {
            let t = Tar::new().file("a", b"1").file("b", b"2").finish();
            let mid = 2 * 512;
            let mut blob = vec![0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4];
            blob.extend(zstd(&t[..mid]));
            blob.extend(zstd(&t[mid..]));
            vec![blob]
        })
        .tree("a=1 b=2"),
        // GNU tar, Go's archive/tar (docker, containerd, umoci) and Python
        // read an all-NUL numeric field as 0; tar-rs' Header::new_gnu()
        // leaves the fields that way unless set, and tar-rs refuses them.
        case("all-NUL mode, uid, gid and mtime fields read as 0", |_| {
            let mut f = Hdr::new(b"etc/a", b'0');
            (f.uid, f.gid, f.size) = (1000, 1000, 10);
            let mut f = f.to_block();
            for field in [108..116, 116..124, 136..148] {
                f[field].fill(0);
            }
            set_checksum(&mut f);
            let mut data = b"nul-fields".to_vec();
            data.resize(512, 0);
            let mut p = Hdr::new(b"etc/p", b'6').to_block();
            p[100..108].fill(0);
            set_checksum(&mut p);
            one(Tar::new().raw(&f).raw(&data).raw(&p))
        })
        .tree("etc/ etc/a=nul-fields etc/p|")
        .check(|j, _, _| {
            let m = fs::metadata(j.target().join("etc/a")).unwrap();
            if is_root() {
                assert_eq!((m.uid(), m.gid()), (0, 0));
            }
            assert_eq!(m.mtime(), 0);
            assert_eq!(mode_of(&j.target().join("etc/p")), 0);
        }),
        case("a numeric field of garbage is still refused", |_| {
            let mut b = Hdr::new(b"a", b'0').to_block();
            b[108..116].copy_from_slice(b"12x4567\0");
            set_checksum(&mut b);
            one(Tar::new().raw(&b))
        })
        .decode_err("corrupt", corrupt),
        case("uid beyond 32 bits", |_| {
            one(Tar::new().pax(&[(b"uid", b"4294967296")]).file("a", b"x"))
        })
        .decode_err("unsupported (uid)", unsupported),
        case("PAX uid and gid", |_| {
            one(Tar::new()
                .pax(&[(b"uid", b"3000000"), (b"gid", b"3000001")])
                .file("a", b"x"))
        })
        .tree("a=x")
        .check(|j, _, _| {
            if is_root() {
                let m = fs::metadata(j.target().join("a")).unwrap();
                assert_eq!((m.uid(), m.gid()), (3_000_000, 3_000_001));
            }
        }),
    ]);
}

/// A v2 `security.capability` value (`struct vfs_cap_data`, effective
/// flag set) with these permitted capabilities (low word).
fn capability(permitted: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [0x0200_0001u32, permitted, 0, 0, 0] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v
}

#[test]
#[allow(clippy::too_many_lines)] // A table: one row per layer.
fn modes_owners_mtimes_and_xattrs_are_exact() {
    run_table(vec![
        case("special mode bits", |_| {
            let mut sgid_dir = Hdr::new(b"perm/sgid-dir", b'5');
            sgid_dir.mode = 0o2775;
            sgid_dir.gid = 1000;
            let mut ro = Hdr::new(b"perm/ro-dir", b'5');
            ro.mode = 0o500;
            let mut none = Hdr::new(b"perm/none-dir", b'5');
            none.mode = 0o000;
            one(Tar::new()
                .dir("perm")
                .file_mode("perm/setuid", b"suid", 0o4755)
                .file_mode("perm/setgid", b"sgid", 0o2755)
                .file_mode("perm/all", b"all", 0o7777)
                .file_mode("perm/zero", b"zero", 0o000)
                .file_mode("perm/readonly", b"ro", 0o400)
                .entry(&sgid_dir, &[])
                .file("perm/sgid-dir/f", b"in-sgid")
                .dir_mode("perm/sticky", 0o1777)
                .entry(&ro, &[])
                .file("perm/ro-dir/f", b"in-ro")
                .entry(&none, &[])
                .dir("perm/none-dir/sub")
                .fifo("perm/fifo", 0o4666))
        })
        .check(|j, _, _| {
            let p = j.target().join("perm");
            for (name, mode) in [
                ("setuid", 0o4755),
                ("setgid", 0o2755),
                ("all", 0o7777),
                ("zero", 0o000),
                ("readonly", 0o400),
                ("sgid-dir", 0o2775),
                ("sticky", 0o1777),
                ("ro-dir", 0o500),
                ("none-dir", 0o000),
                ("none-dir/sub", 0o755),
                ("fifo", 0o4666),
            ] {
                assert_eq!(mode_of(&p.join(name)), mode, "mode of {name}");
            }
            assert_eq!(fs::read(p.join("ro-dir/f")).unwrap(), b"in-ro");
            if is_root() {
                let m = fs::metadata(p.join("sgid-dir")).unwrap();
                assert_eq!(m.gid(), 1000);
                // The layer's owner, not the one a setgid parent would give.
                assert_eq!(fs::metadata(p.join("sgid-dir/f")).unwrap().gid(), 0);
            }
        }),
        case("owners", |_| {
            let mut f = Hdr::new(b"o/u1000", b'0');
            (f.uid, f.gid) = (1000, 1001);
            let mut n = Hdr::new(b"o/nobody", b'0');
            (n.uid, n.gid) = (65534, 65534);
            let mut d = Hdr::new(b"o/dir", b'5');
            (d.uid, d.gid, d.mode) = (1000, 1000, 0o750);
            let mut l = Hdr::new(b"o/link", b'2');
            (l.uid, l.gid, l.link) = (1234, 5678, b"u1000".to_vec());
            let mut p = Hdr::new(b"o/pipe", b'6');
            (p.uid, p.gid) = (77, 88);
            one(Tar::new()
                .dir("o")
                .file_hdr(f, b"1000")
                .file_hdr(n, b"nobody")
                .entry(&d, &[])
                .entry(&l, &[])
                .entry(&p, &[]))
        })
        .check(|j, _, _| {
            if !is_root() {
                return;
            }
            let o = j.target().join("o");
            for (name, ids) in [
                ("u1000", (1000, 1001)),
                ("nobody", (65534, 65534)),
                ("dir", (1000, 1000)),
                ("link", (1234, 5678)),
                ("pipe", (77, 88)),
            ] {
                let m = fs::symlink_metadata(o.join(name)).unwrap();
                assert_eq!((m.uid(), m.gid()), ids, "owner of {name}");
            }
            assert_eq!(mode_of(&o.join("dir")), 0o750);
        }),
        case("mtimes, directories last", |_| {
            let mut d = Hdr::new(b"d", b'5');
            d.mtime = 1_000_000_002;
            let mut sub = Hdr::new(b"d/sub", b'5');
            sub.mtime = 1_000_000_006;
            let mut f = Hdr::new(b"d/sub/f", b'0');
            f.mtime = 1_000_000_001;
            let mut l = Hdr::new(b"d/link", b'2');
            l.mtime = 1_000_000_003;
            l.link = b"sub/f".to_vec();
            let mut p = Hdr::new(b"d/pipe", b'6');
            p.mtime = 1_000_000_004;
            let mut root = Hdr::new(b"./", b'5');
            root.mtime = 1_000_000_005;
            one(Tar::new()
                .entry(&root, &[])
                .entry(&d, &[])
                .entry(&sub, &[])
                .file_hdr(f, b"unique content for mtimes")
                .entry(&l, &[])
                .entry(&p, &[])
                .file("d/zz-late", b"written after the directory entry"))
        })
        .check(|j, _, _| {
            let t = j.target();
            let mt = |p: &Path| fs::symlink_metadata(p).unwrap().mtime();
            assert_eq!(mt(&t.join("d/sub/f")), 1_000_000_001, "file");
            assert_eq!(mt(&t.join("d")), 1_000_000_002, "directory with children");
            assert_eq!(mt(&t.join("d/sub")), 1_000_000_006, "subdirectory");
            assert_eq!(mt(&t.join("d/link")), 1_000_000_003, "symlink");
            assert_eq!(mt(&t.join("d/pipe")), 1_000_000_004, "fifo");
            assert_eq!(mt(&t), 1_000_000_005, "root");
        }),
        case(
            "xattrs: user.* and security.capability kept, others dropped",
            |_| {
                let cap = capability(1 << 10);
                one(Tar::new()
                    .pax(&[
                        (b"SCHILY.xattr.user.foo", b"bar"),
                        (b"SCHILY.xattr.user.bin", b"\x00\x01\xff="),
                        (b"SCHILY.xattr.security.capability", &cap),
                        (b"SCHILY.xattr.trusted.overlay.opaque", b"y"),
                        (
                            b"SCHILY.xattr.security.selinux",
                            b"system_u:object_r:etc_t:s0",
                        ),
                    ])
                    .file_mode("bin/ping", b"ping binary", 0o755)
                    .pax(&[(b"SCHILY.xattr.user.dir", b"d")])
                    .dir("xdir")
                    .file("xdir/plain", b"plain"))
            },
        )
        .check(|j, _, _| {
            let t = j.target();
            let f = t.join("bin/ping");
            assert_eq!(xattr(&f, "user.foo").as_deref(), Some(&b"bar"[..]));
            assert_eq!(
                xattr(&f, "user.bin").as_deref(),
                Some(&b"\x00\x01\xff="[..])
            );
            assert_eq!(xattr(&f, "trusted.overlay.opaque"), None);
            assert_eq!(xattr(&f, "security.selinux"), None);
            if is_root() {
                assert_eq!(
                    xattr(&f, "security.capability"),
                    Some(capability(1 << 10)),
                    "file capability"
                );
            }
            assert_eq!(mode_of(&f), 0o755);
            assert_eq!(
                xattr(&t.join("xdir"), "user.dir").as_deref(),
                Some(&b"d"[..])
            );
            assert_eq!(xattrs(&t.join("xdir/plain")), vec![]);
        }),
    ]);
}

/// PAX records are length-prefixed (POSIX pax, "extended header"): a value
/// may hold any byte, newlines included, and Go's archive/tar (so docker
/// and umoci) reads them so. The capability of cap_dac_override +
/// cap_fowner is the byte 0x0a.
fn newline_cases() -> Vec<Case> {
    vec![
        case("xattr values containing a newline byte", |_| {
            one(Tar::new()
                .pax(&[
                    (b"SCHILY.xattr.security.capability", &capability(0x0a)),
                    (b"SCHILY.xattr.user.multiline", b"line one\nline two"),
                ])
                .file_mode("usr/bin/tool", b"tool", 0o755))
        })
        .check(|j, _, _| {
            let f = j.target().join("usr/bin/tool");
            assert_eq!(
                xattr(&f, "user.multiline").as_deref(),
                Some(&b"line one\nline two"[..])
            );
            if is_root() {
                assert_eq!(xattr(&f, "security.capability"), Some(capability(0x0a)));
            }
        }),
        case("PAX path containing a newline", |_| {
            one(Tar::new()
                .pax(&[(b"path", b"dir/name\nwith-newline")])
                .file("harmless", b"x"))
        })
        .check(|j, _, _| {
            assert_eq!(
                fs::read(j.target().join("dir/name\nwith-newline")).unwrap(),
                b"x"
            );
        }),
    ]
}

#[test]
#[ignore = "tar 0.4.46 splits PAX records on newlines (composefs/tar-rs#452, #428): \
            such layers are refused until it parses records by their length"]
fn pax_values_with_newlines_are_read_by_their_length() {
    run_table(newline_cases());
}

/// Until then they are refused, never misread: tar-rs frames the tail of a
/// value as a record of its own, so a value can smuggle a `path` or
/// `linkpath` that tar-rs reports and a length-walking reader (docker,
/// umoci) never sees. cairn reads every record and fails on the first
/// malformed one.
#[test]
fn pax_values_with_newlines_are_refused_not_misread() {
    let mut cases: Vec<Case> = newline_cases()
        .into_iter()
        .map(|c| c.decode_err("corrupt (tar-rs PAX framing)", corrupt))
        .collect();
    // "26 path=sentinel/smuggled" is 25 bytes plus the newline: a record
    // of its own to a newline-splitting parser, as tar-rs shows.
    let smuggler = Tar::new()
        .pax(&[(b"SCHILY.xattr.user.a", b"x\n26 path=sentinel/smuggled")])
        .file("harmless", b"x")
        .finish();
    let mut ar = tar::Archive::new(&smuggler[..]);
    let first = ar.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(&*first.path_bytes(), b"sentinel/smuggled", "the hazard");
    cases.push(
        case("a path record smuggled inside an xattr value", |_| {
            one(Tar::new()
                .pax(&[(b"SCHILY.xattr.user.a", b"x\n26 path=sentinel/smuggled")])
                .file("harmless", b"x"))
        })
        .decode_err("corrupt (tar-rs PAX framing)", corrupt),
    );
    cases.push(
        case("a linkpath record smuggled inside an xattr value", |j| {
            let smuggled = format!(
                "x\n{}",
                String::from_utf8(pax_record(
                    b"linkpath",
                    format!("{}/sentinel", j.abs()).as_bytes(),
                ))
                .unwrap()
                .trim_end()
            );
            one(Tar::new()
                .pax(&[(b"SCHILY.xattr.user.a", smuggled.as_bytes())])
                .symlink("l", "harmless"))
        })
        .decode_err("corrupt (tar-rs PAX framing)", corrupt),
    );
    run_table(cases);
}

#[test]
fn id_maps_apply_to_every_entry_and_unmapped_ids_are_refused() {
    let mut f = Hdr::new(b"d/f", b'0');
    (f.uid, f.gid) = (1000, 1001);
    let mut d = Hdr::new(b"d", b'5');
    (d.uid, d.gid) = (0, 0);
    let mut l = Hdr::new(b"d/l", b'2');
    (l.uid, l.gid, l.link) = (65534, 65534, b"f".to_vec());
    let layer = Tar::new()
        .entry(&d, &[])
        .file_hdr(f, b"mapped")
        .entry(&l, &[])
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let objects = ObjectStore::open(dir.path(), ownership()).unwrap();
    let opts = DecodeOptions {
        uid_map: cairn_unpacker::IdMap::parse_all(["0:100000:65536"]).unwrap(),
        gid_map: cairn_unpacker::IdMap::parse_all(["0:200000:65536"]).unwrap(),
        ..DecodeOptions::default()
    };
    for mode in [Mode::Hardlink, Mode::Copy] {
        let target = dir.path().join(format!("{mode:?}"));
        fs::create_dir(&target).unwrap();
        unpack(
            std::slice::from_ref(&layer),
            &[],
            &objects,
            &opts,
            &target,
            mode,
        )
        .unwrap();
        if is_root() {
            let ids = |p: &str| {
                let m = fs::symlink_metadata(target.join(p)).unwrap();
                (m.uid(), m.gid())
            };
            assert_eq!(ids("d"), (100_000, 200_000), "{mode:?}");
            assert_eq!(ids("d/f"), (101_000, 201_001), "{mode:?}");
            assert_eq!(ids("d/l"), (165_534, 265_534), "{mode:?}");
        }
    }
    let mut out = Hdr::new(b"far", b'0');
    out.uid = 70_000;
    let err = unpack(
        &[Tar::new().file_hdr(out, b"x").finish()],
        &[],
        &objects,
        &opts,
        &dir.path().join("never"),
        Mode::Copy,
    )
    .unwrap_err();
    match err {
        Failure::Decode(0, e) => {
            assert!(matches!(root_cause(&e), Error::IdMap(_)), "{e}");
            assert!(e.to_string().contains("70000"), "{e}");
        }
        other => panic!("want an id map error, got {other:?}"),
    }
}

/// `unpack` into a directory someone else can write to: an attacker swaps
/// each fifo the unpacker creates, as soon as it is there, for a symlink to
/// a file outside (`renameat2(RENAME_EXCHANGE)`, spinning until the name
/// exists). The mode the layer gives the fifo must never land on the
/// outside file, however the race goes: a swapped node is refused, not
/// followed.
#[test]
fn a_node_swapped_for_a_symlink_mid_unpack_never_redirects_a_chmod() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const N: usize = 300;
    let j = Jail::new();
    let outside = j.sentinel().join("secret");
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o600)).unwrap();
    let target = j.target();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o777)).unwrap();
    let mut tar = Tar::new();
    for i in 0..N {
        tar = tar.fifo(format!("p{i:03}"), 0o4777);
    }
    let layer = tar.finish();
    let objects = ObjectStore::open(&j.store(), ownership()).unwrap();
    // The attacker's links, one per name, beside the target.
    let links = j.path().join("links");
    fs::create_dir(&links).unwrap();
    for i in 0..N {
        std::os::unix::fs::symlink(&outside, links.join(format!("p{i:03}"))).unwrap();
    }
    let stop = AtomicBool::new(false);
    let swapped = AtomicUsize::new(0);
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..N {
                let name = format!("p{i:03}");
                while !stop.load(Ordering::Relaxed) {
                    let r = rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        links.join(&name),
                        rustix::fs::CWD,
                        target.join(&name),
                        rustix::fs::RenameFlags::EXCHANGE,
                    );
                    if r.is_ok() {
                        swapped.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        });
        let r = unpack(
            &[layer],
            &[],
            &objects,
            &DecodeOptions::default(),
            &target,
            Mode::Hardlink,
        );
        stop.store(true, Ordering::Relaxed);
        r
    });
    let mode = fs::metadata(&outside).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode,
        0o600,
        "the outside file got the fifo's mode ({} swaps, unpack: {:?})",
        swapped.load(Ordering::Relaxed),
        result.as_ref().map(|_| ())
    );
    assert_eq!(fs::read(&outside).unwrap(), b"secret");
    assert!(
        swapped.load(Ordering::Relaxed) > 0,
        "the attacker never swapped a node: the test proved nothing"
    );
    // A swap the unpacker saw is refused, naming the node.
    if let Err(Failure::Materialize(e)) = &result {
        let e = e.to_string();
        assert!(e.contains("replaced by a Symlink"), "{e}");
    }
}
