//! stop, restart, kill, rm, container prune/exists/inspect, rename, wait,
//! port and init: the verbs that act on existing containers.

use std::io::{BufRead as _, Write as _};
use std::time::Duration;

use cairn_engine::container::spec::Attach;
use cairn_engine::container::{runtime, Containers, Status};
use cairn_engine::lifecycle::{self, IfRunning};

use super::args::{
    ContainerExistsArgs, ContainerInspectArgs, ContainerPruneArgs, InitArgs, KillArgs, PortArgs,
    RenameArgs, RestartArgs, RmArgs, StopArgs, WaitArgs,
};
use super::filters::Filters;
use super::targets::{shown_name, Selection, Targets};
use super::{no_such, remove, usage};
use crate::context::Context;
use crate::exit;

/// Prints podman's errors for `missing` (the last one as the failure) once
/// the others were acted on; the exit code.
fn finish(missing: &[String], failed: bool, code: u8) -> anyhow::Result<u8> {
    let Some((last, rest)) = missing.split_last() else {
        return Ok(if failed { code } else { 0 });
    };
    for m in rest {
        eprintln!("Error: {}", no_such(m));
    }
    Err(exit::with_code(code, no_such(last)))
}

/// `cairn stop`.
pub fn stop(ctx: &Context, a: StopArgs) -> anyhow::Result<u8> {
    let containers = Containers::new(ctx.root());
    let Targets { found, missing } = Selection {
        names: &a.containers,
        cidfiles: &a.cidfile,
        latest: a.latest,
        all: a.all,
        ignore: a.ignore,
        filters: &a.filters,
    }
    .resolve(&containers)?;
    let mut failed = false;
    let named = !a.containers.is_empty() || !a.cidfile.is_empty();
    for mut c in found {
        if !named && !c.live().status.is_alive() {
            continue;
        }
        let t = Duration::from_secs(a.time.unwrap_or(c.config.stop_timeout));
        match runtime::stop(&mut c, t) {
            Ok(()) => println!("{}", shown_name(&a.containers, &c)),
            Err(e) => {
                failed = true;
                exit::report(&e.into());
            }
        }
    }
    finish(&missing, failed, exit::ENGINE)
}

/// `cairn restart`: stop (if running), then start.
pub fn restart(ctx: &Context, a: RestartArgs) -> anyhow::Result<u8> {
    let containers = Containers::new(ctx.root());
    let Targets { found, missing } = Selection {
        names: &a.containers,
        cidfiles: &a.cidfile,
        latest: a.latest,
        all: a.all,
        ignore: false,
        filters: &a.filters,
    }
    .resolve(&containers)?;
    let mut failed = false;
    for mut c in found {
        if a.running && c.live().status != Status::Running {
            continue;
        }
        let t = Duration::from_secs(a.time.unwrap_or(c.config.stop_timeout));
        let r = runtime::stop(&mut c, t).and_then(|()| runtime::start(&mut c, Attach::default()));
        match r {
            Ok(_) => println!("{}", shown_name(&a.containers, &c)),
            Err(e) => {
                failed = true;
                exit::report(&e.into());
            }
        }
    }
    finish(&missing, failed, exit::ENGINE)
}

/// `cairn kill`.
pub fn kill(ctx: &Context, a: KillArgs) -> anyhow::Result<u8> {
    let sig = runtime::parse_signal(&a.signal)
        .ok_or_else(|| usage(format!("invalid signal: {}", a.signal)))?;
    let containers = Containers::new(ctx.root());
    let Targets { found, missing } = Selection {
        names: &a.containers,
        cidfiles: &a.cidfile,
        latest: a.latest,
        all: a.all,
        ..Selection::default()
    }
    .resolve(&containers)?;
    let mut failed = false;
    let single = a.containers.len() + a.cidfile.len() <= 1 && missing.is_empty();
    for c in found {
        if a.all && c.live().status != Status::Running {
            continue;
        }
        match runtime::signal(&c, sig) {
            Ok(()) => println!("{}", shown_name(&a.containers, &c)),
            Err(e) if single => return Err(e.into()),
            Err(e) => {
                failed = true;
                exit::report(&e.into());
            }
        }
    }
    finish(&missing, failed, exit::ENGINE)
}

/// `cairn rm`: `-f` also means a missing container is no error (podman's
/// `rm -f NOSUCH` exits 0 silently, so `set -e` cleanups work).
pub fn rm(ctx: &Context, a: RmArgs) -> anyhow::Result<u8> {
    if a.after_exit {
        for id in &a.containers {
            super::rm_after_exit(ctx, id)?;
        }
        return Ok(0);
    }
    let containers = Containers::new(ctx.root());
    // An rm killed after its rename left `.rm-<id>`: finish it.
    {
        let _names = containers.lock_names()?;
        containers.sweep_temp();
        for (path, why) in cairn_engine::container::cgroups::remove_strays(&containers) {
            tracing::warn!("remove the stray cgroup {path}: {why}");
        }
    }
    let Targets { found, missing } = Selection {
        names: &a.containers,
        cidfiles: &a.cidfile,
        latest: a.latest,
        all: a.all,
        ignore: a.ignore || a.force,
        filters: &a.filters,
    }
    .resolve(&containers)?;
    let mut code = 0u8;
    let mut errors = Vec::new();
    for c in found {
        let t = Duration::from_secs(a.time.unwrap_or(c.config.stop_timeout));
        let if_running = if a.force {
            IfRunning::Stop
        } else {
            IfRunning::Refuse
        };
        match remove(ctx, &c, if_running, t, a.volumes) {
            Ok(_) => println!("{}", shown_name(&a.containers, &c)),
            Err(e) => {
                code = exit::code_of(&e);
                errors.push(e);
            }
        }
    }
    for m in &missing {
        errors.push(exit::with_code(1, no_such(m)));
        if code == 0 {
            code = 1;
        }
    }
    if let Some(last) = errors.pop() {
        for e in &errors {
            exit::report(e);
        }
        return Err(exit::with_code(code, last.to_string()));
    }
    Ok(0)
}

/// podman's prune question, on stdout: whether the answer starts with `y`.
/// End of input is podman's `Error: EOF`.
pub(crate) fn confirm(warning: &str) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    write!(out, "{warning}\nAre you sure you want to continue? [y/N] ")?;
    out.flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        return Err(usage("EOF"));
    }
    Ok(line.starts_with(['y', 'Y']))
}

/// `cairn container prune`: asks first unless `-f`.
pub fn prune(ctx: &Context, a: ContainerPruneArgs) -> anyhow::Result<u8> {
    let mut labels = Vec::new();
    let mut until = Vec::new();
    for f in &a.filters {
        match f.split_once('=') {
            Some(("until", v)) => until.push(crate::cmd::parse_time(v)?),
            _ => labels.push(f.clone()),
        }
    }
    let labels = Filters::parse_labels(&labels)?;
    if !a.force && !confirm("WARNING! This will remove all non running containers.")? {
        return Ok(0);
    }
    let containers = Containers::new(ctx.root());
    let selected = |c: &cairn_engine::container::Container| {
        let created = chrono::DateTime::parse_from_rfc3339(&c.config.created)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .unwrap_or(0);
        labels.matches(c, &c.live()) && until.iter().all(|u| created < *u)
    };
    lifecycle::prune(&containers, selected, |c| println!("{}", c.config.id))?;
    Ok(0)
}

/// `cairn container exists`: 0 if it does, 1 if not.
pub fn exists(ctx: &Context, a: ContainerExistsArgs) -> anyhow::Result<u8> {
    let containers = Containers::new(ctx.root());
    Ok(if containers.try_find(&a.container)?.is_some() {
        0
    } else {
        1
    })
}

/// `cairn container inspect`: image.rs's inspect restricted to containers,
/// with `--latest`.
pub fn inspect(ctx: &Context, a: ContainerInspectArgs) -> anyhow::Result<u8> {
    if a.size {
        return Err(usage(
            "cairn does not support --size (container inspect: sizes are shown by `ps --size`)",
        ));
    }
    let mut names = a.names;
    if a.latest {
        if !names.is_empty() {
            return Err(usage("--latest and containers cannot be used together"));
        }
        let containers = Containers::new(ctx.root());
        let last = containers
            .list()?
            .pop()
            .ok_or_else(|| usage("no containers to inspect: --latest found none"))?;
        names.push(last.config.id.to_string());
    }
    if names.is_empty() {
        return Err(usage("inspect requires at least one container name or id"));
    }
    crate::cmd::image::inspect(
        ctx,
        crate::cmd::image::InspectArgs {
            names,
            kind: "container".into(),
            format: a.format,
            latest: false,
            size: false,
        },
    )
}

/// `cairn rename`.
pub fn rename(ctx: &Context, a: RenameArgs) -> anyhow::Result<u8> {
    lifecycle::rename(&Containers::new(ctx.root()), &a.container, &a.name)?;
    Ok(0)
}

/// `cairn wait`: until each container reaches one of the conditions
/// (default: stopped); prints its exit code (-1 for a condition other than
/// stopped, as podman does).
pub fn wait(ctx: &Context, a: WaitArgs) -> anyhow::Result<u8> {
    let mut want: Vec<Status> = Vec::new();
    for cond in &a.condition {
        for c in cond.split(',') {
            want.push(match c.trim() {
                "stopped" | "exited" => Status::Exited,
                "running" => Status::Running,
                "created" | "configured" | "initialized" => Status::Created,
                "stopping" => Status::Stopping,
                "paused" => Status::Paused,
                other => {
                    return Err(usage(format!(
                        "invalid --condition {other:?}: use stopped, exited, running, created, stopping or paused"
                    )))
                }
            });
        }
    }
    if want.is_empty() {
        want.push(Status::Exited);
    }
    let interval =
        crate::cmd::parse_duration(&a.interval).map_err(|e| usage(format!("--interval: {e}")))?;
    let containers = Containers::new(ctx.root());
    let Targets { found, missing } = Selection {
        names: &a.containers,
        latest: a.latest,
        ignore: a.ignore,
        ..Selection::default()
    }
    .resolve(&containers)?;
    for mut c in found {
        let live = lifecycle::wait_for(&mut c, &want, interval)?;
        let code = if live.status == Status::Exited {
            live.exit_code
        } else {
            -1
        };
        println!("{code}");
    }
    finish(&missing, false, exit::ENGINE)
}

/// `cairn port`: cairn publishes no ports yet (its containers share the
/// host's network or have none), so every container has no mapping: podman
/// prints nothing for a container without ports and exits 0.
pub fn port(ctx: &Context, a: PortArgs) -> anyhow::Result<u8> {
    let containers = Containers::new(ctx.root());
    if a.all && !a.args.is_empty() {
        return Err(usage("no arguments are needed with --all"));
    }
    let (targets, wanted) = if a.all {
        (containers.list()?, None)
    } else if a.latest {
        let mut all = containers.list()?;
        all.sort_by(|x, y| x.config.created.cmp(&y.config.created));
        let Some(last) = all.pop() else {
            return Err(usage("no containers to act on: --latest found none"));
        };
        if a.args.len() > 1 {
            return Err(usage("`port` accepts at most one argument with --latest"));
        }
        (vec![last], a.args.first().cloned())
    } else {
        let Some((name, rest)) = a.args.split_first() else {
            return Err(usage("you must supply a running container name or id"));
        };
        if rest.len() > 1 {
            return Err(usage("`port` accepts at most two arguments"));
        }
        (vec![containers.find(name)?], rest.first().cloned())
    };
    let wanted = wanted.map(|w| {
        if w.contains('/') {
            w
        } else {
            format!("{w}/tcp")
        }
    });
    let mut found = false;
    // podman's error for a port not found is for a container that has
    // published ports (one without any prints nothing).
    let mut any = false;
    for c in &targets {
        // podman: only running containers have their ports published.
        if !c.live().status.is_alive() {
            continue;
        }
        any |= !c.config.ports.is_empty();
        for (ctr, ip, host) in cairn_engine::network::ports::expanded(&c.config.ports) {
            let ip = if ip.is_empty() {
                "0.0.0.0".to_owned()
            } else {
                ip
            };
            match &wanted {
                Some(w) if *w != ctr => continue,
                Some(_) => println!("{ip}:{host}"),
                None if a.all => println!("{}\t{ctr} -> {ip}:{host}", c.config.id.short()),
                None => println!("{ctr} -> {ip}:{host}"),
            }
            found = true;
        }
    }
    if let (Some(w), true, false) = (&wanted, any, found) {
        return Err(usage(format!("failed to find published port {w:?}")));
    }
    Ok(0)
}

/// `cairn init`: refused by name. A cairn container has no separate
/// "initialized" state: its root is mounted and its namespaces made by
/// `start`, in the same helper chain that runs the command.
pub fn init(_ctx: &Context, _a: InitArgs) -> anyhow::Result<u8> {
    Err(usage(
        "cairn does not support init (a cairn container is set up by start, in the same step that runs its command; use start)",
    ))
}
