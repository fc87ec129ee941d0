//! The state changes of containers beyond start and stop (which are in
//! [`runtime`](crate::container::runtime)): remove, prune, rename, wait.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_unpacker::ImageRoot;

use crate::container::config::MountKind;
use crate::container::seccomp::{self, Compiled};
use crate::container::{remove_tree, runtime, Config, Container, Containers, Live, Status};
use crate::error::{Context as _, Error, Result};
use crate::events;
use crate::userns::{self, Rootless};

/// Puts the container `config` describes on disk: its named and anonymous
/// volumes' directories, then its directory (atomically, see
/// [`Containers::create`]) with the compiled `seccomp` filter and, for
/// keep-id, the caller's user in its `/etc/passwd` and `/etc/group`; a
/// numeric `--user` the image does not know gets podman's entries there
/// too.
pub fn create(
    containers: &Containers,
    config: &Config,
    seccomp: Option<&Compiled>,
    root: &ImageRoot,
    keep_id: Option<&Rootless>,
) -> Result<Container> {
    let store_root = containers.dir().parent().unwrap_or(Path::new("/"));
    let volumes = crate::volume::Volumes::new(cairn_store::StoreDir::Volumes.under(store_root));
    for m in &config.mounts {
        if m.kind == MountKind::Volume {
            volumes.ensure(&m.source)?;
        }
    }
    let c = containers.create(config, |dir| {
        if let Some(s) = seccomp {
            seccomp::install(dir, s)?;
        }
        if let Some(r) = keep_id {
            userns::add_user(dir, root, r)?;
        }
        crate::container::files::add_user_entries(
            dir,
            root,
            &config.process.user,
            &config.process.workdir,
        )
    })?;
    events::record_container(&c, "create");
    Ok(c)
}

/// What [`remove`] does with a container that runs (checked under its
/// lock, so a start racing the removal is seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfRunning {
    /// Fail like podman's rm without -f ([`Error::RemoveRunning`]).
    Refuse,
    /// Stop it first (`rm -f`).
    Stop,
    /// Leave it (prune): `Ok(None)`.
    Skip,
}

/// A removed container's anonymous volumes that could not be removed.
#[derive(Debug, Default)]
pub struct Removed {
    /// Each volume directory left behind, and why.
    pub volumes_left: Vec<(PathBuf, std::io::Error)>,
}

/// Removes `c`: stops it first when `if_running` says so (waiting
/// `timeout` before SIGKILL), then its directory and, with `volumes`, its
/// anonymous volumes. `Ok(None)` when it runs and `if_running` is
/// [`IfRunning::Skip`], or it is gone already.
pub fn remove(
    containers: &Containers,
    c: &Container,
    if_running: IfRunning,
    timeout: Duration,
    volumes: bool,
) -> Result<Option<Removed>> {
    let mut c = c.clone();
    let mut stops = 0;
    let (_names, _lock) = loop {
        let names = containers.lock_names()?;
        // Removed by someone else meanwhile: done.
        let lock = match c.lock() {
            Ok(l) => l,
            Err(_) if !c.dir.join("config.json").exists() => return Ok(None),
            Err(e) => return Err(e),
        };
        if !c.dir.join("config.json").exists() {
            return Ok(None);
        }
        c.reload()?;
        if !c.live().status.is_alive() {
            break (names, lock);
        }
        match if_running {
            IfRunning::Skip => return Ok(None),
            IfRunning::Refuse => return Err(Error::RemoveRunning(c.config.id.to_string())),
            IfRunning::Stop => {}
        }
        // Started again each time we stopped it: somebody insists.
        if stops == 3 {
            return Err(Error::Refused(format!(
                "container {} was started again each of the 3 times rm stopped it: stop whatever starts it, then rm again",
                c.config.name
            )));
        }
        stops += 1;
        drop((lock, names));
        runtime::stop(&mut c, timeout)?;
    };
    // Its network: what a crash left, and its addresses. A monitor still
    // finishing (its own teardown) is given 2 s to end first.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while c.monitor_alive() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Some(root) = events::root_of(&c) {
        if let Err(e) = crate::network::setup::release(&c, root) {
            tracing::warn!("{}", e.with_causes());
        }
    }
    // Its cgroup, if a killed monitor could not remove it.
    if let Ok(Some(cg)) = crate::container::cgroups::of(&c) {
        if let Err(e) = cg.remove() {
            tracing::warn!("{e}");
        }
    }
    // Disappear atomically, then delete at leisure.
    let trash = containers.dir().join(format!(".rm-{}", c.config.id));
    match std::fs::rename(&c.dir, &trash) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("remove container {}", c.dir.display())),
    }
    events::record_container(&c, "remove");
    remove_tree(&trash).with_context(|| format!("remove {}", trash.display()))?;
    let mut removed = Removed::default();
    if volumes {
        for m in c.config.mounts.iter().filter(|m| m.anonymous) {
            if let Some(vol) = Path::new(&m.source).parent() {
                if let Err(e) = remove_tree(vol) {
                    removed.volumes_left.push((vol.to_owned(), e));
                }
            }
        }
    }
    Ok(Some(removed))
}

/// Removes every container that is not running and that `selected`
/// accepts (podman's container prune and its filters), calling `removed`
/// for each as it goes.
pub fn prune(
    containers: &Containers,
    selected: impl Fn(&Container) -> bool,
    mut removed: impl FnMut(&Container),
) -> Result<()> {
    for c in containers.list()? {
        if matches!(c.live().status, Status::Exited | Status::Created)
            && selected(&c)
            && remove(containers, &c, IfRunning::Skip, Duration::ZERO, true)?.is_some()
        {
            removed(&c);
        }
    }
    Ok(())
}

/// Checks a container name: podman's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn validate_name(n: &str) -> Result<()> {
    let mut chars = n.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(Error::Refused(format!(
            "container name {n:?} is invalid: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"
        )));
    }
    Ok(())
}

/// Gives the container `spec` the name `name`, which must be valid and
/// free (or its own already).
pub fn rename(containers: &Containers, spec: &str, name: &str) -> Result<()> {
    validate_name(name)?;
    let c = containers.find(spec)?;
    let _names = containers.lock_names()?;
    if let Some(other) = containers.list()?.iter().find(|o| o.config.name == name) {
        if other.config.id != c.config.id {
            return Err(Error::Refused(format!(
                "the container name \"{}\" is already in use by {}: that name is already in use",
                name, other.config.id
            )));
        }
    }
    let _lock = c.lock()?;
    let mut c = Container::load(&c.dir)?;
    c.config.name = name.to_owned();
    c.save_config()
}

/// Waits until `c` reaches one of the statuses in `want`, looking at least
/// every `interval` (podman's `wait --interval`); its live status then.
/// Fails if the container is removed meanwhile.
pub fn wait_for(c: &mut Container, want: &[Status], interval: Duration) -> Result<Live> {
    let interval = interval.max(Duration::from_millis(1));
    let mut nap = Duration::from_millis(1);
    loop {
        let live = c.live();
        if want.contains(&live.status) {
            return Ok(live);
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(interval);
        if c.reload().is_err() {
            return Err(Error::Refused(format!(
                "{}: the container was removed while waiting",
                c.config.name
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "web-1", "x_y.z", "0"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "é"] {
            let e = validate_name(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Engine, "{bad}");
        }
    }

    #[test]
    fn rename_and_remove_on_disk() {
        let root = tempfile::tempdir().unwrap();
        let containers = Containers::new(root.path());
        let mk = |name: &str| {
            let config = crate::container::Config {
                id: crate::ContainerId::random(),
                name: name.into(),
                ..Default::default()
            };
            containers.create(&config, |_| Ok(())).unwrap()
        };
        // Names that are not hex: a hex name also matches id prefixes.
        let a = mk("web");
        let b = mk("db");
        let e = rename(&containers, "web", "db").unwrap_err();
        assert!(e.to_string().contains("already in use by"), "{e}");
        rename(&containers, "web", "web").unwrap();
        rename(&containers, "web", "proxy").unwrap();
        assert_eq!(containers.find(&a.config.id).unwrap().config.name, "proxy");
        assert!(matches!(
            containers.find("web").unwrap_err(),
            Error::NoSuchContainer(_)
        ));
        assert!(rename(&containers, "proxy", "-x").is_err());
        let mut pruned = Vec::new();
        prune(
            &containers,
            |c| c.config.name != "db",
            |c| pruned.push(c.config.id.clone()),
        )
        .unwrap();
        assert_eq!(pruned.len(), 1, "the filter keeps db");
        assert_eq!(pruned[0], a.config.id);
        prune(&containers, |_| true, |c| pruned.push(c.config.id.clone())).unwrap();
        pruned.sort();
        let mut want = vec![a.config.id.clone(), b.config.id.clone()];
        want.sort();
        assert_eq!(pruned, want);
        assert!(containers.list().unwrap().is_empty());
        assert!(
            remove(&containers, &b, IfRunning::Refuse, Duration::ZERO, true)
                .unwrap()
                .is_none()
        );
    }
}
