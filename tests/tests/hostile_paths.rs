//! End-to-end: paths cairn writes that someone else may have prepared.
//! A symlink planted where `--cidfile` or the credentials temp file go
//! must not be written through; an existing cidfile is not overwritten;
//! a volume name that is a path (`../..`, `/etc`) is refused before
//! anything is created. As root and as the rootless test user, asserting
//! the file a symlink points at is untouched and nothing was created.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;

use cairn_tests::util::run;
use cairn_tests::{Auth, Cairn, ImageSpec, OciLayout, Registry, RegistryOptions};

const PRECIOUS: &str = "the host's own content\n";

fn environments() -> Vec<(&'static str, Cairn)> {
    vec![
        ("root", Cairn::new().expect("env")),
        ("rootless", Cairn::rootless().expect("rootless env")),
    ]
}

/// A file the user running cairn may write (so a followed symlink would
/// really overwrite it), holding [`PRECIOUS`].
fn victim(cairn: &Cairn, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("victim");
    fs::write(&path, PRECIOUS).unwrap();
    if let Some(u) = cairn.user() {
        run(Command::new("chown")
            .arg(format!("{}:{}", u.uid, u.gid))
            .arg(&path))
        .unwrap();
    }
    path
}

/// A small image pulled into `cairn`'s store from an OCI layout; its id.
fn small_image(cairn: &Cairn) -> String {
    let dir = cairn.scratch().join("layout");
    let layout = OciLayout::create(&dir).expect("layout");
    let image = layout
        .add_image("latest", &ImageSpec::new().layer(&[("etc/payload", b"x")]))
        .expect("image");
    if let Some(u) = cairn.user() {
        run(Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", u.uid, u.gid))
            .arg(&dir))
        .unwrap();
    }
    cairn
        .ok(["pull", "-q", &image.skopeo_ref])
        .trim()
        .to_owned()
}

fn no_containers(who: &str, cairn: &Cairn) {
    let ps = cairn.ok(["ps", "-a", "-q"]);
    assert!(ps.trim().is_empty(), "{who}: containers left: {ps}");
}

/// `--cidfile` at an existing file, or at a symlink to a file the user can
/// write: refused with podman's words, exit 125, nothing created, the file
/// and the symlink's target untouched.
#[test]
fn cidfile_is_never_overwritten_nor_followed() {
    for (who, cairn) in environments() {
        let image = small_image(&cairn);
        let target = victim(&cairn, cairn.scratch());
        let existing = cairn.scratch().join("existing.cid");
        fs::write(&existing, PRECIOUS).unwrap();
        let link = cairn.scratch().join("link.cid");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let dangling = cairn.scratch().join("dangling.cid");
        let dangling_target = cairn.scratch().join("created-through-the-link");
        std::os::unix::fs::symlink(&dangling_target, &dangling).unwrap();

        for (what, cidfile) in [
            ("existing file", &existing),
            ("symlink to a file", &link),
            ("dangling symlink", &dangling),
        ] {
            for verb in ["create", "run"] {
                let cid = cidfile.to_str().unwrap();
                let r = cairn.fails(125, [verb, "--cidfile", cid, &image, "true"]);
                assert!(
                    r.stderr.contains(&format!(
                        "container id file exists. Ensure another container is not using it or delete {cid}"
                    )),
                    "{who}, {what}, {verb}: {}",
                    r.stderr
                );
                no_containers(who, &cairn);
            }
        }
        assert_eq!(fs::read_to_string(&existing).unwrap(), PRECIOUS, "{who}");
        assert_eq!(fs::read_to_string(&target).unwrap(), PRECIOUS, "{who}");
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink(), "{who}");
        assert!(!dangling_target.exists(), "{who}: written through the link");

        // A free path still works, and a failed create removes its cidfile.
        let fresh = cairn.scratch().join("fresh.cid");
        let id = cairn.ok([
            "create",
            "--cidfile",
            fresh.to_str().unwrap(),
            &image,
            "true",
        ]);
        assert_eq!(fs::read_to_string(&fresh).unwrap(), id.trim(), "{who}");
        let failed = cairn.scratch().join("failed.cid");
        cairn.fails(
            125,
            [
                "create",
                "--cidfile",
                failed.to_str().unwrap(),
                "--mount",
                "type=nonsense,target=/x",
                &image,
            ],
        );
        assert!(!failed.exists(), "{who}: a failed create leaves no cidfile");
        cairn.ok(["rm", "-a", "-f"]);
    }
}

/// A volume name is a plain name: `../..`, `/etc` or `a/../../x` as one
/// (through `--mount type=volume` and `-v NAME:/dst`) is refused with exit
/// 125 before anything is created, and nothing appears where the path
/// would have led.
#[test]
fn volume_names_that_are_paths_are_refused() {
    for (who, cairn) in environments() {
        let image = small_image(&cairn);
        let store_parent = cairn.root().parent().unwrap().to_owned();
        let before = fs::read_dir(&store_parent).unwrap().count();
        for args in [
            vec!["--mount", "type=volume,source=../..,target=/data"],
            vec!["--mount", "type=volume,src=/etc,target=/data"],
            vec!["--mount", "source=../../escape,target=/data"],
            vec!["-v", "a/../../escape:/data"],
        ] {
            for verb in ["create", "run"] {
                let mut full = vec![verb];
                full.extend(&args);
                full.extend([image.as_str(), "true"]);
                let r = cairn.fails(125, &full);
                assert!(
                    r.stderr
                        .contains("names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"),
                    "{who}, {args:?}: {}",
                    r.stderr
                );
                no_containers(who, &cairn);
            }
        }
        assert!(
            !Path::new("/etc/_data").exists(),
            "{who}: /etc/_data created"
        );
        assert!(!store_parent.join("_data").exists(), "{who}");
        assert!(!store_parent.join("escape").exists(), "{who}");
        assert_eq!(
            fs::read_dir(&store_parent).unwrap().count(),
            before,
            "{who}: something appeared beside the store"
        );
        let volumes = cairn.root().join("volumes");
        let left = fs::read_dir(&volumes).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "{who}: volume directories created");
        // A plain name still works, both ways.
        cairn.ok([
            "create",
            "--mount",
            "type=volume,source=data_1.x,target=/data",
            &image,
        ]);
        cairn.ok(["create", "-v", "data_1.x:/data", &image]);
        assert!(volumes.join("data_1.x/_data").is_dir(), "{who}");
        cairn.ok(["rm", "-a", "-f"]);
    }
}

/// `login` writes the auth file through a temp file: a symlink planted at
/// the name it used to use (`.auth.json.tmp`) is not written through, and
/// the new auth file is a regular file, mode 0600.
#[test]
fn login_does_not_write_through_a_planted_temp_file_symlink() {
    let reg =
        Registry::start(RegistryOptions::default().with_auth(Auth::htpasswd("alice", "s3cret")))
            .expect("registry");
    for (who, cairn) in environments() {
        let dir = cairn.auth_file().parent().unwrap().to_owned();
        let target = victim(&cairn, &dir.join("home"));
        let planted = dir.join(".auth.json.tmp");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        for _ in 0..2 {
            cairn.ok([
                "login",
                "--tls-verify=false",
                "-u",
                "alice",
                "-p",
                "s3cret",
                reg.host(),
            ]);
        }
        assert_eq!(fs::read_to_string(&target).unwrap(), PRECIOUS, "{who}");
        assert!(
            fs::symlink_metadata(&planted).unwrap().is_symlink(),
            "{who}"
        );
        let meta = fs::symlink_metadata(cairn.auth_file()).unwrap();
        assert!(meta.is_file(), "{who}");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{who}");
        if let Some(u) = cairn.user() {
            assert_eq!(meta.uid(), u.uid, "{who}");
        }
        assert!(fs::read_to_string(cairn.auth_file())
            .unwrap()
            .contains(reg.host()));
        // No temp file left beside it, apart from the planted link.
        let strays: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp") && n != ".auth.json.tmp")
            .collect();
        assert!(strays.is_empty(), "{who}: {strays:?}");
        cairn.ok(["logout", reg.host()]);
        assert_eq!(fs::read_to_string(&target).unwrap(), PRECIOUS, "{who}");
    }
}

/// `top` names users from the container's `/etc/passwd`. Root in the
/// container replaces it with an absolute symlink to a host file (which
/// `/proc/PID/root/etc/passwd` would resolve against the host's root) and
/// then with a FIFO (a plain read blocks forever): `top` neither shows
/// the host file's names nor hangs, and prints the ids as numbers. As root
/// and rootless.
#[test]
fn top_reads_no_host_file_and_no_fifo_through_the_containers_passwd() {
    use std::time::{Duration, Instant};
    for (who, cairn) in environments() {
        let image = "localhost/hostile-top:latest";
        cairn.pull_fixture_as(cairn_tests::fixtures::refs::DEBIAN_MIN, image);
        // The host file: a passwd line naming uid 0 "hostleak".
        let secret = cairn.scratch().join("host-passwd");
        fs::write(&secret, "hostleak:x:0:0::/:/bin/sh\n").unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
        cairn.ok(["run", "-d", "--name", "t", image, "sleep", "600"]);
        let top = |what: &str| {
            let start = Instant::now();
            let mut child = cairn
                .command(["top", "t", "user", "pid", "args"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            while child.try_wait().unwrap().is_none() {
                if start.elapsed() > Duration::from_secs(20) {
                    let _ = child.kill();
                    let _ = cairn.run(["rm", "-f", "-t", "0", "t"]);
                    panic!("{who}, {what}: top hangs on the container's /etc/passwd");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert_eq!(out.status.code(), Some(0), "{who}, {what}: {out:?}");
            assert!(
                !stdout.contains("hostleak"),
                "{who}, {what}: read the host's file:\n{stdout}"
            );
            let pid1: Vec<&str> = stdout.lines().nth(1).unwrap().split_whitespace().collect();
            assert_eq!(
                pid1[..2],
                ["0", "1"],
                "{who}, {what}: uid 0 unnamed:\n{stdout}"
            );
        };
        let link = format!("rm /etc/passwd && ln -s {} /etc/passwd", secret.display());
        cairn.ok(["exec", "t", "sh", "-c", &link]);
        top("absolute symlink to a host file");
        cairn.ok([
            "exec",
            "t",
            "sh",
            "-c",
            "rm /etc/passwd && mkfifo /etc/passwd",
        ]);
        top("FIFO");
        assert_eq!(
            fs::read_to_string(&secret).unwrap(),
            "hostleak:x:0:0::/:/bin/sh\n"
        );
        cairn.ok(["rm", "-f", "-t", "0", "t"]);
    }
}

/// `export -o DIR/out.tar` writes a temp file beside the output first. In a
/// directory others can write (as /tmp), a symlink planted at every temp
/// name the next processes could pick (the pids after the current one, the
/// first counters) must not be written through: the export succeeds, the
/// symlinks' target keeps its content and the links stay as they were. As
/// root and rootless.
#[test]
fn export_does_not_write_through_planted_temp_file_symlinks() {
    for (who, cairn) in environments() {
        let image = small_image(&cairn);
        let name = format!("exp-{who}");
        cairn.ok(["create", "--name", &name, &image, "true"]);
        let dir = cairn.scratch().join("shared");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        let target = victim(&cairn, &cairn.scratch().join("home"));
        let next: u32 = fs::read_to_string("/proc/sys/kernel/ns_last_pid")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut planted = Vec::new();
        for pid in next..next + 400 {
            // The names of this cairn and of the one before (no counter).
            let names = [
                format!(".out.tar.cairn-export-{pid}"),
                format!(".out.tar.cairn-export-{pid}-0"),
                format!(".out.tar.cairn-export-{pid}-1"),
            ];
            for n in names {
                let link = dir.join(n);
                std::os::unix::fs::symlink(&target, &link).unwrap();
                planted.push(link);
            }
        }
        let out = dir.join("out.tar");
        cairn.ok(["export", "-o", out.to_str().unwrap(), &name]);
        assert!(
            fs::read(&target).unwrap() == PRECIOUS.as_bytes(),
            "{who}: the file a planted temp-name link points at was written through"
        );
        assert!(
            planted
                .iter()
                .all(|l| fs::symlink_metadata(l).is_ok_and(|m| m.is_symlink())),
            "{who}: a planted link was replaced"
        );
        let meta = fs::symlink_metadata(&out).unwrap();
        assert!(meta.is_file() && meta.len() > 0, "{who}");
        let strays = fs::read_dir(&dir).unwrap().count() - planted.len() - 1;
        assert_eq!(strays, 0, "{who}: temp files left beside the export");
        cairn.ok(["rm", &name]);
    }
}
