//! End-to-end, as root and rootless (the real user `cairntest`): a
//! container never gets the caller's terminal or descriptors (issue 17,
//! item 4 and `run -i` of item 8; the CVE-2016-7545 class).
//!
//! The attack is the real one: `cairn` runs under a real pty (script(1))
//! whose shell, after cairn returns, is an interactive `sh` reading that
//! terminal; inside the container, perl pushes `touch HOST_FILE` into every
//! terminal it can reach (descriptors 0-2 and `/dev/tty`) with `TIOCSTI`.
//! Before the fix, `cairn exec` ran the command on the caller's terminal in
//! the caller's session, and the caller's shell created the host file.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_tests::fixtures::{self, refs};
use cairn_tests::Cairn;

/// Pushes `$ARGV[0]` and a newline into the first terminal among fds 0-2
/// and `/dev/tty` that takes `TIOCSTI` (0x5412), and says which.
const INJECT_PL: &str = r#"
my $line = $ARGV[0] . "\n";
my @targets;
for my $fd (0, 1, 2) {
    my $h;
    if (open($h, "<&=", $fd) || open($h, ">&=", $fd)) { push @targets, ["fd $fd", $h] }
}
my $tty;
if (open($tty, "+<", "/dev/tty")) { push @targets, ["/dev/tty", $tty] }
for my $t (@targets) {
    my ($name, $h) = @$t;
    my $ok = 1;
    for my $c (split //, $line) {
        unless (ioctl($h, 0x5412, $c)) { $ok = 0; last }
    }
    if ($ok) { print "TIOCSTI through $name\n"; exit 0 }
}
print "TIOCSTI refused\n";
"#;

/// A store with the test image and a running container `bg`; every
/// container is removed on drop.
struct Env {
    c: Cairn,
    image: String,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.c.run(["rm", "-a", "-f", "-t", "0"]);
    }
}

fn env(rootless: bool) -> Env {
    let c = if rootless {
        Cairn::rootless().expect("rootless environment (tests/support/test-user.sh)")
    } else {
        Cairn::new().expect("cairn environment")
    };
    c.ok(["pull", "-q", &fixtures::oci_ref(refs::DEBIAN_MIN)]);
    let image = c.ok(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let image = image.lines().next().expect("one image").to_owned();
    c.ok(["run", "-d", "--name", "bg", &image, "sleep", "1000"]);
    let e = Env { c, image };
    fs::write(e.c.scratch().join("inject.pl"), INJECT_PL).unwrap();
    e
}

/// Runs the shell `line` under script(1), so it and the `cairn` it starts
/// (`CAIRN` in `line`) have a real pty as their terminal, as the store's
/// user; the bytes the pty carried.
fn through_pty(c: &Cairn, line: &str) -> String {
    let line = format!("stty rows 31 cols 101; {line}");
    // script(1)'s stdin stays open (and empty) until the run ends: at its
    // end script would type ^D into the terminal, racing with what the
    // container pushes.
    let mut child = c
        .script("-qec", &line)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) runs");
    // Never hang the suite: a stuck run is killed (and fails below).
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{line}: {out:?}");
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

/// Every way of running a command in a container, with the caller's
/// terminal a real pty, tries TIOCSTI on the caller's shell: the host file
/// the pushed command would create never appears.
fn tiocsti_never_reaches_the_caller(e: &Env) {
    let scratch = e.c.scratch();
    let script = scratch.join("inject.pl");
    let run = |flags: &str| format!("run --rm {flags} {}", e.image);
    let modes = [
        ("exec", "exec bg".to_owned(), false),
        ("exec-i", "exec -i bg".to_owned(), false),
        ("exec-t", "exec -t bg".to_owned(), true),
        ("exec-it", "exec -it bg".to_owned(), true),
        ("run", run(""), false),
        ("run-i", run("-i"), false),
        ("run-t", run("-t"), true),
        ("run-it", run("-it"), true),
    ];
    for (name, verb, tty) in modes {
        let owned = scratch.join(format!("owned-{name}"));
        // After cairn returns, an interactive shell reads the caller's
        // terminal, as a user's login shell would (killed after 2 s).
        let line = format!(
            "CAIRN {verb} perl -e \"$(cat {script})\" 'touch {owned}; exit'; echo \"rc=$?\"; \
             timeout --foreground -s KILL 2 sh -i; echo caller-done",
            script = script.display(),
            owned = owned.display(),
        );
        let out = through_pty(&e.c, &line);
        assert!(
            out.contains("rc=0\n") && out.contains("caller-done"),
            "{name}: {out}"
        );
        assert!(
            !owned.exists(),
            "{name}: the container typed into the caller's terminal and the caller's shell ran it:\n{out}"
        );
        if !tty {
            // No terminal at all: fds 0-2 are pipes or /dev/null, and there
            // is no controlling terminal behind /dev/tty.
            assert!(out.contains("TIOCSTI refused"), "{name}: {out}");
        }
    }
}

/// Without -t: the command's descriptors are pipes or /dev/null (stdin a
/// pipe with -i), never the caller's terminal, and it leads a session of
/// its own; with -t: a pty of the container's own devpts, with the
/// caller's window size; input, output, exit codes and the caller's
/// terminal settings survive.
fn stdio_is_the_containers_own(e: &Env) {
    no_terminal_without_t(e);
    a_pty_of_its_own_with_t(&e.c);
    exit_codes_and_pipes_pass_through(e);
}

/// Without -t: the command's descriptors are pipes or /dev/null (stdin a
/// pipe with -i), never the caller's terminal, and it leads a session of
/// its own.
fn no_terminal_without_t(e: &Env) {
    let c = &e.c;
    // The shell's own descriptors ($$), not those of a pipeline member.
    let fds = "readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2";
    for (verb, stdin) in [
        ("exec bg".to_owned(), "/dev/null"),
        ("exec -i bg".to_owned(), "pipe:"),
        (format!("run --rm -i {}", e.image), "pipe:"),
        (format!("run --rm {}", e.image), "/dev/null"),
    ] {
        let out = through_pty(c, &format!("CAIRN {verb} sh -c '{fds}'"));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{verb}: {out}");
        assert!(lines[0].starts_with(stdin), "{verb}: stdin is {}", lines[0]);
        assert!(
            lines[1].starts_with("pipe:") && lines[2].starts_with("pipe:"),
            "{verb}: {out}"
        );
    }
    // A session of its own: the session id is its own pid (in the
    // container's pid namespace).
    let out = through_pty(
        c,
        "CAIRN exec bg sh -c 'echo $$ $(cut -d\" \" -f6 /proc/$$/stat); tty; true'",
    );
    let mut lines = out.lines();
    let ids: Vec<&str> = lines.next().unwrap().split(' ').collect();
    assert_eq!(ids[0], ids[1], "exec: not a session leader: {out}");
    assert_eq!(lines.next(), Some("not a tty"), "{out}");
}

/// With -t: a pty of the container's own devpts, with the caller's window
/// size (resizes followed), as the command's only terminal; the caller's
/// terminal settings are restored after.
fn a_pty_of_its_own_with_t(c: &Cairn) {
    // -t: /dev/pts/0 of the container's devpts (not the host's /dev/pts),
    // the caller's size, the terminal on 0-2, its own session.
    let out = through_pty(
        c,
        "CAIRN exec -t bg sh -c 'tty; stat -L -c %d $(tty) /dev/pts/ptmx; stty size; \
         readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2 | sort -u; \
         echo $$ $(cut -d\" \" -f6 /proc/$$/stat)'",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "/dev/pts/0", "{out}");
    assert_eq!(
        lines[1], lines[2],
        "the pty is of the devpts at /dev/pts: {out}"
    );
    let host_devpts = fs::metadata("/dev/pts/ptmx").unwrap().dev();
    assert_ne!(
        lines[1],
        host_devpts.to_string(),
        "the pty came from the host's devpts: {out}"
    );
    assert_eq!(lines[3], "31 101", "{out}");
    assert_eq!(lines[4], "/dev/pts/0", "0-2 are the pty only: {out}");
    let ids: Vec<&str> = lines[5].split(' ').collect();
    assert_eq!(ids[0], ids[1], "exec -t: not a session leader: {out}");
    // The pty follows the caller's window: a resize there (SIGWINCH to the
    // caller's foreground group, cairn included) reaches the command.
    let out = through_pty(
        c,
        "(sleep 1; stty rows 22 cols 77 </dev/tty) & CAIRN exec -t bg sh -c 'stty size; sleep 2; stty size'",
    );
    assert_eq!(out, "31 101\n22 77\n", "resize not passed on");
    // The caller's terminal is put back as it was (raw while attached).
    let out = through_pty(c, "stty -g; CAIRN exec -it bg true; stty -g");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], lines[1], "terminal settings not restored: {out}");
}

/// Exit codes pass through with and without a pty; input and output
/// round-trip through pipes; without -i stdin is at end of file; exec -d
/// runs its command.
fn exit_codes_and_pipes_pass_through(e: &Env) {
    let c = &e.c;
    // Exit codes pass through, with and without a pty; 128+N for a signal.
    for (verb, code) in [
        ("exec bg sh -c 'exit 3'", 3),
        ("exec -t bg sh -c 'exit 3'", 3),
        ("exec -i bg sh -c 'exit 4'", 4),
        ("exec bg sh -c 'kill -TERM $$'", 143),
        ("exec bg no-such-command", 127),
    ] {
        let out = through_pty(c, &format!("CAIRN {verb}; echo rc=$?"));
        assert!(out.ends_with(&format!("rc={code}\n")), "{verb}: {out}");
    }
    // Input and output round-trip through the pipes (no terminal at all).
    for (args, input, want, want_err) in [
        (vec!["exec", "-i", "bg", "cat"], "hi\n", "hi\n", ""),
        (
            vec!["exec", "-i", "bg", "sh", "-c", "cat; echo err >&2"],
            "two\nlines\n",
            "two\nlines\n",
            "err\n",
        ),
        (
            vec![
                "run",
                "--rm",
                "-i",
                &e.image,
                "sh",
                "-c",
                "cat; test -p /proc/self/fd/0 && echo pipe",
            ],
            "in\n",
            "in\npipe\n",
            "",
        ),
    ] {
        let out = c
            .command(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child.stdin.take().unwrap().write_all(input.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want,
            "{args:?}: {out:?}"
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            want_err,
            "{args:?}: {out:?}"
        );
    }
    // Without -i, stdin is not read: the command sees end of file at once.
    assert_eq!(c.ok(["exec", "bg", "sh", "-c", "cat; echo eof"]), "eof\n");
    // exec -d still runs the command, in the background.
    c.ok([
        "exec",
        "-d",
        "bg",
        "sh",
        "-c",
        "echo detached > /tmp/exec-d",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.run(["exec", "bg", "cat", "/tmp/exec-d"]).stdout != "detached\n" {
        assert!(Instant::now() < deadline, "exec -d did not run its command");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tiocsti_from_exec_and_run_never_reaches_the_callers_shell() {
    let e = env(false);
    tiocsti_never_reaches_the_caller(&e);
}

#[test]
fn tiocsti_from_exec_and_run_never_reaches_the_callers_shell_rootless() {
    let e = env(true);
    tiocsti_never_reaches_the_caller(&e);
}

#[test]
fn exec_and_run_i_get_pipes_or_their_own_pty() {
    let e = env(false);
    stdio_is_the_containers_own(&e);
}

#[test]
fn exec_and_run_i_get_pipes_or_their_own_pty_rootless() {
    let e = env(true);
    stdio_is_the_containers_own(&e);
}

/// The host file the attack targets lives in the test's scratch dir, which
/// the caller (root or `cairntest`) can write: the test would see it.
#[test]
fn the_attack_harness_sees_a_real_injection() {
    let c = Cairn::new().unwrap();
    let script = c.scratch().join("inject.pl");
    fs::write(&script, INJECT_PL).unwrap();
    let owned = c.scratch().join("owned-host");
    // The same perl, run on the caller's terminal itself (what `exec` did
    // before the fix): the caller's shell runs the pushed command.
    let out = through_pty(
        &c,
        &format!(
            "perl {} 'touch {}; exit'; timeout --foreground -s KILL 2 sh -i; echo caller-done",
            script.display(),
            owned.display()
        ),
    );
    assert!(
        out.contains("TIOCSTI through fd 0") && Path::new(&owned).exists(),
        "TIOCSTI did not reach the caller's shell even without a container \
         (is sysctl dev.tty.legacy_tiocsti 0?): the attack tests above prove nothing here:\n{out}"
    );
}
