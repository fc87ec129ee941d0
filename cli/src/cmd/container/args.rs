//! The container verbs' flags and arguments (clap definitions), beside
//! their handlers in the parent module.

use std::path::PathBuf;

use clap::Args;

/// `create` flags (also `run`'s).
#[derive(Debug, Args, Clone)]
pub struct CreateArgs {
    /// IMAGE, then the command and its arguments (flags after IMAGE belong to the command).
    #[arg(
        required = true,
        trailing_var_arg = true,
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
    /// Network: bridge (root's default), NAME[,NAME] or NAME:ip=IP,alias=NAME, pasta[:OPTS] (rootless default), slirp4netns[:OPTS], host, none, private, ns:PATH, container:NAME.
    #[arg(long, alias = "net", value_name = "MODE")]
    pub network: Vec<String>,
    /// Another DNS name of the container on its bridge networks.
    #[arg(long = "network-alias", value_name = "NAME")]
    pub network_alias: Vec<String>,
    /// The container's IPv4 address on its (one) bridge network.
    #[arg(long = "ip", value_name = "IP")]
    pub ip: Option<String>,
    /// The container's MAC address on its (one) bridge network.
    #[arg(long = "mac-address", value_name = "MAC")]
    pub mac_address: Option<String>,
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
    /// Limit the number of processes and threads (default 2048 from containers.conf; -1 or 0 for none).
    #[arg(long = "pids-limit", value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Memory, CPU and block I/O limits.
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Add a rule to the device cgroup: TYPE MAJOR:MINOR ACCESS (c 1:3 rwm, b 8:* r).
    #[arg(long = "device-cgroup-rule", value_name = "RULE")]
    pub device_cgroup_rule: Vec<String>,
    /// The cgroup under which the container's cgroup is created (default /cairn).
    #[arg(long = "cgroup-parent", value_name = "PATH")]
    pub cgroup_parent: Option<String>,
    /// Resource limits: TYPE=SOFT[:HARD] (nofile, nproc, core, …), or host (the host's, as cairn's own).
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
    /// Publish a container's port on the host: [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp|sctp], ranges as 8000-8005:80-85, IPv6 as [::1]:8080:80.
    #[arg(short = 'p', long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,
    /// Bind a host device node: HOST[:CONTAINER][:PERMISSIONS] (permissions are recorded; without cgroups the node's own modes apply).
    #[arg(long = "device", value_name = "DEVICE")]
    pub device: Vec<String>,
    /// Streams to attach (run): STDIN, STDOUT, STDERR; the others go nowhere.
    #[arg(short = 'a', long = "attach", value_name = "STREAM")]
    pub attach: Vec<String>,
    /// Read labels from a file (KEY=VALUE per line).
    #[arg(long = "label-file", value_name = "FILE")]
    pub label_file: Vec<String>,
    /// Remove a container of the same name first.
    #[arg(long)]
    pub replace: bool,
    /// Restart policy: only "no" (cairn has no restart manager yet).
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Time zone: local or a zone name (/usr/share/zoneinfo), bound on /etc/localtime.
    #[arg(long = "tz", value_name = "ZONE")]
    pub tz: Option<String>,
    /// File mode creation mask of the container's first process (octal).
    #[arg(long, value_name = "MASK")]
    pub umask: Option<String>,
    /// Namespaced kernel parameters (KEY=VALUE): net.* with a network of its own, IPC ones, kernel.domainname.
    #[arg(long, value_name = "KEY=VALUE")]
    pub sysctl: Vec<String>,
    /// Healthcheck command (recorded; shown by inspect).
    #[arg(long = "health-cmd", value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Healthcheck interval (recorded).
    #[arg(
        long = "health-interval",
        default_value = "30s",
        value_name = "DURATION"
    )]
    pub health_interval: String,
    /// Healthcheck retries (recorded).
    #[arg(long = "health-retries", default_value_t = 3, value_name = "N")]
    pub health_retries: u64,
    /// Healthcheck start period (recorded).
    #[arg(
        long = "health-start-period",
        default_value = "0s",
        value_name = "DURATION"
    )]
    pub health_start_period: String,
    /// Healthcheck timeout (recorded).
    #[arg(
        long = "health-timeout",
        default_value = "30s",
        value_name = "DURATION"
    )]
    pub health_timeout: String,
    /// Action once unhealthy: none, kill, restart, stop (recorded).
    #[arg(
        long = "health-on-failure",
        default_value = "none",
        value_name = "ACTION"
    )]
    pub health_on_failure: String,
    /// Disable the image's healthcheck.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Log driver options: tag=… (recorded); others are refused.
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opt: Vec<String>,
    /// Keep the image's /etc/hosts (none generated).
    #[arg(long = "no-hosts")]
    pub no_hosts: bool,
    /// Accepted for podman compatibility: cairn is its own OCI runtime (crun, runc, … are not used).
    #[arg(long, value_name = "PATH")]
    pub runtime: Option<String>,
    /// Architecture of the image to pull.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// OS of the image to pull.
    #[arg(long, value_name = "OS")]
    pub os: Option<String>,
    /// Architecture variant of the image to pull.
    #[arg(long, value_name = "VARIANT")]
    pub variant: Option<String>,
    /// Authentication file for the pull.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Copy every environment variable of cairn's into the container.
    #[arg(long = "env-host")]
    pub env_host: bool,
    /// Copy the host's proxy variables (http_proxy, https_proxy, ftp_proxy, no_proxy and upper-case forms).
    #[arg(long = "http-proxy", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub http_proxy: bool,
    /// Expose ports (recorded; what -P publishes).
    #[arg(long, value_name = "PORT")]
    pub expose: Vec<String>,
    /// Remove a default environment variable.
    #[arg(long, value_name = "NAME")]
    pub unsetenv: Vec<String>,
    /// Remove every default environment variable (the -e ones stay).
    #[arg(long = "unsetenv-all")]
    pub unsetenv_all: bool,
    /// Write PID 1's host pid to this file at each start.
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Cgroups: enabled (default; insists that asked limits apply), disabled (none), no-conmon (the monitor is never in one), split (below cairn's own cgroup).
    #[arg(long, value_name = "MODE")]
    pub cgroups: Option<String>,
    /// Only "ignore" (cairn passes no NOTIFY_SOCKET); container and conmon are refused.
    #[arg(long, value_name = "MODE")]
    pub sdnotify: Option<String>,
    /// Only "default" (the image policy is refused).
    #[arg(long = "seccomp-policy", value_name = "POLICY")]
    pub seccomp_policy: Option<String>,
    /// Only "ignore": cairn does not create the image's VOLUMEs.
    #[arg(long = "image-volume", value_name = "MODE")]
    pub image_volume: Option<String>,
    /// Accepted for podman compatibility (a Docker option, a no-op in podman too).
    #[arg(long = "disable-content-trust", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub disable_content_trust: Option<bool>,
    /// Publish every exposed port (the image's ExposedPorts and --expose) on a random host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Flags cairn refuses by name.
    #[command(flatten)]
    pub refused: super::flags::RefusedCreate,
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
    /// Key sequence that detaches an attached `-i` session, leaving the container running (default ctrl-p,ctrl-q; "" disables).
    #[arg(long = "detach-keys", value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Pass signals cairn receives to the container (default true when attached).
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub sig_proxy: bool,
    /// Only false: cairn adds no /etc/passwd entries.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub passwd: Option<bool>,
    /// Refused for run (cairn's start chain uses descriptors 3 and 4); exec takes it.
    #[arg(long = "preserve-fds", value_name = "N")]
    pub preserve_fds: Option<u32>,
    /// run-only flags cairn refuses by name.
    #[command(flatten)]
    pub refused_run: super::flags::RefusedRun,
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
    /// Key sequence that detaches `start -ai` (default ctrl-p,ctrl-q; "" disables).
    #[arg(long = "detach-keys", value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Refused: cairn does not filter containers to start.
    #[arg(short, long = "filter", value_name = "FILTER", hide = true)]
    pub filter: Vec<String>,
    /// The latest container created.
    #[arg(short, long)]
    pub latest: bool,
    /// Pass signals cairn receives to the container (default: true with --attach).
    #[arg(long = "sig-proxy", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub sig_proxy: Option<bool>,
}

/// `stop` flags.
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
    /// Read the container id from this file (repeatable).
    #[arg(long, value_name = "FILE")]
    pub cidfile: Vec<PathBuf>,
    /// Only the containers matching these filters (as `ps --filter`).
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Act on the latest container created.
    #[arg(short, long)]
    pub latest: bool,
}

/// `restart` flags.
#[derive(Debug, Args)]
pub struct RestartArgs {
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
    /// Every container (with --running, every running one).
    #[arg(short, long)]
    pub all: bool,
    /// With --all, only the running containers.
    #[arg(long)]
    pub running: bool,
    /// Read the container id from this file (repeatable).
    #[arg(long, value_name = "FILE")]
    pub cidfile: Vec<PathBuf>,
    /// Only the containers matching these filters (as `ps --filter`).
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Act on the latest container created.
    #[arg(short, long)]
    pub latest: bool,
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
    /// Read the container id from this file (repeatable).
    #[arg(long, value_name = "FILE")]
    pub cidfile: Vec<PathBuf>,
    /// Act on the latest container created.
    #[arg(short, long)]
    pub latest: bool,
}

/// `rm` flags.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Containers (names or ids).
    pub containers: Vec<String>,
    /// Stop running containers first; missing containers are no error (as --ignore).
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
    /// Read the container id from this file (repeatable).
    #[arg(long, value_name = "FILE")]
    pub cidfile: Vec<PathBuf>,
    /// Only the containers matching these filters (as `ps --filter`).
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Act on the latest container created.
    #[arg(short, long)]
    pub latest: bool,
    /// Accepted for podman compatibility: no cairn container depends on another, so only the named ones are removed.
    #[arg(long)]
    pub depend: bool,
    /// Internal (`run -d --rm`): wait for the container to exit, then remove it.
    #[arg(long, hide = true)]
    pub after_exit: bool,
}

/// `exec` flags.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// CONTAINER (unless --latest), then the command and its arguments.
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, value_name = "CONTAINER COMMAND [ARG...]")]
    pub args: Vec<String>,
    /// Key sequence for detaching (podman's format; "" disables). Checked; the exec relay has no detach.
    #[arg(long = "detach-keys", value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// The latest container created (the arguments are then all the command).
    #[arg(short, long)]
    pub latest: bool,
    /// Pass descriptors 3 .. 3+N-1 to the command.
    #[arg(long = "preserve-fds", value_name = "N")]
    pub preserve_fds: Option<u32>,
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
    /// Filter (the same key repeated: any of its values; labels and different keys: all): id=, name=, label=KEY[=VALUE], status=, exited=, ancestor=, before=, since=, until=.
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Omit the table header.
    #[arg(long = "noheading")]
    pub noheading: bool,
    /// Show the latest container only (all states).
    #[arg(short, long)]
    pub latest: bool,
    /// Show the last N created containers, all states (-1: no limit).
    #[arg(short = 'n', long, default_value_t = -1, allow_negative_numbers = true, value_name = "N")]
    pub last: i64,
    /// Show each container's size: its writable layer (virtual: with the image).
    #[arg(short, long)]
    pub size: bool,
    /// Not supported: cairn has no pods.
    #[arg(short, long, hide = true)]
    pub pod: bool,
    /// Accepted for podman compatibility: cairn has no containers outside its own.
    #[arg(long)]
    pub external: bool,
    /// Sort by: command, created, id, image, names, runningfor, size, status.
    #[arg(long, value_name = "FIELD", value_parser = ["command", "created", "id", "image", "names", "runningfor", "size", "status"])]
    pub sort: Option<String>,
    /// Accepted for podman compatibility: cairn reads each container's state live.
    #[arg(long)]
    pub sync: bool,
    /// Not supported: namespace columns.
    #[arg(long, hide = true)]
    pub ns: bool,
    /// Not supported: watch.
    #[arg(short, long, hide = true, value_name = "SECONDS")]
    pub watch: Option<u64>,
}

/// `logs` flags.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Containers (names or ids).
    pub containers: Vec<String>,
    /// Follow the log until the container stops.
    #[arg(short, long)]
    pub follow: bool,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only lines at or after this time: RFC 3339, 2006-01-02[T15:04:05] (local time), Unix seconds, or a duration before now (10m).
    #[arg(long)]
    pub since: Option<String>,
    /// Only lines before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Only the last N lines (-1: all).
    #[arg(long, allow_negative_numbers = true)]
    pub tail: Option<i64>,
    /// Prefix lines with the container name instead of its id (several containers).
    #[arg(short, long)]
    pub names: bool,
    /// Show the latest container's log.
    #[arg(short, long)]
    pub latest: bool,
    /// Accepted for podman compatibility: cairn prints without colors.
    #[arg(long)]
    pub color: bool,
}

/// `wait` flags.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Containers (names or ids).
    pub containers: Vec<String>,
    /// Conditions to wait for (stopped, exited, running, …).
    #[arg(long = "condition", value_name = "STATE")]
    pub condition: Vec<String>,
    /// Do not fail for containers that do not exist.
    #[arg(long)]
    pub ignore: bool,
    /// How often to look (a duration: 250ms, 1s).
    #[arg(short, long, default_value = "250ms", value_name = "DURATION")]
    pub interval: String,
    /// Wait for the latest container created.
    #[arg(short, long)]
    pub latest: bool,
}

/// `rename` arguments.
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The container.
    pub container: String,
    /// Its new name.
    pub name: String,
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
    /// The container (not with --latest), then descriptors (user, pid, ppid, pcpu, etime, tty, time, args, comm, …, comma or space separated) or ps(1) options run in the container.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CONTAINER [FORMAT-DESCRIPTORS|ARGS...]"
    )]
    pub args: Vec<String>,
    /// The latest container created.
    #[arg(short, long)]
    pub latest: bool,
}

/// `container prune` flags.
#[derive(Debug, Args)]
pub struct ContainerPruneArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Only the containers matching: label=KEY[=VALUE], label!=KEY[=VALUE], until=TIME.
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
}

/// `container exists` flags.
#[derive(Debug, Args)]
pub struct ContainerExistsArgs {
    /// The container.
    pub container: String,
    /// Accepted for podman compatibility: cairn has no containers outside its own.
    #[arg(long)]
    pub external: bool,
}

/// `container inspect` flags.
#[derive(Debug, Args)]
pub struct ContainerInspectArgs {
    /// Containers (names or ids).
    pub names: Vec<String>,
    /// Go template applied to each result, or json.
    #[arg(short, long)]
    pub format: Option<String>,
    /// The latest container created.
    #[arg(short, long)]
    pub latest: bool,
    /// Not supported: sizes in inspect.
    #[arg(short, long, hide = true)]
    pub size: bool,
}

/// `port` flags.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container, then optionally PORT[/PROTO].
    pub args: Vec<String>,
    /// Every container.
    #[arg(short, long)]
    pub all: bool,
    /// The latest container created.
    #[arg(short, long)]
    pub latest: bool,
}

/// `init` flags.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Containers (names or ids).
    pub containers: Vec<String>,
    /// Every container.
    #[arg(short, long)]
    pub all: bool,
    /// The latest container created.
    #[arg(short, long)]
    pub latest: bool,
}

/// `diff` flags.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The container (or image: refused).
    pub container: Option<String>,
    /// Output format: json.
    #[arg(long)]
    pub format: Option<String>,
    /// The latest container created.
    #[arg(short, long)]
    pub latest: bool,
}

/// `mount` flags.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// Containers (names or ids); none: list the mounted ones.
    pub containers: Vec<String>,
    /// Every container.
    #[arg(short, long)]
    pub all: bool,
    /// Output format: json.
    #[arg(long)]
    pub format: Option<String>,
    /// The latest container created.
    #[arg(short, long)]
    pub latest: bool,
    /// Do not truncate ids.
    #[arg(long)]
    pub no_trunc: bool,
}

/// `unmount` flags.
#[derive(Debug, Args)]
pub struct UnmountArgs {
    /// Containers (names or ids).
    pub containers: Vec<String>,
    /// Every mounted container.
    #[arg(short, long)]
    pub all: bool,
    /// Unmount even if mounted more than once.
    #[arg(short, long)]
    pub force: bool,
    /// The latest container created.
    #[arg(short, long)]
    pub latest: bool,
}

/// `attach` flags (refused: see the handler).
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The container.
    pub container: Option<String>,
    /// Detach keys.
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// The latest container created.
    #[arg(short, long)]
    pub latest: bool,
    /// Do not attach stdin.
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy signals.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub sig_proxy: Option<bool>,
}

/// `healthcheck run` arguments.
#[derive(Debug, Args)]
pub struct HealthcheckRunArgs {
    /// The container.
    pub container: String,
}

/// `generate systemd` flags.
#[derive(Debug, Args)]
pub struct GenerateSystemdArgs {
    /// The container.
    pub container: String,
    /// Use the container's name instead of its id (unit name and commands).
    #[arg(short, long)]
    pub name: bool,
    /// A unit that creates a new container on start and removes it on stop.
    #[arg(long)]
    pub new: bool,
    /// Skip the header comment.
    #[arg(long)]
    pub no_header: bool,
    /// Unit name prefix for containers.
    #[arg(long, default_value = "container", value_name = "PREFIX")]
    pub container_prefix: String,
    /// Separator between prefix and name or id.
    #[arg(long, default_value = "-", value_name = "SEP")]
    pub separator: String,
    /// systemd Restart= policy.
    #[arg(long, default_value = "on-failure", value_name = "POLICY")]
    pub restart_policy: String,
    /// systemd RestartSec=.
    #[arg(long, value_name = "SECONDS")]
    pub restart_sec: Option<u64>,
    /// systemd TimeoutStartSec=.
    #[arg(long, value_name = "SECONDS")]
    pub start_timeout: Option<u64>,
    /// Seconds `stop` waits (default: the container's stop timeout).
    #[arg(long, value_name = "SECONDS")]
    pub stop_timeout: Option<u64>,
    /// Environment variables for the unit (KEY=VALUE).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// After= dependencies.
    #[arg(long, value_name = "UNIT")]
    pub after: Vec<String>,
    /// Wants= dependencies.
    #[arg(long, value_name = "UNIT")]
    pub wants: Vec<String>,
    /// Requires= dependencies.
    #[arg(long, value_name = "UNIT")]
    pub requires: Vec<String>,
    /// Write container-NAME.service in the current directory and print its path.
    #[arg(short, long)]
    pub files: bool,
    /// Not supported: json output.
    #[arg(long, hide = true)]
    pub format: Option<String>,
    /// Not supported: template units.
    #[arg(long, hide = true)]
    pub template: bool,
    /// Not supported: cairn has no pods.
    #[arg(long, hide = true, value_name = "PREFIX")]
    pub pod_prefix: Option<String>,
}

/// The cgroup limits `run`, `create` and `update` take (podman's units).
#[derive(Debug, Clone, Default, Args)]
pub struct ResourceArgs {
    /// Memory limit: a size such as 512m or 2g.
    #[arg(short = 'm', long = "memory", value_name = "SIZE")]
    pub memory: Option<String>,
    /// Memory plus swap limit (-1 unlimited; default twice --memory).
    #[arg(long = "memory-swap", value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation", value_name = "SIZE")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs (0.5: half a core), as a quota over a 100 ms period.
    #[arg(long = "cpus", value_name = "N")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares", value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// CPU CFS quota in microseconds (-1 none).
    #[arg(long = "cpu-quota", value_name = "US", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds.
    #[arg(long = "cpu-period", value_name = "US")]
    pub cpu_period: Option<u64>,
    /// CPUs the container may run on (0-3, 0,1).
    #[arg(long = "cpuset-cpus", value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    #[arg(long = "cpuset-mems", value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Block I/O weight (10 to 1000).
    #[arg(long = "blkio-weight", value_name = "N")]
    pub blkio_weight: Option<u16>,
}

impl ResourceArgs {
    /// The engine's form of the flags.
    pub fn flags(&self) -> cairn_engine::container::cgroups::ResourceFlags {
        cairn_engine::container::cgroups::ResourceFlags {
            memory: self.memory.clone(),
            memory_swap: self.memory_swap.clone(),
            memory_reservation: self.memory_reservation.clone(),
            cpus: self.cpus.clone(),
            cpu_shares: self.cpu_shares,
            cpu_quota: self.cpu_quota,
            cpu_period: self.cpu_period,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            blkio_weight: self.blkio_weight,
        }
    }
}
