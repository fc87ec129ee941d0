//! cairn next to podman (4.3, crun) on the same image with the same flags:
//! `inspect --format` and `ps --format` with the templates real tools use
//! (distrobox, toolbox, devpod and the like drive their engine through
//! these), the environment a container sees, and exit codes.
//!
//! podman runs isolated ([`cairn_tests::podman::Podman`]) with `--network
//! host`, because cairn has no network stack and its default network is the
//! host's. Where a field is inherently different (ids, pids, times, paths,
//! the engine's name), the table normalizes or skips it and says why.
//! Differences that are cairn bugs outside `inspect.rs` are rows marked
//! [`Check::Bug`]: the main tests leave them out, and the `#[ignore]`d
//! `known_differences_*` tests assert them, so they fail until fixed.

use std::collections::BTreeMap;
use std::fs;

use cairn_tests::fixtures::refs;
use cairn_tests::podman::Podman;
use cairn_tests::{Cairn, Run};
use serde_json::Value;

/// The fixture image's name on both sides.
const IMAGE: &str = "localhost/debian-min:latest";

/// One cairn store and one podman, both holding [`IMAGE`].
struct Pair {
    cairn: Cairn,
    podman: Podman,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = self.cairn.run(["rm", "-a", "-f", "-t", "0"]);
        // Podman's own drop removes its containers.
    }
}

fn pair() -> Pair {
    let podman = Podman::new().unwrap_or_else(|e| panic!("podman is needed here: {e:#}"));
    let podman_id = podman
        .import_fixture(refs::DEBIAN_MIN, IMAGE)
        .expect("podman imports the image");
    let cairn = Cairn::new().expect("cairn environment");
    let id = cairn.pull_fixture_as(refs::DEBIAN_MIN, IMAGE);
    assert_eq!(id, podman_id, "the same image id on both sides");
    Pair { cairn, podman }
}

impl Pair {
    /// Runs `args` with both; `create`/`run` get `--network host` right
    /// after the verb on both sides (the host's network, which these
    /// comparisons were written for, and no bridge made by podman here).
    fn both(&self, args: &[&str]) -> (Run, Run) {
        let mut pargs: Vec<&str> = args.to_vec();
        if matches!(args.first(), Some(&"create") | Some(&"run")) {
            pargs.insert(1, "--network");
            pargs.insert(2, "host");
        }
        (self.cairn.run(&pargs), self.podman.run(&pargs))
    }

    /// Runs `args` with both and requires exit 0 from each.
    fn both_ok(&self, args: &[&str]) {
        let (c, p) = self.both(args);
        assert!(
            c.code == 0 && p.code == 0,
            "{args:?}:\ncairn: {c:?}\npodman: {p:?}"
        );
    }
}

/// How a row's outputs are compared.
#[derive(Clone, Copy)]
enum Check {
    /// Byte for byte.
    Same,
    /// After the same normalization of both; the string says why.
    Norm(fn(&str) -> String, &'static str),
    /// Not compared; the string says why.
    Skip(&'static str),
    /// Differs because of a cairn bug outside inspect.rs: compared (after
    /// the normalization) only by the ignored `known_differences_*` tests.
    Bug(fn(&str) -> String, &'static str),
}

fn unchanged(s: &str) -> String {
    s.to_owned()
}

/// Each maximal run of ASCII digits becomes `N`: the shape of times and
/// numbers whose values differ (clocks, pids).
fn shape(s: &str) -> String {
    let mut out = String::new();
    let mut in_digits = false;
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            out.push(ch);
            in_digits = false;
        }
    }
    out
}

/// Container ids (12 or 64 lowercase hex digits standing alone) become
/// `<id>`: each engine picks its own.
fn ids(s: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let hex = word
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex && (word.len() == 12 || word.len() == 64) {
            out.push_str("<id>");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for ch in s.chars() {
        if ch.is_ascii_alphanumeric() {
            word.push(ch);
        } else {
            flush(&mut word, &mut out);
            out.push(ch);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The host's name and container ids become `<host>`: podman on the host
/// network defaults the host name to the host's, cairn (whose default
/// network is the host's) to the short id, as podman does on a private
/// network.
fn hostname(s: &str) -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    let s = ids(s).replace("<id>", "<host>");
    if host.is_empty() {
        return s;
    }
    // Whole words only.
    s.split_inclusive(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.')
        .map(|w| {
            let (word, sep) = w.split_at(
                w.find(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.')
                    .unwrap_or(w.len()),
            );
            if word == host {
                format!("<host>{sep}")
            } else {
                w.to_owned()
            }
        })
        .collect()
}

/// A JSON list of `KEY=value` sorted, host names normalized.
fn sorted_env(s: &str) -> String {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(s) else {
        return s.to_owned();
    };
    let mut v: Vec<String> = items
        .iter()
        .map(|i| hostname(i.as_str().unwrap_or_default()))
        .collect();
    v.sort();
    v.join("\n")
}

/// ps's human durations (`Up 3 seconds ago`, `Exited (0) Less than a
/// second ago`, `About a minute ago`) become `<t> ago`: the two engines
/// started their containers moments apart.
fn durations(s: &str) -> String {
    s.lines()
        .map(|line| {
            let Some(end) = line.rfind(" ago") else {
                return line.to_owned();
            };
            let start = if let Some(i) = line[..end].rfind(") ") {
                i + 2
            } else if line.starts_with("Up ") {
                3
            } else {
                0
            };
            format!("{}<t>{}", &line[..start], &line[end..])
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// podman 4.3's containers.conf still grants CAP_AUDIT_WRITE, CAP_MKNOD and
/// CAP_NET_RAW by default (removed from podman's defaults in later
/// releases); cairn grants the 11 later defaults and reports what it
/// grants, so those three are dropped from both lists.
fn newer_default_caps(s: &str) -> String {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(s) else {
        return s.to_owned();
    };
    let v: Vec<&str> = items
        .iter()
        .filter_map(Value::as_str)
        .filter(|c| !["CAP_AUDIT_WRITE", "CAP_MKNOD", "CAP_NET_RAW"].contains(c))
        .collect();
    v.join(",")
}

/// A list printed by a template (`[a b]`, or items separated by spaces)
/// sorted: podman orders mounts by iterating a Go map, so at random.
fn sorted_list(s: &str) -> String {
    let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
    let mut v: Vec<&str> = inner.split_whitespace().collect();
    v.sort_unstable();
    v.join(" ")
}

/// A JSON list sorted by each item's text (see [`sorted_list`]).
fn sorted_json_list(s: &str) -> String {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(s) else {
        return s.to_owned();
    };
    let mut v: Vec<String> = items.iter().map(Value::to_string).collect();
    v.sort();
    v.join(",")
}

/// A Go nil map marshals as `null` but prints as `map[]` and indexes to
/// "" in a template; cairn's template data is JSON, where it keeps `{}` so
/// that the template uses work like podman's, so `null` and `{}` are equal
/// here.
fn nil_map(s: &str) -> String {
    s.trim().replace("null", "{}")
}

/// podman's tmpfs options always end in `tmpcopyup`; cairn does not copy
/// the image's files up (a bug, see `tmpfs_starts_with_the_images_files`
/// in lifecycle.rs), so until it does this row is a known difference.
fn as_is(s: &str) -> String {
    s.to_owned()
}

/// `inspect --format` rows.
const INSPECT_ROWS: &[(&str, Check)] = &[
    ("{{.State.Status}}", Check::Same),
    ("{{.State.Running}}", Check::Same),
    (
        "{{.State.Paused}} {{.State.Restarting}} {{.State.OOMKilled}} {{.State.Dead}}",
        Check::Same,
    ),
    ("{{.State.ExitCode}}", Check::Same),
    ("{{.State.Error}}", Check::Same),
    ("{{if .State.Pid}}has pid{{else}}no pid{{end}}", Check::Same),
    ("{{.State.Pid}}", Check::Skip("host pids differ (presence compared above)")),
    (
        "{{if .State.ConmonPid}}has monitor{{else}}no monitor{{end}}",
        Check::Same,
    ),
    ("{{.State.Health.Status}}", Check::Same),
    (
        "{{json .State.StartedAt}}",
        Check::Bug(
            shape,
            "json of a time prints Go's time.Time.String(), not RFC 3339 (the template data \
             holds Go strings since 07ad571)",
        ),
    ),
    (
        "{{json .State.FinishedAt}}",
        Check::Bug(
            shape,
            "json of a time prints Go's time.Time.String(), not RFC 3339 (the template data \
             holds Go strings since 07ad571)",
        ),
    ),
    (
        "{{json .Created}}",
        Check::Bug(
            shape,
            "json of a time prints Go's time.Time.String(), not RFC 3339 (the template data \
             holds Go strings since 07ad571)",
        ),
    ),
    // Go's time.Time.String() in templates: 2006-01-02 15:04:05.999999999 +0000 UTC.
    ("{{.State.StartedAt}}", Check::Norm(shape, "times differ")),
    ("{{.State.FinishedAt}}", Check::Norm(shape, "times differ")),
    ("{{.Created}}", Check::Norm(shape, "times differ")),
    ("{{.Config.Cmd}}", Check::Same),
    ("{{json .Config.Cmd}}", Check::Same),
    ("{{.Config.Entrypoint}}", Check::Same),
    ("{{json .Config.Entrypoint}}", Check::Same),
    ("{{.Path}} {{json .Args}}", Check::Same),
    (
        "{{json .Config.Env}}",
        Check::Norm(sorted_env, "podman's order is random; host names differ by design"),
    ),
    (
        "{{range .Config.Env}}{{if and (ge (len .) 5) (eq (slice . 0 5) \"HOME=\")}}{{slice . 5 | printf \"%q\"}}{{end}}{{end}}",
        Check::Same,
    ),
    ("{{.Config.Labels}}", Check::Same),
    ("{{index .Config.Labels \"k\"}}", Check::Same),
    ("{{if .Config.Labels.k}}k={{.Config.Labels.k}}{{end}}", Check::Same),
    ("{{json .Config.Labels}}", Check::Norm(nil_map, "nil map")),
    (
        "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
        Check::Same,
    ),
    ("{{.Config.User}}", Check::Same),
    ("{{.Config.WorkingDir}}", Check::Same),
    (
        "{{.Config.Hostname}}",
        Check::Norm(hostname, "default host names differ by design"),
    ),
    ("{{.Name}}", Check::Same),
    ("{{.Id}}", Check::Norm(ids, "each engine picks its ids")),
    ("{{.ImageName}}", Check::Same),
    ("{{.Image}}", Check::Same),
    ("{{.Config.Image}}", Check::Same),
    (
        "{{.Config.Tty}} {{.Config.OpenStdin}} {{.Config.AttachStdin}} {{.Config.StdinOnce}}",
        Check::Same,
    ),
    ("{{.Config.StopSignal}} {{.Config.StopTimeout}}", Check::Same),
    ("{{.RestartCount}}", Check::Same),
    ("{{.Driver}} {{.GraphDriver.Name}}", Check::Same),
    ("{{.HostConfig.Privileged}}", Check::Same),
    ("{{.HostConfig.NetworkMode}}", Check::Same),
    ("{{.HostConfig.PidMode}}", Check::Same),
    ("{{.HostConfig.IpcMode}} {{.HostConfig.UTSMode}}", Check::Same),
    ("{{.HostConfig.UsernsMode}}", Check::Same),
    ("{{.HostConfig.CgroupManager}}", Check::Same),
    ("{{.HostConfig.AutoRemove}}", Check::Same),
    ("{{.HostConfig.Init}}", Check::Same),
    ("{{.HostConfig.ReadonlyRootfs}}", Check::Same),
    ("{{.HostConfig.CapAdd}} {{.HostConfig.CapDrop}}", Check::Same),
    (
        "{{json .EffectiveCaps}}",
        Check::Norm(newer_default_caps, "podman 4.3 grants 3 more by default"),
    ),
    (
        "{{json .BoundingCaps}}",
        Check::Norm(newer_default_caps, "podman 4.3 grants 3 more by default"),
    ),
    (
        "{{range .Mounts}}{{.Destination}}:{{.RW}} {{end}}",
        Check::Norm(sorted_list, "podman's mount order is random"),
    ),
    (
        "{{json .Mounts}}",
        Check::Norm(sorted_json_list, "podman's mount order is random"),
    ),
    (
        "{{.HostConfig.Binds}}",
        Check::Norm(sorted_list, "podman's mount order is random"),
    ),
    (
        "{{json .HostConfig.Tmpfs}}",
        Check::Bug(as_is, "no tmpcopyup: the image's files are not copied into a tmpfs"),
    ),
    ("{{range $k, $v := .HostConfig.Tmpfs}}{{$k}} {{end}}", Check::Same),
    ("{{.HostConfig.LogConfig.Type}}", Check::Same),
    ("{{.HostConfig.ShmSize}}", Check::Same),
    ("{{json .HostConfig.Dns}} {{json .HostConfig.DnsSearch}}", Check::Same),
    ("{{json .HostConfig.ExtraHosts}}", Check::Same),
    ("{{.HostConfig.RestartPolicy.Name}}", Check::Same),
    (
        "{{.HostConfig.Memory}} {{.HostConfig.CpuShares}} {{json .HostConfig.Devices}}",
        Check::Same,
    ),
    ("{{.IsInfra}} {{.Pod}} {{json .ExecIDs}}", Check::Same),
    ("{{.NetworkSettings.IPAddress}}", Check::Same),
    ("{{.Config.Annotations}}", Check::Skip("podman records its own io.podman.* annotations")),
    ("{{.OCIRuntime}}", Check::Skip("the runtime's name: crun vs cairn")),
    (
        "{{.HostConfig.Ulimits}}",
        Check::Skip("podman applies the default_ulimits of the containers.conf this machine needs"),
    ),
    (
        "{{.Config.CreateCommand}}",
        Check::Skip("each engine's own command line"),
    ),
    (
        "{{.GraphDriver.Data.LowerDir}}",
        Check::Skip("store paths differ"),
    ),
];

/// Rows that differ while a container has never been started: cairn
/// records HOME (from the user's passwd entry) and the default HOSTNAME in
/// Config.Env at create, podman only at the first start. Known
/// differences, outside inspect.rs.
const NEVER_STARTED_DIFFS: &[&str] = &[
    "{{json .Config.Env}}",
    "{{range .Config.Env}}{{if and (ge (len .) 5) (eq (slice . 0 5) \"HOME=\")}}{{slice . 5 | printf \"%q\"}}{{end}}{{end}}",
];

/// The containers [`compare_tables`] starts after the "created" stage.
const STARTED: &[&str] = &["full", "plain", "ep", "priv"];

/// Rows skipped for one container: (container, template, why).
const CONTAINER_SKIPS: &[(&str, &str, &str)] = &[(
    "ep",
    "{{.Path}} {{json .Args}}",
    "with --init podman's PID 1 is /run/podman-init with the command as its arguments; \
     cairn's init (cairn-pivot --init) is not a file in the container and the command keeps \
     its own argv",
)];

/// `ps --format` rows (each evaluated over `ps -a`, lines matched by name).
const PS_ROWS: &[(&str, Check)] = &[
    ("{{.Names}}", Check::Same),
    (
        "{{.State}}",
        Check::Norm(durations, "started moments apart"),
    ),
    (
        "{{.Status}}",
        Check::Norm(durations, "started moments apart"),
    ),
    ("{{.Image}}", Check::Same),
    ("{{.ImageID}}", Check::Same),
    ("{{.Labels}}", Check::Same),
    ("{{json .Labels}}", Check::Norm(nil_map, "nil map")),
    ("{{.Command}}", Check::Same),
    ("{{json .Command}}", Check::Same),
    (
        "{{.Mounts}}",
        Check::Norm(sorted_list, "podman's mount order is random"),
    ),
    (
        "{{json .Mounts}}",
        Check::Norm(sorted_json_list, "podman's mount order is random"),
    ),
    ("{{.CreatedAt}}", Check::Norm(shape, "times differ")),
    ("{{.Created}}", Check::Norm(shape, "times differ")),
    (
        "{{.CreatedHuman}}|{{.RunningFor}}",
        Check::Norm(durations, "created moments apart"),
    ),
    ("{{.StartedAt}}", Check::Norm(shape, "times differ")),
    ("{{.ExitedAt}}", Check::Norm(shape, "times differ")),
    ("{{.Exited}} {{.ExitCode}}", Check::Same),
    (
        "{{.AutoRemove}} {{.IsInfra}} {{.Pod}}|{{.PodName}}",
        Check::Same,
    ),
    ("{{.Ports}}|{{.Networks}}", Check::Same),
    ("{{len .ID}} {{.ID | len}}", Check::Same),
    ("{{if .Pid}}has pid{{else}}no pid{{end}}", Check::Same),
    (
        "{{.Namespaces}}",
        Check::Skip("podman prints a Go struct (`{      }`); cairn's data is JSON"),
    ),
    (
        "{{.Restarts}}",
        Check::Skip("podman 4.3 has no Restarts (an error); cairn has later podman's field"),
    ),
    ("{{.Size}}", Check::Skip("podman needs --size for it")),
];

/// Mismatches of one comparison, reported together.
#[derive(Default)]
struct Report {
    compared: usize,
    mismatches: Vec<String>,
    /// Rows not compared, with why (printed with --nocapture).
    skipped: std::collections::BTreeSet<String>,
}

impl Report {
    fn compare(&mut self, what: &str, check: Check, want_bugs: bool, cairn: &Run, podman: &Run) {
        let (norm, why) = match (check, want_bugs) {
            (Check::Same, false) => (unchanged as fn(&str) -> String, ""),
            (Check::Norm(f, why), false) => (f, why),
            (Check::Bug(f, why), true) => (f, why),
            (Check::Skip(why), _) => {
                self.skipped.insert(format!("{what}: {why}"));
                return;
            }
            _ => return,
        };
        self.compared += 1;
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(" ({why})")
        };
        if cairn.code != podman.code {
            self.mismatches.push(format!(
                "{what}{why}: exit {} vs podman {}\n  cairn:  {}\n  podman: {}",
                cairn.code,
                podman.code,
                cairn.stderr.trim(),
                podman.stderr.trim()
            ));
            return;
        }
        let (c, p) = (norm(&cairn.stdout), norm(&podman.stdout));
        if c != p {
            self.mismatches.push(format!(
                "{what}{why}\n  cairn:  {:?}\n  podman: {:?}",
                cairn.stdout, podman.stdout
            ));
        }
    }

    fn assert_clean(self) {
        for s in &self.skipped {
            println!("not compared: {s}");
        }
        println!("{} comparisons", self.compared);
        assert!(self.compared > 0, "nothing compared");
        assert!(
            self.mismatches.is_empty(),
            "{} of {} comparisons differ from podman:\n{}",
            self.mismatches.len(),
            self.compared,
            self.mismatches.join("\n")
        );
    }
}

/// The containers the template tables run over, with the flags each gets
/// on both sides.
fn create_containers(p: &Pair) -> Vec<&'static str> {
    let host = p.cairn.scratch().join("vol");
    fs::create_dir_all(&host).unwrap();
    let ro = format!("{}:/data:ro", host.display());
    let rw = format!("{}:/rw:nosuid,rshared", host.display());
    let z = format!("{}:/z:z,rw,noexec", host.display());
    let env_file = p.cairn.scratch().join("vars.env");
    fs::write(&env_file, "FROM_FILE=1\n# comment\nSPACED=a b\n").unwrap();
    p.both_ok(&[
        "create",
        "--name",
        "full",
        "--label",
        "k=v",
        "--label",
        "a=b",
        "-e",
        "FOO=bar",
        "--env-file",
        env_file.to_str().unwrap(),
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "-v",
        &ro,
        "-v",
        &rw,
        "-v",
        &z,
        "--tmpfs",
        "/scratch",
        "--tmpfs",
        "/t2:size=1m,mode=700",
        "--hostname",
        "hn1",
        IMAGE,
        "sleep",
        "100",
    ]);
    p.both_ok(&["create", "--name", "plain", IMAGE, "sleep", "100"]);
    p.both_ok(&["create", "--name", "dflt", IMAGE]);
    p.both_ok(&[
        "create",
        "--name",
        "ep",
        "--entrypoint",
        "/bin/sh",
        "--init",
        "--stop-timeout",
        "3",
        "-l",
        "only=1",
        IMAGE,
        "-c",
        "exit 3",
    ]);
    p.both_ok(&[
        "create",
        "--name",
        "priv",
        "--privileged",
        "--cap-drop",
        "chown",
        "-u",
        "0:0",
        "--pid",
        "host",
        IMAGE,
        "true",
    ]);
    p.both_ok(&[
        "create",
        "--name",
        "caps",
        "--cap-add",
        "sys_admin",
        "--cap-drop",
        "chown",
        "--rm",
        "-t",
        "-i",
        IMAGE,
        "true",
    ]);
    vec!["full", "plain", "dflt", "ep", "priv", "caps"]
}

/// Runs the inspect and ps tables over the containers at each stage of
/// their life: created, running (the sleepers), exited.
fn compare_tables(want_bugs: bool) {
    let p = pair();
    let names = create_containers(&p);
    let mut report = Report::default();
    let stage = |report: &mut Report, stage: &str, names: &[&str]| {
        for name in names {
            let never_started = stage == "created" || !STARTED.contains(name);
            let rows: Vec<(&str, Check)> = INSPECT_ROWS
                .iter()
                .filter(|(t, _)| !CONTAINER_SKIPS.iter().any(|(n, st, _)| n == name && st == t))
                .map(|&(t, check)| match check {
                    Check::Same | Check::Norm(..) if never_started && NEVER_STARTED_DIFFS.contains(&t) => {
                        let norm = match check {
                            Check::Norm(f, _) => f,
                            _ => unchanged,
                        };
                        (
                            t,
                            Check::Bug(
                                norm,
                                "HOME and the default HOSTNAME in Config.Env before the first start",
                            ),
                        )
                    }
                    _ => (t, check),
                })
                .collect();
            let what = |t: &str| format!("[{stage}] inspect {name} {t}");
            compare_rows(report, want_bugs, &rows, &what, |template| {
                p.both(&["inspect", "--format", template, name])
            });
        }
        // ps: one line per container, `NAME<TAB>output`; matched by name
        // as the engines list in different orders.
        for name in names {
            let what = |t: &str| format!("[{stage}] ps {name} {t}");
            compare_rows(report, want_bugs, PS_ROWS, &what, |template| {
                let fmt = format!("{{{{.Names}}}}\t{template}");
                let (c, pm) = p.both(&["ps", "-a", "--format", &fmt]);
                let pick = |r: Run| Run {
                    stdout: r
                        .stdout
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}\t")))
                        .unwrap_or("<missing>")
                        .to_owned(),
                    ..r
                };
                (pick(c), pick(pm))
            });
        }
    };
    stage(&mut report, "created", &names);
    p.both_ok(&["start", STARTED[0], STARTED[1], STARTED[2], STARTED[3]]);
    p.both_ok(&["wait", "ep", "priv"]);
    stage(&mut report, "running", &["full", "plain"]);
    p.both_ok(&["stop", "-t", "0", "full", "plain"]);
    stage(&mut report, "exited", &names);
    report.assert_clean();
}

/// Separates the rows of one batched template run.
const ROW_SEP: &str = "<<<row>>>";

/// Compares `rows` with one run of each engine over all of them joined by
/// [`ROW_SEP`] (a process per row would take minutes); when the batch
/// fails on either side, row by row, so the report names the failing row.
fn compare_rows(
    report: &mut Report,
    want_bugs: bool,
    rows: &[(&str, Check)],
    what: &dyn Fn(&str) -> String,
    run: impl Fn(&str) -> (Run, Run),
) {
    let joined: Vec<&str> = rows.iter().map(|(t, _)| *t).collect();
    let (c, pm) = run(&joined.join(ROW_SEP));
    if c.code == 0 && pm.code == 0 {
        let split = |r: &Run| -> Vec<String> {
            r.stdout
                .trim_end_matches('\n')
                .split(ROW_SEP)
                .map(str::to_owned)
                .collect()
        };
        let (cs, ps) = (split(&c), split(&pm));
        if cs.len() == rows.len() && ps.len() == rows.len() {
            for (i, (template, check)) in rows.iter().enumerate() {
                let one = |out: &str| Run {
                    code: 0,
                    stdout: out.to_owned(),
                    stderr: String::new(),
                };
                report.compare(
                    &what(template),
                    *check,
                    want_bugs,
                    &one(&cs[i]),
                    &one(&ps[i]),
                );
            }
            return;
        }
    }
    for (template, check) in rows {
        let (c, pm) = run(template);
        report.compare(&what(template), *check, want_bugs, &c, &pm);
    }
}

#[test]
fn inspect_and_ps_templates_match_podman() {
    compare_tables(false);
}

#[test]
#[ignore = "BUG: {{json .State.StartedAt}} and other json of times print Go strings, not RFC 3339; a never started container's Config.Env has HOME and the default HOSTNAME; --tmpfs has no tmpcopyup"]
fn known_differences_in_inspect_templates() {
    compare_tables(true);
}

#[test]
fn ps_table_and_json_have_podmans_shape() {
    let p = pair();
    p.both_ok(&[
        "run", "-d", "--name", "one", "-l", "x=y", IMAGE, "sleep", "100",
    ]);
    p.both_ok(&["create", "--name", "two", IMAGE, "true"]);
    ps_formats_match(&p);
    ps_json_has_podmans_fields(&p);
}

/// `ps` in table, template and quiet formats, with filters, prints what
/// podman prints (ids and times normalized, rows in any order).
fn ps_formats_match(p: &Pair) {
    let mut report = Report::default();
    // `table`: a header row from the field names, columns aligned.
    for (args, check) in [
        (
            vec!["ps", "-a", "--format", "table {{.ID}}\t{{.Names}}"],
            Check::Norm(ids, "ids"),
        ),
        (
            vec![
                "ps",
                "-a",
                "--format",
                "table {{.Names}}\t{{.Image}}\t{{.Labels}}",
            ],
            Check::Same,
        ),
        (
            vec!["ps", "--format", "{{.Names}} {{.Status}}"],
            Check::Norm(durations, "times"),
        ),
        (vec!["ps", "-a", "-q"], Check::Norm(ids, "ids")),
        (
            vec!["ps", "-a", "-q", "--no-trunc"],
            Check::Norm(ids, "ids"),
        ),
        (
            vec!["ps", "-a", "--filter", "name=one", "--format", "{{.Names}}"],
            Check::Same,
        ),
        (
            vec![
                "ps",
                "-a",
                "--filter",
                "label=x=y",
                "--format",
                "{{.Names}}",
            ],
            Check::Same,
        ),
        (
            vec![
                "ps",
                "-a",
                "--filter",
                "status=created",
                "--format",
                "{{.Names}}",
            ],
            Check::Same,
        ),
        (
            vec!["ps", "-a", "--filter", "status=running", "-q"],
            Check::Norm(ids, "ids"),
        ),
    ] {
        let (c, pm) = p.both(&args);
        let norm = match check {
            Check::Norm(f, _) => f,
            _ => unchanged,
        };
        let sort_body = |r: &Run| {
            let text = norm(&r.stdout);
            let mut lines: Vec<&str> = text.lines().collect();
            let header = if args.iter().any(|a| a.starts_with("table")) {
                lines.remove(0).to_owned() + "\n"
            } else {
                String::new()
            };
            lines.sort_unstable();
            Run {
                code: r.code,
                stdout: header + &lines.join("\n"),
                stderr: r.stderr.clone(),
            }
        };
        report.compare(
            &format!("{args:?}"),
            check,
            false,
            &sort_body(&c),
            &sort_body(&pm),
        );
    }
    report.assert_clean();
}

/// `ps --format json`: podman's fields, each of the same JSON type, and the
/// same values but where they differ by nature (ids, pids, times).
fn ps_json_has_podmans_fields(p: &Pair) {
    let (c, pm) = p.both(&["ps", "-a", "--format", "json"]);
    let by_name = |r: &Run| -> BTreeMap<String, Value> {
        let v: Value = serde_json::from_str(&r.stdout).expect("ps --format json is JSON");
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| (e["Names"][0].as_str().unwrap().to_owned(), e.clone()))
            .collect()
    };
    let (cj, pj) = (by_name(&c), by_name(&pm));
    assert_eq!(cj.keys().collect::<Vec<_>>(), pj.keys().collect::<Vec<_>>());
    for (name, pe) in &pj {
        let ce = &cj[name];
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let (mut ck, mut pk) = (keys(ce), keys(pe));
        ck.sort();
        pk.sort();
        assert_eq!(ck, pk, "{name}: ps json fields");
        for k in pk {
            let (a, b) = (&ce[&k], &pe[&k]);
            let kind = |v: &Value| match v {
                Value::Null => "null",
                Value::Bool(_) => "bool",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            assert_eq!(kind(a), kind(b), "{name}.{k}: cairn {a} podman {b}");
            match k.as_str() {
                // Values that differ by nature.
                "Id" => assert_eq!(ids(&a.to_string()), ids(&b.to_string()), "{name}.{k}"),
                "Pid" | "Created" | "StartedAt" | "ExitedAt" => {
                    assert_eq!(shape(&a.to_string()), shape(&b.to_string()), "{name}.{k}")
                }
                "Status" | "CreatedAt" => assert_eq!(
                    durations(a.as_str().unwrap()),
                    durations(b.as_str().unwrap()),
                    "{name}.{k}"
                ),
                _ => assert_eq!(a, b, "{name}.{k}"),
            }
        }
    }
}

/// Key paths of a JSON document (objects only; lists by their first item).
fn key_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{prefix}.{k}");
                out.push(p.clone());
                // Maps keyed by data, not schema; podman's default ulimits
                // (this machine's containers.conf), where cairn has none.
                if ![
                    ".Config.Labels",
                    ".Config.Annotations",
                    ".HostConfig.Tmpfs",
                    ".HostConfig.Ulimits",
                ]
                .contains(&p.as_str())
                {
                    key_paths(child, &p, out);
                }
            }
        }
        Value::Array(a) => {
            if let Some(first) = a.first() {
                key_paths(first, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn inspect_json_has_podmans_fields() {
    let p = pair();
    let host = p.cairn.scratch().join("vol");
    fs::create_dir_all(&host).unwrap();
    let v = format!("{}:/data", host.display());
    p.both_ok(&[
        "run", "-d", "--name", "j", "-v", &v, "--tmpfs", "/t", "-l", "a=b", IMAGE, "sleep", "100",
    ]);
    let (c, pm) = p.both(&["inspect", "j"]);
    let paths = |r: &Run| {
        let v: Value = serde_json::from_str(&r.stdout).expect("inspect prints JSON");
        let mut out = Vec::new();
        key_paths(&v[0], "", &mut out);
        out.sort();
        out
    };
    let (cp, pp) = (paths(&c), paths(&pm));
    let missing: Vec<&String> = pp.iter().filter(|k| !cp.contains(k)).collect();
    let extra: Vec<&String> = cp.iter().filter(|k| !pp.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "fields podman has and cairn lacks: {missing:?}"
    );
    // podman's JSON leaves out zero omitempty fields its templates still
    // see; cairn's templates run over its JSON, so it keeps them.
    let omitempty = [".HostConfig.Init"];
    let extra: Vec<&&String> = extra
        .iter()
        .filter(|k| !omitempty.contains(&k.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "fields cairn has and podman does not: {extra:?}"
    );
}

/// A regression test: TERM=xterm was missing (fixed in 07ad571).
#[test]
fn environment_inside_matches_podman() {
    env_inside();
}

/// `env | sort` inside, modulo HOSTNAME (default host names differ by
/// design, see [`hostname`]).
fn env_inside() {
    let mut p = pair();
    p.cairn.env("FROM_CALLER", "c");
    let env_file = p.cairn.scratch().join("vars.env");
    fs::write(&env_file, "A=1\n# comment\nB=two words\n\nFROM_CALLER\n").unwrap();
    let ef = env_file.to_str().unwrap().to_owned();
    for flags in [
        vec![],
        vec!["-e", "X=y", "--env-file", &ef],
        vec!["-u", "nobody", "-w", "/tmp"],
        vec!["--hostname", "named", "-e", "PATH=/bin:/usr/bin"],
        vec!["-e", "HOME=/custom", "--privileged"],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(flags.iter().copied());
        args.extend([IMAGE, "env"]);
        args.insert(1, "--network");
        args.insert(2, "host");
        let pargs = args.clone();
        // podman reads FROM_CALLER from its own environment.
        let mut pc = p.podman.command(&pargs);
        pc.env("FROM_CALLER", "c");
        let pout = pc.output().unwrap();
        assert!(pout.status.success(), "podman {pargs:?}: {pout:?}");
        let cout = p.cairn.ok(&args);
        let norm = |s: &str| {
            let mut v: Vec<String> = s
                .lines()
                .map(|l| {
                    if l.starts_with("HOSTNAME=") && !flags.contains(&"--hostname") {
                        "HOSTNAME=<default>".to_owned()
                    } else {
                        l.to_owned()
                    }
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            norm(&cout),
            norm(&String::from_utf8_lossy(&pout.stdout)),
            "env with {flags:?}"
        );
    }
}

#[test]
fn exit_codes_match_podman() {
    let p = pair();
    let mut report = Report::default();
    let mut both = |what: &str, args: &[&str]| {
        let (c, pm) = p.both(args);
        // Exit codes only: the messages are each engine's own.
        let code = |r: &Run| Run {
            code: r.code,
            stdout: String::new(),
            stderr: r.stderr.clone(),
        };
        report.compare(what, Check::Same, false, &code(&c), &code(&pm));
    };
    both("run true", &["run", "--rm", IMAGE, "true"]);
    both("run exit 3", &["run", "--rm", IMAGE, "sh", "-c", "exit 3"]);
    both("run not found", &["run", "--rm", IMAGE, "no-such-command"]);
    both("run not executable", &["run", "--rm", IMAGE, "/etc/passwd"]);
    both("run a directory", &["run", "--rm", IMAGE, "/etc"]);
    both(
        "run killed",
        &["run", "--rm", IMAGE, "sh", "-c", "kill -9 $$"],
    );
    both(
        "run unknown image",
        &["run", "--rm", "--pull", "never", "localhost/nope", "true"],
    );
    both("run bad flag", &["run", "--no-such-flag", IMAGE, "true"]);
    both(
        "run missing volume",
        &["run", "--rm", "-v", "/no/such/dir:/x", IMAGE, "true"],
    );

    p.both_ok(&["run", "-d", "--name", "up", IMAGE, "sleep", "100"]);
    both("exec true", &["exec", "up", "true"]);
    both("exec exit 5", &["exec", "up", "sh", "-c", "exit 5"]);
    both("exec not found", &["exec", "up", "no-such-command"]);
    both("exec not executable", &["exec", "up", "/etc/passwd"]);
    both("exec unknown container", &["exec", "ghost", "true"]);
    both("start running", &["start", "up"]);
    both("rm running", &["rm", "up"]);
    both("rm unknown", &["rm", "ghost"]);
    both("inspect unknown", &["inspect", "ghost"]);
    both("stop unknown", &["stop", "ghost"]);
    both("duplicate name", &["create", "--name", "up", IMAGE, "true"]);
    both("container exists", &["container", "exists", "up"]);
    both(
        "container exists unknown",
        &["container", "exists", "ghost"],
    );
    both("rmi in use", &["rmi", IMAGE]);
    p.both_ok(&["create", "--name", "idle", IMAGE, "true"]);
    // Not compared: `exec` into a stopped container exits 255 with podman
    // 4.3 (its exec-session error path); cairn exits 125 like podman's
    // other engine errors, as issue 5 asks (lifecycle.rs asserts it).
    both("wait running", &["wait", "--condition", "running", "up"]);
    report.assert_clean();
}

/// A regression test: this once waited forever (fixed in c090c6b).
#[test]
fn wait_for_the_created_condition_returns_at_once_like_podman() {
    let p = pair();
    p.both_ok(&["create", "--name", "idle", IMAGE, "true"]);
    let pm = p.podman.ok(["wait", "--condition", "created", "idle"]);
    let mut child = p
        .cairn
        .spawn(["wait", "--condition", "created", "idle"])
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cairn wait --condition created still waiting after 5 s; podman printed {pm:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), pm);
}

/// A regression test: rm printed full ids (fixed in 07ad571).
#[test]
fn rm_prints_what_it_was_given_like_podman() {
    let p = pair();
    p.both_ok(&["create", "--name", "gone", IMAGE, "true"]);
    p.both_ok(&["create", "--name", "gone2", IMAGE, "true"]);
    let (c, pm) = p.both(&["rm", "gone", "gone2"]);
    // podman removes them in parallel and prints each as it is done (seen
    // both ways round); cairn prints them in the order given.
    assert_eq!(c.stdout, "gone\ngone2\n");
    let mut printed: Vec<&str> = pm.stdout.lines().collect();
    printed.sort();
    assert_eq!(printed, ["gone", "gone2"]);
}

/// A regression test: logs -t printed +00:00 for Z (fixed in 07ad571).
#[test]
fn logs_timestamps_like_podman() {
    let p = pair();
    p.both_ok(&[
        "run",
        "--name",
        "talk",
        IMAGE,
        "sh",
        "-c",
        "echo a; echo b >&2",
    ]);
    let (c, pm) = p.both(&["logs", "-t", "talk"]);
    let norm = |r: &Run| format!("{}|{}", shape(&r.stdout), shape(&r.stderr));
    assert_eq!(norm(&c), norm(&pm));
}

#[test]
fn logs_match_podman() {
    let p = pair();
    p.both_ok(&[
        "run",
        "--name",
        "talk",
        IMAGE,
        "sh",
        "-c",
        // Pauses make the order the lines are written in the order each
        // engine's logger reads them in (without, both pipes are read
        // whenever the scheduler gets to them, and `--tail` differs).
        "for i in 1 2 3; do echo out$i; sleep 0.1; echo err$i >&2; sleep 0.1; done",
    ]);
    for args in [
        vec!["logs", "talk"],
        vec!["logs", "--tail", "2", "talk"],
        vec!["logs", "--tail", "0", "talk"],
        vec!["logs", "--since", "2000-01-01T00:00:00Z", "talk"],
        vec!["logs", "--until", "2000-01-01T00:00:00Z", "talk"],
    ] {
        let (c, pm) = p.both(&args);
        assert_eq!(
            (c.code, &c.stdout, &c.stderr),
            (pm.code, &pm.stdout, &pm.stderr),
            "{args:?}"
        );
    }
}

#[test]
#[ignore = "BUG: --cap-add gives a non-root user nothing (podman makes the added caps ambient: CapEff/CapAmb 0x2000 for net_raw)"]
fn known_differences_cap_add_reaches_a_non_root_user() {
    let p = pair();
    let (c, pm) = p.both(&[
        "run",
        "--rm",
        "-u",
        "nobody",
        "--cap-add",
        "net_raw",
        IMAGE,
        "grep",
        "-E",
        "^Cap(Eff|Amb)",
        "/proc/self/status",
    ]);
    assert_eq!(
        pm.stdout,
        "CapEff:\t0000000000002000\nCapAmb:\t0000000000002000\n"
    );
    assert_eq!((c.code, c.stdout), (pm.code, pm.stdout));
}
