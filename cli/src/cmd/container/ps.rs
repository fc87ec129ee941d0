//! `ps`: filters (see [`super::filters`]), `-n/--last`, `--sort`, `--size`.

use std::path::{Path, PathBuf};

use cairn_engine::container::{self, Container, Containers, Live};
use serde_json::{json, Value};

use super::args::PsArgs;
use super::filters::Filters;
use super::usage;
use crate::context::Context;
use crate::format::{self, Format};
use crate::inspect;
use crate::output::{self, Table};

/// One listed container with what `ps` shows of it.
struct Row {
    c: Container,
    live: Live,
    /// `--size`: (writable layer, whole root) bytes.
    size: Option<(u64, u64)>,
}

/// Bytes of the regular files and symlinks under `dir` (podman's
/// `rwSize` of a container: its overlay upper directory).
fn tree_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| !e.file_type().is_dir())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// The container's writable-layer size and its root's (image plus layer).
fn sizes(ctx: &Context, c: &Container) -> (u64, u64) {
    let rw = tree_size(&c.dir.join("upper"));
    let image = ctx.store().ok().and_then(|store| {
        let m = c.config.image.manifest.as_ref()?;
        let i = store.image_by_manifest(m).ok()??;
        Some(crate::cmd::image::image_size(&store, &i))
    });
    (rw, image.unwrap_or(0) + rw)
}

/// podman's SIZE cell: `12B (virtual 116MB)`.
fn size_cell(rw: u64, root: u64) -> String {
    let compact = |n: u64| output::size(n).replace(' ', "");
    format!("{} (virtual {})", compact(rw), compact(root))
}

/// Sorts as podman's `--sort` does (stable; created is the list's order).
fn sort_rows(rows: &mut [Row], by: &str) {
    match by {
        "id" => rows.sort_by(|a, b| a.c.config.id.cmp(&b.c.config.id)),
        "image" => rows.sort_by(|a, b| a.c.config.image.name.cmp(&b.c.config.image.name)),
        "names" => rows.sort_by(|a, b| a.c.config.name.cmp(&b.c.config.name)),
        "command" => rows.sort_by_key(|r| r.c.config.process.cmd.join(" ")),
        "status" => rows.sort_by_key(|r| inspect::status_text(&r.c, &r.live)),
        // Never started first, then by start time.
        "runningfor" => rows.sort_by_key(|r| {
            r.c.state
                .started_at
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .and_then(|t| t.timestamp_nanos_opt())
                .unwrap_or(0)
        }),
        "size" => rows.sort_by_key(|r| r.size.map_or(0, |s| s.1)),
        _ => rows.sort_by(|a, b| a.c.config.created.cmp(&b.c.config.created)),
    }
}

/// The creation time of the container `spec` names (before=/since=).
fn created_of(containers: &Containers, spec: &str) -> anyhow::Result<String> {
    Ok(containers.find(spec)?.config.created)
}

/// `cairn ps`.
pub fn ps(ctx: &Context, a: PsArgs) -> anyhow::Result<u8> {
    // Networks of containers whose monitor was killed: released now, as
    // every command finding them does (quietly: ps only reports).
    if let Err(e) = cairn_engine::network::setup::sweep(ctx.root()) {
        tracing::debug!("network sweep: {}", e.with_causes());
    }
    if a.pod {
        return Err(usage("cairn does not support --pod (cairn has no pods)"));
    }
    if a.ns {
        return Err(usage(
            "cairn does not support --ns (namespace columns are not implemented; see inspect's .NetworkSettings and /proc/PID/ns)",
        ));
    }
    if a.watch.is_some() {
        return Err(usage(
            "cairn does not support --watch (run `watch cairn ps` instead)",
        ));
    }
    if a.last < -1 {
        return Err(usage(format!("invalid --last {}: use -1 or more", a.last)));
    }
    if a.quiet && a.size {
        return Err(usage("--quiet and --size cannot be used together"));
    }
    let containers = Containers::new(ctx.root());
    let filters = Filters::parse(&a.filters)?;
    let before: Vec<String> = filters
        .times("before")
        .iter()
        .map(|s| created_of(&containers, s))
        .collect::<anyhow::Result<_>>()?;
    let since: Vec<String> = filters
        .times("since")
        .iter()
        .map(|s| created_of(&containers, s))
        .collect::<anyhow::Result<_>>()?;
    let until: Vec<i64> = filters
        .times("until")
        .iter()
        .map(|s| crate::cmd::parse_time(s))
        .collect::<anyhow::Result<_>>()?;
    let all = a.all || a.latest || a.last >= 0 || filters.has("status") || filters.has("exited");
    let mut rows: Vec<Row> = containers
        .list()?
        .into_iter()
        .map(|c| {
            let live = c.live();
            Row {
                c,
                live,
                size: None,
            }
        })
        .filter(|r| {
            let created = r.c.config.created.as_str();
            let created_ns = chrono::DateTime::parse_from_rfc3339(created)
                .ok()
                .and_then(|t| t.timestamp_nanos_opt())
                .unwrap_or(0);
            (all || r.live.status.is_alive())
                && filters.matches(&r.c, &r.live)
                && (before.is_empty() || before.iter().any(|b| created < b.as_str()))
                && (since.is_empty() || since.iter().any(|s| created > s.as_str()))
                && (until.is_empty() || until.iter().any(|u| created_ns < *u))
        })
        .collect();
    if a.latest {
        rows = rows.split_off(rows.len().saturating_sub(1));
    }
    if let Ok(n) = usize::try_from(a.last) {
        rows = rows.split_off(rows.len().saturating_sub(n));
    }
    if a.size {
        for r in &mut rows {
            r.size = Some(sizes(ctx, &r.c));
        }
    }
    if let Some(by) = &a.sort {
        sort_rows(&mut rows, by);
    }
    if a.quiet {
        for r in &rows {
            let id = r.c.config.id.as_str();
            println!("{}", if a.no_trunc { id } else { &id[..12] });
        }
        return Ok(0);
    }
    print_rows(&rows, &a)
}

fn print_rows(rows: &[Row], a: &PsArgs) -> anyhow::Result<u8> {
    let format = Format::parse(a.format.as_deref(), "ps")?;
    match format {
        Format::Json => {
            let docs: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let mut v = inspect::ps_json(&r.c, &r.live);
                    if let Some((rw, root)) = r.size {
                        v["Size"] = json!({"rootFsSize": root, "rwSize": rw});
                    }
                    v
                })
                .collect();
            println!("{}", output::json_indent(&Value::Array(docs), 4));
        }
        Format::Template { .. } => {
            let template = |r: &Row| {
                let mut v = inspect::ps_template(&r.c, &r.live, a.no_trunc);
                if let Some((rw, root)) = r.size {
                    v["Size"] = json!(size_cell(rw, root));
                }
                v
            };
            let docs: Vec<Value> = rows.iter().map(template).collect();
            let sample = docs.first().cloned().unwrap_or_else(|| {
                let dummy = Container {
                    dir: PathBuf::new(),
                    config: container::Config::default(),
                    state: Default::default(),
                };
                inspect::ps_template(&dummy, &dummy.live(), true)
            });
            let headers = format::headers(
                &sample,
                &[
                    ("ID", "CONTAINER ID"),
                    ("Names", "NAMES"),
                    ("CreatedHuman", "CREATED"),
                    ("RunningFor", "CREATED"),
                ],
            );
            print!("{}", format.render(&docs, &headers, a.noheading)?);
        }
        Format::Default => {
            let mut t = Table::default();
            if !a.noheading {
                let mut head = vec![
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "PORTS",
                    "NAMES",
                ];
                if a.size {
                    head.push("SIZE");
                }
                t.row(head);
            }
            for r in rows {
                let v = inspect::ps_template(&r.c, &r.live, a.no_trunc);
                let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
                let mut cells = vec![
                    s("ID"),
                    s("Image"),
                    s("Command"),
                    s("CreatedHuman"),
                    s("Status"),
                    s("Ports"),
                    s("Names"),
                ];
                if let Some((rw, root)) = r.size {
                    cells.push(size_cell(rw, root));
                }
                t.row(cells);
            }
            print!("{}", t.render());
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_cells_as_podman() {
        assert_eq!(size_cell(12, 116_240_904), "12B (virtual 116MB)");
        assert_eq!(size_cell(0, 5_500), "0B (virtual 5.5kB)");
    }

    fn row(name: &str, id: &str, created: &str, cmd: &str) -> Row {
        let mut config = container::Config {
            name: name.into(),
            created: created.into(),
            ..Default::default()
        };
        config.id = container::ContainerId::parse(&id.repeat(64)).unwrap();
        config.process.cmd = vec![cmd.into()];
        let c = Container {
            dir: PathBuf::new(),
            config,
            state: Default::default(),
        };
        let live = c.live();
        Row {
            c,
            live,
            size: None,
        }
    }

    #[test]
    fn sorts_as_podman() {
        let names = |rows: &[Row]| -> Vec<String> {
            rows.iter().map(|r| r.c.config.name.clone()).collect()
        };
        let mut rows = vec![
            row("b", "c", "2024-01-01T00:00:02Z", "sleep"),
            row("c", "a", "2024-01-01T00:00:01Z", "bash"),
            row("a", "b", "2024-01-01T00:00:03Z", "sh"),
        ];
        sort_rows(&mut rows, "names");
        assert_eq!(names(&rows), ["a", "b", "c"]);
        sort_rows(&mut rows, "id");
        assert_eq!(names(&rows), ["c", "a", "b"]);
        sort_rows(&mut rows, "command");
        assert_eq!(names(&rows), ["c", "a", "b"]);
        sort_rows(&mut rows, "created");
        assert_eq!(names(&rows), ["c", "b", "a"]);
    }
}
