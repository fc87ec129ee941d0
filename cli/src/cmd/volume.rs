//! `cairn volume create|ls|inspect|rm|prune|exists`, as podman 4.3 (its
//! `local` driver): words, exit codes and JSON shapes taken from podman
//! here. The volumes themselves are the engine's
//! ([`cairn_engine::volume`]).

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::context::Context;
use crate::exit;
use crate::format::{self, Format};
use crate::output::{self, Table};
use cairn_engine::container::config::MountKind;
use cairn_engine::container::Containers;
use cairn_engine::lifecycle::{self, IfRunning};
use cairn_engine::volume::{Volume, Volumes};

/// `cairn volume …`.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a new volume.
    Create(CreateArgs),
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes.
    Inspect(InspectArgs),
    /// Remove one or more volumes.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused volumes.
    Prune(PruneArgs),
    /// Check if the given volume exists.
    Exists(ExistsArgs),
}

/// `volume create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Specify volume driver name (only "local").
    #[arg(long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume.
    #[arg(short = 'l', long = "label", value_delimiter = ',')]
    pub label: Vec<String>,
    /// Not supported: cairn's volumes are plain directories (no type=, device= or o=).
    #[arg(short = 'o', long = "opt", hide = true)]
    pub opt: Vec<String>,
    /// The volume's name (random when not given).
    pub name: Option<String>,
}

/// `volume ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Filter volume output (name=, label=, driver=, dangling=).
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format volume output using Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// Do not print headers.
    #[arg(long)]
    pub noheading: bool,
    /// Print volume output in quiet mode.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `volume inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Inspect all volumes.
    #[arg(short, long)]
    pub all: bool,
    /// Format volume output using Go template.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Volumes.
    pub names: Vec<String>,
}

/// `volume rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Remove all volumes.
    #[arg(short, long)]
    pub all: bool,
    /// Remove a volume by force, even if it is being used by a container.
    #[arg(short, long)]
    pub force: bool,
    /// Seconds to wait for running containers to stop before killing the container.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub time: u64,
    /// Volumes.
    pub names: Vec<String>,
}

/// `volume prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Provide filter values (label=, until=).
    #[arg(long)]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// `volume exists`.
#[derive(Debug, Args)]
pub struct ExistsArgs {
    /// The volume.
    pub name: String,
}

/// Runs one `volume` verb.
pub fn run(ctx: &Context, cmd: VolumeCommand) -> anyhow::Result<u8> {
    match cmd {
        VolumeCommand::Create(a) => create(ctx, a),
        VolumeCommand::Ls(a) => ls(ctx, a),
        VolumeCommand::Inspect(a) => inspect(ctx, a),
        VolumeCommand::Rm(a) => rm(ctx, a),
        VolumeCommand::Prune(a) => prune(ctx, a),
        VolumeCommand::Exists(a) => exists(ctx, a),
    }
}

fn volumes(ctx: &Context) -> Volumes {
    Volumes::new(cairn_store::StoreDir::Volumes.under(ctx.root()))
}

/// A volume as podman's inspect and `ls --format` show it.
fn volume_json(v: &Volume, mount_count: usize) -> Value {
    json!({
        "Name": v.name,
        "Driver": v.driver,
        "Mountpoint": v.mountpoint.display().to_string(),
        "CreatedAt": v.created_at,
        "Labels": v.labels,
        "Scope": "local",
        "Options": v.options,
        "MountCount": mount_count,
        "NeedsCopyUp": true,
        "NeedsChown": true,
    })
}

fn create(ctx: &Context, a: CreateArgs) -> anyhow::Result<u8> {
    if a.driver != "local" {
        return Err(exit::with_code(
            exit::ENGINE,
            format!(
                "cairn does not support --driver {} (only local: volumes are directories in the store)",
                a.driver
            ),
        ));
    }
    if !a.opt.is_empty() {
        return Err(exit::with_code(
            exit::ENGINE,
            "cairn does not support --opt (volumes are plain directories: no type=, device= or o=)",
        ));
    }
    let mut labels = BTreeMap::new();
    for l in a.label.iter().filter(|l| !l.is_empty()) {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_owned(), v.to_owned());
    }
    match volumes(ctx).create(a.name.as_deref(), labels, BTreeMap::new())? {
        Some(v) => {
            println!("{}", v.name);
            Ok(0)
        }
        None => {
            let name = a.name.unwrap_or_default();
            Err(exit::with_code(
                exit::ENGINE,
                format!("volume with name {name} already exists: volume already exists"),
            ))
        }
    }
}

/// One `--filter KEY=VALUE` of ls or prune: the same key ORed, different
/// keys ANDed (podman's rule).
struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    fn parse(given: &[String], allowed: &[&str]) -> anyhow::Result<Filters> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in given {
            let (k, v) = f.split_once('=').unwrap_or((f, ""));
            if !allowed.contains(&k) {
                return Err(exit::with_code(
                    exit::ENGINE,
                    format!(
                        "{k:?} is an invalid volume filter: use {}",
                        allowed.join(", ")
                    ),
                ));
            }
            map.entry(k.to_owned()).or_default().push(v.to_owned());
        }
        Ok(Filters(map))
    }

    fn matches(&self, v: &Volume, users: Use) -> anyhow::Result<bool> {
        let users = users.containers;
        for (key, values) in &self.0 {
            let mut any = false;
            for val in values {
                any |= match key.as_str() {
                    "name" => v.name.contains(val.as_str()),
                    "driver" => v.driver == *val,
                    "label" => match val.split_once('=') {
                        Some((k, want)) => v.labels.get(k).is_some_and(|have| have == want),
                        None => v.labels.contains_key(val.as_str()),
                    },
                    "dangling" => match val.as_str() {
                        "true" | "1" => users == 0,
                        "false" | "0" => users > 0,
                        _ => {
                            return Err(exit::with_code(
                                exit::ENGINE,
                                format!("invalid filter dangling={val:?}: use true or false"),
                            ))
                        }
                    },
                    "until" => {
                        let until = super::parse_time(val)?;
                        chrono::DateTime::parse_from_rfc3339(&v.created_at)
                            .ok()
                            .and_then(|t| t.timestamp_nanos_opt())
                            .is_some_and(|t| t < until)
                    }
                    _ => false,
                };
            }
            if !any {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Who uses a volume: containers that name it (any state), and of those
/// the running ones (podman's `MountCount`).
#[derive(Debug, Clone, Copy, Default)]
struct Use {
    containers: usize,
    running: usize,
}

/// Each volume with its [`Use`].
fn with_users(ctx: &Context) -> anyhow::Result<Vec<(Volume, Use)>> {
    let vols = volumes(ctx);
    let containers = Containers::new(ctx.root()).list()?;
    Ok(vols
        .list()?
        .into_iter()
        .map(|v| {
            let mut u = Use::default();
            for c in &containers {
                let uses = c
                    .config
                    .mounts
                    .iter()
                    .any(|m| m.kind == MountKind::Volume && m.name.as_deref() == Some(&v.name));
                if uses {
                    u.containers += 1;
                    if c.live().status == cairn_engine::Status::Running {
                        u.running += 1;
                    }
                }
            }
            (v, u)
        })
        .collect())
}

fn ls(ctx: &Context, a: LsArgs) -> anyhow::Result<u8> {
    let filters = Filters::parse(&a.filter, &["name", "label", "driver", "dangling"])?;
    let format = Format::parse(a.format.as_deref(), "")?;
    let mut shown = Vec::new();
    for (v, users) in with_users(ctx)? {
        if filters.matches(&v, users)? {
            shown.push((v, users));
        }
    }
    if a.quiet {
        for (v, _) in &shown {
            println!("{}", v.name);
        }
        return Ok(0);
    }
    let items: Vec<Value> = shown
        .iter()
        .map(|(v, u)| volume_json(v, u.running))
        .collect();
    match format {
        Format::Default => {
            let mut t = Table::default();
            if !a.noheading {
                t.row(["DRIVER", "VOLUME NAME"]);
            }
            for (v, _) in &shown {
                t.row([v.driver.as_str(), v.name.as_str()]);
            }
            print!("{}", t.render());
        }
        Format::Json => println!("{}", output::json_indent(&Value::Array(items), 4)),
        f @ Format::Template { .. } => {
            let sample = items
                .first()
                .cloned()
                .unwrap_or_else(|| volume_json(&empty(), 0));
            let headers = format::headers(&sample, &[("Name", "VOLUME NAME")]);
            print!("{}", f.render(&items, &headers, a.noheading)?);
        }
    }
    Ok(0)
}

/// A volume with no values, for a table's headers when none is listed.
fn empty() -> Volume {
    Volume {
        name: String::new(),
        driver: String::new(),
        created_at: String::new(),
        labels: BTreeMap::new(),
        options: BTreeMap::new(),
        mountpoint: Default::default(),
    }
}

fn inspect(ctx: &Context, a: InspectArgs) -> anyhow::Result<u8> {
    if matches!((a.all, a.names.is_empty()), (true, false) | (false, true)) {
        return Err(exit::with_code(
            exit::ENGINE,
            "provide one or more volume names or use --all",
        ));
    }
    let all = with_users(ctx)?;
    let mut docs = Vec::new();
    let mut missing = None;
    if a.all {
        docs = all.iter().map(|(v, u)| volume_json(v, u.running)).collect();
    } else {
        for name in &a.names {
            match all.iter().find(|(v, _)| &v.name == name) {
                Some((v, u)) => docs.push(volume_json(v, u.running)),
                None => {
                    missing.get_or_insert(name.clone());
                }
            }
        }
    }
    let format = Format::parse_inspect(a.format.as_deref())?;
    let docs = Value::Array(docs);
    match format {
        Format::Json | Format::Default => println!("{}", output::json_indent(&docs, 5)),
        f @ Format::Template { .. } => print!("{}", f.render_all(&docs)?),
    }
    match missing {
        Some(name) => Err(exit::with_code(
            exit::ENGINE,
            format!("inspecting object: no such volume {name}"),
        )),
        None => Ok(0),
    }
}

fn rm(ctx: &Context, a: RmArgs) -> anyhow::Result<u8> {
    if matches!((a.all, a.names.is_empty()), (true, false) | (false, true)) {
        return Err(exit::with_code(
            exit::ENGINE,
            "choose either one or more volumes or all",
        ));
    }
    let vols = volumes(ctx);
    let containers = Containers::new(ctx.root());
    let names: Vec<String> = if a.all {
        vols.list()?.into_iter().map(|v| v.name).collect()
    } else {
        a.names.clone()
    };
    let mut errors: Vec<(u8, String)> = Vec::new();
    for name in &names {
        if vols.get(name)?.is_none() {
            errors.push((
                1,
                format!("no volume with name {name:?} found: no such volume"),
            ));
            continue;
        }
        let users = vols.users(&containers, name)?;
        if !users.is_empty() {
            if !a.force {
                let ids: Vec<&str> = users.iter().map(|u| u.as_str()).collect();
                errors.push((
                    2,
                    format!(
                        "volume {name} is being used by the following container(s): {}: volume is being used",
                        ids.join(", ")
                    ),
                ));
                continue;
            }
            for id in &users {
                if let Some(c) = containers.try_find(id)? {
                    lifecycle::remove(
                        &containers,
                        &c,
                        IfRunning::Stop,
                        Duration::from_secs(a.time),
                        false,
                    )?;
                }
            }
        }
        if vols.remove(name)? {
            println!("{name}");
        }
    }
    exit::finish(errors)
}

fn prune(ctx: &Context, a: PruneArgs) -> anyhow::Result<u8> {
    let filters = Filters::parse(&a.filter, &["label", "until"])?;
    let mut unused = Vec::new();
    for (v, users) in with_users(ctx)? {
        if users.containers == 0 && filters.matches(&v, users)? {
            unused.push(v.name);
        }
    }
    if !a.force {
        // podman asks on stdout, and lists what would go.
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "WARNING! This will remove all volumes not used by at least one container. The following volumes will be removed:"
        )?;
        if unused.is_empty() {
            writeln!(out, "No dangling volumes found")?;
            return Ok(0);
        }
        for n in &unused {
            writeln!(out, "{n}")?;
        }
        write!(out, "Are you sure you want to continue? [y/N] ")?;
        out.flush()?;
        drop(out);
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y") {
            return Ok(0);
        }
    }
    let vols = volumes(ctx);
    let containers = Containers::new(ctx.root());
    for name in unused {
        // In use since the list was made: kept.
        if !vols.users(&containers, &name)?.is_empty() {
            continue;
        }
        if vols.remove(&name)? {
            println!("{name}");
        }
    }
    Ok(0)
}

fn exists(ctx: &Context, a: ExistsArgs) -> anyhow::Result<u8> {
    Ok(if volumes(ctx).get(&a.name)?.is_some() {
        0
    } else {
        1
    })
}
