//! `commit`, `export`, `import`, `history` and `image tree`: images made
//! from containers and tarballs, and how an image's layers came to be.

use std::io::{self, BufRead as _, IsTerminal as _, Read, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Value};

use cairn_engine::commit::{self, CommitOptions, Format as ImageFormat, NewImage};
use cairn_engine::container::{Container, Containers, Status};
use cairn_store::compress::Compression;
use cairn_store::media::Platform;
use cairn_store::{Digest, Image, ImageError, Name, Reference, Store};

use crate::context::Context;
use crate::exit;
use crate::format::{headers, Format};
use crate::output::{self, Table};

fn usage(msg: impl Into<String>) -> anyhow::Error {
    exit::with_code(exit::ENGINE, msg)
}

/// `commit` arguments.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// The container.
    pub container: String,
    /// The new image's name (a short name becomes localhost/NAME:latest).
    pub image: Option<String>,
    /// Set the author for the image committed.
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply an instruction to the new image: CMD | ENTRYPOINT | ENV | EXPOSE | LABEL | ONBUILD | STOPSIGNAL | USER | VOLUME | WORKDIR.
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Format of the image manifest and metadata: oci or docker.
    #[arg(short, long, default_value = "oci")]
    pub format: String,
    /// File to write the image ID to.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Include container volumes as image volumes.
    #[arg(long)]
    pub include_volumes: bool,
    /// Set the commit message (the history entry's comment).
    #[arg(short, long)]
    pub message: Option<String>,
    /// Stop the container's processes (SIGSTOP, then SIGCONT) during the commit.
    #[arg(short, long)]
    pub pause: bool,
    /// Suppress output.
    #[arg(short, long)]
    pub quiet: bool,
    /// One layer of the whole root (no parent layers).
    #[arg(short, long)]
    pub squash: bool,
    /// Set created and clamp file mtimes to these seconds since the epoch (default: $SOURCE_DATE_EPOCH).
    #[arg(long, value_name = "SECONDS")]
    pub timestamp: Option<i64>,
    /// Layer compression: none (the default: podman keeps committed layers uncompressed too, and `push` compresses them), gzip or zstd.
    #[arg(long, default_value = "none", value_name = "FORMAT")]
    pub compression_format: String,
}

/// `export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The container.
    pub container: String,
    /// Write to a file, default is STDOUT.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `import` arguments.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tarball (gzip, zstd or plain), `-` for stdin.
    pub path: String,
    /// The new image's name.
    pub reference: Option<String>,
    /// Set the architecture of the imported image.
    #[arg(long)]
    pub arch: Option<String>,
    /// Apply an instruction to the new image.
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Set commit message for imported image.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Set the OS of the imported image.
    #[arg(long)]
    pub os: Option<String>,
    /// Suppress output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Set the variant of the imported image.
    #[arg(long)]
    pub variant: Option<String>,
}

/// `history` arguments.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The image.
    pub image: String,
    /// Change the format of the output (json or a Go template).
    #[arg(long)]
    pub format: Option<String>,
    /// Display sizes and dates in human readable format.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub human: bool,
    /// Do not truncate the output.
    #[arg(long, visible_alias = "notruncate")]
    pub no_trunc: bool,
    /// Display the numeric IDs only.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `image tree` arguments.
#[derive(Debug, Args)]
pub struct TreeArgs {
    /// The image.
    pub image: String,
    /// Refused: cairn records no parent links between images.
    #[arg(long, hide = true)]
    pub whatrequires: bool,
}

/// `SOURCE_DATE_EPOCH` or `--timestamp`.
pub(crate) fn timestamp(flag: Option<i64>) -> anyhow::Result<Option<i64>> {
    if flag.is_some() {
        return Ok(flag);
    }
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map(Some).map_err(|_| {
            usage(format!(
                "SOURCE_DATE_EPOCH={v:?} is not a number of seconds: unset it or give seconds since the epoch"
            ))
        }),
        _ => Ok(None),
    }
}

/// `--change` lines checked before anything is written.
fn check_changes(changes: &[String]) -> anyhow::Result<()> {
    let mut scratch = serde_json::Map::new();
    for c in changes {
        commit::change::apply(&mut scratch, c).map_err(|e| usage(e.to_string()))?;
    }
    Ok(())
}

/// A new image's name as podman qualifies it.
pub(crate) fn image_name(name: Option<&str>) -> anyhow::Result<Option<Reference>> {
    let Some(n) = name else {
        return Ok(None);
    };
    let parsed = Name::parse(n)
        .map_err(|e| usage(format!("invalid image name {n:?}: {e}")))?
        .qualify("localhost")
        .map_err(|e| usage(format!("invalid image name {n:?}: {e}")))?;
    if parsed.digest().is_some() {
        return Err(usage(format!(
            "invalid image name {n:?}: a new image's name cannot be a digest"
        )));
    }
    Ok(Some(parsed))
}

fn compression(s: &str) -> anyhow::Result<Compression> {
    match s {
        "gzip" => Ok(Compression::Gzip),
        "zstd" => Ok(Compression::Zstd),
        "none" | "" => Ok(Compression::None),
        other => Err(usage(format!(
            "invalid --compression-format {other:?}: use gzip, zstd or none"
        ))),
    }
}

fn find_container(ctx: &Context, name: &str) -> anyhow::Result<Container> {
    Containers::new(ctx.root()).try_find(name)?.ok_or_else(|| {
        usage(format!(
            "no container with name or ID \"{name}\" found: no such container (see `cairn ps -a`)"
        ))
    })
}

/// `cairn commit`.
pub fn commit(ctx: &Context, a: CommitArgs) -> anyhow::Result<u8> {
    let format = match a.format.as_str() {
        "oci" => ImageFormat::Oci,
        "docker" | "v2s2" => ImageFormat::Docker,
        f => return Err(usage(format!("invalid --format {f:?}: use oci or docker"))),
    };
    let compression = compression(&a.compression_format)?;
    if format == ImageFormat::Docker && compression == Compression::Zstd {
        return Err(usage(
            "the docker format has no zstd layers: use --format oci or --compression-format gzip",
        ));
    }
    check_changes(&a.change)?;
    let name = image_name(a.image.as_deref())?;
    let timestamp = timestamp(a.timestamp)?;
    let c = find_container(ctx, &a.container)?;
    let store = ctx.store()?;
    let created_by = shell_words(&c.config.process.args);
    let comment = a.message.clone().or_else(|| {
        (!c.config.image.name.is_empty()).then(|| format!("FROM {}", c.config.image.name))
    });
    let img = NewImage {
        name,
        author: a.author.clone(),
        comment,
        created_by,
        changes: a.change.clone(),
        format,
        compression,
        timestamp,
        intermediate: false,
        ..NewImage::default()
    };
    let opts = CommitOptions {
        squash: a.squash,
        include_volumes: a.include_volumes,
        config: None,
    };
    let _paused = if a.pause && c.live().status == Status::Running {
        Some(commit::Paused::pause(&c)?)
    } else {
        None
    };
    let made = commit::commit(&store, &c, &img, opts)?;
    drop(_paused);
    if !a.quiet {
        if let Some(l) = &made.layer {
            eprintln!("Copying blob {}", l.digest);
        }
        eprintln!("Copying config {}", made.id);
        eprintln!("Writing manifest to image destination");
    }
    if let Some(f) = &a.iidfile {
        std::fs::write(f, made.id.hex())
            .map_err(|e| usage(format!("write --iidfile {}: {e}", f.display())))?;
    }
    println!("{}", made.id.hex());
    Ok(0)
}

/// argv as one line, quoted where a word needs it (history's created_by).
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/-_.=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `cairn export`.
pub fn export(ctx: &Context, a: ExportArgs) -> anyhow::Result<u8> {
    let c = find_container(ctx, &a.container)?;
    match &a.output {
        Some(path) => {
            // Into a temp file beside it, renamed when complete: a failed
            // export leaves no half tar under the name asked for.
            let file_name = path
                .file_name()
                .ok_or_else(|| usage(format!("export to {}: not a file name", path.display())))?;
            // Made new, never through a name someone else put there (a
            // symlink planted in a shared directory like /tmp).
            let (tmp, f) = (0u32..)
                .map(|n| {
                    let tmp = path.with_file_name(format!(
                        ".{}.cairn-export-{}-{n}",
                        file_name.to_string_lossy(),
                        std::process::id()
                    ));
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o644)
                        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
                        .open(&tmp);
                    (tmp, f)
                })
                .find(|(_, f)| !matches!(f, Err(e) if e.kind() == io::ErrorKind::AlreadyExists))
                .expect("an unused temp name");
            let f = f.map_err(|e| usage(format!("export to {}: {e}", path.display())))?;
            let written = (|| -> anyhow::Result<()> {
                let mut w = io::BufWriter::new(&f);
                commit::export(&c, &mut w)?;
                w.flush()
                    .and_then(|()| f.sync_all())
                    .and_then(|()| std::fs::rename(&tmp, path))
                    .map_err(|e| usage(format!("export to {}: {e}", path.display())))?;
                Ok(())
            })();
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            written?;
        }
        None => {
            if io::stdout().is_terminal() {
                return Err(usage(
                    "refusing to export to terminal. Use -o flag or redirect",
                ));
            }
            let mut out = io::BufWriter::new(io::stdout().lock());
            commit::export(&c, &mut out)?;
            out.flush()
                .map_err(|e| usage(format!("export to stdout: {e}")))?;
        }
    }
    Ok(0)
}

/// `cairn import`.
pub fn import(ctx: &Context, a: ImportArgs) -> anyhow::Result<u8> {
    if a.path.contains("://") {
        return Err(usage(format!(
            "cairn does not import from URLs ({}): download the tarball first, then import the file",
            a.path
        )));
    }
    check_changes(&a.change)?;
    let name = image_name(a.reference.as_deref())?;
    let host = cairn_store::media::host_platform();
    let platform = Platform {
        architecture: a.arch.clone().unwrap_or(host.architecture),
        os: a.os.clone().unwrap_or(host.os),
        variant: a.variant.clone().or(host.variant),
        os_version: None,
    };
    let input: Box<dyn Read> = if a.path == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(&a.path).map_err(|e| {
            usage(format!(
                "import {}: {e}: give a tarball's path or - for stdin",
                a.path
            ))
        })?)
    };
    let tar = decompressed(io::BufReader::new(input), &a.path)?;
    let store = ctx.store()?;
    let img = NewImage {
        name,
        author: None,
        comment: a.message.clone(),
        created_by: String::new(),
        changes: a.change.clone(),
        format: ImageFormat::Oci,
        // As podman's import and commit: `push` compresses.
        compression: Compression::None,
        timestamp: timestamp(None)?,
        intermediate: false,
        ..NewImage::default()
    };
    let made = commit::import(&store, tar, &img, &platform)?;
    if !a.quiet {
        if let Some(l) = &made.layer {
            eprintln!("Copying blob {}", l.digest);
        }
        eprintln!("Copying config {}", made.id);
        eprintln!("Writing manifest to image destination");
    }
    println!("sha256:{}", made.id.hex());
    Ok(0)
}

/// The tarball decompressed by its magic bytes (gzip, zstd or none); a
/// stream that is not a tar is refused when its first block is read.
fn decompressed(mut r: io::BufReader<Box<dyn Read>>, what: &str) -> anyhow::Result<Box<dyn Read>> {
    let head = r
        .fill_buf()
        .map_err(|e| usage(format!("import {what}: {e}")))?
        .to_vec();
    let out: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(r)
                .map_err(|e| usage(format!("import {what}: {e}")))?,
        )
    } else if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
        return Err(usage(format!(
            "import {what}: bzip2 and xz tarballs are not supported: decompress it first (or recompress with gzip or zstd)"
        )));
    } else {
        Box::new(r)
    };
    Ok(Box::new(TarCheck {
        inner: out,
        seen: 0,
        what: what.to_owned(),
    }))
}

/// Passes the stream on, refusing one whose first 512 bytes are not a tar
/// header (a checksum that does not add up).
struct TarCheck {
    inner: Box<dyn Read>,
    seen: usize,
    what: String,
}

impl Read for TarCheck {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.seen == 0 {
            let mut first = vec![0u8; 512];
            let mut got = 0;
            while got < 512 {
                let n = self.inner.read(&mut first[got..])?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            let header = tar::Header::from_byte_slice(&first);
            let valid = got == 512 && header.cksum().is_ok_and(|c| c == checksum(&first));
            if !valid {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a tar archive (gzip, zstd or plain)", self.what),
                ));
            }
            self.seen = 512;
            self.inner = Box::new(
                io::Cursor::new(first)
                    .chain(std::mem::replace(&mut self.inner, Box::new(io::empty()))),
            );
        }
        self.inner.read(buf)
    }
}

/// A tar header's checksum: its bytes summed with the checksum field as
/// spaces.
fn checksum(block: &[u8]) -> u32 {
    block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum()
}

fn find_image(store: &Store, ctx: &Context, spec: &str) -> anyhow::Result<Image> {
    store
        .find_image(spec, &ctx.search_registries()?)
        .map_err(|e| match e {
            ImageError::NotKnown(_) => usage(e.to_string()),
            other => anyhow::Error::new(other),
        })
}

/// One row of `history`, newest first.
struct HistoryRow {
    id: Option<Digest>,
    created: Option<String>,
    created_by: String,
    size: u64,
    comment: String,
    tags: Vec<String>,
}

/// The image's history entries, newest first, each with the size of its
/// layer (0 for empty ones) and the id of the image whose top it is.
fn history_rows(store: &Store, image: &Image) -> anyhow::Result<Vec<HistoryRow>> {
    let all = store.images()?;
    let layers = &image.manifest.layers;
    let mut rows = Vec::new();
    let mut layer = 0usize;
    let entries: Vec<&Value> = image.config.history.iter().collect();
    for (i, h) in entries.iter().enumerate() {
        let empty = h
            .get("empty_layer")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let size = if empty {
            0
        } else {
            let s = layers.get(layer).map_or(0, |l| l.size);
            layer += 1;
            s
        };
        // The image whose layers and history end here, if one is stored.
        let owner = all.iter().find(|o| {
            o.config.history.len() == i + 1
                && o.manifest.layers.len() == layer
                && o.manifest
                    .layers
                    .iter()
                    .zip(layers)
                    .all(|(a, b)| a.digest == b.digest)
        });
        let s = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        rows.push(HistoryRow {
            id: owner.map(|o| o.id().clone()),
            created: h.get("created").and_then(Value::as_str).map(str::to_owned),
            created_by: s("created_by"),
            size,
            comment: s("comment"),
            tags: owner
                .map(|o| o.names.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
        });
    }
    if rows.is_empty() {
        rows.push(HistoryRow {
            id: None,
            created: image.config.created.clone(),
            created_by: String::new(),
            size: layers.iter().map(|l| l.size).sum(),
            comment: String::new(),
            tags: Vec::new(),
        });
    }
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top.id = Some(image.id().clone());
        top.tags = image.names.iter().map(ToString::to_string).collect();
    }
    Ok(rows)
}

/// `cairn history`.
pub fn history(ctx: &Context, a: HistoryArgs) -> anyhow::Result<u8> {
    let format = Format::parse(a.format.as_deref(), "history")?;
    let store = ctx.store()?;
    let image = find_image(&store, ctx, &a.image)?;
    let rows = history_rows(&store, &image)?;
    let id = |r: &HistoryRow| match &r.id {
        None => "<missing>".to_owned(),
        Some(d) if a.no_trunc => d.hex().to_owned(),
        Some(d) => d.hex()[..12].to_owned(),
    };
    if a.quiet {
        for r in &rows {
            println!("{}", id(r));
        }
        return Ok(0);
    }
    let created = |r: &HistoryRow| {
        if a.human {
            output::ago(r.created.as_deref())
        } else {
            r.created.clone().unwrap_or_default()
        }
    };
    let size = |r: &HistoryRow| {
        if a.human {
            output::size(r.size)
        } else {
            r.size.to_string()
        }
    };
    let created_by = |r: &HistoryRow| {
        let s = r.created_by.trim().to_owned();
        if !a.no_trunc && s.chars().count() > 45 {
            format!("{}...", s.chars().take(42).collect::<String>())
        } else {
            s
        }
    };
    match format {
        Format::Default => {
            let mut t = Table::default();
            t.row(["ID", "CREATED", "CREATED BY", "SIZE", "COMMENT"]);
            for r in &rows {
                t.row([id(r), created(r), created_by(r), size(r), r.comment.clone()]);
            }
            print!("{}", t.render());
        }
        Format::Json => {
            let docs: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id.as_ref().map_or("<missing>".to_owned(), |d| d.hex().to_owned()),
                        "created": r.created,
                        "CreatedBy": r.created_by,
                        "size": r.size,
                        "comment": r.comment,
                        "tags": r.tags,
                    })
                })
                .collect();
            println!("{}", output::json_indent(&Value::Array(docs), 4));
        }
        Format::Template { .. } => {
            let items: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "ID": id(r),
                        "Created": created(r),
                        "CreatedAt": r.created.clone().unwrap_or_default(),
                        "CreatedSince": output::ago(r.created.as_deref()),
                        "CreatedBy": created_by(r),
                        "Size": size(r),
                        "Comment": r.comment,
                        "Tags": r.tags,
                    })
                })
                .collect();
            let sample = items.first().cloned().unwrap_or(Value::Null);
            let heads = headers(&sample, &[("CreatedBy", "CREATED BY")]);
            print!("{}", format.render(&items, &heads, false)?);
        }
    }
    Ok(0)
}

/// containers/storage's layer ids: the chain ids of the diff ids.
fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::new();
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::sha256_of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// `cairn image tree`.
pub fn tree(ctx: &Context, a: TreeArgs) -> anyhow::Result<u8> {
    if a.whatrequires {
        return Err(crate::cmd::image::refuse(
            "--whatrequires",
            "cairn records no parent links between images",
        ));
    }
    let store = ctx.store()?;
    let image = find_image(&store, ctx, &a.image)?;
    let all = store.images()?;
    let tags: Vec<String> = image.names.iter().map(ToString::to_string).collect();
    let mut out = String::new();
    out.push_str(&format!("Image ID: {}\n", &image.id().hex()[..12]));
    out.push_str(&format!("Tags:     [{}]\n", tags.join(" ")));
    out.push_str(&format!(
        "Size:     {}\n",
        output::size_compact(image.size())
    ));
    out.push_str("Image Layers\n");
    let chains = chain_ids(&image.config.rootfs.diff_ids);
    let n = chains.len();
    for (i, chain) in chains.iter().enumerate() {
        let size = image.manifest.layers.get(i).map_or(0, |l| l.size);
        let branch = if i + 1 == n {
            "└── "
        } else {
            "├── "
        };
        let mut line = format!(
            "{branch}ID: {} Size: {:>7}",
            &chain.hex()[..12],
            output::size_compact(size)
        );
        // Images whose top layer this is.
        let tops: Vec<String> = all
            .iter()
            .filter(|o| chain_ids(&o.config.rootfs.diff_ids).last() == Some(chain))
            .flat_map(|o| o.names.iter().map(ToString::to_string))
            .collect();
        if !tops.is_empty() {
            line.push_str(&format!(" Top Layer of: [{}]", tops.join(" ")));
        }
        out.push_str(&line);
        out.push('\n');
    }
    print!("{out}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_by_quotes_words() {
        assert_eq!(
            shell_words(&["sh".into(), "-c".into(), "echo hi > /x".into()]),
            "sh -c 'echo hi > /x'"
        );
    }

    #[test]
    fn chain_ids_as_containers_storage() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], Digest::sha256_of(format!("{a} {b}").as_bytes()));
    }
}
