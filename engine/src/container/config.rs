//! A container's settings, fixed at create time (`config.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_store::Digest;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::network::{Attachment, NetworkMode, PortForward};

/// Everything `create` decided. Field names are ours; `inspect` maps them to
/// podman's shape.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The container's id.
    pub id: ContainerId,
    /// Unique name.
    pub name: String,
    /// RFC 3339 with ns.
    pub created: String,
    /// The image it was created from.
    pub image: ImageRef,
    /// The process PID 1 runs.
    pub process: Process,
    /// Host name inside (UTS namespace).
    pub hostname: String,
    /// `--label`s over the image's labels.
    pub labels: BTreeMap<String, String>,
    /// `--annotation`s.
    pub annotations: BTreeMap<String, String>,
    /// Binds, tmpfs and volumes, in the order given.
    pub mounts: Vec<MountConfig>,
    /// Namespaces: host or private each.
    pub namespaces: Namespaces,
    /// `--privileged`.
    pub privileged: bool,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt` as given.
    pub security_opt: Vec<String>,
    /// `no-new-privileges` was asked for.
    pub no_new_privs: bool,
    /// The seccomp profile as podman records it: the file compiled, `""`
    /// for the default one, or `unconfined` (also with `--privileged`).
    pub seccomp_profile: SeccompProfile,
    /// `seccomp.bpf` in the container's directory holds the compiled filter
    /// (false: unconfined, or a container made before cairn had seccomp).
    pub seccomp_filter: bool,
    /// `SECCOMP_FILTER_FLAG_*` names to install it with.
    pub seccomp_flags: Vec<String>,
    /// `--security-opt mask=` paths.
    pub mask: Vec<String>,
    /// `--security-opt unmask=` entries.
    pub unmask: Vec<String>,
    /// `--init`.
    pub init: bool,
    /// The signal `stop` sends, recorded by its `SIGTERM` style name; None
    /// (`""` on disk) for a container whose config predates it, which
    /// `stop` treats as SIGTERM.
    #[serde(with = "signal_name")]
    pub stop_signal: Option<Signal>,
    /// Seconds `stop` waits before SIGKILL.
    pub stop_timeout: u64,
    /// `--read-only`.
    pub read_only: bool,
    /// `--read-only-tmpfs` (tmpfs on /tmp, /var/tmp, /run with --read-only).
    pub read_only_tmpfs: bool,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_option: Vec<String>,
    /// `--add-host` entries `name:ip`.
    pub add_hosts: Vec<String>,
    /// `--pids-limit`, else containers.conf's (podman's 2048); -1 or 0:
    /// none. Applied in the container's cgroup.
    pub pids_limit: Option<i64>,
    /// `--ulimit type=soft[:hard]`.
    pub ulimits: Vec<Ulimit>,
    /// `--systemd` value.
    pub systemd: String,
    /// `--rm`.
    pub auto_remove: bool,
    /// Image's ExposedPorts (recorded).
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    /// `--group-add`.
    pub group_add: Vec<String>,
    /// `--shm-size` in bytes.
    pub shm_size: Option<u64>,
    /// The command line that created it (podman's CreateCommand).
    pub create_command: Vec<String>,
    /// Keep-id or other user namespace mode as given.
    pub userns: String,
    /// `--tmpfs` paths as given (also in mounts).
    pub tmpfs: Vec<String>,
    /// `--platform` as given.
    pub platform: Option<String>,
    /// A user namespace of the container's own (keep-id): `container host
    /// size` triples, host being the ids of the namespace cairn runs in.
    pub idmap: Option<IdMaps>,
    /// The capabilities containers.conf gave (names without `CAP_`), which
    /// `cap_add` and `cap_drop` adjust; `None` for a container created
    /// before cairn read containers.conf (podman's 11 then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_capabilities: Option<Vec<String>>,
    // Fields added after configs were first written: absent (default)
    // ones are not written, so an older config reads and writes back the
    // same.
    /// `--umask` (octal, e.g. `0022`); None: the runtime's 0022.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub umask: Option<String>,
    /// `--sysctl KEY=VALUE`s, written in the container's namespaces at start.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// `--tz`: the zoneinfo file (host path) bound on `/etc/localtime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<TimeZone>,
    /// `--no-hosts`: the image's `/etc/hosts`, none generated.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_hosts: bool,
    /// `--dns none`: the image's `/etc/resolv.conf`, none generated.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_resolv_conf: bool,
    /// `--device`s: host device nodes bound in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// `--mount type=devpts`: a devpts instance of the container's own at
    /// each of these paths.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devpts: Vec<String>,
    /// `--health-*` (recorded, shown by inspect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// `--health-on-failure`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub health_on_failure: String,
    /// `--log-opt KEY=VALUE`s.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub log_opts: BTreeMap<String, String>,
    /// `--restart` (only `no` is supported).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub restart_policy: String,
    /// `--pidfile`: written with PID 1's host pid at each start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pidfile: Option<PathBuf>,
    /// `--memory`, `--cpus` and the other cgroup limits (not the pids
    /// limit, which is `pids_limit`).
    #[serde(skip_serializing_if = "is_default")]
    pub resources: cairn_runtime::cgroup::Resources,
    /// `--pids-limit` was given (not containers.conf's default): a limit
    /// the user asked for.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pids_limit_given: bool,
    /// `--device-cgroup-rule`s as given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// `--cgroup-parent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// `--cgroups`: `enabled` (empty: not given), `disabled`, `no-conmon`
    /// or `split`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cgroups: String,
    /// `--cgroups` was given.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cgroups_given: bool,
    /// With the bridge mode: the networks by name, with this container's
    /// options on each.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Attachment>,
    /// `-p` and `-P`: the published ports, host ports picked at create.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortForward>,
}

/// `--tz`: the zone as given and the host file it names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct TimeZone {
    /// The zone as given (`local`, `Europe/Paris`).
    pub name: String,
    /// The host's zoneinfo file.
    pub file: PathBuf,
}

/// A `--device HOST[:CONTAINER][:PERMISSIONS]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Device {
    /// The host's node.
    pub host: PathBuf,
    /// Where the container sees it.
    pub container: String,
    /// `rwm` letters as given: the container's access in its device
    /// cgroup (all three when empty).
    pub permissions: String,
}

/// A healthcheck, as podman's `Config.Healthcheck` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Healthcheck {
    /// `["CMD-SHELL", cmd]`, `["CMD", ...]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Nanoseconds between checks.
    pub interval: u64,
    /// Nanoseconds one check may take.
    pub timeout: u64,
    /// Nanoseconds before failures count.
    pub start_period: u64,
    /// Failures before unhealthy.
    pub retries: u64,
}

/// A container's id: 64 lower-case hex digits. Stored in `config.json` as
/// the plain string; [`parse`](ContainerId::parse) checks a string given by
/// a user, [`random`](ContainerId::random) makes a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContainerId(String);

impl ContainerId {
    /// A new random id.
    pub fn random() -> ContainerId {
        ContainerId(super::new_id())
    }

    /// `s` if it is a full id.
    pub fn parse(s: &str) -> Option<ContainerId> {
        super::is_id(s).then(|| ContainerId(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-digit form podman shows.
    pub fn short(&self) -> &str {
        self.0.get(..12).unwrap_or(&self.0)
    }
}

impl std::ops::Deref for ContainerId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ContainerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ContainerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for ContainerId {
    fn as_ref(&self) -> &std::path::Path {
        self.0.as_ref()
    }
}

impl AsRef<std::ffi::OsStr> for ContainerId {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_ref()
    }
}

impl From<ContainerId> for String {
    fn from(id: ContainerId) -> String {
        id.0
    }
}

/// uid and gid maps of a container's own user namespace.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdMaps {
    /// uid triples.
    pub uid: Vec<[u32; 3]>,
    /// gid triples.
    pub gid: Vec<[u32; 3]>,
}

impl IdMaps {
    /// The same maps as the unpacker's [`IdMap`](cairn_unpacker::IdMap)s
    /// (uid, gid): the one conversion of the triples.
    pub fn unpacker_maps(
        &self,
    ) -> Result<(cairn_unpacker::IdMap, cairn_unpacker::IdMap), cairn_unpacker::IdMapError> {
        let map = |triples: &[[u32; 3]]| {
            cairn_unpacker::IdMap::new(
                triples
                    .iter()
                    .map(|&[container, host, size]| cairn_unpacker::IdRange {
                        container,
                        host,
                        size,
                    })
                    .collect(),
            )
        };
        Ok((map(&self.uid)?, map(&self.gid)?))
    }
}

/// The image a container runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageRef {
    /// Image id: the config's digest (recorded as its hex).
    #[serde(with = "digest_hex")]
    pub id: Option<Digest>,
    /// The manifest's digest (recorded as its hex): what the image root is
    /// keyed by, and what makes an image in use.
    #[serde(with = "digest_hex")]
    pub manifest: Option<Digest>,
    /// The name the user gave, fully qualified (`docker.io/library/debian:bookworm`).
    pub name: String,
    /// The read-only image root: overlayfs lower directories, topmost first.
    pub lowers: Vec<PathBuf>,
    /// Written by cairn before image roots were stacked: the one lower
    /// directory (read, never written now).
    #[serde(skip_serializing_if = "path_is_empty")]
    pub root: PathBuf,
}

/// Whether `p` is the empty path (an absent `root`).
fn path_is_empty(p: &Path) -> bool {
    p.as_os_str().is_empty()
}

impl ImageRef {
    /// The image id's hex digits, as `config.json` and podman show them
    /// (`""` for none).
    pub fn id_hex(&self) -> &str {
        self.id.as_ref().map_or("", Digest::hex)
    }

    /// The image root's lower directories, topmost first.
    pub fn lower_dirs(&self) -> Vec<PathBuf> {
        if self.lowers.is_empty() && !path_is_empty(&self.root) {
            return vec![self.root.clone()];
        }
        self.lowers.clone()
    }

    /// The lower directories as overlayfs' `lowerdir=` option and podman's
    /// `GraphDriver.Data.LowerDir` write them: joined with `:`.
    pub fn lowerdir_option(&self) -> String {
        let dirs: Vec<String> = self
            .lower_dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        dirs.join(":")
    }
}

/// PID 1's process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Process {
    /// argv: entrypoint + cmd.
    pub args: Vec<String>,
    /// The entrypoint part.
    pub entrypoint: Vec<String>,
    /// The cmd part.
    pub cmd: Vec<String>,
    /// `KEY=value`, image env then flags.
    pub env: Vec<String>,
    /// HOME in `env` is cairn's default (the user's home), not given by
    /// the image, containers.conf or `--env`: `exec --user` then sets that
    /// user's home instead, as podman does.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub home_default: bool,
    /// Working directory.
    pub workdir: String,
    /// `user[:group]` as given (names resolved in the container's files).
    pub user: String,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub interactive: bool,
}

/// What a mount is: recorded as `bind`, `volume` or `tmpfs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host directory or file bound in (`-v /src:/dst`, `type=bind`).
    #[default]
    Bind,
    /// A named or anonymous volume: a directory under the store's
    /// `volumes/`, bound in like a bind.
    Volume,
    /// A fresh tmpfs (`--tmpfs`, `type=tmpfs`).
    Tmpfs,
}

impl MountKind {
    /// The name as `config.json` and podman write it.
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Volume => "volume",
            MountKind::Tmpfs => "tmpfs",
        }
    }
}

/// A mount: bind, tmpfs or volume.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct MountConfig {
    /// Bind, tmpfs or volume.
    pub kind: MountKind,
    /// Host path (bind), volume directory (volume), empty for tmpfs.
    pub source: PathBuf,
    /// Path inside.
    pub destination: String,
    /// Volume name (named or anonymous volume).
    pub name: Option<String>,
    /// Read-only.
    pub readonly: bool,
    /// rprivate, rslave, rshared, private, slave, shared.
    pub propagation: String,
    /// nosuid.
    pub nosuid: bool,
    /// nodev.
    pub nodev: bool,
    /// noexec.
    pub noexec: bool,
    /// Not recursive (`bind` instead of `rbind`).
    pub norecursive: bool,
    /// tmpfs size option.
    pub size: Option<String>,
    /// tmpfs mode option (octal).
    pub mode: Option<String>,
    /// Options as given (podman's `.Mounts[].Options`).
    pub options: Vec<String>,
    /// An anonymous volume, removed by `rm -v`.
    pub anonymous: bool,
}

/// How a container has one of its namespaces, recorded as `host`,
/// `private` or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceMode {
    /// The host's (cairn's own) namespace, shared.
    Host,
    /// A new namespace of the container's own.
    Private,
    /// A new namespace with nothing set up in it: a network namespace with
    /// only loopback, an IPC namespace without `/dev/shm`.
    None,
}

impl NamespaceMode {
    /// The name as `config.json` and the command line write it.
    pub fn as_str(self) -> &'static str {
        match self {
            NamespaceMode::Host => "host",
            NamespaceMode::Private => "private",
            NamespaceMode::None => "none",
        }
    }

    /// The mode named `s` (`host`, `private` or `none`).
    pub fn parse(s: &str) -> Option<NamespaceMode> {
        match s {
            "host" => Some(NamespaceMode::Host),
            "private" => Some(NamespaceMode::Private),
            "none" => Some(NamespaceMode::None),
            _ => None,
        }
    }

    /// Shared with the host.
    pub fn is_host(self) -> bool {
        self == NamespaceMode::Host
    }
}

impl std::fmt::Display for NamespaceMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Each namespace: `host` (shared with the host) or `private`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Namespaces {
    /// `--network`: host, none, private, bridge (the config's `networks`),
    /// pasta, slirp4netns, ns:PATH or container:ID.
    pub network: NetworkMode,
    /// `--pid`: host or private.
    pub pid: NamespaceMode,
    /// `--ipc`: host, private or none.
    pub ipc: NamespaceMode,
    /// `--uts`: host or private.
    pub uts: NamespaceMode,
    /// `--cgroupns`: host or private.
    pub cgroup: NamespaceMode,
}

impl Default for Namespaces {
    fn default() -> Namespaces {
        Namespaces {
            network: NetworkMode::Host,
            pid: NamespaceMode::Private,
            ipc: NamespaceMode::Private,
            uts: NamespaceMode::Private,
            cgroup: NamespaceMode::Host,
        }
    }
}

/// The seccomp profile a container was created with, recorded as podman
/// records it: `""` for the default profile, `unconfined`, or the path of
/// the file compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SeccompProfile {
    /// cairn's (or containers.conf's) default profile.
    #[default]
    Default,
    /// No filter (`seccomp=unconfined`, `--privileged`).
    Unconfined,
    /// The profile file given with `seccomp=PATH`.
    File(PathBuf),
}

impl Serialize for SeccompProfile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SeccompProfile::Default => s.serialize_str(""),
            SeccompProfile::Unconfined => s.serialize_str("unconfined"),
            SeccompProfile::File(p) => p.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for SeccompProfile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = PathBuf::deserialize(d)?;
        Ok(if path_is_empty(&p) {
            SeccompProfile::Default
        } else if p.as_os_str() == "unconfined" {
            SeccompProfile::Unconfined
        } else {
            SeccompProfile::File(p)
        })
    }
}

/// A digest as `config.json` records it: its hex digits alone, the
/// algorithm following from their number (64 sha256, 128 sha512); `""` for
/// none.
mod digest_hex {
    use cairn_store::{Algorithm, Digest};
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    /// Writes the digest's hex, or `""`.
    pub fn serialize<S: Serializer>(d: &Option<Digest>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(d.as_ref().map_or("", Digest::hex))
    }

    /// Reads hex written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Digest>, D::Error> {
        let hex = String::deserialize(d)?;
        if hex.is_empty() {
            return Ok(None);
        }
        let algorithm = if hex.len() == 128 {
            Algorithm::Sha512
        } else {
            Algorithm::Sha256
        };
        Digest::from_parts(algorithm, &hex)
            .map(Some)
            .map_err(D::Error::custom)
    }
}

/// A signal as `config.json` records it: its `SIGTERM` style name, `""`
/// for none. A name this build does not know reads as none (what `stop`
/// did with it before: SIGTERM).
mod signal_name {
    use nix::sys::signal::Signal;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the signal's name, or `""`.
    pub fn serialize<S: Serializer>(sig: &Option<Signal>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(sig.map_or("", Signal::as_str))
    }

    /// Reads a name written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Signal>, D::Error> {
        let name = String::deserialize(d)?;
        Ok(name.parse().ok())
    }
}

/// `--ulimit nofile=1024:2048`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ulimit {
    /// Resource name without `RLIMIT_` (nofile, nproc, core, ...).
    pub name: String,
    /// Soft limit (-1 unlimited).
    pub soft: i64,
    /// Hard limit (-1 unlimited).
    pub hard: i64,
}

/// Whether `v` is its type's default (not written to `config.json`).
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `config.json` written by cairn before the model had these types
    /// (rootless, keep-id, binds with propagation, volumes, tmpfs mounts,
    /// a stop signal, none/host namespaces, seccomp unconfined).
    const KEEP_ID_CONFIG: &str = include_str!("testdata/keep-id-config.json");

    #[test]
    fn config_written_before_the_types_loads_and_writes_back_unchanged() {
        let c: Config = serde_json::from_str(KEEP_ID_CONFIG).unwrap();
        assert_eq!(c.stop_signal, Some(Signal::SIGQUIT));
        assert_eq!(c.seccomp_profile, SeccompProfile::Unconfined);
        let ns = &c.namespaces;
        assert_eq!(
            (ns.network.clone(), ns.pid, ns.ipc, ns.uts, ns.cgroup),
            (
                NetworkMode::None,
                NamespaceMode::Host,
                NamespaceMode::None,
                NamespaceMode::Private,
                NamespaceMode::Host
            )
        );
        let kinds: Vec<MountKind> = c.mounts.iter().map(|m| m.kind).collect();
        use MountKind::{Bind, Tmpfs, Volume};
        assert_eq!(kinds, [Bind, Volume, Volume, Bind, Tmpfs, Tmpfs]);
        assert_eq!(c.mounts[0].source, Path::new("/tmp/fxu/src"));
        assert_eq!(c.mounts[4].source, Path::new(""));
        assert_eq!(c.image.lower_dirs().len(), 1);
        assert_eq!(
            c.image.id.as_ref().map(ToString::to_string).as_deref(),
            Some("sha256:92f301c02f69b6fa2cc044eee83ad89c6147cc38a60b00711e9adfbde7e9b4e5")
        );
        assert!(c.idmap.is_some());
        // What `Container::save` writes: pretty JSON, and a trailing newline
        // the fixture has not.
        let back = serde_json::to_string_pretty(&c).unwrap();
        assert_eq!(back, KEEP_ID_CONFIG.trim_end());
    }

    #[test]
    fn older_fields_read_as_before() {
        let c: Config = serde_json::from_str(
            r#"{"image": {"root": "/old/root"}, "stop_signal": "", "seccomp_profile": "/p.json"}"#,
        )
        .unwrap();
        assert_eq!(c.image.lower_dirs(), [PathBuf::from("/old/root")]);
        assert_eq!(c.image.lowerdir_option(), "/old/root");
        assert_eq!(c.stop_signal, None);
        assert_eq!(c.seccomp_profile, SeccompProfile::File("/p.json".into()));
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["image"]["root"], "/old/root");
        assert_eq!(back["stop_signal"], "");
        assert_eq!(back["seccomp_profile"], "/p.json");
        assert_eq!(back["namespaces"]["network"], "host");
        assert_eq!(back["image"]["id"], "");
        assert_eq!(back["image"]["manifest"], "");
        let fresh = serde_json::to_value(Config::default()).unwrap();
        assert!(fresh["image"].get("root").is_none());
        assert_eq!(fresh["seccomp_profile"], "");
    }

    #[test]
    fn image_digests_are_recorded_as_their_hex() {
        let sha512 = "ab".repeat(64);
        let i: ImageRef =
            serde_json::from_value(serde_json::json!({"id": sha512, "manifest": "cd".repeat(32)}))
                .unwrap();
        assert_eq!(
            i.id.as_ref().unwrap().algorithm(),
            cairn_store::Algorithm::Sha512
        );
        assert_eq!(i.id_hex(), sha512);
        assert_eq!(
            i.manifest.as_ref().unwrap().algorithm(),
            cairn_store::Algorithm::Sha256
        );
        let back = serde_json::to_value(&i).unwrap();
        assert_eq!(
            (back["id"].as_str(), back["manifest"].as_str()),
            (Some(&*sha512), Some(&*"cd".repeat(32)))
        );
        assert!(serde_json::from_str::<ImageRef>(r#"{"id": "xyz"}"#).is_err());
    }

    #[test]
    fn mount_kinds_and_namespace_modes_keep_their_names() {
        for k in [MountKind::Bind, MountKind::Volume, MountKind::Tmpfs] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for m in [
            NamespaceMode::Host,
            NamespaceMode::Private,
            NamespaceMode::None,
        ] {
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
            assert_eq!(NamespaceMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(NamespaceMode::parse("bridge"), None);
    }

    #[test]
    fn container_ids_parse_and_keep_the_on_disk_form() {
        let hex = "0123456789abcdef".repeat(4);
        let id = ContainerId::parse(&hex).unwrap();
        assert_eq!(id.short(), "0123456789ab");
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{hex}\""));
        let back: ContainerId = serde_json::from_str(&format!("\"{hex}\"")).unwrap();
        assert_eq!(back, id);
        for bad in ["", "abc", &hex.to_uppercase(), &format!("{hex}0")] {
            assert_eq!(ContainerId::parse(bad), None, "{bad}");
        }
        assert_ne!(ContainerId::random(), ContainerId::random());
        assert!(ContainerId::parse(&ContainerId::random()).is_some());
    }
}
