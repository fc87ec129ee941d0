//! The JSON specs the helpers read with `--spec FILE`, the mount option
//! vocabulary, and the parsers of the short flag forms (`--bind
//! SRC:DST:OPTS`, `--tmpfs DST:OPTS`) that produce the same values. Unknown
//! fields are errors, so a typo never passes silently. Launchers reach all
//! of it through [`crate::protocol`].
//!
//! The schemas are documented for users in the `--help` texts (see
//! [`crate::cli`]); keep both in step.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, SpecError};
use crate::path::InRoot;

/// Read and parse a spec file.
pub fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let spec = |source: SpecError| Error::Spec {
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read(path).map_err(|e| spec(e.into()))?;
    serde_json::from_slice(&text).map_err(|e| spec(e.into()))
}

/// What `cairn-mount` sets up. Every field has a default except the root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    /// The container's root filesystem.
    pub root: Option<Root>,
    /// Host directory the root is assembled on (and then given to
    /// `cairn-pivot --root`). Required for an overlay; for a bind root it
    /// defaults to the bound directory itself.
    #[serde(default)]
    pub target: Option<PathBuf>,
    /// Make the root mount read-only once everything is mounted.
    #[serde(default)]
    pub readonly: bool,
    /// How `/proc` is provided.
    #[serde(default)]
    pub proc: ProcMode,
    /// How `/dev` is provided.
    #[serde(default)]
    pub dev: DevMode,
    /// How `/sys` is provided.
    #[serde(default)]
    pub sys: SysMode,
    /// Mount a tmpfs on `/tmp` (nosuid, nodev, mode 1777).
    #[serde(default)]
    pub tmp: bool,
    /// How `/run` is provided.
    #[serde(default)]
    pub run: RunMode,
    /// `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`.
    #[serde(default)]
    pub etc: Etc,
    /// Extra mounts, applied in order after the standard ones.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Skip masking and read-only paths (a privileged container).
    #[serde(default)]
    pub privileged: bool,
    /// Paths hidden from the container; `None` = [`DEFAULT_MASKED`].
    #[serde(default)]
    pub masked_paths: Option<Vec<InRoot>>,
    /// Paths made read-only; `None` = [`DEFAULT_READONLY`].
    #[serde(default)]
    pub readonly_paths: Option<Vec<InRoot>>,
    /// On failure, also write `{"code":C,"message":"..."}` as one line to
    /// this inherited descriptor (kept open for the next program).
    #[serde(default)]
    pub error_fd: Option<i32>,
    /// Kernel parameters to set first (`net.ipv4.ip_forward` = `1`): written
    /// under `/proc/sys` while the host's `/proc` is still there, so the
    /// namespaced ones (net, ipc, uts) are this process's namespaces' own.
    #[serde(default)]
    pub sysctl: std::collections::BTreeMap<String, String>,
}

/// Masked unless privileged: files get `/dev/null` bound over them,
/// directories an empty read-only tmpfs; missing ones are skipped.
pub const DEFAULT_MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
    "/sys/fs/selinux",
    "/sys/dev/block",
];

/// Read-only unless privileged (bound onto themselves, then remounted
/// read-only); missing ones are skipped.
pub const DEFAULT_READONLY: &[&str] = &[
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The container's root filesystem. JSON: `{"overlay": {...}}` or
/// `{"bind": "/dir"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Root {
    /// Kernel overlayfs.
    Overlay(Overlay),
    /// A plain (recursive) bind of a host directory.
    Bind(PathBuf),
}

/// An overlayfs root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    /// Read-only layers, topmost first (overlayfs' `lowerdir` order).
    pub lower: Vec<PathBuf>,
    /// Writable layer; without it (and `work`) the overlay is read-only.
    #[serde(default)]
    pub upper: Option<PathBuf>,
    /// Overlayfs work directory, on the same filesystem as `upper`.
    #[serde(default)]
    pub work: Option<PathBuf>,
    /// Extra overlayfs options, such as `userxattr` in a user namespace.
    #[serde(default)]
    pub options: Vec<String>,
}

/// How `/proc` is provided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcMode {
    /// A new procfs (nosuid, noexec, nodev) showing the caller's pid namespace.
    #[default]
    Private,
    /// A recursive bind of the host's `/proc` (shared pid namespace).
    Host,
    /// Nothing.
    None,
}

/// How `/dev` is provided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DevMode {
    /// A tmpfs with bound host nodes (null, zero, full, random, urandom, tty),
    /// the fd/stdio/ptmx symlinks, devpts, shm and mqueue.
    #[default]
    Minimal,
    /// A recursive bind of the host's `/dev` (privileged containers).
    Host,
    /// Nothing.
    None,
}

/// How `/sys` is provided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SysMode {
    /// Read-only: a new sysfs, or a recursive read-only bind of the host's
    /// when a new one is not allowed (no network namespace of our own).
    #[default]
    Ro,
    /// Read-write (privileged containers).
    Rw,
    /// Nothing.
    None,
}

/// How `/run` is provided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// A tmpfs when the image's `/run` is missing or empty, else the image's.
    #[default]
    Auto,
    /// Always a tmpfs (nosuid, nodev, mode 0755).
    Tmpfs,
    /// The image's `/run` as it is.
    None,
}

/// The three files every container expects in `/etc`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Etc {
    /// `/etc/hostname`.
    #[serde(default)]
    pub hostname: Option<EtcFile>,
    /// `/etc/hosts`.
    #[serde(default)]
    pub hosts: Option<EtcFile>,
    /// `/etc/resolv.conf`.
    #[serde(default, rename = "resolv.conf")]
    pub resolv_conf: Option<EtcFile>,
}

impl Etc {
    /// The configured files with their targets.
    pub fn files(&self) -> Vec<(InRoot, &EtcFile)> {
        let mut out = Vec::new();
        for (name, file) in [
            ("hostname", &self.hostname),
            ("hosts", &self.hosts),
            ("resolv.conf", &self.resolv_conf),
        ] {
            if let Some(f) = file {
                out.push((InRoot::root().join("etc").join(name), f));
            }
        }
        out
    }
}

/// Where one `/etc` file comes from. JSON: `{"path": "/host/file"}` (bound,
/// read-write like Docker's) or `{"content": "text"}` (generated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EtcFile {
    /// Bind this host file.
    Path(PathBuf),
    /// Generate a file with this content.
    Content(String),
}

/// An extra mount. JSON: `{"type": "bind", ...}` or `{"type": "tmpfs", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Mount {
    /// A bind mount of a host path.
    Bind(BindMount),
    /// A tmpfs.
    Tmpfs(TmpfsMount),
    /// A devpts instance of the container's own (`newinstance`).
    Devpts(DevptsMount),
}

/// A new devpts instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevptsMount {
    /// Path inside the container.
    pub target: InRoot,
}

impl Mount {
    /// Where it is mounted in the container.
    pub fn target(&self) -> &InRoot {
        match self {
            Mount::Bind(b) => &b.target,
            Mount::Tmpfs(t) => &t.target,
            Mount::Devpts(d) => &d.target,
        }
    }
}

/// A bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindMount {
    /// Host path (file or directory).
    pub source: PathBuf,
    /// Path inside the container.
    pub target: InRoot,
    /// Read-only (really: the bind is remounted read-only, recursively).
    #[serde(default)]
    pub readonly: bool,
    /// Recursive bind (`rbind`), the default.
    #[serde(default = "yes")]
    pub recursive: bool,
    /// Mount propagation of the new mount.
    #[serde(default)]
    pub propagation: Propagation,
    /// `nosuid`.
    #[serde(default)]
    pub nosuid: bool,
    /// `nodev`.
    #[serde(default)]
    pub nodev: bool,
    /// `noexec`.
    #[serde(default)]
    pub noexec: bool,
}

/// A tmpfs mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TmpfsMount {
    /// Path inside the container.
    pub target: InRoot,
    /// `size=` (bytes, or with a k/m/g suffix, or a percentage of RAM).
    #[serde(default)]
    pub size: Option<String>,
    /// `mode=` in octal, such as `"1777"`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Read-only.
    #[serde(default)]
    pub readonly: bool,
    /// `nosuid` (default true).
    #[serde(default = "yes")]
    pub nosuid: bool,
    /// `nodev` (default true).
    #[serde(default = "yes")]
    pub nodev: bool,
    /// `noexec` (default false).
    #[serde(default)]
    pub noexec: bool,
}

fn yes() -> bool {
    true
}

/// Mount propagation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Propagation {
    /// `rprivate` (default).
    #[default]
    Rprivate,
    /// `private`.
    Private,
    /// `rslave`.
    Rslave,
    /// `slave`.
    Slave,
    /// `rshared`.
    Rshared,
    /// `shared`.
    Shared,
}

impl std::str::FromStr for Propagation {
    type Err = OptionError;

    /// `rprivate`, `private`, `rslave`, `slave`, `rshared` or `shared`.
    fn from_str(s: &str) -> std::result::Result<Self, OptionError> {
        Ok(match s {
            "rprivate" => Propagation::Rprivate,
            "private" => Propagation::Private,
            "rslave" => Propagation::Rslave,
            "slave" => Propagation::Slave,
            "rshared" => Propagation::Rshared,
            "shared" => Propagation::Shared,
            _ => return Err(OptionError::Unknown(s.to_owned())),
        })
    }
}

/// Why a mount option was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// Not an option of this kind of mount.
    #[error("unknown option {0:?}")]
    Unknown(String),
    /// podman's `O` (an overlay over the bound directory).
    #[error("overlay volumes (O) are not supported")]
    OverlayVolume,
}

/// One option of a bind mount's comma list, as podman's `-v SRC:DST:OPTS`
/// and `--mount type=bind,...`, and `cairn-mount --bind SRC:DST:OPTS`,
/// spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindOption {
    /// `ro` or `readonly` (true), `rw` (false).
    ReadOnly(bool),
    /// `nosuid` (true), `suid` (false).
    Nosuid(bool),
    /// `nodev` (true), `dev` (false).
    Nodev(bool),
    /// `noexec` (true), `exec` (false).
    Noexec(bool),
    /// `rbind` (true), `bind` or `norecursive` (false).
    Recursive(bool),
    /// `rprivate`, `private`, `rslave`, `slave`, `rshared` or `shared`.
    Propagation(Propagation),
    /// Accepted for podman's sake, without effect here: `z` and `Z`
    /// (SELinux relabelling), `U` (chown to the container's user), `copy`
    /// and `nocopy` (a new volume's copy-up), `consistent`, `cached` and
    /// `delegated` (Docker's consistency hints).
    NoEffect,
}

/// Read one bind option (see [`BindOption`]).
pub fn parse_bind_option(opt: &str) -> std::result::Result<BindOption, OptionError> {
    Ok(match opt {
        "ro" | "readonly" => BindOption::ReadOnly(true),
        "rw" => BindOption::ReadOnly(false),
        "nosuid" => BindOption::Nosuid(true),
        "suid" => BindOption::Nosuid(false),
        "nodev" => BindOption::Nodev(true),
        "dev" => BindOption::Nodev(false),
        "noexec" => BindOption::Noexec(true),
        "exec" => BindOption::Noexec(false),
        "rbind" => BindOption::Recursive(true),
        "bind" | "norecursive" => BindOption::Recursive(false),
        "z" | "Z" | "U" | "copy" | "nocopy" | "consistent" | "cached" | "delegated" => {
            BindOption::NoEffect
        }
        "O" => return Err(OptionError::OverlayVolume),
        other => BindOption::Propagation(other.parse()?),
    })
}

/// One option of a tmpfs' comma list, as podman's `--tmpfs DST:OPTS` and
/// `cairn-mount --tmpfs DST:OPTS` spell it. As in podman, a tmpfs is
/// `nosuid` and `nodev` unless `suid` or `dev` say otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TmpfsOption {
    /// `size=N`, checked by [`TmpfsMount::validate`].
    Size(String),
    /// `mode=OCTAL`, checked by [`TmpfsMount::validate`].
    Mode(String),
    /// `ro` (true), `rw` (false).
    ReadOnly(bool),
    /// `nosuid` (true), `suid` (false).
    Nosuid(bool),
    /// `nodev` (true), `dev` (false).
    Nodev(bool),
    /// `noexec` (true), `exec` (false).
    Noexec(bool),
    /// `tmpcopyup` and `notmpcopyup`, accepted for podman's sake: cairn
    /// never copies the image's files up into a tmpfs.
    NoEffect,
}

/// Read one tmpfs option (see [`TmpfsOption`]).
pub fn parse_tmpfs_option(opt: &str) -> std::result::Result<TmpfsOption, OptionError> {
    Ok(match opt.split_once('=') {
        Some(("size", v)) => TmpfsOption::Size(v.to_owned()),
        Some(("mode", v)) => TmpfsOption::Mode(v.to_owned()),
        Some(_) => return Err(OptionError::Unknown(opt.to_owned())),
        None => match opt {
            "ro" => TmpfsOption::ReadOnly(true),
            "rw" => TmpfsOption::ReadOnly(false),
            "nosuid" => TmpfsOption::Nosuid(true),
            "suid" => TmpfsOption::Nosuid(false),
            "nodev" => TmpfsOption::Nodev(true),
            "dev" => TmpfsOption::Nodev(false),
            "noexec" => TmpfsOption::Noexec(true),
            "exec" => TmpfsOption::Noexec(false),
            "tmpcopyup" | "notmpcopyup" => TmpfsOption::NoEffect,
            _ => return Err(OptionError::Unknown(opt.to_owned())),
        },
    })
}

impl BindMount {
    /// A recursive, read-write, `rprivate` bind of `source` on `target`,
    /// with no other flag: what [`BindMount::apply`] starts from.
    pub fn new(source: PathBuf, target: InRoot) -> BindMount {
        BindMount {
            source,
            target,
            readonly: false,
            recursive: true,
            propagation: Propagation::default(),
            nosuid: false,
            nodev: false,
            noexec: false,
        }
    }

    /// Apply one option; a later option overrides an earlier one.
    pub fn apply(&mut self, opt: BindOption) {
        match opt {
            BindOption::ReadOnly(v) => self.readonly = v,
            BindOption::Nosuid(v) => self.nosuid = v,
            BindOption::Nodev(v) => self.nodev = v,
            BindOption::Noexec(v) => self.noexec = v,
            BindOption::Recursive(v) => self.recursive = v,
            BindOption::Propagation(p) => self.propagation = p,
            BindOption::NoEffect => {}
        }
    }
}

/// Parse `SRC:DST[:OPTS]`, OPTS a comma list of the options
/// [`parse_bind_option`] reads.
pub fn parse_bind(arg: &str) -> Result<BindMount> {
    let bad = |why: &str| {
        Error::Usage(format!("--bind {arg:?}: {why}; expected SRC:DST[:OPTS] with OPTS from ro, rw, rprivate, private, rslave, slave, rshared, shared, nosuid, nodev, noexec, norecursive"))
    };
    let mut parts = arg.splitn(3, ':');
    let src = parts
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("missing source"))?;
    let dst = parts
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("missing destination"))?;
    if !src.starts_with('/') {
        return Err(bad("the source must be an absolute host path"));
    }
    let mut m = BindMount::new(src.into(), InRoot::new(dst)?);
    for opt in parts
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|o| !o.is_empty())
    {
        m.apply(parse_bind_option(opt).map_err(|e| bad(&e.to_string()))?);
    }
    Ok(m)
}

/// Parse `DST[:OPTS]`, OPTS a comma list of the options
/// [`parse_tmpfs_option`] reads.
pub fn parse_tmpfs(arg: &str) -> Result<TmpfsMount> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "--tmpfs {arg:?}: {why}; expected DST[:OPTS] with OPTS from size=N, mode=OCTAL, ro, rw, [no]suid, [no]dev, [no]exec"
        ))
    };
    let (dst, opts) = arg.split_once(':').unwrap_or((arg, ""));
    let mut m = TmpfsMount::new(InRoot::new(dst)?);
    for opt in opts.split(',').filter(|o| !o.is_empty()) {
        m.apply(parse_tmpfs_option(opt).map_err(|e| bad(&e.to_string()))?);
    }
    m.validate()?;
    Ok(m)
}

impl TmpfsMount {
    /// A read-write tmpfs on `target`, `nosuid` and `nodev` (podman's
    /// defaults), of the kernel's default size and mode: what
    /// [`TmpfsMount::apply`] starts from.
    pub fn new(target: InRoot) -> TmpfsMount {
        TmpfsMount {
            target,
            size: None,
            mode: None,
            readonly: false,
            nosuid: true,
            nodev: true,
            noexec: false,
        }
    }

    /// Apply one option; a later option overrides an earlier one.
    pub fn apply(&mut self, opt: TmpfsOption) {
        match opt {
            TmpfsOption::Size(v) => self.size = Some(v),
            TmpfsOption::Mode(v) => self.mode = Some(v),
            TmpfsOption::ReadOnly(v) => self.readonly = v,
            TmpfsOption::Nosuid(v) => self.nosuid = v,
            TmpfsOption::Nodev(v) => self.nodev = v,
            TmpfsOption::Noexec(v) => self.noexec = v,
            TmpfsOption::NoEffect => {}
        }
    }

    /// Check `size` and `mode` (they end up in a mount data string, so a
    /// comma must not smuggle in another option).
    pub fn validate(&self) -> Result<()> {
        if let Some(size) = &self.size {
            let digits = size.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', '%']);
            if digits.is_empty()
                || !digits.bytes().all(|b| b.is_ascii_digit())
                || size.len() - digits.len() > 1
            {
                return Err(Error::Usage(format!(
                    "tmpfs {}: size {size:?} is not a number with an optional k, m, g or % suffix",
                    self.target
                )));
            }
        }
        if let Some(mode) = &self.mode {
            if u32::from_str_radix(mode, 8).map_or(true, |m| m > 0o7777) {
                return Err(Error::Usage(format!(
                    "tmpfs {}: mode {mode:?} is not an octal mode such as 1777",
                    self.target
                )));
            }
        }
        Ok(())
    }
}

/// What the process-setup part of `cairn-pivot` and `cairn-enter` applies
/// just before the exec (JSON object `process` of both specs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// The command and its arguments (the flags' form: everything after `--`).
    #[serde(default)]
    pub args: Vec<String>,
    /// `USER[:GROUP]`, names or numbers, resolved in the container's
    /// `/etc/passwd` and `/etc/group`.
    #[serde(default)]
    pub user: Option<String>,
    /// Extra supplementary groups (names or numbers).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Working directory inside the container.
    #[serde(default)]
    pub workdir: Option<String>,
    /// `KEY=VALUE` entries, applied over the base environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// Start from the caller's environment instead of an empty one
    /// (`cairn-enter`: instead of the target's).
    #[serde(default)]
    pub preserve_env: bool,
    /// HOME is the user's home from the container's /etc/passwd (empty
    /// when the user has no entry there) over the base environment's; an
    /// `env` entry still sets it (podman's `exec --user`).
    #[serde(default)]
    pub user_home: bool,
    /// Set `no_new_privs`.
    #[serde(default)]
    pub no_new_privs: bool,
    /// Keep every capability.
    #[serde(default)]
    pub privileged: bool,
    /// Capabilities added to the default set (`CAP_NET_ADMIN` or `net_admin`, or `ALL`).
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// Capabilities removed from the default set (or `ALL`).
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// Signal sent to the command when its parent dies (`KILL` by default,
    /// `none` to not set one).
    #[serde(default)]
    pub pdeathsig: Option<String>,
    /// Keep descriptors 3 .. 3+N open for the command (socket activation);
    /// every other descriptor above 2 is closed at the exec.
    #[serde(default)]
    pub keep_fds: u32,
    /// A seccomp filter to install (classic BPF, host path; see
    /// [`crate::seccomp`]); none = no filter.
    #[serde(default)]
    pub seccomp: Option<PathBuf>,
    /// `SECCOMP_FILTER_FLAG_*` names to install `seccomp` with.
    #[serde(default)]
    pub seccomp_flags: Vec<String>,
    /// The file mode creation mask the command starts with (`None`: 0022).
    #[serde(default)]
    pub umask: Option<u32>,
}

/// What `cairn-pivot` does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PivotSpec {
    /// The new root (host path, as assembled by `cairn-mount`).
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// Host name to set (the caller must have made a UTS namespace).
    #[serde(default)]
    pub hostname: Option<String>,
    /// The process to run.
    #[serde(default)]
    pub process: ProcessSpec,
    /// On failure, also write `{"code":C,"message":"..."}` as one line to
    /// this inherited descriptor; it is closed by the exec on success.
    #[serde(default)]
    pub error_fd: Option<i32>,
    /// A unix socket descriptor: give the command a new pty of the
    /// container's devpts as its controlling terminal and stdio, and send
    /// the pty's master over this socket (`SCM_RIGHTS`).
    #[serde(default)]
    pub console_socket: Option<i32>,
    /// Stay as a minimal init (pid 1 reaper): fork, exec the command in the
    /// child, forward signals to it, reap zombies, exit with its status.
    #[serde(default)]
    pub init: bool,
}

/// What `cairn-monitor` does: start the container's first process in new
/// namespaces, report its pid, capture its output, record its exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    /// The container id, for messages.
    #[serde(default)]
    pub id: String,
    /// The program and its arguments (normally the cairn-mount → cairn-pivot
    /// chain).
    pub args: Vec<String>,
    /// The environment of `args[0]`, `KEY=VALUE`; `None` = the monitor's own.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// Namespaces created for the child (`mnt`, `uts`, `ipc`, `pid`, `net`,
    /// `cgroup`).
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    /// Bring `lo` up in a new network namespace.
    #[serde(default)]
    pub loopback: bool,
    /// Resource limits set in the child before the exec.
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
    /// The container gets a pty (cairn-pivot's `--console-socket 4`).
    #[serde(default)]
    pub tty: bool,
    /// Keep stdin open for the container: without a tty the child's stdin
    /// is the monitor's; with one, the monitor copies its stdin to the pty.
    #[serde(default)]
    pub stdin: bool,
    /// Copy the container's output to the monitor's stdout and stderr too.
    #[serde(default)]
    pub attach: bool,
    /// The k8s-file log, appended to; `None` = no log.
    #[serde(default)]
    pub log: Option<PathBuf>,
    /// Where the exit status is recorded (atomically) when the child ends.
    pub exit_file: PathBuf,
    /// Where the child's pid (host view) is written (atomically) once it runs.
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
    /// With `"user"` in `namespaces`: the new user namespace's uid map,
    /// `[inside, outside, count]` triples (outside = the monitor's ids),
    /// written by the monitor before the child goes on (podman's keep-id).
    #[serde(default)]
    pub uid_map: Vec<[u32; 3]>,
    /// Its gid map, likewise.
    #[serde(default)]
    pub gid_map: Vec<[u32; 3]>,
    /// The container's event, appended as `start` (and `attach` with
    /// `attach` or `stdin`) once the command runs, and as `died` with its
    /// exit code when it ends; `None` = no events.
    #[serde(default)]
    pub events: Option<crate::events::LogEvent>,
    /// With `stdin` and `attach`: this key sequence typed on stdin detaches
    /// (it is not passed on; copying stops, the container runs on, and the
    /// sync descriptor, kept open after the pid line, gets a
    /// `{"detached":true}` line). Empty: no detaching.
    #[serde(default)]
    pub detach_keys: Vec<u8>,
    /// The container's network, set up by the monitor after the clone and
    /// before the child goes on, torn down when the child ends; `None` =
    /// nothing beyond `loopback`.
    #[serde(default)]
    pub network: Option<NetworkSpec>,
    /// Join this network namespace (`--network ns:PATH`,
    /// `container:NAME`) instead of creating one: `"net"` is then not in
    /// `namespaces`.
    #[serde(default)]
    pub join_net: Option<PathBuf>,
    /// The container's cgroup: created (with its limits) before the clone,
    /// the child moved in before it goes on (the monitor stays outside),
    /// removed once the child has ended; `None` = the monitor's own. With
    /// `"cgroup"` in `namespaces`, the child's cgroup namespace is made
    /// once it is in it, so that it is the namespace's root.
    #[serde(default)]
    pub cgroup: Option<crate::cgroup::CgroupSpec>,
}

/// How the monitor gives a new network namespace its network. Every form
/// first bind-mounts the child's `/proc/PID/ns/net` on `netns_file` (an
/// empty file the monitor creates), so that the namespace can be named by
/// path to the tools and torn down after a crash; teardown unmounts and
/// removes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum NetworkSpec {
    /// `netavark [--rootless] --config CONFIG_DIR --aardvark-binary
    /// AARDVARK setup NETNS_FILE` with `options` on stdin; its stdout
    /// (the status JSON: interfaces, addresses, DNS servers) is written to
    /// `status_file`. Teardown: `netavark ... teardown NETNS_FILE` with the
    /// same options.
    Netavark {
        /// The netavark binary.
        binary: PathBuf,
        /// The aardvark-dns binary.
        aardvark: PathBuf,
        /// netavark's `--config` directory (aardvark-dns keeps its files
        /// there).
        config_dir: PathBuf,
        /// Where the namespace is bind-mounted.
        netns_file: PathBuf,
        /// netavark's network options (`container_id`, `container_name`,
        /// `networks`, `network_info`, `port_mappings`).
        options: serde_json::Value,
        /// Where netavark's status output is recorded.
        status_file: PathBuf,
        /// Pass `--rootless true`.
        #[serde(default)]
        rootless: bool,
    },
    /// `pasta ARGS... --pid PID_FILE --netns NETNS_FILE` (pasta forks to
    /// the background once the namespace is configured; the monitor waits
    /// up to 10 s for that); teardown: SIGTERM to the pid in `pid_file` if
    /// that process is still pasta. The host ports of `-t`/`-u` options
    /// are checked before pasta runs (pasta starts without a port it could
    /// not bind). The monitor adds nothing else: when the monitor runs as
    /// uid 0 (root, or root of the rootless user namespace) the engine
    /// passes `--runas 0`, else pasta switches to `nobody` (unmapped in a
    /// user namespace that maps only the caller).
    Pasta {
        /// The pasta binary.
        binary: PathBuf,
        /// Options before `--pid` (`--config-net`, `-t`/`-u` ports, ...).
        args: Vec<String>,
        /// Where the namespace is bind-mounted.
        netns_file: PathBuf,
        /// Where pasta writes its pid.
        pid_file: PathBuf,
    },
    /// `slirp4netns ARGS... --netns-type=path --api-socket API_SOCKET
    /// --ready-fd=N --exit-fd=M NETNS_FILE tap0`; the monitor keeps the
    /// exit pipe's write end (slirp4netns exits when the monitor dies),
    /// records the pid, waits up to 10 s for the ready byte, then publishes
    /// `ports` with `add_hostfwd` on the API socket. Teardown: SIGTERM to
    /// the pid in `pid_file` if that process is still slirp4netns.
    Slirp4netns {
        /// The slirp4netns binary.
        binary: PathBuf,
        /// Options (`--configure`, `--mtu`, `--disable-host-loopback`, ...).
        args: Vec<String>,
        /// Where the namespace is bind-mounted.
        netns_file: PathBuf,
        /// Where the monitor records slirp4netns's pid.
        pid_file: PathBuf,
        /// slirp4netns's `--api-socket`.
        api_socket: PathBuf,
        /// Ports published through the API socket (`add_hostfwd`).
        ports: Vec<PortForward>,
    },
}

impl NetworkSpec {
    /// Paths absolute, netavark's options an object, pasta's and
    /// slirp4netns's arguments free of what the monitor adds, ports in
    /// range.
    pub fn validate(&self) -> Result<()> {
        let (added, args): (&[&str], &[String]) = match self {
            NetworkSpec::Netavark {
                binary,
                aardvark,
                config_dir,
                netns_file,
                options,
                status_file,
                ..
            } => {
                for (what, p) in [
                    ("netavark binary", binary),
                    ("aardvark binary", aardvark),
                    ("netavark config_dir", config_dir),
                    ("netns_file", netns_file),
                    ("status_file", status_file),
                ] {
                    absolute(what, p)?;
                }
                if !options.is_object() {
                    return Err(Error::Usage(
                        "spec: netavark \"options\" must be an object".into(),
                    ));
                }
                (&[], &[])
            }
            NetworkSpec::Pasta {
                binary,
                args,
                netns_file,
                pid_file,
            } => {
                absolute("pasta binary", binary)?;
                absolute("netns_file", netns_file)?;
                absolute("pid_file", pid_file)?;
                (&["--pid", "-P", "--netns", "-f", "--foreground"], args)
            }
            NetworkSpec::Slirp4netns {
                binary,
                args,
                netns_file,
                pid_file,
                api_socket,
                ports,
            } => {
                absolute("slirp4netns binary", binary)?;
                absolute("netns_file", netns_file)?;
                absolute("pid_file", pid_file)?;
                absolute("api_socket", api_socket)?;
                for p in ports {
                    p.validate()?;
                }
                (
                    &[
                        "--netns-type",
                        "--api-socket",
                        "-a",
                        "--ready-fd",
                        "-r",
                        "--exit-fd",
                        "-e",
                    ],
                    args,
                )
            }
        };
        for a in args {
            let name = a.split_once('=').map_or(a.as_str(), |(n, _)| n);
            if added.contains(&name) {
                return Err(Error::Usage(format!(
                    "spec: network argument {a:?}: the monitor passes it"
                )));
            }
        }
        Ok(())
    }

    /// Where the namespace is bind-mounted.
    pub fn netns_file(&self) -> &Path {
        match self {
            NetworkSpec::Netavark { netns_file, .. }
            | NetworkSpec::Pasta { netns_file, .. }
            | NetworkSpec::Slirp4netns { netns_file, .. } => netns_file,
        }
    }
}

/// One published port range: `host_ip:host_port..+range` to
/// `container_port..+range`, netavark's `port_mappings` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortForward {
    /// The host address to bind; empty = all.
    #[serde(default)]
    pub host_ip: String,
    /// First port in the container.
    pub container_port: u16,
    /// First port on the host.
    pub host_port: u16,
    /// How many consecutive ports (at least 1).
    pub range: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

impl PortForward {
    /// A known protocol, at least one port, every port of the range
    /// within 1..=65535 on both sides.
    pub fn validate(&self) -> Result<()> {
        let last = |first: u16| u32::from(first) + u32::from(self.range) - 1;
        if !matches!(self.protocol.as_str(), "tcp" | "udp" | "sctp")
            || self.range == 0
            || self.host_port == 0
            || self.container_port == 0
            || last(self.host_port) > 65535
            || last(self.container_port) > 65535
        {
            return Err(Error::Usage(format!(
                "spec: published port {}:{}->{}/{} (range {}) is out of range",
                self.host_ip, self.host_port, self.container_port, self.protocol, self.range
            )));
        }
        Ok(())
    }
}

/// One resource limit (`setrlimit(2)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rlimit {
    /// `nofile`, `nproc`, `core`, ... or `RLIMIT_NOFILE` (case ignored).
    #[serde(rename = "type")]
    pub kind: String,
    /// Soft limit; -1 = unlimited.
    pub soft: RlimitValue,
    /// Hard limit; -1 = unlimited.
    pub hard: RlimitValue,
}

/// A limit value: a number, or -1 (or `"unlimited"`) for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RlimitValue(pub u64);

impl RlimitValue {
    /// No limit (`RLIM_INFINITY`).
    pub const UNLIMITED: RlimitValue = RlimitValue(u64::MAX);
}

impl Serialize for RlimitValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if *self == Self::UNLIMITED {
            s.serialize_i64(-1)
        } else {
            s.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for RlimitValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            U(u64),
            I(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::U(v) => Ok(RlimitValue(v)),
            Raw::I(-1) => Ok(Self::UNLIMITED),
            Raw::S(s) if s == "unlimited" => Ok(Self::UNLIMITED),
            _ => Err(serde::de::Error::custom(
                "a limit is a non-negative number, or -1 or \"unlimited\" for none",
            )),
        }
    }
}

impl Rlimit {
    /// The resource named by `kind`.
    pub fn resource(&self) -> Result<nix::sys::resource::Resource> {
        use nix::sys::resource::Resource as R;
        let lower = self.kind.to_ascii_lowercase();
        let name = lower.strip_prefix("rlimit_").unwrap_or(&lower);
        Ok(match name {
            "as" => R::RLIMIT_AS,
            "core" => R::RLIMIT_CORE,
            "cpu" => R::RLIMIT_CPU,
            "data" => R::RLIMIT_DATA,
            "fsize" => R::RLIMIT_FSIZE,
            "locks" => R::RLIMIT_LOCKS,
            "memlock" => R::RLIMIT_MEMLOCK,
            "msgqueue" => R::RLIMIT_MSGQUEUE,
            "nice" => R::RLIMIT_NICE,
            "nofile" => R::RLIMIT_NOFILE,
            "nproc" => R::RLIMIT_NPROC,
            "rss" => R::RLIMIT_RSS,
            "rtprio" => R::RLIMIT_RTPRIO,
            "rttime" => R::RLIMIT_RTTIME,
            "sigpending" => R::RLIMIT_SIGPENDING,
            "stack" => R::RLIMIT_STACK,
            _ => {
                return Err(Error::Usage(format!(
                    "rlimit type {:?}: expected one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack",
                    self.kind
                )))
            }
        })
    }
}

impl MonitorSpec {
    /// Check what serde cannot: a command, supported namespaces, known
    /// rlimits with soft <= hard.
    pub fn validate(&self) -> Result<()> {
        if self.args.is_empty() || self.args[0].is_empty() {
            return Err(Error::Usage(
                "spec: \"args\" needs at least the program to run".into(),
            ));
        }
        for ns in &self.namespaces {
            if matches!(ns, Namespace::Time) {
                return Err(Error::Usage(format!(
                    "spec: namespace {:?} is not supported by cairn-monitor",
                    ns.proc_name()
                )));
            }
        }
        let user = self.namespaces.contains(&Namespace::User);
        if user != (!self.uid_map.is_empty() && !self.gid_map.is_empty()) {
            return Err(Error::Usage(
                "spec: a \"user\" namespace needs \"uid_map\" and \"gid_map\", and the maps need the \"user\" namespace".into(),
            ));
        }
        if self.uid_map.iter().chain(&self.gid_map).any(|t| t[2] == 0) {
            return Err(Error::Usage("spec: an id map range has count 0".into()));
        }
        for r in &self.rlimits {
            r.resource()?;
            if r.soft.0 > r.hard.0 {
                return Err(Error::Usage(format!(
                    "rlimit {}: soft limit {} above the hard limit {}",
                    r.kind, r.soft.0, r.hard.0
                )));
            }
        }
        if let Some(c) = &self.cgroup {
            crate::cgroup::validate_path(&c.path)?;
        }
        self.validate_network()
    }

    /// `network` needs a new network namespace, `join_net` excludes one
    /// (and a network), paths are absolute, ports are in range.
    fn validate_network(&self) -> Result<()> {
        let new_net = self.namespaces.contains(&Namespace::Net);
        if let Some(path) = &self.join_net {
            if new_net || self.network.is_some() {
                return Err(Error::Usage(
                    "spec: \"join_net\" excludes a new \"net\" namespace and \"network\"".into(),
                ));
            }
            absolute("join_net", path)?;
        }
        let Some(net) = &self.network else {
            return Ok(());
        };
        if !new_net {
            return Err(Error::Usage(
                "spec: \"network\" needs the \"net\" namespace".into(),
            ));
        }
        net.validate()
    }
}

/// A path of the spec that must be absolute (the monitor's working
/// directory is nobody's business).
fn absolute(what: &str, path: &Path) -> Result<()> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "spec: {what} {} is not an absolute path",
            path.display()
        )))
    }
}

/// Namespaces `cairn-enter` can join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    /// User namespace (joined first).
    User,
    /// Cgroup namespace.
    Cgroup,
    /// IPC namespace.
    Ipc,
    /// UTS namespace.
    Uts,
    /// Network namespace.
    Net,
    /// PID namespace (the command is forked into it).
    Pid,
    /// Time namespace (like pid: applies to the forked command).
    Time,
    /// Mount namespace (joined last; then the target's root and cwd).
    Mnt,
}

impl Namespace {
    /// Every namespace, in the order they are joined.
    pub const ALL: [Namespace; 8] = [
        Namespace::User,
        Namespace::Cgroup,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Net,
        Namespace::Pid,
        Namespace::Time,
        Namespace::Mnt,
    ];

    /// The name under `/proc/PID/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Cgroup => "cgroup",
            Namespace::Ipc => "ipc",
            Namespace::Uts => "uts",
            Namespace::Net => "net",
            Namespace::Pid => "pid",
            Namespace::Time => "time",
            Namespace::Mnt => "mnt",
        }
    }
}

/// What `cairn-enter` does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnterSpec {
    /// The process whose namespaces are joined.
    #[serde(default)]
    pub target: Option<i32>,
    /// Which namespaces; empty = all of the target's that differ from ours.
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    /// A new pty of the target's devpts for the command (else pipes).
    #[serde(default)]
    pub tty: bool,
    /// Copy our stdin to the command (else it reads `/dev/null`).
    #[serde(default)]
    pub stdin: bool,
    /// The process to run.
    #[serde(default)]
    pub process: ProcessSpec,
    /// The event appended as `exec_died` (with the command's exit code)
    /// when the command ends; `None` = none.
    #[serde(default)]
    pub exit_event: Option<crate::events::LogEvent>,
    /// The container's cgroup path (from each hierarchy's root): the
    /// process that joins the namespaces moves itself in first, so the
    /// command counts against the container's limits and is frozen with
    /// it. A cgroup that does not exist (a container without one) is
    /// skipped.
    #[serde(default)]
    pub cgroup: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_flag_forms() {
        let m = parse_bind("/src:/dst").unwrap();
        assert_eq!(
            (m.readonly, m.recursive, m.propagation),
            (false, true, Propagation::Rprivate)
        );
        let m = parse_bind("/src:/dst:ro,rslave,nosuid,nodev,noexec").unwrap();
        assert!(m.readonly && m.nosuid && m.nodev && m.noexec);
        assert_eq!(m.propagation, Propagation::Rslave);
        let m = parse_bind("/src:/a//b/:rw,norecursive,shared").unwrap();
        assert_eq!(m.target.as_str(), "/a/b");
        assert!(!m.recursive && !m.readonly);
        for bad in [
            "",
            "/src",
            "/src:",
            "rel:/dst",
            "/src:/dst:rx",
            "/src:../x",
            "/src:/a/../b",
        ] {
            assert!(parse_bind(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tmpfs_flag_forms() {
        let m = parse_tmpfs("/tmp").unwrap();
        assert!(m.nosuid && m.nodev && !m.noexec && !m.readonly && m.size.is_none());
        let m = parse_tmpfs("/scratch:size=64m,mode=1777,noexec,ro,dev").unwrap();
        assert_eq!(m.size.as_deref(), Some("64m"));
        assert_eq!(m.mode.as_deref(), Some("1777"));
        assert!(m.noexec && m.readonly && !m.nodev);
        for bad in [
            "tmp",
            "/t:size=",
            "/t:size=1x",
            "/t:size=10mm",
            "/t:mode=999",
            "/t:mode=17777",
            "/t:uid=0",
        ] {
            assert!(parse_tmpfs(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// One vocabulary for podman's `-v`/`--mount`/`--tmpfs` lists and
    /// cairn-mount's `--bind`/`--tmpfs`: every negation, podman's no-effect
    /// options, and the same refusals.
    #[test]
    fn mount_option_vocabulary() {
        let mut m = parse_bind("/src:/dst:nosuid,suid,dev,exec,readonly,bind,z,U,nocopy").unwrap();
        assert!(m.readonly && !m.nosuid && !m.nodev && !m.noexec && !m.recursive);
        m.apply(parse_bind_option("rbind").unwrap());
        assert!(m.recursive);
        assert_eq!(
            parse_bind_option("O"),
            Err(OptionError::OverlayVolume),
            "an overlay volume is not a bind"
        );
        assert_eq!(
            parse_bind_option("runbindable").unwrap_err().to_string(),
            "unknown option \"runbindable\""
        );
        assert_eq!(
            parse_bind_option("rslave"),
            Ok(BindOption::Propagation(Propagation::Rslave))
        );

        // podman: a tmpfs is nosuid and nodev unless suid or dev ask.
        let t = parse_tmpfs("/t:suid,dev,tmpcopyup").unwrap();
        assert!(!t.nosuid && !t.nodev && !t.noexec);
        let t = parse_tmpfs("/t:suid,nosuid,notmpcopyup").unwrap();
        assert!(t.nosuid && t.nodev);
        assert_eq!(
            parse_tmpfs_option("size=1g"),
            Ok(TmpfsOption::Size("1g".into()))
        );
        for bad in ["size", "uid=0", "bind", "rslave", "z"] {
            assert_eq!(
                parse_tmpfs_option(bad),
                Err(OptionError::Unknown(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn mount_spec_json() {
        let spec: MountSpec = serde_json::from_str(
            r#"{
              "root": {"overlay": {"lower": ["/l1", "/l2"], "upper": "/u", "work": "/w"}},
              "target": "/r",
              "readonly": true,
              "proc": "host", "dev": "minimal", "sys": "none", "tmp": true, "run": "tmpfs",
              "etc": {"hostname": {"content": "box\n"}, "resolv.conf": {"path": "/etc/resolv.conf"}},
              "mounts": [
                {"type": "bind", "source": "/data", "target": "/data", "readonly": true},
                {"type": "tmpfs", "target": "/cache", "size": "1m"}
              ],
              "masked_paths": ["/proc/kcore"]
            }"#,
        )
        .unwrap();
        let Some(Root::Overlay(o)) = &spec.root else {
            panic!("root {:?}", spec.root)
        };
        assert_eq!(o.lower, [PathBuf::from("/l1"), PathBuf::from("/l2")]);
        assert_eq!(spec.proc, ProcMode::Host);
        assert_eq!(spec.etc.files().len(), 2);
        assert_eq!(spec.etc.files()[1].0.as_str(), "/etc/resolv.conf");
        let Mount::Bind(b) = &spec.mounts[0] else {
            panic!()
        };
        assert!(b.readonly && b.recursive);
        let Mount::Tmpfs(t) = &spec.mounts[1] else {
            panic!()
        };
        assert!(t.nosuid && t.nodev);

        let bind: MountSpec = serde_json::from_str(r#"{"root": {"bind": "/rootfs"}}"#).unwrap();
        assert_eq!(bind.root, Some(Root::Bind("/rootfs".into())));
        assert_eq!(bind.proc, ProcMode::Private);

        for bad in [
            r#"{"rot": {"bind": "/r"}}"#,
            r#"{"root": {"bind": "/r"}, "proc": "shared"}"#,
            r#"{"mounts": [{"type": "bind", "source": "/a", "target": "/b", "ro": true}]}"#,
            r#"{"mounts": [{"type": "bind", "source": "/a", "target": "/../b"}]}"#,
            r#"{"mounts": [{"type": "nfs", "target": "/b"}]}"#,
            r#"{"etc": {"hostname": {"text": "x"}}}"#,
        ] {
            assert!(
                serde_json::from_str::<MountSpec>(bad).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn process_specs_json() {
        let p: PivotSpec = serde_json::from_str(
            r#"{"root": "/r", "hostname": "h", "process": {"args": ["sh"], "user": "app:staff", "cap_add": ["NET_ADMIN"], "keep_fds": 2}}"#,
        )
        .unwrap();
        assert_eq!(p.process.user.as_deref(), Some("app:staff"));
        assert_eq!(p.process.keep_fds, 2);
        let e: EnterSpec =
            serde_json::from_str(r#"{"target": 42, "namespaces": ["mnt", "pid"]}"#).unwrap();
        assert_eq!(e.namespaces, [Namespace::Mnt, Namespace::Pid]);
        assert!(
            serde_json::from_str::<EnterSpec>(r#"{"target": 1, "namespaces": ["mount"]}"#).is_err()
        );
    }

    #[test]
    fn monitor_spec_json() {
        let s: MonitorSpec = serde_json::from_str(
            r#"{"id": "c1", "args": ["/m", "--", "/p"], "env": ["A=1"],
                "namespaces": ["mnt", "uts", "ipc", "pid", "net", "cgroup"],
                "loopback": true,
                "rlimits": [{"type": "nofile", "soft": 1024, "hard": 1024},
                            {"type": "RLIMIT_CORE", "soft": -1, "hard": "unlimited"}],
                "tty": true, "stdin": true, "attach": false,
                "log": "/c/ctr.log", "exit_file": "/c/exit.json", "pid_file": "/c/pid"}"#,
        )
        .unwrap();
        s.validate().unwrap();
        assert_eq!(s.namespaces.len(), 6);
        assert_eq!(s.rlimits[1].soft, RlimitValue::UNLIMITED);
        assert_eq!(
            s.rlimits[1].resource().unwrap(),
            nix::sys::resource::Resource::RLIMIT_CORE
        );
        assert_eq!(s.log.as_deref(), Some(Path::new("/c/ctr.log")));

        let min: MonitorSpec =
            serde_json::from_str(r#"{"args": ["true"], "exit_file": "/e", "log": null}"#).unwrap();
        min.validate().unwrap();
        assert!(!min.tty && min.env.is_none() && min.log.is_none() && min.pid_file.is_none());
        // Serialized and read back, it is the same spec.
        let again: MonitorSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(again, s);

        for bad in [
            r#"{"args": ["true"]}"#,
            r#"{"exit_file": "/e"}"#,
            r#"{"args": ["true"], "exit_file": "/e", "ttY": true}"#,
            r#"{"args": ["true"], "exit_file": "/e", "namespaces": ["mount"]}"#,
            r#"{"args": ["true"], "exit_file": "/e", "rlimits": [{"type": "nofile", "soft": -2, "hard": 1}]}"#,
            r#"{"args": ["true"], "exit_file": "/e", "rlimits": [{"type": "nofile", "soft": 1}]}"#,
        ] {
            assert!(
                serde_json::from_str::<MonitorSpec>(bad).is_err(),
                "{bad} accepted"
            );
        }
        for invalid in [
            r#"{"args": [], "exit_file": "/e"}"#,
            r#"{"args": ["true"], "exit_file": "/e", "namespaces": ["user"]}"#,
            r#"{"args": ["true"], "exit_file": "/e", "rlimits": [{"type": "fly", "soft": 1, "hard": 1}]}"#,
            r#"{"args": ["true"], "exit_file": "/e", "rlimits": [{"type": "nofile", "soft": 2, "hard": 1}]}"#,
        ] {
            let s: MonitorSpec = serde_json::from_str(invalid).unwrap();
            assert!(s.validate().is_err(), "{invalid} valid");
        }
    }

    #[test]
    fn monitor_network_specs_are_checked() {
        let with = |extra: &str| -> Result<()> {
            let text = format!(r#"{{"args": ["true"], "exit_file": "/e", {extra}}}"#);
            serde_json::from_str::<MonitorSpec>(&text)
                .unwrap()
                .validate()
        };
        let pasta = |args: &str| {
            format!(
                r#""network": {{"kind": "pasta", "binary": "/usr/bin/pasta", "args": {args},
                    "netns_file": "/run/n", "pid_file": "/run/p"}}"#
            )
        };
        let net = r#""namespaces": ["mnt", "net"]"#;
        with(&format!(
            r#"{net}, {}"#,
            pasta(r#"["--config-net", "-t", "80"]"#)
        ))
        .unwrap();
        with(r#""join_net": "/run/netns/x""#).unwrap();
        let slirp = |ports: &str| {
            format!(
                r#""network": {{"kind": "slirp4netns", "binary": "/usr/bin/slirp4netns",
                    "args": ["--configure"], "netns_file": "/run/n", "pid_file": "/run/p",
                    "api_socket": "/run/s", "ports": {ports}}}"#
            )
        };
        let port = |hp: u32, range: u32, proto: &str| {
            format!(
                r#"[{{"container_port": 80, "host_port": {hp}, "range": {range},
                    "protocol": "{proto}"}}]"#
            )
        };
        with(&format!("{net}, {}", slirp(&port(8080, 10, "udp")))).unwrap();
        for invalid in [
            // A network needs a new namespace; join_net excludes one.
            pasta("[]"),
            r#""namespaces": ["net"], "join_net": "/run/netns/x""#.to_string(),
            r#""join_net": "relative/x""#.to_string(),
            format!(r#"{net}, "join_net": "/x", {}"#, pasta("[]")),
            // What the monitor adds itself.
            format!("{net}, {}", pasta(r#"["--pid", "/x"]"#)),
            format!("{net}, {}", pasta(r#"["--netns=/x"]"#)),
            format!("{net}, {}", pasta(r#"["-f"]"#)),
            format!(
                "{net}, {}",
                slirp(&port(8080, 1, "tcp")).replace("--configure", "--api-socket=/y")
            ),
            format!("{net}, {}", pasta("[]").replace("/run/n", "n")),
            // Ports out of range, unknown protocols.
            format!("{net}, {}", slirp(&port(65535, 2, "tcp"))),
            format!("{net}, {}", slirp(&port(0, 1, "tcp"))),
            format!("{net}, {}", slirp(&port(80, 0, "tcp"))),
            format!("{net}, {}", slirp(&port(80, 1, "icmp"))),
            format!(
                r#"{net}, "network": {{"kind": "netavark", "binary": "/n", "aardvark": "/a",
                    "config_dir": "/c", "netns_file": "/n", "status_file": "/s",
                    "options": []}}"#
            ),
        ] {
            assert!(with(&invalid).is_err(), "{invalid} valid");
        }
    }

    #[test]
    fn helper_error_fds_in_specs() {
        let p: PivotSpec = serde_json::from_str(
            r#"{"root": "/r", "error_fd": 3, "console_socket": 4, "init": true}"#,
        )
        .unwrap();
        assert_eq!(
            (p.error_fd, p.console_socket, p.init),
            (Some(3), Some(4), true)
        );
        let m: MountSpec =
            serde_json::from_str(r#"{"root": {"bind": "/r"}, "error_fd": 3}"#).unwrap();
        assert_eq!(m.error_fd, Some(3));
    }
}
