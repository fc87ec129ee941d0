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
    /// Create a container (without starting it).
    #[command(disable_help_flag = true)]
    Create(CreateArgs),
    /// Create and start a container.
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Start containers.
    Start(StartArgs),
    /// Stop containers: the stop signal, then SIGKILL after a timeout.
    Stop(StopArgs),
    /// Send a signal to containers.
    Kill(KillArgs),
    /// Restart containers.
    Restart(StopArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// List containers.
    #[command(visible_aliases = ["ls"])]
    Ps(PsArgs),
    /// Show a container's log.
    Logs(LogsArgs),
    /// Wait for containers to stop; print their exit codes.
    Wait(WaitArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// Copy files between a container and the host.
    Cp(CpArgs),
    /// An interactive login shell in a container (started if stopped).
    Enter(EnterArgs),
    /// Show the processes of a container.
    Top(TopArgs),
    /// Show system information.
    Info(InfoArgs),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Internal: the container side of `cp`, chrooted into the container.
    #[command(name = "__cp", hide = true)]
    CpChild(CpChildArgs),
}

/// `__cp` arguments (internal).
#[derive(Debug, Args)]
pub struct CpChildArgs {
    /// out, in or in-chown.
    pub mode: String,
    /// Container id.
    pub id: String,
    /// Path in the container.
    pub path: String,
    /// Name of the copied top-level entry.
    pub name: String,
}

/// `cairn container …`.
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create a container.
    #[command(disable_help_flag = true)]
    Create(CreateArgs),
    /// Create and start a container.
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Start containers.
    Start(StartArgs),
    /// Stop containers.
    Stop(StopArgs),
    /// Send a signal to containers.
    Kill(KillArgs),
    /// Restart containers.
    Restart(StopArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// List containers.
    #[command(visible_aliases = ["ls", "ps"])]
    List(PsArgs),
    /// Show a container's log.
    Logs(LogsArgs),
    /// Wait for containers to stop.
    Wait(WaitArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// Copy files between a container and the host.
    Cp(CpArgs),
    /// Show details of containers.
    Inspect(InspectArgs),
    /// Remove every stopped container.
    Prune(ContainerPruneArgs),
    /// Exit 0 if the container exists, 1 if not.
    Exists(ExistsArgs),
    /// Show the processes of a container.
    Top(TopArgs),
}

/// `create` flags (also `run`'s).
#[derive(Debug, Args, Clone)]
pub struct CreateArgs {
    /// IMAGE, then the command and its arguments (flags after IMAGE belong to the command).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND [ARG...]]"
    )]
    pub args: Vec<String>,
    /// Container name (default: a random adjective_noun).
    #[arg(long)]
    pub name: Option<String>,
    /// Host name inside the container (default: the first 12 characters of the id).
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// USER[:GROUP], names or numbers from the container's /etc/passwd and /etc/group.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Set environment variables (KEY=VALUE; KEY alone copies ours).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE per line).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<String>,
    /// Set metadata labels (KEY=VALUE).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Bind a host path or volume: [SRC:]DST[:OPTS] (ro, rw, z, Z, [r]shared, [r]slave, [r]private, nosuid, nodev, noexec).
    #[arg(short, long = "volume", value_name = "[SRC:]DST[:OPTS]")]
    pub volume: Vec<String>,
    /// Attach a mount: type=bind|tmpfs|volume,source=…,target=…[,ro][,…].
    #[arg(long = "mount", value_name = "type=TYPE,…")]
    pub mount: Vec<String>,
    /// Mount a tmpfs: DST[:OPTS].
    #[arg(long = "tmpfs", value_name = "DST[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Override the image's entrypoint: a string or a JSON array.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Give the container all capabilities, the host's devices, no masked paths.
    #[arg(long)]
    pub privileged: bool,
    /// Network namespace: host, none or private.
    #[arg(long, alias = "net", value_name = "MODE")]
    pub network: Option<String>,
    /// PID namespace: host or private.
    #[arg(long, value_name = "MODE")]
    pub pid: Option<String>,
    /// IPC namespace: host or private.
    #[arg(long, value_name = "MODE")]
    pub ipc: Option<String>,
    /// UTS namespace: host or private.
    #[arg(long, value_name = "MODE")]
    pub uts: Option<String>,
    /// cgroup namespace: host or private.
    #[arg(long, value_name = "MODE")]
    pub cgroupns: Option<String>,
    /// User namespace: host, keep-id or private (see the README for rootless mode).
    #[arg(long, value_name = "MODE")]
    pub userns: Option<String>,
    /// Security options: label=disable, no-new-privileges, seccomp=unconfined, …
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Add capabilities.
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop capabilities.
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Add supplementary groups.
    #[arg(long = "group-add", value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// Run a tiny init as PID 1 that forwards signals and reaps zombies.
    #[arg(long)]
    pub init: bool,
    /// Signal that stops the container (default: the image's, else SIGTERM).
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds to wait after the stop signal before SIGKILL.
    #[arg(long = "stop-timeout", value_name = "SECONDS")]
    pub stop_timeout: Option<u64>,
    /// Pull the image: always, missing, never, newer.
    #[arg(long, default_value = "missing", value_name = "POLICY")]
    pub pull: String,
    /// Mount the container's root read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// With --read-only, tmpfs on /run, /tmp and /var/tmp.
    #[arg(long = "read-only-tmpfs", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub read_only_tmpfs: bool,
    /// DNS servers.
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// DNS search domains.
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// DNS options.
    #[arg(long = "dns-option", alias = "dns-opt", value_name = "OPT")]
    pub dns_option: Vec<String>,
    /// Add NAME:IP to /etc/hosts.
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// Limit the number of processes (recorded; needs a delegated cgroup to apply).
    #[arg(long = "pids-limit", value_name = "N")]
    pub pids_limit: Option<i64>,
    /// Resource limits: TYPE=SOFT[:HARD] (nofile, nproc, core, …).
    #[arg(long, value_name = "TYPE=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
    /// Annotations (KEY=VALUE).
    #[arg(long, value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,
    /// Platform of the image to pull: OS/ARCH[/VARIANT].
    #[arg(long)]
    pub platform: Option<String>,
    /// systemd mode: true, false or always (accepted; cairn sets no systemd-specific mounts).
    #[arg(long, default_value = "true", value_name = "MODE")]
    pub systemd: String,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Size of /dev/shm (e.g. 64m).
    #[arg(long = "shm-size", value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// Suppress pull progress.
    #[arg(short, long)]
    pub quiet: bool,
    /// Require HTTPS when pulling.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// Log driver (k8s-file is what cairn writes; others are refused).
    #[arg(long = "log-driver", value_name = "DRIVER")]
    pub log_driver: Option<String>,
    /// Write the container id to this file.
    #[arg(long)]
    pub cidfile: Option<PathBuf>,
    /// Accepted for podman compatibility: publish ports (cairn uses the host network by default).
    #[arg(short = 'p', long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,
    /// Accepted for podman compatibility: hooks, cgroup and device options cairn does not apply.
    #[arg(long = "device", value_name = "DEVICE")]
    pub device: Vec<String>,
    /// Print help (-h is --hostname, as in podman).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

/// `run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

/// `start` flags.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Containers (names or ids).
    pub containers: Vec<String>,
    /// Attach to the container's output and wait for it.
    #[arg(short, long)]
    pub attach: bool,
    /// Attach stdin.
    #[arg(short, long)]
    pub interactive: bool,
    /// Start every container.
    #[arg(long)]
    pub all: bool,
}

/// `stop` and `restart` flags.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Containers (names or ids).
    pub containers: Vec<String>,
    /// Seconds to wait before SIGKILL (default: the container's stop timeout).
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "timeout",
        value_name = "SECONDS"
    )]
    pub time: Option<u64>,
    /// Every running container.
    #[arg(short, long)]
    pub all: bool,
    /// Do not fail for containers that do not exist.
    #[arg(short, long)]
    pub ignore: bool,
}

/// `kill` flags.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Containers (names or ids).
    pub containers: Vec<String>,
    /// Signal to send.
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    /// Every running container.
    #[arg(short, long)]
    pub all: bool,
}

/// `rm` flags.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Containers (names or ids).
    pub containers: Vec<String>,
    /// Stop running containers first.
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes too.
    #[arg(short, long)]
    pub volumes: bool,
    /// Every container.
    #[arg(short, long)]
    pub all: bool,
    /// Do not fail for containers that do not exist.
    #[arg(short, long)]
    pub ignore: bool,
    /// Seconds to wait for a stop before SIGKILL.
    #[arg(short = 't', long = "time", value_name = "SECONDS")]
    pub time: Option<u64>,
    /// Internal (`run -d --rm`): wait for the container to exit, then remove it.
    #[arg(long, hide = true)]
    pub after_exit: bool,
}

/// `exec` flags.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// CONTAINER, then the command and its arguments.
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true, value_name = "CONTAINER COMMAND [ARG...]")]
    pub args: Vec<String>,
    /// Run in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// USER[:GROUP] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Environment variables.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Environment files.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<String>,
    /// All capabilities.
    #[arg(long)]
    pub privileged: bool,
}

/// `ps` flags.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers, not only running ones.
    #[arg(short, long)]
    pub all: bool,
    /// Print only ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate ids and commands.
    #[arg(long)]
    pub no_trunc: bool,
    /// Output format: table, json, or a Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// Filter: name=, label=KEY[=VALUE], status=, id=, ancestor=, exited=.
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Omit the table header.
    #[arg(short = 'n', long = "noheading")]
    pub noheading: bool,
    /// Show the latest container only.
    #[arg(short, long)]
    pub latest: bool,
    /// Show the last N containers.
    #[arg(long)]
    pub last: Option<usize>,
    /// Accepted for podman compatibility (no sizes computed).
    #[arg(short, long)]
    pub size: bool,
    /// Accepted for podman compatibility (no pods).
    #[arg(short, long)]
    pub pod: bool,
    /// Accepted for podman compatibility (no external containers).
    #[arg(long)]
    pub external: bool,
    /// Accepted for podman compatibility (sort field).
    #[arg(long)]
    pub sort: Option<String>,
}

/// `logs` flags.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Containers (names or ids).
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Follow the log until the container stops.
    #[arg(short, long)]
    pub follow: bool,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only lines at or after this time (RFC 3339, Unix time, or a duration like 10m).
    #[arg(long)]
    pub since: Option<String>,
    /// Only lines before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// Only the last N lines (-1: all).
    #[arg(long, allow_negative_numbers = true)]
    pub tail: Option<i64>,
    /// Prefix lines with the container name (several containers).
    #[arg(short, long)]
    pub names: bool,
    /// Show the latest container's log.
    #[arg(short, long)]
    pub latest: bool,
}

/// `wait` flags.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Containers (names or ids).
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Conditions to wait for (stopped, exited, running, …).
    #[arg(long = "condition", value_name = "STATE")]
    pub condition: Vec<String>,
    /// Do not fail for containers that do not exist.
    #[arg(short, long)]
    pub ignore: bool,
}

/// `rename` arguments.
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The container.
    pub container: String,
    /// Its new name.
    pub name: String,
}

/// `cp` arguments.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// SRC: a host path or CONTAINER:PATH.
    pub source: String,
    /// DST: a host path or CONTAINER:PATH (`-` for a tar stream on stdout).
    pub destination: String,
    /// Archive mode: keep owners (the default for copies into a container).
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub archive: bool,
    /// Accepted for podman compatibility.
    #[arg(long)]
    pub overwrite: bool,
}

/// `enter` arguments.
#[derive(Debug, Args)]
pub struct EnterArgs {
    /// The container.
    pub container: String,
    /// The user whose login shell to run (default: the container's user).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Extra environment variables.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory (default: the user's home).
    #[arg(short, long)]
    pub workdir: Option<String>,
}

/// `top` arguments.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The container.
    pub container: String,
    /// ps(1) options (as for podman top, only descriptors are not supported: plain ps options).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub options: Vec<String>,
}

/// `info` flags.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Output format: json or a Go template.
    #[arg(short, long)]
    pub format: Option<String>,
}

/// `container prune` flags.
#[derive(Debug, Args)]
pub struct ContainerPruneArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
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
    /// Verify blobs, refs, objects, changesets, image roots and containers.
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
    /// Decode the layers and build the image root while downloading (false:
    /// store the blobs only, like `skopeo copy`; the first create builds the
    /// root).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub unpack: bool,
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
    /// Remove what is corrupt (blobs and the refs that need them, objects,
    /// changesets, image roots, container leftovers) and rebuild image roots
    /// from stored blobs; nothing is fetched: it says what to pull.
    #[arg(short, long)]
    pub repair: bool,
    /// Compare every entry of every image root with its plan (default: a sample).
    #[arg(long)]
    pub full: bool,
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
    if !cairn_engine::userns::child_setup()?
        && !nix::unistd::geteuid().is_root()
        && needs_userns(&cli.command)
    {
        return Ok(cairn_engine::userns::reenter(ctx.root())?);
    }
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
        Command::Create(a) | Command::Container(ContainerCommand::Create(a)) => {
            cmd::container::create(&ctx, a)
        }
        Command::Run(a) | Command::Container(ContainerCommand::Run(a)) => {
            cmd::container::run(&ctx, a)
        }
        Command::Start(a) | Command::Container(ContainerCommand::Start(a)) => {
            cmd::container::start(&ctx, a)
        }
        Command::Stop(a) | Command::Container(ContainerCommand::Stop(a)) => {
            cmd::container::stop(&ctx, a)
        }
        Command::Restart(a) | Command::Container(ContainerCommand::Restart(a)) => {
            cmd::container::restart(&ctx, a)
        }
        Command::Kill(a) | Command::Container(ContainerCommand::Kill(a)) => {
            cmd::container::kill(&ctx, a)
        }
        Command::Rm(a) | Command::Container(ContainerCommand::Rm(a)) => cmd::container::rm(&ctx, a),
        Command::Exec(a) | Command::Container(ContainerCommand::Exec(a)) => {
            cmd::container::exec(&ctx, a)
        }
        Command::Ps(a) | Command::Container(ContainerCommand::List(a)) => {
            cmd::container::ps(&ctx, a)
        }
        Command::Logs(a) | Command::Container(ContainerCommand::Logs(a)) => {
            cmd::container::logs(&ctx, a)
        }
        Command::Wait(a) | Command::Container(ContainerCommand::Wait(a)) => {
            cmd::container::wait(&ctx, a)
        }
        Command::Rename(a) | Command::Container(ContainerCommand::Rename(a)) => {
            cmd::container::rename(&ctx, a)
        }
        Command::Cp(a) | Command::Container(ContainerCommand::Cp(a)) => cmd::cp::cp(&ctx, a),
        Command::Enter(a) => cmd::container::enter(&ctx, a),
        Command::Top(a) | Command::Container(ContainerCommand::Top(a)) => {
            cmd::container::top(&ctx, a)
        }
        Command::Info(a) => cmd::system::info(&ctx, a),
        Command::Container(ContainerCommand::Inspect(mut a)) => {
            a.kind = "container".into();
            cmd::image::inspect(&ctx, a)
        }
        Command::Container(ContainerCommand::Prune(a)) => cmd::container::prune(&ctx, a),
        Command::CpChild(a) => cmd::cp::child_main(&ctx, a),
        Command::Container(ContainerCommand::Exists(a)) => cmd::container::exists(&ctx, a),
    }
}

/// Whether a rootless `cairn` must run `command` in a user namespace of its
/// own: it writes files owned by mapped ids, mounts, or starts containers.
/// Commands that reach into a running container (exec, enter, cp) join that
/// container's namespace instead: a fresh one, although mapped the same, is
/// a sibling without rights over it.
fn needs_userns(command: &Command) -> bool {
    match command {
        Command::Pull(_)
        | Command::Unpack(_)
        | Command::Rmi(_)
        | Command::Create(_)
        | Command::Run(_)
        | Command::Start(_)
        | Command::Restart(_)
        | Command::Rm(_) => true,
        Command::Image(ImageCommand::Pull(_) | ImageCommand::Rm(_) | ImageCommand::Prune(_)) => {
            true
        }
        Command::System(SystemCommand::Prune(_) | SystemCommand::Check(_)) => true,
        Command::Container(c) => matches!(
            c,
            ContainerCommand::Create(_)
                | ContainerCommand::Run(_)
                | ContainerCommand::Start(_)
                | ContainerCommand::Restart(_)
                | ContainerCommand::Rm(_)
                | ContainerCommand::Prune(_)
        ),
        _ => false,
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
    let fmt = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    if level >= tracing::Level::DEBUG {
        // Debugging what takes long: seconds since the command started.
        fmt.with_timer(tracing_subscriber::fmt::time::uptime())
            .init();
    } else {
        fmt.without_time().init();
    }
    Ok(())
}
