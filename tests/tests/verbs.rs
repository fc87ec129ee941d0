//! The container verbs besides run/create/exec/start, side by side with
//! podman (4.3, crun, isolated: [`cairn_tests::podman::Podman`]) where it
//! runs here: prune's question, `rm -f` of a missing container, filters,
//! `ps -n/--sort/--size`, `top`, `logs --since` forms, `port`, `diff`;
//! and cairn alone for what podman does differently by design (mount
//! paths, generated units, refusals).

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
    Pair {
        cairn: cairn_only(),
        podman,
    }
}

fn cairn_only() -> Cairn {
    let cairn = Cairn::new().expect("cairn environment");
    cairn.pull_fixture_as(refs::DEBIAN_MIN, IMAGE);
    cairn
}

impl Pair {
    /// `args` with both; podman's `create`/`run` get `--network host`.
    fn both(&self, args: &[&str]) -> (Run, Run) {
        let mut pargs: Vec<&str> = args.to_vec();
        if matches!(args.first(), Some(&"create") | Some(&"run")) {
            pargs.insert(1, "--network");
            pargs.insert(2, "host");
        }
        (self.cairn.run(args), self.podman.run(&pargs))
    }

    fn both_ok(&self, args: &[&str]) -> (String, String) {
        let (c, p) = self.both(args);
        assert!(
            c.code == 0 && p.code == 0,
            "{args:?}:\ncairn: {c:?}\npodman: {p:?}"
        );
        (c.stdout, p.stdout)
    }

    /// The same exit code and stdout from both.
    fn same(&self, args: &[&str]) -> Run {
        let (c, p) = self.both(args);
        assert_eq!(
            (c.code, &c.stdout),
            (p.code, &p.stdout),
            "{args:?}:\ncairn: {c:?}\npodman: {p:?}"
        );
        c
    }
}

/// Runs `cmd` with `input` on its stdin.
fn with_stdin(mut cmd: Command, input: &str) -> Run {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("wait");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Container ids (12 or 64 hex digits standing alone) become `<id>`.
fn ids(s: &str) -> String {
    s.split_inclusive(|c: char| !c.is_ascii_alphanumeric())
        .map(|w| {
            let word = w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
            let hex = word
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if hex && (word.len() == 12 || word.len() == 64) {
                w.replacen(word, "<id>", 1)
            } else {
                w.to_owned()
            }
        })
        .collect()
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
    v.sort();
    v
}

/// `container prune` asks on stdout, keeps everything unless the answer
/// starts with y, fails on end of input; `-f` does not ask.
#[test]
fn prune_asks_first_as_podman() {
    let p = pair();
    p.both_ok(&["create", "--name", "old", IMAGE, "true"]);
    let prompt = "WARNING! This will remove all non running containers.\nAre you sure you want to continue? [y/N] ";
    for answer in ["n\n", "\n", "no\n", "x\n"] {
        let c = with_stdin(p.cairn.command(["container", "prune"]), answer);
        let q = with_stdin(p.podman.command(["container", "prune"]), answer);
        assert_eq!(
            (c.code, c.stdout.as_str()),
            (0, prompt),
            "cairn, {answer:?}"
        );
        assert_eq!(
            (q.code, q.stdout.as_str()),
            (0, prompt),
            "podman, {answer:?}"
        );
        p.same(&["container", "exists", "old"]);
        assert_eq!(p.cairn.run(["container", "exists", "old"]).code, 0);
    }
    // End of input: podman's `Error: EOF`, nothing removed.
    let c = with_stdin(p.cairn.command(["container", "prune"]), "");
    let q = with_stdin(p.podman.command(["container", "prune"]), "");
    assert_eq!((c.code, c.stderr.trim()), (125, "Error: EOF"));
    assert_eq!((q.code, q.stderr.trim()), (125, "Error: EOF"));
    assert_eq!(p.cairn.run(["container", "exists", "old"]).code, 0);
    // A filter that matches nothing removes nothing, even on yes.
    let c = with_stdin(
        p.cairn
            .command(["container", "prune", "--filter", "label=nosuch"]),
        "yes\n",
    );
    assert_eq!((c.code, c.stdout.as_str()), (0, prompt));
    assert_eq!(p.cairn.run(["container", "exists", "old"]).code, 0);
    // y: removed, the id printed after the question.
    let c = with_stdin(p.cairn.command(["container", "prune"]), "y\n");
    let q = with_stdin(p.podman.command(["container", "prune"]), "y\n");
    assert_eq!(ids(&c.stdout), ids(&q.stdout));
    assert_eq!(ids(&c.stdout), format!("{prompt}<id>\n"));
    p.same(&["container", "exists", "old"]);
    assert_eq!(p.cairn.run(["container", "exists", "old"]).code, 1);
    // -f: no question.
    p.both_ok(&["create", "--name", "old2", IMAGE, "true"]);
    let (c, q) = p.both_ok(&["container", "prune", "-f"]);
    assert_eq!(ids(&c), "<id>\n");
    assert_eq!(ids(&q), "<id>\n");
}

/// `rm -f NOSUCH` exits 0 silently (so `set -e` cleanups work); without -f
/// it is podman's error and exit 1.
#[test]
fn rm_force_of_a_missing_container_is_silent() {
    let p = pair();
    let r = p.same(&["rm", "-f", "nosuch"]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    let (c, q) = p.both(&["rm", "nosuch"]);
    assert_eq!((c.code, c.stderr.as_str()), (q.code, q.stderr.as_str()));
    assert_eq!(c.code, 1);
    // Several names, some missing: the others are removed (podman 4.3
    // removes none here, a bug podman 5 fixed), still exit 0 and silent
    // about the missing ones.
    p.cairn.ok(["create", "--name", "there", IMAGE, "true"]);
    let r = p.cairn.run(["rm", "-f", "there", "nosuch"]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "there\n", "")
    );
    assert_eq!(p.cairn.run(["container", "exists", "there"]).code, 1);
}

/// Repeated `--filter` with the same key: either value; labels: all;
/// different keys: all. Unknown keys and states: podman's errors.
#[test]
fn filters_combine_as_podmans() {
    let p = pair();
    p.both_ok(&[
        "create", "--name", "l1", "-l", "a=1", "-l", "b=2", IMAGE, "true",
    ]);
    p.both_ok(&["create", "--name", "l2", "-l", "a=1", IMAGE, "true"]);
    p.both_ok(&["create", "--name", "other", IMAGE, "true"]);
    for filters in [
        &["name=l1", "name=l2"][..],
        &["label=a=1", "label=b=2"],
        &["label=a=1"],
        &["name=l", "status=created"],
        &["name=l", "status=running"],
        &["status=created", "status=exited"],
        &["name=^l1$", "name=other"],
    ] {
        let mut args = vec!["ps", "-a", "--format", "{{.Names}}"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        let (c, q) = p.both_ok(&args);
        assert_eq!(sorted_lines(&c), sorted_lines(&q), "{filters:?}");
    }
    for bad in ["bogus=1", "status=bogus", "label!=b"] {
        let (c, q) = p.both(&["ps", "-a", "--filter", bad]);
        assert_eq!(
            (c.code, c.stderr.as_str()),
            (q.code, q.stderr.as_str()),
            "{bad}"
        );
        assert_eq!(c.code, 125);
    }
    // stop/rm take the same filters.
    let out = p.cairn.ok(["rm", "--filter", "label=b=2"]);
    assert_eq!(ids(&out), "<id>\n");
    assert_eq!(p.cairn.run(["container", "exists", "l1"]).code, 1);
    assert_eq!(p.cairn.run(["container", "exists", "l2"]).code, 0);
}

/// `-n/--last N` (not --noheading), `--sort`, `--size`.
#[test]
fn ps_last_sort_and_size() {
    let p = pair();
    for name in ["c", "a", "b"] {
        p.both_ok(&["create", "--name", name, IMAGE, "true"]);
    }
    for args in [
        &["ps", "-n", "1", "--format", "{{.Names}}"][..],
        &["ps", "--last", "2", "--format", "{{.Names}}"],
        &["ps", "-a", "--sort", "names", "--format", "{{.Names}}"],
        &["ps", "-a", "--sort", "created", "--format", "{{.Names}}"],
        &["ps", "-a", "--noheading", "--format", "{{.Names}}"],
        &["ps", "-l", "--format", "{{.Names}}"],
    ] {
        p.same(args);
    }
    let (c, q) = p.both(&["ps", "--sort", "bogus"]);
    assert_eq!((c.code, q.code), (125, 125));
    let (c, q) = p.both_ok(&["ps", "-a", "--size"]);
    // Column widths follow the cells (times): the names must agree.
    let head = |s: &str| {
        s.lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(head(&c), head(&q));
    assert!(head(&c).ends_with("SIZE"), "{c}");
    // `0B (virtual 116MB)`: the writable layer, then with the image.
    for line in c.lines().skip(1) {
        let cell = line.rsplit("  ").next().unwrap();
        assert!(
            cell.ends_with("MB)") && cell.contains("B (virtual "),
            "{line}"
        );
    }
    let j: serde_json::Value =
        serde_json::from_str(&p.cairn.ok(["ps", "-a", "--size", "--format", "json"])).unwrap();
    assert!(
        j[0]["Size"]["rootFsSize"].as_u64().unwrap() > 1_000_000,
        "{j}"
    );
    // Refused flags name themselves.
    for flag in ["--pod", "--ns", "--watch=1"] {
        let r = p.cairn.fails(125, ["ps", flag]);
        let name = flag.split('=').next().unwrap();
        assert!(
            r.stderr
                .starts_with(&format!("Error: cairn does not support {name} (")),
            "{}",
            r.stderr
        );
    }
}

/// `top` lists the container's processes only, with psgo's columns and
/// the pids the container sees; ps(1) options go to ps in the container.
#[test]
fn top_shows_only_the_containers_processes() {
    let p = pair();
    p.both_ok(&["run", "-d", "--name", "t", IMAGE, "sleep", "1000"]);
    let (c, q) = p.both_ok(&["top", "t"]);
    // Columns as podman's tabwriter pads them: the ELAPSED column is as
    // wide as its longest cell (a duration such as 1.503849114s), so the
    // header's spacing depends on the time: compared word by word.
    let head = [
        "USER", "PID", "PPID", "%CPU", "ELAPSED", "TTY", "TIME", "COMMAND",
    ];
    let words = |s: &str| -> Vec<String> {
        s.lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(words(&c), head, "{c}");
    assert_eq!(words(&q), head, "{q}");
    assert!(
        c.starts_with("USER        PID         PPID        %CPU        ELAPSED"),
        "{c}"
    );
    assert_eq!(c.lines().count(), 2, "PID 1 only, no host process:\n{c}");
    let cells: Vec<&str> = c.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        (cells[0], cells[1], cells[2], cells[5], cells[6]),
        ("root", "1", "0", "?", "0s")
    );
    assert!(c.lines().nth(1).unwrap().ends_with("sleep 1000 "), "{c:?}");
    p.same(&["top", "t", "pid,comm", "user", "group", "nice", "seccomp"]);
    // A second process: numbered by the container, parent PID 1.
    p.cairn
        .ok(["exec", "t", "sh", "-c", "sleep 500 >/dev/null 2>&1 & true"]);
    let c = p.cairn.ok(["top", "t", "pid", "ppid", "args"]);
    let rows: Vec<Vec<&str>> = c.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 3, "{c}");
    assert_eq!(rows[1], ["1", "0", "sleep", "1000"]);
    assert_eq!(rows[2][1..], ["1", "sleep", "500"]);
    assert!(
        rows[2][0].parse::<u32>().unwrap() < 10,
        "a pid of the container's: {c}"
    );
    let hpid = p.cairn.ok(["top", "t", "hpid"]);
    let host_pid = p.cairn.ok(["inspect", "--format", "{{.State.Pid}}", "t"]);
    assert_eq!(hpid.lines().nth(1), Some(host_pid.trim()));
    // Not descriptors: ps(1) in the container, which the image lacks.
    let (c, q) = p.both(&["top", "t", "-eo", "pid,comm"]);
    assert_eq!((c.code, q.code), (125, 125));
    for r in [&c, &q] {
        assert!(
            r.stderr
                .starts_with("Error: executing ps(1) in the container: "),
            "{}",
            r.stderr
        );
    }
    let (c, q) = p.both(&["top", "nosuch"]);
    assert_eq!((c.code, c.stderr.as_str()), (q.code, q.stderr.as_str()));
}

/// `logs --since/--until` in podman's forms, and several containers'
/// lines prefixed with the short id (or the name with --names).
#[test]
fn logs_time_forms_and_prefixes() {
    let p = pair();
    p.both_ok(&["run", "--name", "a", IMAGE, "echo", "from-a"]);
    p.both_ok(&["run", "--name", "b", IMAGE, "echo", "from-b"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let unix = (now - 3600).to_string();
    let later = Command::new("date")
        .args(["-u", "-d", "+2 days", "+%F"])
        .output()
        .expect("date runs");
    let later = String::from_utf8_lossy(&later.stdout).trim().to_owned();
    for args in [
        &["logs", "--since", "2000-01-01", "a"][..],
        &["logs", "--since", "2000-01-01T10:00:00", "a"],
        &["logs", "--since", "2000-01-01T10:00:00.5", "a"],
        &["logs", "--since", "2000-01-01Z", "a"],
        &["logs", "--since", "2000-01-01T00:00:00+02:00", "a"],
        &["logs", "--since", &unix, "a"],
        &["logs", "--since", "10m", "a"],
        &["logs", "--since", &later, "a"],
        &["logs", "--until", "2000-01-01", "a"],
        &["logs", "--until", "10m", "a"],
    ] {
        p.same(args);
    }
    // podman reads several containers' logs concurrently, so its order of
    // their lines varies from run to run: compared as sets of lines.
    let sorted = |s: &str| {
        let mut l: Vec<&str> = s.lines().collect();
        l.sort_unstable();
        l.join("\n")
    };
    let (c, q) = p.both_ok(&["logs", "-n", "a", "b"]);
    assert_eq!(sorted(&c), sorted(&q));
    assert_eq!(c, "a from-a\nb from-b\n", "cairn: in the order given");
    let (c, q) = p.both_ok(&["logs", "a", "b"]);
    assert_eq!(sorted(&ids(&c)), sorted(&ids(&q)));
    assert_eq!(ids(&c), "<id> from-a\n<id> from-b\n");
    let (c, q) = p.both(&["logs", "--since", "bogus", "a"]);
    assert_eq!((c.code, c.stderr.as_str()), (q.code, q.stderr.as_str()));
}

/// No published ports: nothing, exit 0, as podman for such a container.
#[test]
fn port_prints_nothing_without_ports() {
    let p = pair();
    p.both_ok(&["run", "-d", "--name", "srv", IMAGE, "sleep", "1000"]);
    for args in [
        &["port", "srv"][..],
        &["port", "-a"],
        &["port", "srv", "80/tcp"],
    ] {
        let r = p.same(args);
        assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{args:?}");
    }
    for args in [&["port"][..], &["port", "nosuch"], &["port", "-a", "srv"]] {
        let (c, q) = p.both(args);
        assert_eq!(
            (c.code, c.stderr.as_str()),
            (q.code, q.stderr.as_str()),
            "{args:?}"
        );
        assert_eq!(c.code, 125);
    }
}

/// `diff`: the changes the container made, podman's letters and JSON.
#[test]
fn diff_lists_the_containers_changes() {
    let p = pair();
    p.both_ok(&["run", "-d", "--name", "d", IMAGE, "sleep", "1000"]);
    let change = "mkdir -p /newdir/sub && echo x > /newdir/sub/f && rm /etc/motd && echo >> /etc/issue && touch /usr/bin/newbin";
    p.both_ok(&["exec", "d", "sh", "-c", change]);
    let (c, q) = p.both_ok(&["diff", "d"]);
    // podman also lists parents it saw change (`C /usr`), cairn its own
    // mount points' parents (`C /run`): the changes themselves agree.
    let ours = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !matches!(*l, "C /usr" | "C /run"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(ours(&c), ours(&q));
    assert_eq!(
        ours(&c),
        [
            "C /etc",
            "C /etc/issue",
            "D /etc/motd",
            "A /newdir",
            "A /newdir/sub",
            "A /newdir/sub/f",
            "C /usr/bin",
            "A /usr/bin/newbin",
        ]
    );
    let j: serde_json::Value =
        serde_json::from_str(&p.cairn.ok(["diff", "--format", "json", "d"])).unwrap();
    assert_eq!(j["deleted"], serde_json::json!(["/etc/motd"]));
    assert!(j["added"]
        .as_array()
        .unwrap()
        .contains(&"/newdir/sub/f".into()));
    let (c, q) = p.both(&["diff", "nosuch"]);
    assert_eq!((c.code, c.stderr.as_str()), (q.code, q.stderr.as_str()));
}

/// `healthcheck run` without a health check, or on a stopped container:
/// podman's errors.
#[test]
fn healthcheck_errors_as_podman() {
    let p = pair();
    p.both_ok(&["run", "-d", "--name", "h", IMAGE, "sleep", "1000"]);
    p.both_ok(&["create", "--name", "idle", IMAGE, "true"]);
    for name in ["h", "idle", "nosuch"] {
        let (c, q) = p.both(&["healthcheck", "run", name]);
        assert_eq!((c.code, ids(&c.stderr)), (q.code, ids(&q.stderr)), "{name}");
        assert_eq!(c.code, 125);
    }
}

/// `mount` prints where the root is (a running container's through
/// /proc), `unmount` undoes it.
#[test]
fn mount_prints_the_root() {
    if !cairn_tests::util::is_root() {
        eprintln!("skipped: mount needs root");
        return;
    }
    let c = cairn_only();
    c.ok(["create", "--name", "m", IMAGE, "true"]);
    let path = c.ok(["mount", "m"]);
    let path = std::path::Path::new(path.trim());
    assert!(path.join("etc/os-release").exists(), "{}", path.display());
    let listed = c.ok(["mount"]);
    assert!(listed.contains(&path.display().to_string()), "{listed}");
    assert_eq!(c.ok(["unmount", "m"]), "m\n");
    assert!(!path.join("etc/os-release").exists());
    assert_eq!(c.ok(["mount"]), "");
    c.ok(["run", "-d", "--name", "r", IMAGE, "sleep", "1000"]);
    let pid = c.ok(["inspect", "--format", "{{.State.Pid}}", "r"]);
    assert_eq!(c.ok(["mount", "r"]), format!("/proc/{}/root\n", pid.trim()));
    c.ok(["rm", "-f", "-t", "0", "r"]);
}

/// `generate systemd --new --name`: a unit whose commands run (the
/// ExecStartPre/ExecStart lines executed as systemd would, %t and %n
/// replaced).
#[test]
fn generated_unit_runs_the_container() {
    let c = cairn_only();
    c.ok([
        "create", "--name", "web", "-e", "A=1", IMAGE, "sh", "-c", "echo $A",
    ]);
    let unit = c.ok([
        "generate",
        "systemd",
        "--new",
        "--name",
        "--no-header",
        "web",
    ]);
    assert!(
        unit.starts_with("# container-web.service\n\n[Unit]\n"),
        "{unit}"
    );
    assert!(unit.contains("\nTimeoutStopSec=70\n"), "{unit}");
    let exec = |key: &str| -> String {
        let start = unit.find(&format!("\n{key}=")).unwrap() + key.len() + 2;
        let mut line = String::new();
        for l in unit[start..].lines() {
            match l.strip_suffix('\\') {
                Some(part) => line.push_str(part),
                None => {
                    line.push_str(l);
                    break;
                }
            }
        }
        line.replace('\t', "")
    };
    let run = tempfile::tempdir().unwrap();
    let t = run.path().to_string_lossy().into_owned();
    let sh = |line: String| {
        // systemd's specifiers and `$$`/`%%` escapes; its quoting is
        // sh's for these words.
        let line = line
            .replace("%t", &t)
            .replace("%n", "container-web.service")
            .replace("%%", "%")
            .replace("$$", "\\$");
        Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .expect("sh runs")
    };
    c.ok(["rm", "web"]);
    assert!(sh(exec("ExecStartPre")).status.success());
    let out = sh(exec("ExecStart"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n", "{out:?}");
    assert_eq!(c.run(["container", "exists", "web"]).code, 1, "--rm");
    assert!(sh(exec("ExecStopPost")).status.success());
    let r = c.fails(125, ["generate", "systemd", "--template", "x"]);
    assert!(r
        .stderr
        .starts_with("Error: cairn does not support --template ("));
}

/// The lifecycle flags podman has: --cidfile, --latest, restart --running,
/// wait --interval, and the refusals.
#[test]
fn lifecycle_flags() {
    let c = cairn_only();
    let dir = tempfile::tempdir().unwrap();
    let cid = dir.path().join("cid");
    c.ok(["run", "-d", "--name", "one", IMAGE, "sleep", "1000"]);
    let id = c.ok(["inspect", "--format", "{{.Id}}", "one"]);
    std::fs::write(&cid, id.trim()).unwrap();
    c.ok(["create", "--name", "two", IMAGE, "true"]);
    assert_eq!(
        c.ok(["restart", "-a", "--running", "-t", "0"]).trim(),
        id.trim()
    );
    assert_eq!(c.ok(["ps", "--format", "{{.Names}}"]), "one\n");
    assert_eq!(
        c.ok(["stop", "-t", "0", "--cidfile", cid.to_str().unwrap()])
            .trim(),
        id.trim()
    );
    assert_eq!(c.ok(["wait", "-i", "10ms", "one"]), "137\n");
    c.fails(125, ["wait", "--interval", "soon", "one"]);
    c.ok(["rm", "--latest"]);
    assert_eq!(c.run(["container", "exists", "two"]).code, 1);
    c.ok(["rm", "--cidfile", cid.to_str().unwrap()]);
    assert_eq!(c.run(["container", "exists", "one"]).code, 1);
    for (args, flag) in [(&["init", "x"][..], "init"), (&["attach", "x"], "attach")] {
        let r = c.fails(125, args);
        assert!(
            r.stderr
                .starts_with(&format!("Error: cairn does not support {flag} (")),
            "{}",
            r.stderr
        );
    }
}

/// A helper's failure is printed once, as the engine's error.
#[test]
fn runtime_errors_are_printed_once() {
    let c = cairn_only();
    let r = c.fails(127, ["run", "--rm", IMAGE, "/no-such-program"]);
    assert_eq!(
        r.stderr.matches("exec /no-such-program").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .starts_with("Error: cairn-pivot: exec /no-such-program"),
        "{}",
        r.stderr
    );
}

/// `cp - CTR:DIR` unpacks a tar stream from stdin, `cp CTR:PATH -` writes
/// one, and copies keep directory mtimes both ways, as podman's do.
#[test]
fn cp_streams_and_directory_times() {
    let p = pair();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("d1/d2")).unwrap();
    std::fs::write(src.join("d1/d2/f"), "hi\n").unwrap();
    let ok = |cmd: &mut Command| assert!(cmd.status().unwrap().success(), "{cmd:?}");
    ok(Command::new("touch")
        .args(["-d", "2001-01-01 00:00:00Z"])
        .arg(src.join("d1/d2"))
        .arg(src.join("d1")));
    let tarball = work.path().join("a.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(&tarball)
        .arg("d1"));
    let data = std::fs::read(&tarball).unwrap();
    let input = String::from_utf8_lossy(&data).into_owned();
    assert!(input.len() == data.len(), "an ASCII tar for stdin");
    p.both_ok(&["run", "-d", "--name", "c", IMAGE, "sleep", "1000"]);
    let c = with_stdin(p.cairn.command(["cp", "-", "c:/tmp"]), &input);
    let q = with_stdin(p.podman.command(["cp", "-", "c:/tmp"]), &input);
    assert_eq!((c.code, q.code), (0, 0), "{c:?} {q:?}");
    let stat = [
        "exec",
        "c",
        "stat",
        "-c",
        "%n %Y %s %a",
        "/tmp/d1",
        "/tmp/d1/d2",
        "/tmp/d1/d2/f",
    ];
    let r = p.same(&stat);
    assert!(r.stdout.starts_with("/tmp/d1 978307200 "), "{}", r.stdout);
    // Not a directory: podman's refusal.
    let c = with_stdin(p.cairn.command(["cp", "-", "c:/etc/hostname"]), &input);
    let q = with_stdin(p.podman.command(["cp", "-", "c:/etc/hostname"]), &input);
    assert_eq!((c.code, q.code), (125, 125));
    assert!(
        c.stderr
            .ends_with("destination must be a directory when copying from stdin\n"),
        "{}",
        c.stderr
    );
    // Out as a tar stream: the same entries.
    let names = |run: Run| -> Vec<String> {
        assert_eq!(run.code, 0, "{run:?}");
        let mut ar = tar::Archive::new(run.stdout.as_bytes());
        let mut v: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_owned()
            })
            .collect();
        v.sort();
        v
    };
    let (c, q) = p.both(&["cp", "c:/tmp/d1", "-"]);
    assert_eq!(names(c), names(q));
    // Out to the host: directory mtimes kept.
    let out = work.path().join("out");
    p.cairn.ok(["cp", "c:/tmp/d1", out.to_str().unwrap()]);
    for d in [out.clone(), out.join("d2")] {
        let m = std::fs::metadata(&d).unwrap().modified().unwrap();
        let secs = m.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 978_307_200, "{}", d.display());
    }
}
