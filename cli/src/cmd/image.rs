//! Image verbs: pull, images, rmi, tag, untag, inspect, image prune, image
//! exists.
//!
//! Every podman flag of these verbs is implemented, accepted as a documented
//! no-op (help text starting "Accepted for podman compatibility"), or known
//! and refused with `cairn does not support --X (WHY)`, exit 125, before
//! anything happens (see `docs/podman-compat.md`).

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use cairn_registry::pull::{pull_name, PullOptions};

use cairn_store::images::ImageError;
use cairn_store::import::{import_oci_archive, import_oci_dir, Source};
use cairn_store::media::{host_platform, Platform};
use cairn_store::progress::PullProgress;
use cairn_store::{Image, Name, Removal};
use clap::Args;
use serde_json::{json, Value};

use crate::context::Context;
use crate::exit;
use crate::format::Format;
use crate::output::{self, Table};

/// `pull` flags.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image reference: [docker://]NAME[:TAG|@DIGEST], oci:DIR[:REF], oci-archive:FILE[:REF].
    pub image: String,
    /// Platform to pull from a multi-platform image: OS/ARCH[/VARIANT].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Architecture to pull (overrides the platform's).
    #[arg(long)]
    pub arch: Option<String>,
    /// Operating system to pull (overrides the platform's).
    #[arg(long)]
    pub os: Option<String>,
    /// CPU variant to pull (overrides the platform's).
    #[arg(long)]
    pub variant: Option<String>,
    /// Require HTTPS and verify certificates (false: allow plain HTTP and self-signed).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// Credentials USERNAME:PASSWORD for the registry.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub creds: Option<String>,
    /// Auth file to read credentials from.
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    /// Directory of CA certificates (*.crt) to trust for the registry.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
    /// Retries after a failed request (connection errors, 429, 5xx).
    #[arg(long, value_name = "N")]
    pub retry: Option<u32>,
    /// Fixed delay between retries (e.g. 2s, 500ms); default exponential backoff.
    #[arg(long, value_name = "DURATION")]
    pub retry_delay: Option<String>,
    /// Blobs downloaded in parallel.
    #[arg(long, value_name = "N", env = "CAIRN_PULL_JOBS", default_value_t = 6)]
    pub jobs: usize,
    /// Decode the layers and build the image root while downloading (false:
    /// store the blobs only, like `skopeo copy`; the first create builds the
    /// root).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub unpack: bool,
}

/// `pull` and `image pull` flags: [`PullArgs`] (shared with `run`'s pull)
/// and the podman flags only the verb has.
#[derive(Debug, Args)]
pub struct PullVerbArgs {
    /// The flags `run`'s pull shares.
    #[command(flatten)]
    pub pull: PullArgs,
    /// Accepted for podman compatibility: a Docker option podman ignores too.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub disable_content_trust: Option<bool>,
    /// Refused: cairn pulls one reference at a time.
    #[arg(short = 'a', long, hide = true)]
    pub all_tags: bool,
}

/// An untagged image a build made for one of its steps.
fn is_intermediate(i: &Image) -> bool {
    let notes = &i.manifest_descriptor.annotations;
    notes.contains_key(cairn_engine::commit::INTERMEDIATE)
}

/// `images` flags.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only images matching this reference (a name, optionally with tag).
    pub reference: Option<String>,
    /// Show all images, the intermediate images of builds too.
    #[arg(short, long)]
    pub all: bool,
    /// Sort by created, id, repository, size or tag.
    #[arg(long, default_value = "created")]
    pub sort: String,
    /// Add a HISTORY column: the image's names (cairn keeps no record of
    /// names an image no longer has).
    #[arg(long)]
    pub history: bool,
    /// Print only image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Do not truncate ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// Omit the table header.
    #[arg(short, long = "noheading")]
    pub noheading: bool,
    /// Output format: table, json, or a Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// Filter: dangling=true|false, reference=PATTERN.
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
}

/// `rmi` flags.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Images to remove (names or ids).
    pub images: Vec<String>,
    /// Remove all images.
    #[arg(short, long)]
    pub all: bool,
    /// Remove an image with several names by id.
    #[arg(short, long)]
    pub force: bool,
    /// Do not fail for images that do not exist.
    #[arg(short, long)]
    pub ignore: bool,
    /// Accepted for podman compatibility: cairn images have no parent
    /// images to prune.
    #[arg(long)]
    pub no_prune: bool,
}

/// `untag` arguments.
#[derive(Debug, Args)]
pub struct UntagArgs {
    /// The image.
    pub image: String,
    /// Names to remove (default: all of them; the image stays, dangling).
    pub names: Vec<String>,
}

/// `tag` arguments.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image.
    pub image: String,
    /// New names.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `inspect` flags.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Images to inspect.
    #[arg(required_unless_present = "latest")]
    pub names: Vec<String>,
    /// What to inspect: image, container or all.
    #[arg(short = 't', long = "type", default_value = "all")]
    pub kind: String,
    /// Go template applied to each result, or json.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Inspect the latest container created (instead of naming one).
    #[arg(short, long, conflicts_with = "names")]
    pub latest: bool,
    /// Refused: cairn computes no container sizes.
    #[arg(short, long, hide = true)]
    pub size: bool,
}

/// `image prune` flags.
#[derive(Debug, Args)]
pub struct ImagePruneArgs {
    /// Remove all images without containers, not only dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Accepted for podman compatibility: cairn has no external (build)
    /// containers.
    #[arg(long)]
    pub external: bool,
    /// Only images matching: label=KEY[=VALUE], label!=KEY[=VALUE],
    /// until=TIME (created before).
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
}

/// `prune` flags.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all images without containers, not only dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// `image exists` arguments.
#[derive(Debug, Args)]
pub struct ExistsArgs {
    /// The image.
    pub image: String,
}

/// `cairn does not support FLAG (WHY)`, exit 125: a podman flag cairn knows
/// and refuses rather than misreads.
pub fn refuse(flag: &str, why: &str) -> anyhow::Error {
    exit::with_code(
        exit::ENGINE,
        format!("cairn does not support {flag} ({why})"),
    )
}

/// `cairn pull`.
pub fn pull(ctx: &Context, a: PullVerbArgs) -> anyhow::Result<u8> {
    if a.all_tags {
        return Err(refuse(
            "--all-tags",
            "it pulls one reference at a time; name each tag",
        ));
    }
    let id = pull_image(ctx, &a.pull)?;
    println!("{id}");
    Ok(0)
}

/// Pulls (or imports) `a.image` with progress on stderr and builds its
/// image root; returns the image id (hex).
pub fn pull_image(ctx: &Context, a: &PullArgs) -> anyhow::Result<String> {
    let store = ctx.store()?;
    let platform = platform_of(a)?;
    let unpacker = std::sync::Arc::new(cairn_unpacker::Unpacker::new(
        &store,
        super::unpack::unpacker_options(&[], &[], None)?,
    )?);
    let shown: Arc<dyn PullProgress> = Arc::from(crate::progress::for_pull(a.quiet));
    let progress: Arc<dyn PullProgress> = if a.unpack {
        Arc::new(crate::unpack::DecodeAsDownloaded::new(
            shown,
            unpacker.clone(),
        ))
    } else {
        shown
    };
    let pulled = match Source::parse(&a.image) {
        Source::Registry(name) => {
            let registry = super::RegistryFlags {
                tls_verify: a.tls_verify,
                authfile: a.authfile.as_deref(),
                cert_dir: a.cert_dir.as_deref(),
                creds: a.creds.as_deref(),
                retry: a.retry,
                retry_delay: a.retry_delay.as_deref(),
            }
            .options()?;
            let opts = PullOptions {
                registry,
                platform,
                jobs: a.jobs.max(1),
            };
            let rt = super::runtime()?;
            rt.block_on(pull_name(&store, &name, &opts, progress))?
        }
        Source::OciDir { dir, reference } => import_oci_dir(
            &store,
            &dir,
            reference.as_deref(),
            platform.as_ref(),
            progress,
        )?,
        Source::OciArchive { file, reference } => import_oci_archive(
            &store,
            &file,
            reference.as_deref(),
            platform.as_ref(),
            progress,
        )?,
    };
    if !a.unpack {
        record(ctx, "pull", "", &a.image);
        return Ok(pulled.image_id.hex().to_owned());
    }
    if let Err(e) = crate::unpack::finish(&store, &unpacker, &pulled) {
        // podman keeps no image it could not apply: drop the names this pull
        // recorded (unless a container already uses the image).
        let in_use = cairn_engine::container::Containers::new(ctx.root()).images_in_use()?;
        if !in_use.contains(&pulled.manifest_digest) {
            let _ = store.remove_images(&[pulled.manifest_digest.to_string()], &[], true);
        }
        return Err(e);
    }
    record(ctx, "pull", "", &a.image);
    Ok(pulled.image_id.hex().to_owned())
}

/// Records an image event (podman's: `pull` names the image as given, with
/// no id; `tag`, `untag` and `remove` the image id and a name).
fn record(ctx: &Context, status: &str, id: &str, name: &str) {
    use cairn_engine::events;
    events::record(ctx.root(), &events::image_event(status, id, name));
}

/// `--platform` then `--os/--arch/--variant` on top of it.
fn platform_of(a: &PullArgs) -> anyhow::Result<Option<Platform>> {
    if a.platform.is_none() && a.os.is_none() && a.arch.is_none() && a.variant.is_none() {
        return Ok(None);
    }
    let mut p = match &a.platform {
        Some(s) => Platform::parse(s).map_err(|e| exit::with_code(exit::ENGINE, e))?,
        None => host_platform(),
    };
    if let Some(os) = &a.os {
        p.os = os.clone();
    }
    if let Some(arch) = &a.arch {
        p.architecture = arch.clone();
        if a.variant.is_none() && a.platform.is_none() {
            p.variant = None;
        }
    }
    if let Some(v) = &a.variant {
        p.variant = Some(v.clone());
    }
    Ok(Some(p))
}

/// podman's image size: the unpacked content once the image root is built
/// (every pull builds it), else the stored blobs.
pub fn image_size(store: &cairn_store::Store, i: &Image) -> u64 {
    cairn_unpacker::Unpacker::new(store, cairn_unpacker::UnpackerOptions::default())
        .ok()
        .and_then(|u| u.root_info(i.digest()))
        .map_or_else(|| i.size(), |info| info.size)
}

/// The image's read-only root, if built.
fn image_root(store: &cairn_store::Store, i: &Image) -> Option<cairn_unpacker::ImageRoot> {
    cairn_unpacker::Unpacker::new(store, cairn_unpacker::UnpackerOptions::default())
        .ok()?
        .root(i.digest())
}

/// A row of `cairn images`: one image under one name.
struct Row<'a> {
    image: &'a Image,
    repository: String,
    tag: String,
    size: u64,
}

/// `cairn images`.
pub fn images(ctx: &Context, a: ImagesArgs) -> anyhow::Result<u8> {
    if !SORT_KEYS.contains(&a.sort.as_str()) {
        return Err(exit::with_code(
            exit::ENGINE,
            format!(
                "{:?} is not a valid field for sorting. Choose from: {}",
                a.sort,
                SORT_KEYS.join(", ")
            ),
        ));
    }
    let store = ctx.store()?;
    let mut images = store.images()?;
    images.sort_by(|x, y| y.config.created.cmp(&x.config.created));
    let mut dangling: Option<bool> = None;
    let mut patterns: Vec<String> = a.reference.iter().cloned().collect();
    for f in &a.filters {
        match f.split_once('=') {
            Some(("dangling", v)) => {
                dangling = Some(v.parse().map_err(|_| {
                    exit::with_code(
                        exit::ENGINE,
                        format!("invalid filter {f:?}: dangling takes true or false"),
                    )
                })?)
            }
            Some(("reference", v)) => patterns.push(v.to_owned()),
            _ => {
                return Err(exit::with_code(
                    exit::ENGINE,
                    format!(
                    "invalid filter {f:?}: supported are dangling=true|false and reference=PATTERN"
                ),
                ))
            }
        }
    }
    let images: Vec<Image> = images
        .into_iter()
        .filter(|i| dangling.is_none_or(|d| d == i.names.is_empty()))
        .filter(|i| patterns.is_empty() || patterns.iter().any(|p| matches_reference(i, p)))
        // A build's untagged step images only with --all, as podman's.
        .filter(|i| a.all || !i.names.is_empty() || !is_intermediate(i))
        .collect();

    if a.quiet {
        let mut seen = BTreeSet::new();
        for i in &images {
            if seen.insert(i.id().clone()) {
                println!("{}", id_text(i, a.no_trunc));
            }
        }
        return Ok(0);
    }
    let format = Format::parse(a.format.as_deref(), "images")?;
    if let Format::Json = format {
        let list: Vec<Value> = images
            .iter()
            .map(|i| summary_json(i, image_size(&store, i)))
            .collect();
        println!("{}", output::json_indent(&Value::Array(list), 4));
        return Ok(0);
    }
    let mut rows = Vec::new();
    for image in &images {
        if image.names.is_empty() {
            rows.push(Row {
                image,
                repository: "<none>".into(),
                tag: "<none>".into(),
                size: image_size(&store, image),
            });
        }
        for n in &image.names {
            rows.push(Row {
                image,
                repository: n.name(),
                tag: n.tag().unwrap_or("<none>").to_owned(),
                size: image_size(&store, image),
            });
        }
    }
    sort_rows(&mut rows, &a.sort);
    if let Format::Template { .. } = format {
        let data: Vec<Value> = rows.iter().map(|r| row_json(r, a.no_trunc)).collect();
        let sample = data.first().cloned().unwrap_or_else(row_json_empty);
        let headers = crate::format::headers(&sample, IMAGE_HEADERS);
        print!("{}", format.render(&data, &headers, a.noheading)?);
        return Ok(0);
    }
    let mut t = Table::default();
    if !a.noheading {
        let mut h = vec!["REPOSITORY", "TAG"];
        if a.digests {
            h.push("DIGEST");
        }
        h.extend(["IMAGE ID", "CREATED", "SIZE"]);
        if a.history {
            h.push("HISTORY");
        }
        t.row(h);
    }
    for r in &rows {
        let mut cells = vec![r.repository.clone(), r.tag.clone()];
        if a.digests {
            cells.push(r.image.digest().to_string());
        }
        cells.push(id_text(r.image, a.no_trunc));
        cells.push(output::ago(r.image.config.created.as_deref()));
        cells.push(output::size(r.size));
        if a.history {
            cells.push(names_text(r.image));
        }
        t.row(cells);
    }
    print!("{}", t.render());
    Ok(0)
}

/// The keys `images --sort` takes.
const SORT_KEYS: &[&str] = &["created", "id", "repository", "size", "tag"];

/// `images --sort`: podman's orders (newest first by default, the others
/// ascending), stable so ties keep the created order.
fn sort_rows(rows: &mut [Row], key: &str) {
    match key {
        "id" => rows.sort_by(|x, y| x.image.id().hex().cmp(y.image.id().hex())),
        "repository" => rows.sort_by(|x, y| x.repository.cmp(&y.repository)),
        "tag" => rows.sort_by(|x, y| x.tag.cmp(&y.tag)),
        "size" => rows.sort_by_key(|r| r.size),
        _ => {}
    }
}

/// An image's names, as podman's HISTORY column and `.History` field show
/// them.
fn names_text(i: &Image) -> String {
    i.names
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Header names podman gives the `images --format` fields.
const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Id", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("Created", "CREATED"),
    ("ReadOnly", "R/O"),
];

/// The fields `images --format` templates see, as podman's image reporter
/// offers them.
fn row_json(r: &Row, no_trunc: bool) -> Value {
    let i = r.image;
    let created = i.config.created.as_deref();
    let unix = created
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| t.timestamp())
        .unwrap_or(0);
    let created_at = chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default();
    let names: Vec<String> = i.names.iter().map(|n| n.to_string()).collect();
    json!({
        "ID": id_text(i, no_trunc),
        "Id": i.id().hex(),
        "ParentId": "",
        "Repository": r.repository,
        "Tag": r.tag,
        "Digest": i.digest().to_string(),
        "Digests": i.repo_digests(),
        "CreatedSince": output::ago(created),
        "Created": output::ago(created),
        "CreatedAt": created_at,
        "CreatedTime": unix,
        "Size": output::size(r.size),
        "SharedSize": output::size(0),
        "VirtualSize": output::size(r.size),
        "UniqueSize": output::size(r.size),
        "Dangling": i.names.is_empty(),
        "Labels": i.config.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default(),
        "Containers": 0,
        "ReadOnly": false,
        "IsReadOnly": false,
        "History": names.join(", "),
        "Names": names,
    })
}

/// Field names for a header row when there is no image to take them from.
fn row_json_empty() -> Value {
    json!({
        "ID": "", "Id": "", "ParentId": "", "Repository": "", "Tag": "", "Digest": "",
        "Digests": [], "CreatedSince": "", "Created": "", "CreatedAt": "", "CreatedTime": 0,
        "Size": "", "SharedSize": "", "VirtualSize": "", "UniqueSize": "", "Dangling": false,
        "Labels": {}, "Containers": 0, "ReadOnly": false, "IsReadOnly": false, "History": "",
        "Names": [],
    })
}

fn id_text(i: &Image, no_trunc: bool) -> String {
    if no_trunc {
        i.id().to_string()
    } else {
        i.id().short().to_owned()
    }
}

/// `reference=` filter: a glob over `registry/repo:tag`, or over the
/// repository with or without registry.
fn matches_reference(image: &Image, pattern: &str) -> bool {
    image.names.iter().any(|n| {
        let full = n.to_string();
        let repo = n.name();
        let without_registry = full.split_once('/').map_or(full.as_str(), |(_, r)| r);
        [full.as_str(), repo.as_str(), without_registry]
            .iter()
            .any(|c| glob(pattern, c))
            || (!pattern.contains(':')
                && glob(pattern, repo.split_once('/').map_or(&repo, |(_, r)| r)))
            || repo.ends_with(&format!("/{pattern}"))
            || full.ends_with(&format!("/{pattern}"))
    })
}

/// `*` and `?` glob, as Go's path.Match for names (no `/` inside `*`).
fn glob(pattern: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && go(p, &s[1..])),
            (Some(b'?'), Some(c)) if *c != b'/' => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), s.as_bytes())
}

fn summary_json(i: &Image, size: u64) -> Value {
    let created = i.config.created.clone().unwrap_or_default();
    let unix = chrono::DateTime::parse_from_rfc3339(&created)
        .map(|t| t.timestamp())
        .unwrap_or(0);
    let names: Vec<String> = i.names.iter().map(|n| n.to_string()).collect();
    json!({
        "Id": i.id().hex(),
        "ParentId": "",
        "RepoTags": null,
        "RepoDigests": i.repo_digests(),
        "Size": size,
        "SharedSize": 0,
        "VirtualSize": size,
        "Labels": labels(i),
        "Containers": 0,
        "Names": names,
        "Digest": i.digest().to_string(),
        "History": names,
        "Created": unix,
        "CreatedAt": chrono::DateTime::parse_from_rfc3339(&created)
            .map(|t| t.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
    })
}

fn labels(i: &Image) -> Value {
    match i.config.config.as_ref().and_then(|c| c.labels.as_ref()) {
        Some(l) if !l.is_empty() => json!(l),
        _ => Value::Null,
    }
}

/// The `podman image inspect` document for an image.
pub fn inspect_json(store: &cairn_store::Store, i: &Image) -> Value {
    let size = image_size(store, i);
    // As podman's: the top layer's directory is UpperDir, those below it
    // LowerDir (topmost first).
    let graph = match image_root(store, i) {
        Some(root) => {
            let dirs: Vec<String> = root
                .lowers
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            match dirs.split_first() {
                Some((upper, lower)) if !lower.is_empty() => json!({"Name": "overlay", "Data": {
                    "LowerDir": lower.join(":"),
                    "UpperDir": upper,
                }}),
                _ => json!({"Name": "overlay", "Data": {"UpperDir": dirs.first()}}),
            }
        }
        None => json!({"Name": "overlay", "Data": {}}),
    };
    let tags: Vec<String> = i
        .names
        .iter()
        .filter(|n| n.tag().is_some())
        .map(|n| n.to_string())
        .collect();
    let raw = &i.config_raw;
    let user = i
        .config
        .config
        .as_ref()
        .and_then(|c| c.user.clone())
        .unwrap_or_default();
    json!({
        "Id": i.id().hex(),
        "Digest": i.digest().to_string(),
        "RepoTags": tags,
        "RepoDigests": i.repo_digests(),
        "Parent": "",
        "Comment": raw.get("comment").cloned().unwrap_or(json!("")),
        "Created": i.config.created.clone().unwrap_or_default(),
        "Config": raw.get("config").cloned().unwrap_or(json!({})),
        "Version": raw.get("docker_version").cloned().unwrap_or(json!("")),
        "Author": i.config.author.clone().unwrap_or_default(),
        "Architecture": i.config.architecture,
        "Os": i.config.os,
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": graph,
        "RootFS": {
            "Type": if i.config.rootfs.kind.is_empty() { "layers" } else { i.config.rootfs.kind.as_str() },
            "Layers": i.config.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "Labels": labels(i),
        "Annotations": i.manifest.annotations,
        "ManifestType": i.manifest_descriptor.media_type,
        "User": user,
        "History": i.config.history,
        "NamesHistory": i.names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
    })
}

/// `cairn rmi`.
pub fn rmi(ctx: &Context, a: RmiArgs) -> anyhow::Result<u8> {
    let store = ctx.store()?;
    let containers = cairn_engine::container::Containers::new(ctx.root());
    let in_use = containers.images_in_use()?;
    if a.all {
        let mut code = 0;
        if a.force {
            for c in containers.list()? {
                remove_container_for_rmi(ctx, &c)?;
            }
        } else {
            for i in store.images()? {
                if in_use.contains(i.digest()) {
                    eprintln!("Error: {}", in_use_message(&containers, &i)?);
                    code = 2;
                }
            }
        }
        for r in store.remove_all_images(|i| in_use_now(&containers, i))? {
            print_removal(&r);
            record_removal(ctx, &r, "");
        }
        derived_gc(&store, false)?;
        return Ok(code);
    }
    if a.images.is_empty() {
        return Err(exit::with_code(
            exit::ENGINE,
            "image name or ID must be specified",
        ));
    }
    let search = ctx.search_registries()?;
    let mut code = 0;
    // podman refuses to remove an image a container uses, unless -f, which
    // removes those containers first. The use locks, held until the images
    // are gone, keep creates from adding users meanwhile.
    let mut specs = Vec::new();
    let mut ids = std::collections::HashMap::new();
    let mut use_locks = Vec::new();
    for spec in &a.images {
        let image = match store.find_image(spec, &search) {
            Ok(i) => i,
            Err(_) => {
                specs.push(spec.clone());
                continue;
            }
        };
        ids.insert(spec.clone(), image.id().hex().to_owned());
        if !use_locks.iter().any(|(d, _)| d == image.digest()) {
            let lock = store.lock_image_use(image.digest(), cairn_store::LockMode::Exclusive)?;
            use_locks.push((image.digest().clone(), lock));
        }
        let in_use = containers.images_in_use()?;
        let untag_only = image.names.len() > 1
            && image
                .names
                .iter()
                .any(|n| n.to_string() == *spec || n.to_string().ends_with(&format!("/{spec}")));
        if in_use.contains(image.digest()) && !untag_only {
            if !a.force {
                eprintln!("Error: {}", in_use_message(&containers, &image)?);
                code = 2;
                continue;
            }
            for c in containers.list()? {
                if c.config.image.manifest.as_ref() == Some(image.digest()) {
                    remove_container_for_rmi(ctx, &c)?;
                }
            }
        }
        specs.push(spec.clone());
    }
    for (spec, r) in specs
        .iter()
        .zip(store.remove_images(&specs, &search, a.force)?)
    {
        match r {
            Ok(removal) => {
                print_removal(&removal);
                record_removal(ctx, &removal, ids.get(spec).map_or("", String::as_str));
            }
            // podman: -f (like -i) is silent about images that are not
            // there, so `set -e` cleanups work.
            Err(ImageError::NotKnown(_)) if a.ignore || a.force => {}
            Err(e @ ImageError::NotKnown(_)) => {
                eprintln!("Error: {e}");
                code = code.max(1);
            }
            Err(e) => {
                let hint = exit::hint_for(&e).unwrap_or("");
                eprintln!("Error: {}{hint}", with_spec(spec, &e));
                code = exit::ENGINE;
            }
        }
    }
    drop(use_locks);
    derived_gc(&store, false)?;
    Ok(code)
}

/// Whether a container uses `image`, read now (callers hold the image's use
/// lock, so no create can add one meanwhile). Unreadable: in use.
pub fn in_use_now(containers: &cairn_engine::container::Containers, image: &Image) -> bool {
    containers
        .images_in_use()
        .map_or(true, |u| u.contains(image.digest()))
}

fn in_use_message(
    containers: &cairn_engine::container::Containers,
    image: &Image,
) -> anyhow::Result<String> {
    let users: Vec<String> = containers
        .list()?
        .into_iter()
        .filter(|c| c.config.image.manifest.as_ref() == Some(image.digest()))
        .map(|c| c.config.id.into())
        .collect();
    Ok(format!(
        "image used by {}: image is in use by a container: consider listing external containers and force-removing image",
        users.join(", ")
    ))
}

fn remove_container_for_rmi(
    ctx: &Context,
    c: &cairn_engine::container::Container,
) -> anyhow::Result<()> {
    super::container::remove_forced(ctx, c)
}

fn with_spec(spec: &str, e: &ImageError) -> String {
    let s = e.to_string();
    if s.contains(spec) {
        s
    } else {
        format!("{spec}: {s}")
    }
}

fn print_removal(r: &Removal) {
    let mut out = std::io::stdout().lock();
    match r {
        Removal::Untagged(n) => {
            let _ = writeln!(out, "Untagged: {n}");
        }
        Removal::Deleted { untagged, id } => {
            for n in untagged {
                let _ = writeln!(out, "Untagged: {n}");
            }
            let _ = writeln!(out, "Deleted: {}", id.hex());
        }
    }
}

/// Records podman's events of a removal: `untag` per name, then `remove`
/// when the image is gone. `id` is the image's, for an untag alone.
fn record_removal(ctx: &Context, r: &Removal, id: &str) {
    match r {
        Removal::Untagged(n) => record(ctx, "untag", id, &n.to_string()),
        Removal::Deleted { untagged, id } => {
            for n in untagged {
                record(ctx, "untag", id.hex(), &n.to_string());
            }
            let name = untagged
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            record(ctx, "remove", id.hex(), &name);
        }
    }
}

/// `cairn tag`.
pub fn tag(ctx: &Context, a: TagArgs) -> anyhow::Result<u8> {
    let store = ctx.store()?;
    let search = ctx.search_registries()?;
    let image = find(&store, &a.image, &search)?;
    for n in &a.names {
        let name = Name::parse(n)?;
        let reference = name.qualify("localhost")?;
        if reference.digest().is_some() {
            return Err(exit::with_code(
                exit::ENGINE,
                format!("{n}: a tag cannot be a digest"),
            ));
        }
        store.set_ref(&reference, &image.manifest_descriptor, None)?;
        record(ctx, "tag", image.id().hex(), &reference.to_string());
    }
    Ok(0)
}

/// `cairn untag`: removes the names (all without any); the image stays,
/// dangling once it has none, as podman's.
pub fn untag(ctx: &Context, a: UntagArgs) -> anyhow::Result<u8> {
    let store = ctx.store()?;
    let search = ctx.search_registries()?;
    let image = find(&store, &a.image, &search)?;
    let names = if a.names.is_empty() {
        image.names.clone()
    } else {
        a.names
            .iter()
            .map(|n| Ok(Name::parse(n)?.qualify("localhost")?))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    for name in &names {
        if !store.untag(image.digest(), name)? {
            return Err(exit::with_code(
                exit::ENGINE,
                format!("{name}: tag not known"),
            ));
        }
    }
    Ok(0)
}

fn find(store: &cairn_store::Store, spec: &str, search: &[String]) -> anyhow::Result<Image> {
    store.find_image(spec, search).map_err(|e| match e {
        ImageError::NotKnown(_) => exit::with_code(exit::ENGINE, e.to_string()),
        other => anyhow::Error::new(other),
    })
}

/// `cairn inspect` / `cairn image inspect`.
pub fn inspect(ctx: &Context, a: InspectArgs) -> anyhow::Result<u8> {
    if a.size {
        return Err(refuse("--size", "it computes no container sizes"));
    }
    let kind = a.kind.as_str();
    if !matches!(kind, "image" | "container" | "all") {
        return Err(exit::with_code(
            exit::ENGINE,
            format!("invalid --type {kind:?}: use image, container or all"),
        ));
    }
    let store = ctx.store()?;
    let search = ctx.search_registries()?;
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    let containers = cairn_engine::container::Containers::new(ctx.root());
    let names = if a.latest {
        match containers.list()?.last() {
            Some(c) => vec![c.config.id.to_string()],
            None => {
                errors.push("no containers to inspect: no such container".to_owned());
                Vec::new()
            }
        }
    } else {
        a.names.clone()
    };
    for name in &names {
        // podman looks for a container first, then an image.
        if kind != "image" {
            if let Some(c) = containers.try_find(name)? {
                let live = c.live();
                docs.push(crate::inspect::inspect_json(&c, &live));
                continue;
            }
        }
        let found = if kind == "container" {
            None
        } else {
            match store.find_image(name, &search) {
                Ok(i) => Some(i),
                Err(ImageError::NotKnown(_)) => None,
                Err(e) => return Err(e.into()),
            }
        };
        match found {
            Some(i) => docs.push(inspect_json(&store, &i)),
            None => errors.push(match kind {
                "image" => format!("{name}: image not known"),
                "container" => format!("no such container {name}"),
                _ => format!("no such object: {name:?}"),
            }),
        }
    }
    match Format::parse_inspect(a.format.as_deref())? {
        Format::Json | Format::Default => {
            println!("{}", output::json_indent(&Value::Array(docs), 5))
        }
        f => {
            // Go templates see podman's time.Time fields as Go prints them
            // (`2024-01-02 15:04:05.5 +0000 UTC`); JSON keeps RFC 3339.
            let mut docs = docs;
            for d in &mut docs {
                go_times(d);
            }
            print!("{}", f.render_all(&Value::Array(docs))?)
        }
    }
    if let Some(last) = errors.pop() {
        for e in errors {
            eprintln!("Error: {e}");
        }
        return Err(exit::with_code(
            exit::ENGINE,
            format!("inspecting object: {last}"),
        ));
    }
    Ok(0)
}

/// Rewrites the time.Time fields of an inspect document as Go's
/// `time.Time.String()` prints them.
fn go_times(doc: &mut Value) {
    for path in [
        "/Created",
        "/State/StartedAt",
        "/State/FinishedAt",
        "/State/CheckpointedAt",
        "/State/RestoredAt",
    ] {
        if let Some(v) = doc.pointer_mut(path) {
            if let Some(t) = v.as_str().and_then(crate::inspect::parse_go_time) {
                *v = Value::String(t);
            }
        }
    }
}

/// `cairn image prune`.
pub fn prune(ctx: &Context, a: ImagePruneArgs) -> anyhow::Result<u8> {
    let filters = PruneFilters::parse(&a.filters)?;
    if !a.force
        && !confirm(if a.all {
            "WARNING! This command removes all images without at least one container associated with them."
        } else {
            "WARNING! This command removes all dangling images."
        })?
    {
        return Ok(0);
    }
    let store = ctx.store()?;
    let containers = cairn_engine::container::Containers::new(ctx.root());
    let (removed, _freed) =
        store.prune_images(a.all, |i| !filters.matches(i) || in_use_now(&containers, i))?;
    derived_gc(&store, true)?;
    for id in removed {
        println!("{}", id.hex());
        record(ctx, "remove", id.hex(), "");
    }
    Ok(0)
}

/// Removes image roots, changesets and objects nothing needs any more
/// (waiting for running pulls with `wait`, else skipping while one runs).
/// Returns the bytes freed.
pub fn derived_gc(store: &cairn_store::Store, wait: bool) -> anyhow::Result<u64> {
    let unpacker =
        cairn_unpacker::Unpacker::new(store, cairn_unpacker::UnpackerOptions::default())?;
    Ok(unpacker.collect_garbage(wait)?)
}

/// [`derived_gc`] that also walks every object (`system prune`): sweeps
/// objects a killed decoder left unnamed.
pub fn derived_gc_all(store: &cairn_store::Store) -> anyhow::Result<u64> {
    let unpacker =
        cairn_unpacker::Unpacker::new(store, cairn_unpacker::UnpackerOptions::default())?;
    Ok(unpacker.collect_all_garbage(true)?)
}

/// `image prune --filter`: podman's keys for it.
struct PruneFilters {
    /// `label=KEY[=VALUE]` (true) and `label!=KEY[=VALUE]` (false).
    labels: Vec<(String, Option<String>, bool)>,
    /// `until=TIME`, in Unix nanoseconds: only images created before.
    until: Option<i64>,
}

impl PruneFilters {
    fn parse(filters: &[String]) -> anyhow::Result<PruneFilters> {
        let mut out = PruneFilters {
            labels: Vec::new(),
            until: None,
        };
        for f in filters {
            let (key, value) = f.split_once('=').unwrap_or((f, ""));
            let (key, want) = match key.strip_suffix('!') {
                Some(k) => (k, false),
                None => (key, true),
            };
            match key {
                "label" => {
                    let (k, v) = match value.split_once('=') {
                        Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                        None => (value.to_owned(), None),
                    };
                    out.labels.push((k, v, want));
                }
                "until" if want => {
                    out.until = Some(
                        super::parse_time(value)
                            .map_err(|e| exit::with_code(exit::ENGINE, format!("{e:#}")))?,
                    )
                }
                _ => {
                    return Err(exit::with_code(
                        exit::ENGINE,
                        format!("unsupported image filter {key:?}"),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// Whether prune may take `image` (every filter matches).
    fn matches(&self, image: &Image) -> bool {
        let labels = image.config.config.as_ref().and_then(|c| c.labels.as_ref());
        let has = |k: &str, v: &Option<String>| {
            labels
                .and_then(|l| l.get(k))
                .is_some_and(|got| v.as_ref().is_none_or(|want| want == got))
        };
        let created = image
            .config
            .created
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .and_then(|t| t.timestamp_nanos_opt());
        self.labels.iter().all(|(k, v, want)| has(k, v) == *want)
            && self
                .until
                .is_none_or(|until| created.is_some_and(|c| c < until))
    }
}

/// Asks `[y/N]` on standard output, as podman does (the answer on stdin);
/// anything but y keeps everything.
pub fn confirm(warning: &str) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{warning}")?;
    write!(out, "Are you sure you want to continue? [y/N] ")?;
    out.flush()?;
    drop(out);
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    // podman reads the answer's first character, untrimmed.
    Ok(line.starts_with(['y', 'Y']))
}

/// `cairn image exists`.
pub fn exists(ctx: &Context, a: ExistsArgs) -> anyhow::Result<u8> {
    let store = ctx.store()?;
    let search = ctx.search_registries()?;
    match store.find_image(&a.image, &search) {
        Ok(_) => Ok(0),
        Err(ImageError::NotKnown(_)) => Ok(1),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("docker.io/library/*", "docker.io/library/debian"));
        assert!(!glob("docker.io/*", "docker.io/library/debian"));
        assert!(glob("deb?an", "debian"));
        assert!(glob("*:bookworm", "debian:bookworm"));
        assert!(!glob("alpine", "debian"));
    }
}
