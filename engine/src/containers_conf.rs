//! `containers.conf`: the defaults podman (and so cairn) give a new
//! container, read from the same files and in the same order as podman 4.3
//! (containers/common 0.50) reads them:
//!
//! 1. `/usr/share/containers/containers.conf` (the distribution's),
//! 2. `/etc/containers/containers.conf` (the administrator's),
//! 3. `/etc/containers/containers.conf.d/*.conf`, in name order,
//! 4. rootless only: `$XDG_CONFIG_HOME/containers/containers.conf` (else
//!    `~/.config/...`), then its `.d/*.conf`; podman 4.3 reads no user file
//!    for root, and neither does cairn,
//!
//! unless `$CONTAINERS_CONF` names a file: then that file alone (a missing
//! one is an error, as with podman). `$CONTAINERS_CONF_OVERRIDE` (podman
//! 4.5's) is read last in either case. A later file replaces the keys it
//! sets, arrays whole; keys cairn does not know are ignored; a file that is
//! not TOML, or a known key of the wrong type, is an error naming the file
//! and the line.
//!
//! What a key absent from every file means is podman 4.3's compiled-in
//! default ([`Defaults`]): notably 14 capabilities, where the distribution's
//! file (Debian's, Fedora's) lists 11 (no `AUDIT_WRITE`, `MKNOD`,
//! `NET_RAW`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::container::config::Ulimit;
use crate::error::{Error, Result};

/// The distribution's file.
pub const USR_SHARE: &str = "/usr/share/containers/containers.conf";
/// The administrator's file.
pub const ETC: &str = "/etc/containers/containers.conf";

/// podman 4.3's compiled-in `default_capabilities` (containers/common
/// 0.50 `DefaultCapabilities`), used when no file sets the key.
pub const COMPILED_CAPABILITIES: [&str; 14] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// podman's default `/dev/shm` size (`shm_size = "65536k"`), in bytes:
/// decimal, as containers.conf sizes are (`size=64000k` in the container).
pub const DEFAULT_SHM_SIZE: u64 = 65_536_000;

/// The `[containers]` keys cairn reads, each `None` when no file set it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ContainersTable {
    /// Capabilities of a container that is not privileged.
    pub default_capabilities: Option<Vec<String>>,
    /// `TYPE=SOFT[:HARD]` limits, as `--ulimit` takes them.
    pub default_ulimits: Option<Vec<String>>,
    /// Process limit (as `--pids-limit`; podman's 2048 when unset, 0 for none).
    pub pids_limit: Option<i64>,
    /// Size of `/dev/shm` (`65536k`, `1g`, bytes).
    pub shm_size: Option<String>,
    /// podman's init binary for `--init`. cairn keeps its own init (its
    /// `cairn-pivot` helper stays as PID 1 and reaps, started from a sealed
    /// copy so the container never sees a host binary it could write to):
    /// read and not used.
    pub init_path: Option<String>,
    /// The seccomp profile used when `--security-opt seccomp=` is not given.
    pub seccomp_profile: Option<String>,
    /// `NAME=VALUE` sysctls set in a new container.
    pub default_sysctls: Option<Vec<String>>,
    /// `NAME=VALUE` variables every container gets (the image's and
    /// `--env` override them).
    pub env: Option<Vec<String>>,
    /// Time zone: `local` (the host's) or a name under
    /// `/usr/share/zoneinfo`.
    pub tz: Option<String>,
    /// The umask of PID 1 (octal).
    pub umask: Option<String>,
    /// Leave the image's `/etc/hosts` alone.
    pub no_hosts: Option<bool>,
    /// The log driver (cairn has `k8s-file` only).
    pub log_driver: Option<String>,
    /// The largest a container's log may grow (bytes, -1 unlimited).
    pub log_size_max: Option<i64>,
    /// The default `--network` (`private`: podman's own default; `host`,
    /// `none`, `bridge`, `pasta`, `slirp4netns`, ...).
    pub netns: Option<String>,
    /// `[network]`'s `default_rootless_network_cmd` (`pasta` or
    /// `slirp4netns`), kept here: the one `[network]` key cairn reads.
    #[serde(skip)]
    pub default_rootless_network_cmd: Option<String>,
}

impl ContainersTable {
    /// `self` with every key `later` sets replaced by `later`'s value.
    fn merge(&mut self, later: ContainersTable) {
        macro_rules! over {
            ($($k:ident),*) => { $( if later.$k.is_some() { self.$k = later.$k; } )* };
        }
        over!(
            default_capabilities,
            default_ulimits,
            pids_limit,
            shm_size,
            init_path,
            seccomp_profile,
            default_sysctls,
            env,
            tz,
            umask,
            no_hosts,
            log_driver,
            log_size_max,
            netns,
            default_rootless_network_cmd
        );
    }
}

/// One file's content: `[containers]`, and one key of `[network]`.
#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    containers: ContainersTable,
    #[serde(default)]
    network: NetworkTable,
}

/// The `[network]` key cairn reads.
#[derive(Debug, Default, Deserialize)]
struct NetworkTable {
    default_rootless_network_cmd: Option<String>,
}

/// What the files said, merged, and which files were read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainersConf {
    /// The merged `[containers]` table.
    pub containers: ContainersTable,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

/// Where the files are: the environment's part, so tests can give their
/// own.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `$CONTAINERS_CONF`.
    pub containers_conf: Option<PathBuf>,
    /// `$CONTAINERS_CONF_OVERRIDE`.
    pub containers_conf_override: Option<PathBuf>,
    /// The rootless user's config directory (`$XDG_CONFIG_HOME` or
    /// `~/.config`); `None` for root.
    pub user_config_dir: Option<PathBuf>,
    /// The system files (`/usr/share/...`, `/etc/...`); tests replace them.
    pub system: Vec<PathBuf>,
}

impl Sources {
    /// This process's: its environment, and the user's config directory
    /// when it runs rootless.
    pub fn from_env() -> Sources {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let user_config_dir = crate::userns::rootless()
            .then(|| var("XDG_CONFIG_HOME").or_else(|| var("HOME").map(|h| h.join(".config"))))
            .flatten();
        Sources {
            containers_conf: var("CONTAINERS_CONF"),
            containers_conf_override: var("CONTAINERS_CONF_OVERRIDE"),
            user_config_dir,
            system: vec![USR_SHARE.into(), ETC.into()],
        }
    }

    /// The files to read, in order (missing optional ones left out).
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        if let Some(p) = &self.containers_conf {
            if !p.is_file() {
                return Err(Error::Invalid(format!(
                    "CONTAINERS_CONF file {}: no such file: unset CONTAINERS_CONF or point it at a containers.conf",
                    p.display()
                )));
            }
            files.push(p.clone());
        } else {
            for p in &self.system {
                if p.is_file() {
                    files.push(p.clone());
                }
            }
            // podman reads the `.d` of the administrator's file (the last
            // system one) only.
            if let Some(last) = self.system.last() {
                files.extend(drop_ins(&dot_d(last))?);
            }
            if let Some(dir) = &self.user_config_dir {
                let user = dir.join("containers/containers.conf");
                if user.is_file() {
                    files.push(user.clone());
                }
                files.extend(drop_ins(&dot_d(&user))?);
            }
        }
        if let Some(p) = &self.containers_conf_override {
            if !p.is_file() {
                return Err(Error::Invalid(format!(
                    "CONTAINERS_CONF_OVERRIDE file {}: no such file",
                    p.display()
                )));
            }
            files.push(p.clone());
        }
        Ok(files)
    }
}

/// `FILE.d`.
fn dot_d(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".d");
    PathBuf::from(s)
}

/// The `*.conf` files of `dir`, in name order; none when it is missing.
fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Invalid(format!(
                "containers.conf: read directory {}: {e}",
                dir.display()
            )))
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// One file's `[containers]` table. `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<ContainersTable> {
    toml::from_str::<File>(text)
        .map(|f| ContainersTable {
            default_rootless_network_cmd: f.network.default_rootless_network_cmd,
            ..f.containers
        })
        .map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            let msg = e.message().trim_end().replace('\n', " ");
            Error::Invalid(format!("{}:{line}: {msg}", path.display()))
        })
}

impl ContainersConf {
    /// Reads the files `sources` names, later ones over earlier ones.
    pub fn load(sources: &Sources) -> Result<ContainersConf> {
        let mut conf = ContainersConf::default();
        for path in sources.files()? {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::Invalid(format!("read containers.conf {}: {e}", path.display()))
            })?;
            conf.containers.merge(parse(&text, &path)?);
            conf.files.push(path);
        }
        Ok(conf)
    }

    /// [`load`](Self::load) from this process's environment.
    pub fn from_env() -> Result<ContainersConf> {
        ContainersConf::load(&Sources::from_env())
    }

    /// The defaults a new container gets, checked: capability names,
    /// ulimits and sizes are parsed here, so a bad value names its key.
    pub fn defaults(&self) -> Result<Defaults> {
        let c = &self.containers;
        let bad = |key: &str, why: String| {
            Error::Invalid(format!(
                "containers.conf ({}): {key}: {why}",
                self.files_shown()
            ))
        };
        let capabilities = match &c.default_capabilities {
            Some(names) => names
                .iter()
                .map(|n| {
                    let up = n.trim().to_ascii_uppercase();
                    let bare = up.strip_prefix("CAP_").unwrap_or(&up).to_owned();
                    if cairn_runtime::caps::NAMES.contains(&bare.as_str()) {
                        Ok(bare)
                    } else {
                        Err(bad(
                            "default_capabilities",
                            format!("unknown capability {n:?}"),
                        ))
                    }
                })
                .collect::<Result<Vec<_>>>()?,
            None => COMPILED_CAPABILITIES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        };
        let ulimits = c
            .default_ulimits
            .iter()
            .flatten()
            .map(|u| parse_ulimit(u).map_err(|e| bad("default_ulimits", e)))
            .collect::<Result<Vec<_>>>()?;
        let shm_size = match &c.shm_size {
            Some(s) => parse_size(s).map_err(|e| bad("shm_size", e))?,
            None => DEFAULT_SHM_SIZE,
        };
        let env = c.env.clone().unwrap_or_default();
        for e in &env {
            if !e.contains('=') || e.starts_with('=') {
                return Err(bad("env", format!("{e:?} is not NAME=VALUE")));
            }
        }
        let umask = match &c.umask {
            Some(u) => Some(
                u32::from_str_radix(u, 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .ok_or_else(|| {
                        bad("umask", format!("{u:?} is not an octal mode such as 0022"))
                    })?,
            ),
            None => None,
        };
        let sysctls = c.default_sysctls.clone().unwrap_or_default();
        for s in &sysctls {
            if !s.contains('=') {
                return Err(bad("default_sysctls", format!("{s:?} is not NAME=VALUE")));
            }
        }
        let tz = c.tz.clone().filter(|t| !t.is_empty());
        if let Some(t) = &tz {
            if t != "local"
                && (t.starts_with('/') || t.split('/').any(|p| p == ".." || p.is_empty()))
            {
                return Err(bad(
                    "tz",
                    format!("{t:?} is not a zone name such as Europe/Berlin, or local"),
                ));
            }
            if t != "local" && !Path::new("/usr/share/zoneinfo").join(t).is_file() {
                return Err(bad(
                    "tz",
                    format!("unknown time zone {t:?} (no /usr/share/zoneinfo/{t})"),
                ));
            }
        }
        Ok(Defaults {
            capabilities,
            ulimits,
            // podman's default is 2048; 0 means none.
            pids_limit: match c.pids_limit {
                None => Some(crate::container::cgroups::DEFAULT_PIDS_LIMIT),
                Some(0) => None,
                p => p,
            },
            shm_size,
            seccomp_profile: c
                .seccomp_profile
                .clone()
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            sysctls,
            env,
            tz,
            umask,
            no_hosts: c.no_hosts.unwrap_or(false),
            log_size_max: c.log_size_max.filter(|&m| m > 0),
            netns: c.netns.clone().filter(|n| !n.is_empty() && n != "private"),
            rootless_network_cmd: match c.default_rootless_network_cmd.as_deref() {
                None | Some("") => None,
                Some(t @ ("pasta" | "slirp4netns")) => Some(t.to_owned()),
                Some(t) => {
                    return Err(bad(
                        "default_rootless_network_cmd",
                        format!("{t:?}: use pasta or slirp4netns"),
                    ))
                }
            },
        })
    }

    /// The keys set in the files that cairn reads but does not apply, each
    /// with why (the caller warns). With `host_network`, `net.*` sysctls
    /// are not counted: podman skips them too.
    pub fn unapplied(&self, host_network: bool) -> Vec<(&'static str, &'static str)> {
        let c = &self.containers;
        let mut out = Vec::new();
        if c.init_path.is_some() {
            out.push((
                "init_path",
                "cairn's --init is its own (cairn-pivot stays as PID 1)",
            ));
        }
        if c.umask.is_some() {
            out.push(("umask", "cairn's runtime does not set PID 1's umask yet"));
        }
        // default_sysctls are applied by create (those of the namespaces
        // the container has of its own, as podman does).
        let _ = host_network;
        // A machine-wide journald (podman's own compiled default on some
        // distributions) must not stop every create: cairn logs to its
        // k8s-file and says so.
        if c.log_driver
            .as_deref()
            .is_some_and(|d| !matches!(d, "k8s-file" | ""))
        {
            out.push(("log_driver", "cairn writes k8s-file logs only"));
        }
        if c.log_size_max.is_some_and(|m| m > 0) {
            out.push(("log_size_max", "cairn's k8s-file log is not capped yet"));
        }
        out
    }

    fn files_shown(&self) -> String {
        if self.files.is_empty() {
            return "no file".into();
        }
        let v: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
        v.join(", ")
    }
}

/// A new container's defaults, as containers.conf and podman 4.3's compiled
/// defaults give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// Capability names without `CAP_`, upper case.
    pub capabilities: Vec<String>,
    /// Resource limits (`--ulimit` of the same name replaces one).
    pub ulimits: Vec<Ulimit>,
    /// Process limit.
    pub pids_limit: Option<i64>,
    /// `/dev/shm`'s size in bytes.
    pub shm_size: u64,
    /// The default seccomp profile's file, when containers.conf names one.
    pub seccomp_profile: Option<PathBuf>,
    /// `NAME=VALUE` sysctls.
    pub sysctls: Vec<String>,
    /// `NAME=VALUE` variables under the image's.
    pub env: Vec<String>,
    /// Time zone (`local` or a zone name).
    pub tz: Option<String>,
    /// PID 1's umask.
    pub umask: Option<u32>,
    /// No generated `/etc/hosts`.
    pub no_hosts: bool,
    /// Log size cap in bytes.
    pub log_size_max: Option<i64>,
    /// The default `--network` value (`None`: podman's default).
    pub netns: Option<String>,
    /// Rootless default network tool: `pasta` or `slirp4netns` (`None`:
    /// pasta where installed).
    pub rootless_network_cmd: Option<String>,
}

impl Default for Defaults {
    /// What podman 4.3 uses with no containers.conf at all.
    fn default() -> Defaults {
        ContainersConf::default()
            .defaults()
            .expect("the compiled defaults are valid")
    }
}

/// `TYPE=SOFT[:HARD]` (`-1` or `unlimited` for none), as `--ulimit`.
pub fn parse_ulimit(s: &str) -> std::result::Result<Ulimit, String> {
    let (name, vals) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: use TYPE=SOFT[:HARD]"))?;
    let num = |v: &str| -> std::result::Result<i64, String> {
        if v == "unlimited" {
            return Ok(-1);
        }
        v.parse::<i64>()
            .ok()
            .filter(|&n| n >= -1)
            .ok_or_else(|| format!("{s:?}: {v:?} is not a limit (a number, -1 or unlimited)"))
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(vals)?, num(vals)?),
    };
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("rlimit_").unwrap_or(&name).to_owned();
    const KNOWN: [&str; 16] = [
        "as",
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    if !KNOWN.contains(&name.as_str()) {
        return Err(format!("{s:?}: unknown limit type {name:?}"));
    }
    Ok(Ulimit { name, soft, hard })
}

/// A size: bytes, or a number with `k`, `m`, `g` or `t` (powers of 1000,
/// an `i` and a `b` allowed after), as podman reads `shm_size`
/// (go-units' `FromHumanSize`).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '.')
    {
        Some((i, _)) => {
            let unit = t[i..].trim_start();
            let unit = unit.strip_suffix('b').unwrap_or(unit);
            let unit = unit.strip_suffix('i').unwrap_or(unit);
            let mult: u64 = match unit {
                "" => 1,
                "k" => 1000,
                "m" => 1000 * 1000,
                "g" => 1000 * 1000 * 1000,
                "t" => 1000 * 1000 * 1000 * 1000,
                _ => return Err(format!("{s:?} is not a size such as 65536k or 1g")),
            };
            (&t[..i], mult)
        }
        None => (t.as_str(), 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 65536k or 1g"))?;
    let bytes = n * mult as f64;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("{s:?}: a size must be at least one byte"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn sources(dir: &Path) -> Sources {
        Sources {
            containers_conf: None,
            containers_conf_override: None,
            user_config_dir: None,
            system: vec![
                dir.join("usr/containers.conf"),
                dir.join("etc/containers.conf"),
            ],
        }
    }

    /// (files written, sources edit, capabilities wanted, files read).
    #[test]
    fn order_and_override_table() {
        type Edit = fn(&mut Sources, &Path);
        type Row<'a> = (&'a [(&'a str, &'a str)], Edit, &'a [&'a str], &'a [&'a str]);
        let table: &[Row<'_>] = &[
            // Nothing at all: podman 4.3's compiled 14.
            (&[], |_, _| {}, &COMPILED_CAPABILITIES, &[]),
            // The distribution's file alone.
            (
                &[(
                    "usr/containers.conf",
                    "[containers]\ndefault_capabilities = [\"CHOWN\", \"KILL\"]\n",
                )],
                |_, _| {},
                &["CHOWN", "KILL"],
                &["usr/containers.conf"],
            ),
            // /etc over /usr/share, its .d over both, in name order; a
            // file that does not set the key changes nothing.
            (
                &[
                    (
                        "usr/containers.conf",
                        "[containers]\ndefault_capabilities = [\"CHOWN\"]\n",
                    ),
                    (
                        "etc/containers.conf",
                        "[containers]\ndefault_capabilities = [\"KILL\"]\n",
                    ),
                    (
                        "etc/containers.conf.d/20-b.conf",
                        "[containers]\ndefault_capabilities = [\"cap_net_raw\"]\n",
                    ),
                    (
                        "etc/containers.conf.d/10-a.conf",
                        "[containers]\ndefault_capabilities = [\"MKNOD\"]\n",
                    ),
                    (
                        "etc/containers.conf.d/30-c.conf",
                        "[engine]\nruntime = \"crun\"\n",
                    ),
                    ("etc/containers.conf.d/ignored.txt", "not toml ["),
                ],
                |_, _| {},
                &["NET_RAW"],
                &[
                    "usr/containers.conf",
                    "etc/containers.conf",
                    "etc/containers.conf.d/10-a.conf",
                    "etc/containers.conf.d/20-b.conf",
                    "etc/containers.conf.d/30-c.conf",
                ],
            ),
            // The rootless user's file and its .d come after the system's.
            (
                &[
                    (
                        "etc/containers.conf",
                        "[containers]\ndefault_capabilities = [\"KILL\"]\n",
                    ),
                    (
                        "home/containers/containers.conf",
                        "[containers]\ndefault_capabilities = [\"SETUID\"]\n",
                    ),
                    (
                        "home/containers/containers.conf.d/a.conf",
                        "[containers]\npids_limit = 5\n",
                    ),
                ],
                |s, d| s.user_config_dir = Some(d.join("home")),
                &["SETUID"],
                &[
                    "etc/containers.conf",
                    "home/containers/containers.conf",
                    "home/containers/containers.conf.d/a.conf",
                ],
            ),
            // CONTAINERS_CONF replaces every other file.
            (
                &[
                    (
                        "etc/containers.conf",
                        "[containers]\ndefault_capabilities = [\"KILL\"]\n",
                    ),
                    ("mine.conf", "[engine]\n"),
                ],
                |s, d| s.containers_conf = Some(d.join("mine.conf")),
                &COMPILED_CAPABILITIES,
                &["mine.conf"],
            ),
            // CONTAINERS_CONF_OVERRIDE is read last.
            (
                &[
                    (
                        "etc/containers.conf",
                        "[containers]\ndefault_capabilities = [\"KILL\"]\n",
                    ),
                    (
                        "over.conf",
                        "[containers]\ndefault_capabilities = [\"SYS_ADMIN\"]\n",
                    ),
                ],
                |s, d| s.containers_conf_override = Some(d.join("over.conf")),
                &["SYS_ADMIN"],
                &["etc/containers.conf", "over.conf"],
            ),
        ];
        for (i, (files, edit, caps, read)) in table.iter().enumerate() {
            let d = tempfile::tempdir().unwrap();
            for (rel, text) in *files {
                write(d.path(), rel, text);
            }
            let mut s = sources(d.path());
            edit(&mut s, d.path());
            let conf = ContainersConf::load(&s).unwrap();
            let want: Vec<PathBuf> = read.iter().map(|r| d.path().join(r)).collect();
            assert_eq!(conf.files, want, "row {i}");
            assert_eq!(conf.defaults().unwrap().capabilities, *caps, "row {i}");
        }
    }

    #[test]
    fn every_key_cairn_reads() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "c.conf",
            r#"
# a comment
[containers]
default_ulimits = ["nofile=1024:2048", "RLIMIT_NPROC=unlimited"]
pids_limit = 100
shm_size = "10m"
init_path = "/usr/libexec/podman/catatonit"
seccomp_profile = "/etc/my-seccomp.json"
default_sysctls = ["net.ipv4.ping_group_range=0 0"]
env = ["FOO=bar", "PATH=/x"]
tz = "Asia/Tokyo"
umask = "0077"
no_hosts = true
log_driver = "journald"
log_size_max = 4096
netns = "host"
a_key_from_podman_6 = { nested = 1 }

[network]
default_rootless_network_cmd = "slirp4netns"
network_backend = "netavark"

[engine]
cgroup_manager = "cgroupfs"
"#,
        );
        let mut s = sources(d.path());
        s.containers_conf = Some(p);
        let got = ContainersConf::load(&s).unwrap().defaults().unwrap();
        assert_eq!(
            got.ulimits,
            [
                Ulimit {
                    name: "nofile".into(),
                    soft: 1024,
                    hard: 2048
                },
                Ulimit {
                    name: "nproc".into(),
                    soft: -1,
                    hard: -1
                },
            ]
        );
        assert_eq!(got.pids_limit, Some(100));
        assert_eq!(got.shm_size, 10_000_000);
        assert_eq!(
            got.seccomp_profile,
            Some(PathBuf::from("/etc/my-seccomp.json"))
        );
        assert_eq!(got.sysctls, ["net.ipv4.ping_group_range=0 0"]);
        assert_eq!(got.env, ["FOO=bar", "PATH=/x"]);
        assert_eq!(got.tz.as_deref(), Some("Asia/Tokyo"));
        assert_eq!(got.umask, Some(0o077));
        assert!(got.no_hosts);
        assert_eq!(got.log_size_max, Some(4096));
        assert_eq!(got.netns.as_deref(), Some("host"));
        assert_eq!(got.rootless_network_cmd.as_deref(), Some("slirp4netns"));
        let unapplied: Vec<&str> = ContainersConf::load(&s)
            .unwrap()
            .unapplied(true)
            .iter()
            .map(|(k, _)| *k)
            .collect();
        // net.* sysctls are skipped on the host network, as podman does.
        assert_eq!(
            unapplied,
            ["init_path", "umask", "log_driver", "log_size_max"]
        );
        assert_eq!(got.capabilities, COMPILED_CAPABILITIES);
        let none = Defaults::default();
        assert_eq!(
            (none.shm_size, none.pids_limit, none.umask, none.no_hosts),
            (DEFAULT_SHM_SIZE, Some(2048), None, false)
        );
    }

    /// A broken file is an error that names it and the line; so is a known
    /// key of the wrong type, or a bad value.
    #[test]
    fn malformed_files_name_file_and_line() {
        let table: &[(&str, &str)] = &[
            ("[containers]\npids_limit = 1\nshm_size = \n", ":3: "),
            ("[containers]\n\ndefault_capabilities = \"CHOWN\"\n", ":3: "),
            ("[containers\n", ":1: "),
            ("[containers]\npids_limit = \"many\"\n", ":2: "),
        ];
        for (text, want) in table {
            let d = tempfile::tempdir().unwrap();
            let p = write(d.path(), "bad.conf", text);
            let mut s = sources(d.path());
            s.containers_conf = Some(p.clone());
            let e = ContainersConf::load(&s).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("{}{want}", p.display())),
                "{text:?}: {e}"
            );
        }
        let bad_values: &[(&str, &str)] = &[
            (
                "default_capabilities = [\"FLY\"]",
                "default_capabilities: unknown capability \"FLY\"",
            ),
            (
                "default_ulimits = [\"nofile\"]",
                "default_ulimits: \"nofile\": use TYPE=SOFT[:HARD]",
            ),
            (
                "default_ulimits = [\"bogus=1\"]",
                "unknown limit type \"bogus\"",
            ),
            ("shm_size = \"lots\"", "shm_size: \"lots\" is not a size"),
            ("umask = \"999\"", "umask: \"999\" is not an octal mode"),
            (
                "env = [\"NOEQUALS\"]",
                "env: \"NOEQUALS\" is not NAME=VALUE",
            ),
            ("tz = \"../../etc/shadow\"", "is not a zone name"),
        ];
        for (line, want) in bad_values {
            let d = tempfile::tempdir().unwrap();
            let p = write(d.path(), "v.conf", &format!("[containers]\n{line}\n"));
            let mut s = sources(d.path());
            s.containers_conf = Some(p.clone());
            let e = ContainersConf::load(&s)
                .unwrap()
                .defaults()
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&p.display().to_string()) && e.contains(want),
                "{line}: {e}"
            );
        }
        let d = tempfile::tempdir().unwrap();
        let mut s = sources(d.path());
        s.containers_conf = Some(d.path().join("missing.conf"));
        let e = ContainersConf::load(&s).unwrap_err().to_string();
        assert!(e.starts_with("CONTAINERS_CONF file "), "{e}");
    }

    #[test]
    fn sizes() {
        for (s, want) in [
            ("65536k", 65_536_000),
            ("1g", 1_000_000_000),
            ("512", 512),
            ("64MB", 64_000_000),
            ("1.5k", 1500),
            ("2KiB", 2000),
        ] {
            assert_eq!(parse_size(s), Ok(want), "{s}");
        }
        for bad in ["", "0", "k", "10x", "-1m"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
