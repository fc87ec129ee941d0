//! The host's cgroup hierarchies: one cgroup2 tree, or the cgroup v1
//! controller mounts (a hybrid host, with an empty cgroup2 tree beside its
//! v1 controllers, counts as v1, as podman has it).

use std::path::{Path, PathBuf};

use crate::error::{Context as _, Error, Result};

/// The cgroup version of a hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// One tree per controller (or group of co-mounted controllers).
    V1,
    /// The unified hierarchy.
    V2,
}

/// Where the cgroup filesystems are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    V2(PathBuf),
    V1(Vec<Mount>),
}

/// One v1 hierarchy: its controllers (`cpu`, `cpuacct` when co-mounted;
/// `name=systemd` for a named one) and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub controllers: Vec<String>,
    pub dir: PathBuf,
}

/// The v1 controllers the kernel has (`/proc/cgroups`), to tell them from
/// the other superblock options (`rw`, `clone_children`, `xattr`, ...).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// `path` (absolute, from a hierarchy's root) under the directory `base`.
pub(crate) fn under(base: &Path, path: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

/// The v1 hierarchies in a parsed mountinfo: every `cgroup` mount with a
/// known controller or a `name=`, the first mount of each.
pub(crate) fn v1_mounts(mounts: &[crate::mountinfo::MountInfo]) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for m in mounts.iter().filter(|m| m.fstype == "cgroup") {
        let controllers: Vec<String> = m
            .super_options
            .iter()
            .filter(|o| V1_CONTROLLERS.contains(&o.as_str()) || o.starts_with("name="))
            .cloned()
            .collect();
        if controllers.is_empty() || out.iter().any(|o| o.controllers == controllers) {
            continue;
        }
        out.push(Mount {
            controllers,
            dir: PathBuf::from(&m.mount_point),
        });
    }
    out
}

/// Our cgroup in `/proc/self/cgroup` text: v2 the `0::` line; v1 the line
/// of `pids`, else of `first` (a controller of the first mount).
pub(crate) fn path_in(text: &str, version: Version, first: Option<&str>) -> Option<String> {
    let lines = || {
        text.lines().filter_map(|l| {
            let mut it = l.splitn(3, ':');
            Some((it.next()?, it.next()?, it.next()?))
        })
    };
    match version {
        Version::V2 => lines().find(|(id, c, _)| *id == "0" && c.is_empty()),
        Version::V1 => lines()
            .find(|(_, c, _)| c.split(',').any(|c| c == "pids"))
            .or_else(|| lines().find(|(_, c, _)| c.split(',').any(|c| Some(c) == first))),
    }
    .map(|(_, _, p)| p.to_owned())
}

impl Hierarchy {
    /// The host's hierarchy: pure v2 when `/sys/fs/cgroup` is cgroup2,
    /// else v1 with every cgroup v1 mount of `/proc/self/mountinfo`
    /// (`name=systemd` included, co-mounted controllers as one), else a
    /// cgroup2 mounted elsewhere; `None` when no cgroup filesystem is
    /// mounted.
    pub fn detect() -> Result<Option<Hierarchy>> {
        match nix::sys::statfs::statfs(CGROUP_ROOT) {
            Ok(fs) if fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => {
                return Ok(Some(Hierarchy::v2_at(CGROUP_ROOT.into())));
            }
            Ok(_) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys("statfs", CGROUP_ROOT, e)),
        }
        let mounts = crate::mountinfo::read_self().ctx("read", "/proc/self/mountinfo")?;
        let v1 = v1_mounts(&mounts);
        if !v1.is_empty() {
            return Ok(Some(Hierarchy::v1_at(
                v1.into_iter().map(|m| (m.controllers, m.dir)).collect(),
            )));
        }
        Ok(mounts
            .iter()
            .find(|m| m.fstype == "cgroup2")
            .map(|m| Hierarchy::v2_at(PathBuf::from(&m.mount_point))))
    }

    /// A v2 hierarchy rooted at `root` (tests: a fake tree, or a cgroup2
    /// mounted anywhere).
    pub fn v2_at(root: PathBuf) -> Hierarchy {
        Hierarchy {
            kind: Kind::V2(root),
        }
    }

    /// A v1 hierarchy of `(controllers, mount directory)` pairs.
    pub fn v1_at(mounts: Vec<(Vec<String>, PathBuf)>) -> Hierarchy {
        Hierarchy {
            kind: Kind::V1(
                mounts
                    .into_iter()
                    .map(|(controllers, dir)| Mount { controllers, dir })
                    .collect(),
            ),
        }
    }

    /// V1 or V2.
    pub fn version(&self) -> Version {
        match self.kind {
            Kind::V1(_) => Version::V1,
            Kind::V2(_) => Version::V2,
        }
    }

    /// This process's cgroup path (v2: the `0::` line of
    /// `/proc/self/cgroup`; v1: the `pids` line, else the first
    /// controller's).
    pub fn own_path(&self) -> Result<String> {
        let text = std::fs::read_to_string("/proc/self/cgroup").ctx("read", "/proc/self/cgroup")?;
        let first = match &self.kind {
            Kind::V1(m) => m.first().and_then(|m| m.controllers.first()).cloned(),
            Kind::V2(_) => None,
        };
        path_in(&text, self.version(), first.as_deref()).ok_or_else(|| {
            Error::Usage(format!(
                "/proc/self/cgroup has no line for the {:?} hierarchy: {text:?}",
                self.version()
            ))
        })
    }

    /// Controllers that can be used for a child of `parent` (v2: the
    /// `cgroup.controllers` of `parent`, or of its nearest existing
    /// ancestor; v1: the mounted controllers).
    pub fn controllers(&self, parent: &str) -> Vec<String> {
        match &self.kind {
            Kind::V1(mounts) => mounts
                .iter()
                .flat_map(|m| m.controllers.iter())
                .filter(|c| !c.starts_with("name="))
                .cloned()
                .collect(),
            Kind::V2(root) => {
                let dir = nearest_existing(&under(root, parent), root);
                std::fs::read_to_string(dir.join("cgroup.controllers"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            }
        }
    }

    /// Names of the child cgroups of `parent` in any hierarchy, sorted.
    pub fn children(&self, parent: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .bases()
            .iter()
            .filter_map(|b| std::fs::read_dir(under(b, parent)).ok())
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Whether we may create cgroups under `parent` (or its nearest
    /// existing ancestor): its directory writable by us in every hierarchy,
    /// and on v2 its `cgroup.procs` and `cgroup.subtree_control` too (a
    /// delegated subtree, for rootless use).
    pub fn writable(&self, parent: &str) -> bool {
        use nix::unistd::{access, AccessFlags};
        let w = |p: &Path| access(p, AccessFlags::W_OK).is_ok();
        self.bases().iter().all(|b| {
            let dir = nearest_existing(&under(b, parent), b);
            w(&dir)
                && (self.version() == Version::V1
                    || (w(&dir.join("cgroup.procs")) && w(&dir.join("cgroup.subtree_control"))))
        })
    }

    /// Each hierarchy's root directory.
    pub(crate) fn bases(&self) -> Vec<PathBuf> {
        match &self.kind {
            Kind::V2(root) => vec![root.clone()],
            Kind::V1(mounts) => mounts.iter().map(|m| m.dir.clone()).collect(),
        }
    }

    /// The v1 mounts (empty on v2).
    pub(crate) fn mounts(&self) -> &[Mount] {
        match &self.kind {
            Kind::V2(_) => &[],
            Kind::V1(m) => m,
        }
    }

    /// The root of the hierarchy that has `controller` (v2: the one root;
    /// the caller checks that the controller is enabled).
    pub(crate) fn base_of(&self, controller: &str) -> Option<&Path> {
        match &self.kind {
            Kind::V2(root) => Some(root),
            Kind::V1(mounts) => mounts
                .iter()
                .find(|m| m.controllers.iter().any(|c| c == controller))
                .map(|m| m.dir.as_path()),
        }
    }
}

/// `dir`, or its nearest ancestor that exists, not above `root`.
fn nearest_existing(dir: &Path, root: &Path) -> PathBuf {
    let mut d = dir;
    while !d.exists() && d != root {
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    d.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_mounts_from_mountinfo() {
        // This host's (Debian 12 VM) lines, with a co-mounted cpu,cpuacct
        // and a duplicate bind of pids added.
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 23 0:36 / /mnt/pids rw,relatime - cgroup cgroup rw,pids
";
        let m = v1_mounts(&crate::mountinfo::parse(text));
        let got: Vec<(Vec<String>, String)> = m
            .iter()
            .map(|m| (m.controllers.clone(), m.dir.display().to_string()))
            .collect();
        let want = |c: &[&str], d: &str| (c.iter().map(|s| s.to_string()).collect(), d.to_owned());
        assert_eq!(
            got,
            [
                want(&["cpu", "cpuacct"], "/sys/fs/cgroup/cpu,cpuacct"),
                want(&["cpuset"], "/sys/fs/cgroup/cpuset"),
                want(&["memory"], "/sys/fs/cgroup/memory"),
                want(&["pids"], "/sys/fs/cgroup/pids"),
                want(&["name=systemd"], "/sys/fs/cgroup/systemd"),
            ]
        );
        let h = Hierarchy::v1_at(m.into_iter().map(|m| (m.controllers, m.dir)).collect());
        assert_eq!(
            h.base_of("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(h.base_of("freezer"), None);
        assert_eq!(
            h.controllers("/"),
            ["cpu", "cpuacct", "cpuset", "memory", "pids"]
        );
    }

    #[test]
    fn own_path_lines() {
        let v1 = "9:name=systemd:/user.slice\n8:pids:/a/b\n4:memory:/process_api/c7\n\
                  1:cpu,cpuacct:/x\n0::/\n";
        assert_eq!(
            path_in(v1, Version::V1, Some("memory")).as_deref(),
            Some("/a/b")
        );
        let no_pids = "4:memory:/process_api/c7\n1:cpu,cpuacct:/x\n0::/\n";
        assert_eq!(
            path_in(no_pids, Version::V1, Some("cpuacct")).as_deref(),
            Some("/x")
        );
        assert_eq!(path_in(v1, Version::V2, None).as_deref(), Some("/"));
        assert_eq!(
            path_in("0::/user.slice/user-1000.slice/a:b\n", Version::V2, None).as_deref(),
            Some("/user.slice/user-1000.slice/a:b")
        );
        assert_eq!(path_in("", Version::V2, None), None);
    }

    #[test]
    fn detect_finds_the_hosts_cgroups() {
        // Every CI host of cairn has some cgroup filesystem mounted.
        let h = Hierarchy::detect().unwrap().expect("a cgroup filesystem");
        let own = h.own_path().unwrap();
        assert!(own.starts_with('/'), "{own}");
        if h.version() == Version::V1 {
            assert!(!h.mounts().is_empty());
        }
    }
}
