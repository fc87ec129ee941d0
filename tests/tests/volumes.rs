//! `volume create|ls|inspect|rm|prune|exists` beside podman 4.3: the same
//! commands on both, outputs and exit codes compared (container ids, paths
//! and times normalized where they must differ), and named volumes as
//! containers see them (data kept across containers, mounted nosuid,nodev).

use std::io::Write as _;
use std::process::{Command, Stdio};

use cairn_tests::fixtures::refs;
use cairn_tests::podman::Podman;
use cairn_tests::{Cairn, Run};

/// The fixture image's name on both sides.
const IMAGE: &str = "localhost/debian-min:latest";

struct Pair {
    cairn: Cairn,
    podman: Podman,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = self.cairn.run(["rm", "-a", "-f", "-t", "0"]);
    }
}

fn pair() -> Pair {
    let podman = Podman::new().unwrap_or_else(|e| panic!("podman is needed here: {e:#}"));
    podman
        .import_fixture(refs::DEBIAN_MIN, IMAGE)
        .expect("podman imports the image");
    let cairn = Cairn::new().expect("cairn environment");
    cairn.pull_fixture_as(refs::DEBIAN_MIN, IMAGE);
    Pair { cairn, podman }
}

/// Runs `cmd` with `input` on its stdin.
fn with_stdin(mut cmd: Command, input: &str) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Pair {
    /// `args` on both; podman's `create`/`run` with `--network host`.
    fn both(&self, args: &[&str]) -> (Run, Run) {
        let mut pargs = args.to_vec();
        if matches!(args.first(), Some(&"create" | &"run")) {
            pargs.splice(1..1, ["--network", "host"]);
        }
        (self.cairn.run(args), self.podman.run(&pargs))
    }

    /// `args` on both: the same exit code, stdout and stderr.
    fn same(&self, args: &[&str]) -> Run {
        let (c, p) = self.both(args);
        assert_eq!(
            (c.code, &c.stdout, &c.stderr),
            (p.code, &p.stdout, &p.stderr),
            "{args:?}"
        );
        c
    }

    /// `args` on both with `input` on stdin.
    fn same_with_stdin(&self, args: &[&str], input: &str) -> Run {
        let c = with_stdin(self.cairn.command(args), input);
        let p = with_stdin(self.podman.command(args), input);
        assert_eq!(
            (c.code, &c.stdout, &c.stderr),
            (p.code, &p.stdout, &p.stderr),
            "{args:?} <<< {input:?}"
        );
        c
    }
}

/// Container ids (64 hex) as `ID`.
fn no_ids(s: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for ch in s.chars() {
        if ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase() {
            run.push(ch);
            continue;
        }
        out.push_str(if run.len() == 64 { "ID" } else { &run });
        run.clear();
        out.push(ch);
    }
    out.push_str(if run.len() == 64 { "ID" } else { &run });
    out
}

#[test]
fn create_ls_inspect_exists_as_podman() {
    let p = pair();
    assert_eq!(p.same(&["volume", "create", "v1"]).stdout, "v1\n");
    p.same(&["volume", "create", "--label", "a=b", "v2"]);
    let again = p.same(&["volume", "create", "v1"]);
    assert_eq!(again.code, 125);
    assert_eq!(
        again.stderr,
        "Error: volume with name v1 already exists: volume already exists\n"
    );
    assert_eq!(
        p.same(&["volume", "ls"]).stdout,
        "DRIVER      VOLUME NAME\nlocal       v1\nlocal       v2\n"
    );
    p.same(&["volume", "ls", "-q"]);
    p.same(&["volume", "ls", "--noheading"]);
    assert_eq!(
        p.same(&["volume", "ls", "-q", "--filter", "label=a"])
            .stdout,
        "v2\n"
    );
    p.same(&["volume", "ls", "-q", "--filter", "label=a=c"]);
    p.same(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        "name=v",
        "--filter",
        "dangling=true",
    ]);
    p.same(&[
        "volume",
        "inspect",
        "--format",
        "{{.Name}} {{.Driver}} {{.Labels}} {{.Scope}} {{.MountCount}} {{.Options}}",
        "v1",
        "v2",
    ]);
    p.same(&[
        "volume",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}} {{.Labels}}",
    ]);
    // The JSON has podman's fields, in podman's order.
    let (c, pd) = p.both(&["volume", "inspect", "v2"]);
    let keys = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("          \""))
            .map(|l| l.trim().split(':').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        keys(&c.stdout),
        keys(&pd.stdout),
        "{}\n{}",
        c.stdout,
        pd.stdout
    );
    assert!(c.stdout.contains("\"Mountpoint\": \""), "{}", c.stdout);
    assert_eq!(p.same(&["volume", "exists", "v1"]).code, 0);
    assert_eq!(p.same(&["volume", "exists", "nov"]).code, 1);
    let missing = p.same(&["volume", "inspect", "nov"]);
    assert_eq!(missing.code, 125);
    // A random name when none is given.
    let (c, pd) = p.both(&["volume", "create"]);
    assert_eq!((c.code, pd.code), (0, 0));
    assert_eq!((c.stdout.trim().len(), pd.stdout.trim().len()), (64, 64));
}

#[test]
fn rm_and_prune_as_podman() {
    let p = pair();
    for v in ["used", "free1", "free2"] {
        p.same(&["volume", "create", v]);
    }
    let (c, pd) = p.both(&["create", "--name", "user", "-v", "used:/d", IMAGE, "true"]);
    assert_eq!((c.code, pd.code), (0, 0), "{c:?} {pd:?}");
    let (c, pd) = p.both(&["volume", "rm", "used"]);
    assert_eq!((c.code, no_ids(&c.stderr)), (pd.code, no_ids(&pd.stderr)));
    assert_eq!(c.code, 2);
    assert_eq!(
        no_ids(&c.stderr),
        "Error: volume used is being used by the following container(s): ID: volume is being used\n"
    );
    let gone = p.same(&["volume", "rm", "nov"]);
    assert_eq!(
        (gone.code, gone.stderr.as_str()),
        (
            1,
            "Error: no volume with name \"nov\" found: no such volume\n"
        )
    );
    // prune asks on stdout; anything but y keeps everything.
    let asked = p.same_with_stdin(&["volume", "prune"], "n\n");
    assert_eq!(
        asked.stdout,
        "WARNING! This will remove all volumes not used by at least one container. The following volumes will be removed:\n\
         free1\nfree2\nAre you sure you want to continue? [y/N] "
    );
    assert_eq!(
        p.same(&["volume", "ls", "-q"]).stdout,
        "free1\nfree2\nused\n"
    );
    let pruned = p.same_with_stdin(&["volume", "prune"], "y\n");
    assert!(
        pruned.stdout.ends_with("[y/N] free1\nfree2\n"),
        "{pruned:?}"
    );
    assert_eq!(p.same(&["volume", "ls", "-q"]).stdout, "used\n");
    p.same(&["volume", "prune", "-f"]);
    p.same_with_stdin(&["volume", "prune"], "y\n");
    // -f removes the containers that use it.
    assert_eq!(p.same(&["volume", "rm", "-f", "used"]).stdout, "used\n");
    p.same(&["ps", "-a", "-q"]);
    assert_eq!(p.cairn.ok(["ps", "-a", "-q"]), "");
    // --all: the unused ones go, an used one is an error (2).
    for v in ["a1", "a2"] {
        p.same(&["volume", "create", v]);
    }
    p.both(&["create", "--name", "user2", "-v", "a2:/d", IMAGE, "true"]);
    let (c, pd) = p.both(&["volume", "rm", "--all"]);
    assert_eq!((c.code, &c.stdout), (pd.code, &pd.stdout));
    assert_eq!((c.code, c.stdout.as_str()), (2, "a1\n"));
}

/// A named volume keeps its data across containers and is mounted
/// nosuid,nodev (podman's defaults), the same options as podman's.
#[test]
fn named_volume_data_and_mount_options() {
    let p = pair();
    let opts = "awk '$5 == \"/data\" {print $6}' /proc/self/mountinfo";
    let (c, pd) = p.both(&["run", "--rm", "-v", "keep:/data", IMAGE, "sh", "-c", opts]);
    assert_eq!((c.code, &c.stdout), (pd.code, &pd.stdout), "{c:?} {pd:?}");
    assert_eq!(c.stdout, "rw,nosuid,nodev,relatime\n");
    p.cairn.ok([
        "run",
        "--rm",
        "-v",
        "keep:/data",
        IMAGE,
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    let out = p.cairn.ok([
        "run",
        "--rm",
        "-v",
        "keep:/data:ro",
        IMAGE,
        "cat",
        "/data/f",
    ]);
    assert_eq!(out, "kept\n");
    // The container made the volume: it is listed and inspectable.
    assert_eq!(p.cairn.ok(["volume", "ls", "-q"]), "keep\n");
    let mp = p
        .cairn
        .ok(["volume", "inspect", "--format", "{{.Mountpoint}}", "keep"]);
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(mp.trim()).join("f")).unwrap(),
        "kept\n"
    );
}
