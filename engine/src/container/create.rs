//! `create`'s decisions: the options a user gave, the image's defaults and
//! what cairn found out about the host, merged into a container's
//! [`Config`]. A pure function: every file it needs was read before (the
//! image, env files, the seccomp profile) and every file it makes is
//! written after ([`lifecycle::create`](crate::lifecycle::create)).

use std::collections::BTreeMap;

use nix::sys::signal::Signal;

use cairn_store::media::RuntimeConfig;

use super::config::{
    Config, ContainerId, Device, Healthcheck, IdMaps, ImageRef, MountConfig, Namespaces, Process,
    SeccompProfile, TimeZone, Ulimit,
};
use super::runtime::parse_signal;
use super::seccomp::{Choice, Compiled};
use super::security::SecurityOpts;
use crate::containers_conf::Defaults;
use crate::error::{bail, Error, Result};
use crate::userns::Rootless;

/// The default `PATH` of a container whose image sets none.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the user asked for, parsed and checked value by value.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// `--network host` was given (not cairn's default host network):
    /// podman then keeps the host's name.
    pub host_network_asked: bool,
    /// The container's name (checked, unique at write time).
    pub name: String,
    /// The command after the image: replaces the image's CMD.
    pub command: Vec<String>,
    /// A replacement entrypoint (`Some(vec![])`: none, and no image CMD).
    pub entrypoint: Option<Vec<String>>,
    /// Environment entries in order (env files' lines, then `-e`s): `K=V`,
    /// `K` (copied from the host) or `PREFIX*` (every host variable so
    /// named).
    pub env: Vec<String>,
    /// `user[:group]`, over the image's.
    pub user: Option<String>,
    /// Working directory, over the image's.
    pub workdir: Option<String>,
    /// Host name, over the default.
    pub hostname: Option<String>,
    /// Labels over the image's.
    pub labels: Vec<(String, String)>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Binds, tmpfs and volumes, in order; each destination once.
    pub mounts: Vec<MountConfig>,
    /// Namespace modes.
    pub namespaces: Namespaces,
    /// Full privileges: every capability, no seccomp.
    pub privileged: bool,
    /// Capabilities added to the default set.
    pub cap_add: Vec<String>,
    /// Capabilities dropped from it.
    pub cap_drop: Vec<String>,
    /// The security options as given (recorded for inspect).
    pub security_opt: Vec<String>,
    /// The security options, parsed.
    pub security: SecurityOpts,
    /// Run a tiny init as PID 1.
    pub init: bool,
    /// Stop signal, over the image's.
    pub stop_signal: Option<String>,
    /// Seconds stop waits before SIGKILL (default 10).
    pub stop_timeout: Option<u64>,
    /// Read-only root.
    pub read_only: bool,
    /// tmpfs on /tmp, /var/tmp and /run with a read-only root.
    pub read_only_tmpfs: bool,
    /// DNS servers.
    pub dns: Vec<String>,
    /// DNS search domains.
    pub dns_search: Vec<String>,
    /// resolv.conf options.
    pub dns_option: Vec<String>,
    /// Extra hosts entries, `name:ip`.
    pub add_hosts: Vec<String>,
    /// `--pids-limit` (containers.conf's, else podman's 2048, when not given).
    pub pids_limit: Option<i64>,
    /// Resource limits.
    pub ulimits: Vec<Ulimit>,
    /// The systemd mode as given.
    pub systemd: String,
    /// Remove the container when it exits.
    pub auto_remove: bool,
    /// Supplementary groups.
    pub group_add: Vec<String>,
    /// /dev/shm size in bytes.
    pub shm_size: Option<u64>,
    /// The command line that created it.
    pub create_command: Vec<String>,
    /// The user namespace mode as given.
    pub userns: String,
    /// The tmpfs options as given (recorded; also in `mounts`).
    pub tmpfs: Vec<String>,
    /// The platform asked for.
    pub platform: Option<String>,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open.
    pub interactive: bool,
    /// With the bridge mode: the networks and this container's options on
    /// each.
    pub networks: BTreeMap<String, crate::network::Attachment>,
    /// Published ports (host ports already picked).
    pub ports: Vec<crate::network::PortForward>,
    /// The flags' settings the engine records as given (umask, sysctls,
    /// time zone, devices, healthcheck, ...), copied into the config.
    pub extra: Extra,
}

/// Settings recorded as given (checked by the caller), copied into the
/// [`Config`] unchanged.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// `--umask`, octal.
    pub umask: Option<String>,
    /// `--sysctl`s.
    pub sysctls: BTreeMap<String, String>,
    /// `--tz`.
    pub timezone: Option<TimeZone>,
    /// `--no-hosts`.
    pub no_hosts: bool,
    /// `--dns none`.
    pub no_resolv_conf: bool,
    /// `--device`s.
    pub devices: Vec<Device>,
    /// `--mount type=devpts` destinations.
    pub devpts: Vec<String>,
    /// `--health-*`.
    pub healthcheck: Option<Healthcheck>,
    /// `--health-on-failure`.
    pub health_on_failure: String,
    /// `--log-opt`s.
    pub log_opts: BTreeMap<String, String>,
    /// `--restart`.
    pub restart_policy: String,
    /// `--pidfile`.
    pub pidfile: Option<std::path::PathBuf>,
    /// `--unsetenv` names (removed unless given with `-e`).
    pub unsetenv: Vec<String>,
    /// `--unsetenv-all`: only the `-e`s (and what podman always sets).
    pub unsetenv_all: bool,
    /// `--expose`d ports, `PORT[/PROTO]`.
    pub expose: Vec<String>,
    /// `--memory`, `--cpus` and the other cgroup limits, checked
    /// ([`cgroups::resources`](crate::container::cgroups::resources)).
    pub resources: cairn_runtime::cgroup::Resources,
    /// `--device-cgroup-rule`s, checked.
    pub device_cgroup_rules: Vec<String>,
    /// `--cgroup-parent`.
    pub cgroup_parent: Option<String>,
    /// `--cgroups` as given.
    pub cgroups: Option<String>,
}

/// What create found out before deciding: the image, the host, the
/// compiled seccomp filter.
#[derive(Debug)]
pub struct Facts<'a> {
    /// The new container's id.
    pub id: ContainerId,
    /// Now, RFC 3339 with ns.
    pub created: String,
    /// The image as the config records it.
    pub image: ImageRef,
    /// The image as the user named it (for messages).
    pub image_spec: &'a str,
    /// The image's runtime defaults.
    pub image_config: &'a RuntimeConfig,
    /// The host's name (for `--uts host`).
    pub host_hostname: &'a str,
    /// cairn's environment (UTF-8 variables only).
    pub host_env: &'a [(String, String)],
    /// keep-id: the maps and the caller.
    pub keep_id: Option<&'a (IdMaps, Rootless)>,
    /// The seccomp profile chosen.
    pub seccomp_choice: &'a Choice,
    /// Its compiled filter (`None`: unconfined).
    pub seccomp: Option<&'a Compiled>,
    /// containers.conf's defaults.
    pub defaults: &'a Defaults,
}

/// The container's [`Config`]. `home_of` gives the home directory of a
/// `user[:group]` in the image (`/` when it has none).
pub fn config(
    o: &CreateOptions,
    f: &Facts<'_>,
    home_of: &dyn Fn(&str) -> String,
) -> Result<Config> {
    let rc = f.image_config;
    let (entrypoint, cmd, args) = command_line(o, rc, f.image_spec)?;
    check_destinations(&o.mounts)?;
    let hostname = hostname(o, f);
    let user = o
        .user
        .clone()
        .or_else(|| f.keep_id.map(|(_, r)| format!("{}:{}", r.uid, r.gid)))
        .or(rc.user.clone())
        .unwrap_or_default();
    let home = home_of(&user);
    let env = environment(
        &f.defaults.env,
        rc.env.as_deref().unwrap_or_default(),
        &o.env,
        f.host_env,
        &hostname,
        &home,
    );
    let env = unset(env, &o.env, &o.extra);
    let exposed_ports = exposed_ports(rc, &o.extra.expose);
    let x = o.extra.clone();
    let home_default = !sets_home(
        f.defaults
            .env
            .iter()
            .chain(rc.env.as_deref().unwrap_or_default()),
        &o.env,
        f.host_env,
    );
    let mut labels = rc.labels.clone().unwrap_or_default();
    labels.extend(o.labels.iter().cloned());
    let stop_signal = stop_signal(o, rc)?;
    let image_resolv_conf = dns_none(o)?;
    Ok(Config {
        id: f.id.clone(),
        name: o.name.clone(),
        created: f.created.clone(),
        image: f.image.clone(),
        process: Process {
            args,
            entrypoint,
            cmd,
            env,
            home_default,
            workdir: o
                .workdir
                .clone()
                .or(rc.working_dir.clone())
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".into()),
            user,
            tty: o.tty,
            interactive: o.interactive,
        },
        hostname,
        labels,
        annotations: o.annotations.clone(),
        mounts: o.mounts.clone(),
        namespaces: o.namespaces.clone(),
        privileged: o.privileged,
        cap_add: o.cap_add.clone(),
        cap_drop: o.cap_drop.clone(),
        security_opt: o.security_opt.clone(),
        no_new_privs: o.security.no_new_privs,
        seccomp_profile: seccomp_profile(f.seccomp_choice),
        seccomp_filter: f.seccomp.is_some(),
        seccomp_flags: f.seccomp.map(|s| s.flags.clone()).unwrap_or_default(),
        mask: o.security.mask.clone(),
        unmask: o.security.unmask.clone(),
        init: o.init,
        stop_signal: Some(stop_signal),
        stop_timeout: o.stop_timeout.unwrap_or(10),
        read_only: o.read_only,
        read_only_tmpfs: o.read_only_tmpfs,
        dns: if image_resolv_conf {
            Vec::new()
        } else {
            o.dns.clone()
        },
        dns_search: o.dns_search.clone(),
        dns_option: o.dns_option.clone(),
        add_hosts: o.add_hosts.clone(),
        pids_limit: o.pids_limit.or(f.defaults.pids_limit),
        ulimits: ulimits(&f.defaults.ulimits, &o.ulimits),
        systemd: o.systemd.clone(),
        auto_remove: o.auto_remove,
        exposed_ports,
        group_add: o.group_add.clone(),
        shm_size: o.shm_size.or(shm_size(f.defaults)),
        create_command: o.create_command.clone(),
        userns: o.userns.clone(),
        tmpfs: o.tmpfs.clone(),
        platform: o.platform.clone(),
        idmap: f.keep_id.map(|(m, _)| m.clone()),
        default_capabilities: Some(f.defaults.capabilities.clone()),
        umask: x.umask,
        sysctls: sysctls(&f.defaults.sysctls, &o.namespaces, x.sysctls),
        timezone: x
            .timezone
            .or_else(|| conf_time_zone(f.defaults.tz.as_deref())),
        no_hosts: x.no_hosts || f.defaults.no_hosts,
        no_resolv_conf: x.no_resolv_conf || image_resolv_conf,
        devices: x.devices,
        devpts: x.devpts,
        resources: x.resources,
        pids_limit_given: o.pids_limit.is_some(),
        device_cgroup_rules: x.device_cgroup_rules,
        cgroup_parent: x.cgroup_parent,
        cgroups_given: x.cgroups.is_some(),
        cgroups: x.cgroups.unwrap_or_default(),
        healthcheck: x.healthcheck,
        health_on_failure: x.health_on_failure,
        log_opts: x.log_opts,
        restart_policy: x.restart_policy,
        pidfile: x.pidfile,
        networks: o.networks.clone(),
        ports: o.ports.clone(),
    })
}

/// The image's `ExposedPorts` and the `--expose`d ones (`PORT[/PROTO]`,
/// tcp by default).
fn exposed_ports(rc: &RuntimeConfig, expose: &[String]) -> BTreeMap<String, serde_json::Value> {
    let mut exposed = rc.exposed_ports.clone().unwrap_or_default();
    for p in expose {
        let key = if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        };
        exposed.insert(key, serde_json::json!({}));
    }
    exposed
}

/// containers.conf's `default_sysctls` for the namespaces the container has
/// of its own (`net.*` with a network namespace, the IPC ones with an IPC
/// namespace; podman skips the others), under the `--sysctl`s.
fn sysctls(
    defaults: &[String],
    ns: &Namespaces,
    given: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for d in defaults {
        let Some((k, v)) = d.split_once('=') else {
            continue;
        };
        let own = if k.starts_with("net.") {
            ns.network.creates_namespace()
        } else if k.starts_with("kernel.msg")
            || k.starts_with("kernel.sem")
            || k.starts_with("kernel.shm")
            || k.starts_with("fs.mqueue.")
        {
            !ns.ipc.is_host()
        } else {
            false
        };
        if own {
            out.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    out.extend(given);
    out
}

/// `--unsetenv NAME` and `--unsetenv-all`: the defaults (PATH, the image's,
/// TERM, container, HOSTNAME, HOME) removed unless a `-e` gave them.
fn unset(env: Vec<String>, given: &[String], x: &Extra) -> Vec<String> {
    if x.unsetenv.is_empty() && !x.unsetenv_all {
        return env;
    }
    let given_key = |k: &str| {
        given
            .iter()
            .any(|g| g.split_once('=').map_or(g.as_str(), |(gk, _)| gk) == k)
    };
    env.into_iter()
        .filter(|e| {
            let k = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            given_key(k) || !(x.unsetenv_all || x.unsetenv.iter().any(|u| u == k))
        })
        .collect()
}

/// PID 1's command line: `(entrypoint, cmd, entrypoint + cmd)`. A given
/// entrypoint drops the image's CMD too, as podman does.
fn command_line(
    o: &CreateOptions,
    rc: &RuntimeConfig,
    image_spec: &str,
) -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
    let entrypoint = match &o.entrypoint {
        Some(e) => e.clone(),
        None => rc.entrypoint.clone().unwrap_or_default(),
    };
    let cmd = if !o.command.is_empty() {
        o.command.clone()
    } else if o.entrypoint.is_some() {
        vec![]
    } else {
        rc.cmd.clone().unwrap_or_default()
    };
    let args: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
    if args.is_empty() {
        return Err(Error::Refused(format!(
            "no command or entrypoint provided, and no CMD or ENTRYPOINT from image {image_spec}: give a command"
        )));
    }
    Ok((entrypoint, cmd, args))
}

/// Each mount destination once.
fn check_destinations(mounts: &[MountConfig]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for m in mounts {
        if !seen.insert(m.destination.as_str()) {
            return Err(Error::Refused(format!(
                "{}: duplicate mount destination",
                m.destination
            )));
        }
    }
    Ok(())
}

/// The given host name, else the host's with a shared UTS or network
/// namespace (podman: `--network host` keeps the host's name), else the
/// id's first 12 digits.
fn hostname(o: &CreateOptions, f: &Facts<'_>) -> String {
    match &o.hostname {
        Some(h) => h.clone(),
        None if o.namespaces.uts.is_host() || o.host_network_asked => f.host_hostname.to_owned(),
        None => f.id.chars().take(12).collect(),
    }
}

/// The `--ulimit`s given, else containers.conf's: as in podman, whose
/// `--ulimit` takes the file's list as its default value, one given flag
/// containers.conf's `tz` (checked when the file was read) as `--tz`
/// gives it: `local` is the host's `/etc/localtime`, a name its zoneinfo
/// file.
fn conf_time_zone(tz: Option<&str>) -> Option<TimeZone> {
    let name = tz.filter(|t| !t.is_empty())?;
    let file = if name == "local" {
        std::path::PathBuf::from("/etc/localtime")
    } else {
        std::path::Path::new("/usr/share/zoneinfo").join(name)
    };
    Some(TimeZone {
        name: name.to_owned(),
        file,
    })
}

/// replaces the whole list.
fn ulimits(defaults: &[Ulimit], given: &[Ulimit]) -> Vec<Ulimit> {
    if given.is_empty() {
        defaults.to_vec()
    } else {
        given.to_vec()
    }
}

/// containers.conf's `/dev/shm` size (podman's 64000k by default, where
/// cairn-mount's own is 64 MiB).
fn shm_size(d: &Defaults) -> Option<u64> {
    Some(d.shm_size)
}

/// The container's environment: PATH default, containers.conf's `env`, the
/// image's, the user's, then what podman always sets (TERM, container,
/// HOSTNAME, HOME).
fn environment(
    conf_env: &[String],
    image_env: &[String],
    given: &[String],
    host: &[(String, String)],
    hostname: &str,
    home: &str,
) -> Vec<String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| {
        if let Some(e) = env.iter_mut().find(|(ek, _)| ek == k) {
            e.1 = v.to_owned();
        } else {
            env.push((k.to_owned(), v.to_owned()));
        }
    };
    set("PATH", DEFAULT_PATH);
    for e in conf_env.iter().chain(image_env) {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        set(k, v);
    }
    // podman's containers.conf default env: TERM=xterm, with or without -t.
    set("TERM", "xterm");
    for g in given {
        match g.split_once('=') {
            Some((k, v)) => set(k, v),
            None => {
                if let Some(k) = g.strip_suffix('*') {
                    for (hk, hv) in host {
                        if hk.starts_with(k) {
                            set(hk, hv);
                        }
                    }
                } else if let Some((_, v)) = host.iter().find(|(hk, _)| hk == g) {
                    set(g, v);
                }
            }
        }
    }
    set("container", "podman");
    if !given.iter().any(|g| g.starts_with("HOSTNAME=")) {
        set("HOSTNAME", hostname);
    }
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push(("HOME".into(), home.to_owned()));
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// `--dns none` (podman: no /etc/resolv.conf of ours, the image's stays),
/// refused beside other servers, `--dns-search` or `--dns-option` with
/// podman's words.
fn dns_none(o: &CreateOptions) -> Result<bool> {
    if !o.dns.iter().any(|d| d == "none") {
        return Ok(false);
    }
    if o.dns.len() > 1 {
        bail!("none is not allowed to be specified with other DNS ip addresses");
    }
    if !o.dns_search.is_empty() {
        bail!("invalid config provided: UseImageResolvConf and DNSSearch are mutually exclusive options");
    }
    if !o.dns_option.is_empty() {
        bail!("invalid config provided: UseImageResolvConf and DNSOption are mutually exclusive options");
    }
    Ok(true)
}

/// Whether containers.conf's or the image's environment (`fixed`) or the
/// `--env` entries (`given`, over the host's `host`) set HOME.
fn sets_home<'a>(
    mut fixed: impl Iterator<Item = &'a String>,
    given: &[String],
    host: &[(String, String)],
) -> bool {
    let on_host = host.iter().any(|(k, _)| k == "HOME");
    fixed.any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == "HOME")
        || given.iter().any(|g| match g.split_once('=') {
            Some((k, _)) => k == "HOME",
            None => {
                on_host
                    && g.strip_suffix('*')
                        .map_or(g == "HOME", |p| "HOME".starts_with(p))
            }
        })
}

/// The seccomp profile as podman records it: `""` for the default one,
/// `unconfined`, or the file's path.
fn seccomp_profile(choice: &Choice) -> SeccompProfile {
    match choice {
        Choice::Default => SeccompProfile::Default,
        Choice::Unconfined => SeccompProfile::Unconfined,
        Choice::File(p) => SeccompProfile::File(p.clone()),
    }
}

/// The given stop signal, else the image's, else SIGTERM.
fn stop_signal(o: &CreateOptions, rc: &RuntimeConfig) -> Result<Signal> {
    let name = match &o.stop_signal {
        Some(s) => s.clone(),
        None => rc.stop_signal.clone().unwrap_or_else(|| "SIGTERM".into()),
    };
    parse_signal(&name).ok_or_else(|| Error::Refused(format!("invalid stop signal {name:?}")))
}

#[cfg(test)]
mod tests {
    use super::super::config::{MountKind, NamespaceMode};
    use super::*;

    static DEFAULTS: std::sync::LazyLock<Defaults> = std::sync::LazyLock::new(Defaults::default);

    fn facts<'a>(rc: &'a RuntimeConfig, host_env: &'a [(String, String)]) -> Facts<'a> {
        Facts {
            id: ContainerId::parse(&"0123456789abcdef".repeat(4)).unwrap(),
            created: "2024-01-01T00:00:00.000000000Z".into(),
            image: ImageRef::default(),
            image_spec: "img",
            image_config: rc,
            host_hostname: "thehost",
            host_env,
            keep_id: None,
            seccomp_choice: &Choice::Default,
            seccomp: None,
            defaults: &DEFAULTS,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn command_line_table() {
        let rc = RuntimeConfig {
            entrypoint: Some(strings(&["/ep"])),
            cmd: Some(strings(&["default"])),
            ..RuntimeConfig::default()
        };
        // (entrypoint flag, command) -> args
        type Row<'a> = (Option<&'a [&'a str]>, &'a [&'a str], &'a [&'a str]);
        let table: &[Row<'_>] = &[
            (None, &[], &["/ep", "default"]),
            (None, &["x", "y"], &["/ep", "x", "y"]),
            (Some(&["/other"]), &[], &["/other"]),
            (Some(&["/other"]), &["a"], &["/other", "a"]),
            (Some(&[]), &["/bin/true"], &["/bin/true"]),
        ];
        for (ep, command, want) in table {
            let o = CreateOptions {
                entrypoint: ep.map(strings),
                command: strings(command),
                ..CreateOptions::default()
            };
            let c = config(&o, &facts(&rc, &[]), &|_| "/".into()).unwrap();
            assert_eq!(c.process.args, strings(want), "{ep:?} {command:?}");
        }
        let o = CreateOptions {
            entrypoint: Some(vec![]),
            ..CreateOptions::default()
        };
        let e = config(&o, &facts(&rc, &[]), &|_| "/".into()).unwrap_err();
        assert!(e.to_string().starts_with("no command or entrypoint"), "{e}");
    }

    /// (user, keep-id, namespaces, hostname, stop signal) given, then the
    /// user, hostname and stop signal wanted.
    type Case<'a> = (
        Option<&'a str>,
        bool,
        &'a Namespaces,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        &'a str,
        &'a str,
    );

    #[test]
    fn user_home_hostname_and_signal() {
        let rc = RuntimeConfig {
            user: Some("app".into()),
            cmd: Some(strings(&["sh"])),
            stop_signal: Some("SIGQUIT".into()),
            ..RuntimeConfig::default()
        };
        let home = |u: &str| format!("/home/{u}");
        let ns_host = Namespaces {
            uts: NamespaceMode::Host,
            ..Namespaces::default()
        };
        let keep = (
            IdMaps::default(),
            Rootless {
                uid: 1000,
                gid: 100,
                uid_ranges: vec![],
                gid_ranges: vec![],
            },
        );
        // (user flag, keep-id, uts, hostname flag, stop flag) -> (user, hostname, signal)
        let table: &[Case<'_>] = &[
            (
                None,
                false,
                &Namespaces::default(),
                None,
                None,
                "app",
                "0123456789ab",
                "SIGQUIT",
            ),
            (
                Some("0"),
                false,
                &ns_host,
                None,
                Some("9"),
                "0",
                "thehost",
                "SIGKILL",
            ),
            (
                None,
                true,
                &Namespaces::default(),
                Some("h"),
                Some("hup"),
                "1000:100",
                "h",
                "SIGHUP",
            ),
        ];
        for (user, keep_id, ns, hn, sig, want_user, want_host, want_sig) in table {
            let o = CreateOptions {
                user: user.map(str::to_owned),
                namespaces: (*ns).clone(),
                hostname: hn.map(str::to_owned),
                stop_signal: sig.map(str::to_owned),
                ..CreateOptions::default()
            };
            let mut f = facts(&rc, &[]);
            if *keep_id {
                f.keep_id = Some(&keep);
            }
            let c = config(&o, &f, &home).unwrap();
            assert_eq!(c.process.user, *want_user);
            assert_eq!(c.hostname, *want_host);
            assert_eq!(c.stop_signal.map(Signal::as_str), Some(*want_sig));
            assert!(c.process.env.contains(&format!("HOME=/home/{want_user}")));
            assert_eq!(c.idmap.is_some(), *keep_id);
        }
        let o = CreateOptions {
            stop_signal: Some("SIGNOPE".into()),
            ..CreateOptions::default()
        };
        let e = config(&o, &facts(&rc, &[]), &home).unwrap_err();
        assert_eq!(e.to_string(), "invalid stop signal \"SIGNOPE\"");
    }

    #[test]
    fn env_order_and_defaults() {
        let host = [
            ("CAIRN_TEST_ENV_COPY".to_owned(), "copied".to_owned()),
            ("CAIRN_TEST_PREFIXED".to_owned(), "p".to_owned()),
        ];
        let env = environment(
            &[],
            &strings(&["PATH=/img/bin", "A=1"]),
            &strings(&[
                "A=2",
                "CAIRN_TEST_ENV_COPY",
                "UNSET_CAIRN_X",
                "CAIRN_TEST_PRE*",
            ]),
            &host,
            "host1",
            "/root",
        );
        assert_eq!(
            env,
            strings(&[
                "PATH=/img/bin",
                "A=2",
                "TERM=xterm",
                "CAIRN_TEST_ENV_COPY=copied",
                "CAIRN_TEST_PREFIXED=p",
                "container=podman",
                "HOSTNAME=host1",
                "HOME=/root"
            ])
        );
        let env = environment(
            &[],
            &[],
            &strings(&["HOSTNAME=x", "HOME=/h"]),
            &[],
            "host1",
            "/root",
        );
        assert_eq!(
            env,
            strings(&[
                &format!("PATH={DEFAULT_PATH}"),
                "TERM=xterm",
                "HOSTNAME=x",
                "HOME=/h",
                "container=podman"
            ])
        );
    }

    #[test]
    fn labels_workdir_mounts_and_seccomp() {
        let rc = RuntimeConfig {
            cmd: Some(strings(&["sh"])),
            labels: Some(BTreeMap::from([
                ("a".to_owned(), "image".to_owned()),
                ("b".to_owned(), "image".to_owned()),
            ])),
            working_dir: Some(String::new()),
            ..RuntimeConfig::default()
        };
        let mount = |d: &str| MountConfig {
            kind: MountKind::Tmpfs,
            destination: d.into(),
            ..MountConfig::default()
        };
        let o = CreateOptions {
            labels: vec![("b".into(), "flag".into())],
            mounts: vec![mount("/a"), mount("/b")],
            ..CreateOptions::default()
        };
        let compiled = Compiled {
            bpf: vec![],
            flags: strings(&["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]),
        };
        let mut f = facts(&rc, &[]);
        f.seccomp = Some(&compiled);
        let c = config(&o, &f, &|_| "/".into()).unwrap();
        assert_eq!(c.labels["a"], "image");
        assert_eq!(c.labels["b"], "flag");
        assert_eq!(c.process.workdir, "/");
        assert!(c.seccomp_filter);
        assert_eq!(c.seccomp_flags, compiled.flags);
        assert_eq!(c.seccomp_profile, SeccompProfile::Default);
        assert_eq!(c.stop_timeout, 10);
        let o = CreateOptions {
            mounts: vec![mount("/a"), mount("/a")],
            ..o
        };
        let e = config(&o, &f, &|_| "/".into()).unwrap_err();
        assert_eq!(e.to_string(), "/a: duplicate mount destination");
        assert_eq!(
            seccomp_profile(&Choice::Unconfined),
            SeccompProfile::Unconfined
        );
        assert_eq!(
            seccomp_profile(&Choice::File("/p.json".into())),
            SeccompProfile::File("/p.json".into())
        );
    }
}
