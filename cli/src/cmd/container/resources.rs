//! The verbs over a container's cgroup: `pause`, `unpause` (its freezer),
//! `stats` (its counters, as podman prints them) and `update` (its limits).

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

use cairn_engine::container::{cgroups, Container, Containers, Status};

use super::args::ResourceArgs;
use super::targets::{shown_name, Selection, Targets};
use super::{finish, usage};
use crate::context::Context;
use crate::exit;
use crate::format::{self, Format};
use crate::output::{self, Table};

/// `pause` and `unpause` flags.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Containers (names or ids).
    pub containers: Vec<String>,
    /// Every running (for unpause: paused) container.
    #[arg(short, long)]
    pub all: bool,
    /// Read the container id from this file (repeatable).
    #[arg(long, value_name = "FILE")]
    pub cidfile: Vec<std::path::PathBuf>,
    /// Act on the latest container created.
    #[arg(short, long)]
    pub latest: bool,
    /// Only the containers matching these filters (as `ps --filter`).
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
}

/// `cairn pause` (`unpause` when `!freeze`).
pub fn pause(ctx: &Context, a: PauseArgs, freeze: bool) -> anyhow::Result<u8> {
    let verb = if freeze { "pause" } else { "unpause" };
    if a.containers.is_empty()
        && a.cidfile.is_empty()
        && !a.all
        && !a.latest
        && a.filters.is_empty()
    {
        return Err(usage(format!(
            "you must provide at least one container name or ID (or --all, --latest) to {verb}"
        )));
    }
    let containers = Containers::new(ctx.root());
    let Targets { found, missing } = Selection {
        names: &a.containers,
        cidfiles: &a.cidfile,
        latest: a.latest,
        all: a.all || (a.containers.is_empty() && !a.filters.is_empty()),
        filters: &a.filters,
        ..Selection::default()
    }
    .resolve(&containers)?;
    let single = a.containers.len() + a.cidfile.len() <= 1 && missing.is_empty();
    let mut failed = false;
    for mut c in found {
        let _lock = c.lock()?;
        c.reload()?;
        let status = c.live().status;
        let want = if freeze {
            Status::Running
        } else {
            Status::Paused
        };
        if (a.all || a.containers.is_empty()) && status != want {
            continue;
        }
        let r = if status != want {
            Err(exit::with_code(
                exit::ENGINE,
                format!(
                    "\"{}\" is not {}, can't {verb}: container state improper",
                    c.config.id,
                    if freeze { "running" } else { "paused" }
                ),
            ))
        } else if freeze {
            cgroups::pause(&mut c).map_err(anyhow::Error::from)
        } else {
            cgroups::unpause(&mut c).map_err(anyhow::Error::from)
        };
        match r {
            Ok(()) => {
                cairn_engine::events::record_container(&c, verb);
                println!("{}", shown_name(&a.containers, &c));
            }
            Err(e) if single => return Err(e),
            Err(e) => {
                failed = true;
                exit::report(&e);
            }
        }
    }
    finish(&missing, failed)
}

/// `stats` flags.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Containers (names or ids); none: every running container.
    pub containers: Vec<String>,
    /// Every container, not only the running ones (those not running are skipped, as podman does).
    #[arg(short, long)]
    pub all: bool,
    /// Pretty-print with a Go template, or json.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Seconds between updates when streaming.
    #[arg(short, long, default_value_t = 5, value_name = "SECONDS")]
    pub interval: u64,
    /// Act on the latest container created.
    #[arg(short, long)]
    pub latest: bool,
    /// Accepted for podman compatibility: each sample is compared with the previous one.
    #[arg(long = "no-reset")]
    pub no_reset: bool,
    /// Print one sample and exit.
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Full container ids.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

/// One container's counters at one moment.
struct Sample {
    c: Container,
    stats: cgroups::Stats,
    /// eth0's received and sent bytes in the container's network namespace.
    net: (u64, u64),
    /// When taken, ns since the epoch.
    at_ns: u64,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// podman's network figure: eth0 of the container's namespace (none
/// without one, as podman's netlink lookup of eth0).
fn net_io(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("eth0:"))
        .map(|rest| {
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (
                f.first().copied().unwrap_or(0),
                f.get(8).copied().unwrap_or(0),
            )
        })
        .next()
        .unwrap_or((0, 0))
}

/// The host's memory (the limit podman shows for a container without one).
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn sample(c: &Container) -> anyhow::Result<Sample> {
    let stats = cgroups::stats(c)?;
    Ok(Sample {
        net: net_io(c.state.pid),
        at_ns: now_ns(),
        stats,
        c: c.clone(),
    })
}

/// Start time of the container's last run, ns since the epoch.
fn started_ns(c: &Container) -> u64 {
    c.state
        .started_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| t.timestamp_nanos_opt())
        .map(|n| n.max(0) as u64)
        .unwrap_or(0)
}

/// podman's `floatToPercentString`: two decimals and `%`, `--` for zero.
fn percent(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        "--".into()
    } else {
        format!("{f:.2}%")
    }
}

/// go-units' `BytesSize`: binary units, four significant digits
/// (`1.5MiB`, `64MiB`, `512B`).
fn bytes_binary(b: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let s = format!("{v:.4}");
    let digits = s.find('.').unwrap_or(s.len());
    let keep = 4_usize.saturating_sub(digits);
    let s = format!("{v:.keep$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    format!("{s}{}", UNITS[i])
}

/// podman's `combineHumanValues` (4.3 prints zeros as `0B / 0B`).
fn pair(a: u64, b: u64) -> String {
    format!("{} / {}", output::size_compact(a), output::size_compact(b))
}

/// Go's `time.Duration.String()` of `ns` (`1.5s`, `250ms`, `2m3.5s`).
fn go_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    let trim = |v: f64, prec: usize| {
        let s = format!("{v:.prec$}");
        let s = s.trim_end_matches('0').trim_end_matches('.').to_owned();
        s
    };
    if ns < 1_000_000 {
        return format!("{}µs", trim(ns as f64 / 1e3, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", trim(ns as f64 / 1e6, 6));
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let s = trim((ns % 60_000_000_000) as f64 / 1e9, 9);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// podman's `define.ContainerStats` of `now` against `prev` (the previous
/// sample, or the container's start).
fn stats_json(now: &Sample, prev: Option<&Sample>) -> Value {
    let s = &now.stats;
    let start = started_ns(&now.c);
    let (prev_cpu, prev_at) = match prev {
        Some(p) => (p.stats.cpu_ns, p.at_ns),
        None => (0, start),
    };
    let ratio = |cpu: u64, since: u64| {
        let dt = now.at_ns.saturating_sub(since) as f64;
        let dc = s.cpu_ns.saturating_sub(cpu) as f64;
        if dt > 0.0 && dc > 0.0 {
            dc / dt * 100.0
        } else {
            0.0
        }
    };
    let host = host_memory();
    let limit = s
        .memory_limit
        .map_or(host, |l| if host > 0 { l.min(host) } else { l });
    let mem_perc = if limit > 0 {
        s.memory_usage as f64 / limit as f64 * 100.0
    } else {
        0.0
    };
    json!({
        "AvgCPU": ratio(0, start),
        "ContainerID": now.c.config.id.to_string(),
        "Name": now.c.config.name,
        "PerCPU": null,
        "CPU": ratio(prev_cpu, prev_at),
        "CPUNano": s.cpu_ns,
        "CPUSystemNano": s.cpu_system_ns,
        "SystemNano": now.at_ns,
        "MemUsage": s.memory_usage,
        "MemLimit": limit,
        "MemPerc": mem_perc,
        "NetInput": now.net.0,
        "NetOutput": now.net.1,
        "BlockInput": s.blk_read,
        "BlockOutput": s.blk_write,
        "PIDs": s.pids,
        "UpTime": s.cpu_ns,
        "Duration": s.cpu_ns,
    })
}

/// The template row: podman's `containerStats` (the stats and its
/// methods' columns).
fn row_json(stats: &Value, no_trunc: bool) -> Value {
    let id = stats["ContainerID"].as_str().unwrap_or_default();
    let u = |k: &str| stats[k].as_u64().unwrap_or(0);
    let f = |k: &str| stats[k].as_f64().unwrap_or(0.0);
    let mut v = stats.clone();
    let o = v.as_object_mut().expect("an object");
    let mut put = |k: &str, x: Value| {
        o.insert(k.into(), x);
    };
    put(
        "ID",
        json!(if no_trunc {
            id
        } else {
            &id[..12.min(id.len())]
        }),
    );
    put("CPUPerc", json!(percent(f("CPU"))));
    put("AVGCPU", json!(percent(f("AvgCPU"))));
    put("MemPerc", json!(percent(f("MemPerc"))));
    put("MemUsage", json!(pair(u("MemUsage"), u("MemLimit"))));
    put(
        "MemUsageBytes",
        json!(if u("MemUsage") == 0 && u("MemLimit") == 0 {
            "-- / --".to_owned()
        } else {
            format!(
                "{} / {}",
                bytes_binary(u("MemUsage")),
                bytes_binary(u("MemLimit"))
            )
        }),
    );
    put("NetIO", json!(pair(u("NetInput"), u("NetOutput"))));
    put("BlockIO", json!(pair(u("BlockInput"), u("BlockOutput"))));
    put(
        "PIDS",
        json!(if u("PIDs") == 0 {
            "--".to_owned()
        } else {
            u("PIDs").to_string()
        }),
    );
    put("UpTime", json!(go_duration(u("UpTime"))));
    v
}

const COLUMNS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET IO"),
    ("BlockIO", "BLOCK IO"),
    ("PIDS", "PIDS"),
    ("UpTime", "CPU TIME"),
    ("AVGCPU", "AVG CPU %"),
];

/// `cairn stats`.
pub fn stats(ctx: &Context, a: StatsArgs) -> anyhow::Result<u8> {
    let format = Format::parse(a.format.as_deref(), "stats")?;
    if a.interval == 0 {
        return Err(usage("invalid --interval 0: give 1 or more seconds"));
    }
    let containers = Containers::new(ctx.root());
    let named = !a.containers.is_empty() || a.latest;
    let pick = || -> anyhow::Result<Vec<Container>> {
        let list = if named {
            let Targets { found, missing } = Selection {
                names: &a.containers,
                latest: a.latest,
                ..Selection::default()
            }
            .resolve(&containers)?;
            if let Some(m) = missing.first() {
                return Err(usage(format!(
                    "unable to get list of containers: {}",
                    super::no_such(m)
                )));
            }
            for c in &found {
                if !c.live().status.is_alive() {
                    return Err(usage(format!(
                        "container {} is not running: stats need a running container: container state improper",
                        c.config.name
                    )));
                }
            }
            found
        } else {
            containers
                .list()?
                .into_iter()
                .filter(|c| c.live().status.is_alive())
                .collect()
        };
        Ok(list)
    };
    let tty = std::io::stdout().is_terminal();
    let mut prev: Vec<Sample> = Vec::new();
    loop {
        let started = Instant::now();
        let mut now = Vec::new();
        for c in pick()? {
            match sample(&c) {
                Ok(s) => now.push(s),
                // Ended meanwhile: skipped while streaming, an error once.
                Err(e) if named && a.no_stream => return Err(e),
                Err(_) => {}
            }
        }
        let docs: Vec<Value> = now
            .iter()
            .map(|s| {
                let p = prev.iter().find(|p| p.c.config.id == s.c.config.id);
                stats_json(s, p)
            })
            .collect();
        let text = render(&format, &docs, a.no_trunc)?;
        if tty && !a.no_stream {
            print!("\x1b[2J\x1b[H");
        }
        print!("{text}");
        if a.no_stream {
            return Ok(0);
        }
        if named && now.is_empty() {
            return Ok(0);
        }
        prev = now;
        let wait = Duration::from_secs(a.interval).saturating_sub(started.elapsed());
        std::thread::sleep(wait);
    }
}

fn render(format: &Format, docs: &[Value], no_trunc: bool) -> anyhow::Result<String> {
    Ok(match format {
        Format::Json => format!("{}\n", output::json_indent(&Value::Array(docs.to_vec()), 4)),
        Format::Template { .. } => {
            let rows: Vec<Value> = docs.iter().map(|d| row_json(d, no_trunc)).collect();
            let sample = rows.first().cloned().unwrap_or_else(|| {
                let mut v = json!({});
                for (k, _) in COLUMNS {
                    v[*k] = json!("");
                }
                v
            });
            let headers = format::headers(&sample, COLUMNS);
            format.render(&rows, &headers, false)?
        }
        Format::Default => {
            let mut t = Table::default();
            t.row(COLUMNS.iter().map(|(_, h)| (*h).to_owned()));
            for d in docs {
                let r = row_json(d, no_trunc);
                t.row(
                    COLUMNS
                        .iter()
                        .map(|(k, _)| r[*k].as_str().unwrap_or_default().to_owned()),
                );
            }
            t.render()
        }
    })
}

/// `update` flags.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The container (name or id).
    pub container: Option<String>,
    /// Memory, CPU and block I/O limits.
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Limit the number of processes (-1 or 0 for none).
    #[arg(long = "pids-limit", value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Act on the latest container created.
    #[arg(short, long)]
    pub latest: bool,
    /// podman's update flags cairn refuses by name.
    #[command(flatten)]
    pub refused: RefusedUpdate,
}

/// `update` flags cairn refuses by name (hidden from `--help`).
#[derive(Debug, Clone, Default, Args)]
pub struct RefusedUpdate {
    /// Refused: --blkio-weight-device.
    #[arg(long = "blkio-weight-device", hide = true, value_name = "VALUE")]
    pub blkio_weight_device: Vec<String>,
    /// Refused: --cpu-rt-period.
    #[arg(long = "cpu-rt-period", hide = true, value_name = "VALUE")]
    pub cpu_rt_period: Vec<String>,
    /// Refused: --cpu-rt-runtime.
    #[arg(long = "cpu-rt-runtime", hide = true, value_name = "VALUE")]
    pub cpu_rt_runtime: Vec<String>,
    /// Refused: --device-read-bps.
    #[arg(long = "device-read-bps", hide = true, value_name = "VALUE")]
    pub device_read_bps: Vec<String>,
    /// Refused: --device-read-iops.
    #[arg(long = "device-read-iops", hide = true, value_name = "VALUE")]
    pub device_read_iops: Vec<String>,
    /// Refused: --device-write-bps.
    #[arg(long = "device-write-bps", hide = true, value_name = "VALUE")]
    pub device_write_bps: Vec<String>,
    /// Refused: --device-write-iops.
    #[arg(long = "device-write-iops", hide = true, value_name = "VALUE")]
    pub device_write_iops: Vec<String>,
    /// Refused: --memory-swappiness.
    #[arg(long = "memory-swappiness", hide = true, value_name = "VALUE")]
    pub memory_swappiness: Vec<String>,
}

impl RefusedUpdate {
    /// The first refused flag given.
    fn first_given(&self) -> Option<&'static str> {
        [
            (&self.blkio_weight_device, "blkio-weight-device"),
            (&self.cpu_rt_period, "cpu-rt-period"),
            (&self.cpu_rt_runtime, "cpu-rt-runtime"),
            (&self.device_read_bps, "device-read-bps"),
            (&self.device_read_iops, "device-read-iops"),
            (&self.device_write_bps, "device-write-bps"),
            (&self.device_write_iops, "device-write-iops"),
            (&self.memory_swappiness, "memory-swappiness"),
        ]
        .into_iter()
        .find_map(|(v, name)| (!v.is_empty()).then_some(name))
    }
}

/// `cairn update`: new limits, recorded and (while it runs) applied.
pub fn update(ctx: &Context, a: UpdateArgs) -> anyhow::Result<u8> {
    if let Some(flag) = a.refused.first_given() {
        return Err(super::flags::refuse(flag, super::flags::CGROUPS));
    }
    let containers = Containers::new(ctx.root());
    let names: Vec<String> = a.container.iter().cloned().collect();
    if names.is_empty() && !a.latest {
        return Err(usage("update needs a container name or ID (or --latest)"));
    }
    let flags = a.resources.flags();
    if flags == cgroups::ResourceFlags::default() && a.pids_limit.is_none() {
        return Err(usage(
            "update needs at least one limit to change (--memory, --cpus, --pids-limit, ...)",
        ));
    }
    // A new --memory without --memory-swap gets twice it, as at create
    // (and v1's memory+swap limit must stay at least the memory limit).
    let r = cgroups::resources(&flags, None).map_err(|e| usage(e.to_string()))?;
    let Targets { found, missing } = Selection {
        names: &names,
        latest: a.latest,
        ..Selection::default()
    }
    .resolve(&containers)?;
    if let Some(m) = missing.first() {
        return Err(usage(super::no_such(m)));
    }
    for mut c in found {
        let _lock = c.lock()?;
        c.reload()?;
        cgroups::update(&mut c, &r, a.pids_limit)?;
        println!("{}", c.config.id);
    }
    Ok(0)
}
