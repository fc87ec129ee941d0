//! The attack suite: each test is an attack on the host from inside a container (or from an
//! image), run for real through the real `cairn` binary and its helpers, as root and as the
//! non-root test user (`Cairn::rootless()`), asserting the host is untouched. Issue 17's classes:
//!
//! 1. `/proc/*/fd` race during `exec` (a helper's host directory reachable from the container);
//! 2. device nodes from an image, and `mknod` inside a container;
//! 3. the host helper binaries reachable through `/proc/*/exe` (CVE-2019-5736 class): a
//!    `#!/proc/self/exe` script run by `exec`, `run --init`'s pid 1, and the exec helper during
//!    the race of 1;
//! 4. unbounded reads of files the container controls (`/etc/passwd` made `/dev/zero`, a FIFO, an
//!    absolute symlink to a host file);
//! 5. podman's masked paths.
//!
//! The attacker inside is `tests/support/attack-probe.c` (compiled with `cc -static`,
//! bind-mounted at `/attack`); it logs what it reached and the test decides on the host what
//! escaped. Every finding names what escaped and where; a test that finds several lists them all.

use std::fs;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use cairn_tests::attack::{self, Entry, HostBinaries, LoopDevice, RaceLog};
use cairn_tests::fixtures::{self, refs};
use cairn_tests::podman::Podman;
use cairn_tests::Cairn;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Root,
    Rootless,
}

/// A store per mode with the Debian fixture image, shared by the tests of that mode running at
/// the same time (a pull costs seconds; each test names its own containers and removes them).
struct Shared {
    cairn: Cairn,
    image: String,
}

fn shared(mode: Mode) -> Arc<Shared> {
    static ROOT: Mutex<Weak<Shared>> = Mutex::new(Weak::new());
    static ROOTLESS: Mutex<Weak<Shared>> = Mutex::new(Weak::new());
    let slot = match mode {
        Mode::Root => &ROOT,
        Mode::Rootless => &ROOTLESS,
    };
    let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = guard.upgrade() {
        return s;
    }
    let cairn = match mode {
        Mode::Root => Cairn::on_fast_store("cairn-attack-").expect("cairn environment"),
        Mode::Rootless => {
            Cairn::rootless().expect("rootless environment (tests/support/test-user.sh)")
        }
    };
    let image = cairn.ok(["pull", "-q", &fixtures::oci_ref(refs::DEBIAN_MIN)]);
    let s = Arc::new(Shared {
        cairn,
        image: image.trim().to_owned(),
    });
    *guard = Arc::downgrade(&s);
    s
}

/// A test's containers in a shared store: removed (SIGKILL at once) on drop, and any process
/// whose command line holds `tag` killed, so nothing of a failed attack outlives the test.
struct Containers<'a> {
    cairn: &'a Cairn,
    names: Vec<String>,
    tag: String,
}

impl Containers<'_> {
    /// `name`, made unique to this test run (the store may be shared).
    fn name(&mut self, name: &str) -> String {
        let n = format!("{name}-{}", self.tag);
        self.names.push(n.clone());
        n
    }
}

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        if !self.names.is_empty() {
            let mut args = vec!["rm", "-f", "-t", "0"];
            args.extend(self.names.iter().map(String::as_str));
            let _ = self.cairn.run(&args);
        }
        for (pid, _) in cairn_tests::util::processes_with(&self.tag) {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }
}

fn containers<'a>(c: &'a Cairn, tag: &str) -> Containers<'a> {
    Containers {
        cairn: c,
        names: Vec::new(),
        tag: tag.to_owned(),
    }
}

/// `-v HOST:CTR[:ro]`.
fn volume(host: &Path, ctr: &str) -> String {
    format!("{}:{ctr}", host.display())
}

/// Panics with every finding, if any, under `what`.
fn assert_none(what: &str, findings: &[String]) {
    assert!(
        findings.is_empty(),
        "{what}: {} finding(s):\n  - {}",
        findings.len(),
        findings.join("\n  - ")
    );
}

/// The host directories an escaped process would write its marker into, and the test's own
/// trees (searched recursively).
fn host_marker_dirs() -> Vec<PathBuf> {
    ["/", "/tmp", "/var/tmp", "/dev/shm", "/root", "/run"]
        .iter()
        .map(PathBuf::from)
        .collect()
}

/// Everything a `race` probe's log and the host show after an attack: markers written on the
/// host (removed again), directories outside the container reached, host binaries reached or
/// changed (repaired when only appended to).
fn race_findings(
    c: &Cairn,
    log: &RaceLog,
    host: &HostBinaries,
    out: &Path,
    tag: &str,
) -> Vec<String> {
    let mut findings = Vec::new();
    let marker = format!("cairn-attack-{tag}");
    let dirs = host_marker_dirs();
    let dir_refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    for m in attack::find_named(&marker, &dir_refs, &[c.scratch(), c.root()]) {
        findings.push(format!(
            "marker file {} was written on the host from inside the container",
            m.display()
        ));
        let _ = fs::remove_file(&m);
    }
    let host_root = fs::metadata("/")
        .map(|m| (m.dev(), m.ino()))
        .expect("stat /");
    for (pid, what, id, link) in &log.reached {
        if *id == host_root {
            findings.push(format!(
                "through /proc/{pid}/{what} ({link:?}) the container reached the host's / (dev {} ino {})",
                id.0, id.1
            ));
        }
    }
    for line in log.foreign_dirs() {
        findings.push(format!("a directory outside the container's root: {line}"));
    }
    if !log.escapes.is_empty() {
        let shown: Vec<&str> = log.escapes.iter().take(12).map(String::as_str).collect();
        findings.push(format!(
            "{} of the attacker's {} walks left the container's root; its log of the first:\n      {}",
            log.escape_count,
            log.walks,
            shown.join("\n      ")
        ));
    }
    findings.extend(attack::exe_findings(log, host, out));
    findings.extend(host.check_and_repair());
    findings
}

/// The probe installed in a directory of this test's own (bind-mounted read-only at `/attack`),
/// and an output directory the container's root can write (`/out`).
fn probe_dirs(c: &Cairn, tag: &str) -> (PathBuf, PathBuf) {
    let bin = c.scratch().join(format!("attack-{tag}"));
    attack::probe(&bin).expect("install the probe");
    let out = attack::user_dir(c, &format!("out-{tag}")).expect("output dir");
    (bin, out)
}

/// Starts `name` running the `race` probe (`--init` when `init`), waits until it polls; returns
/// its output directory.
fn start_racer(c: &Cairn, image: &str, name: &str, tag: &str, init: bool) -> PathBuf {
    let (bin, out) = probe_dirs(c, tag);
    let mut args = vec!["run", "-d", "--name", name];
    if init {
        args.push("--init");
    }
    let attack_vol = format!("{}:ro", volume(&bin, "/attack"));
    let out_vol = volume(&out, "/out");
    args.extend([
        "-v",
        &attack_vol,
        "-v",
        &out_vol,
        image,
        "/attack/probe",
        "race",
        tag,
        "/out",
        "120",
    ]);
    c.ok(&args);
    attack::wait_for_file(&out.join("ready"), Duration::from_secs(30)).unwrap_or_else(|e| {
        let logs = c.run(["logs", name]);
        panic!(
            "the attacker did not start: {e:#}; logs: {}{}",
            logs.stdout, logs.stderr
        )
    });
    out
}

/// Fails unless the attacker ran and saw at least `min_pids` other processes: an attack that
/// did not run proves nothing.
fn assert_attack_ran(log: &RaceLog, min_pids: u64) {
    assert!(
        log.done.is_some() && log.pids_seen >= min_pids,
        "the attacker did not run as planned (finished: {:?}, processes seen {} < {min_pids}): the test proves nothing",
        log.done,
        log.pids_seen
    );
}

// ---------------------------------------------------------------------------------------------
// 1 + 3(c). /proc/*/fd (and cwd, root, exe) race during exec.

/// Attack class: a process in the container polls `/proc/[0-9]*/fd/*`, `cwd` and `root` of every
/// other process and walks up (`../..`) from each directory it finds, while the host runs 100
/// execs: `cairn exec CTR true` 40 times, `exec CTR /bin/true` 30 times (no PATH search), and
/// `exec -e PATH=<300 missing dirs>:/usr/bin:/bin CTR true` 30 times (every entry one failed
/// `execve`, so a wider window). Where a walk leaves the container's root it writes a marker file
/// and moves its cwd there; it also keeps `/proc/N/exe` of the exec helper (3c) and after the
/// helper exits reopens it for writing.
///
/// Defence checked: `cairn-enter` closes every descriptor the command does not need and is
/// non-dumpable before its child can be seen from the container; helpers run from a sealed copy.
/// Asserted: no marker on the host (/, /tmp, /var/tmp, /dev/shm, /root, /run, the test's dirs,
/// the store), no directory reached other than the container's root (dev/ino compared with the
/// probe's root and the host's /), no host helper binary reached, read or changed.
fn proc_fd_race(mode: Mode) {
    let _serial = attack::host_binaries_lock();
    let host = HostBinaries::snapshot().expect("fingerprint cairn's binaries");
    let env = shared(mode);
    let c = &env.cairn;
    let tag = attack::unique_tag("race");
    let mut ctrs = containers(c, &tag);
    let racer = ctrs.name("racer");
    let out = start_racer(c, &env.image, &racer, &tag, false);

    let long_path: Vec<String> = (1..=300).map(|i| format!("/nonexistent/{i}")).collect();
    let long_path = format!("PATH={}:/usr/bin:/bin", long_path.join(":"));
    // 100 execs in all (the suite's time budget; an unfixed cairn-enter is reached on the first).
    let variants: [(Vec<&str>, usize); 3] = [
        (vec!["exec", &racer, "true"], 40),
        (vec!["exec", &racer, "/bin/true"], 30),
        (vec!["exec", "-e", &long_path, &racer, "true"], 30),
    ];
    let mut exec_failures = Vec::new();
    for (args, times) in &variants {
        for _ in 0..*times {
            let r = c.run(args);
            if r.code != 0 && exec_failures.len() < 3 {
                exec_failures.push(format!(
                    "exec {} exited {}: {}",
                    args.last().unwrap_or(&""),
                    r.code,
                    r.stderr.trim()
                ));
            }
        }
    }
    let log = attack::finish_race(&out, Duration::from_secs(30));
    let findings = race_findings(c, &log, &host, &out, &tag);
    assert_attack_ran(&log, 10);
    assert_none(
        &format!("{mode:?}: the /proc/*/fd race during 100 execs got out of the container"),
        &findings,
    );
    assert!(
        exec_failures.is_empty(),
        "exec failed during the race: {exec_failures:?}"
    );
}

#[test]
fn proc_fd_race_during_exec_root() {
    proc_fd_race(Mode::Root);
}

#[test]
fn proc_fd_race_during_exec_rootless() {
    proc_fd_race(Mode::Rootless);
}

// ---------------------------------------------------------------------------------------------
// 3(a). #!/proc/self/exe

/// Attack class: CVE-2019-5736. A script in the container whose interpreter is `/proc/self/exe`,
/// run with `cairn exec CTR /script` 30 times: the kernel resolves the interpreter in the
/// exec'ing process, so without a sealed copy it runs the host's `cairn-enter` inside the
/// container, where another container process (the probe, polling) opens `/proc/N/exe`, keeps
/// the descriptor, and after the process exits reopens it through `/proc/self/fd/M` to read it
/// and append to it.
///
/// Defence checked: helpers that run inside a container execute from a sealed `memfd` copy (or
/// an equivalent the kernel guarantees), so `/proc/*/exe` never is a host file.
/// Asserted: no `/proc/*/exe` the container can open is a host binary of cairn's (dev/ino), no
/// non-memfd copy of one is readable, nothing could be written, and `cairn`, `cairn-enter`,
/// `cairn-pivot`, `cairn-mount`, `cairn-monitor` have the same sha256 before and after.
fn proc_self_exe_script(mode: Mode) {
    let _serial = attack::host_binaries_lock();
    let host = HostBinaries::snapshot().expect("fingerprint cairn's binaries");
    let env = shared(mode);
    let c = &env.cairn;
    let tag = attack::unique_tag("selfexe");
    let mut ctrs = containers(c, &tag);
    let victim = ctrs.name("victim");
    let out = start_racer(c, &env.image, &victim, &tag, false);
    c.ok([
        "exec",
        &victim,
        "sh",
        "-c",
        "printf '#!/proc/self/exe\\n' > /script && chmod 755 /script",
    ]);
    let mut first = None;
    for _ in 0..30 {
        let r = c.run(["exec", &victim, "/script"]);
        first.get_or_insert(r);
    }
    let log = attack::finish_race(&out, Duration::from_secs(30));
    let findings = race_findings(c, &log, &host, &out, &tag);
    assert_attack_ran(&log, 5);
    let first = first.expect("ran the script");
    assert_none(
        &format!(
            "{mode:?}: `exec CTR /script` (#!/proc/self/exe) exposed a host binary (the first run exited {}: {:?})",
            first.code,
            first.stderr.trim()
        ),
        &findings,
    );
}

#[test]
fn proc_self_exe_script_root() {
    proc_self_exe_script(Mode::Root);
}

#[test]
fn proc_self_exe_script_rootless() {
    proc_self_exe_script(Mode::Rootless);
}

// ---------------------------------------------------------------------------------------------
// 3(b). run --init: /proc/1/exe

/// Attack class: CVE-2019-5736 against the init. With `run --init` pid 1 is cairn's own init
/// (`cairn-pivot`); the container's process opens `/proc/1/exe`, reads it and tries to write it.
///
/// Defence checked: the init runs from a sealed copy, not the host file.
/// Asserted: `/proc/1/exe` is not a host binary of cairn's (dev/ino), no non-memfd copy is
/// readable, nothing could be written, the host binaries are unchanged.
fn init_exe(mode: Mode) {
    let _serial = attack::host_binaries_lock();
    let host = HostBinaries::snapshot().expect("fingerprint cairn's binaries");
    let env = shared(mode);
    let c = &env.cairn;
    let tag = attack::unique_tag("init");
    let mut ctrs = containers(c, &tag);
    let name = ctrs.name("withinit");
    let out = start_racer(c, &env.image, &name, &tag, true);
    std::thread::sleep(Duration::from_millis(200));
    let log = attack::finish_race(&out, Duration::from_secs(30));
    let findings = race_findings(c, &log, &host, &out, &tag);
    assert_attack_ran(&log, 1);
    assert_none(
        &format!("{mode:?}: with --init, /proc/1/exe exposed a host binary"),
        &findings,
    );
}

#[test]
fn init_exe_root() {
    init_exe(Mode::Root);
}

#[test]
fn init_exe_rootless() {
    init_exe(Mode::Rootless);
}

// ---------------------------------------------------------------------------------------------
// 2. Device nodes.

/// Device nodes (rdev != 0, so not whiteouts) anywhere under `dir`.
fn device_nodes_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            let ft = m.file_type();
            if ft.is_dir() {
                stack.push(e.path());
            } else if (ft.is_block_device() || ft.is_char_device()) && m.rdev() != 0 {
                found.push(format!(
                    "{} ({} rdev {:#x}, mode {:o})",
                    e.path().display(),
                    if ft.is_block_device() {
                        "block"
                    } else {
                        "char"
                    },
                    m.rdev(),
                    m.mode() & 0o7777
                ));
            }
        }
    }
    found
}

/// What a probe `open`/`mknod` output says escaped, and whether the loop device's backing file
/// changed.
fn device_findings(output: &str, lo: &LoopDevice) -> Vec<String> {
    let mut findings = Vec::new();
    for line in output.lines() {
        if line.contains(&lo.pattern) {
            findings.push(format!(
                "read the host loop device {} (its backing file's content): {line}",
                lo.device.display()
            ));
        } else if line.contains(" open=ok") {
            findings.push(format!("a device node was usable in the container: {line}"));
        }
        if line.contains(" write=ok") {
            findings.push(format!(
                "wrote to a block device from the container: {line}"
            ));
        }
    }
    if !lo.unchanged() {
        findings.push(format!(
            "the backing file {} of the host's {} was changed from inside the container",
            lo.backing.display(),
            lo.device.display()
        ));
    }
    findings
}

/// Attack class: an image whose layer carries device nodes: the major:minor of a loop device the
/// test set up over a file of its own (a stand-in for the host disk), `c 1 5` (zero), `c 1 11`
/// (the host's kernel log) and `c 1 1` (mem; absent on some kernels). The container opens each,
/// reads 64 bytes, and writes the block device.
///
/// Defence checked: device nodes from layers are skipped (unless `--privileged`/`--device`) and
/// image roots are mounted `nodev`. Rootless: the pull and run work, the devices skipped (the
/// README says so).
/// Asserted: the pull and run succeed; no device node opens in the container; the pattern is not
/// read; the backing file is unchanged; no such device node is in the store's image roots.
fn device_nodes_from_image(mode: Mode) {
    let tag = attack::unique_tag("dev");
    let lo = LoopDevice::new(&tag).expect("a loop device (root, util-linux losetup)");
    let env = shared(mode);
    let c = &env.cairn;
    let ctrs = containers(c, &tag);
    let layout = c.scratch().join(format!("layout-{tag}"));
    let reference = attack::derive_image(
        &fixtures::layout(),
        refs::DEBIAN_MIN,
        &layout,
        "devices",
        &[
            Entry::Dir("devs/".into()),
            Entry::Block("devs/disk".into(), lo.major, lo.minor),
            Entry::Char("devs/zero".into(), 1, 5),
            Entry::Char("devs/kmsg".into(), 1, 11),
            Entry::Char("devs/mem".into(), 1, 1),
        ],
    )
    .expect("build the image with device nodes");
    let pull = c.run(["pull", "-q", &reference]);
    assert_eq!(
        pull.code,
        0,
        "{mode:?}: pulling an image with device nodes must work (the devices skipped): {}",
        pull.stderr.trim()
    );
    let image = pull.stdout.trim().to_owned();
    let (bin, _) = probe_dirs(c, &tag);
    let r = c.run([
        "run",
        "--rm",
        "-v",
        &format!("{}:ro", volume(&bin, "/attack")),
        &image,
        "/attack/probe",
        "open",
        "/devs/disk",
        "/devs/zero",
        "/devs/kmsg",
        "/devs/mem",
    ]);
    let mut findings = device_findings(&r.stdout, &lo);
    if r.code != 0 {
        findings.push(format!(
            "run of the image failed ({}): {}",
            r.code,
            r.stderr.trim()
        ));
    }
    // The image roots only: a container's upper dir may hold another test's mknod for a moment.
    for dir in ["chains", "images"] {
        for d in device_nodes_under(&c.root().join(dir)) {
            findings.push(format!(
                "the image's device node is in the store on the host: {d}"
            ));
        }
    }
    drop(ctrs);
    assert_none(
        &format!(
            "{mode:?}: device nodes from an image reached the host's devices (probe output:\n{})",
            r.stdout
        ),
        &findings,
    );
}

#[test]
fn device_nodes_from_image_root() {
    device_nodes_from_image(Mode::Root);
}

#[test]
fn device_nodes_from_image_rootless() {
    device_nodes_from_image(Mode::Rootless);
}

/// Attack class: root in the container creates the test's loop device with `mknod` in the root
/// file system, `/etc`, `/dev`, `/tmp`, `/dev/shm`, `/run`, a `-v` volume and a `--tmpfs` mount,
/// and opens, reads and writes it; once with the default capabilities (cairn's default set has
/// no `CAP_MKNOD`, so `mknod` fails), once with `--cap-add MKNOD` (which podman allows and
/// still confines with its device cgroup).
///
/// Defence checked: every mount a container can write is `nodev` (or `mknod` is refused), except
/// the device nodes cairn itself binds into `/dev`.
/// Asserted: no node created opens; the pattern is never read; the backing file is unchanged; no
/// device node is left in the volume on the host.
fn mknod_in_container(mode: Mode) {
    let tag = attack::unique_tag("mknod");
    let lo = LoopDevice::new(&tag).expect("a loop device (root, util-linux losetup)");
    let env = shared(mode);
    let c = &env.cairn;
    let _ctrs = containers(c, &tag);
    let (bin, _) = probe_dirs(c, &tag);
    let vol = attack::user_dir(c, &format!("vol-{tag}")).expect("volume dir");
    let (major, minor) = (lo.major.to_string(), lo.minor.to_string());
    let attack_vol = format!("{}:ro", volume(&bin, "/attack"));
    let vol_vol = volume(&vol, "/vol");
    let mut findings = Vec::new();
    let mut outputs = String::new();
    for caps in [&[][..], &["--cap-add", "MKNOD"][..]] {
        let mut args = vec!["run", "--rm"];
        args.extend(caps);
        args.extend([
            "-v",
            &attack_vol,
            "-v",
            &vol_vol,
            "--tmpfs",
            "/tt",
            &env.image,
            "/attack/probe",
            "mknod",
            &major,
            &minor,
            "/x",
            "/etc/x",
            "/dev/x",
            "/tmp/x",
            "/dev/shm/x",
            "/run/x",
            "/vol/x",
            "/tt/x",
        ]);
        let r = c.run(&args);
        let with = if caps.is_empty() {
            "default capabilities".to_owned()
        } else {
            caps.join(" ")
        };
        outputs.push_str(&format!("[{with}]\n{}", r.stdout));
        if r.code != 0 {
            findings.push(format!(
                "[{with}] the probe's run failed ({}): {}",
                r.code,
                r.stderr.trim()
            ));
        }
        findings.extend(
            device_findings(&r.stdout, &lo)
                .into_iter()
                .map(|f| format!("[{with}] {f}")),
        );
    }
    for d in device_nodes_under(&vol) {
        findings.push(format!(
            "a device node is left in the volume on the host: {d}"
        ));
    }
    assert_none(
        &format!(
            "{mode:?}: mknod in the container reached the host's loop device (probe output:\n{outputs})"
        ),
        &findings,
    );
}

#[test]
fn mknod_in_container_root() {
    mknod_in_container(Mode::Root);
}

#[test]
fn mknod_in_container_rootless() {
    mknod_in_container(Mode::Rootless);
}

// ---------------------------------------------------------------------------------------------
// 4. Unbounded reads.

/// Peak RSS allowed for one `exec`/`enter` (the whole process tree, `time -v`).
const MAX_RSS_KIB: u64 = 100 * 1024;
/// Address-space cap for those runs: a runaway read fails there instead of taking the
/// machine's memory (it grew to 24 GB before).
const AS_LIMIT: u64 = 1 << 30;

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// One measured `cairn ARGS` run: what went wrong, if anything.
fn bounded_run(c: &Cairn, args: &[&str], secs: u64, token: &str, host_file: &Path) -> Vec<String> {
    let m = attack::run_measured(&c.command(args), Duration::from_secs(secs), AS_LIMIT)
        .expect("measured run");
    let mut f = Vec::new();
    let what = format!("cairn {}", args.join(" "));
    if m.timed_out {
        f.push(format!("{what}: hung, killed after {secs} s"));
    } else if m.code > 128 || m.code < 0 {
        f.push(format!(
            "{what}: died (exit {}) after {:.1} s: {}",
            m.code,
            m.elapsed.as_secs_f64(),
            m.stderr.trim().chars().take(300).collect::<String>()
        ));
    }
    if m.max_rss_kib > MAX_RSS_KIB {
        f.push(format!(
            "{what}: peak RSS {} MB (limit {} MB; address space capped at {} MB for this test)",
            m.max_rss_kib / 1024,
            MAX_RSS_KIB / 1024,
            AS_LIMIT >> 20
        ));
    }
    if m.stdout.contains(token) || m.stderr.contains(token) {
        f.push(format!(
            "{what}: read the host file {} through the container's absolute /etc/passwd symlink and ran the shell it names",
            host_file.display()
        ));
    }
    f
}

/// Attack class: files the container controls, read by cairn on the host side or by
/// `cairn-enter`: `/etc/passwd` and `/etc/group` made symlinks to `/dev/zero`, `/etc/passwd` a
/// FIFO, and `/etc/passwd` an absolute symlink to a host file (the cli's `enter` reads
/// `/proc/PID/root/etc/passwd`, where an absolute symlink resolves against the host's root). The
/// host file holds a user whose shell is a script in the container that prints a token.
/// Each of `exec CTR true`, `exec -u 0`, `exec --user root`, `enter` is run under `time -v`, a
/// 1 GiB address-space cap and a timeout.
///
/// Defence checked: bounded reads (a size cap before the read, regular files only, opened
/// without blocking) of every file a container controls, resolved inside the container's root.
/// Asserted: each ends within its timeout (an error or success), peak RSS < 100 MB, no signal,
/// and the host file's token never shows.
fn unbounded_reads(mode: Mode) {
    let env = shared(mode);
    let c = &env.cairn;
    let tag = attack::unique_tag("passwd");
    let mut ctrs = containers(c, &tag);
    let out = attack::user_dir(c, &format!("out-{tag}")).expect("output dir");
    let token = format!("HOST-FILE-READ-{tag}");
    let host_file = PathBuf::from(format!("/tmp/cairn-attack-{tag}"));
    fs::write(&host_file, format!("root:x:0:0:root:/:/leak-{tag}.sh\n"))
        .expect("write the host file");
    let _remove = RemoveOnDrop(host_file.clone());
    let setups = [
        ("zpasswd", "ln -sf /dev/zero /etc/passwd".to_owned()),
        ("zgroup", "ln -sf /dev/zero /etc/group".to_owned()),
        ("fifo", "rm /etc/passwd && mkfifo /etc/passwd".to_owned()),
        (
            "hostlink",
            format!(
                "printf '#!/bin/sh\\necho {token}\\n' > /leak-{tag}.sh && chmod 755 /leak-{tag}.sh && ln -sf {} /etc/passwd",
                host_file.display()
            ),
        ),
    ];
    let mut names = std::collections::HashMap::new();
    for (kind, setup) in &setups {
        let name = ctrs.name(kind);
        c.ok([
            "run",
            "-d",
            "--name",
            &name,
            "-v",
            &volume(&out, "/out"),
            &env.image,
            "sh",
            "-c",
            &format!("{setup} && touch /out/{kind}.ready && exec sleep 1000"),
        ]);
        names.insert(*kind, name);
    }
    for (kind, _) in &setups {
        attack::wait_for_file(&out.join(format!("{kind}.ready")), Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("container {kind} did not set up: {e:#}"));
    }
    let n = |kind: &str| names[kind].as_str();
    let cases: Vec<(Vec<&str>, u64)> = vec![
        (vec!["exec", n("zpasswd"), "true"], 20),
        (vec!["exec", "-u", "0", n("zpasswd"), "true"], 20),
        (vec!["exec", "--user", "root", n("zpasswd"), "true"], 20),
        (vec!["enter", n("zpasswd")], 20),
        (vec!["exec", n("zgroup"), "true"], 20),
        (vec!["exec", "--user", "root", n("zgroup"), "true"], 20),
        (vec!["enter", n("zgroup")], 20),
        (vec!["exec", n("fifo"), "true"], 10),
        (vec!["enter", n("fifo")], 10),
        (vec!["enter", n("hostlink")], 20),
        (vec!["exec", "--user", "root", n("hostlink"), "true"], 20),
    ];
    let fifo = n("fifo");
    // The FIFO cases can only wait: they run alongside the others.
    let findings: Vec<String> = std::thread::scope(|s| {
        let waiting: Vec<_> = cases
            .iter()
            .filter(|(a, _)| a.contains(&fifo))
            .map(|(a, secs)| s.spawn(|| bounded_run(c, a, *secs, &token, &host_file)))
            .collect();
        let mut all: Vec<String> = cases
            .iter()
            .filter(|(a, _)| !a.contains(&fifo))
            .flat_map(|(a, secs)| bounded_run(c, a, *secs, &token, &host_file))
            .collect();
        for h in waiting {
            all.extend(h.join().expect("fifo case thread"));
        }
        all
    });
    assert_none(
        &format!(
            "{mode:?}: reads of container-controlled /etc/passwd and /etc/group are unbounded"
        ),
        &findings,
    );
}

#[test]
fn unbounded_reads_root() {
    unbounded_reads(Mode::Root);
}

#[test]
fn unbounded_reads_rootless() {
    unbounded_reads(Mode::Rootless);
}

// ---------------------------------------------------------------------------------------------
// 5. Masked paths.

/// podman's masked paths: containers/common `pkg/config/default.go` (`getMaskedPaths`, 2025:
/// `/proc/interrupts` and the `thermal_throttle` glob added in March 2025, GHSA-6fw5-f8r9-fgfm),
/// plus `/sys/dev/block`, which upstream dropped in December 2024 but podman 4.x, the one here
/// and in Debian 12, still masks. Paths this kernel lacks count as masked.
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
    "/sys/fs/selinux",
    "/proc/interrupts",
    "/sys/dev/block",
];

/// A shell script printing, for each of [`MASKED`] and `/sys/devices/system/cpu/cpu*/
/// thermal_throttle`, `PATH missing`, `PATH dir N` (entries) or `PATH file N` (bytes readable,
/// up to 64 KiB).
fn mask_probe_script() -> String {
    format!(
        r#"for p in {} /sys/devices/system/cpu/cpu*/thermal_throttle; do
  case "$p" in *'*'*) continue;; esac
  if [ -d "$p" ]; then echo "$p dir $(ls -A "$p" 2>/dev/null | wc -l)"
  elif [ -e "$p" ]; then echo "$p file $(head -c 65536 "$p" 2>/dev/null | wc -c)"
  else echo "$p missing"; fi
done"#,
        MASKED.join(" ")
    )
}

/// `(path, what the script saw, masked)`: masked is missing, an empty directory, or 0 bytes.
fn mask_states(output: &str) -> Vec<(String, String, bool)> {
    output
        .lines()
        .filter_map(|l| {
            let (path, state) = l.split_once(' ')?;
            let masked = state == "missing" || state.ends_with(" 0");
            Some((path.to_owned(), state.to_owned(), masked))
        })
        .collect()
}

/// The paths readable in a default `cairn run`, with what podman shows for each (when known).
fn unmasked_in_cairn(c: &Cairn, image: &str, podman: &[(String, String, bool)]) -> Vec<String> {
    let out = c.ok(["run", "--rm", image, "sh", "-c", &mask_probe_script()]);
    let states = mask_states(&out);
    let mut findings: Vec<String> = states
        .iter()
        .filter(|(_, _, masked)| !masked)
        .map(|(p, s, _)| {
            let theirs = podman
                .iter()
                .find(|(pp, _, _)| pp == p)
                .map(|(_, ps, _)| format!(", podman run here (4.x) shows {ps:?}"))
                .unwrap_or_default();
            format!("{p} is readable in a default cairn run ({s}); podman masks it{theirs}")
        })
        .collect();
    // Whatever else podman masks here (a thermal_throttle directory, say) cairn must too.
    for (p, ps, pmasked) in podman {
        let ours = states.iter().find(|(cp, _, _)| cp == p);
        if *pmasked && ours.is_none() {
            findings.push(format!(
                "{p}: podman shows {ps:?}, cairn's run printed nothing for it"
            ));
        }
    }
    findings
}

/// Attack class: information leaks through `/proc` and `/sys` files podman hides (interrupt
/// counters are a thermal side channel, GHSA-6fw5-f8r9-fgfm; timer and scheduler lists show host
/// processes; keys).
///
/// Defence checked: cairn masks podman's list (`/dev/null` over files, an empty read-only tmpfs
/// over directories).
/// Asserted: every path of [`MASKED`] is missing, empty or unreadable in a default `cairn run`,
/// and so is every path a default `podman run` masks here (run side by side, same image).
#[test]
fn masked_paths_match_podman_root() {
    let podman = Podman::new().unwrap_or_else(|e| panic!("podman is needed here: {e:#}"));
    podman
        .import_fixture(refs::DEBIAN_MIN, "localhost/debian-min:latest")
        .expect("podman imports the image");
    let theirs = mask_states(&podman.ok([
        "run",
        "--rm",
        "--network",
        "host",
        "localhost/debian-min:latest",
        "sh",
        "-c",
        &mask_probe_script(),
    ]));
    let env = shared(Mode::Root);
    let findings = unmasked_in_cairn(&env.cairn, &env.image, &theirs);
    assert_none(
        "root: podman's masked paths are readable in cairn",
        &findings,
    );
}

/// As [`masked_paths_match_podman_root`], rootless (without podman: the list alone).
#[test]
fn masked_paths_rootless() {
    let env = shared(Mode::Rootless);
    let findings = unmasked_in_cairn(&env.cairn, &env.image, &[]);
    assert_none(
        "rootless: podman's masked paths are readable in cairn",
        &findings,
    );
}
