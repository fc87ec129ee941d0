//! `save` and `load`: images to and from archives and directories, in
//! podman's formats.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use cairn_store::archive::{
    load_archive, write_archive_to_stdout, write_image, ArchiveFormat, Destination, SaveImage,
    WriteOptions,
};
use cairn_store::{Image, ImageError, Name, Reference};
use clap::Args;

use crate::context::Context;
use crate::exit;

/// `cairn save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Compress tarball image layers when saving to a directory using the 'dir' transport. (default is same compression type as source)
    #[arg(long)]
    pub compress: bool,
    /// Save image to oci-archive, oci-dir (directory with oci manifest type), docker-archive, docker-dir (directory with v2s2 manifest type)
    #[arg(long, default_value = "docker-archive")]
    pub format: String,
    /// Interpret additional arguments as images not tags and create a multi-image-archive (only for docker-archive)
    #[arg(short = 'm', long = "multi-image-archive")]
    pub multi_image_archive: bool,
    /// Write to a specified file (default: stdout, which must be redirected)
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Suppress the output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Accept uncompressed layers when copying OCI images
    #[arg(long)]
    pub uncompressed: bool,
    /// The image, then (docker-archive) more names for it, or with -m more images.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// `cairn load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from specified archive file (default: stdin)
    #[arg(short = 'i', long)]
    pub input: Option<PathBuf>,
    /// Suppress the output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

fn engine(message: String) -> anyhow::Error {
    exit::with_code(exit::ENGINE, message)
}

/// The names to record for `spec`: the image's name that `spec` denotes,
/// none if `spec` is an id, else the image's first name.
fn names_for(image: &Image, spec: &str) -> Vec<Reference> {
    let hit = image.names.iter().find(|n| {
        let s = n.to_string();
        s == spec
            || s.ends_with(&format!("/{spec}"))
            || s == format!("{spec}:latest")
            || s.ends_with(&format!("/{spec}:latest"))
    });
    if let Some(n) = hit {
        return vec![n.clone()];
    }
    let id_like = spec
        .strip_prefix("sha256:")
        .unwrap_or(spec)
        .bytes()
        .all(|b| b.is_ascii_hexdigit());
    if id_like
        && image
            .id()
            .hex()
            .starts_with(spec.strip_prefix("sha256:").unwrap_or(spec))
    {
        return Vec::new();
    }
    image.names.first().cloned().into_iter().collect()
}

fn find(store: &cairn_store::Store, spec: &str, search: &[String]) -> anyhow::Result<Image> {
    store.find_image(spec, search).map_err(|e| match e {
        ImageError::NotKnown(_) => engine(e.to_string()),
        other => anyhow::Error::new(other),
    })
}

/// `cairn save`.
pub fn save(ctx: &Context, a: SaveArgs) -> anyhow::Result<u8> {
    let store = ctx.store()?;
    let search = ctx.search_registries()?;
    let docker_archive = a.format == "docker-archive";
    if !matches!(
        a.format.as_str(),
        "docker-archive" | "oci-archive" | "oci-dir" | "docker-dir"
    ) {
        return Err(engine(format!(
            "unknown format {:?}: use oci-archive, oci-dir, docker-archive or docker-dir",
            a.format
        )));
    }
    if a.multi_image_archive && !docker_archive {
        return Err(engine(format!(
            "--multi-image-archive needs --format docker-archive, not {}",
            a.format
        )));
    }
    let mut images = Vec::new();
    if a.multi_image_archive {
        for spec in &a.images {
            let image = find(&store, spec, &search)?;
            images.push(SaveImage {
                names: names_for(&image, spec),
                image,
            });
        }
    } else {
        let spec = &a.images[0];
        let image = find(&store, spec, &search)?;
        let mut names = names_for(&image, spec);
        if a.images.len() > 1 {
            if !docker_archive {
                return Err(engine(format!(
                    "{} holds one image and no more names; save several with --format docker-archive -m",
                    a.format
                )));
            }
            // podman records the extra names first, the image's own last.
            let mut all = Vec::new();
            for t in &a.images[1..] {
                let r = Name::parse(t)
                    .and_then(|n| n.qualify("localhost"))
                    .map_err(|e| engine(format!("{t}: {e}")))?;
                if !all.contains(&r) {
                    all.push(r);
                }
            }
            for n in names {
                if !all.contains(&n) {
                    all.push(n);
                }
            }
            names = all;
        }
        images.push(SaveImage { image, names });
    }
    let opts = WriteOptions {
        compress: a.compress,
    };
    match (&a.output, a.format.as_str()) {
        (None, "oci-dir" | "docker-dir") => Err(engine(format!(
            "--format {} writes a directory: name it with -o DIR",
            a.format
        ))),
        (None, f) => {
            if std::io::stdout().is_terminal() {
                return Err(engine(
                    "refusing to save to terminal. Use -o flag or redirect".into(),
                ));
            }
            let format = if f == "oci-archive" {
                ArchiveFormat::Oci
            } else {
                ArchiveFormat::Docker
            };
            write_archive_to_stdout(&store, &images, format)?;
            Ok(0)
        }
        (Some(out), f) => {
            let dest = match f {
                "oci-archive" => Destination::OciArchive {
                    file: out.clone(),
                    reference: None,
                },
                "oci-dir" => Destination::OciDir {
                    dir: out.clone(),
                    reference: None,
                },
                "docker-dir" => Destination::DockerDir { dir: out.clone() },
                _ => Destination::DockerArchive {
                    file: out.clone(),
                    references: Vec::new(),
                },
            };
            write_image(&store, &images, &dest, &opts)
                .map_err(|e| engine(format!("save {}: {e}", out.display())))?;
            Ok(0)
        }
    }
}

/// `cairn load`.
pub fn load(ctx: &Context, a: LoadArgs) -> anyhow::Result<u8> {
    let store = ctx.store()?;
    let loaded = match &a.input {
        Some(p) => {
            let mut f = std::fs::File::open(p)
                .map_err(|e| engine(format!("load {}: open: {e}", p.display())))?;
            load_archive(&store, &mut f, &p.display().to_string())
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(engine(
                    "cannot read from terminal, use command-line redirection or the --input flag"
                        .into(),
                ));
            }
            load_archive(&store, &mut stdin.lock(), "standard input")
        }
    }
    .map_err(|e| engine(format!("load: {e}")))?;
    for img in &loaded {
        let shown = if img.names.is_empty() {
            img.id.to_string()
        } else {
            img.names
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let name = img
            .names
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        cairn_engine::events::record(
            ctx.root(),
            &cairn_engine::events::image_event("loadfromarchive", img.id.hex(), &name),
        );
        println!("Loaded image: {shown}");
    }
    Ok(0)
}
