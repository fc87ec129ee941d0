//! Command-line definition (podman's verbs and flags) and dispatch.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::cmd;
use crate::context::Context;

/// cairn: daemonless containers, podman's commands.
#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Daemonless, setuid-free container engine with podman's commands",
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Storage root (default /var/lib/cairn as root, $XDG_DATA_HOME/cairn otherwise).
    #[arg(long, global = true, env = "CAIRN_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Log messages at this level and above: error, warn, info, debug, trace.
    #[arg(long, global = true, default_value = "warn", value_name = "LEVEL")]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pull an image from a registry, an OCI layout (oci:DIR[:REF]) or archive (oci-archive:FILE[:REF]).
    Pull(PullArgs),
    /// List images.
    #[command(visible_alias = "list")]
    Images(ImagesArgs),
    /// Remove images.
    Rmi(RmiArgs),
    /// Add names to an image.
    Tag(TagArgs),
    /// Show details of images as JSON.
    Inspect(InspectArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Log in to a registry.
    Login(LoginArgs),
    /// Log out of a registry.
    Logout(LogoutArgs),
    /// Manage the store.
    #[command(subcommand)]
    System(SystemCommand),
    /// Unpack an image (or raw layer blobs) into a directory, like umoci unpack.
    Unpack(UnpackArgs),
    /// Show version information.
    Version(VersionArgs),
}

/// `cairn image …`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Pull an image.
    Pull(PullArgs),
    /// List images.
    #[command(visible_alias = "ls")]
    List(ImagesArgs),
    /// Remove images.
    Rm(RmiArgs),
    /// Add names to an image.
    Tag(TagArgs),
    /// Show details of images.
    Inspect(InspectArgs),
    /// Remove dangling (or, with -a, all) images and unused blobs.
    Prune(PruneArgs),
    /// Exit 0 if the image exists locally, 1 if not.
    Exists(ExistsArgs),
}

/// `cairn system …`.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show disk usage.
    Df(DfArgs),
    /// Verify every blob digest and every image reference in the store.
    Check(CheckArgs),
    /// Remove unused images, blobs and abandoned downloads.
    Prune(PruneArgs),
}

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
}

/// `images` flags.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only images matching this reference (a name, optionally with tag).
    pub reference: Option<String>,
    /// Show all images (cairn has no intermediate images; accepted for podman compatibility).
    #[arg(short, long)]
    pub all: bool,
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
    #[arg(required = true)]
    pub names: Vec<String>,
    /// What to inspect: image, container or all.
    #[arg(short, long = "type", default_value = "all")]
    pub kind: String,
    /// Go template applied to each result, or json.
    #[arg(short, long)]
    pub format: Option<String>,
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
    /// Remove corrupt blobs and the refs that need them (nothing is refetched).
    #[arg(short, long)]
    pub repair: bool,
}

/// `login` flags.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host[:port].
    pub registry: String,
    /// User name.
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin).
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Auth file to write.
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    /// Require HTTPS and verify certificates.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// Directory of CA certificates (*.crt) to trust for the registry.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Print the user name stored for the registry and exit.
    #[arg(long)]
    pub get_login: bool,
}

/// `logout` flags.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host[:port].
    pub registry: Option<String>,
    /// Remove all stored credentials.
    #[arg(short, long)]
    pub all: bool,
    /// Auth file to edit.
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
}

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

/// `version` flags.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Output format: json.
    #[arg(short, long)]
    pub format: Option<String>,
}

/// Parses the command line and runs the command; returns the exit code.
pub fn run() -> anyhow::Result<u8> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Usage errors exit 125 like podman's; --help and --version 0.
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => crate::exit::ENGINE,
            };
            let _ = e.print();
            return Ok(code);
        }
    };
    init_logging(&cli.log_level)?;
    let ctx = Context::new(cli.root.clone());
    match cli.command {
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => cmd::image::pull(&ctx, a),
        Command::Images(a) | Command::Image(ImageCommand::List(a)) => cmd::image::images(&ctx, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => cmd::image::rmi(&ctx, a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => cmd::image::tag(&ctx, a),
        Command::Inspect(a) => cmd::image::inspect(&ctx, a),
        Command::Image(ImageCommand::Inspect(mut a)) => {
            a.kind = "image".into();
            cmd::image::inspect(&ctx, a)
        }
        Command::Image(ImageCommand::Prune(a)) => cmd::image::prune(&ctx, a),
        Command::Image(ImageCommand::Exists(a)) => cmd::image::exists(&ctx, a),
        Command::Login(a) => cmd::login::login(&ctx, a),
        Command::Logout(a) => cmd::login::logout(&ctx, a),
        Command::System(SystemCommand::Df(a)) => cmd::system::df(&ctx, a),
        Command::System(SystemCommand::Check(a)) => cmd::system::check(&ctx, a),
        Command::System(SystemCommand::Prune(a)) => cmd::system::prune(&ctx, a),
        Command::Unpack(a) => cmd::unpack::unpack(&ctx, a),
        Command::Version(a) => cmd::system::version(a),
    }
}

fn init_logging(level: &str) -> anyhow::Result<()> {
    let level = match level.to_ascii_lowercase().as_str() {
        "error" | "fatal" | "panic" => tracing::Level::ERROR,
        "warn" | "warning" => tracing::Level::WARN,
        "info" => tracing::Level::INFO,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        other => {
            return Err(crate::exit::with_code(
                crate::exit::ENGINE,
                format!("invalid --log-level {other:?}: use error, warn, info, debug or trace"),
            ))
        }
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    Ok(())
}
