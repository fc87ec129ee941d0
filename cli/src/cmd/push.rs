//! `push` and `image push`: send a stored image to a registry
//! (`[docker://]HOST/REPO[:TAG|@DIGEST]`), with podman 4.3's flags.
//!
//! Every podman flag is implemented, accepted as a documented no-op (help
//! text starting "Accepted for podman compatibility"), or refused with
//! `cairn does not support --X (WHY)`, exit 125, before anything happens.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use cairn_registry::push::{
    mount_sources, prepare, push, ManifestFormat, PushOptions, PushProgress,
};
use cairn_registry::RegistryOptions;
use cairn_store::compress::Compression;
use cairn_store::{Image, Name, Reference, DOCKER_HUB};
use clap::Args;

use crate::cmd::image::refuse;
use crate::context::Context;
use crate::exit;

/// `push` flags (podman 4.3's).
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image to push: a name or id in the store.
    pub image: String,
    /// Where to: [docker://]HOST/REPO[:TAG|@DIGEST] (default: the image's own name).
    pub destination: Option<String>,
    /// Auth file to read credentials from.
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    /// Directory of CA certificates (*.crt) to trust for the registry.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Accepted for podman compatibility: it only applies to dir: destinations; registry pushes ignore it, as podman's do.
    #[arg(long)]
    pub compress: bool,
    /// Recompress the layers: gzip or zstd (default: as stored).
    #[arg(long, value_name = "FORMAT")]
    pub compression_format: Option<String>,
    /// Recompress layers already in --compression-format too.
    #[arg(long)]
    pub force_compression: bool,
    /// Credentials USERNAME:PASSWORD for the registry.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub creds: Option<String>,
    /// Write the digest of the pushed manifest to this file.
    #[arg(long, value_name = "FILE")]
    pub digestfile: Option<PathBuf>,
    /// Accepted for podman compatibility: a Docker option podman ignores too.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub disable_content_trust: Option<bool>,
    /// Manifest type: oci or v2s2 (default: the stored image's).
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Print no progress.
    #[arg(short, long)]
    pub quiet: bool,
    /// Accepted for podman compatibility: cairn stores no signatures, so there are none to discard.
    #[arg(long)]
    pub remove_signatures: bool,
    /// Refused: cairn does not sign images.
    #[arg(long, value_name = "KEY", hide = true)]
    pub sign_by: Option<String>,
    /// Refused: cairn does not sign images.
    #[arg(long, value_name = "PATH", hide = true)]
    pub sign_by_sigstore_private_key: Option<PathBuf>,
    /// Refused: cairn does not sign images.
    #[arg(long, value_name = "PATH", hide = true)]
    pub sign_passphrase_file: Option<PathBuf>,
    /// Require HTTPS and verify certificates (false: allow plain HTTP and self-signed).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// Retries after a failed request (connection errors, 429, 5xx).
    #[arg(long, value_name = "N")]
    pub retry: Option<u32>,
    /// Fixed delay between retries (e.g. 2s, 500ms); default exponential backoff.
    #[arg(long, value_name = "DURATION")]
    pub retry_delay: Option<String>,
    /// Blobs uploaded in parallel.
    #[arg(long, value_name = "N", env = "CAIRN_PUSH_JOBS", default_value_t = PushOptions::DEFAULT_JOBS)]
    pub jobs: usize,
    /// Blobs larger than this many bytes are uploaded in chunks of this size.
    #[arg(long, value_name = "BYTES", env = "CAIRN_PUSH_CHUNK_SIZE", default_value_t = PushOptions::DEFAULT_CHUNK_SIZE, hide = true)]
    pub chunk_size: u64,
}

/// Where a push goes.
#[derive(Debug, PartialEq, Eq)]
enum Destination {
    /// A registry (`docker://`, or no transport).
    Registry(String),
    /// `oci:`, `oci-archive:`, `docker-archive:`, `dir:`: written by the
    /// archive module.
    Archive {
        transport: &'static str,
        rest: String,
    },
}

/// `push IMAGE oci:…|oci-archive:…|docker-archive:…|dir:…`.
fn push_to_archive(
    store: &cairn_store::Store,
    image: &Image,
    dest_text: &str,
    quiet: bool,
) -> anyhow::Result<u8> {
    use cairn_store::archive::{write_image, Destination as Local, SaveImage, WriteOptions};
    let dest = Local::parse(dest_text)?.ok_or_else(|| {
        exit::with_code(exit::ENGINE, format!("{dest_text}: not a local transport"))
    })?;
    if !quiet {
        eprintln!("Getting image source signatures");
    }
    let one = SaveImage {
        image: image.clone(),
        names: image.names.clone(),
    };
    write_image(store, &[one], &dest, &WriteOptions::default())
        .map_err(|e| exit::with_code(exit::ENGINE, format!("push {}: {e}", dest.describe())))?;
    if !quiet {
        eprintln!("Writing manifest to image destination");
        eprintln!("Storing signatures");
    }
    Ok(0)
}

impl Destination {
    fn parse(s: &str) -> anyhow::Result<Destination> {
        if let Some(rest) = s.strip_prefix("docker://") {
            return Ok(Destination::Registry(rest.to_owned()));
        }
        for transport in ["oci-archive", "docker-archive", "oci", "dir"] {
            if let Some(rest) = s.strip_prefix(transport).and_then(|r| r.strip_prefix(':')) {
                return Ok(Destination::Archive {
                    transport,
                    rest: rest.to_owned(),
                });
            }
        }
        // `transport:rest` with a transport cairn does not write: podman's
        // other transports, or a URL scheme (`ftp://…`). Anything else with
        // a colon is a name with a tag or a registry port.
        if let Some((t, rest)) = s.split_once(':') {
            let podmans = [
                "containers-storage",
                "docker-daemon",
                "ostree",
                "sif",
                "tarball",
            ];
            if podmans.contains(&t) || (rest.starts_with("//") && !t.is_empty()) {
                return Err(exit::with_code(
                    exit::ENGINE,
                    format!(
                        "{s}: unsupported destination transport {t:?}: cairn pushes to docker://HOST/REPO[:TAG], oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF] and dir:DIR"
                    ),
                ));
            }
        }
        Ok(Destination::Registry(s.to_owned()))
    }
}

/// `cairn push`.
pub fn push_verb(ctx: &Context, a: PushArgs) -> anyhow::Result<u8> {
    refuse_flags(&a)?;
    let format = match a.format.as_deref() {
        None => None,
        Some("oci") => Some(ManifestFormat::Oci),
        Some("v2s2") => Some(ManifestFormat::Docker),
        Some("v2s1") => {
            return Err(refuse(
                "--format v2s1",
                "docker schema 1 is deprecated and unsigned; use oci or v2s2",
            ))
        }
        Some(other) => {
            return Err(exit::with_code(
                exit::ENGINE,
                format!("--format {other:?}: unknown manifest type; use oci or v2s2"),
            ))
        }
    };
    let compression = match a.compression_format.as_deref() {
        None => None,
        Some("gzip") => Some(Compression::Gzip),
        Some("zstd") => Some(Compression::Zstd),
        Some(c) => {
            return Err(exit::with_code(
                exit::ENGINE,
                format!("--compression-format {c:?}: unknown; use gzip or zstd"),
            ))
        }
    };
    if a.force_compression && compression.is_none() {
        return Err(exit::with_code(
            exit::ENGINE,
            "--force-compression needs --compression-format gzip or zstd",
        ));
    }
    let store = ctx.store()?;
    let search = ctx.search_registries().unwrap_or_default();
    let image = store.find_image(&a.image, &search).map_err(|e| {
        exit::with_code(
            exit::ENGINE,
            format!("{e}: nothing to push; pull or tag it first (`cairn images` lists the store)"),
        )
    })?;
    let dest_text = a.destination.clone().unwrap_or_else(|| a.image.clone());
    let dest = match Destination::parse(&dest_text)? {
        Destination::Registry(r) => destination_ref(&image, &a.image, &r, a.destination.is_some())?,
        // Local transports: the archive writers `save` uses; layers go out
        // as stored (uncompressed in a docker archive), as podman's do.
        Destination::Archive { .. } => return push_to_archive(&store, &image, &dest_text, a.quiet),
    };
    let opts = PushOptions {
        registry: registry_options(&a)?,
        jobs: a.jobs.max(1),
        chunk_size: a.chunk_size.max(1),
        format,
        compression,
        force_compression: a.force_compression,
    };
    let prepared = prepare(&store, &image, &opts).map_err(|e| e.for_image(&a.image))?;
    let progress: Arc<dyn PushProgress> = Arc::from(crate::progress::for_pull(a.quiet));
    tracing::debug!(
        "pushing {} to {dest}; mount sources: {:?}",
        a.image,
        mount_sources(&image, &dest)
    );
    // An upload the registry (or a proxy) cuts mid-body is written with
    // writev, which raises SIGPIPE: `main` gave it back its default action
    // (killing cairn). Blocked in this thread before the runtime's threads
    // exist (they inherit the mask), the write fails with EPIPE instead and
    // the upload resumes.
    let mut pipe = nix::sys::signal::SigSet::empty();
    pipe.add(nix::sys::signal::Signal::SIGPIPE);
    nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&pipe), None)
        .context("blocking SIGPIPE for the upload")?;
    let rt = super::runtime()?;
    let pushed = rt.block_on(push(&store, &image, &prepared, &dest, &opts, progress))?;
    tracing::debug!(
        "{} uploaded ({} bytes), {} mounted, {} skipped",
        pushed.blobs_uploaded,
        pushed.bytes_sent,
        pushed.blobs_mounted,
        pushed.blobs_skipped
    );
    if !a.quiet {
        eprintln!("Storing signatures");
    }
    if let Some(f) = &a.digestfile {
        std::fs::write(f, pushed.manifest_digest.to_string())
            .with_context(|| format!("--digestfile: cannot write {}", f.display()))?;
    }
    cairn_engine::events::record(
        ctx.root(),
        &cairn_engine::events::image_event("push", image.id().hex(), &dest.to_string()),
    );
    Ok(0)
}

/// The flags refused whatever the destination.
fn refuse_flags(a: &PushArgs) -> anyhow::Result<()> {
    if a.sign_by.is_some() {
        return Err(refuse("--sign-by", "cairn does not sign images"));
    }
    if a.sign_by_sigstore_private_key.is_some() {
        return Err(refuse(
            "--sign-by-sigstore-private-key",
            "cairn does not sign images",
        ));
    }
    if a.sign_passphrase_file.is_some() {
        return Err(refuse(
            "--sign-passphrase-file",
            "cairn does not sign images",
        ));
    }
    Ok(())
}

/// The reference to push to: `dest` as given, or (no destination) the
/// image's own name the user typed.
fn destination_ref(
    image: &Image,
    typed: &str,
    dest: &str,
    given: bool,
) -> anyhow::Result<Reference> {
    let bad = |e: &dyn std::fmt::Display| {
        exit::with_code(
            exit::ENGINE,
            format!("{dest}: not a registry destination ({e}); use [docker://]HOST/REPO[:TAG]"),
        )
    };
    let name = Name::parse(dest).map_err(|e| bad(&e))?;
    if given || !name.is_short() {
        return name.qualify(DOCKER_HUB).map_err(|e| bad(&e));
    }
    // A short name or an id: the image's name it stands for.
    let found = image
        .names
        .iter()
        .find(|n| name.qualify(n.registry()).is_ok_and(|q| &q == *n));
    match found {
        Some(n) => Ok(n.clone()),
        None => Err(exit::with_code(
            exit::ENGINE,
            format!("{typed}: no registry name to push to; give a destination, e.g. `cairn push {typed} HOST/REPO:TAG`"),
        )),
    }
}

fn registry_options(a: &PushArgs) -> anyhow::Result<RegistryOptions> {
    super::RegistryFlags {
        tls_verify: a.tls_verify,
        authfile: a.authfile.as_deref(),
        cert_dir: a.cert_dir.as_deref(),
        creds: a.creds.as_deref(),
        retry: a.retry,
        retry_delay: a.retry_delay.as_deref(),
    }
    .options()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let reg = |s: &str| Destination::Registry(s.to_owned());
        assert_eq!(
            Destination::parse("docker://h:5000/a/b:t").unwrap(),
            reg("h:5000/a/b:t")
        );
        assert_eq!(
            Destination::parse("h:5000/a/b:t").unwrap(),
            reg("h:5000/a/b:t")
        );
        assert_eq!(
            Destination::parse("localhost:5000/a").unwrap(),
            reg("localhost:5000/a")
        );
        assert_eq!(Destination::parse("debian:12").unwrap(), reg("debian:12"));
        assert_eq!(
            Destination::parse("oci:/tmp/x:tag").unwrap(),
            Destination::Archive {
                transport: "oci",
                rest: "/tmp/x:tag".into()
            }
        );
        assert_eq!(
            Destination::parse("oci-archive:/tmp/x.tar").unwrap(),
            Destination::Archive {
                transport: "oci-archive",
                rest: "/tmp/x.tar".into()
            }
        );
        let e = Destination::parse("ftp://example/x")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unsupported destination transport \"ftp\""),
            "{e}"
        );
        assert!(Destination::parse("containers-storage:x").is_err());
    }
}
