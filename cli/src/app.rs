//! Command-line definition (podman's verbs and flags) and dispatch.

use std::ops::ControlFlow;
use std::path::PathBuf;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::cmd;
use crate::cmd::archive::{LoadArgs, SaveArgs};
use crate::cmd::build::{BuildArgs, BuildCopyArgs};
/// Images made from containers and tarballs, and their history.
use crate::cmd::commit as out;
use crate::cmd::commit::{CommitArgs, ExportArgs, HistoryArgs, ImportArgs, TreeArgs};
use crate::cmd::container::{
    AttachArgs, ContainerExistsArgs, ContainerInspectArgs, ContainerPruneArgs, CreateArgs,
    DiffArgs, EnterArgs, ExecArgs, GenerateSystemdArgs, HealthcheckRunArgs, InitArgs, KillArgs,
    LogsArgs, MountArgs, PortArgs, PsArgs, RenameArgs, RestartArgs, RmArgs, RunArgs, StartArgs,
    StopArgs, TopArgs, UnmountArgs, WaitArgs,
};
use crate::cmd::container::{PauseArgs, StatsArgs, UpdateArgs};
use crate::cmd::cp::{CpArgs, CpChildArgs};
use crate::cmd::events::EventsArgs;
use crate::cmd::image::{
    ExistsArgs, ImagePruneArgs, ImagesArgs, InspectArgs, PruneArgs, PullVerbArgs, RmiArgs, TagArgs,
    UntagArgs,
};
use crate::cmd::login::{LoginArgs, LogoutArgs};
use crate::cmd::network::NetworkCommand;
use crate::cmd::push::PushArgs;
use crate::cmd::system::{
    CheckArgs, CompletionArgs, DfArgs, GenerateManArgs, InfoArgs, MigrateArgs, ResetArgs,
    VersionArgs,
};
use crate::cmd::unpack::UnpackArgs;
use crate::context::Context;

/// cairn: daemonless containers, podman's commands.
#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version = crate::cmd::system::VERSION_LINE,
    disable_version_flag = true,
    about = "Daemonless, setuid-free container engine with podman's commands",
    max_term_width = 100
)]
pub struct Cli {
    /// Print the version (podman's shape: `cairn version 4.3.1 (podman-compatible, cairn X)`).
    #[arg(short = 'v', long, action = clap::ArgAction::Version)]
    pub version: (),

    /// Storage root (default /var/lib/cairn as root, $XDG_DATA_HOME/cairn otherwise).
    #[arg(long, global = true, env = "CAIRN_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Log messages at this level and above: error, warn, info, debug, trace.
    #[arg(long, global = true, default_value = "warn", value_name = "LEVEL")]
    pub log_level: String,

    /// podman's other global flags.
    #[command(flatten)]
    pub global: crate::global::GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pull an image from a registry, an OCI layout (oci:DIR[:REF]) or archive (oci-archive:FILE[:REF]).
    Pull(PullVerbArgs),
    /// Save image(s) to an archive (docker-archive, oci-archive) or directory.
    Save(SaveArgs),
    /// Load image(s) from a docker or OCI archive (plain, gzip or zstd).
    Load(LoadArgs),
    /// Push an image to a registry ([docker://]HOST/REPO[:TAG]).
    Push(PushArgs),
    /// List images.
    #[command(visible_alias = "list")]
    Images(ImagesArgs),
    /// Remove images.
    Rmi(RmiArgs),
    /// Add names to an image.
    Tag(TagArgs),
    /// Remove names from an image.
    Untag(UntagArgs),
    /// Show details of images as JSON.
    Inspect(InspectArgs),
    /// Networks (cairn has the modes host, none and private, no networks).
    #[command(subcommand)]
    Network(NetworkCommand),
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
    Restart(RestartArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// List containers.
    #[command(visible_aliases = ["ls"])]
    Ps(PsArgs),
    /// List port mappings (cairn publishes none yet).
    Port(PortArgs),
    /// Not supported: a cairn container is set up by start (refused by name).
    #[command(hide = true)]
    Init(InitArgs),
    /// Show the changes in a container's root: A added, C changed, D deleted.
    Diff(DiffArgs),
    /// Mount a container's root and print where (root only).
    Mount(MountArgs),
    /// Unmount a container's root mounted by mount.
    #[command(visible_alias = "umount")]
    Unmount(UnmountArgs),
    /// Not supported: attach to a running container (refused by name).
    #[command(hide = true)]
    Attach(AttachArgs),
    /// Run a container's health check.
    #[command(subcommand)]
    Healthcheck(HealthcheckCommand),
    /// Generate systemd units.
    #[command(subcommand)]
    Generate(GenerateCommand),
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
    /// Freeze every process of running containers.
    Pause(PauseArgs),
    /// Thaw paused containers.
    Unpause(PauseArgs),
    /// Show containers' resource usage (CPU, memory, network and block I/O, processes).
    Stats(StatsArgs),
    /// Change the resource limits of a container.
    Update(UpdateArgs),
    /// Show system information.
    Info(InfoArgs),
    /// Generate shell completion scripts.
    Completion(CompletionArgs),
    /// Show events: container and image changes, as they happen.
    Events(EventsArgs),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(cmd::volume::VolumeCommand),
    /// Create a new image from a container's changes.
    Commit(CommitArgs),
    /// Export a container's root file system as a tar archive.
    Export(ExportArgs),
    /// Import a tarball as a one-layer image.
    Import(ImportArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Internal: the container side of `cp`, chrooted into the container.
    #[command(name = "__cp", hide = true)]
    CpChild(CpChildArgs),
    /// Build an image from a Containerfile.
    Build(Box<BuildArgs>),
    /// Docker's buildx: `buildx build` builds as `build`.
    #[command(subcommand)]
    Buildx(BuildxCommand),
    /// Internal: the container side of a build's COPY, chrooted into the container.
    #[command(name = "__build-copy", hide = true)]
    BuildCopy(BuildCopyArgs),
}

/// `cairn buildx …`.
#[derive(Debug, Subcommand)]
pub enum BuildxCommand {
    /// Build an image from a Containerfile.
    Build(Box<BuildArgs>),
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
    Restart(RestartArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// List containers.
    #[command(visible_aliases = ["ls", "ps"])]
    List(PsArgs),
    /// List port mappings (cairn publishes none yet).
    Port(PortArgs),
    /// Not supported: a cairn container is set up by start (refused by name).
    #[command(hide = true)]
    Init(InitArgs),
    /// Show the changes in a container's root.
    Diff(DiffArgs),
    /// Mount a container's root and print where (root only).
    Mount(MountArgs),
    /// Unmount a container's root mounted by mount.
    #[command(visible_alias = "umount")]
    Unmount(UnmountArgs),
    /// Not supported: attach to a running container (refused by name).
    #[command(hide = true)]
    Attach(AttachArgs),
    /// Show a container's log.
    Logs(LogsArgs),
    /// Wait for containers to stop.
    Wait(WaitArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// Copy files between a container and the host.
    Cp(CpArgs),
    /// Show details of containers.
    Inspect(ContainerInspectArgs),
    /// Remove every stopped container.
    Prune(ContainerPruneArgs),
    /// Exit 0 if the container exists, 1 if not.
    Exists(ContainerExistsArgs),
    /// Show the processes of a container.
    Top(TopArgs),
    /// Freeze every process of running containers.
    Pause(PauseArgs),
    /// Thaw paused containers.
    Unpause(PauseArgs),
    /// Show containers' resource usage (CPU, memory, network and block I/O, processes).
    Stats(StatsArgs),
    /// Change the resource limits of a container.
    Update(UpdateArgs),
    /// Create a new image from a container's changes.
    Commit(CommitArgs),
    /// Export a container's root file system as a tar archive.
    Export(ExportArgs),
}

/// `cairn healthcheck …`.
#[derive(Debug, Subcommand)]
pub enum HealthcheckCommand {
    /// Run the container's health check: exit 0 healthy, 1 unhealthy.
    Run(HealthcheckRunArgs),
}

/// `cairn generate …`.
#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// A systemd unit that runs a container.
    Systemd(GenerateSystemdArgs),
}

/// `cairn image …`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Pull an image.
    Pull(PullVerbArgs),
    /// Save image(s) to an archive or directory.
    Save(SaveArgs),
    /// Load image(s) from an archive.
    Load(LoadArgs),
    /// Push an image to a registry.
    Push(PushArgs),
    /// Build an image from a Containerfile.
    Build(Box<BuildArgs>),
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
    Prune(ImagePruneArgs),
    /// Exit 0 if the image exists locally, 1 if not.
    Exists(ExistsArgs),
    /// Remove names from an image.
    Untag(UntagArgs),
    /// Import a tarball as a one-layer image.
    Import(ImportArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Show an image's layers as a tree.
    Tree(TreeArgs),
}

/// `cairn system …`.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show disk usage.
    Df(DfArgs),
    /// Verify blobs, refs, objects, changesets, image roots and containers.
    Check(CheckArgs),
    /// Remove stopped containers, unused images, blobs and abandoned downloads.
    Prune(PruneArgs),
    /// Show system information.
    Info(InfoArgs),
    /// Check that the store is readable (podman: migrate containers to a
    /// new runtime; cairn's need no migration).
    Migrate(MigrateArgs),
    /// Check that the store is readable (podman: renumber locks; cairn has
    /// no lock table).
    Renumber,
    /// Remove all containers, images, volumes and the store.
    Reset(ResetArgs),
    /// Write a man page for every verb into DIR.
    #[command(hide = true)]
    GenerateMan(GenerateManArgs),
    /// Show events: container and image changes, as they happen.
    Events(EventsArgs),
}

/// podman's words for a flag it does not know (`Error: unknown flag: --x`,
/// `Error: unknown shorthand flag: 'x' in -x`, then where the verb's help
/// is), which tools match on; `None` for other parse errors.
fn unknown_flag_message(e: &clap::Error, args: &[String]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let what = match arg.strip_prefix("--") {
        Some(_) => format!("unknown flag: {}", arg.split('=').next().unwrap_or(arg)),
        None => {
            let letter = arg.trim_start_matches('-').chars().next()?;
            // The word as typed (`-xv`), as pflag names it.
            let word = args
                .iter()
                .skip(1)
                .find(|a| a.starts_with('-') && !a.starts_with("--") && a.contains(letter))
                .map_or(arg.as_str(), String::as_str);
            format!("unknown shorthand flag: '{letter}' in {word}")
        }
    };
    Some(format!(
        "Error: {what}\nSee '{} --help'",
        verb_path(args).join(" ")
    ))
}

/// podman's words for a verb cairn does not know, or cairn's refusal of
/// one of podman's verbs it lacks ([`crate::verbs`]); `None` for other
/// parse errors.
fn unknown_verb_message(e: &clap::Error, args: &[String]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(word)) = e.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    Some(crate::verbs::message(&verb_path(args), word))
}

/// `cairn` and the verbs a command line names (`cairn container run`),
/// skipping flags before them.
fn verb_path(args: &[String]) -> Vec<String> {
    let mut cmd = Cli::command();
    let mut path = vec![cmd.get_name().to_owned()];
    let mut words = args.iter().skip(1);
    while let Some(w) = words.next() {
        if w == "--root" || w == "--log-level" {
            words.next();
            continue;
        }
        if w.starts_with('-') {
            continue;
        }
        let Some(sub) = cmd.find_subcommand(w).cloned() else {
            break;
        };
        path.push(sub.get_name().to_owned());
        cmd = sub;
    }
    path
}

/// The command line, or the exit code after printing why it is not one
/// (podman's words for unknown flags and verbs; 0 for --help and
/// --version).
fn parse() -> Result<Cli, u8> {
    Cli::try_parse().map_err(|e| {
        // Usage errors exit 125 like podman's; --help and --version 0.
        let code = match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
            _ => crate::exit::ENGINE,
        };
        let args: Vec<String> = std::env::args().collect();
        match unknown_flag_message(&e, &args).or_else(|| unknown_verb_message(&e, &args)) {
            Some(message) => eprintln!("{message}"),
            None => {
                let _ = e.print();
            }
        }
        code
    })
}

/// podman's global flags: a refused one ends the command (its exit code);
/// `--noout` points stdout at /dev/null.
fn apply_global(g: &crate::global::GlobalArgs) -> anyhow::Result<Option<u8>> {
    if let Some((flag, why)) = g.refused() {
        eprintln!("Error: cairn does not support --{flag} ({why})");
        return Ok(Some(crate::exit::ENGINE));
    }
    if g.noout {
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| anyhow::anyhow!("open /dev/null for --noout: {e}"))?;
        nix::unistd::dup2_stdout(&null)
            .map_err(|e| anyhow::anyhow!("--noout: point stdout at /dev/null: {e}"))?;
    }
    Ok(None)
}

/// The verbs over containers' cgroups (`pause`, `unpause`, `stats`,
/// `update`, `top`); any other command is given back.
fn cgroup_verbs(ctx: &Context, command: Command) -> ControlFlow<anyhow::Result<u8>, Command> {
    ControlFlow::Break(match command {
        Command::Top(a) | Command::Container(ContainerCommand::Top(a)) => {
            cmd::container::top(ctx, a)
        }
        Command::Pause(a) | Command::Container(ContainerCommand::Pause(a)) => {
            cmd::container::pause(ctx, a, true)
        }
        Command::Unpause(a) | Command::Container(ContainerCommand::Unpause(a)) => {
            cmd::container::pause(ctx, a, false)
        }
        Command::Stats(a) | Command::Container(ContainerCommand::Stats(a)) => {
            cmd::container::stats(ctx, a)
        }
        Command::Update(a) | Command::Container(ContainerCommand::Update(a)) => {
            cmd::container::update(ctx, a)
        }
        other => return ControlFlow::Continue(other),
    })
}

/// Parses the command line and runs the command; returns the exit code.
pub fn run() -> anyhow::Result<u8> {
    let cli = match parse() {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if let Some(code) = apply_global(&cli.global)? {
        return Ok(code);
    }
    init_logging(&cli.log_level)?;
    let ctx = Context::new(cli.root.clone());
    if !cairn_engine::userns::child_setup()?
        && !nix::unistd::geteuid().is_root()
        && needs_userns(&cli.command)
    {
        return Ok(cairn_engine::userns::reenter(ctx.root())?);
    }
    let command = match images_out(&ctx, cli.command) {
        ControlFlow::Break(code) => return code,
        ControlFlow::Continue(other) => other,
    };
    let command = match cgroup_verbs(&ctx, command) {
        ControlFlow::Break(code) => return code,
        ControlFlow::Continue(other) => other,
    };
    match command {
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => cmd::image::pull(&ctx, a),
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => cmd::push::push_verb(&ctx, a),
        Command::Images(a) | Command::Image(ImageCommand::List(a)) => cmd::image::images(&ctx, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => cmd::image::rmi(&ctx, a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => cmd::image::tag(&ctx, a),
        Command::Untag(a) | Command::Image(ImageCommand::Untag(a)) => cmd::image::untag(&ctx, a),
        Command::Network(n) => cmd::network::run(&ctx, n),
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
        Command::System(SystemCommand::Info(a)) => cmd::system::info(&ctx, a),
        Command::System(SystemCommand::Migrate(a)) => cmd::system::migrate(&ctx, a),
        Command::System(SystemCommand::Renumber) => cmd::system::renumber(&ctx),
        Command::System(SystemCommand::Reset(a)) => cmd::system::reset(&ctx, a),
        Command::System(SystemCommand::GenerateMan(a)) => cmd::system::generate_man(a),
        Command::Completion(a) => cmd::system::completion(a),
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
        Command::Info(a) => cmd::system::info(&ctx, a),
        Command::Events(a) | Command::System(SystemCommand::Events(a)) => {
            cmd::events::events(&ctx, a)
        }
        Command::Container(ContainerCommand::Inspect(a)) => cmd::container::inspect(&ctx, a),
        Command::Port(a) | Command::Container(ContainerCommand::Port(a)) => {
            cmd::container::port(&ctx, a)
        }
        Command::Init(a) | Command::Container(ContainerCommand::Init(a)) => {
            cmd::container::init(&ctx, a)
        }
        Command::Diff(a) | Command::Container(ContainerCommand::Diff(a)) => {
            cmd::container::diff(&ctx, a)
        }
        Command::Mount(a) | Command::Container(ContainerCommand::Mount(a)) => {
            cmd::container::mount(&ctx, a)
        }
        Command::Unmount(a) | Command::Container(ContainerCommand::Unmount(a)) => {
            cmd::container::unmount(&ctx, a)
        }
        Command::Attach(a) | Command::Container(ContainerCommand::Attach(a)) => {
            cmd::container::attach(&ctx, a)
        }
        Command::Healthcheck(HealthcheckCommand::Run(a)) => {
            cmd::container::healthcheck_run(&ctx, a)
        }
        Command::Generate(GenerateCommand::Systemd(a)) => cmd::container::generate_systemd(&ctx, a),
        Command::Container(ContainerCommand::Prune(a)) => cmd::container::prune(&ctx, a),
        Command::CpChild(a) => cmd::cp::child_main(&ctx, a),
        Command::Volume(v) => cmd::volume::run(&ctx, v),
        Command::Container(ContainerCommand::Exists(a)) => cmd::container::exists(&ctx, a),
        _ => unreachable!("run by images_out"),
    }
}

/// Runs the verbs that make images from containers and tarballs and show
/// how images were made ([`out`]), and `save`/`load`; hands any other
/// command back.
fn images_out(ctx: &Context, command: Command) -> ControlFlow<anyhow::Result<u8>, Command> {
    ControlFlow::Break(match command {
        Command::Commit(a) | Command::Container(ContainerCommand::Commit(a)) => out::commit(ctx, a),
        Command::Export(a) | Command::Container(ContainerCommand::Export(a)) => out::export(ctx, a),
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => out::import(ctx, a),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => out::history(ctx, a),
        Command::Image(ImageCommand::Tree(a)) => out::tree(ctx, a),
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => cmd::archive::save(ctx, a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => cmd::archive::load(ctx, a),
        Command::Build(a)
        | Command::Buildx(BuildxCommand::Build(a))
        | Command::Image(ImageCommand::Build(a)) => cmd::build::build(ctx, *a),
        Command::BuildCopy(a) => cmd::build::copy_child_main(ctx, a),
        other => return ControlFlow::Continue(other),
    })
}

/// Whether a rootless `cairn` must run `command` in a user namespace of its
/// own: it writes files owned by mapped ids, mounts, or starts containers.
/// Commands that reach into a running container (exec, enter, cp) join that
/// container's namespace instead: a fresh one, although mapped the same, is
/// a sibling without rights over it.
fn needs_userns(command: &Command) -> bool {
    match command {
        Command::Pull(_)
        | Command::Load(_)
        | Command::Unpack(_)
        | Command::Rmi(_)
        | Command::Create(_)
        | Command::Run(_)
        | Command::Start(_)
        | Command::Restart(_)
        | Command::Rm(_)
        | Command::Commit(_)
        | Command::Build(_)
        | Command::Buildx(_)
        | Command::Export(_) => true,
        Command::Image(
            ImageCommand::Pull(_)
            | ImageCommand::Build(_)
            | ImageCommand::Load(_)
            | ImageCommand::Rm(_)
            | ImageCommand::Prune(_),
        ) => true,
        Command::System(
            SystemCommand::Prune(_) | SystemCommand::Check(_) | SystemCommand::Reset(_),
        ) => true,
        Command::Network(NetworkCommand::Rm(_) | NetworkCommand::Prune(_)) => true,
        Command::Container(c) => matches!(
            c,
            ContainerCommand::Create(_)
                | ContainerCommand::Run(_)
                | ContainerCommand::Start(_)
                | ContainerCommand::Restart(_)
                | ContainerCommand::Rm(_)
                | ContainerCommand::Prune(_)
                | ContainerCommand::Commit(_)
                | ContainerCommand::Export(_)
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// clap's consistency checks (clashing flags, defaults a parser rejects,
    /// …) over every verb: at run time they only check the verb a command
    /// line names, so a broken definition of another would go unnoticed.
    #[test]
    fn every_verb_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// The words podman prints for an unknown flag, which tools match on.
    #[test]
    fn unknown_flags_read_as_podmans() {
        use clap::Parser as _;
        let cases: &[(&[&str], &str)] = &[
            (
                &["cairn", "run", "--no-such-proxy=false", "img"],
                "Error: unknown flag: --no-such-proxy\nSee 'cairn run --help'",
            ),
            (
                &[
                    "cairn",
                    "--root",
                    "/r",
                    "container",
                    "exec",
                    "--no-such-keys=",
                    "c",
                    "sh",
                ],
                "Error: unknown flag: --no-such-keys\nSee 'cairn container exec --help'",
            ),
            (
                &["cairn", "ps", "-Z"],
                "Error: unknown shorthand flag: 'Z' in -Z\nSee 'cairn ps --help'",
            ),
        ];
        for (argv, want) in cases {
            let args: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
            let e = super::Cli::try_parse_from(&args).unwrap_err();
            assert_eq!(
                super::unknown_flag_message(&e, &args).as_deref(),
                Some(*want)
            );
        }
        let args: Vec<String> = ["cairn", "run"].iter().map(|a| a.to_string()).collect();
        let e = super::Cli::try_parse_from(&args).unwrap_err();
        assert_eq!(super::unknown_flag_message(&e, &args), None);
    }
}
