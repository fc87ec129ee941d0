//! End-to-end, rootless: every verb as a real non-root user
//! (`tests/support/test-user.sh`: `cairntest`, subordinate ranges
//! 500000+65536 and 600000+2000), through the real binaries, against a real
//! registry and the real Debian test image. Ownership is asserted
//! numerically inside and outside the container.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;

use cairn_tests::fixtures::{self, refs};
use cairn_tests::util::run;
use cairn_tests::{Cairn, Registry, RegistryOptions};

/// First subordinate id of the test user: image id N (N ≥ 1) is host
/// id `SUB + N - 1`.
const SUB: u32 = 500_000;

/// The test image, imported into a rootless store (a registry pull in
/// `pulls_from_a_registry_with_image_owners_shifted`).
fn rootless_with_image() -> (Cairn, String) {
    let c = Cairn::rootless().expect("rootless environment");
    c.ok(["pull", "-q", &fixtures::oci_ref(refs::DEBIAN_MIN)]);
    let image = c.ok(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let image = image.lines().next().expect("one image").to_owned();
    (c, image)
}

/// Where `rel` is in the image root of the store's one image.
fn in_root(c: &Cairn, rel: &str) -> std::path::PathBuf {
    let lowers = cairn_tests::roots::lowers(c.root(), "");
    cairn_tests::roots::find(&lowers, rel).unwrap_or_else(|| panic!("/{rel} in {lowers:?}"))
}

fn user_uid(c: &Cairn) -> u32 {
    c.user().expect("rootless").uid
}

#[test]
fn pulls_from_a_registry_with_image_owners_shifted() {
    let reg = Registry::start(RegistryOptions::default()).expect("registry");
    let reference = reg.push_fixture(refs::DEBIAN_MIN, "debian:min");
    let c = Cairn::rootless().unwrap();
    c.ok(["pull", "-q", "--tls-verify=false", &reference]);
    let uid = user_uid(&c);
    // Outside: image root 0 is the user; image gid 42 (shadow) is SUB+41.
    let shadow = fs::symlink_metadata(in_root(&c, "etc/shadow")).unwrap();
    assert_eq!((shadow.uid(), shadow.gid()), (uid, SUB + 41));
    let passwd = fs::symlink_metadata(in_root(&c, "usr/bin/passwd")).unwrap();
    assert_eq!(passwd.uid(), uid);
    assert_eq!(passwd.mode() & 0o7777, 0o4755, "setuid bit kept");
    // Inside: the image's own owners.
    let out = c.ok([
        "run",
        "--rm",
        &reference,
        "sh",
        "-c",
        "stat -c '%u %g %a %n' /etc/shadow /usr/bin/passwd /; cat /proc/self/uid_map",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0 42 640 /etc/shadow", "{out}");
    assert_eq!(lines[1], "0 0 4755 /usr/bin/passwd", "{out}");
    assert_eq!(lines[2], "0 0 755 /", "{out}");
    let maps: Vec<Vec<u64>> = lines[3..]
        .iter()
        .map(|l| l.split_whitespace().map(|n| n.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        maps,
        vec![
            vec![0, u64::from(uid), 1],
            vec![1, 500_000, 65536],
            vec![65537, 600_000, 2000]
        ],
        "every subordinate range is mapped, not only the first"
    );
    // The user's default store is their own, not root's.
    let mut own = Cairn::rootless().unwrap();
    own.unset_env("CAIRN_ROOT");
    let home = own.scratch().join("home");
    let graph_root = own.ok(["info", "--format", "{{.Store.GraphRoot}}"]);
    assert_eq!(
        graph_root.trim(),
        home.join(".local/share/cairn").to_string_lossy()
    );
}

#[test]
fn setuid_binaries_work_and_exec_stop_rm_rmi_prune() {
    let (c, image) = rootless_with_image();
    // passwd -S reads /etc/shadow (0640 root:shadow): only through setuid root.
    let out = c.ok(["run", "--rm", "--user", "nobody", &image, "passwd", "-S"]);
    assert!(out.starts_with("nobody "), "{out}");
    let denied = c.run([
        "run",
        "--rm",
        "--user",
        "nobody",
        &image,
        "cat",
        "/etc/shadow",
    ]);
    assert_eq!(denied.code, 1, "{denied:?}");
    assert!(denied.stderr.contains("Permission denied"), "{denied:?}");

    let id = c.ok(["run", "-d", "--name", "svc", &image, "sleep", "1000"]);
    assert_eq!(id.trim().len(), 64);
    assert_eq!(c.ok(["exec", "svc", "id", "-u"]).trim(), "0");
    assert_eq!(
        c.ok(["exec", "-u", "nobody", "svc", "id", "-u"]).trim(),
        "65534"
    );
    assert_eq!(c.run(["exec", "svc", "sh", "-c", "exit 9"]).code, 9);
    assert_eq!(
        c.ok(["inspect", "--format", "{{.State.Status}}", "svc"])
            .trim(),
        "running"
    );
    c.ok(["stop", "-t", "1", "svc"]);
    assert_eq!(
        c.ok([
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
            "svc"
        ])
        .trim(),
        "exited 137"
    );
    // An image in use is not removed; rm then rmi and prune are.
    assert_eq!(c.run(["rmi", &image]).code, 2);
    c.ok(["rm", "svc"]);
    assert!(c.ok(["ps", "-aq"]).trim().is_empty());
    c.ok(["rmi", &image]);
    c.ok(["system", "prune", "-a", "-f"]);
    // Everything the user's namespace created is gone, as the user could
    // not delete subordinate-owned files without re-entering it.
    for dir in ["images", "objects", "containers"] {
        let left: Vec<_> = walk_files(&c.root().join(dir));
        assert!(left.is_empty(), "{dir}: {left:?}");
    }
}

fn walk_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.extend(walk_files(&e.path()));
            } else {
                out.push(e.path().display().to_string());
            }
        }
    }
    out
}

#[test]
fn keep_id_keeps_the_callers_ids_and_host_files_stay_the_users() {
    let (c, image) = rootless_with_image();
    let user = c.user().unwrap().clone();
    let work = c.scratch().join("home/work");
    fs::create_dir_all(&work).unwrap();
    run(Command::new("chown")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(&work))
    .unwrap();
    let vol = format!("{}:/work", work.display());
    let out = c.ok([
        "run",
        "--rm",
        "--userns",
        "keep-id",
        "-v",
        &vol,
        &image,
        "sh",
        "-c",
        "id -u; id -g; grep \"^$(id -un):\" /etc/passwd | cut -d: -f1,3,4; stat -c '%u %g' / /etc/shadow; touch /work/made-inside",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], user.uid.to_string(), "{out}");
    assert_eq!(lines[1], user.gid.to_string(), "{out}");
    assert_eq!(
        lines[2],
        format!("{}:{}:{}", user.name, user.uid, user.gid),
        "{out}"
    );
    assert_eq!(lines[3], "0 0", "image root is still root's inside: {out}");
    assert_eq!(lines[4], "0 42", "{out}");
    let made = fs::metadata(work.join("made-inside")).unwrap();
    assert_eq!((made.uid(), made.gid()), (user.uid, user.gid));
    // The user was added to the container's upper layer, not the image.
    let image_passwd = fs::read_to_string(in_root(&c, "etc/passwd")).unwrap();
    assert!(!image_passwd.contains(&format!("{}:", user.name)));
}

#[test]
fn dpkg_installs_a_package_inside_a_rootless_container() {
    let (c, image) = rootless_with_image();
    // A real .deb, built here (the tests have no Debian mirror).
    let pkg = c.scratch().join("pkg");
    fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    fs::create_dir_all(pkg.join("usr/share/cairn-hello")).unwrap();
    fs::write(
        pkg.join("DEBIAN/control"),
        "Package: cairn-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: cairn <cairn@example.invalid>\nDescription: test package\n",
    )
    .unwrap();
    fs::write(pkg.join("usr/share/cairn-hello/hello"), "hello\n").unwrap();
    let deb = c.scratch().join("cairn-hello.deb");
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&pkg)
        .arg(&deb))
    .unwrap();
    fs::set_permissions(&deb, fs::Permissions::from_mode(0o644)).unwrap();
    c.ok(["run", "-d", "--name", "apt", &image, "sleep", "1000"]);
    c.ok(["cp", deb.to_str().unwrap(), "apt:/tmp/cairn-hello.deb"]);
    c.ok(["exec", "apt", "dpkg", "-i", "/tmp/cairn-hello.deb"]);
    let out = c.ok([
        "exec",
        "apt",
        "sh",
        "-c",
        "dpkg-query -W -f '${Status}\\n' cairn-hello; stat -c '%u %g' /usr/share/cairn-hello/hello; cat /usr/share/cairn-hello/hello",
    ]);
    assert_eq!(out, "install ok installed\n0 0\nhello\n");
    c.ok(["rm", "-f", "-t", "0", "apt"]);
}

#[test]
fn volumes_ro_and_network_none_rootless() {
    let (c, image) = rootless_with_image();
    let user = c.user().unwrap().clone();
    let data = c.scratch().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("f"), "x").unwrap();
    run(Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(&data))
    .unwrap();
    let vol = format!("{}:/data:ro", data.display());
    let r = c.run([
        "run",
        "--rm",
        "-v",
        &vol,
        &image,
        "sh",
        "-c",
        "cat /data/f; touch /data/g",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.starts_with('x'), "{r:?}");
    assert!(r.stderr.contains("Read-only file system"), "{r:?}");
    let out = c.ok([
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(out.trim(), "lo");
}

#[test]
fn a_user_without_subordinate_ids_gets_a_clear_error() {
    // nobody has no /etc/subuid entry.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    fs::create_dir_all(&root).unwrap();
    run(Command::new("chown")
        .arg("-R")
        .arg("65534:65534")
        .arg(dir.path()))
    .unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(cairn_tests::cairn::binary())
        .args(["--root", root.to_str().unwrap(), "pull", "oci:/nonexistent"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("no subordinate ids for user nobody"),
        "{stderr}"
    );
    assert!(stderr.contains("usermod --add-subuids"), "{stderr}");
}
