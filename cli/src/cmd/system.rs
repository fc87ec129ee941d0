//! `system df`, `system check`, `system prune`, `version`.

use std::collections::BTreeMap;

use clap::Args;
use serde_json::json;

use super::image::PruneArgs;
use crate::context::Context;
use crate::exit;
use crate::output::{self, Table};

/// `system df` flags.
#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show logical and stored bytes per image.
    #[arg(short, long)]
    pub verbose: bool,
    /// Output format: table or json.
    #[arg(long)]
    pub format: Option<String>,
}

/// `system check` flags.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Remove what is corrupt (blobs and the refs that need them, objects,
    /// changesets, image roots, container leftovers) and rebuild image roots
    /// from stored blobs; nothing is fetched: it says what to pull.
    #[arg(short, long)]
    pub repair: bool,
    /// Compare every entry of every image root with its plan (default: a sample).
    #[arg(long)]
    pub full: bool,
}

/// `version` flags.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Output format: json.
    #[arg(short, long)]
    pub format: Option<String>,
}

/// `info` flags.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Output format: json or a Go template.
    #[arg(short, long)]
    pub format: Option<String>,
}

/// `cairn system df`.
pub fn df(ctx: &Context, a: DfArgs) -> anyhow::Result<u8> {
    let store = ctx.store()?;
    let usage = store.disk_usage()?;
    let images = store.images()?;
    let unpacker =
        cairn_unpacker::Unpacker::new(&store, cairn_unpacker::UnpackerOptions::default())?;
    let (objects, changesets) = unpacker.usage()?;
    let unpacked_logical: u64 = images
        .iter()
        .map(|i| super::image::image_size(&store, i))
        .sum();
    // No image is used by a container yet, so every image is reclaimable.
    let size = usage.stored_bytes + usage.reclaimable_bytes + objects + changesets;
    let reclaimable = size;
    if a.format.as_deref() == Some("json") {
        let v = json!([
            {"Type": "Images", "Total": usage.images, "Active": 0, "Size": size,
             "Reclaimable": reclaimable, "LogicalSize": usage.logical_bytes,
             "StoredSize": usage.stored_bytes, "UnreferencedSize": usage.reclaimable_bytes,
             "UnpackedLogicalSize": unpacked_logical, "UnpackedStoredSize": objects},
            {"Type": "Containers", "Total": 0, "Active": 0, "Size": 0, "Reclaimable": 0},
            {"Type": "Local Volumes", "Total": 0, "Active": 0, "Size": 0, "Reclaimable": 0},
        ]);
        println!("{}", output::json_indent(&v, 4));
        return Ok(0);
    }
    if a.verbose {
        let mut users: BTreeMap<&cairn_store::Digest, usize> = BTreeMap::new();
        for i in &images {
            let mut seen = std::collections::BTreeSet::new();
            for b in i.blobs() {
                if seen.insert(b) {
                    *users.entry(b).or_default() += 1;
                }
            }
        }
        println!("Images space usage:\n");
        let mut t = Table::default();
        t.row([
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS",
        ]);
        for i in &images {
            let mut shared = 0;
            let mut unique = 0;
            let mut seen = std::collections::BTreeSet::new();
            for b in i.blobs() {
                if !seen.insert(b) {
                    continue;
                }
                let s = store.blob_size(b).unwrap_or(0);
                if users.get(b).copied().unwrap_or(0) > 1 {
                    shared += s;
                } else {
                    unique += s;
                }
            }
            let (repo, tag) = match i.names.first() {
                Some(n) => (n.name(), n.tag().unwrap_or("<none>").to_owned()),
                None => ("<none>".into(), "<none>".into()),
            };
            t.row([
                repo,
                tag,
                i.id().short().to_owned(),
                output::ago(i.config.created.as_deref()),
                output::size_compact(i.size()),
                output::size_compact(shared),
                output::size_compact(unique),
                "0".into(),
            ]);
        }
        print!("{}", t.render());
        println!(
            "\nBlobs: logical {} (every image counted whole), stored {} (shared blobs once), unreferenced {}",
            output::size_compact(usage.logical_bytes),
            output::size_compact(usage.stored_bytes),
            output::size_compact(usage.reclaimable_bytes),
        );
        println!(
            "Unpacked: logical {} (every image root counted whole), stored {} (identical files once)\n",
            output::size_compact(unpacked_logical),
            output::size_compact(objects),
        );
        return Ok(0);
    }
    let pct = |r: u64, s: u64| (r * 100 + s / 2).checked_div(s).unwrap_or(0);
    let mut t = Table::default();
    t.row(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    t.row([
        "Images".to_owned(),
        usage.images.to_string(),
        "0".into(),
        output::size_compact(size),
        format!(
            "{} ({}%)",
            output::size_compact(reclaimable),
            pct(reclaimable, size)
        ),
    ]);
    t.row(["Containers", "0", "0", "0B", "0B (0%)"]);
    t.row(["Local Volumes", "0", "0", "0B", "0B (0%)"]);
    print!("{}", t.render());
    Ok(0)
}

/// `cairn system check`.
pub fn check(ctx: &Context, a: CheckArgs) -> anyhow::Result<u8> {
    let store = ctx.store()?;
    let report = store.check(a.repair)?;
    let root = store.root().display();
    let unpacker =
        cairn_unpacker::Unpacker::new(&store, cairn_unpacker::UnpackerOptions::default())?;
    // A running container has its image root mounted: never replace it.
    let busy = cairn_engine::container::Containers::new(ctx.root())
        .list()?
        .into_iter()
        .filter(|c| c.live().status == cairn_engine::container::Status::Running)
        .flat_map(|c| c.config.image.lower_dirs())
        .collect();
    let derived = unpacker.check(&cairn_unpacker::CheckOptions {
        repair: a.repair,
        full: a.full,
        busy,
    })?;
    let containers = check_containers(ctx, &store, a.repair)?;
    if report.is_clean() && derived.is_clean() && containers.problems.is_empty() {
        println!(
            "{root}: {} blobs ({}) and {} refs verified, {} objects ({}) in {} changesets, {} entries of {} image roots, {} containers: no problems found{}",
            report.blobs_checked,
            output::size_compact(report.bytes_checked),
            report.refs_checked,
            derived.objects_checked,
            output::size_compact(derived.object_bytes),
            derived.changesets_checked,
            derived.entries_checked,
            derived.roots_checked,
            containers.checked,
            if report.partials > 0 {
                format!(" ({} partial downloads kept for resuming)", report.partials)
            } else {
                String::new()
            }
        );
        return Ok(0);
    }
    for d in &report.corrupt_blobs {
        println!("corrupt blob: {d} (content does not match its digest)");
    }
    for f in &report.stray_files {
        println!("stray file: {f} (not named by a digest)");
    }
    for (name, why) in &report.broken_refs {
        println!("broken image: {name}: {why}");
    }
    for name in &derived.bad_changesets {
        println!("unreadable changeset: layers/{name} (decoded again when needed)");
    }
    for (id, why) in &derived.corrupt_objects {
        println!("corrupt object: objects/{}/{}: {why}", &id[..2], &id[2..]);
    }
    for (dir, why) in &derived.bad_roots {
        println!("damaged image root: images/{dir}: {why}");
    }
    for p in &containers.problems {
        println!("container: {p}");
    }
    if a.repair {
        println!(
            "repaired: removed {} corrupt blobs, {} stray files, {} broken refs, {} corrupt objects, {} changesets; rebuilt {} image roots; {} container fixes",
            report.corrupt_blobs.len(),
            report.stray_files.len(),
            report.broken_refs.len(),
            if derived.busy.is_empty() { derived.corrupt_objects.len() } else { 0 },
            derived.bad_changesets.len(),
            derived.rebuilt.len(),
            containers.problems.len(),
        );
        for (name, _) in &report.broken_refs {
            if !name.starts_with("<none>") {
                println!("to restore it: cairn pull {name}");
            }
        }
        if !derived.busy.is_empty() {
            return Err(exit::with_code(
                1,
                format!(
                    "image roots {} are damaged but in use by running containers: stop them and run `cairn system check --repair` again",
                    derived.busy.join(", ")
                ),
            ));
        }
        return Ok(0);
    }
    Err(exit::with_code(
        1,
        format!("{root}: the store has problems; `cairn system check --repair` removes the damaged parts"),
    ))
}

/// Containers' part of the check.
struct ContainerCheck {
    checked: usize,
    problems: Vec<String>,
}

/// Each container's config and state parse, its image is in the store and
/// its image root, upper and work dirs exist; leftovers of interrupted
/// creates and removals. Repair removes leftovers and rebuilds missing
/// image roots from stored blobs.
fn check_containers(
    ctx: &Context,
    store: &cairn_store::Store,
    repair: bool,
) -> anyhow::Result<ContainerCheck> {
    use cairn_engine::container::{Container, Containers};
    let containers = Containers::new(ctx.root());
    let mut out = ContainerCheck {
        checked: 0,
        problems: Vec::new(),
    };
    let Ok(entries) = std::fs::read_dir(containers.dir()) else {
        return Ok(out);
    };
    let _names = containers.lock_names()?;
    let images = store.images()?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") || name.starts_with(".rm-") {
            out.problems.push(format!(
                "{name}: left over by an interrupted create or rm{}",
                if repair { " (removed)" } else { "" }
            ));
            if repair {
                cairn_engine::container::remove_tree(&e.path())?;
            }
            continue;
        }
        if !cairn_engine::container::is_id(&name) {
            continue;
        }
        out.checked += 1;
        let c = match Container::load(&e.path()) {
            Ok(c) => c,
            Err(err) => {
                out.problems.push(format!(
                    "{name}: {} (remove it with `cairn rm -f {name}`)",
                    err.with_causes()
                ));
                continue;
            }
        };
        let cname = &c.config.name;
        let Some(image) = images
            .iter()
            .find(|i| c.config.image.manifest.as_ref() == Some(i.digest()))
        else {
            out.problems.push(format!(
                "{cname}: its image {} is not in the store: pull it again",
                c.config.image.name
            ));
            continue;
        };
        for d in ["upper", "work"] {
            if !c.dir.join(d).is_dir() {
                out.problems.push(format!("{cname}: {d}/ is missing"));
            }
        }
        let lowers = c.config.image.lower_dirs();
        if let Some(missing) = lowers.iter().find(|l| !l.is_dir()) {
            out.problems.push(format!(
                "{cname}: image root {} is missing{}",
                missing.display(),
                if repair { " (rebuilt)" } else { "" }
            ));
            if repair {
                let mut opts = cairn_unpacker::UnpackerOptions::default();
                if let Some(m) = &c.config.idmap {
                    (opts.decode.uid_map, opts.decode.gid_map) = m.unpacker_maps()?;
                }
                cairn_unpacker::Unpacker::new(store, opts)?.image_root(image)?;
            }
        }
    }
    Ok(out)
}

/// `cairn system prune`.
pub fn prune(ctx: &Context, a: PruneArgs) -> anyhow::Result<u8> {
    if !a.force
        && !super::image::confirm(if a.all {
            "WARNING! This command removes:\n\t- all images without at least one container associated with them\n\t- unreferenced blobs and abandoned downloads"
        } else {
            "WARNING! This command removes:\n\t- all dangling images\n\t- unreferenced blobs and abandoned downloads"
        })?
    {
        return Ok(0);
    }
    let store = ctx.store()?;
    let containers = cairn_engine::container::Containers::new(ctx.root());
    let mut stopped = Vec::new();
    for c in containers.list()? {
        if !matches!(
            c.live().status,
            cairn_engine::container::Status::Running | cairn_engine::container::Status::Stopping
        ) && super::container::remove_unless_running(ctx, &c)?
        {
            stopped.push(c.config.id.to_string());
        }
    }
    if !stopped.is_empty() {
        println!("Deleted Containers");
        for id in &stopped {
            println!("{id}");
        }
    }
    let (removed, freed) =
        store.prune_images(a.all, |i| super::image::in_use_now(&containers, i))?;
    let freed = freed + super::image::derived_gc_all(&store)?;
    if !removed.is_empty() {
        println!("Deleted Images");
        for id in removed {
            println!("{}", id.hex());
        }
    }
    println!("Total reclaimed space: {}", output::size_compact(freed));
    Ok(0)
}

/// `cairn version`: podman's Client section (cairn has no server), as a
/// table, JSON, or a Go template (`{{.Client.Version}}`).
pub fn version(a: VersionArgs) -> anyhow::Result<u8> {
    let p = cairn_store::media::host_platform();
    let version = env!("CARGO_PKG_VERSION");
    let v = json!({"Client": {
        "APIVersion": version,
        "Version": version,
        "GoVersion": "",
        "GitCommit": "",
        "BuiltTime": "",
        "Built": 0,
        "OsArch": format!("{}/{}", p.os, p.architecture),
        "Os": p.os,
    }});
    match crate::format::Format::parse(a.format.as_deref(), "")? {
        crate::format::Format::Default => {
            let mut t = Table::default();
            t.row(["Version:", version]);
            t.row(["API Version:", version]);
            t.row(["OS/Arch:", &format!("{}/{}", p.os, p.architecture)]);
            print!("{}", t.render());
        }
        crate::format::Format::Json => println!("{}", output::json_indent(&v, 4)),
        f => print!("{}", f.render(&[v], &json!({}), true)?),
    }
    Ok(0)
}

/// `cairn info`: the host, the store and the containers, in podman's shape
/// (YAML by default, `--format json` or a Go template).
pub fn info(ctx: &Context, a: InfoArgs) -> anyhow::Result<u8> {
    let p = cairn_store::media::host_platform();
    let store = ctx.store()?;
    let containers = cairn_engine::container::Containers::new(ctx.root()).list()?;
    let count = |s: cairn_engine::container::Status| {
        containers.iter().filter(|c| c.live().status == s).count()
    };
    let running = count(cairn_engine::container::Status::Running);
    let uname = nix::sys::utsname::uname().ok();
    let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uname
            .as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let rootless = !nix::unistd::geteuid().is_root();
    let v = json!({
        "host": {
            "arch": p.architecture,
            "os": p.os,
            "kernel": field(|u| u.release()),
            "hostname": field(|u| u.nodename()),
            "cgroupManager": "cgroupfs",
            "ociRuntime": {"name": "cairn", "path": cairn_engine::container::spec::helper("cairn-monitor").map(|p| p.display().to_string()).unwrap_or_default(), "version": env!("CARGO_PKG_VERSION")},
            "security": {
                "rootless": rootless,
                "selinuxEnabled": false,
                "apparmorEnabled": false,
                "seccompEnabled": cairn_engine::container::seccomp::kernel_supports(),
                "seccompProfilePath": cairn_engine::container::seccomp::default_profile_path(),
            },
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        },
        "store": {
            "graphRoot": ctx.root(),
            "graphDriverName": "overlay",
            "containerStore": {
                "number": containers.len(),
                "paused": 0,
                "running": running,
                "stopped": containers.len() - running,
            },
            "imageStore": {"number": store.images()?.len()},
        },
        "version": {
            "APIVersion": env!("CARGO_PKG_VERSION"),
            "Version": env!("CARGO_PKG_VERSION"),
            "OsArch": format!("{}/{}", p.os, p.architecture),
        },
    });
    match crate::format::Format::parse_inspect(a.format.as_deref()) {
        _ if a.format.is_none() => print!("{}", yaml(&v, 0)),
        Ok(crate::format::Format::Json | crate::format::Format::Default) => {
            println!("{}", output::json_indent(&v, 2))
        }
        Ok(f) => print!("{}", f.render_all(&serde_json::Value::Array(vec![v]))?),
        Err(e) => return Err(e),
    }
    Ok(0)
}

/// A small YAML rendering of JSON objects (what `podman info` prints).
fn yaml(v: &serde_json::Value, depth: usize) -> String {
    use serde_json::Value;
    let pad = "  ".repeat(depth);
    let mut out = String::new();
    if let Value::Object(m) = v {
        for (k, v) in m {
            match v {
                Value::Object(_) => {
                    out.push_str(&format!("{pad}{k}:\n"));
                    out.push_str(&yaml(v, depth + 1));
                }
                Value::String(s) => out.push_str(&format!("{pad}{k}: {s}\n")),
                other => out.push_str(&format!("{pad}{k}: {other}\n")),
            }
        }
    }
    out
}
