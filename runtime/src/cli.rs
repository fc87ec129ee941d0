//! Command lines and `--help` texts of the three binaries. The texts are part
//! of the contract: other tools script against them, so change them only
//! compatibly. A hand-written parser keeps the binaries small and fast to
//! start, and gives `nsenter`-like behaviour: options end at `--` or at the
//! first argument that is not an option, which starts the command.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::spec::{
    self, EnterSpec, EtcFile, Mount, MountSpec, Namespace, Overlay, PivotSpec, ProcessSpec, Root,
};

/// `cairn-mount --help`.
pub const MOUNT_HELP: &str = r#"cairn-mount: set up a container's mounts, then exec the next program

Usage: cairn-mount [OPTIONS] [--] PROGRAM [ARGS...]
       cairn-mount --overlay IMG --upper U --work W --target R -- cairn-pivot --root R -- CMD...

Run it in a fresh mount namespace (unshare -m, clone(CLONE_NEWNS)); with a
private /proc, in the container's pid namespace too. It makes / rprivate,
assembles the root on TARGET and mounts /proc, /dev, /sys, /tmp, /run, the
/etc files and the given mounts inside it, then execs PROGRAM (normally
cairn-pivot). Mount targets are resolved inside the root; a symlink is
followed as the container sees it and never out of the root, and a mount
point is never created through a dangling symlink.

Root (one of):
  --root DIR             bind DIR as the root (TARGET defaults to DIR)
  --overlay L1[:L2...]   overlayfs with these lower dirs, topmost first
    --upper DIR          overlay upper dir  } both, or neither for a
    --work DIR           overlay work dir   } read-only overlay
    --overlay-opt OPT    extra overlay option (userxattr in a user namespace)
  --target DIR           host directory the root is assembled on
  --read-only            make the root read-only once everything is mounted

Standard mounts:
  --proc private|host|none   new procfs (nosuid,noexec,nodev) [private], or
                             an rbind of the host's /proc
  --dev minimal|host|none    tmpfs /dev with the host's null, zero, full,
                             random, urandom, tty bound in, fd/stdin/stdout/
                             stderr/ptmx symlinks, devpts (newinstance,
                             ptmxmode=0666,mode=0620,gid=<image's tty>),
                             /dev/shm (1777, 64 MiB), /dev/mqueue [minimal];
                             or an rbind of the host's /dev
  --sys ro|rw|none           sysfs (an rbind of the host's when a new one is
                             not permitted) [ro]
  --tmp                      tmpfs on /tmp (nosuid,nodev,1777)
  --run auto|tmpfs|none      tmpfs on /run when the image's is empty [auto]
  --hostname NAME            generate /etc/hostname, and /etc/hosts unless given
  --etc-file NAME=PATH       bind host PATH on /etc/NAME (hostname, hosts,
                             resolv.conf)
  --privileged               no masked or read-only paths
  --mask PATH                also mask PATH    --unmask PATH|ALL   do not mask

Masked unless --privileged: /proc/{kcore,keys,latency_stats,timer_list,
sched_debug,scsi,acpi} and /sys/firmware (/dev/null over files, an empty
read-only tmpfs over directories); read-only: /proc/{asound,bus,fs,irq,sys,
sysrq-trigger}.

Extra mounts (after the standard ones; a mount on a standard path replaces it):
  --bind SRC:DST[:OPTS]   recursive bind; OPTS: ro, rw, rprivate (default),
                          private, rslave, slave, rshared, shared, nosuid,
                          nodev, noexec, norecursive. ro is really read-only,
                          submounts included.
  --tmpfs DST[:OPTS]      OPTS: size=N[k|m|g|%], mode=OCTAL, ro, [no]suid,
                          [no]dev, [no]exec (default nosuid,nodev)

  --error-fd N            on failure, also write {"code":C,"message":"..."}
                          as one line to descriptor N, which stays open
                          (inherited) for PROGRAM
  --spec FILE             read the settings from a JSON file (flags given too
                          apply on top)
  -h, --help              this text
  --version               print the version

JSON spec (every field optional but root; unknown fields are errors):
  {
    "root": {"overlay": {"lower": ["/img/top", "/img/base"],
                         "upper": "/c/upper", "work": "/c/work",
                         "options": ["userxattr"]}}
          | {"bind": "/srv/rootfs"},
    "target": "/c/rootfs",
    "readonly": false,
    "proc": "private" | "host" | "none",
    "dev": "minimal" | "host" | "none",
    "sys": "ro" | "rw" | "none",
    "tmp": false,
    "run": "auto" | "tmpfs" | "none",
    "etc": {"hostname": {"content": "box\n"},
            "hosts": {"path": "/c/hosts"},
            "resolv.conf": {"path": "/etc/resolv.conf"}},
    "mounts": [
      {"type": "bind", "source": "/data", "target": "/data",
       "readonly": false, "recursive": true, "propagation": "rprivate",
       "nosuid": false, "nodev": false, "noexec": false},
      {"type": "tmpfs", "target": "/cache", "size": "64m", "mode": "1777",
       "readonly": false, "nosuid": true, "nodev": true, "noexec": false}
    ],
    "privileged": false,
    "masked_paths": ["/proc/kcore", ...],     (null: the defaults above)
    "readonly_paths": ["/proc/sys", ...],     (null: the defaults above)
    "error_fd": 3
  }

Exit status: PROGRAM's (it replaces cairn-mount); 125 if cairn-mount failed,
126 if PROGRAM cannot be executed, 127 if it is not found.
"#;

/// `cairn-pivot --help`.
pub const PIVOT_HELP: &str = r#"cairn-pivot: switch to a new root and exec the container's command

Usage: cairn-pivot --root DIR [OPTIONS] [--] CMD [ARGS...]

In the container's mount namespace (after cairn-mount): makes / rprivate,
binds DIR onto itself unless it is a mount point, pivot_root(".", "."),
detaches the old root (nothing of it stays visible), sets the hostname,
resolves the user in the container's own /etc/passwd and /etc/group,
changes to the working directory, sets groups, gid, uid, capabilities,
no_new_privs, the parent-death signal, marks inherited descriptors above
2 close-on-exec, and execs CMD (searched in the new PATH).

Options:
  --root DIR             the new root (cairn-mount's --target)
  --hostname NAME        set the host name (needs a UTS namespace of its own)
  --user USER[:GROUP]    names or numbers from the container's files [0:0]
  --group-add GROUP      extra supplementary group (repeatable)
  -w, --workdir DIR      working directory inside the container [/]
  -e, --env KEY=VALUE    set a variable (repeatable; KEY alone copies ours)
  --preserve-env         start from our environment instead of an empty one
                         (PATH defaults to /usr/local/sbin:/usr/local/bin:
                         /usr/sbin:/usr/bin:/sbin:/bin, HOME to the user's)
  --user-home            HOME from the user's /etc/passwd entry (empty
                         without one) even when set; --env still sets it
  --no-new-privs         set no_new_privs (setuid binaries stop working)
  --privileged           keep every capability
  --cap-add CAP          add to podman's 11 defaults (CHOWN, DAC_OVERRIDE,
  --cap-drop CAP         FOWNER, FSETID, KILL, NET_BIND_SERVICE, SETFCAP,
                         SETGID, SETPCAP, SETUID, SYS_CHROOT); ALL allowed
  --pdeathsig SIG        signal when the parent dies [KILL]; none to unset
  --keep-fds N           keep descriptors 3..3+N-1 open (socket activation)
  --seccomp FILE         install this seccomp filter (classic BPF as
                         libseccomp's seccomp_export_bpf writes it): before
                         the user and capability change, or last with
                         --no-new-privs; the command also gets a new
                         session keyring either way
  --seccomp-flag NAME    SECCOMP_FILTER_FLAG_LOG, _SPEC_ALLOW, _TSYNC or
                         _WAIT_KILLABLE_RECV for --seccomp (repeatable)
  --error-fd N           on failure (ours, or CMD not found or not
                         executable), also write {"code":C,"message":"..."}
                         as one line to descriptor N; the exec closes it
  --console-socket FD    give CMD a terminal: open a pty in the container's
                         devpts (/dev/ptmx), make its slave the controlling
                         terminal and stdin, stdout and stderr (owned by the
                         user, group tty), and send the master over the unix
                         socket FD (SCM_RIGHTS); a {"rows":R,"cols":C} line
                         already queued on FD sets the pty's window size
  --init                 stay as pid 1: fork, exec CMD in the child (its own
                         process group, the terminal's foreground), forward
                         SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2
                         and SIGWINCH to it, reap every zombie, exit with its
                         status (128+N for signal N), like podman --init;
                         it re-executes itself as /run/podman-init -- CMD,
                         which is what /proc/1/cmdline shows
  --spec FILE            read the settings from a JSON file (flags on top)
  -h, --help             this text
  --version              print the version

JSON spec (unknown fields are errors):
  {"root": "/c/rootfs", "hostname": "box", "error_fd": 3,
   "console_socket": 4, "init": false,
   "process": {"args": ["/bin/sh", "-c", "echo hi"], "user": "app:staff",
               "groups": ["audio"], "workdir": "/", "env": ["K=V"],
               "preserve_env": false, "no_new_privs": false,
               "privileged": false, "cap_add": [], "cap_drop": [],
               "pdeathsig": "KILL", "keep_fds": 0,
               "seccomp": "/c/seccomp.bpf",
               "seccomp_flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}}

Capabilities: the bounding set is cut to the kept set, permitted and
effective are set to it, inheritable and ambient are emptied; a non-root
user therefore ends with no effective capabilities, as with podman.

Exit status: CMD's (it replaces cairn-pivot); 125 if cairn-pivot failed, 126
if CMD cannot be executed, 127 if it is not found.
"#;

/// `cairn-enter --help`.
pub const ENTER_HELP: &str = r#"cairn-enter: run a command in the namespaces of a running process

Usage: cairn-enter --target PID (--all | NAMESPACES...) [OPTIONS] [--] CMD [ARGS...]

Joins the namespaces of PID (with a pidfd, all at once; user namespace
first), skipping those it already shares, takes the target's root and
working directory with its mount namespace, forks once (so CMD is in a pid
or time namespace it joined), becomes the configured user, and execs CMD.
Works on any process, not only cairn containers.

CMD never gets our descriptors or terminal (a terminal can be typed into
with TIOCSTI): it runs in a session of its own, with stdin /dev/null (or,
with --stdin, a pipe) and stdout and stderr pipes, or with --tty a new pty
of the target's /dev/pts (its own devpts, checked) as controlling terminal.
The parent stays outside the target's pid namespace, copies our stdin to
CMD and its output to our stdout and stderr (with --tty our terminal is raw
while attached, and the pty follows its size), forwards SIGINT, SIGTERM,
SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2, and exits with CMD's status, 128+N if
a signal N killed it.

Namespaces:
  -t, --target PID   the process whose namespaces are joined
  -a, --all          every namespace of PID that differs from ours
  -m, --mount  -u, --uts  -i, --ipc  -n, --net  -p, --pid  -C, --cgroup
  -U, --userns  -T, --time

Terminal:
  --tty                a new pty for CMD (podman exec -t)
  --stdin              copy our stdin to CMD (podman exec -i)

Cgroup:
  --join-cgroup PATH   the process that joins moves itself into this cgroup
                       (its path in every hierarchy, /cairn/libpod-ID) first,
                       if it exists: CMD counts against the container's
                       limits and is frozen with it

Events:
  --exit-event JSON    {"log": PATH, "event": {...}}: when CMD ends, append
                       the event to that event log as "exec_died" with
                       CMD's exit code (podman's events)

Process (defaults follow the target, like podman exec):
  --user USER[:GROUP]  names or numbers from the container's /etc/passwd and
                       /etc/group [the target's uid and gid]
  --group-add GROUP    extra supplementary group (repeatable; the target's
                       groups are kept)
  -w, --workdir DIR    working directory [the target's]
  -e, --env KEY=VALUE  set a variable (repeatable) over the target's
                       environment (/proc/PID/environ)
  --preserve-env       start from our environment instead of the target's
  --user-home          HOME from --user's /etc/passwd entry (empty without
                       one) over the target's; --env still sets it
  --no-new-privs       set no_new_privs (also set when the target has it)
  --privileged         keep every capability we have
  --cap-add CAP        adjust the target's bounding set, which is otherwise
  --cap-drop CAP       what CMD gets
  --pdeathsig SIG      signal to CMD when its parent dies [KILL when forked,
                       none otherwise]; none
  --keep-fds N         keep descriptors 3..3+N-1 open
  --seccomp FILE       install this seccomp filter (see cairn-pivot --help)
  --seccomp-flag NAME  its SECCOMP_FILTER_FLAG_* flags (repeatable)
  --spec FILE          read the settings from a JSON file (flags on top)
  -h, --help           this text
  --version            print the version

JSON spec (unknown fields are errors; "namespaces" empty or absent = all):
  {"target": 1234, "namespaces": ["user", "cgroup", "ipc", "uts", "net",
   "pid", "time", "mnt"], "tty": false, "stdin": false,
   "process": { ...as in cairn-pivot --help... },
   "exit_event": {"log": PATH, "event": {...}},
   "cgroup": "/cairn/libpod-ID"}   (the process that joins moves itself
                                    into that cgroup first, if it exists)

Exit status: CMD's; 125 if cairn-enter failed, 126 if CMD cannot be
executed, 127 if it is not found.
"#;

/// `cairn-monitor --help`.
pub const MONITOR_HELP: &str = r#"cairn-monitor: start a container's first process, log it, record its exit

Usage: cairn-monitor --spec FILE [--sync-fd N] [--lock-fd N]

Run by the engine (conmon's role), with stdin, stdout and stderr either
/dev/null (detached) or the user's terminal or pipes (attached). It starts
its own session and ignores SIGHUP, SIGINT, SIGTERM, SIGQUIT and SIGPIPE, so
it outlives its launcher; SIGWINCH makes it copy its terminal's window size
to the container's pty.

It clones the child into the new namespaces in one step (pid 1 of a new pid
namespace), with descriptors 0 = /dev/null or (with "stdin" and no tty) a
pipe from the monitor (never our stdin itself), 1 and 2 = pipes to the monitor, 3 = the error pipe, 4 = the console
socket (with "tty"); brings lo up, sets the limits, and execs args[0]
(normally cairn-mount --error-fd 3 -- cairn-pivot --error-fd 3
[--console-socket 4] ...). A failing helper writes {"code":C,"message":M} on
descriptor 3; the final exec closes it. Then one line goes to the sync
descriptor N, which is closed after it:
  {"pid":1234}                                    the command runs
  {"pid":1234,"error":"...","code":125|126|127}   it did not start
  {"pid":0,"error":"...","code":125}              no process was created
The child's output is appended to the log in podman's k8s-file format
  2026-11-28T14:08:20.123456789+00:00 stdout F a full line
  2026-11-28T14:08:20.123456789+00:00 stderr P a partial line
and, with "attach", copied unchanged to our stdout and stderr (a pty's
output is all stdout). With "tty", our terminal's size is queued on the
console socket ({"rows":R,"cols":C}) before the child starts, so the pty has
it from the start, and follows it on SIGWINCH; with "stdin" our stdin is
copied to the pty (made raw while attached to a terminal; at its end the pty
gets ^D) or, without "tty", to the stdin pipe (closed at its end).
When the child ends, its output is drained, the exit file written
(atomically) and the monitor exits with the child's code.

Options:
  --spec FILE       the settings (below)
  --sync-fd N       inherited descriptor for the start report
  --lock-fd N       inherited descriptor of a file the launcher flock(2)ed:
                    the monitor writes its pid there and keeps it open (so
                    the lock held) until it exits; a launcher killed before
                    it could record the monitor finds it through the file
  -h, --help        this text
  --version         print the version

JSON spec (unknown fields are errors; "args" and "exit_file" required):
  {
    "id": "<container id>",
    "args": ["/usr/libexec/cairn/cairn-mount", "--spec", "...", "--error-fd",
             "3", "--", "/usr/libexec/cairn/cairn-pivot", ...],
    "env": ["K=V", ...],              (null: the monitor's environment)
    "namespaces": ["user", "mnt", "uts", "ipc", "pid", "net", "cgroup"],
    "uid_map": [[1000, 0, 1], [0, 1, 1000]],   (with "user": [inside,
    "gid_map": [[1000, 0, 1], [0, 1, 1000]],    outside, count] triples,
                                      each inside one range of our own map;
                                      the child becomes root in it)
    "loopback": true,                 (lo up, when "net" is new)
    "rlimits": [{"type": "nofile", "soft": 1024, "hard": 1024}],
                                      (-1: unlimited; failing is error 125)
    "tty": false, "stdin": false, "attach": false,
    "log": "/c/ctr.log",              (appended; null: no log)
    "exit_file": "/c/exit.json",
    "pid_file": "/c/pid",             (optional; decimal, no newline)
    "events": {"log": "/root/events/events.log", "event": {...}}
                                      (optional: the container's event,
                                      appended as "start" (and "attach")
                                      once the command runs, as "died"
                                      with its exit code when it ends)
    "cgroup": {"path": "/cairn/libpod-ID", "resources": {"memory": N,
               "pids_limit": N, ...}, "devices": [{"allow": true,
               "kind": "c", "major": 1, "minor": 3, "access": "rwm"}]}
                                      (optional: created with its limits
                                      before the clone, the child moved in
                                      before it runs, removed with what is
                                      left in it when the child ends)
  }
exit_file: {"exit_code": N, "signal": S|null, "finished_ns": <unix ns>,
"oom_killed": B}, exit_code 128+S when signal S killed the process.

Exit status: the container's (as in the exit file); 125 if it could not be
started at all.
"#;

/// One option a binary accepts.
struct Opt {
    long: &'static str,
    short: Option<char>,
    value: bool,
}

const fn flag(long: &'static str, short: Option<char>) -> Opt {
    Opt {
        long,
        short,
        value: false,
    }
}

const fn val(long: &'static str, short: Option<char>) -> Opt {
    Opt {
        long,
        short,
        value: true,
    }
}

const COMMON: &[Opt] = &[
    flag("help", Some('h')),
    flag("version", None),
    val("spec", None),
];

const MOUNT_OPTS: &[Opt] = &[
    val("root", None),
    val("overlay", None),
    val("upper", None),
    val("work", None),
    val("overlay-opt", None),
    val("target", None),
    flag("read-only", None),
    val("proc", None),
    val("dev", None),
    val("sys", None),
    flag("tmp", None),
    val("run", None),
    val("hostname", None),
    val("etc-file", None),
    flag("privileged", None),
    val("mask", None),
    val("unmask", None),
    val("bind", None),
    val("tmpfs", None),
    val("error-fd", None),
];

const PROCESS_OPTS: &[Opt] = &[
    val("user", None),
    val("group-add", None),
    val("workdir", Some('w')),
    val("env", Some('e')),
    flag("preserve-env", None),
    flag("user-home", None),
    flag("no-new-privs", None),
    flag("privileged", None),
    val("cap-add", None),
    val("cap-drop", None),
    val("pdeathsig", None),
    val("keep-fds", None),
    val("seccomp", None),
    val("seccomp-flag", None),
];

const PIVOT_OPTS: &[Opt] = &[
    val("root", None),
    val("hostname", None),
    val("error-fd", None),
    val("console-socket", None),
    flag("init", None),
];

const MONITOR_OPTS: &[Opt] = &[val("sync-fd", None), val("lock-fd", None)];

const ENTER_OPTS: &[Opt] = &[
    val("target", Some('t')),
    flag("all", Some('a')),
    flag("mount", Some('m')),
    flag("uts", Some('u')),
    flag("ipc", Some('i')),
    flag("net", Some('n')),
    flag("pid", Some('p')),
    flag("cgroup", Some('C')),
    flag("userns", Some('U')),
    flag("time", Some('T')),
    flag("tty", None),
    flag("stdin", None),
    val("exit-event", None),
    val("join-cgroup", None),
];

/// Parsed command line: options in order, then the command.
#[derive(Debug, Default)]
struct Parsed {
    opts: Vec<(&'static str, String)>,
    command: Vec<OsString>,
}

impl Parsed {
    fn has(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _)| *n == name)
    }
}

fn parse(prog: &str, argv: Vec<OsString>, tables: &[&[Opt]]) -> Result<Parsed> {
    let find_long = |name: &str| {
        tables
            .iter()
            .flat_map(|t| t.iter())
            .find(|o| o.long == name)
    };
    let find_short = |c: char| {
        tables
            .iter()
            .flat_map(|t| t.iter())
            .find(|o| o.short == Some(c))
    };
    let unknown = |what: &str| Error::Usage(format!("unknown option {what} (see {prog} --help)"));
    let mut out = Parsed::default();
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let Some(s) = arg.to_str() else {
            out.command.push(arg);
            break;
        };
        if s == "--" {
            break;
        }
        if let Some(long) = s.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let opt = find_long(name).ok_or_else(|| unknown(s))?;
            let value = match (opt.value, inline) {
                (true, Some(v)) => v,
                (true, None) => next_value(prog, &mut it, opt.long)?,
                (false, None) => String::new(),
                (false, Some(_)) => {
                    return Err(Error::Usage(format!(
                        "option --{name} takes no value (see {prog} --help)"
                    )))
                }
            };
            out.opts.push((opt.long, value));
        } else if s.len() > 1 && s.starts_with('-') {
            // -mup, -t 42, -t42
            let chars: Vec<char> = s[1..].chars().collect();
            for (i, c) in chars.iter().enumerate() {
                let opt = find_short(*c).ok_or_else(|| unknown(&format!("-{c}")))?;
                if opt.value {
                    let rest: String = chars[i + 1..].iter().collect();
                    let value = if rest.is_empty() {
                        next_value(prog, &mut it, opt.long)?
                    } else {
                        rest
                    };
                    out.opts.push((opt.long, value));
                    break;
                }
                out.opts.push((opt.long, String::new()));
            }
        } else {
            out.command.push(arg);
            break;
        }
    }
    out.command.extend(it);
    Ok(out)
}

fn next_value(prog: &str, it: &mut impl Iterator<Item = OsString>, name: &str) -> Result<String> {
    let v = it.next().ok_or_else(|| {
        Error::Usage(format!("option --{name} needs a value (see {prog} --help)"))
    })?;
    v.into_string()
        .map_err(|v| Error::Usage(format!("option --{name}: value {v:?} is not UTF-8")))
}

/// What a binary's command line asks for.
#[derive(Debug)]
pub enum Action<T> {
    /// Print this text to stdout and exit 0.
    Print(&'static str),
    /// Run.
    Run(T),
}

fn early<T>(p: &Parsed, help: &'static str) -> Option<Action<T>> {
    if p.has("help") {
        Some(Action::Print(help))
    } else if p.has("version") {
        Some(Action::Print(concat!(env!("CARGO_PKG_VERSION"), "\n")))
    } else {
        None
    }
}

fn spec_file<T: Default + serde::de::DeserializeOwned>(p: &Parsed) -> Result<T> {
    match p.opts.iter().rev().find(|(n, _)| *n == "spec") {
        Some((_, path)) => spec::load(&PathBuf::from(path)),
        None => Ok(T::default()),
    }
}

fn mode<T: serde::de::DeserializeOwned>(flag: &str, value: &str, choices: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|_| Error::Usage(format!("--{flag} {value:?}: expected one of {choices}")))
}

fn hosts_for(name: &str) -> String {
    format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{name}\n")
}

/// Parse `cairn-mount`'s command line (`argv` without the program name):
/// the spec and the program to exec.
pub fn mount_args(argv: Vec<OsString>) -> Result<Action<(MountSpec, Vec<OsString>)>> {
    let p = parse("cairn-mount", argv, &[COMMON, MOUNT_OPTS])?;
    if let Some(a) = early(&p, MOUNT_HELP) {
        return Ok(a);
    }
    let mut s: MountSpec = spec_file(&p)?;
    let mut overlay: Option<Overlay> = match &s.root {
        Some(Root::Overlay(o)) => Some(o.clone()),
        _ => None,
    };
    let mut hostname = None;
    let need_overlay = |o: &mut Option<Overlay>, flag: &str| -> Result<()> {
        if o.is_none() {
            return Err(Error::Usage(format!(
                "--{flag} needs --overlay LOWER[:LOWER...] first"
            )));
        }
        Ok(())
    };
    for (name, v) in &p.opts {
        match *name {
            "root" => {
                s.root = Some(Root::Bind(v.into()));
                overlay = None;
            }
            "overlay" => {
                let lower = v
                    .split(':')
                    .filter(|l| !l.is_empty())
                    .map(PathBuf::from)
                    .collect();
                let old = overlay.take();
                overlay = Some(Overlay {
                    lower,
                    upper: old.as_ref().and_then(|o| o.upper.clone()),
                    work: old.as_ref().and_then(|o| o.work.clone()),
                    options: old.map(|o| o.options).unwrap_or_default(),
                });
            }
            "upper" => {
                need_overlay(&mut overlay, name)?;
                overlay.as_mut().expect("checked").upper = Some(v.into());
            }
            "work" => {
                need_overlay(&mut overlay, name)?;
                overlay.as_mut().expect("checked").work = Some(v.into());
            }
            "overlay-opt" => {
                need_overlay(&mut overlay, name)?;
                overlay.as_mut().expect("checked").options.push(v.clone());
            }
            "target" => s.target = Some(v.into()),
            "read-only" => s.readonly = true,
            "proc" => s.proc = mode(name, v, "private, host, none")?,
            "dev" => s.dev = mode(name, v, "minimal, host, none")?,
            "sys" => s.sys = mode(name, v, "ro, rw, none")?,
            "tmp" => s.tmp = true,
            "run" => s.run = mode(name, v, "auto, tmpfs, none")?,
            "hostname" => hostname = Some(v.clone()),
            "etc-file" => {
                let (n, path) = v
                    .split_once('=')
                    .ok_or_else(|| Error::Usage(format!("--etc-file {v:?}: expected NAME=PATH")))?;
                let file = Some(EtcFile::Path(path.into()));
                match n {
                    "hostname" => s.etc.hostname = file,
                    "hosts" => s.etc.hosts = file,
                    "resolv.conf" => s.etc.resolv_conf = file,
                    _ => {
                        return Err(Error::Usage(format!(
                            "--etc-file {v:?}: NAME is one of hostname, hosts, resolv.conf"
                        )))
                    }
                }
            }
            "privileged" => s.privileged = true,
            "mask" => {
                let path = crate::path::InRoot::new(v)?;
                s.masked_paths.get_or_insert_with(default_masked).push(path);
            }
            "unmask" => {
                let list = s.masked_paths.get_or_insert_with(default_masked);
                if v.eq_ignore_ascii_case("all") {
                    list.clear();
                } else {
                    let path = crate::path::InRoot::new(v)?;
                    list.retain(|m| *m != path);
                }
            }
            "bind" => s.mounts.push(Mount::Bind(spec::parse_bind(v)?)),
            "tmpfs" => s.mounts.push(Mount::Tmpfs(spec::parse_tmpfs(v)?)),
            "error-fd" => s.error_fd = Some(fd_number(name, v)?),
            _ => {}
        }
    }
    if let Some(o) = overlay {
        s.root = Some(Root::Overlay(o));
    }
    if let Some(h) = hostname {
        if h.is_empty() || h.contains(['\n', '\0']) {
            return Err(Error::Usage(format!("--hostname {h:?}: not a host name")));
        }
        if s.etc.hosts.is_none() {
            s.etc.hosts = Some(EtcFile::Content(hosts_for(&h)));
        }
        s.etc.hostname = Some(EtcFile::Content(format!("{h}\n")));
    }
    if p.command.is_empty() {
        return Err(Error::Usage(
            "no program to exec after the mounts: add -- cairn-pivot --root TARGET -- CMD..."
                .into(),
        ));
    }
    Ok(Action::Run((s, p.command)))
}

fn default_masked() -> Vec<crate::path::InRoot> {
    spec::DEFAULT_MASKED
        .iter()
        .map(|m| crate::path::InRoot::new(m).expect("static path"))
        .collect()
}

/// Apply the process options in order on top of `proc`, and the command.
fn process_opts(p: &Parsed, proc: &mut ProcessSpec) -> Result<()> {
    for (name, v) in &p.opts {
        match *name {
            "user" => proc.user = Some(v.clone()),
            "group-add" => proc.groups.push(v.clone()),
            "workdir" => proc.workdir = Some(v.clone()),
            "env" => proc.env.push(v.clone()),
            "preserve-env" => proc.preserve_env = true,
            "user-home" => proc.user_home = true,
            "no-new-privs" => proc.no_new_privs = true,
            "privileged" => proc.privileged = true,
            "cap-add" => {
                crate::caps::adjust(0, std::slice::from_ref(v), &[])?;
                proc.cap_add.push(v.clone());
            }
            "cap-drop" => {
                crate::caps::adjust(0, &[], std::slice::from_ref(v))?;
                proc.cap_drop.push(v.clone());
            }
            "pdeathsig" => {
                crate::process::parse_signal(v)?;
                proc.pdeathsig = Some(v.clone());
            }
            "seccomp" => proc.seccomp = Some(v.into()),
            "seccomp-flag" => {
                crate::seccomp::flag_bits(std::slice::from_ref(v))?;
                proc.seccomp_flags.push(v.clone());
            }
            "keep-fds" => {
                proc.keep_fds = v
                    .parse()
                    .map_err(|_| Error::Usage(format!("--keep-fds {v:?}: expected a number")))?;
            }
            _ => {}
        }
    }
    if !p.command.is_empty() {
        proc.args = p
            .command
            .iter()
            .map(|a| {
                a.clone()
                    .into_string()
                    .map_err(|a| Error::Usage(format!("argument {a:?} is not UTF-8")))
            })
            .collect::<Result<_>>()?;
    }
    if proc.args.is_empty() {
        return Err(Error::Usage(
            "no command: give it after the options (-- CMD ARGS...)".into(),
        ));
    }
    Ok(())
}

/// Parse `cairn-pivot`'s command line.
pub fn pivot_args(argv: Vec<OsString>) -> Result<Action<PivotSpec>> {
    let p = parse("cairn-pivot", argv, &[COMMON, PIVOT_OPTS, PROCESS_OPTS])?;
    if let Some(a) = early(&p, PIVOT_HELP) {
        return Ok(a);
    }
    let mut s: PivotSpec = spec_file(&p)?;
    for (name, v) in &p.opts {
        match *name {
            "root" => s.root = Some(v.into()),
            "hostname" => s.hostname = Some(v.clone()),
            "error-fd" => s.error_fd = Some(fd_number(name, v)?),
            "console-socket" => s.console_socket = Some(fd_number(name, v)?),
            "init" => s.init = true,
            _ => {}
        }
    }
    process_opts(&p, &mut s.process)?;
    if s.root.is_none() {
        return Err(Error::Usage("no new root: give --root DIR".into()));
    }
    if s.console_socket.is_some() && s.console_socket == s.error_fd {
        return Err(Error::Usage(
            "--console-socket and --error-fd must be different descriptors".into(),
        ));
    }
    Ok(Action::Run(s))
}

/// A descriptor number given to `--NAME` (3 or more: 0-2 are stdio).
fn fd_number(name: &str, v: &str) -> Result<i32> {
    v.parse::<i32>().ok().filter(|&n| n > 2).ok_or_else(|| {
        Error::Usage(format!(
            "--{name} {v:?}: expected a descriptor number above 2"
        ))
    })
}

/// Where a helper's failure report goes, found in `argv` without parsing
/// it fully (`--error-fd N` or `--error-fd=N` before the command), so that
/// even a bad command line is reported there.
pub fn error_fd_in(argv: &[OsString]) -> Option<i32> {
    let mut it = argv.iter().map(|a| a.to_str().unwrap_or(""));
    let mut found = None;
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "--error-fd" {
            found = it.next().and_then(|v| fd_number("error-fd", v).ok());
        } else if let Some(v) = a.strip_prefix("--error-fd=") {
            found = fd_number("error-fd", v).ok();
        }
    }
    found
}

/// `cairn-monitor`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorArgs {
    /// The spec file.
    pub spec: PathBuf,
    /// Where the start report goes.
    pub sync_fd: Option<i32>,
    /// The launcher's locked file, held for the monitor's lifetime.
    pub lock_fd: Option<i32>,
}

/// Parse `cairn-monitor`'s command line.
pub fn monitor_args(argv: Vec<OsString>) -> Result<Action<MonitorArgs>> {
    let p = parse("cairn-monitor", argv, &[COMMON, MONITOR_OPTS])?;
    if let Some(a) = early(&p, MONITOR_HELP) {
        return Ok(a);
    }
    if let Some(extra) = p.command.first() {
        return Err(Error::Usage(format!(
            "unexpected argument {extra:?}: the command goes in the spec's \"args\" (see cairn-monitor --help)"
        )));
    }
    let mut spec = None;
    let mut sync_fd = None;
    let mut lock_fd = None;
    for (name, v) in &p.opts {
        match *name {
            "spec" => spec = Some(PathBuf::from(v)),
            "sync-fd" => sync_fd = Some(fd_number(name, v)?),
            "lock-fd" => lock_fd = Some(fd_number(name, v)?),
            _ => {}
        }
    }
    let spec = spec.ok_or_else(|| Error::Usage("no spec: give --spec FILE".into()))?;
    if sync_fd.is_some() && sync_fd == lock_fd {
        return Err(Error::Usage(
            "--sync-fd and --lock-fd must be different descriptors".into(),
        ));
    }
    Ok(Action::Run(MonitorArgs {
        spec,
        sync_fd,
        lock_fd,
    }))
}

/// Parse `cairn-enter`'s command line.
pub fn enter_args(argv: Vec<OsString>) -> Result<Action<EnterSpec>> {
    let p = parse("cairn-enter", argv, &[COMMON, ENTER_OPTS, PROCESS_OPTS])?;
    if let Some(a) = early(&p, ENTER_HELP) {
        return Ok(a);
    }
    let mut s: EnterSpec = spec_file(&p)?;
    let mut all = false;
    let mut chosen = Vec::new();
    for (name, v) in &p.opts {
        let ns = match *name {
            "target" => {
                s.target =
                    Some(v.parse().map_err(|_| {
                        Error::Usage(format!("--target {v:?}: expected a process id"))
                    })?);
                continue;
            }
            "all" => {
                all = true;
                continue;
            }
            "tty" => {
                s.tty = true;
                continue;
            }
            "stdin" => {
                s.stdin = true;
                continue;
            }
            "exit-event" => {
                s.exit_event = Some(serde_json::from_str(v).map_err(|e| {
                    Error::Usage(format!(
                        "--exit-event: expected {{\"log\": PATH, \"event\": {{...}}}}: {e}"
                    ))
                })?);
                continue;
            }
            "join-cgroup" => {
                crate::cgroup::validate_path(v)
                    .map_err(|e| Error::Usage(format!("--join-cgroup {v:?}: {e}")))?;
                s.cgroup = Some(v.to_owned());
                continue;
            }
            "mount" => Namespace::Mnt,
            "uts" => Namespace::Uts,
            "ipc" => Namespace::Ipc,
            "net" => Namespace::Net,
            "pid" => Namespace::Pid,
            "cgroup" => Namespace::Cgroup,
            "userns" => Namespace::User,
            "time" => Namespace::Time,
            _ => continue,
        };
        if !chosen.contains(&ns) {
            chosen.push(ns);
        }
    }
    if all {
        s.namespaces.clear();
    } else if !chosen.is_empty() {
        s.namespaces = chosen;
    } else if p.opts.iter().all(|(n, _)| *n != "spec") {
        return Err(Error::Usage(
            "which namespaces? give --all, or some of --mount --uts --ipc --net --pid --cgroup --userns --time".into(),
        ));
    }
    process_opts(&p, &mut s.process)?;
    if s.target.is_none() {
        return Err(Error::Usage("no target: give --target PID".into()));
    }
    Ok(Action::Run(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn command_starts_at_double_dash_or_first_word() {
        let Action::Run(e) = enter_args(argv("--all --target 42 true -x")).unwrap() else {
            panic!()
        };
        assert_eq!(e.target, Some(42));
        assert!(e.namespaces.is_empty());
        assert_eq!(e.process.args, ["true", "-x"]);
        let Action::Run(e) = enter_args(argv("-t42 -mup -e A=1 --env=B=2 -- sh -c --all")).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            e.namespaces,
            [Namespace::Mnt, Namespace::Uts, Namespace::Pid]
        );
        assert_eq!(e.process.env, ["A=1", "B=2"]);
        assert_eq!(e.process.args, ["sh", "-c", "--all"]);
        for bad in [
            "--target 1 true",
            "--all true",
            "--all --target x true",
            "--all --target 1",
            "--all --target 1 --bogus true",
            "-a -t",
        ] {
            assert!(enter_args(argv(bad)).is_err(), "{bad:?} accepted");
        }
        assert!(
            matches!(enter_args(argv("--help")).unwrap(), Action::Print(t) if t.contains("Usage: cairn-enter"))
        );
    }

    #[test]
    fn mount_flags_build_the_spec() {
        let Action::Run((s, cmd)) = mount_args(argv(
            "--overlay /l1:/l2 --upper /u --work /w --target /r --read-only --proc host --tmp --hostname box \
             --bind /a:/b:ro --tmpfs /c:size=1m --unmask /proc/kcore --mask /proc/cpuinfo -- cairn-pivot --root /r -- sh",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(cmd, argv("cairn-pivot --root /r -- sh"));
        let Some(Root::Overlay(o)) = &s.root else {
            panic!()
        };
        assert_eq!(o.lower.len(), 2);
        assert_eq!(o.upper.as_deref(), Some(std::path::Path::new("/u")));
        assert!(s.readonly && s.tmp);
        assert_eq!(s.etc.hostname, Some(EtcFile::Content("box\n".into())));
        assert!(matches!(&s.etc.hosts, Some(EtcFile::Content(h)) if h.contains("127.0.1.1\tbox")));
        assert_eq!(s.mounts.len(), 2);
        let masked: Vec<&str> = s
            .masked_paths
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.as_str())
            .collect();
        assert!(
            !masked.contains(&"/proc/kcore")
                && masked.contains(&"/proc/cpuinfo")
                && masked.contains(&"/proc/keys")
        );
        for bad in [
            "--root /r",
            "--upper /u --root /r -- x",
            "--root /r --proc shared -- x",
            "--root /r --etc-file passwd=/x -- x",
            "--root /r --bind a:b -- x",
        ] {
            assert!(mount_args(argv(bad)).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn pivot_flags() {
        let Action::Run(s) = pivot_args(argv(
            "--root /r --hostname h --user app:staff --group-add audio -w /srv --cap-add net_admin --cap-drop ALL --no-new-privs --keep-fds 2 id -a",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(s.root.as_deref(), Some(std::path::Path::new("/r")));
        assert_eq!(s.process.user.as_deref(), Some("app:staff"));
        assert_eq!(s.process.cap_drop, ["ALL"]);
        assert_eq!(s.process.keep_fds, 2);
        assert_eq!(s.process.args, ["id", "-a"]);
        for bad in [
            "id",
            "--root /r",
            "--root /r --cap-add FLY id",
            "--root /r --pdeathsig NOPE id",
            "--root /r --keep-fds x id",
        ] {
            assert!(pivot_args(argv(bad)).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn monitor_and_error_fd_flags() {
        let Action::Run(m) =
            monitor_args(argv("--spec /c/m.json --sync-fd 5 --lock-fd 6")).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            m,
            MonitorArgs {
                spec: PathBuf::from("/c/m.json"),
                sync_fd: Some(5),
                lock_fd: Some(6)
            }
        );
        let Action::Run(m) = monitor_args(argv("--spec=/m")).unwrap() else {
            panic!()
        };
        assert_eq!((m.sync_fd, m.lock_fd), (None, None));
        for bad in [
            "",
            "--sync-fd 5",
            "--spec /m --sync-fd 1",
            "--spec /m --sync-fd x",
            "--spec /m --lock-fd 2",
            "--spec /m --sync-fd 5 --lock-fd 5",
            "--spec /m cmd",
        ] {
            assert!(monitor_args(argv(bad)).is_err(), "{bad:?} accepted");
        }
        assert!(
            matches!(monitor_args(argv("--help")).unwrap(), Action::Print(t) if t.contains("--sync-fd N"))
        );

        let Action::Run(p) = pivot_args(argv(
            "--root /r --error-fd 3 --console-socket 4 --init -- sh",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (p.error_fd, p.console_socket, p.init),
            (Some(3), Some(4), true)
        );
        let Action::Run((m, _)) = mount_args(argv("--root /r --error-fd=3 -- x")).unwrap() else {
            panic!()
        };
        assert_eq!(m.error_fd, Some(3));
        assert!(pivot_args(argv("--root /r --error-fd 2 sh")).is_err());
        assert!(pivot_args(argv("--root /r --error-fd 3 --console-socket 3 sh")).is_err());

        assert_eq!(
            error_fd_in(&argv("--root /r --error-fd 7 --bogus")),
            Some(7)
        );
        assert_eq!(error_fd_in(&argv("--error-fd=4 -- x")), Some(4));
        assert_eq!(error_fd_in(&argv("--root /r -- sh --error-fd 5")), None);
        assert_eq!(error_fd_in(&argv("--error-fd 1")), None);
    }
}
