//! podman's global flags beyond `--root` and `--log-level`: each one
//! cairn has a meaning for is applied or accepted as a documented no-op;
//! the others are known to the parser only to be refused by name
//! (`Error: cairn does not support --X (why)`, exit 125) before the verb
//! runs.

use clap::Args;

/// The global flags (allowed before or after the verb, as podman's
/// persistent flags).
#[derive(Debug, Args, Default)]
pub struct GlobalArgs {
    /// Accepted for podman compatibility: cairn places no process in a cgroup yet, so no manager (cgroupfs or systemd) is used.
    #[arg(long, global = true, value_name = "MANAGER")]
    pub cgroup_manager: Option<String>,
    /// Accepted for podman compatibility: cairn's event log is file-backed (file; journald and none are refused).
    #[arg(long, global = true, value_name = "BACKEND")]
    pub events_backend: Option<String>,
    /// Accepted for podman compatibility: cairn keeps its run state in the store root.
    #[arg(long, global = true, value_name = "DIR")]
    pub runroot: Option<String>,
    /// Accepted for podman compatibility: cairn's store has one driver, overlay (others are refused).
    #[arg(long, global = true, value_name = "DRIVER")]
    pub storage_driver: Option<String>,
    /// Accepted for podman compatibility: cairn logs to stderr only.
    #[arg(long, global = true)]
    pub syslog: bool,
    /// Do not print anything on stdout.
    #[arg(long, global = true)]
    pub noout: bool,

    #[arg(long, global = true, hide = true, value_name = "PATH")]
    conmon: Option<String>,
    #[arg(long, global = true, hide = true, value_name = "NAME")]
    connection: Option<String>,
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    hooks_dir: Vec<String>,
    #[arg(long, global = true, hide = true, value_name = "PATH")]
    identity: Option<String>,
    #[arg(long, global = true, hide = true, value_name = "NAME")]
    namespace: Option<String>,
    #[arg(long, global = true, hide = true, value_name = "PATH")]
    network_cmd_path: Option<String>,
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    network_config_dir: Option<String>,
    #[arg(long, global = true, hide = true)]
    remote: bool,
    #[arg(long, global = true, hide = true, value_name = "FLAG")]
    runtime_flag: Vec<String>,
    #[arg(long, global = true, hide = true, value_name = "MODE")]
    ssh: Option<String>,
    #[arg(long, global = true, hide = true, value_name = "OPT")]
    storage_opt: Vec<String>,
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    tmpdir: Option<String>,
    #[arg(long, global = true, hide = true, value_name = "URL")]
    url: Option<String>,
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    volumepath: Option<String>,
}

impl GlobalArgs {
    /// The first flag cairn refuses, as `(flag, why)`.
    pub fn refused(&self) -> Option<(&'static str, &'static str)> {
        let remote = "cairn has no API service to connect to: it is daemonless";
        let checks: [(bool, &str, &str); 16] = [
            (
                self.conmon.is_some(),
                "conmon",
                "cairn-monitor is the container monitor",
            ),
            (self.connection.is_some(), "connection", remote),
            (!self.hooks_dir.is_empty(), "hooks-dir", "no OCI hooks"),
            (self.identity.is_some(), "identity", remote),
            (
                self.namespace.is_some(),
                "namespace",
                "no libpod namespaces",
            ),
            (
                self.network_cmd_path.is_some(),
                "network-cmd-path",
                "no slirp4netns networking yet",
            ),
            (
                self.network_config_dir.is_some(),
                "network-config-dir",
                "no named networks yet",
            ),
            (self.remote, "remote", remote),
            (
                !self.runtime_flag.is_empty(),
                "runtime-flag",
                "cairn is its own runtime and takes no runtime flags",
            ),
            (self.ssh.is_some(), "ssh", remote),
            (
                !self.storage_opt.is_empty(),
                "storage-opt",
                "the store has no driver options",
            ),
            (
                self.tmpdir.is_some(),
                "tmpdir",
                "cairn keeps its temporary files in the store root",
            ),
            (self.url.is_some(), "url", remote),
            (
                self.volumepath.is_some(),
                "volumepath",
                "volumes live in the store root's volumes/",
            ),
            (
                self.events_backend.as_deref().is_some_and(|b| b != "file"),
                "events-backend",
                "cairn's event log is a file (file)",
            ),
            (
                self.storage_driver
                    .as_deref()
                    .is_some_and(|d| d != "overlay"),
                "storage-driver",
                "cairn's store has one driver (overlay)",
            ),
        ];
        checks
            .into_iter()
            .find(|(given, _, _)| *given)
            .map(|(_, flag, why)| (flag, why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        g: GlobalArgs,
    }

    #[test]
    fn each_refused_flag_is_named_and_the_accepted_values_pass() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["t"];
            argv.extend_from_slice(args);
            T::try_parse_from(argv).unwrap().g
        };
        assert_eq!(parse(&[]).refused(), None);
        for ok in [
            &["--events-backend", "file"][..],
            &["--storage-driver", "overlay"],
            &["--cgroup-manager", "systemd"],
            &["--runroot", "/run/x"],
            &["--syslog"],
            &["--noout"],
        ] {
            assert_eq!(parse(ok).refused(), None, "{ok:?}");
        }
        for (args, flag) in [
            (&["--events-backend", "journald"][..], "events-backend"),
            (&["--storage-driver", "vfs"], "storage-driver"),
            (&["--remote"], "remote"),
            (&["--url", "unix:///x"], "url"),
            (&["--hooks-dir", "/x"], "hooks-dir"),
            (&["--storage-opt", "a=b"], "storage-opt"),
            (&["--conmon", "/x"], "conmon"),
        ] {
            assert_eq!(parse(args).refused().map(|r| r.0), Some(flag), "{args:?}");
        }
    }
}
