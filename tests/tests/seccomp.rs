//! Seccomp and `--security-opt`, end to end, as root and as the real user
//! `cairntest`: podman's default profile is in force in `run`, `--init` and
//! `exec` (`Seccomp: 2`), a container cannot read a key the host user put in
//! its keyring, a custom profile denies what it says, and the same syscall
//! probes give the same answers under `podman run` and `cairn run`.
//!
//! The probes are `tests/support/seccomp-probe.c`, built here with
//! `cc -static` and bound into the containers read-only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cairn_tests::fixtures::{self, refs};
use cairn_tests::podman::Podman;
use cairn_tests::Cairn;

/// The statically linked probe, built once per test binary into a
/// directory every user can read.
fn probe() -> &'static Path {
    static PROBE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, p) = PROBE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("cairn-seccomp-probe-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/seccomp-probe.c");
        let out = dir.path().join("seccomp-probe");
        let r = Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&out)
            .arg(&src)
            .output()
            .expect("cc runs (tests/support/install-deps.sh installs gcc and libc6-dev)");
        assert!(
            r.status.success(),
            "cc -static {}: {}",
            src.display(),
            String::from_utf8_lossy(&r.stderr)
        );
        (dir, out)
    });
    p
}

fn bind() -> String {
    format!("{}:/probe:ro", probe().display())
}

fn with_image(rootless: bool) -> (Cairn, String) {
    let c = if rootless {
        Cairn::rootless().expect("rootless environment")
    } else {
        Cairn::new().expect("environment")
    };
    c.ok(["pull", "-q", &fixtures::oci_ref(refs::DEBIAN_MIN)]);
    let image = c.ok(["images", "--format", "{{.ID}}"]);
    let image = image.lines().next().expect("one image").to_owned();
    (c, image)
}

/// `Seccomp:` and `NoNewPrivs:` of the probe in a container.
fn status(c: &Cairn, args: &[&str]) -> (String, String) {
    let out = c.ok(args);
    let field = |f: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(f))
            .unwrap_or_else(|| panic!("no {f} in {out}"))
            .trim()
            .to_owned()
    };
    (field("Seccomp:"), field("NoNewPrivs:"))
}

/// A key in the user keyring of `user` (None: root), removed on drop.
struct HostKey {
    user: Option<(u32, u32)>,
    id: String,
    desc: String,
    payload: String,
}

fn as_user(user: Option<(u32, u32)>, program: &str) -> Command {
    match user {
        None => Command::new(program),
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--init-groups")
                .arg("--")
                .arg(program);
            c
        }
    }
}

impl HostKey {
    fn add(user: Option<(u32, u32)>) -> HostKey {
        let desc = format!("cairn-seccomp-test-{}", std::process::id());
        let payload = format!("host-secret-{}", std::process::id());
        let out = as_user(user, "keyctl")
            .args(["add", "user", &desc, &payload, "@u"])
            .output()
            .expect("keyctl runs (tests/support/install-deps.sh installs keyutils)");
        assert!(
            out.status.success(),
            "keyctl add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        HostKey {
            user,
            id,
            desc,
            payload,
        }
    }
}

impl Drop for HostKey {
    fn drop(&mut self) {
        let _ = as_user(self.user, "keyctl")
            .args(["unlink", &self.id, "@u"])
            .output();
    }
}

fn keyring_is_out_of_reach(rootless: bool) {
    let (c, image) = with_image(rootless);
    let user = c.user().map(|u| (u.uid, u.gid));
    let key = HostKey::add(user);
    let b = bind();
    // Control: the same probe, same user, on the host reads it; a container
    // sharing the caller's keyrings (cairn before the fix) did the same.
    let host = as_user(user, probe().to_str().unwrap())
        .args(["keyread", &key.desc])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&host.stdout).trim(),
        format!("payload {}", key.payload),
        "the host process must read its own key, or the test proves nothing"
    );
    // The attack: from the container, find the key and read it.
    let r = c.run([
        "run", "--rm", "-v", &b, &image, "/probe", "keyread", &key.desc,
    ]);
    assert!(
        !r.stdout.contains(&key.payload),
        "run read the host key: {}",
        r.stdout
    );
    assert_eq!(
        r.code, 1,
        "the probe ends 1 when nothing is readable: {r:?}"
    );
    // add_key is denied outright (ENOSYS, podman's default action).
    let probes = c.ok(["run", "--rm", "-v", &b, &image, "/probe"]);
    assert!(probes.lines().any(|l| l == "add_key ENOSYS"), "{probes}");
    // exec into a running container: the same.
    let name = "keys";
    c.ok([
        "run", "-d", "--name", name, "-v", &b, &image, "sleep", "300",
    ]);
    let r = c.run(["exec", name, "/probe", "keyread", &key.desc]);
    assert!(
        !r.stdout.contains(&key.payload),
        "exec read the host key: {}",
        r.stdout
    );
    c.ok(["rm", "-f", "-t", "0", name]);
}

#[test]
fn a_container_cannot_read_the_host_users_keyring() {
    keyring_is_out_of_reach(false);
}

#[test]
fn a_rootless_container_cannot_read_the_users_keyring() {
    keyring_is_out_of_reach(true);
}

fn default_profile_everywhere(rootless: bool) {
    let (c, image) = with_image(rootless);
    let b = bind();
    let run = |extra: &[&str], cmd: &[&str]| {
        let mut a = vec!["run", "--rm", "-v", &b];
        a.extend_from_slice(extra);
        a.push(&image);
        a.extend_from_slice(cmd);
        status(&c, &a)
    };
    assert_eq!(run(&[], &["/probe", "status"]), ("2".into(), "0".into()));
    // --init: the init (pid 1) and the command are both filtered.
    let out = c.ok([
        "run",
        "--rm",
        "--init",
        &image,
        "sh",
        "-c",
        "grep Seccomp: /proc/1/status; grep Seccomp: /proc/self/status",
    ]);
    assert_eq!(out, "Seccomp:\t2\nSeccomp:\t2\n", "--init");
    // no-new-privileges: installed last, after the user change.
    assert_eq!(
        run(
            &["--user", "1000", "--security-opt", "no-new-privileges"],
            &["/probe", "status"]
        ),
        ("2".into(), "1".into())
    );
    assert_eq!(
        run(
            &["--security-opt", "no-new-privileges=false"],
            &["/probe", "status"]
        ),
        ("2".into(), "0".into())
    );
    assert_eq!(
        run(
            &["--security-opt", "seccomp=unconfined"],
            &["/probe", "status"]
        ),
        ("0".into(), "0".into())
    );
    // exec: the container's profile, for root and another user.
    c.ok(["run", "-d", "--name", "e", "-v", &b, &image, "sleep", "300"]);
    assert_eq!(status(&c, &["exec", "e", "/probe", "status"]).0, "2");
    assert_eq!(
        status(&c, &["exec", "-u", "1000", "e", "/probe", "status"]).0,
        "2"
    );
    c.ok(["rm", "-f", "-t", "0", "e"]);
    c.ok([
        "run",
        "-d",
        "--name",
        "u",
        "--security-opt",
        "seccomp=unconfined",
        "-v",
        &b,
        &image,
        "sleep",
        "300",
    ]);
    assert_eq!(status(&c, &["exec", "u", "/probe", "status"]).0, "0");
    c.ok(["rm", "-f", "-t", "0", "u"]);
}

#[test]
fn the_default_profile_filters_run_init_and_exec() {
    default_profile_everywhere(false);
}

#[test]
fn the_default_profile_filters_run_init_and_exec_rootless() {
    default_profile_everywhere(true);
}

#[test]
fn privileged_is_unconfined_and_info_reports_seccomp() {
    let (c, image) = with_image(false);
    let out = c.ok([
        "run",
        "--rm",
        "--privileged",
        &image,
        "grep",
        "Seccomp:",
        "/proc/self/status",
    ]);
    assert_eq!(out, "Seccomp:\t0\n");
    let info: serde_json::Value =
        serde_json::from_str(&c.ok(["info", "--format", "json"])).unwrap();
    assert_eq!(info["host"]["security"]["seccompEnabled"], true, "{info}");
    assert_eq!(
        info["host"]["security"]["seccompProfilePath"], "/usr/share/containers/seccomp.json",
        "{info}"
    );
}

fn custom_profile(rootless: bool) {
    let (c, image) = with_image(rootless);
    let dir = tempfile::Builder::new()
        .prefix("cairn-seccomp-prof-")
        .tempdir_in("/tmp")
        .unwrap();
    let profile = dir.path().join("deny.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"},
            {"names":["unshare"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
            {"names":["chmod"],"action":"SCMP_ACT_ERRNO","errnoRet":13,
             "args":[{"index":1,"value":511,"valueTwo":511,"op":"SCMP_CMP_MASKED_EQ"}]},
            {"names":["fchmodat"],"action":"SCMP_ACT_ERRNO","errnoRet":13,
             "args":[{"index":2,"value":511,"valueTwo":511,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(
        &profile,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let script = "mkdir /tmp/d 2>&1; unshare -Urm true 2>&1; touch /tmp/f; chmod 777 /tmp/f 2>&1; chmod 755 /tmp/f && echo chmod-755-ok";
    let r = c.run([
        "run",
        "--rm",
        "--security-opt",
        &opt,
        &image,
        "sh",
        "-c",
        script,
    ]);
    assert!(
        r.stdout
            .contains("mkdir: cannot create directory '/tmp/d': Operation not permitted"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("unshare failed: Operation not permitted"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("chmod: changing permissions of '/tmp/f': Permission denied"),
        "masked eq: {r:?}"
    );
    assert!(r.stdout.contains("chmod-755-ok"), "{r:?}");
    // exec gets the same profile.
    c.ok([
        "run",
        "-d",
        "--name",
        "p",
        "--security-opt",
        &opt,
        &image,
        "sleep",
        "300",
    ]);
    let r = c.run(["exec", "p", "mkdir", "/tmp/e"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("Operation not permitted"), "{r:?}");
    c.ok(["rm", "-f", "-t", "0", "p"]);
    // podman's default profile allows nested user namespaces (podman in
    // podman): the same in cairn, and the host is untouched by the mount.
    let r = c.run([
        "run",
        "--rm",
        &image,
        "unshare",
        "-Urm",
        "sh",
        "-c",
        "mount -t tmpfs t /mnt && echo nested-ok",
    ]);
    assert_eq!(r.stdout.trim(), "nested-ok", "{r:?}");
}

#[test]
fn a_custom_profile_denies_what_it_lists() {
    custom_profile(false);
}

#[test]
fn a_custom_profile_denies_what_it_lists_rootless() {
    custom_profile(true);
}

#[test]
fn security_opts_as_podman() {
    let (c, image) = with_image(false);
    for bad in [
        "bogus=1",
        "seccomp=/nonexistent/profile.json",
        "no-new-privileges=maybe",
        "mask=relative",
    ] {
        let r = c.fails(125, ["run", "--rm", "--security-opt", bad, &image, "true"]);
        let key = bad.split('=').next().unwrap();
        assert!(r.stderr.contains(key), "{bad}: {}", r.stderr);
    }
    let bad_profile = c.scratch().join("bad.json");
    std::fs::write(&bad_profile, r#"{"defaultAction":"SCMP_ACT_FLY"}"#).unwrap();
    let r = c.fails(
        125,
        [
            "create",
            "--security-opt",
            &format!("seccomp={}", bad_profile.display()),
            &image,
            "true",
        ],
    );
    assert!(r.stderr.contains("SCMP_ACT_FLY"), "{}", r.stderr);
    c.ok([
        "run",
        "--rm",
        "--security-opt",
        "label=disable",
        "--security-opt",
        "apparmor=unconfined",
        &image,
        "true",
    ]);
    // mask= hides a path, unmask= uncovers a default one.
    let mounted = |opts: &[&str], path: &str| {
        let mut a = vec!["run", "--rm"];
        for o in opts {
            a.extend(["--security-opt", o]);
        }
        a.extend([image.as_str(), "cat", "/proc/self/mountinfo"]);
        c.ok(a)
            .lines()
            .any(|l| l.split_whitespace().nth(4) == Some(path))
    };
    assert!(mounted(&[], "/proc/keys"));
    assert!(!mounted(&["unmask=/proc/keys"], "/proc/keys"));
    assert!(!mounted(&["unmask=ALL"], "/proc/sys"));
    assert!(mounted(&["unmask=/proc/k*"], "/proc/sys"));
    assert!(!mounted(&["unmask=/proc/k*"], "/proc/keys"), "a glob");
    assert!(mounted(
        &["mask=/etc/debian_version"],
        "/etc/debian_version"
    ));
    let out = c.ok([
        "run",
        "--rm",
        "--security-opt",
        "mask=/etc/debian_version",
        &image,
        "cat",
        "/etc/debian_version",
    ]);
    assert_eq!(out, "", "masked by /dev/null");
    c.ok([
        "create",
        "--name",
        "i",
        "--security-opt",
        "seccomp=unconfined",
        &image,
        "true",
    ]);
    let opts = c.ok([
        "inspect",
        "--format",
        "{{json .HostConfig.SecurityOpt}}",
        "i",
    ]);
    assert_eq!(opts.trim(), r#"["seccomp=unconfined"]"#);
    // podman 4.3.1 printed exactly this for the same options.
    c.ok([
        "create",
        "--name",
        "j",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "label=disable",
        "--security-opt",
        "mask=/etc/x",
        "--security-opt",
        "no-new-privileges=true",
        &image,
        "true",
    ]);
    let opts = c.ok([
        "inspect",
        "--format",
        "{{json .HostConfig.SecurityOpt}}",
        "j",
    ]);
    assert_eq!(
        opts.trim(),
        r#"["no-new-privileges","label=disable","seccomp=unconfined"]"#
    );
}

/// The probes' answers, `NAME RESULT` lines.
fn probe_lines(out: &str) -> Vec<String> {
    out.lines().map(str::to_owned).collect()
}

fn compare_with_podman(rootless: bool) {
    let podman = Podman::new().unwrap_or_else(|e| panic!("podman is needed here: {e:#}"));
    podman
        .import_fixture(refs::DEBIAN_MIN, "localhost/seccomp-probe:latest")
        .unwrap();
    let (c, image) = with_image(rootless);
    let b = bind();
    // podman's built-in capability set (no containers.conf of Debian's in
    // the isolated podman) adds AUDIT_WRITE, MKNOD and NET_RAW to the 11
    // cairn and Debian's containers.conf use; the profile's includes and
    // excludes depend on the bounding set, so give both the same one.
    let same_caps = [
        "--cap-drop",
        "audit_write",
        "--cap-drop",
        "mknod",
        "--cap-drop",
        "net_raw",
    ];
    for extra in [
        &[][..],
        &["--cap-add", "sys_admin"][..],
        &["--security-opt", "seccomp=unconfined"][..],
    ] {
        // No network on either side: the probes need none, and podman's
        // netavark runs of parallel tests (each podman with a root of its
        // own, so no shared lock) raced on iptables chains once.
        let mut pa = vec!["run", "--rm", "--network", "none", "-v", &b];
        pa.extend(same_caps);
        pa.extend(extra);
        pa.extend(["localhost/seccomp-probe:latest", "/probe"]);
        let theirs = probe_lines(&podman.ok(&pa));
        let mut ca = vec!["run", "--rm", "--network", "none", "-v", &b];
        ca.extend(extra);
        ca.extend([image.as_str(), "/probe"]);
        let ours = probe_lines(&c.ok(&ca));
        assert!(ours.len() > 30, "{ours:?}");
        if rootless && !extra.is_empty() {
            // In a user namespace the kernel's own checks differ from
            // rootful podman's for what the filter lets through; what the
            // filter denies must still be equal.
            let denied = |v: &[String]| -> Vec<String> {
                v.iter()
                    .filter(|l| l.ends_with(" ENOSYS") || l.contains("signal:"))
                    .cloned()
                    .collect()
            };
            assert_eq!(denied(&ours), denied(&theirs), "{extra:?}");
        } else {
            assert_eq!(ours, theirs, "cairn {extra:?} (left) vs podman");
        }
    }
}

#[test]
fn syscall_probes_answer_as_under_podman() {
    compare_with_podman(false);
}

#[test]
fn syscall_probes_answer_as_under_podman_rootless() {
    compare_with_podman(true);
}
