//! `cairn unpack`: an image or raw layers into a directory (umoci unpack).

use std::path::PathBuf;

use cairn_unpacker::{DecodeOptions, IdMap, Mode, Unpacker, UnpackerOptions};
use clap::Args;

use crate::context::Context;
use crate::exit;

/// `unpack` arguments.
#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// IMAGE DIR, or with --layer: LAYER-FILE... DIR.
    #[arg(required = true, num_args = 2.., value_name = "IMAGE|LAYER... DIR")]
    pub args: Vec<String>,
    /// Apply raw layer blobs (gzip, zstd or plain tar) in order instead of an image.
    #[arg(long)]
    pub layer: bool,
    /// copy (a root you will change) or hardlink (read-only, shares the store's files).
    #[arg(long, default_value = "copy", value_parser = ["copy", "hardlink"])]
    pub mode: String,
    /// UID map CONTAINER:HOST:SIZE (repeatable).
    #[arg(long = "uidmap", value_name = "C:H:S")]
    pub uidmap: Vec<String>,
    /// GID map CONTAINER:HOST:SIZE (repeatable).
    #[arg(long = "gidmap", value_name = "C:H:S")]
    pub gidmap: Vec<String>,
    /// Refuse a layer that expands beyond this many bytes (decompression bombs).
    #[arg(long, value_name = "BYTES")]
    pub max_layer_size: Option<u64>,
}

/// Unpacker options from the shared flags.
pub fn unpacker_options(
    uidmap: &[String],
    gidmap: &[String],
    max: Option<u64>,
) -> anyhow::Result<UnpackerOptions> {
    let map = |specs: &[String], what: &str| {
        IdMap::parse_all(specs.iter().map(String::as_str))
            .map_err(|e| exit::with_code(exit::ENGINE, format!("--{what}: {e}")))
    };
    Ok(UnpackerOptions {
        decode: DecodeOptions {
            uid_map: map(uidmap, "uidmap")?,
            gid_map: map(gidmap, "gidmap")?,
            max_layer_size: max.unwrap_or(DecodeOptions::DEFAULT_MAX_LAYER_SIZE),
        },
        ..UnpackerOptions::default()
    })
}

/// `cairn unpack`.
pub fn unpack(ctx: &Context, a: UnpackArgs) -> anyhow::Result<u8> {
    let store = ctx.store()?;
    let opts = unpacker_options(&a.uidmap, &a.gidmap, a.max_layer_size)?;
    let unpacker = Unpacker::new(&store, opts)?;
    let mode = if a.mode == "hardlink" {
        Mode::Hardlink
    } else {
        Mode::Copy
    };
    let (sources, dir) = a.args.split_at(a.args.len() - 1);
    let target = PathBuf::from(&dir[0]);
    let stats = if a.layer {
        let files: Vec<PathBuf> = sources.iter().map(PathBuf::from).collect();
        unpacker
            .unpack_files(&files, &target, mode)
            .map_err(with_limit_hint)?
    } else {
        if sources.len() != 1 {
            return Err(exit::with_code(
                exit::ENGINE,
                "unpack takes one IMAGE and a DIR (or --layer FILE... DIR)",
            ));
        }
        let search = ctx.search_registries()?;
        let image = store
            .find_image(&sources[0], &search)
            .map_err(|e| exit::with_code(exit::ENGINE, e.to_string()))?;
        unpacker
            .unpack_image(&image, &target, mode)
            .map_err(with_limit_hint)?
    };
    for d in &stats.skipped_devices {
        eprintln!("WARN: device node {d} not created (no CAP_MKNOD); containers get the host's devices bound instead");
    }
    Ok(0)
}

/// The unpacker's error, saying how to raise the layer size limit when
/// that is what stopped it.
fn with_limit_hint(e: cairn_unpacker::Error) -> anyhow::Error {
    if e.is_too_large() {
        return anyhow::anyhow!("{e} (raise the limit with --max-layer-size if this is real)");
    }
    e.into()
}
