//! Container verbs: create, run, start, stop, restart, kill, rm, exec, ps,
//! logs, wait, rename, enter, top, container prune/exists.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use cairn_store::images::ImageError;
use cairn_store::Image;

use super::image::PullArgs;
use crate::context::Context;
use crate::exit;
use cairn_engine::container::config::{MountConfig, MountKind, NamespaceMode, Namespaces, Ulimit};
use cairn_engine::container::create::{self, CreateOptions};
use cairn_engine::container::mount_options::{
    parse_bind_option, parse_tmpfs_option, BindOption, OptionError, TmpfsOption,
};
use cairn_engine::container::runtime::ExecOptions;
use cairn_engine::container::spec::Attach;
use cairn_engine::container::{self, cgroups, runtime, Container, Containers, Status};
use cairn_engine::lifecycle::{self, IfRunning};
use cairn_engine::network::{Attachment, NetworkMode};

mod args;
mod filters;
mod flags;
mod logs;
mod manage;
mod ps;
mod resources;
mod targets;
mod top;
mod verbs;

pub use args::{
    AttachArgs, ContainerExistsArgs, ContainerInspectArgs, ContainerPruneArgs, CreateArgs,
    DiffArgs, EnterArgs, ExecArgs, GenerateSystemdArgs, HealthcheckRunArgs, InitArgs, KillArgs,
    LogsArgs, MountArgs, PortArgs, PsArgs, RenameArgs, RestartArgs, RmArgs, RunArgs, StartArgs,
    StopArgs, TopArgs, UnmountArgs, WaitArgs,
};
pub use logs::{logs, parse_time_since};
pub use manage::{exists, init, inspect, kill, port, prune, rename, restart, rm, stop, wait};
pub use ps::ps;
pub use resources::{pause, stats, update, PauseArgs, StatsArgs, UpdateArgs};
pub use top::top;
pub use verbs::{attach, diff, generate_systemd, healthcheck_run, mount, unmount};

fn usage(msg: impl Into<String>) -> anyhow::Error {
    exit::with_code(exit::ENGINE, msg)
}

/// `cairn create`: prints the new container's id.
pub fn create(ctx: &Context, a: CreateArgs) -> anyhow::Result<u8> {
    check_create_flags(&a)?;
    let c = create_container(ctx, &a)?;
    println!("{}", c.config.id);
    Ok(0)
}

/// The create flags' checks that need nothing on disk, before anything is
/// created: refused flags and values, podman's conflicts.
fn check_create_flags(a: &CreateArgs) -> anyhow::Result<()> {
    if let Some((flag, why)) = a.refused.first_given() {
        return Err(flags::refuse(flag, why));
    }
    let only =
        |flag: &str, given: &Option<String>, allowed: &[&str], why: &str| match given.as_deref() {
            Some(v) if !allowed.contains(&v) => Err(flags::refuse(&format!("{flag} {v}"), why)),
            _ => Ok(()),
        };
    only(
        "cgroups",
        &a.cgroups,
        &["enabled", "disabled", "no-conmon", "split"],
        "use enabled, disabled, no-conmon or split",
    )?;
    only(
        "sdnotify",
        &a.sdnotify,
        &["ignore"],
        "cairn passes no NOTIFY_SOCKET: only ignore",
    )?;
    only(
        "seccomp-policy",
        &a.seccomp_policy,
        &["default"],
        "only default",
    )?;
    only(
        "image-volume",
        &a.image_volume,
        &["ignore"],
        "cairn does not create the image's VOLUMEs: only ignore",
    )?;
    flags::restart(a.restart.as_deref().unwrap_or(""), a.rm)?;
    // The limits' values, before anything is pulled or created.
    cgroups::resources(&a.resources.flags(), None).map_err(|e| usage(e.to_string()))?;
    for r in &a.device_cgroup_rule {
        cgroups::parse_device_rule(r).map_err(|e| usage(e.to_string()))?;
    }
    if let Some(p) = &a.cgroup_parent {
        cgroup_parent(p)?;
    }
    for o in &a.log_opt {
        if !o.starts_with("tag=") {
            return Err(flags::refuse(
                &format!("log-opt {o}"),
                "only tag= is taken: cairn's k8s-file log has no size or path options yet",
            ));
        }
    }
    flags::attach_streams(&a.attach).map_err(usage)?;
    if let Some(m) = &a.umask {
        flags::umask(m).map_err(usage)?;
    }
    // The recorded settings' values (time zone, sysctls, devices,
    // healthcheck), checked before the image is looked for.
    let mode = cairn_engine::network::parse_network_flags(&a.network, &a.network_alias)
        .map_err(|e| usage(e.to_string()))?
        .map_or(NetworkMode::Bridge, |(m, _)| m);
    extra(a, &namespaces(a, mode)?)?;
    Ok(())
}

/// `run`'s own flags, checked before anything is created.
fn check_run_flags(a: &RunArgs) -> anyhow::Result<()> {
    if let Some((flag, why)) = a.refused_run.first_given() {
        return Err(flags::refuse(flag, why));
    }
    if a.passwd == Some(true) {
        return Err(flags::refuse(
            "passwd",
            "cairn adds no /etc/passwd entries: only --passwd=false",
        ));
    }
    if a.preserve_fds.is_some_and(|n| n > 0) {
        return Err(flags::refuse(
            "preserve-fds",
            "for run and create: cairn's start chain uses descriptors 3 and 4; exec takes it",
        ));
    }
    if let Some(k) = &a.detach_keys {
        flags::detach_keys(k).map_err(usage)?;
    }
    if a.detach && !a.create.attach.is_empty() {
        // podman: -d wins, nothing is attached.
        tracing::debug!("--attach with --detach: detached");
    }
    check_create_flags(&a.create)
}

/// What an attached run or start relays: every output stream, or the `-a`
/// ones; stdin with `-i` (and `-a STDIN` when `-a` is given), where
/// `detach_keys` (podman's default `ctrl-p,ctrl-q`; `""` none) detach.
fn attach_for(
    streams: Option<flags::Streams>,
    interactive: bool,
    detach_keys: Option<&str>,
) -> anyhow::Result<Attach> {
    let detach_keys =
        flags::detach_keys(detach_keys.unwrap_or(flags::DEFAULT_DETACH_KEYS)).map_err(usage)?;
    Ok(match streams {
        None => Attach {
            output: true,
            stdin: interactive,
            detach_keys,
            ..Attach::default()
        },
        Some(s) => Attach {
            output: s.stdout || s.stderr,
            stdin: interactive && s.stdin,
            no_stdout: !s.stdout,
            no_stderr: !s.stderr,
            detach_keys,
        },
    })
}

/// A build step's container: `argv` is what `cairn create` would be given
/// after its verb (flags, IMAGE, command), parsed and checked the same way.
pub(crate) fn create_for_build(ctx: &Context, argv: &[String]) -> anyhow::Result<Container> {
    #[derive(clap::Parser)]
    #[command(no_binary_name = true, disable_help_flag = true)]
    struct Step {
        #[command(flatten)]
        create: CreateArgs,
    }
    let step = <Step as clap::Parser>::try_parse_from(argv)
        .map_err(|e| usage(format!("build step container {argv:?}: {e}")))?;
    check_create_flags(&step.create)?;
    create_container(ctx, &step.create)
}

/// Runs a build step's container attached (its output on ours, no stdin;
/// `quiet`: its stdout dropped, as podman's `build -q`) and returns its
/// exit code; the container stays (the caller commits and removes it).
pub(crate) fn run_for_build(c: &mut Container, quiet: bool) -> anyhow::Result<i32> {
    let proxy = runtime::signal_proxy(true)?;
    let started = runtime::start(
        c,
        Attach {
            output: true,
            no_stdout: quiet,
            ..Attach::default()
        },
    )?;
    Ok(match started.monitor {
        Some(m) => match runtime::wait_attached(c, m, started.reports, proxy)? {
            runtime::Attached::Exited(code) => code,
            runtime::Attached::Detached => runtime::wait_exit(c),
        },
        None => runtime::wait_exit(c),
    })
}

/// Removes a build step's container, whatever its state.
pub(crate) fn remove_for_build(ctx: &Context, c: &Container) -> anyhow::Result<()> {
    remove(ctx, c, IfRunning::Stop, Duration::ZERO, true).map(|_| ())
}

/// `cairn run`.
pub fn run(ctx: &Context, a: RunArgs) -> anyhow::Result<u8> {
    check_run_flags(&a)?;
    let streams = flags::attach_streams(&a.create.attach).map_err(usage)?;
    // Before the container exists: a signal as soon as it runs is ours.
    let proxy = match a.detach {
        true => None,
        false => Some(runtime::signal_proxy(a.sig_proxy)?),
    };
    let mut c = create_container(ctx, &a.create)?;
    let attach = if a.detach {
        Attach::default()
    } else {
        attach_for(streams, a.create.interactive, a.detach_keys.as_deref())?
    };
    let started = match runtime::start(&mut c, attach) {
        Ok(s) => s,
        Err(e) => {
            if c.config.auto_remove {
                let _ = remove(ctx, &c, IfRunning::Stop, Duration::ZERO, true);
            }
            return Err(e.into());
        }
    };
    if a.detach {
        println!("{}", c.config.id);
        if c.config.auto_remove {
            spawn_reaper(ctx, &c)?;
        }
        return Ok(0);
    }
    finish_attached(ctx, &mut c, started, proxy.expect("attached"))
}

/// An attached run or `start -a`: waits for the container (through its
/// monitor when we started it), removes it with `--rm`, returns its code.
fn finish_attached(
    ctx: &Context,
    c: &mut Container,
    started: runtime::Started,
    proxy: runtime::SignalProxy,
) -> anyhow::Result<u8> {
    let code = match started.monitor {
        Some(m) => match runtime::wait_attached(c, m, started.reports, proxy)? {
            runtime::Attached::Exited(code) => code,
            runtime::Attached::Detached => {
                // The container runs on; --rm removes it once it exits.
                if c.config.auto_remove {
                    spawn_reaper(ctx, c)?;
                }
                return Ok(0);
            }
        },
        None => runtime::wait_exit(c),
    };
    if c.config.auto_remove {
        c.reload()?;
        remove(ctx, c, IfRunning::Stop, Duration::ZERO, true)?;
    }
    Ok(exit_code(code))
}

/// `run -d --rm`: a detached `cairn wait` + `rm` that removes the container
/// once it exits (podman's conmon runs `podman container cleanup --rm`).
fn spawn_reaper(ctx: &Context, c: &Container) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("find the cairn executable")?;
    Command::new(exe)
        .arg("--root")
        .arg(ctx.root())
        .args(["rm", "--ignore", "--time", "0", "--after-exit"])
        .arg(&c.config.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("start the --rm cleanup process")?;
    Ok(())
}

fn exit_code(code: i32) -> u8 {
    code.clamp(0, 255) as u8
}

/// Finds `spec` in the store, pulling it as the policy says.
fn resolve_image(ctx: &Context, spec: &str, a: &CreateArgs) -> anyhow::Result<Image> {
    let store = ctx.store()?;
    let search = ctx.search_registries()?;
    let policy = a.pull.as_str();
    if !matches!(policy, "always" | "missing" | "never" | "newer") {
        return Err(usage(format!(
            "invalid --pull {policy:?}: use always, missing, never or newer"
        )));
    }
    let found = match store.find_image(spec, &search) {
        Ok(i) => Some(i),
        Err(ImageError::NotKnown(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let pull = match (policy, &found) {
        ("always", _) => true,
        (_, Some(_)) => false,
        ("never", None) => {
            return Err(usage(format!(
                "{spec}: image not known (--pull never: pull it first with `cairn pull {spec}`)"
            )))
        }
        (_, None) => true,
    };
    if !pull {
        return Ok(found.expect("checked"));
    }
    let args = PullArgs {
        image: spec.to_owned(),
        platform: a.platform.clone(),
        arch: a.arch.clone(),
        os: a.os.clone(),
        variant: a.variant.clone(),
        tls_verify: a.tls_verify,
        creds: None,
        authfile: a
            .authfile
            .clone()
            .or_else(|| std::env::var_os("REGISTRY_AUTH_FILE").map(PathBuf::from)),
        cert_dir: None,
        quiet: a.quiet,
        retry: None,
        retry_delay: None,
        jobs: 6,
        unpack: true,
    };
    let id = super::image::pull_image(ctx, &args)?;
    Ok(store.find_image(&id, &[])?)
}

/// Creates the container, claiming `--cidfile` first: podman's order, so
/// a file already there (or a symlink planted there) stops the create
/// before anything exists, and a failed create removes the file it claimed.
fn create_container(ctx: &Context, a: &CreateArgs) -> anyhow::Result<Container> {
    let cidfile = a.cidfile.as_deref().map(CidFile::claim).transpose()?;
    if let (true, Some(name)) = (a.replace, &a.name) {
        // podman: the old one goes first (stopped at once), then the create.
        if let Ok(old) = Containers::new(ctx.root()).find(name) {
            if old.config.name == *name {
                if let Err(e) = remove_forced(ctx, &old) {
                    if let Some(f) = cidfile {
                        f.abandon();
                    }
                    return Err(e);
                }
            }
        }
    }
    let c = match build_container(ctx, a) {
        Ok(c) => c,
        Err(e) => {
            if let Some(f) = cidfile {
                f.abandon();
            }
            return Err(e);
        }
    };
    if let Some(f) = cidfile {
        if let Err(e) = f.write(&c.config.id) {
            let _ = remove(ctx, &c, IfRunning::Stop, Duration::ZERO, true);
            return Err(e);
        }
    }
    Ok(c)
}

/// A `--cidfile` this run created: `O_CREAT|O_EXCL|O_NOFOLLOW`, so an
/// existing file is never overwritten and a symlink never followed (as
/// podman: "container id file exists").
struct CidFile {
    path: PathBuf,
    file: std::fs::File,
}

impl CidFile {
    fn claim(path: &Path) -> anyhow::Result<CidFile> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .mode(0o644)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => usage(format!(
                    "container id file exists. Ensure another container is not using it or delete {}",
                    path.display()
                )),
                _ => usage(format!("--cidfile {}: create: {e}", path.display())),
            })?;
        Ok(CidFile {
            path: path.to_owned(),
            file,
        })
    }

    fn write(mut self, id: &str) -> anyhow::Result<()> {
        self.file
            .write_all(id.as_bytes())
            .and_then(|_| self.file.sync_all())
            .map_err(|e| usage(format!("--cidfile {}: write: {e}", self.path.display())))
    }

    /// Removes the file this run created (the create failed).
    fn abandon(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn build_container(ctx: &Context, a: &CreateArgs) -> anyhow::Result<Container> {
    let (image_spec, command) = a.args.split_first().expect("clap requires IMAGE");
    if let Some(d) = &a.log_driver {
        if !matches!(d.as_str(), "k8s-file" | "") {
            return Err(usage(format!(
                "--log-driver {d}: cairn writes k8s-file logs only"
            )));
        }
    }
    let (store, image, _use) = image_in_use(ctx, a, image_spec)?;
    let keep_id = keep_id(a.userns.as_deref())?;
    let root = image_root(&store, &image, image_spec, keep_id.as_ref().map(|(m, _)| m))?;
    let containers = Containers::new(ctx.root());
    let options = create_options(ctx, a, &containers, command)?;
    let defaults = containers_conf_defaults(&options)?;
    let Confinement {
        security,
        seccomp_choice,
        seccomp,
    } = confinement(ctx, a, &defaults)?;
    let options = CreateOptions {
        security,
        ..options
    };
    let rc = image.config.config.clone().unwrap_or_default();
    let host_hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let facts = create::Facts {
        id: container::ContainerId::random(),
        created: container::now_rfc3339(),
        image: image_ref(&image, image_spec, &root),
        image_spec,
        image_config: &rc,
        host_hostname: &host_hostname,
        host_env: &host_env(),
        keep_id: keep_id.as_ref(),
        seccomp_choice: &seccomp_choice,
        seccomp: seccomp.as_ref(),
        defaults: &defaults,
    };
    let mut config = create::config(&options, &facts, &|user| home_of(&root, user))?;
    if a.publish_all && config.namespaces.network.publishes_ports() {
        let more = cairn_engine::network::ports::publish_all(&config.exposed_ports, &config.ports)
            .map_err(|e| usage(e.to_string()))?;
        config.ports.extend(more);
    }
    Ok(lifecycle::create(
        &containers,
        &config,
        seccomp.as_ref(),
        &root,
        keep_id.as_ref().map(|(_, r)| r),
    )?)
}

/// containers.conf's defaults for a new container; a warning for each key
/// set that cairn does not apply.
fn containers_conf_defaults(
    o: &CreateOptions,
) -> anyhow::Result<cairn_engine::containers_conf::Defaults> {
    let conf = cairn_engine::containers_conf::ContainersConf::from_env()?;
    for (key, why) in conf.unapplied(o.namespaces.network.is_host()) {
        tracing::warn!("containers.conf: {key} is not applied: {why}");
    }
    Ok(conf.defaults()?)
}

/// The create flags, parsed value by value (the engine merges them with
/// the image's defaults). Security options are parsed with the seccomp
/// profile, in [`confinement`].
fn create_options(
    ctx: &Context,
    a: &CreateArgs,
    containers: &Containers,
    command: &[String],
) -> anyhow::Result<CreateOptions> {
    let name = match &a.name {
        Some(n) => {
            lifecycle::validate_name(n)?;
            n.clone()
        }
        None => random_name(containers)?,
    };
    let entrypoint = a.entrypoint.as_deref().map(parse_entrypoint).transpose()?;
    let (network_mode, networks) = network(ctx, a, containers)?;
    let namespaces = namespaces(a, network_mode)?;
    let ports = cairn_engine::network::ports::parse_publish(&a.publish)
        .map_err(|e| usage(e.to_string()))?;
    let ports = if namespaces.network.publishes_ports() {
        ports
    } else {
        if !a.publish.is_empty() || a.publish_all {
            // podman's words where the network mode cannot publish ports.
            tracing::warn!(
                "Port mappings have been discarded as one of the Host, Container, Pod, and None network modes are in use"
            );
        }
        Vec::new()
    };
    let extra = extra(a, &namespaces)?;
    let env = env_entries(&a.env_file, &given_env(a))?;
    let mut labels = Vec::new();
    for f in &a.label_file {
        let text =
            std::fs::read_to_string(f).map_err(|e| usage(format!("--label-file {f}: {e}")))?;
        labels.extend(flags::label_file(&text));
    }
    labels.extend(a.label.iter().map(|l| {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        (k.to_owned(), v.to_owned())
    }));
    let annotations = annotations(&a.annotation)?;
    let mounts = mounts(a, &cairn_store::StoreDir::Volumes.under(ctx.root()))?;
    // `--ulimit host`: the host's limits, which the container inherits
    // from cairn when none is set (podman's meaning; it must stand alone).
    if a.ulimit.iter().any(|u| u == "host") && a.ulimit.len() > 1 {
        return Err(usage(
            "--ulimit host cannot be combined with other --ulimit values",
        ));
    }
    let ulimits = a
        .ulimit
        .iter()
        .filter(|u| *u != "host")
        .map(|u| parse_ulimit(u))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let shm_size = a
        .shm_size
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(|e| usage(format!("--shm-size: {e}")))?;
    Ok(CreateOptions {
        host_network_asked: namespaces.network.is_host(),
        networks,
        ports,
        name,
        command: command.to_vec(),
        entrypoint,
        env,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        hostname: a.hostname.clone(),
        labels,
        annotations,
        mounts,
        namespaces,
        privileged: a.privileged,
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        security_opt: a.security_opt.clone(),
        security: Default::default(),
        init: a.init,
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        read_only: a.read_only,
        read_only_tmpfs: a.read_only_tmpfs,
        dns: a.dns.clone(),
        dns_search: a.dns_search.clone(),
        dns_option: a.dns_option.clone(),
        add_hosts: a.add_host.clone(),
        pids_limit: a.pids_limit,
        ulimits,
        systemd: a.systemd.clone(),
        auto_remove: a.rm,
        group_add: a.group_add.clone(),
        shm_size,
        create_command: std::env::args().collect(),
        userns: a.userns.clone().unwrap_or_default(),
        tmpfs: a.tmpfs.clone(),
        platform: a.platform.clone(),
        tty: a.tty,
        interactive: a.interactive,
        extra,
    })
}

/// The `-e`s, after what `--env-host` and `--http-proxy` copy from cairn's
/// environment (a name alone copies it when set; `*` copies all).
fn given_env(a: &CreateArgs) -> Vec<String> {
    let mut env = Vec::new();
    if a.env_host {
        env.push("*".to_owned());
    }
    if a.http_proxy {
        for k in [
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "ftp_proxy",
            "FTP_PROXY",
            "no_proxy",
            "NO_PROXY",
        ] {
            env.push(k.to_owned());
        }
    }
    env.extend(a.env.iter().cloned());
    env
}

/// The settings recorded as given: `--umask`, `--sysctl`, `--tz`,
/// `--device`, `--mount type=devpts`, `--health-*`, `--log-opt`, ...
fn extra(a: &CreateArgs, namespaces: &Namespaces) -> anyhow::Result<create::Extra> {
    let healthcheck = flags::healthcheck(&flags::HealthFlags {
        cmd: a.health_cmd.as_deref(),
        interval: &a.health_interval,
        timeout: &a.health_timeout,
        start_period: &a.health_start_period,
        retries: a.health_retries,
        none: a.no_healthcheck,
    })
    .map_err(usage)?;
    if !matches!(
        a.health_on_failure.as_str(),
        "none" | "kill" | "restart" | "stop"
    ) {
        return Err(usage(format!(
            "invalid on-failure action {} for health check: supported actions are none, kill, restart, stop",
            a.health_on_failure
        )));
    }
    let no_resolv_conf = a.dns.iter().any(|d| d == "none");
    Ok(create::Extra {
        umask: a.umask.clone(),
        sysctls: flags::sysctls(&a.sysctl, namespaces).map_err(usage)?,
        timezone: match &a.tz {
            Some(tz) => flags::time_zone(tz, Path::new("/usr/share/zoneinfo")).map_err(usage)?,
            None => None,
        },
        no_hosts: a.no_hosts,
        no_resolv_conf,
        devices: a
            .device
            .iter()
            .map(|d| flags::device(d).map_err(usage))
            .collect::<anyhow::Result<_>>()?,
        devpts: devpts_mounts(&a.mount)?,
        healthcheck,
        health_on_failure: a.health_on_failure.clone(),
        log_opts: a
            .log_opt
            .iter()
            .filter_map(|o| o.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        restart_policy: a.restart.clone().unwrap_or_default(),
        pidfile: a.pidfile.as_deref().map(std::path::absolute).transpose()?,
        unsetenv: a.unsetenv.clone(),
        unsetenv_all: a.unsetenv_all,
        expose: a.expose.clone(),
        resources: cgroups::resources(&a.resources.flags(), None)
            .map_err(|e| usage(e.to_string()))?,
        device_cgroup_rules: a
            .device_cgroup_rule
            .iter()
            .map(|r| {
                cgroups::parse_device_rule(r)
                    .map(|_| r.clone())
                    .map_err(|e| usage(e.to_string()))
            })
            .collect::<anyhow::Result<_>>()?,
        cgroup_parent: match &a.cgroup_parent {
            Some(p) => Some(cgroup_parent(p)?),
            None => None,
        },
        cgroups: a.cgroups.clone(),
    })
}

/// `--cgroup-parent`: an absolute path without `.` or `..` components
/// (podman's cgroupfs manager takes a relative one from the root too).
fn cgroup_parent(p: &str) -> anyhow::Result<String> {
    let abs = if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("/{p}")
    };
    let bad = abs
        .split('/')
        .skip(1)
        .any(|c| c.is_empty() || c == "." || c == "..")
        && abs != "/";
    if bad || abs.contains('\0') || abs.len() > 4096 {
        return Err(usage(format!(
            "invalid --cgroup-parent {p:?}: a cgroup path such as /machine or /ci/jobs, without . or .. components"
        )));
    }
    Ok(abs)
}

/// The `--mount type=devpts` destinations (podman's only options here are
/// the destination's names; others are refused).
fn devpts_mounts(given: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for m in given.iter().filter(|m| is_devpts(m)) {
        let mut dest = None;
        for kv in m.split(',') {
            match kv.split_once('=') {
                Some(("type", _)) => {}
                Some(("destination" | "target" | "dst", d)) if d.starts_with('/') => {
                    dest = Some(clean_path(d))
                }
                _ => {
                    return Err(usage(format!(
                        "--mount {m:?}: option {kv:?} is not supported for devpts: give type=devpts,destination=PATH"
                    )))
                }
            }
        }
        out.push(dest.ok_or_else(|| usage(format!("--mount {m:?}: give destination=PATH")))?);
    }
    Ok(out)
}

/// A `--mount type=devpts,...`.
fn is_devpts(m: &str) -> bool {
    m.split(',').any(|kv| kv == "type=devpts")
}

/// `--annotation KEY=VALUE`s.
fn annotations(given: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut annotations = BTreeMap::new();
    for l in given {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| usage(format!("--annotation {l:?}: use KEY=VALUE")))?;
        annotations.insert(k.to_owned(), v.to_owned());
    }
    Ok(annotations)
}

/// The environment entries given: each `--env-file`'s lines (blank lines
/// and `#` comments skipped), then the `-e`s.
fn env_entries(files: &[String], flags: &[String]) -> anyhow::Result<Vec<String>> {
    let mut given = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| usage(format!("--env-file {f}: {e}")))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            given.push(line.to_owned());
        }
    }
    given.extend(flags.iter().cloned());
    Ok(given)
}

/// The image's root as the container sees it: with keep-id, a root whose
/// files are owned as the container's own user namespace needs (built once
/// per map).
fn image_root(
    store: &cairn_store::Store,
    image: &Image,
    image_spec: &str,
    maps: Option<&cairn_engine::container::config::IdMaps>,
) -> anyhow::Result<cairn_unpacker::ImageRoot> {
    let mut unpack_opts = cairn_unpacker::UnpackerOptions::default();
    if let Some(maps) = maps {
        let (uid_map, gid_map) = maps
            .unpacker_maps()
            .map_err(|e| usage(format!("keep-id map: {e}")))?;
        unpack_opts.decode.uid_map = uid_map;
        unpack_opts.decode.gid_map = gid_map;
    }
    let unpacker = cairn_unpacker::Unpacker::new(store, unpack_opts)?;
    unpacker
        .image_root(image)
        .with_context(|| format!("build the root of image {image_spec}"))
}

/// `--network`, `--network-alias`, `--ip` and `--mac-address`: the mode
/// and, for bridge networks, the networks (which must exist). Without
/// `--network`, podman's default: the `podman` bridge network as root,
/// pasta rootless (slirp4netns where pasta is missing).
fn network(
    ctx: &Context,
    a: &CreateArgs,
    containers: &Containers,
) -> anyhow::Result<(NetworkMode, BTreeMap<String, Attachment>)> {
    use cairn_engine::network::{parse_network_flags, Networks, DEFAULT_NETWORK};
    let conf = cairn_engine::containers_conf::ContainersConf::from_env()?.defaults()?;
    // containers.conf's netns stands for a --network not given.
    let given = if a.network.is_empty() {
        conf.netns.clone().into_iter().collect()
    } else {
        a.network.clone()
    };
    let given = parse_network_flags(&given, &a.network_alias).map_err(|e| usage(e.to_string()))?;
    let (mut mode, mut nets) = match given {
        Some(g) => g,
        None if cairn_engine::userns::rootless() => {
            let tool = conf.rootless_network_cmd.as_deref().unwrap_or(
                if cairn_engine::network::find_tool("pasta").is_some() {
                    "pasta"
                } else {
                    "slirp4netns"
                },
            );
            let mode = if tool == "pasta" {
                NetworkMode::Pasta(Vec::new())
            } else {
                NetworkMode::Slirp4netns(Vec::new())
            };
            (mode, BTreeMap::new())
        }
        None => (
            NetworkMode::Bridge,
            BTreeMap::from([(DEFAULT_NETWORK.to_owned(), Attachment::default())]),
        ),
    };
    if let NetworkMode::Container(spec) = &mode {
        let other = containers.find(spec)?;
        mode = NetworkMode::Container(other.config.id.to_string());
    }
    let store = Networks::new(ctx.root());
    for name in nets.keys() {
        store.find(name)?;
    }
    if mode == NetworkMode::Bridge && cairn_engine::userns::rootless() {
        return Err(usage(
            "--network: bridge networks need root (rootless bridges, netavark --rootless in a rootless network namespace, are not supported by cairn): use --network pasta or slirp4netns",
        ));
    }
    if a.ip.is_some() || a.mac_address.is_some() {
        let (1, Some(att)) = (nets.len(), nets.values_mut().next()) else {
            return Err(usage(
                "--ip and --mac-address need exactly one bridge network (use NAME:ip=IP with several)",
            ));
        };
        if let Some(ip) = &a.ip {
            let ip: std::net::Ipv4Addr = ip
                .parse()
                .map_err(|_| usage(format!("--ip {ip}: not an IPv4 address")))?;
            att.static_ips = vec![ip.to_string()];
        }
        if let Some(mac) = &a.mac_address {
            att.static_mac = Some(mac.clone());
        }
    }
    Ok((mode, nets))
}

/// `--pid`, `--ipc`, `--uts` and `--cgroupns`, with the network's mode.
fn namespaces(a: &CreateArgs, network: NetworkMode) -> anyhow::Result<Namespaces> {
    Ok(Namespaces {
        network,
        pid: ns_mode("pid", a.pid.as_deref(), "private", &["host", "private"])?,
        ipc: ns_mode(
            "ipc",
            a.ipc.as_deref(),
            "private",
            &["host", "private", "shareable", "none"],
        )?,
        uts: ns_mode("uts", a.uts.as_deref(), "private", &["host", "private"])?,
        // podman's default: private on cgroup v2, host on v1.
        cgroup: ns_mode(
            "cgroupns",
            a.cgroupns.as_deref(),
            if cairn_engine::container::cgroups::unified() {
                "private"
            } else {
                "host"
            },
            &["host", "private"],
        )?,
    })
}

/// `-v`, `--mount` and `--tmpfs`, in that order.
fn mounts(a: &CreateArgs, volumes_dir: &Path) -> anyhow::Result<Vec<MountConfig>> {
    let mut mounts = Vec::new();
    for v in &a.volume {
        mounts.push(parse_volume(v, volumes_dir)?);
    }
    for m in a.mount.iter().filter(|m| !is_devpts(m)) {
        mounts.push(parse_mount(m, volumes_dir)?);
    }
    for t in &a.tmpfs {
        mounts.push(parse_tmpfs(t)?);
    }
    Ok(mounts)
}

/// What confines the container beyond its namespaces: the
/// `--security-opt`s, and the seccomp filter they (or `--privileged`)
/// choose, compiled.
struct Confinement {
    security: container::security::SecurityOpts,
    seccomp_choice: container::seccomp::Choice,
    seccomp: Option<container::seccomp::Compiled>,
}

/// `--security-opt`, `--privileged`, `--cap-add`/`--cap-drop`: the
/// container's [`Confinement`]. The filter is compiled now, so a bad
/// profile fails the create, not every start.
fn confinement(
    ctx: &Context,
    a: &CreateArgs,
    defaults: &cairn_engine::containers_conf::Defaults,
) -> anyhow::Result<Confinement> {
    use container::seccomp::Choice;
    let security = container::security::parse(&a.security_opt)
        .map_err(|e| usage(format!("--security-opt {e}")))?;
    let seccomp_choice = match (&security.seccomp, &defaults.seccomp_profile) {
        _ if a.privileged => Choice::Unconfined,
        // containers.conf's seccomp_profile is the default profile.
        (Choice::Default, Some(p)) if p.as_os_str() == "unconfined" => Choice::Unconfined,
        (Choice::Default, Some(p)) => Choice::File(p.clone()),
        (given, _) => given.clone(),
    };
    let bounding = if a.privileged {
        u64::MAX
    } else {
        container::security::bounding_set(&defaults.capabilities, &a.cap_add, &a.cap_drop)
            .map_err(usage)?
    };
    // Compiled now, so a bad profile fails the create, not every start.
    let seccomp = container::seccomp::for_container(
        &seccomp_choice,
        bounding,
        Some(
            &cairn_store::StoreDir::Cache
                .under(ctx.root())
                .join("seccomp"),
        ),
    )
    .map_err(|e| {
        let msg = e.with_causes();
        // A profile file's errors name the option's value: add its name.
        usage(match msg.starts_with("seccomp=") {
            true => format!("--security-opt {msg}"),
            false => msg,
        })
    })?;
    Ok(Confinement {
        security,
        seccomp_choice,
        seccomp,
    })
}

/// The image to create from, found or pulled, and a use of it that rmi and
/// prune see: held until the container is on disk, so they wait for us and
/// then find the container.
fn image_in_use(
    ctx: &Context,
    a: &CreateArgs,
    image_spec: &str,
) -> anyhow::Result<(cairn_store::Store, Image, cairn_store::LockGuard)> {
    let image = resolve_image(ctx, image_spec, a)?;
    let store = ctx.store()?;
    let lock = store.lock_image_use(image.digest(), cairn_store::LockMode::Shared)?;
    if store.image_by_manifest(image.digest())?.is_none() {
        return Err(exit::with_code(
            exit::ENGINE,
            format!(
                "{image_spec}: image not known: it was removed (rmi or prune) while the container was being created: pull it again"
            ),
        ));
    }
    Ok((store, image, lock))
}

/// The image a container is created from, as its config records it.
fn image_ref(
    image: &Image,
    image_spec: &str,
    root: &cairn_unpacker::ImageRoot,
) -> container::config::ImageRef {
    container::config::ImageRef {
        id: Some(image.id().clone()),
        manifest: Some(image.digest().clone()),
        name: image
            .names
            .iter()
            .find(|n| n.to_string().ends_with(image_spec))
            .or(image.names.first())
            .map(|n| n.to_string())
            .unwrap_or_else(|| image.id().hex().to_owned()),
        lowers: root.lowers.clone(),
        root: PathBuf::new(),
    }
}

/// `--userns`: None for the namespace cairn runs in; keep-id's maps.
fn keep_id(
    mode: Option<&str>,
) -> anyhow::Result<
    Option<(
        cairn_engine::container::config::IdMaps,
        cairn_engine::userns::Rootless,
    )>,
> {
    match mode.unwrap_or("") {
        "" | "host" => Ok(None),
        m if m == "keep-id" || m.starts_with("keep-id:") => {
            let (uid, gid) = flags::keep_id_options(m.strip_prefix("keep-id:").unwrap_or(""))
                .map_err(|e| usage(format!("--userns {m}: {e}")))?;
            let mut r = cairn_engine::userns::rootless_ids().ok_or_else(|| {
                usage("--userns keep-id is only supported in rootless mode (run cairn as a normal user)")
            })?;
            // keep-id:uid=,gid=: the caller is these ids inside (its
            // /etc/passwd entry too, named after the host's user of that
            // uid, else userUID).
            r.uid = uid.unwrap_or(r.uid);
            r.gid = gid.unwrap_or(r.gid);
            Ok(Some((cairn_engine::userns::keep_id_maps(&r), r)))
        }
        m => Err(usage(format!(
            "--userns {m}: use host or keep-id (auto and private id maps are not supported)"
        ))),
    }
}

fn ns_mode(
    flag: &str,
    v: Option<&str>,
    default: &str,
    allowed: &[&str],
) -> anyhow::Result<NamespaceMode> {
    let v = v.unwrap_or(default);
    let v = match v {
        "" => default,
        "shareable" => "private",
        other => other,
    };
    match NamespaceMode::parse(v) {
        Some(mode) if allowed.contains(&v) => Ok(mode),
        _ => Err(usage(format!(
            "--{flag} {v:?}: use one of {}",
            allowed.join(", ")
        ))),
    }
}

fn random_name(containers: &Containers) -> anyhow::Result<String> {
    const ADJ: &[&str] = &[
        "admiring",
        "brave",
        "clever",
        "dreamy",
        "eager",
        "focused",
        "gallant",
        "happy",
        "jolly",
        "keen",
        "lucid",
        "modest",
        "nifty",
        "optimistic",
        "practical",
        "quirky",
        "relaxed",
        "sharp",
        "tender",
        "upbeat",
        "vibrant",
        "wizardly",
        "youthful",
        "zealous",
    ];
    const NOUN: &[&str] = &[
        "albattani",
        "babbage",
        "curie",
        "dijkstra",
        "euclid",
        "fermi",
        "galois",
        "hopper",
        "ishango",
        "jepsen",
        "knuth",
        "lovelace",
        "mayer",
        "noether",
        "pascal",
        "ritchie",
        "shannon",
        "thompson",
        "turing",
        "varahamihira",
        "wozniak",
        "yalow",
        "zhukovsky",
    ];
    let taken: std::collections::BTreeSet<String> = containers
        .list()?
        .into_iter()
        .map(|c| c.config.name)
        .collect();
    for _ in 0..100 {
        let id = container::new_id();
        let b = |i: usize| usize::from_str_radix(&id[i..i + 2], 16).unwrap_or(0);
        let n = format!("{}_{}", ADJ[b(0) % ADJ.len()], NOUN[b(2) % NOUN.len()]);
        if !taken.contains(&n) {
            return Ok(n);
        }
    }
    Ok(format!("cairn_{}", &container::new_id()[..12]))
}

fn parse_entrypoint(e: &str) -> anyhow::Result<Vec<String>> {
    let t = e.trim();
    if t.starts_with('[') {
        return serde_json::from_str(t).map_err(|err| {
            usage(format!(
                "--entrypoint {e:?}: not a JSON array of strings ({err})"
            ))
        });
    }
    if t.is_empty() {
        return Ok(vec![]);
    }
    Ok(vec![e.to_owned()])
}

/// cairn's environment, the variables whose name and value are UTF-8 (as
/// `std::env::var` reads them).
fn host_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// The home directory of `user` (`name`, `uid`, `name:group`) in the
/// image's /etc/passwd; `/` when it has none, as podman does.
fn home_of(image_root: &cairn_unpacker::ImageRoot, user: &str) -> String {
    let name = user.split(':').next().unwrap_or("");
    let name = if name.is_empty() { "0" } else { name };
    image_root
        .find(Path::new("etc/passwd"))
        .and_then(|p| container::files::read_resolved(&p).ok().flatten())
        .and_then(|text| {
            text.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && (f[0] == name || f[2] == name)).then(|| f[5].to_owned())
            })
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into())
}

/// `-v [SRC:]DST[:OPTS]`; OPTS separated by commas or colons.
fn parse_volume(v: &str, volumes: &Path) -> anyhow::Result<MountConfig> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, opts): (Option<&str>, &str, Vec<&str>) = match parts.as_slice() {
        [dst] => (None, dst, vec![]),
        [a, b] if b.starts_with('/') => (Some(a), b, vec![]),
        [dst, o] => (None, dst, vec![*o]),
        [a, b, rest @ ..] => (Some(a), b, rest.to_vec()),
        [] => return Err(usage("empty --volume")),
    };
    if !dst.starts_with('/') {
        return Err(usage(format!(
            "--volume {v:?}: the destination {dst:?} must be an absolute path"
        )));
    }
    // nosuid and nodev unless `suid`/`dev` ask (podman's defaults for
    // volumes): a device node or setuid file made in a volume by the
    // container's root gives nothing.
    let mut m = MountConfig {
        destination: clean_path(dst),
        nosuid: true,
        nodev: true,
        ..MountConfig::default()
    };
    match src {
        Some(s) if s.starts_with('/') || s.starts_with('.') => {
            let p = std::fs::canonicalize(s).map_err(|e| {
                usage(format!(
                    "--volume {v:?}: source {s}: {e} (create it first; cairn does not create bind sources)"
                ))
            })?;
            m.kind = MountKind::Bind;
            m.source = p;
        }
        Some(name) => {
            m.source = volume_source(volumes, name).map_err(|e| {
                usage(format!(
                    "--volume {v:?}: {name:?} is neither an absolute path nor a valid volume name ({e})"
                ))
            })?;
            m.kind = MountKind::Volume;
            m.name = Some(name.to_owned());
        }
        None => {
            let name = container::new_id();
            m.kind = MountKind::Volume;
            m.source = volumes.join(&name).join("_data");
            m.name = Some(name);
            m.anonymous = true;
        }
    }
    for o in opts
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty())
    {
        apply_bind_option(&mut m, o).map_err(|e| usage(format!("--volume {v:?}: {e}")))?;
    }
    Ok(m)
}

/// One option of a `-v` or `--mount` list, in the runtime's vocabulary,
/// recorded in `m.options` as given.
fn apply_bind_option(m: &mut MountConfig, o: &str) -> Result<(), OptionError> {
    match parse_bind_option(o)? {
        BindOption::ReadOnly(v) => m.readonly = v,
        BindOption::Nosuid(v) => m.nosuid = v,
        BindOption::Nodev(v) => m.nodev = v,
        BindOption::Noexec(v) => m.noexec = v,
        BindOption::Recursive(v) => m.norecursive = !v,
        BindOption::Propagation(_) => m.propagation = o.to_owned(),
        BindOption::NoEffect => {}
    }
    m.options.push(o.to_owned());
    Ok(())
}

/// The data directory of the named volume `name` under `volumes`. The name
/// is joined to a host path, so it must be a plain name (podman's rule,
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`): `../..` or `/etc` would put the "volume"
/// anywhere on the host.
fn volume_source(volumes: &Path, name: &str) -> Result<PathBuf, String> {
    let mut chars = name.chars();
    let plain = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !plain {
        return Err(format!(
            "volume name {name:?} is invalid: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"
        ));
    }
    Ok(volumes.join(name).join("_data"))
}

/// `--mount type=bind,source=/a,target=/b,ro=true,…`.
fn parse_mount(spec: &str, volumes: &Path) -> anyhow::Result<MountConfig> {
    // nosuid and nodev as for `-v` (a tmpfs gets them anyway).
    let mut m = MountConfig {
        nosuid: true,
        nodev: true,
        ..MountConfig::default()
    };
    let mut kind = String::from("volume");
    let mut src = None;
    for kv in spec.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "type" => kind = v.to_owned(),
            "source" | "src" => src = Some(v.to_owned()),
            "target" | "destination" | "dst" => m.destination = clean_path(v),
            "ro" | "readonly" => m.readonly = v.is_empty() || v == "true",
            "rw" => m.readonly = !(v.is_empty() || v == "true"),
            "bind-propagation" => m.propagation = v.to_owned(),
            "tmpfs-size" => m.size = Some(v.to_owned()),
            "tmpfs-mode" => m.mode = Some(v.to_owned()),
            "bind-nonrecursive" => m.norecursive = v.is_empty() || v == "true",
            "relabel" | "z" | "Z" | "U" | "chown" | "consistency" | "volume-nocopy" => {}
            "nosuid" | "nodev" | "noexec" | "suid" | "dev" | "exec" => {
                apply_bind_option(&mut m, k).map_err(|e| usage(format!("--mount {spec:?}: {e}")))?
            }
            _ => return Err(usage(format!("--mount {spec:?}: unknown option {k:?}"))),
        }
    }
    if m.destination.is_empty() || !m.destination.starts_with('/') {
        return Err(usage(format!(
            "--mount {spec:?}: target= must be an absolute path"
        )));
    }
    m.kind = match kind.as_str() {
        "bind" => {
            let s = src.ok_or_else(|| {
                usage(format!("--mount {spec:?}: source= is required for a bind"))
            })?;
            let p = std::fs::canonicalize(&s)
                .map_err(|e| usage(format!("--mount {spec:?}: source {s}: {e}")))?;
            m.source = p;
            MountKind::Bind
        }
        "tmpfs" => {
            m.source = PathBuf::new();
            MountKind::Tmpfs
        }
        "volume" => {
            let (name, anon) = match src.filter(|s| !s.is_empty()) {
                Some(n) => (n, false),
                None => (container::new_id(), true),
            };
            m.source = volume_source(volumes, &name).map_err(|e| {
                usage(format!(
                    "--mount {spec:?}: {e}; for a host directory use type=bind"
                ))
            })?;
            m.name = Some(name);
            m.anonymous = anon;
            MountKind::Volume
        }
        other => {
            return Err(usage(format!(
                "--mount {spec:?}: type {other:?} is not supported: use bind, tmpfs or volume"
            )))
        }
    };
    Ok(m)
}

/// `--tmpfs /dst[:size=64m,mode=1777,…]`: nosuid and nodev unless `suid`
/// or `dev` ask (podman's defaults).
fn parse_tmpfs(spec: &str) -> anyhow::Result<MountConfig> {
    let (dst, opts) = spec.split_once(':').unwrap_or((spec, ""));
    if !dst.starts_with('/') {
        return Err(usage(format!("--tmpfs {spec:?}: must start with /")));
    }
    let mut m = MountConfig {
        kind: MountKind::Tmpfs,
        destination: clean_path(dst),
        nosuid: true,
        nodev: true,
        ..MountConfig::default()
    };
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match parse_tmpfs_option(o).map_err(|e| usage(format!("--tmpfs {spec:?}: {e}")))? {
            TmpfsOption::Size(v) => m.size = Some(v),
            TmpfsOption::Mode(v) => m.mode = Some(v),
            TmpfsOption::ReadOnly(v) => m.readonly = v,
            TmpfsOption::Nosuid(v) => m.nosuid = v,
            TmpfsOption::Nodev(v) => m.nodev = v,
            TmpfsOption::Noexec(v) => m.noexec = v,
            TmpfsOption::NoEffect => {}
        }
        m.options.push(o.to_owned());
    }
    Ok(m)
}

fn clean_path(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// `--ulimit TYPE=SOFT[:HARD]`, read as containers.conf's `default_ulimits`.
fn parse_ulimit(u: &str) -> anyhow::Result<Ulimit> {
    cairn_engine::containers_conf::parse_ulimit(u).map_err(|e| usage(format!("--ulimit {e}")))
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.chars().last() {
        Some('k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('g') => (&s[..s.len() - 1], 1 << 30),
        Some('b') => (&s[..s.len() - 1], 1),
        _ => (s.as_str(), 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("invalid size {s:?}"))
}

/// Containers named on the command line (or all), each found or reported.
fn select(
    containers: &Containers,
    names: &[String],
    all: bool,
    ignore: bool,
) -> anyhow::Result<(Vec<Container>, Vec<String>)> {
    if all {
        return Ok((containers.list()?, vec![]));
    }
    if names.is_empty() {
        return Err(usage("give at least one container name or id, or --all"));
    }
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for n in names {
        match containers.try_find(n)? {
            Some(c) => found.push(c),
            None if ignore => {}
            None => missing.push(n.clone()),
        }
    }
    Ok((found, missing))
}

fn no_such(name: &str) -> String {
    format!("no container with name or ID \"{name}\" found: no such container")
}

/// Prints errors for `missing` after the others succeeded; the exit code.
fn finish(missing: &[String], failed: bool) -> anyhow::Result<u8> {
    if missing.is_empty() && !failed {
        return Ok(0);
    }
    let (last, rest) = match missing.split_last() {
        Some(x) => x,
        None => return Ok(exit::ENGINE),
    };
    for m in rest {
        eprintln!("Error: {}", no_such(m));
    }
    Err(exit::with_code(exit::ENGINE, no_such(last)))
}

/// `cairn start`.
pub fn start(ctx: &Context, a: StartArgs) -> anyhow::Result<u8> {
    let containers = Containers::new(ctx.root());
    if !a.filter.is_empty() {
        return Err(flags::refuse(
            "filter",
            "name the containers, or select them with `cairn ps -q --filter`",
        ));
    }
    if let Some(k) = &a.detach_keys {
        flags::detach_keys(k).map_err(usage)?;
    }
    let names = match a.latest {
        true => vec![latest(&containers)?.config.id.to_string()],
        false => a.containers.clone(),
    };
    let (found, missing) = select(&containers, &names, a.all, false)?;
    if (a.attach || a.interactive) && found.len() > 1 {
        return Err(usage(
            "you cannot attach to more than one container at a time",
        ));
    }
    let mut failed = false;
    for mut c in found {
        if a.attach || a.interactive {
            let attach = attach_for(None, a.interactive, a.detach_keys.as_deref())?;
            // podman: signals proxied by default when attaching.
            let proxy = runtime::signal_proxy(a.sig_proxy.unwrap_or(true))?;
            let started = runtime::start(&mut c, attach)?;
            return finish_attached(ctx, &mut c, started, proxy);
        }
        match runtime::start(&mut c, Attach::default()) {
            Ok(_) => {
                println!(
                    "{}",
                    a.containers
                        .iter()
                        .find(|n| matches_container(&c, n))
                        .cloned()
                        .unwrap_or_else(|| c.config.name.clone())
                );
                if c.config.auto_remove {
                    spawn_reaper(ctx, &c)?;
                }
            }
            Err(e) => {
                failed = true;
                if missing.is_empty() && a.containers.len() <= 1 {
                    return Err(e.into());
                }
                crate::exit::report(&e.into());
            }
        }
    }
    finish(&missing, failed)
}

/// The container created last (`--latest`), or podman's error.
fn latest(containers: &Containers) -> anyhow::Result<Container> {
    containers
        .list()?
        .into_iter()
        .max_by(|a, b| a.config.created.cmp(&b.config.created))
        .ok_or_else(|| usage("no containers to start: no such container"))
}

fn matches_container(c: &Container, n: &str) -> bool {
    c.config.name == n || c.config.id.starts_with(n)
}

/// Removes `c` (see [`lifecycle::remove`]), warning about anonymous
/// volumes it could not remove; whether it was removed.
fn remove(
    ctx: &Context,
    c: &Container,
    if_running: IfRunning,
    timeout: Duration,
    volumes: bool,
) -> anyhow::Result<bool> {
    let containers = Containers::new(ctx.root());
    let Some(removed) = lifecycle::remove(&containers, c, if_running, timeout, volumes)? else {
        return Ok(false);
    };
    for (vol, e) in removed.volumes_left {
        eprintln!(
            "WARN: container {} removed, but not its anonymous volume {}: {e}",
            c.config.name,
            vol.display()
        );
    }
    Ok(true)
}

/// Removes a container whatever its state (rmi -f).
pub fn remove_forced(ctx: &Context, c: &Container) -> anyhow::Result<()> {
    remove(
        ctx,
        c,
        IfRunning::Stop,
        Duration::from_secs(c.config.stop_timeout),
        true,
    )
    .map(drop)
}

/// Removes a container unless it runs (checked under its lock): whether it
/// was removed (system prune).
pub fn remove_unless_running(ctx: &Context, c: &Container) -> anyhow::Result<bool> {
    remove(ctx, c, IfRunning::Skip, Duration::ZERO, true)
}

/// `rm --after-exit` (internal, for `run -d --rm`): waits, then removes.
fn rm_after_exit(ctx: &Context, id: &str) -> anyhow::Result<u8> {
    let containers = Containers::new(ctx.root());
    let Some(c) = containers.try_find(id)? else {
        return Ok(0);
    };
    runtime::wait_exit(&c);
    remove(ctx, &c, IfRunning::Stop, Duration::ZERO, true)?;
    Ok(0)
}

/// The container's pid when running, or podman's error.
fn running_pid(c: &Container) -> anyhow::Result<i32> {
    let live = c.live();
    if live.status != Status::Running {
        // podman's words and code (255: the exec session never started).
        return Err(exit::with_code(
            255,
            "can only create exec sessions on running containers: container state improper",
        ));
    }
    Ok(c.state.pid)
}

/// `cairn exec`: cairn-enter into the container's namespaces (we exec it,
/// so its exit status is ours). The command runs in a session of its own on
/// a pty of the container's devpts (`-t`) or pipes, never on the caller's
/// terminal (which it could type into with TIOCSTI).
pub fn exec(ctx: &Context, a: ExecArgs) -> anyhow::Result<u8> {
    let containers = Containers::new(ctx.root());
    if let Some(k) = &a.detach_keys {
        flags::detach_keys(k).map_err(usage)?;
    }
    let (c, command) = match a.latest {
        true => (latest(&containers)?, &a.args[..]),
        false => {
            let (name, command) = a.args.split_first().expect("clap requires one value");
            (containers.find(name)?, command)
        }
    };
    if command.is_empty() {
        return Err(usage(
            "must provide a non-empty command to start an exec session: invalid argument",
        ));
    }
    let pid = running_pid(&c)?;
    let mut env = Vec::new();
    for f in &a.env_file {
        let text = std::fs::read_to_string(f).map_err(|e| usage(format!("--env-file {f}: {e}")))?;
        env.extend(
            text.lines()
                .map(str::trim_start)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    env.extend(a.env.iter().cloned());
    if a.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push(format!(
            "TERM={}",
            std::env::var("TERM").unwrap_or_else(|_| "xterm".into())
        ));
    }
    let (mut cmd, _sealed) = runtime::exec_command(
        &c,
        pid,
        &ExecOptions {
            user: a.user.as_deref(),
            workdir: a.workdir.as_deref(),
            env: &env,
            privileged: a.privileged,
        },
    )?;
    // Its own pty (-t) or pipes, never our terminal or descriptors:
    // cairn-enter copies between them and ours.
    if a.tty {
        cmd.arg("--tty");
    }
    if a.interactive && !a.detach {
        cmd.arg("--stdin");
    }
    if let Some(n) = a.preserve_fds.filter(|n| *n > 0) {
        // Descriptors 3 .. 3+N-1 are ours as the caller gave them (not
        // close-on-exec): cairn-enter keeps them for the command.
        cmd.arg("--keep-fds").arg(n.to_string());
    }
    cmd.arg("--").args(command);
    cairn_engine::events::record_container(&c, "exec");
    if a.detach {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        cmd.spawn().context("start cairn-enter")?;
        println!("{}", &container::new_id());
        return Ok(0);
    }
    if !a.interactive {
        cmd.stdin(Stdio::null());
    }
    let err = cmd.exec();
    Err(usage(format!("exec cairn-enter: {err}")))
}

/// `cairn enter`: the user's login shell in the container, started if needed.
pub fn enter(ctx: &Context, a: EnterArgs) -> anyhow::Result<u8> {
    let containers = Containers::new(ctx.root());
    let mut c = containers.find(&a.container)?;
    if c.live().status != Status::Running {
        if nix::unistd::geteuid().is_root() {
            runtime::start(&mut c, Attach::default())?;
        } else {
            // Rootless: `start` runs in a user namespace of its own; we
            // then join the container's, which the caller owns.
            let exe = std::env::current_exe().context("find the cairn executable")?;
            let status = Command::new(exe)
                .arg("--root")
                .arg(ctx.root())
                .arg("start")
                .arg(&c.config.id)
                .stdout(Stdio::null())
                .status()
                .context("start the container")?;
            if !status.success() {
                return Ok(exit_code(status.code().unwrap_or(125)));
            }
        }
        c.reload()?;
    }
    let pid = running_pid(&c)?;
    let user = a
        .user
        .clone()
        .unwrap_or_else(|| c.config.process.user.clone());
    let user_name = user.split(':').next().unwrap_or("").to_owned();
    // Inside the container's root, bounded, never a device or FIFO.
    let passwd = container::files::read_in_container(pid, "etc/passwd")?.unwrap_or_default();
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| {
            f.len() >= 7
                && (f[0] == user_name
                    || (f[2] == user_name)
                    || (user_name.is_empty() && f[2] == "0"))
        });
    let (home, shell) = match &entry {
        Some(f) => (f[5].to_owned(), f[6].to_owned()),
        None => ("/".to_owned(), "/bin/sh".to_owned()),
    };
    let shell = if shell.is_empty() || shell.ends_with("nologin") || shell.ends_with("false") {
        "/bin/sh".to_owned()
    } else {
        shell
    };
    let mut env = vec![format!(
        "TERM={}",
        std::env::var("TERM").unwrap_or_else(|_| "xterm".into())
    )];
    env.push(format!("HOME={home}"));
    env.push(format!("SHELL={shell}"));
    if let Some(f) = &entry {
        env.push(format!("USER={}", f[0]));
        env.push(format!("LOGNAME={}", f[0]));
    }
    env.extend(a.env.iter().cloned());
    let workdir = a.workdir.clone().unwrap_or(home);
    let user_arg = if user.is_empty() {
        None
    } else {
        Some(user.as_str())
    };
    let (mut cmd, _sealed) = runtime::exec_command(
        &c,
        pid,
        &ExecOptions {
            user: user_arg,
            workdir: Some(&workdir),
            env: &env,
            privileged: false,
        },
    )?;
    // A login shell: a pty of its own when we have a terminal, else pipes.
    if std::io::stdin().is_terminal() {
        cmd.arg("--tty");
    }
    cmd.arg("--stdin").arg("--").arg(&shell).arg("-l");
    cairn_engine::events::record_container(&c, "exec");
    let err = cmd.exec();
    Err(usage(format!("exec cairn-enter: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_as_scripts_write_them() {
        let vols = Path::new("/s/volumes");
        let m = parse_volume("/tmp:/data:ro,z", vols).unwrap();
        assert_eq!((m.kind.as_str(), m.readonly), ("bind", true));
        assert_eq!(m.options, vec!["ro", "z"]);
        let m = parse_volume("/tmp:/data:ro:rslave", vols).unwrap();
        assert_eq!((m.readonly, m.propagation.as_str()), (true, "rslave"));
        let m = parse_volume("/tmp:/data:nosuid,nodev,noexec", vols).unwrap();
        assert!(m.nosuid && m.nodev && m.noexec);
        let m = parse_volume("cache:/var/cache", vols).unwrap();
        assert_eq!(m.kind, MountKind::Volume);
        assert_eq!(m.source, Path::new("/s/volumes/cache/_data"));
        let m = parse_volume("/anon", vols).unwrap();
        assert!(m.anonymous && m.kind == MountKind::Volume);
        assert!(parse_volume("/tmp:relative", vols).is_err());
        assert!(parse_volume("/does/not/exist:/x", vols).is_err());
        assert!(parse_volume("/tmp:/x:bogus", vols).is_err());
    }

    #[test]
    fn mounts_and_tmpfs() {
        let vols = Path::new("/v");
        let m = parse_mount(
            "type=bind,source=/tmp,target=/d,ro=true,bind-propagation=rslave",
            vols,
        )
        .unwrap();
        assert_eq!(
            (m.kind.as_str(), m.readonly, m.propagation.as_str()),
            ("bind", true, "rslave")
        );
        let m = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m", vols).unwrap();
        assert_eq!(m.size.as_deref(), Some("1m"));
        assert!(parse_mount("type=image,target=/x", vols).is_err());
        let t = parse_tmpfs("/cache:size=10m,mode=700,noexec").unwrap();
        assert_eq!(
            (t.size.as_deref(), t.mode.as_deref(), t.noexec),
            (Some("10m"), Some("700"), true)
        );
        // podman's tmpfs: nosuid and nodev unless suid or dev ask.
        assert!(t.nosuid && t.nodev);
        let t = parse_tmpfs("/t:suid,dev,tmpcopyup").unwrap();
        assert!(!t.nosuid && !t.nodev);
        assert_eq!(t.options, ["suid", "dev", "tmpcopyup"]);
        let m = parse_mount("type=tmpfs,target=/t,suid", vols).unwrap();
        assert!(!m.nosuid && m.nodev);
    }

    /// The options the runtime's vocabulary refuses keep their messages.
    #[test]
    fn refused_mount_options() {
        let vols = Path::new("/v");
        let msg = |r: anyhow::Result<MountConfig>| format!("{:#}", r.unwrap_err());
        assert_eq!(
            msg(parse_volume("/tmp:/x:bogus", vols)),
            r#"--volume "/tmp:/x:bogus": unknown option "bogus""#
        );
        assert_eq!(
            msg(parse_volume("/tmp:/x:O", vols)),
            r#"--volume "/tmp:/x:O": overlay volumes (O) are not supported"#
        );
        assert_eq!(
            msg(parse_tmpfs("/t:uid=0")),
            r#"--tmpfs "/t:uid=0": unknown option "uid=0""#
        );
        assert_eq!(
            msg(parse_mount(
                "type=bind,source=/tmp,target=/x,nosuid,O",
                vols
            )),
            r#"--mount "type=bind,source=/tmp,target=/x,nosuid,O": unknown option "O""#
        );
    }

    #[test]
    fn entrypoints_ulimits_names() {
        assert_eq!(
            parse_entrypoint("[\"/bin/sh\",\"-c\"]").unwrap(),
            vec!["/bin/sh", "-c"]
        );
        assert_eq!(parse_entrypoint("/bin/echo").unwrap(), vec!["/bin/echo"]);
        assert!(parse_entrypoint("").unwrap().is_empty());
        assert!(parse_entrypoint("[1]").is_err());
        assert_eq!(parse_ulimit("nofile=1024:2048").unwrap().hard, 2048);
        assert_eq!(parse_ulimit("core=-1").unwrap().soft, -1);
        assert!(parse_ulimit("bogus=1").is_err());
    }
}
