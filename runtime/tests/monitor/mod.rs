//! End-to-end tests of cairn-monitor: the real monitor clones the real
//! cairn-mount → cairn-pivot chain into new namespaces on the Debian image
//! root, as the engine runs it; the tests read the sync line, the k8s-file
//! log, the pid and exit files. Every monitor (and with it, through the
//! parent-death signal, its container) is SIGKILLed when a test ends early.

use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use crate::support::*;

mod cgroup;
mod network;

/// A monitor spec for container `c` running `cmd`, with `over` merged in.
fn spec_for(c: &Container, cmd: &[&str], pivot_extra: &[&str], over: Value) -> PathBuf {
    let mut pivot: Vec<&str> = vec!["--error-fd", "3"];
    pivot.extend(pivot_extra);
    let mut spec = json!({
        "id": "cafe",
        "args": c.chain(cmd, &["--error-fd", "3"], &pivot),
        "namespaces": ["mnt", "pid", "uts", "ipc"],
        "log": c.path("ctr.log"),
        "exit_file": c.path("exit.json"),
        "pid_file": c.path("pid"),
    });
    for (k, v) in over.as_object().expect("overrides are an object") {
        spec[k] = v.clone();
    }
    let path = c.path("monitor.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    path
}

/// A running monitor: SIGKILLed (with its container) on drop.
struct Monitor {
    child: Child,
    sync: Option<OwnedFd>,
}

impl Monitor {
    /// Start `cairn-monitor --spec SPEC --sync-fd N` with the given stdio.
    fn start(spec: &std::path::Path, stdin: Stdio, stdout: Stdio, stderr: Stdio) -> Monitor {
        Monitor::start_via(&[MONITOR], spec, stdin, stdout, stderr)
    }

    /// Start it through `launcher` (a wrapper that ends by exec'ing the
    /// monitor with the arguments that follow).
    fn start_via(
        launcher: &[&str],
        spec: &std::path::Path,
        stdin: Stdio,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Monitor {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let mut cmd = Command::new(launcher[0]);
        cmd.args(&launcher[1..]);
        let n = cairn_runtime::inherit_fd(&mut cmd, &w);
        cmd.arg("--spec")
            .arg(spec)
            .arg("--sync-fd")
            .arg(n.to_string())
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr);
        let child = cmd.spawn().expect("spawn cairn-monitor");
        drop(w);
        Monitor {
            child,
            sync: Some(r),
        }
    }

    /// The sync line (waits for it).
    fn sync(&mut self) -> Value {
        let fd = self.sync.take().expect("sync read once");
        let mut pfd = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = TIMEOUT.as_millis() as u16;
        let n = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(ms)).unwrap();
        assert!(n > 0, "no sync line within {ms} ms");
        let mut text = String::new();
        std::fs::File::from(fd).read_to_string(&mut text).unwrap();
        assert!(
            text.ends_with('\n') && text.trim().lines().count() == 1,
            "one line: {text:?}"
        );
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("sync {text:?}: {e}"))
    }

    /// The container's pid from a successful sync line.
    fn pid(&mut self) -> i32 {
        let s = self.sync();
        assert!(s.get("error").is_none(), "start failed: {s}");
        let pid = s["pid"].as_i64().expect("pid") as i32;
        assert!(pid > 1, "{s}");
        pid
    }

    /// The monitor's exit status (waits for it).
    fn wait(&mut self) -> i32 {
        let st = wait_timeout(&mut self.child, TIMEOUT).expect("monitor did not end in time");
        st.code().expect("monitor exited normally")
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A k8s-file record.
#[derive(Debug, PartialEq)]
struct Record {
    stream: String,
    tag: String,
    text: String,
}

/// Parse a log, checking every line's layout.
fn records(log: &str) -> Vec<Record> {
    // Split at \n only: a pty's \r stays in the text.
    log.split_terminator('\n')
        .map(|l| {
            let mut it = l.splitn(4, ' ');
            let (time, stream, tag, text) = (
                it.next().unwrap(),
                it.next().unwrap_or(""),
                it.next().unwrap_or(""),
                it.next().unwrap_or(""),
            );
            // 2026-11-28T14:08:20.123456789+00:00
            let b = time.as_bytes();
            assert!(
                b.len() == 35
                    && b[4] == b'-'
                    && b[7] == b'-'
                    && b[10] == b'T'
                    && b[13] == b':'
                    && b[16] == b':'
                    && b[19] == b'.'
                    && time.ends_with("+00:00")
                    && time[20..29].bytes().all(|c| c.is_ascii_digit()),
                "timestamp of {l:?}"
            );
            assert!(matches!(stream, "stdout" | "stderr"), "stream of {l:?}");
            assert!(matches!(tag, "F" | "P"), "tag of {l:?}");
            Record {
                stream: stream.into(),
                tag: tag.into(),
                text: text.into(),
            }
        })
        .collect()
}

/// The logical lines of a log, as podman's reader makes them: a partial
/// record joined with what follows on its stream. (A pty may hand over
/// "text" and its "\r\n" in two reads.)
fn lines(recs: Vec<Record>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut open: [Option<usize>; 2] = [None, None];
    for r in recs {
        let k = usize::from(r.stream == "stderr");
        match open[k] {
            Some(i) => out[i].1.push_str(&r.text),
            None => out.push((r.stream.clone(), r.text.clone())),
        }
        let i = open[k].unwrap_or(out.len() - 1);
        open[k] = (r.tag == "P").then_some(i);
    }
    out
}

fn rec(stream: &str, tag: &str, text: &str) -> Record {
    Record {
        stream: stream.into(),
        tag: tag.into(),
        text: text.into(),
    }
}

fn exit_file(c: &Container) -> Value {
    serde_json::from_slice(&std::fs::read(c.path("exit.json")).expect("exit.json written")).unwrap()
}

fn log_of(c: &Container) -> String {
    std::fs::read_to_string(c.path("ctr.log")).unwrap_or_default()
}

/// Output to the log (per stream, in order, full and partial lines), the pid
/// on the sync line and in the pid file, the exit code in exit.json and as
/// the monitor's status; a second run appends to the log.
#[test]
fn monitor_logs_output_and_records_the_exit() {
    if !root_or_skip() {
        return;
    }
    let c = Container::new();
    let script = "echo out; echo err >&2; printf partial; sleep 0.05; echo; exit 3";
    let spec = spec_for(&c, &["/bin/sh", "-c", script], &[], json!({}));
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let pid = m.pid();
    assert_eq!(m.wait(), 3);
    assert_eq!(
        std::fs::read_to_string(c.path("pid")).unwrap(),
        pid.to_string()
    );
    let exit = exit_file(&c);
    assert_eq!(exit["exit_code"], 3, "{exit}");
    assert_eq!(exit["signal"], Value::Null, "{exit}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let finished = exit["finished_ns"].as_u64().unwrap();
    assert!(now - finished < 60_000_000_000, "{exit}");

    let log = log_of(&c);
    let recs = records(&log);
    let stdout: Vec<&Record> = recs.iter().filter(|r| r.stream == "stdout").collect();
    let stderr: Vec<&Record> = recs.iter().filter(|r| r.stream == "stderr").collect();
    assert_eq!(
        stdout,
        [
            &rec("stdout", "F", "out"),
            &rec("stdout", "P", "partial"),
            &rec("stdout", "F", "")
        ],
        "{log}"
    );
    assert_eq!(stderr, [&rec("stderr", "F", "err")], "{log}");

    // Again: the log grows, the exit file is replaced.
    let spec = spec_for(&c, &["/bin/sh", "-c", "echo again"], &[], json!({}));
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    m.pid();
    assert_eq!(m.wait(), 0);
    let log2 = log_of(&c);
    assert!(log2.starts_with(&log), "the log is appended to");
    assert_eq!(records(&log2[log.len()..]), [rec("stdout", "F", "again")]);
    assert_eq!(exit_file(&c)["exit_code"], 0);
    let leftovers: Vec<_> = std::fs::read_dir(c.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

/// Attached, the output is copied byte for byte to the monitor's stdout and
/// stderr; without a tty, "stdin" hands the monitor's stdin to the command.
#[test]
fn monitor_attached_copies_output_and_passes_stdin() {
    if !root_or_skip() {
        return;
    }
    let c = Container::new();
    let script = "cat; printf 'no newline'; printf 'e1\\ne2\\n' >&2";
    let spec = spec_for(
        &c,
        &["/bin/sh", "-c", script],
        &[],
        json!({"attach": true, "stdin": true}),
    );
    let mut m = Monitor::start(&spec, Stdio::piped(), Stdio::piped(), Stdio::piped());
    let mut stdin = m.child.stdin.take().unwrap();
    stdin.write_all(b"from stdin\nsecond").unwrap();
    drop(stdin);
    let mut out = m.child.stdout.take().unwrap();
    let mut err = m.child.stderr.take().unwrap();
    let t = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    m.pid();
    let mut stdout = String::new();
    out.read_to_string(&mut stdout).unwrap();
    assert_eq!(m.wait(), 0);
    assert_eq!(stdout, "from stdin\nsecondno newline");
    assert_eq!(t.join().unwrap(), "e1\ne2\n");
    let recs = records(&log_of(&c));
    assert!(recs.contains(&rec("stdout", "F", "from stdin")), "{recs:?}");
    assert!(recs.contains(&rec("stderr", "F", "e2")), "{recs:?}");
}

/// A closed attach stdout (EPIPE) neither kills the monitor nor stops the log.
#[test]
fn monitor_survives_a_closed_stdout() {
    if !root_or_skip() {
        return;
    }
    let c = Container::new();
    let script = "sleep 0.1; i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; exit 7";
    let spec = spec_for(&c, &["/bin/sh", "-c", script], &[], json!({"attach": true}));
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::piped(), Stdio::null());
    drop(m.child.stdout.take());
    m.pid();
    assert_eq!(m.wait(), 7);
    let recs = records(&log_of(&c));
    assert_eq!(recs.len(), 2000, "every line logged");
    assert_eq!(recs[1999], rec("stdout", "F", "line 1999"));
}

/// Exit codes of a failed start: the sync line names the failure and its
/// code, the exit file and the monitor's status agree.
#[test]
fn monitor_reports_start_failures() {
    if !root_or_skip() {
        return;
    }
    for (cmd, code, says) in [
        (&["no-such-command"][..], 127, "not found"),
        (&["/etc/passwd"][..], 126, "permission denied"),
    ] {
        let c = Container::new();
        let spec = spec_for(&c, cmd, &[], json!({}));
        let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
        let s = m.sync();
        assert_eq!(s["code"], code, "{cmd:?}: {s}");
        let msg = s["error"].as_str().unwrap();
        assert!(
            msg.starts_with("cairn-pivot: exec ") && msg.contains(says),
            "{msg}"
        );
        assert!(s["pid"].as_i64().unwrap() > 0, "{s}");
        assert_eq!(m.wait(), code);
        assert_eq!(exit_file(&c)["exit_code"], code);
        assert!(!c.path("pid").exists(), "no pid file for a failed start");
        // The error reaches the launcher once, on the error descriptor
        // (the engine prints it and keeps it in .State.Error); it is not
        // also the container's output.
        let recs = records(&log_of(&c));
        assert!(recs.is_empty(), "{recs:?}");
    }

    // cairn-mount fails (a lower dir that does not exist): 125 from it.
    let mut c = Container::new();
    c.mount(&["--overlay", "/nonexistent-cairn-lower"]);
    let spec = spec_for(&c, &["true"], &[], json!({}));
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let s = m.sync();
    assert_eq!(s["code"], 125, "{s}");
    assert!(
        s["error"].as_str().unwrap().starts_with("cairn-mount: "),
        "{s}"
    );
    assert_eq!(m.wait(), 125);

    // The monitor itself: args[0] missing (127), a bad spec (125, pid 0).
    let c = Container::new();
    let spec = spec_for(
        &c,
        &["true"],
        &[],
        json!({"args": ["/nonexistent-cairn/x"]}),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let s = m.sync();
    assert_eq!(s["code"], 127, "{s}");
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .starts_with("cairn-monitor: exec "),
        "{s}"
    );
    assert_eq!(m.wait(), 127);
    let spec = spec_for(&c, &["true"], &[], json!({"bogus": 1}));
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let s = m.sync();
    assert_eq!(
        (s["pid"].as_i64(), s["code"].as_i64()),
        (Some(0), Some(125)),
        "{s}"
    );
    assert!(s["error"].as_str().unwrap().contains("bogus"), "{s}");
    assert_eq!(m.wait(), 125);
}

/// The command is pid 1 of its own pid namespace, and lo is up in a new
/// network namespace (down without "loopback"); limits are applied, and a
/// limit that cannot be set fails the start with 125.
#[test]
fn monitor_namespaces_loopback_and_limits() {
    if !root_or_skip() {
        return;
    }
    let c = Container::new();
    let script = "echo pid=$$; echo flags=$(cat /sys/class/net/lo/flags); echo nofile=$(ulimit -n)";
    let run = |over: Value| {
        let spec = spec_for(&c, &["/bin/sh", "-c", script], &[], over);
        let _ = std::fs::remove_file(c.path("ctr.log"));
        let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
        m.pid();
        assert_eq!(m.wait(), 0, "{}", log_of(&c));
        lines(records(&log_of(&c)))
            .into_iter()
            .map(|(_, text)| text)
            .collect::<Vec<_>>()
    };
    let ns = json!(["mnt", "pid", "uts", "ipc", "net", "cgroup"]);
    let out = run(json!({"namespaces": ns, "loopback": true,
        "rlimits": [{"type": "nofile", "soft": 512, "hard": 1024}]}));
    assert_eq!(out[0], "pid=1");
    let flags = u32::from_str_radix(out[1].trim_start_matches("flags=0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "IFF_UP: {out:?}");
    assert_eq!(out[2], "nofile=512");
    let out = run(json!({"namespaces": ns, "loopback": false}));
    let flags = u32::from_str_radix(out[1].trim_start_matches("flags=0x"), 16).unwrap();
    assert_eq!(flags & 1, 0, "lo stays down: {out:?}");

    // RLIMIT_NOFILE can never be unlimited (nr_open caps it).
    let spec = spec_for(
        &c,
        &["true"],
        &[],
        json!({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": -1, "hard": -1}]}),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let s = m.sync();
    assert_eq!(s["code"], 125, "{s}");
    assert!(s["error"].as_str().unwrap().contains("setrlimit"), "{s}");
    assert_eq!(m.wait(), 125);
}

/// Signals the launcher or the monitor ignore or block do not reach the
/// container (ignored dispositions and masks survive execve).
#[test]
fn monitor_resets_signals_for_the_container() {
    if !root_or_skip() {
        return;
    }
    let c = Container::new();
    let script = "grep -E '^Sig(Ign|Blk)' /proc/self/status";
    let spec = spec_for(&c, &["/bin/sh", "-c", script], &[], json!({}));
    let launcher = [
        "/bin/sh",
        "-c",
        "trap '' USR1 HUP INT TERM TTOU; exec \"$0\" \"$@\"",
        MONITOR,
    ];
    let mut m = Monitor::start_via(
        &launcher,
        &spec,
        Stdio::null(),
        Stdio::null(),
        Stdio::null(),
    );
    m.pid();
    assert_eq!(m.wait(), 0);
    for (_, text) in lines(records(&log_of(&c))) {
        let (name, mask) = text.split_once(":\t").unwrap();
        let mask = u64::from_str_radix(mask, 16).unwrap();
        // Signals 1-31; glibc's posix_spawn in this multi-threaded test
        // process may leave its internal real-time ones ignored.
        assert_eq!(mask & 0x7fff_ffff, 0, "{name}: {:#x}", mask);
    }
}

/// The monitor ignores terminal signals; pid 1 without an init ignores
/// SIGTERM from outside, SIGKILL ends it: 137 and signal 9 in exit.json.
#[test]
fn monitor_outlives_signals_and_records_a_kill() {
    if !root_or_skip() {
        return;
    }
    let c = Container::new();
    let spec = spec_for(&c, &["sleep", "100"], &[], json!({}));
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let pid = Pid::from_raw(m.pid());
    let monitor = Pid::from_raw(m.child.id() as i32);
    for sig in [
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
    ] {
        kill(monitor, sig).unwrap();
    }
    kill(pid, Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(m.alive(), "the monitor survives terminal signals");
    assert!(
        kill(pid, None).is_ok(),
        "pid 1 without a handler ignores SIGTERM"
    );
    let t = Instant::now();
    kill(pid, Signal::SIGKILL).unwrap();
    assert_eq!(m.wait(), 137);
    assert!(t.elapsed() < Duration::from_secs(5));
    let exit = exit_file(&c);
    assert_eq!(
        (exit["exit_code"].as_i64(), exit["signal"].as_i64()),
        (Some(137), Some(9)),
        "{exit}"
    );
}

/// With "tty", the command's stdio is a pty of the container's own devpts,
/// its controlling terminal; the output (all of it "stdout") lands in the
/// log.
#[test]
fn monitor_tty_from_the_containers_devpts() {
    if root_or_skip() {
        tty_in_container(false);
    }
}

/// The same under --init, where the command's group is the terminal's
/// foreground.
#[test]
fn monitor_tty_with_init() {
    if root_or_skip() {
        tty_in_container(true);
    }
}

fn tty_in_container(init: bool) {
    let script = "tty; test -t 0 && echo stdin-tty; test -t 2 && echo stderr-tty >&2; \
                  stat -c '%U %G %a' $(tty); echo fg=$(cut -d' ' -f5,8 /proc/self/stat)";
    let c = Container::new();
    let mut pivot = vec!["--console-socket", "4"];
    if init {
        pivot.push("--init");
    }
    let spec = spec_for(&c, &["/bin/sh", "-c", script], &pivot, json!({"tty": true}));
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    m.pid();
    assert_eq!(m.wait(), 0, "{}", log_of(&c));
    let recs = lines(records(&log_of(&c)));
    assert!(recs.iter().all(|(s, _)| s == "stdout"), "{recs:?}");
    let text: Vec<&str> = recs.iter().map(|(_, t)| t.trim_end_matches('\r')).collect();
    assert_eq!(
        &text[..4],
        ["/dev/pts/0", "stdin-tty", "stderr-tty", "root tty 620"],
        "init {init}"
    );
    let fg: Vec<&str> = text[4].trim_start_matches("fg=").split(' ').collect();
    assert_eq!(
        fg[0], fg[1],
        "the command's group is in the foreground: {text:?}"
    );
}

/// Attached to a terminal with "stdin": the terminal is raw while the
/// container runs (and restored after), input reaches the container's pty,
/// the window size follows the terminal's, at start and on SIGWINCH.
#[test]
fn monitor_tty_attached_to_a_terminal() {
    if !root_or_skip() {
        return;
    }
    use nix::sys::termios::{tcgetattr, LocalFlags};
    let ws = nix::pty::Winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&ws), None).unwrap();
    let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", {
        use std::os::fd::AsRawFd as _;
        pty.slave.as_raw_fd()
    }))
    .unwrap();
    let c = Container::new();
    let script = "stty size; trap 'stty size; exit 0' WINCH; echo ready; read line; \
                  echo got:$line; while :; do sleep 0.02; done";
    let spec = spec_for(
        &c,
        &["/bin/sh", "-c", script],
        &["--console-socket", "4"],
        json!({"tty": true, "stdin": true, "attach": true}),
    );
    let stdio = || Stdio::from(pty.slave.try_clone().unwrap());
    let mut m = Monitor::start(&spec, stdio(), stdio(), stdio());
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut master = std::fs::File::from(pty.master);
    let mut reader = master.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut expect = |want: &str| {
        let start = Instant::now();
        while !seen.contains(want) {
            let left = TIMEOUT.saturating_sub(start.elapsed());
            match rx.recv_timeout(left) {
                Ok(b) => seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => panic!("no {want:?} on the terminal; got {seen:?}"),
            }
        }
    };
    m.pid();
    expect("30 100\r\nready\r\n");
    let lflags = tcgetattr(&pty.slave).unwrap().local_flags;
    assert!(!lflags.contains(LocalFlags::ICANON), "raw while attached");
    master.write_all(b"hello\r").unwrap();
    expect("got:hello\r\n");
    let out = Command::new("stty")
        .arg("-F")
        .arg(&slave_path)
        .args(["rows", "40", "cols", "120"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    kill(Pid::from_raw(m.child.id() as i32), Signal::SIGWINCH).unwrap();
    expect("40 120\r\n");
    assert_eq!(m.wait(), 0);
    let lflags = tcgetattr(&pty.slave).unwrap().local_flags;
    assert!(
        lflags.contains(LocalFlags::ICANON),
        "the terminal is restored"
    );
    let recs = lines(records(&log_of(&c)));
    assert!(
        recs.contains(&("stdout".into(), "got:hello\r".into())),
        "{recs:?}"
    );
}

/// --init: pid 1 forwards SIGTERM to the command (which then ends at once,
/// 143), reaps orphans, and passes on an exec failure (127).
#[test]
fn monitor_with_init() {
    if !root_or_skip() {
        return;
    }
    let c = Container::new();
    let spec = spec_for(&c, &["sleep", "100"], &["--init"], json!({}));
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let pid = m.pid();
    let t = Instant::now();
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    assert_eq!(m.wait(), 143);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let exit = exit_file(&c);
    assert_eq!(
        (exit["exit_code"].as_i64(), exit["signal"].as_i64()),
        (Some(143), None),
        "{exit}"
    );

    // Orphans are reaped: no zombie is left while the command runs on.
    let script = "sh -c 'sleep 0.05 & exit 0'; sleep 0.3; \
                  echo comm1=$(cat /proc/1/comm) self=$$; \
                  grep -l '^State:.*Z' /proc/[0-9]*/status | wc -l";
    let spec = spec_for(&c, &["/bin/sh", "-c", script], &["--init"], json!({}));
    let _ = std::fs::remove_file(c.path("ctr.log"));
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    m.pid();
    assert_eq!(m.wait(), 0);
    let text: Vec<String> = lines(records(&log_of(&c)))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(text, ["comm1=cairn-pivot self=2", "0"], "no zombies");

    let spec = spec_for(&c, &["no-such-command"], &["--init"], json!({}));
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let s = m.sync();
    assert_eq!(s["code"], 127, "{s}");
    assert!(s["error"].as_str().unwrap().contains("not found"), "{s}");
    assert_eq!(m.wait(), 127);
    assert_eq!(exit_file(&c)["exit_code"], 127);
}
