//! Seccomp profiles in podman's format (containers-common's `seccomp.json`),
//! compiled to classic BPF with libseccomp when a container is created.
//!
//! The semantics are podman's, in two steps as podman and crun split them:
//!
//! 1. [`resolve`] (containers-common `setupSeccomp`): pick the
//!    architectures (`architectures`, or the `archMap` entry of the native
//!    architecture with its sub-architectures; both is an error), and keep
//!    the syscall blocks whose `includes`/`excludes` match this host: `caps`
//!    against the container's bounding set (every one listed must be in it
//!    for `includes`, any one excludes), `arches` against the native
//!    architecture in Go's naming (`amd64`, `arm64`), `minKernel` against
//!    the running kernel's `major.minor`.
//! 2. [`compile`] (crun `libcrun_generate_seccomp`): the default action
//!    (`defaultErrnoRet`, else `EPERM`, for `SCMP_ACT_ERRNO`), each block's
//!    action (`errnoRet`, else `EPERM`), blocks whose action equals the
//!    default skipped, names libseccomp does not know skipped, argument
//!    comparisons ANDed in one rule unless one argument index appears twice,
//!    then one rule per comparison (ORed). `SCMP_CMP_MASKED_EQ` takes `value`
//!    as the mask and `valueTwo` as the datum.
//!
//! The BPF is stored as `seccomp.bpf` in the container's directory and
//! installed by `cairn-pivot` and `cairn-enter` (`--seccomp`); `flags`
//! (default `SECCOMP_FILTER_FLAG_SPEC_ALLOW`, as crun) go with it.

use std::path::{Path, PathBuf};

use cairn_fsutil::{write_atomic, Durability, IoContext as _};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
use serde::Deserialize;

use crate::error::{bail, Context as _, Result};

/// Where podman (containers.conf `seccomp_profile`'s default) reads its
/// default profile; cairn reads it too when it exists.
pub(crate) const DEFAULT_PROFILE_PATH: &str = "/usr/share/containers/seccomp.json";

/// podman's default profile (containers-common v0.50.1, as Debian 12 ships
/// it), used when [`DEFAULT_PROFILE_PATH`] is missing. Origin and licence:
/// `engine/profiles/README.md`.
pub(crate) const EMBEDDED_PROFILE: &str = include_str!("../../profiles/seccomp.json");

/// The compiled filter's file in the container's directory.
pub const BPF_FILE: &str = "seccomp.bpf";

/// Writes `compiled`'s filter into the container directory `dir`
/// ([`BPF_FILE`]), where the helpers load it at each start.
pub fn install(dir: &Path, compiled: &Compiled) -> Result<()> {
    let path = dir.join(BPF_FILE);
    std::fs::write(&path, &compiled.bpf)
        .with_context(|| format!("write the seccomp filter {}", path.display()))
}

/// `EPERM`: the errno of `SCMP_ACT_ERRNO` without an `errnoRet` (crun).
const EPERM: i32 = 1;

/// A profile. Unknown fields are ignored, as podman's Go decoder does
/// (Debian's file has a `defaultErrno` no code reads).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Profile {
    /// `SCMP_ACT_*` for syscalls no block matches.
    pub default_action: String,
    /// The errno of an `SCMP_ACT_ERRNO` default action.
    #[serde(default)]
    pub default_errno_ret: Option<i32>,
    /// `SCMP_ARCH_*` names.
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    /// Per native architecture, the ones to include.
    #[serde(default)]
    pub arch_map: Option<Vec<ArchMap>>,
    /// Rule blocks.
    #[serde(default)]
    pub syscalls: Option<Vec<Syscall>>,
    /// `SECCOMP_FILTER_FLAG_*` names.
    #[serde(default)]
    pub flags: Option<Vec<String>>,
    /// A seccomp-notify listener (not supported).
    #[serde(default)]
    pub listener_path: Option<String>,
}

/// One `archMap` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ArchMap {
    /// `SCMP_ARCH_*` of a native architecture.
    pub architecture: String,
    /// Also filtered when it is the native one.
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

/// One rule block.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Syscall {
    /// One name (older profiles).
    #[serde(default)]
    pub name: Option<String>,
    /// Syscall names.
    #[serde(default)]
    pub names: Option<Vec<String>>,
    /// `SCMP_ACT_*`.
    pub action: String,
    /// The errno of `SCMP_ACT_ERRNO` (or `SCMP_ACT_TRACE`'s message).
    #[serde(default)]
    pub errno_ret: Option<i32>,
    /// Argument comparisons.
    #[serde(default)]
    pub args: Option<Vec<Arg>>,
    /// Conditions for the block to apply.
    #[serde(default)]
    pub includes: Option<Filter>,
    /// Conditions for the block not to apply.
    #[serde(default)]
    pub excludes: Option<Filter>,
}

/// `includes` / `excludes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// `CAP_*` names of the container's bounding set.
    #[serde(default)]
    pub caps: Option<Vec<String>>,
    /// Go architecture names (`amd64`, `arm64`, `x86`...).
    #[serde(default)]
    pub arches: Option<Vec<String>>,
    /// `major.minor`.
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// One argument comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Arg {
    /// Argument number, 0..=5.
    pub index: u32,
    /// Compared value (the mask for `SCMP_CMP_MASKED_EQ`).
    #[serde(default)]
    pub value: u64,
    /// The datum of `SCMP_CMP_MASKED_EQ`.
    #[serde(default)]
    pub value_two: u64,
    /// `SCMP_CMP_*`.
    #[serde(default, deserialize_with = "op_name")]
    pub op: Op,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Op {
    /// `SCMP_CMP_NE`.
    Ne,
    /// `SCMP_CMP_LT`.
    Lt,
    /// `SCMP_CMP_LE`.
    Le,
    /// `SCMP_CMP_EQ`.
    #[default]
    Eq,
    /// `SCMP_CMP_GE`.
    Ge,
    /// `SCMP_CMP_GT`.
    Gt,
    /// `SCMP_CMP_MASKED_EQ`.
    MaskedEq,
}

fn op_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Op, D::Error> {
    let s = String::deserialize(d)?;
    Ok(match s.as_str() {
        "SCMP_CMP_NE" => Op::Ne,
        "SCMP_CMP_LT" => Op::Lt,
        "SCMP_CMP_LE" => Op::Le,
        "SCMP_CMP_EQ" => Op::Eq,
        "SCMP_CMP_GE" => Op::Ge,
        "SCMP_CMP_GT" => Op::Gt,
        "SCMP_CMP_MASKED_EQ" => Op::MaskedEq,
        _ => {
            return Err(serde::de::Error::custom(format!(
                "unknown operator {s:?}: use SCMP_CMP_NE, _LT, _LE, _EQ, _GE, _GT or _MASKED_EQ"
            )))
        }
    })
}

/// A seccomp action with its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// `SCMP_ACT_ALLOW`.
    Allow,
    /// `SCMP_ACT_ERRNO` with this errno.
    Errno(i32),
    /// `SCMP_ACT_KILL` / `SCMP_ACT_KILL_THREAD`.
    KillThread,
    /// `SCMP_ACT_KILL_PROCESS`.
    KillProcess,
    /// `SCMP_ACT_TRAP`.
    Trap,
    /// `SCMP_ACT_TRACE` with this message.
    Trace(i32),
    /// `SCMP_ACT_LOG`.
    Log,
}

impl Action {
    /// From a profile's action name and `errnoRet` (crun's rules: an errno
    /// only with ERRNO or TRACE, `EPERM` when none is given).
    pub fn parse(name: &str, errno: Option<i32>) -> Result<Action> {
        if errno.is_some() && !matches!(name, "SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE") {
            bail!("an errno value is given for action {name}: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take one");
        }
        let errno = errno.unwrap_or(EPERM);
        Ok(match name {
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_ERRNO" => Action::Errno(errno),
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_TRACE" => Action::Trace(errno),
            "SCMP_ACT_LOG" => Action::Log,
            "SCMP_ACT_NOTIFY" => bail!("action SCMP_ACT_NOTIFY needs a seccomp-notify listener, which cairn does not run"),
            _ => bail!("unknown action {name:?}: use SCMP_ACT_ALLOW, _ERRNO, _KILL, _KILL_PROCESS, _KILL_THREAD, _TRAP, _TRACE or _LOG"),
        })
    }

    fn to_scmp(self) -> Result<ScmpAction> {
        Ok(match self {
            Action::Allow => ScmpAction::Allow,
            Action::Errno(e) => ScmpAction::Errno(e),
            Action::KillThread => ScmpAction::KillThread,
            Action::KillProcess => ScmpAction::KillProcess,
            Action::Trap => ScmpAction::Trap,
            Action::Trace(m) => ScmpAction::Trace(
                u16::try_from(m).with_context(|| format!("SCMP_ACT_TRACE message {m}"))?,
            ),
            Action::Log => ScmpAction::Log,
        })
    }
}

/// What the filters of a profile depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The native architecture in Go's naming (`amd64`), as the profile's
    /// `arches` filters name it.
    pub arch: &'static str,
    /// The native architecture as `SCMP_ARCH_*`.
    pub scmp_arch: &'static str,
    /// The running kernel's major and minor version.
    pub kernel: (u32, u32),
    /// The container's bounding set, `CAP_*` names.
    pub caps: Vec<String>,
}

/// The native architecture's names (Go's and libseccomp's).
pub(crate) fn native_arch() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
        "x86" => ("x86", "SCMP_ARCH_X86"),
        "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
        "arm" => ("arm", "SCMP_ARCH_ARM"),
        "riscv64" => ("riscv64", "SCMP_ARCH_RISCV64"),
        "s390x" => ("s390x", "SCMP_ARCH_S390X"),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", "SCMP_ARCH_PPC64LE"),
        "powerpc64" => ("ppc64", "SCMP_ARCH_PPC64"),
        "loongarch64" => ("loong64", "SCMP_ARCH_LOONGARCH64"),
        "mips64" if cfg!(target_endian = "little") => ("mips64le", "SCMP_ARCH_MIPSEL64"),
        "mips64" => ("mips64", "SCMP_ARCH_MIPS64"),
        other => (other, "SCMP_ARCH_NATIVE"),
    }
}

/// `major.minor` at the start of a kernel release string (`6.1.0-18-amd64`).
pub(crate) fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

impl Host {
    /// This machine, for a container with bounding set `caps` (a mask).
    pub(crate) fn current(caps: u64) -> Result<Host> {
        let release = nix::sys::utsname::uname()
            .context("uname")?
            .release()
            .to_string_lossy()
            .into_owned();
        let kernel = parse_kernel(&release).with_context(|| {
            format!("kernel release {release:?} does not start with major.minor")
        })?;
        let (arch, scmp_arch) = native_arch();
        Ok(Host {
            arch,
            scmp_arch,
            kernel,
            caps: cap_names(caps),
        })
    }
}

/// `CAP_*` names of a capability mask.
pub fn cap_names(mask: u64) -> Vec<String> {
    cairn_runtime::caps::NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, n)| format!("CAP_{n}"))
        .collect()
}

/// A rule after filtering: every name gets this action when the arguments
/// match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    /// Syscall names.
    pub names: Vec<String>,
    /// What happens.
    pub action: Action,
    /// Comparisons.
    pub args: Vec<Arg>,
}

/// A profile resolved for one host and container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// For syscalls no rule matches.
    pub default: Action,
    /// `SCMP_ARCH_*` names besides the native one.
    pub architectures: Vec<String>,
    /// In profile order.
    pub rules: Vec<Rule>,
    /// `SECCOMP_FILTER_FLAG_*` names; `None` = the default (SPEC_ALLOW).
    pub flags: Option<Vec<String>>,
}

fn applies(s: &Syscall, host: &Host) -> bool {
    let has_cap = |c: &String| host.caps.iter().any(|h| h.eq_ignore_ascii_case(c));
    let kernel_at_least = |v: &str| parse_kernel(v).is_some_and(|min| host.kernel >= min);
    if let Some(ex) = &s.excludes {
        if ex
            .arches
            .as_ref()
            .is_some_and(|a| a.iter().any(|a| a == host.arch))
            || ex.caps.as_ref().is_some_and(|c| c.iter().any(has_cap))
            || ex.min_kernel.as_deref().is_some_and(kernel_at_least)
        {
            return false;
        }
    }
    if let Some(inc) = &s.includes {
        if inc
            .arches
            .as_ref()
            .is_some_and(|a| !a.is_empty() && !a.iter().any(|a| a == host.arch))
            || inc.caps.as_ref().is_some_and(|c| !c.iter().all(has_cap))
            || inc
                .min_kernel
                .as_deref()
                .is_some_and(|v| !kernel_at_least(v))
        {
            return false;
        }
    }
    true
}

/// Step 1: the profile for this host and container (see the module doc).
pub(crate) fn resolve(p: &Profile, host: &Host) -> Result<Resolved> {
    if p.listener_path.as_deref().is_some_and(|l| !l.is_empty()) {
        bail!(
            "listenerPath: cairn does not run seccomp-notify listeners; remove it from the profile"
        );
    }
    let archs = p.architectures.clone().unwrap_or_default();
    let map = p.arch_map.clone().unwrap_or_default();
    if !archs.is_empty() && !map.is_empty() {
        bail!("both 'architectures' and 'archMap' are given: use one of them");
    }
    let mut architectures = archs;
    if let Some(m) = map.iter().find(|m| m.architecture == host.scmp_arch) {
        architectures.push(m.architecture.clone());
        architectures.extend(m.sub_architectures.clone().unwrap_or_default());
    }
    let default = Action::parse(&p.default_action, p.default_errno_ret)
        .context("defaultAction/defaultErrnoRet")?;
    let mut rules = Vec::new();
    for (i, s) in p.syscalls.iter().flatten().enumerate() {
        if !applies(s, host) {
            continue;
        }
        let action =
            Action::parse(&s.action, s.errno_ret).with_context(|| format!("syscalls[{i}]"))?;
        let args = s.args.clone().unwrap_or_default();
        if let Some(a) = args.iter().find(|a| a.index > 5) {
            bail!(
                "syscalls[{i}]: argument index {} is out of range 0..=5",
                a.index
            );
        }
        let mut names: Vec<String> = s.name.iter().cloned().collect();
        names.extend(s.names.iter().flatten().cloned());
        rules.push(Rule {
            names,
            action,
            args,
        });
    }
    Ok(Resolved {
        default,
        architectures,
        rules,
        flags: p.flags.clone(),
    })
}

fn comparison(a: &Arg) -> ScmpArgCompare {
    let (op, datum) = match a.op {
        Op::Ne => (ScmpCompareOp::NotEqual, a.value),
        Op::Lt => (ScmpCompareOp::Less, a.value),
        Op::Le => (ScmpCompareOp::LessOrEqual, a.value),
        Op::Eq => (ScmpCompareOp::Equal, a.value),
        Op::Ge => (ScmpCompareOp::GreaterEqual, a.value),
        Op::Gt => (ScmpCompareOp::Greater, a.value),
        Op::MaskedEq => (ScmpCompareOp::MaskedEqual(a.value), a.value_two),
    };
    ScmpArgCompare::new(a.index, op, datum)
}

/// Step 2: classic BPF (`seccomp_export_bpf`), and the names libseccomp did
/// not know (skipped, as crun does, with a warning there).
pub(crate) fn compile(r: &Resolved) -> Result<(Vec<u8>, Vec<String>)> {
    let default = r.default.to_scmp()?;
    let mut ctx = ScmpFilterContext::new(default).context("seccomp_init")?;
    // A binary search over syscall numbers instead of a linear chain: the
    // same decisions, fewer instructions run per syscall (podman's profile
    // lists some 400 calls).
    ctx.set_ctl_optimize(2)
        .context("seccomp_attr_set SCMP_FLTATR_CTL_OPTIMIZE")?;
    for a in &r.architectures {
        let arch: ScmpArch = a
            .parse()
            .with_context(|| format!("unknown architecture {a:?}"))?;
        if !ctx.is_arch_present(arch).unwrap_or(false) {
            ctx.add_arch(arch)
                .with_context(|| format!("seccomp_arch_add {a}"))?;
        }
    }
    let mut unknown = Vec::new();
    for rule in &r.rules {
        if rule.action == r.default {
            continue;
        }
        let action = rule.action.to_scmp()?;
        let mut seen = [0u8; 6];
        for a in &rule.args {
            seen[a.index as usize] += 1;
        }
        let repeated = seen.iter().any(|&n| n > 1);
        let cmps: Vec<ScmpArgCompare> = rule.args.iter().map(comparison).collect();
        for name in &rule.names {
            let Ok(sys) = libseccomp::ScmpSyscall::from_name(name) else {
                unknown.push(name.clone());
                continue;
            };
            let added = if cmps.is_empty() {
                ctx.add_rule(action, sys)
            } else if !repeated {
                ctx.add_rule_conditional(action, sys, &cmps)
            } else {
                cmps.iter()
                    .try_for_each(|c| {
                        ctx.add_rule_conditional(action, sys, std::slice::from_ref(c))
                            .map(|_| ())
                    })
                    .map(|()| &mut ctx)
            };
            added.with_context(|| format!("seccomp_rule_add {name} ({:?})", rule.action))?;
        }
    }
    // libseccomp 2.5 (Debian 12) exports to a descriptor only.
    let fd =
        nix::sys::memfd::memfd_create(c"cairn-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .context("memfd_create for the seccomp filter")?;
    ctx.export_bpf(&fd).context("seccomp_export_bpf")?;
    let mut file = std::fs::File::from(fd);
    let mut bpf = Vec::new();
    {
        use std::io::{Read as _, Seek as _};
        file.rewind().context("rewind the seccomp filter")?;
        file.read_to_end(&mut bpf)
            .context("read the seccomp filter back")?;
    }
    Ok((bpf, unknown))
}

/// Which profile a container uses (`--security-opt seccomp=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The default: [`DEFAULT_PROFILE_PATH`], else [`EMBEDDED_PROFILE`].
    Default,
    /// No filter (`unconfined`, or `--privileged`).
    Unconfined,
    /// A profile file.
    File(PathBuf),
}

/// The default profile's text and where it came from (`None`: embedded).
pub(crate) fn default_profile() -> Result<(String, Option<PathBuf>)> {
    match std::fs::read_to_string(DEFAULT_PROFILE_PATH) {
        Ok(t) => Ok((t, Some(DEFAULT_PROFILE_PATH.into()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((EMBEDDED_PROFILE.into(), None)),
        Err(e) => {
            Err(e).with_context(|| format!("read the seccomp profile {DEFAULT_PROFILE_PATH}"))
        }
    }
}

/// The kernel has seccomp (`CONFIG_SECCOMP`: `/proc/self/status` shows a
/// `Seccomp:` line), what podman's `host.security.seccompEnabled` says.
pub fn kernel_supports() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
}

/// `host.security.seccompProfilePath`: the default profile's file, or
/// `""` when the embedded copy is used.
pub fn default_profile_path() -> &'static str {
    if Path::new(DEFAULT_PROFILE_PATH).exists() {
        DEFAULT_PROFILE_PATH
    } else {
        ""
    }
}

/// Profile files larger than this are refused (podman's default is 30 KB).
const MAX_PROFILE: u64 = 4 << 20;

/// Reads a profile file. Errors start `seccomp=PATH:`, the option's value:
/// the caller names the option.
fn read_profile(path: &Path) -> Result<String> {
    use std::io::Read as _;
    let f =
        std::fs::File::open(path).with_context(|| format!("seccomp={}: open", path.display()))?;
    let mut text = String::new();
    f.take(MAX_PROFILE + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("seccomp={}: read", path.display()))?;
    if text.len() as u64 > MAX_PROFILE {
        bail!(
            "seccomp={}: larger than {MAX_PROFILE} bytes, not a seccomp profile",
            path.display()
        );
    }
    Ok(text)
}

/// A compiled filter for a container.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// Classic BPF, `struct sock_filter` array in native byte order.
    pub bpf: Vec<u8>,
    /// `SECCOMP_FILTER_FLAG_*` names for the helpers (the profile's, or
    /// crun's default `SECCOMP_FILTER_FLAG_SPEC_ALLOW`).
    pub flags: Vec<String>,
}

/// The cache file of a resolved profile: named by the SHA-256 of
/// everything the BPF depends on (the resolved rules, which already folded
/// in the host's architecture, kernel and the container's capabilities; the
/// libseccomp and cairn versions).
fn cache_name(r: &Resolved) -> String {
    let lib = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    // "opt2": the compile options of [`compile`]; change it with them.
    let key = format!(
        "cairn {} libseccomp {lib} opt2 {r:?}",
        env!("CARGO_PKG_VERSION")
    );
    format!(
        "{}.bpf",
        cairn_store::Digest::sha256_of(key.as_bytes()).hex()
    )
}

/// `compile`, through a cache in `dir`: libseccomp needs 40-90 ms here for
/// podman's profile (three architectures), every `create`; crun keeps such
/// a cache too. A cache entry is replaced atomically
/// ([`write_atomic`]), so a crash leaves either no entry or a whole one; one
/// that is not a whole BPF program is compiled again. Failing to write the cache is not an error.
fn compile_cached(r: &Resolved, dir: Option<&Path>) -> Result<Vec<u8>> {
    let path = dir.map(|d| d.join(cache_name(r)));
    if let Some(bpf) = path.as_ref().and_then(|p| std::fs::read(p).ok()) {
        if !bpf.is_empty() && bpf.len().is_multiple_of(8) && bpf.len() <= 4096 * 8 {
            return Ok(bpf);
        }
    }
    let (bpf, unknown) = compile(r)?;
    if !unknown.is_empty() {
        tracing::debug!(
            "seccomp: syscalls this libseccomp does not know, skipped: {}",
            unknown.join(" ")
        );
    }
    if let (Some(dir), Some(path)) = (dir, &path) {
        let stored = std::fs::create_dir_all(dir)
            .io_context("create", dir)
            .and_then(|()| write_atomic(path, &bpf, 0o666, Durability::Volatile));
        if let Err(e) = stored {
            tracing::debug!("seccomp cache {}: {e}", dir.display());
        }
    }
    Ok(bpf)
}

/// The filter of a container whose bounding set is `caps`; `None` when
/// unconfined. `cache` is a directory for compiled filters (the store's
/// `cache/seccomp`).
pub fn for_container(choice: &Choice, caps: u64, cache: Option<&Path>) -> Result<Option<Compiled>> {
    let (text, origin) = match choice {
        Choice::Unconfined => return Ok(None),
        Choice::Default => {
            let (t, from) = default_profile()?;
            (
                t,
                from.map_or_else(
                    || "the embedded default profile".into(),
                    |p| p.display().to_string(),
                ),
            )
        }
        Choice::File(p) => (read_profile(p)?, p.display().to_string()),
    };
    let profile: Profile = serde_json::from_str(&text).with_context(|| {
        format!("seccomp profile {origin}: not a containers-common seccomp.json")
    })?;
    let resolved = resolve(&profile, &Host::current(caps)?)
        .with_context(|| format!("seccomp profile {origin}"))?;
    if let Some(f) = &resolved.flags {
        cairn_runtime::seccomp::flag_bits(f)
            .with_context(|| format!("seccomp profile {origin}: flags"))?;
    }
    let bpf = compile_cached(&resolved, cache)
        .with_context(|| format!("seccomp profile {origin}: compile"))?;
    Ok(Some(Compiled {
        bpf,
        flags: resolved
            .flags
            .unwrap_or_else(|| vec!["SECCOMP_FILTER_FLAG_SPEC_ALLOW".into()]),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(caps: &[&str]) -> Host {
        Host {
            arch: "amd64",
            scmp_arch: "SCMP_ARCH_X86_64",
            kernel: (6, 1),
            caps: caps.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn profile(json: &str) -> Profile {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn embedded_profile_is_podmans_and_resolves() {
        let p = profile(EMBEDDED_PROFILE);
        let r = resolve(&p, &host(&["CAP_CHOWN"])).unwrap();
        assert_eq!(r.default, Action::Errno(38), "ENOSYS, defaultErrnoRet");
        assert_eq!(
            r.architectures,
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        );
        let allowed = |name: &str| {
            r.rules.iter().any(|x| {
                x.action == Action::Allow && x.args.is_empty() && x.names.iter().any(|n| n == name)
            })
        };
        assert!(allowed("read") && allowed("execve") && allowed("arch_prctl"));
        // podman's choices: keyctl and unshare allowed (crun gives each
        // container its own session keyring; nested user namespaces are
        // allowed for podman in podman), add_key not.
        assert!(allowed("keyctl") && allowed("unshare") && !allowed("add_key"));
        assert!(!allowed("bpf"), "only with CAP_SYS_ADMIN");
        assert!(
            !allowed("s390_runtime_instr"),
            "other architectures' blocks are dropped"
        );
        let r = resolve(&p, &host(&["CAP_SYS_ADMIN"])).unwrap();
        assert!(r
            .rules
            .iter()
            .any(|x| x.action == Action::Allow && x.names.contains(&"bpf".into())));
        let (bpf, _) = compile(&r).unwrap();
        assert_eq!(bpf.len() % 8, 0);
        assert!(bpf.len() / 8 < 4096, "BPF_MAXINSNS");
    }

    #[test]
    fn includes_and_excludes() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["a"],"action":"SCMP_ACT_ERRNO","includes":{"caps":["CAP_X","CAP_Y"]}},
            {"names":["b"],"action":"SCMP_ACT_ERRNO","excludes":{"caps":["CAP_X"]}},
            {"names":["c"],"action":"SCMP_ACT_ERRNO","includes":{"minKernel":"6.2"}},
            {"names":["d"],"action":"SCMP_ACT_ERRNO","excludes":{"minKernel":"5.10"}},
            {"names":["e"],"action":"SCMP_ACT_ERRNO","includes":{"arches":["arm64"]}},
            {"names":["f"],"action":"SCMP_ACT_ERRNO","excludes":{"arches":["amd64"]}},
            {"name":"g","action":"SCMP_ACT_ERRNO","errnoRet":13,"includes":{"minKernel":"6.1"}}]}"#,
        );
        let names = |caps: &[&str]| -> Vec<String> {
            resolve(&p, &host(caps))
                .unwrap()
                .rules
                .into_iter()
                .flat_map(|r| r.names)
                .collect()
        };
        assert_eq!(names(&["CAP_X"]), ["g"]);
        assert_eq!(names(&["CAP_X", "CAP_Y"]), ["a", "g"]);
        assert_eq!(names(&[]), ["b", "g"]);
        let r = resolve(&p, &host(&[])).unwrap();
        assert_eq!(r.rules[1].action, Action::Errno(13));
        assert_eq!(
            r.rules[0].action,
            Action::Errno(EPERM),
            "errnoRet defaults to EPERM"
        );
    }

    #[test]
    fn refusals() {
        let bad = |json: &str| resolve(&profile(json), &host(&[])).unwrap_err().to_string();
        assert!(
            bad(r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":1}"#)
                .contains("defaultAction")
        );
        assert!(bad(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#).contains("defaultAction"));
        assert!(bad(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#).contains("archMap"));
        assert!(bad(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_NOTIFY"}]}"#).contains("syscalls[0]"));
        assert!(bad(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#).contains("index 6"));
        assert!(serde_json::from_str::<Profile>(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"op":"SCMP_CMP_LIKE"}]}]}"#).is_err());
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_kernel("5.10"), Some((5, 10)));
        assert_eq!(parse_kernel("4"), Some((4, 0)));
        assert_eq!(parse_kernel("x"), None);
        assert_eq!(cap_names(0b101), ["CAP_CHOWN", "CAP_DAC_READ_SEARCH"]);
    }

    #[test]
    fn repeated_argument_index_compiles_as_separate_rules() {
        // Two comparisons of argument 0 cannot be one libseccomp rule.
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["personality","no_such_call_x"],"action":"SCMP_ACT_ERRNO",
            "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]},
            {"names":["mkdir"],"action":"SCMP_ACT_ALLOW"},
            {"names":["socket"],"action":"SCMP_ACT_ERRNO","args":[{"index":1,"value":15,"valueTwo":1,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
        );
        let (bpf, unknown) = compile(&resolve(&p, &host(&[])).unwrap()).unwrap();
        assert!(!bpf.is_empty());
        assert_eq!(unknown, ["no_such_call_x"]);
    }
}
