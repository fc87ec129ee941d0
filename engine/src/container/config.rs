//! A container's settings, fixed at create time (`config.json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    pub seccomp_profile: String,
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
    /// Signal name sent by `stop` (`SIGTERM` style).
    pub stop_signal: String,
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
    /// `--pids-limit` (recorded; applied when a cgroup is available).
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
    /// Image id: config digest hex.
    pub id: String,
    /// Manifest digest hex (what the image root is keyed by).
    pub manifest: String,
    /// The name the user gave, fully qualified (`docker.io/library/debian:bookworm`).
    pub name: String,
    /// The read-only image root: overlayfs lower directories, topmost first.
    pub lowers: Vec<String>,
    /// Written by cairn before image roots were stacked: the one lower
    /// directory (read, never written now).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub root: String,
}

impl ImageRef {
    /// The image root's lower directories, topmost first.
    pub fn lower_dirs(&self) -> Vec<String> {
        if self.lowers.is_empty() && !self.root.is_empty() {
            return vec![self.root.clone()];
        }
        self.lowers.clone()
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
    /// Working directory.
    pub workdir: String,
    /// `user[:group]` as given (names resolved in the container's files).
    pub user: String,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub interactive: bool,
}

/// A mount: bind, tmpfs or volume.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct MountConfig {
    /// `bind`, `tmpfs` or `volume`.
    pub kind: String,
    /// Host path (bind), volume directory (volume), empty for tmpfs.
    pub source: String,
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

/// Each namespace: `host` (shared with the host) or `private`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Namespaces {
    /// `--network`: host, none or private.
    pub network: String,
    /// `--pid`.
    pub pid: String,
    /// `--ipc`.
    pub ipc: String,
    /// `--uts`.
    pub uts: String,
    /// `--cgroupns`.
    pub cgroup: String,
}

impl Default for Namespaces {
    fn default() -> Namespaces {
        Namespaces {
            network: "host".into(),
            pid: "private".into(),
            ipc: "private".into(),
            uts: "private".into(),
            cgroup: "host".into(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
