//! `system df|check|prune|migrate|renumber|reset`, `version`, `info`,
//! `completion` and the man pages.

mod identity;
mod shell;

pub use identity::{info, version, InfoArgs, VersionArgs, VERSION_LINE};
pub use shell::{completion, generate_man, CompletionArgs, GenerateManArgs};

use std::collections::BTreeMap;

use clap::Args;
use serde_json::{json, Value};

use super::image::PruneArgs;
use crate::context::Context;
use crate::exit;
use crate::output::{self, Table};

/// `system df` flags.
#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show images, containers and volumes one by one.
    #[arg(short, long)]
    pub verbose: bool,
    /// Output format: json or a Go template over podman's fields (Type,
    /// Total, Active, Size, Reclaimable, RawSize, RawReclaimable).
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

/// Bytes of the regular files under `dir` (each inode once), as podman's
/// `du`-style sizes of container layers and volumes.
fn du(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut seen = std::collections::HashSet::new();
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file() && (m.nlink() == 1 || seen.insert((m.dev(), m.ino()))))
        .map(|m| m.len())
        .sum()
}

/// One named volume: its name, size, and how many containers use it.
struct VolumeUsage {
    name: String,
    size: u64,
    links: usize,
}

/// What `system df` counts.
struct Usage {
    images: Vec<(cairn_store::Image, u64, bool)>,
    containers: Vec<(cairn_engine::container::Container, u64, bool)>,
    volumes: Vec<VolumeUsage>,
}

fn usage(ctx: &Context, store: &cairn_store::Store) -> anyhow::Result<Usage> {
    use cairn_engine::container::{config::MountKind, Containers};
    let containers = Containers::new(ctx.root()).list()?;
    let in_use: std::collections::BTreeSet<_> = containers
        .iter()
        .filter_map(|c| c.config.image.manifest.clone())
        .collect();
    let images = store
        .images()?
        .into_iter()
        .map(|i| {
            let size = super::image::image_size(store, &i);
            let used = in_use.contains(i.digest());
            (i, size, used)
        })
        .collect();
    let mut volumes = Vec::new();
    if let Ok(entries) = std::fs::read_dir(ctx.root().join("volumes")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let links = containers
                .iter()
                .filter(|c| {
                    c.config
                        .mounts
                        .iter()
                        .any(|m| m.kind == MountKind::Volume && m.name.as_deref() == Some(&name))
                })
                .count();
            volumes.push(VolumeUsage {
                size: du(&e.path().join("_data")),
                name,
                links,
            });
        }
    }
    volumes.sort_by(|a, b| a.name.cmp(&b.name));
    let containers = containers
        .into_iter()
        .map(|c| {
            let size = du(&c.dir.join("upper"));
            let running = c.live().status.is_alive();
            (c, size, running)
        })
        .collect();
    Ok(Usage {
        images,
        containers,
        volumes,
    })
}

/// `cairn system df`: images, containers and volumes as podman counts
/// them: sizes uncompressed (an image's unpacked files, a container's
/// writable layer, a volume's data), active = in use by a container
/// (images, volumes) or running (containers), reclaimable = the rest.
/// The JSON adds cairn's store figures to the Images row.
pub fn df(ctx: &Context, a: DfArgs) -> anyhow::Result<u8> {
    let store = ctx.store()?;
    let u = usage(ctx, &store)?;
    let sum = |v: &mut dyn Iterator<Item = (u64, bool)>| {
        v.fold(
            (0usize, 0usize, 0u64, 0u64),
            |(n, act, size, rec), (s, active)| {
                (
                    n + 1,
                    act + usize::from(active),
                    size + s,
                    rec + if active { 0 } else { s },
                )
            },
        )
    };
    let img = sum(&mut u.images.iter().map(|(_, s, a)| (*s, *a)));
    let ctr = sum(&mut u.containers.iter().map(|(_, s, r)| (*s, *r)));
    let vol = sum(&mut u.volumes.iter().map(|v| (v.size, v.links > 0)));
    if a.format.as_deref() == Some("json") {
        let usage = store.disk_usage()?;
        let unpacker =
            cairn_unpacker::Unpacker::new(&store, cairn_unpacker::UnpackerOptions::default())?;
        let (objects, _) = unpacker.usage()?;
        let row = |t: &str, (n, act, size, rec): (usize, usize, u64, u64)| json!({"Type": t, "Total": n, "Active": act, "Size": size, "Reclaimable": rec});
        let mut images = row("Images", img);
        let extra = json!({"LogicalSize": usage.logical_bytes, "StoredSize": usage.stored_bytes,
            "UnreferencedSize": usage.reclaimable_bytes, "UnpackedStoredSize": objects});
        if let (Some(o), Value::Object(e)) = (images.as_object_mut(), extra) {
            o.extend(e);
        }
        let v = json!([images, row("Containers", ctr), row("Local Volumes", vol)]);
        println!("{}", output::json_indent(&v, 4));
        return Ok(0);
    }
    if a.verbose {
        print!("{}", df_verbose(&store, &u));
        return Ok(0);
    }
    let pct = |r: u64, s: u64| (r * 100 + s / 2).checked_div(s).unwrap_or(0);
    // podman's dfSummary: human sizes, and the raw ones.
    let rows: Vec<Value> = [("Images", img), ("Containers", ctr), ("Local Volumes", vol)]
        .into_iter()
        .map(|(name, (n, act, size, rec))| {
            json!({
                "Type": name,
                "Total": n,
                "Active": act,
                "Size": output::size_compact(size),
                "Reclaimable": format!("{} ({}%)", output::size_compact(rec), pct(rec, size)),
                "RawSize": size,
                "RawReclaimable": rec,
            })
        })
        .collect();
    let format = crate::format::Format::parse(a.format.as_deref(), "df")?;
    if let crate::format::Format::Template { .. } = format {
        let headers = crate::format::headers(&rows[0], &[]);
        print!("{}", format.render(&rows, &headers, false)?);
        return Ok(0);
    }
    let mut t = Table::default();
    t.row(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    for r in &rows {
        let s = |k: &str| match &r[k] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        t.row([
            s("Type"),
            s("Total"),
            s("Active"),
            s("Size"),
            s("Reclaimable"),
        ]);
    }
    print!("{}", t.render());
    Ok(0)
}

/// `system df -v`: podman's three sections.
fn df_verbose(store: &cairn_store::Store, u: &Usage) -> String {
    let since = |t: Option<&str>| output::ago(t).trim_end_matches(" ago").to_owned();
    let mut out = String::from("Images space usage:\n\n");
    let mut users: BTreeMap<&cairn_store::Digest, usize> = BTreeMap::new();
    for (i, _, _) in &u.images {
        for b in i.blobs().collect::<std::collections::BTreeSet<_>>() {
            *users.entry(b).or_default() += 1;
        }
    }
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
    for (i, size, _) in &u.images {
        // Layers other images also have, in the share of the image's
        // compressed bytes they make up, applied to its unpacked size.
        let blobs: std::collections::BTreeSet<_> = i.blobs().collect();
        let total: u64 = blobs.iter().map(|b| store.blob_size(b).unwrap_or(0)).sum();
        let shared: u64 = blobs
            .iter()
            .filter(|b| users.get(*b).copied().unwrap_or(0) > 1)
            .map(|b| store.blob_size(b).unwrap_or(0))
            .sum();
        let shared = (u128::from(*size) * u128::from(shared))
            .checked_div(u128::from(total))
            .unwrap_or(0) as u64;
        let n = u
            .containers
            .iter()
            .filter(|(c, _, _)| c.config.image.manifest.as_ref() == Some(i.digest()))
            .count();
        let names: Vec<(String, String)> = if i.names.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.names
                .iter()
                .map(|n| (n.name(), n.tag().unwrap_or("<none>").to_owned()))
                .collect()
        };
        for (repo, tag) in names {
            t.row([
                repo,
                tag,
                i.id().short().to_owned(),
                since(i.config.created.as_deref()),
                output::size_compact(*size),
                output::size_compact(shared),
                output::size_compact(size - shared.min(*size)),
                n.to_string(),
            ]);
        }
    }
    out.push_str(&t.render());
    out.push_str("\nContainers space usage:\n\n");
    let mut t = Table::default();
    t.row([
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "LOCAL VOLUMES",
        "SIZE",
        "CREATED",
        "STATUS",
        "NAMES",
    ]);
    for (c, size, _) in &u.containers {
        let cfg = &c.config;
        let volumes = cfg
            .mounts
            .iter()
            .filter(|m| m.kind == cairn_engine::container::config::MountKind::Volume)
            .count();
        t.row([
            cfg.id.short().to_owned(),
            cfg.image.id_hex().chars().take(12).collect(),
            cfg.process.cmd.join(" "),
            volumes.to_string(),
            output::size_compact(*size),
            since(Some(&cfg.created)),
            c.live().status.as_str().to_owned(),
            cfg.name.clone(),
        ]);
    }
    out.push_str(&t.render());
    out.push_str("\nLocal Volumes space usage:\n\n");
    let mut t = Table::default();
    t.row(["VOLUME NAME", "LINKS", "SIZE"]);
    for v in &u.volumes {
        t.row([
            v.name.clone(),
            v.links.to_string(),
            output::size_compact(v.size),
        ]);
    }
    out.push_str(&t.render());
    out
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
        .filter(|c| c.live().status.is_alive())
        .flat_map(|c| c.config.image.lower_dirs())
        .collect();
    let derived = unpacker.check(&cairn_unpacker::CheckOptions {
        repair: a.repair,
        full: a.full,
        busy,
    })?;
    let mut containers = check_containers(ctx, &store, a.repair)?;
    // Network leftovers: namespaces, pasta/slirp4netns processes and
    // addresses of containers that do not run (a monitor killed -9).
    let net = if a.repair {
        cairn_engine::network::setup::sweep(ctx.root())?
    } else {
        cairn_engine::network::setup::check(ctx.root())?
    };
    containers.problems.extend(
        net.into_iter()
            .map(|p| format!("{p}{}", if a.repair { " (released)" } else { "" })),
    );
    // Cgroups of containers that no longer run (a monitor killed -9).
    let all = cairn_engine::container::Containers::new(ctx.root());
    for p in cairn_engine::container::cgroups::strays(&all) {
        let fixed = match a.repair {
            false => String::new(),
            true => match cairn_engine::container::cgroups::remove_path(&p) {
                Ok(()) => " (removed)".into(),
                Err(e) => format!(" (could not be removed: {e})"),
            },
        };
        containers.problems.push(format!(
            "stray cgroup {p}: no running container owns it{fixed}"
        ));
    }
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
    // podman's question, with what cairn removes (no pods, networks or
    // build cache).
    if !a.force
        && !confirm(if a.all {
            "WARNING! This command removes:\n\t- all stopped containers\n\t- all images without at least one container associated with them\n\t- unreferenced blobs and abandoned downloads\n\n"
        } else {
            "WARNING! This command removes:\n\t- all stopped containers\n\t- all dangling images\n\t- unreferenced blobs and abandoned downloads\n\n"
        })?
    {
        return Ok(0);
    }
    let store = ctx.store()?;
    let containers = cairn_engine::container::Containers::new(ctx.root());
    let mut stopped = Vec::new();
    for c in containers.list()? {
        if !c.live().status.is_alive() && super::container::remove_unless_running(ctx, &c)? {
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

/// `system migrate` flags.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Accepted for podman compatibility with crun or runc (toolbox asks
    /// for crun on cgroup v2 hosts): cairn is its own runtime, so there is
    /// nothing to move; other runtimes are refused.
    #[arg(long, value_name = "RUNTIME")]
    pub new_runtime: Option<String>,
}

/// `system reset` flags.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// `cairn system migrate`: podman moves containers to a new runtime or
/// after an upgrade; cairn's containers need neither (one runtime, the
/// on-disk format read as it is), so it is a no-op once the store and the
/// container records are found readable. toolbox runs it after a version
/// change.
pub fn migrate(ctx: &Context, a: MigrateArgs) -> anyhow::Result<u8> {
    if let Some(rt) = &a.new_runtime {
        let name = std::path::Path::new(rt).file_name().unwrap_or_default();
        if name != "crun" && name != "runc" {
            return Err(exit::with_code(
                exit::ENGINE,
                format!("cairn does not support --new-runtime {rt} (cairn is its own runtime; crun and runc are accepted as no-ops)"),
            ));
        }
    }
    readable(ctx)?;
    Ok(0)
}

/// `cairn system renumber`: podman renumbers its lock table; cairn has no
/// lock table (one flock file per object), so a no-op once the store is
/// found readable.
pub fn renumber(ctx: &Context) -> anyhow::Result<u8> {
    readable(ctx)?;
    Ok(0)
}

/// The store's images and every container record can be read.
fn readable(ctx: &Context) -> anyhow::Result<()> {
    let store = ctx.store()?;
    store.images()?;
    cairn_engine::container::Containers::new(ctx.root()).list()?;
    Ok(())
}

/// podman's confirmation, on stdout: the warning, then
/// `Are you sure you want to continue? [y/N] `; true only for an answer
/// starting with y or Y (podman's rule).
fn confirm(warning: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead as _, Write as _};
    let mut out = std::io::stdout().lock();
    write!(out, "{warning}Are you sure you want to continue? [y/N] ")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_start().starts_with(['y', 'Y']))
}

/// `cairn system reset`: every container (stopped first), image, volume
/// and the store itself, after podman's question unless `-f`.
pub fn reset(ctx: &Context, a: ResetArgs) -> anyhow::Result<u8> {
    let root = ctx.root().to_path_buf();
    let warning = format!(
        "WARNING! This will remove:\n        - all containers\n        - all images\n        - all volumes\n        - the graphRoot directory: {:?}\n",
        root.display().to_string()
    );
    if !a.force && !confirm(&warning)? {
        return Ok(0);
    }
    if !root.exists() {
        return Ok(0);
    }
    let containers = cairn_engine::container::Containers::new(&root);
    for mut c in containers.list()? {
        cairn_engine::container::runtime::stop(&mut c, std::time::Duration::from_secs(10))?;
        super::container::remove_unless_running(ctx, &c)?;
    }
    // Image roots and container trees hold files owned by mapped ids and
    // read-only directories: the engine's removal handles both.
    cairn_engine::container::remove_tree(&root)?;
    Ok(0)
}
