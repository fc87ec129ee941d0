//! The monitor's network lifetime, end to end as root: netavark on a bridge
//! of the test's own (its own subnet and bridge name, so tests can run
//! side by side), pasta with a published port; a taken port fails the
//! start and leaves nothing; a SIGKILLed monitor's network is torn down by
//! `cairn_runtime::network::teardown`. The listener is the container's
//! command (perl, which the Debian image has); only 127.0.0.1 is addressed.

use std::io::{BufRead as _, BufReader};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_runtime::protocol::NetworkSpec;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use super::{lines, log_of, records, spec_for, Monitor};
use crate::support::*;

/// A perl server on container port `port`: prints `listening`, answers
/// one connection with `hello from the container`, then exits.
fn server(port: u16) -> String {
    format!(
        "use IO::Socket::INET; $| = 1; \
         my $s = IO::Socket::INET->new(LocalPort => {port}, Listen => 5, ReuseAddr => 1) \
           or die \"listen: $!\"; \
         print \"listening\\n\"; my $c = $s->accept; \
         print $c \"hello from the container\\n\"; close $c;"
    )
}

/// A directory for a test's network files (namespace file, pid files,
/// sockets), apart from the container's: the namespace file is mounted in
/// the host's mount table, where other tests look for the containers'
/// directories (`/tmp/cairn-helpers-*`) and must not find it.
fn net_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cairn-net-")
        .tempdir_in("/tmp")
        .expect("tempdir")
}

/// Bridge `cairnt{n}`, subnet 10.86.{n}.0/24, the container at .5.
fn netavark(d: &tempfile::TempDir, n: u8, id: &str, ports: Value) -> Value {
    let net = format!("cairnt{n}");
    let net_id = format!("{:064x}", 0xca1_0000 + u32::from(n));
    json!({
        "kind": "netavark",
        "binary": "/usr/lib/podman/netavark",
        "aardvark": "/usr/lib/podman/aardvark-dns",
        "config_dir": d.path().join("netavark"),
        "netns_file": d.path().join("netns"),
        "status_file": d.path().join("network.json"),
        "options": {
            "container_id": id,
            "container_name": format!("t{n}"),
            "networks": {net.clone(): {"interface_name": "eth0",
                "static_ips": [format!("10.86.{n}.5")], "aliases": [format!("t{n}")]}},
            "network_info": {net.clone(): {"name": net, "id": net_id, "driver": "bridge",
                "network_interface": format!("cairnt{n}"),
                "subnets": [{"subnet": format!("10.86.{n}.0/24"), "gateway": format!("10.86.{n}.1")}],
                "ipv6_enabled": false, "internal": false, "dns_enabled": false,
                "ipam_options": {"driver": "host-local"}}},
            "port_mappings": ports,
        }
    })
}

/// Tears the network down when a test ends, also by a panic (declared
/// before the monitor, so dropped after it is killed).
struct Teardown(Option<NetworkSpec>);

impl Drop for Teardown {
    fn drop(&mut self) {
        if let Some(net) = &self.0 {
            let _ = cairn_runtime::network::teardown(net);
        }
    }
}

/// [`spec_for`], and a [`Teardown`] of the spec's network.
fn net_spec(
    c: &crate::support::Container,
    cmd: &[&str],
    pivot_extra: &[&str],
    over: Value,
) -> (std::path::PathBuf, Teardown) {
    let net = over
        .get("network")
        .map(|n| serde_json::from_value(n.clone()).expect("a network spec"));
    (spec_for(c, cmd, pivot_extra, over), Teardown(net))
}

fn ns_with_net() -> Value {
    json!(["mnt", "pid", "uts", "ipc", "net"])
}

/// iptables rules (every table) that mention `needle`.
fn rules_with(needle: &str) -> Vec<String> {
    let out = Command::new("iptables-save")
        .output()
        .expect("iptables-save");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

/// Wait until the container's log has a line `want`.
fn await_log(c: &crate::support::Container, want: &str) {
    let start = Instant::now();
    while !lines(records(&log_of(c))).iter().any(|(_, t)| t == want) {
        assert!(
            start.elapsed() < TIMEOUT,
            "no {want:?} in the log: {}",
            log_of(c)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Read what the published port answers.
fn fetch(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the published port");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut line = String::new();
    BufReader::new(&mut s).read_line(&mut line).unwrap();
    line
}

/// The pipes process `pid` has open (`pipe:[INODE]`).
fn pipes_of(pid: i32) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|l| l.display().to_string())
        .filter(|l| l.starts_with("pipe:"))
        .collect()
}

fn pasta_running(pid_file: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    // pasta is a link to passt (passt.avx2 on x86-64).
    let name = exe.file_name()?.to_string_lossy().into_owned();
    (name.starts_with("pasta") || name.starts_with("passt")).then_some(pid)
}

/// A netavark bridge network: eth0 with the static address, the published
/// TCP and UDP ports reach the container's servers (and are held against
/// host programs meanwhile), the status is recorded; once the monitor
/// ends, no rule mentions the container, the namespace file and the bridge
/// are gone and the ports are free.
#[test]
fn monitor_netavark_bridge_and_published_port() {
    if !root_or_skip() {
        return;
    }
    let (c, d) = (crate::support::Container::new(), net_dir());
    let id = format!("{:064x}", 0xcafe_0001u64);
    // The TCP server, then an echo of one UDP datagram on port 5353.
    let udp = "my $u = IO::Socket::INET->new(LocalPort => 5353, Proto => \"udp\") \
                 or die \"udp: $!\";";
    let echo = "$u->recv(my $msg, 100); $u->send(\"re:$msg\");";
    let script = format!(
        "echo ifaces=$(ls /sys/class/net); \
         grep -q 10.86.1.5 /proc/net/fib_trie && echo addr=yes; exec perl -e '{udp} {} {echo}'",
        server(8080)
    );
    let ports = json!([{"host_ip": "", "container_port": 8080, "host_port": 18711,
                        "range": 1, "protocol": "tcp"},
                       {"host_ip": "127.0.0.1", "container_port": 5353, "host_port": 18713,
                        "range": 1, "protocol": "udp"}]);
    let (spec, _net) = net_spec(
        &c,
        &["/bin/sh", "-c", &script],
        &[],
        json!({"namespaces": ns_with_net(), "loopback": true,
               "network": netavark(&d, 1, &id, ports)}),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::inherit());
    m.pid();
    await_log(&c, "listening");
    assert!(!rules_with(&id).is_empty(), "netavark's rules name the id");
    assert!(d.path().join("netns").exists());
    // Another program cannot take the published port meanwhile.
    assert!(TcpListener::bind("127.0.0.1:18711").is_err(), "port held");
    assert_eq!(fetch(18711), "hello from the container\n");
    assert!(UdpSocket::bind("127.0.0.1:18713").is_err(), "UDP port held");
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(TIMEOUT)).unwrap();
    u.send_to(b"ping", "127.0.0.1:18713").unwrap();
    let mut buf = [0u8; 64];
    let n = u.recv(&mut buf).expect("the container's UDP echo");
    assert_eq!(&buf[..n], b"re:ping");
    assert_eq!(m.wait(), 0, "{}", log_of(&c));
    let out: Vec<String> = lines(records(&log_of(&c)))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(out[0], "ifaces=eth0 lo", "{out:?}");
    assert_eq!(out[1], "addr=yes", "{out:?}");
    let status: Value =
        serde_json::from_slice(&std::fs::read(d.path().join("network.json")).unwrap()).unwrap();
    assert_eq!(
        status["cairnt1"]["interfaces"]["eth0"]["subnets"][0]["ipnet"], "10.86.1.5/24",
        "{status}"
    );
    assert!(
        rules_with(&id).is_empty(),
        "rules left: {:?}",
        rules_with(&id)
    );
    assert!(!d.path().join("netns").exists(), "netns file left");
    // The port is free once the monitor has ended.
    TcpListener::bind("127.0.0.1:18711").expect("the port is free again");
    assert!(
        !Path::new("/sys/class/net/cairnt1").exists(),
        "the bridge goes with its last container"
    );
}

/// A published port that a host program holds: the start fails with one
/// line naming the port, the command never runs, nothing is left.
#[test]
fn monitor_taken_port_fails_the_start_cleanly() {
    if !root_or_skip() {
        return;
    }
    let taken = TcpListener::bind("127.0.0.1:18742").unwrap();
    let (c, d) = (crate::support::Container::new(), net_dir());
    let id = format!("{:064x}", 0xcafe_0002u64);
    let ports = json!([{"host_ip": "", "container_port": 80, "host_port": 18740,
                        "range": 3, "protocol": "tcp"}]);
    let (spec, _net) = net_spec(
        &c,
        &["/bin/sh", "-c", "echo ran"],
        &[],
        json!({"namespaces": ns_with_net(), "loopback": true,
               "network": netavark(&d, 2, &id, ports)}),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let s = m.sync();
    assert_eq!(s["code"], 125, "{s}");
    let msg = s["error"].as_str().unwrap();
    assert!(
        msg.contains("host port 0.0.0.0:18742/tcp is already in use") && !msg.contains('\n'),
        "{msg}"
    );
    assert_eq!(m.wait(), 125);
    assert!(log_of(&c).is_empty(), "the command ran: {}", log_of(&c));
    assert!(rules_with(&id).is_empty(), "{:?}", rules_with(&id));
    assert!(!d.path().join("netns").exists(), "netns file left");
    assert!(!Path::new("/sys/class/net/cairnt2").exists(), "bridge left");
    // The ports reserved before the taken one were released.
    TcpListener::bind("127.0.0.1:18740").expect("18740 released");
    drop(taken);
}

fn pasta(d: &tempfile::TempDir, port: &str) -> Value {
    json!({
        "kind": "pasta",
        "binary": "/usr/bin/pasta",
        "args": ["--config-net", "-q", "-t", port, "-u", "none", "-T", "none", "-U", "none",
                 "--runas", "0"],
        "netns_file": d.path().join("netns"),
        "pid_file": d.path().join("pasta.pid"),
    })
}

/// pasta as root (`--runas 0`): the published port reaches the
/// container's server; pasta is gone once the monitor ends. A taken port
/// fails the start before pasta runs.
#[test]
fn monitor_pasta_publishes_a_port() {
    if !root_or_skip() {
        return;
    }
    // Twice: the second start finds the first one's connection in
    // TIME_WAIT on the host port, which does not make it taken.
    for _ in 0..2 {
        let (c, d) = (crate::support::Container::new(), net_dir());
        let script = format!("exec perl -e '{}'", server(8080));
        let (spec, _net) = net_spec(
            &c,
            &["/bin/sh", "-c", &script],
            &[],
            json!({"namespaces": ns_with_net(), "loopback": true,
                   "network": pasta(&d, "18721:8080")}),
        );
        // A launcher that leaks a pipe (not close-on-exec) to the monitor,
        // on a descriptor bash picks free (10 or above): a fixed 9 replaced
        // the sync descriptor whenever that was 9, as it is when other
        // tests hold descriptors, and the sync line never came.
        let leaky = [
            "bash",
            "-c",
            "exec {leak}< <(:); exec \"$0\" \"$@\"",
            MONITOR,
        ];
        let mut m = Monitor::start_via(
            &leaky,
            &spec,
            Stdio::null(),
            Stdio::null(),
            Stdio::inherit(),
        );
        m.pid();
        let pid = pasta_running(&d.path().join("pasta.pid")).expect("pasta runs");
        await_log(&c, "listening");
        // pasta holds none of the monitor's pipes (the container's output,
        // the error pipe, the sync descriptor, the leaked one).
        let shared: Vec<String> = pipes_of(m.child.id() as i32)
            .intersection(&pipes_of(pid))
            .cloned()
            .collect();
        assert!(shared.is_empty(), "pasta inherited {shared:?}");
        assert!(!pipes_of(m.child.id() as i32).is_empty());
        assert_eq!(fetch(18721), "hello from the container\n");
        assert_eq!(m.wait(), 0, "{}", log_of(&c));
        assert!(
            std::fs::read_link(format!("/proc/{pid}/exe")).is_err(),
            "pasta {pid} still runs"
        );
        assert!(!d.path().join("netns").exists() && !d.path().join("pasta.pid").exists());
    }

    let taken = TcpListener::bind("127.0.0.1:18722").unwrap();
    let (c, d) = (crate::support::Container::new(), net_dir());
    let (spec, _net) = net_spec(
        &c,
        &["/bin/sh", "-c", "echo ran"],
        &[],
        json!({"namespaces": ns_with_net(), "network": pasta(&d, "18722")}),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let s = m.sync();
    assert_eq!(s["code"], 125, "{s}");
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains("host port 0.0.0.0:18722/tcp is already in use"),
        "{s}"
    );
    assert_eq!(m.wait(), 125);
    assert!(log_of(&c).is_empty());
    assert!(pasta_running(&d.path().join("pasta.pid")).is_none());
    assert!(!d.path().join("netns").exists());
    drop(taken);

    // pasta refuses its options: its own words, on one line.
    let (c, d) = (crate::support::Container::new(), net_dir());
    let (spec, _net) = net_spec(
        &c,
        &["/bin/sh", "-c", "echo ran"],
        &[],
        json!({"namespaces": ns_with_net(), "network": pasta(&d, "99999")}),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let s = m.sync();
    assert_eq!(s["code"], 125, "{s}");
    assert_eq!(
        s["error"],
        "cairn-monitor: set up the container's network: pasta failed (exit status: 1): \
         Invalid port specifier 99999"
    );
    assert_eq!(m.wait(), 125);
    assert!(log_of(&c).is_empty());
    assert!(!d.path().join("netns").exists());
}

/// SIGKILL of the monitor leaves pasta and netavark's rules behind;
/// `network::teardown` (what the next command runs) removes them, and a
/// second call is harmless.
#[test]
fn monitor_killed_then_teardown_leaves_nothing() {
    if !root_or_skip() {
        return;
    }
    let (c, d) = (crate::support::Container::new(), net_dir());
    let net = pasta(&d, "18731");
    let (spec, _net) = net_spec(
        &c,
        &["sleep", "100"],
        &[],
        json!({"namespaces": ns_with_net(), "network": net}),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let ctr = m.pid();
    let pid = pasta_running(&d.path().join("pasta.pid")).expect("pasta runs");
    kill(Pid::from_raw(m.child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = m.child.wait();
    let _ = kill(Pid::from_raw(ctr), Signal::SIGKILL);
    assert!(
        pasta_running(&d.path().join("pasta.pid")).is_some(),
        "pasta outlives a killed monitor"
    );
    let spec: NetworkSpec = serde_json::from_value(net).unwrap();
    cairn_runtime::network::teardown(&spec).unwrap();
    assert!(
        std::fs::read_link(format!("/proc/{pid}/exe")).is_err(),
        "pasta {pid} runs on"
    );
    assert!(!d.path().join("netns").exists() && !d.path().join("pasta.pid").exists());
    TcpListener::bind("0.0.0.0:18731").expect("pasta's port is free");
    cairn_runtime::network::teardown(&spec).unwrap();

    let (c, d) = (crate::support::Container::new(), net_dir());
    let id = format!("{:064x}", 0xcafe_0003u64);
    let ports = json!([{"host_ip": "127.0.0.1", "container_port": 80, "host_port": 18732,
                        "range": 1, "protocol": "tcp"}]);
    let mut net = netavark(&d, 3, &id, ports);
    // Named through a symlinked directory (as /var/run is /run): the mount
    // is still found, so netavark's teardown runs and the rules go.
    std::os::unix::fs::symlink(".", d.path().join("via")).unwrap();
    net["netns_file"] = json!(d.path().join("via/netns"));
    let (spec, _net) = net_spec(
        &c,
        &["sleep", "100"],
        &[],
        json!({"namespaces": ns_with_net(), "network": net}),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let ctr = m.pid();
    assert!(!rules_with(&id).is_empty());
    kill(Pid::from_raw(m.child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = m.child.wait();
    let _ = kill(Pid::from_raw(ctr), Signal::SIGKILL);
    assert!(
        !rules_with(&id).is_empty(),
        "the rules outlive a killed monitor"
    );
    let spec: NetworkSpec = serde_json::from_value(net).unwrap();
    cairn_runtime::network::teardown(&spec).unwrap();
    assert!(rules_with(&id).is_empty(), "{:?}", rules_with(&id));
    assert!(!d.path().join("netns").exists());
    assert!(!Path::new("/sys/class/net/cairnt3").exists(), "bridge left");
    cairn_runtime::network::teardown(&spec).unwrap();
}

/// `join_net`: a second container, in a user namespace of its own, is born
/// in the first one's network namespace (it sees the same eth0 address and
/// reaches the server on its lo).
#[test]
fn monitor_joins_a_network_namespace() {
    if !root_or_skip() {
        return;
    }
    let (c, d) = (crate::support::Container::new(), net_dir());
    let id = format!("{:064x}", 0xcafe_0004u64);
    let script = format!("exec perl -e '{}'", server(8080));
    let (spec, _net) = net_spec(
        &c,
        &["/bin/sh", "-c", &script],
        &[],
        json!({"namespaces": ns_with_net(), "loopback": true,
               "network": netavark(&d, 4, &id, json!([]))}),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::inherit());
    m.pid();
    await_log(&c, "listening");
    let c2 = crate::support::Container::new();
    let client = "use IO::Socket::INET; \
                  my $s = IO::Socket::INET->new(PeerAddr => \"127.0.0.1:8080\") \
                    or die \"connect: $!\"; print scalar <$s>;";
    let script2 =
        format!("grep -q 10.86.4.5 /proc/net/fib_trie && echo addr=yes; exec perl -e '{client}'");
    let (spec2, _net2) = net_spec(
        &c2,
        &["/bin/sh", "-c", &script2],
        &[],
        // In a user namespace of its own too: born in the joined namespace,
        // it needs no capability over it.
        json!({"join_net": d.path().join("netns"),
               "namespaces": ["user", "mnt", "pid", "uts", "ipc"],
               "uid_map": [[0, 0, 1], [1, 200000, 65535]],
               "gid_map": [[0, 0, 1], [1, 200000, 65535]]}),
    );
    let mut m2 = Monitor::start(&spec2, Stdio::null(), Stdio::null(), Stdio::inherit());
    m2.pid();
    assert_eq!(m2.wait(), 0, "{}", log_of(&c2));
    let out: Vec<String> = lines(records(&log_of(&c2)))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(out, ["addr=yes", "hello from the container"]);
    assert_eq!(m.wait(), 0);
    assert!(rules_with(&id).is_empty());
}

fn slirp(d: &tempfile::TempDir, host_port: u16) -> Value {
    json!({
        "kind": "slirp4netns",
        "binary": "/usr/bin/slirp4netns",
        "args": ["--configure", "--mtu=65520", "--disable-host-loopback"],
        "netns_file": d.path().join("netns"),
        "pid_file": d.path().join("slirp.pid"),
        "api_socket": d.path().join("slirp.sock"),
        "ports": [{"host_ip": "127.0.0.1", "container_port": 8080, "host_port": host_port,
                   "range": 1, "protocol": "tcp"}],
    })
}

/// slirp4netns: tap0 configured, the port published through its API
/// socket reaches the container's server; slirp4netns and its files are
/// gone once the monitor ends; a taken port fails the start.
#[test]
fn monitor_slirp4netns_publishes_a_port() {
    if !root_or_skip() {
        return;
    }
    let (c, d) = (crate::support::Container::new(), net_dir());
    let script = format!(
        "echo ifaces=$(ls /sys/class/net); exec perl -e '{}'",
        server(8080)
    );
    let (spec, _net) = net_spec(
        &c,
        &["/bin/sh", "-c", &script],
        &[],
        json!({"namespaces": ns_with_net(), "loopback": true, "network": slirp(&d, 18751)}),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::inherit());
    m.pid();
    let pid: i32 = std::fs::read_to_string(d.path().join("slirp.pid"))
        .unwrap()
        .parse()
        .unwrap();
    await_log(&c, "listening");
    assert_eq!(fetch(18751), "hello from the container\n");
    assert_eq!(m.wait(), 0, "{}", log_of(&c));
    let out: Vec<String> = lines(records(&log_of(&c)))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(out[0], "ifaces=lo tap0", "{out:?}");
    assert!(
        std::fs::read_link(format!("/proc/{pid}/exe")).is_err(),
        "slirp4netns {pid} still runs"
    );
    for f in ["netns", "slirp.pid", "slirp.sock"] {
        assert!(!d.path().join(f).exists(), "{f} left");
    }

    let taken = TcpListener::bind("127.0.0.1:18752").unwrap();
    let (c, d) = (crate::support::Container::new(), net_dir());
    let (spec, _net) = net_spec(
        &c,
        &["/bin/sh", "-c", "echo ran"],
        &[],
        json!({"namespaces": ns_with_net(), "network": slirp(&d, 18752)}),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let s = m.sync();
    assert_eq!(s["code"], 125, "{s}");
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains("host port 127.0.0.1:18752/tcp is already in use"),
        "{s}"
    );
    assert_eq!(m.wait(), 125);
    assert!(log_of(&c).is_empty());
    for f in ["netns", "slirp.pid", "slirp.sock"] {
        assert!(!d.path().join(f).exists(), "{f} left");
    }
    drop(taken);
}

/// In a user namespace of its own, the container waits at the gate until
/// its id maps are written AND pasta has configured its namespace (owned
/// by that user namespace): both are in place when its command starts.
#[test]
fn monitor_userns_waits_for_maps_and_network() {
    if !root_or_skip() {
        return;
    }
    let (c, d) = (crate::support::Container::new(), net_dir());
    let script = format!(
        "echo map=$(cat /proc/self/uid_map | tr -s ' '); echo ifaces=$(ls /sys/class/net); \
         exec perl -e '{}'",
        server(8080)
    );
    let (spec, _net) = net_spec(
        &c,
        &["/bin/sh", "-c", &script],
        &[],
        json!({"namespaces": ["user", "mnt", "pid", "uts", "ipc", "net"], "loopback": true,
               "uid_map": [[0, 0, 1], [1, 200000, 65535]],
               "gid_map": [[0, 0, 1], [1, 200000, 65535]],
               "network": pasta(&d, "18761:8080")}),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::inherit());
    m.pid();
    await_log(&c, "listening");
    assert_eq!(fetch(18761), "hello from the container\n");
    assert_eq!(m.wait(), 0, "{}", log_of(&c));
    let out: Vec<String> = lines(records(&log_of(&c)))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(out[0], "map= 0 0 1 1 200000 65535", "{out:?}");
    assert!(
        out[1].starts_with("ifaces=") && out[1].split(' ').count() == 2,
        "{out:?}"
    );
    assert!(!d.path().join("netns").exists() && !d.path().join("pasta.pid").exists());

    // Maps the kernel refuses (overlapping ranges): the gate says why, the
    // command never runs, the network is not set up.
    let (c, d) = (crate::support::Container::new(), net_dir());
    let (spec, _net) = net_spec(
        &c,
        &["/bin/sh", "-c", "echo ran"],
        &[],
        json!({"namespaces": ["user", "mnt", "pid", "uts", "ipc", "net"],
               "uid_map": [[0, 0, 10], [5, 100, 10]], "gid_map": [[0, 0, 1]],
               "network": pasta(&d, "18762")}),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    let s = m.sync();
    assert_eq!(s["code"], 125, "{s}");
    let msg = s["error"].as_str().unwrap();
    assert!(
        msg.starts_with("cairn-monitor: write /proc/") && msg.contains("/uid_map: "),
        "{msg}"
    );
    assert_eq!(m.wait(), 125);
    assert!(log_of(&c).is_empty());
    assert!(!d.path().join("netns").exists() && !d.path().join("pasta.pid").exists());

    // A user namespace without a network: the gate opens on the maps alone.
    let c = crate::support::Container::new();
    let spec = spec_for(
        &c,
        &[
            "/bin/sh",
            "-c",
            "echo uid=$(id -u) map=$(cat /proc/self/uid_map | tr -s ' ')",
        ],
        &[],
        json!({"namespaces": ["user", "mnt", "pid", "uts", "ipc"],
               "uid_map": [[0, 0, 1], [1, 200000, 65535]],
               "gid_map": [[0, 0, 1], [1, 200000, 65535]]}),
    );
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::null());
    m.pid();
    assert_eq!(m.wait(), 0, "{}", log_of(&c));
    assert_eq!(texts(&c), ["uid=0 map= 0 0 1 1 200000 65535"]);
}

/// The test user's uid and gid (tests/support/test-user.sh creates it),
/// if it exists and /dev/net/tun is open to it; else a note why the
/// test is skipped.
fn test_user() -> Option<(String, String)> {
    let name = std::env::var("CAIRN_TEST_USER").unwrap_or_else(|_| "cairntest".into());
    let Some(user) = nix::unistd::User::from_name(&name).ok().flatten() else {
        eprintln!("skipped: no user {name} (tests/support/test-user.sh creates it)");
        return None;
    };
    let tun = std::fs::metadata("/dev/net/tun").map(|m| {
        use std::os::unix::fs::PermissionsExt as _;
        m.permissions().mode() & 0o666 == 0o666
    });
    if !matches!(tun, Ok(true)) {
        eprintln!("skipped: /dev/net/tun is not 0666 (the test setup makes it so)");
        return None;
    }
    Some((user.uid.to_string(), user.gid.to_string()))
}

/// The chain running `script` in `c` for the test user: `c`'s directory
/// is given to the user, and the image root is read through `lower` (the
/// image root sits in a directory only root may enter: the launcher,
/// still root in a mount namespace of its own, binds it on `lower`, which
/// the user's namespace inherits).
fn rootless_chain(
    c: &crate::support::Container,
    script: &str,
    lower: &Path,
    user: &(String, String),
) -> Vec<String> {
    let image = image_root().display().to_string();
    chown_to(user, c.dir.path());
    c.chain(
        &["/bin/sh", "-c", script],
        &["--error-fd", "3"],
        &["--error-fd", "3"],
    )
    .into_iter()
    .map(|a| a.replace(&image, &lower.display().to_string()))
    .collect()
}

/// Give `path` and what it holds to the test user.
fn chown_to((uid, gid): &(String, String), path: &Path) {
    let chown = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(chown.success());
}

/// The log's lines.
fn texts(c: &crate::support::Container) -> Vec<String> {
    lines(records(&log_of(c)))
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

/// Rootless (the test user of tests/support/test-user.sh, root of a user
/// namespace of its own as cairn's rootless mode is): pasta publishes the
/// container's port, and is gone once the monitor ends; a second rootless
/// container joins its network namespace. Needs /dev/net/tun openable by
/// the user (mode 0666, as distributions ship it).
#[test]
fn monitor_rootless_pasta() {
    if !root_or_skip() {
        return;
    }
    let Some(user) = test_user() else {
        return;
    };
    let (uid, gid) = (user.0.as_str(), user.1.as_str());
    let (c, d) = (crate::support::Container::new(), net_dir());
    let script = format!(
        "echo ifaces=$(ls /sys/class/net); exec perl -e '{}'",
        server(8080)
    );
    let mut net = pasta(&d, "18771:8080");
    // Root of its own user namespace, the monitor stays that for pasta:
    // the namespace maps no `nobody` to switch to.
    assert_eq!(net["args"][10], "--runas");
    let lower = c.path("lower");
    std::fs::create_dir(&lower).unwrap();
    chown_to(&user, d.path());
    let (spec, _net) = net_spec(
        &c,
        &["true"],
        &[],
        json!({"args": rootless_chain(&c, &script, &lower, &user),
               "namespaces": ns_with_net(), "loopback": true, "network": net.take()}),
    );
    let bind = format!(
        "mount --bind {} {} && exec \"$@\"",
        image_root().display(),
        lower.display()
    );
    let launcher = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        &bind,
        "sh",
        "setpriv",
        "--reuid",
        uid,
        "--regid",
        gid,
        "--clear-groups",
        "--",
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "--",
        MONITOR,
    ];
    let mut m = Monitor::start_via(
        &launcher,
        &spec,
        Stdio::null(),
        Stdio::null(),
        Stdio::inherit(),
    );
    m.pid();
    let pid = pasta_running(&d.path().join("pasta.pid")).expect("pasta runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().nth(1) == Some(uid),
        "pasta runs as the user: {uid_line}"
    );
    await_log(&c, "listening");

    // A second rootless container joins the first one's namespace
    // (`join_net`), its monitor in the same user namespace (entered from
    // the host by its owner, as cairn must start it): it sees the same
    // interfaces and the first one's listener.
    let c2 = crate::support::Container::new();
    let script2 = "echo ifaces=$(ls /sys/class/net); \
                   echo listeners=$(grep -c ':1F90 00000000:0000 0A' /proc/net/tcp)";
    let spec2 = spec_for(
        &c2,
        &["true"],
        &[],
        json!({"args": rootless_chain(&c2, script2, &lower, &user),
               "namespaces": ["mnt", "pid", "uts", "ipc"], "join_net": d.path().join("netns")}),
    );
    let first = m.child.id().to_string();
    let joiner = [
        "setpriv",
        "--reuid",
        uid,
        "--regid",
        gid,
        "--clear-groups",
        "--",
        "nsenter",
        "-t",
        &first,
        "-U",
        "-m",
        "--preserve-credentials",
        "--",
        MONITOR,
    ];
    let mut m2 = Monitor::start_via(
        &joiner,
        &spec2,
        Stdio::null(),
        Stdio::null(),
        Stdio::inherit(),
    );
    m2.pid();
    assert_eq!(m2.wait(), 0, "{}", log_of(&c2));

    assert_eq!(fetch(18771), "hello from the container\n");
    assert_eq!(m.wait(), 0, "{}", log_of(&c));
    let out = texts(&c);
    assert!(
        out[0].starts_with("ifaces=") && out[0].split(' ').count() == 2,
        "{out:?}"
    );
    assert_eq!(texts(&c2), [out[0].clone(), "listeners=1".into()]);
    assert!(
        std::fs::read_link(format!("/proc/{pid}/exe")).is_err(),
        "pasta {pid} still runs"
    );
    assert!(!d.path().join("netns").exists() && !d.path().join("pasta.pid").exists());
}

/// netavark with DNS: aardvark-dns (netavark's daemon) answers the
/// container's name on the bridge's gateway while it runs, and the setup
/// does not wait on it; it is gone with the last container of the network.
#[test]
fn monitor_netavark_with_aardvark_dns() {
    if !root_or_skip() {
        return;
    }
    let (mut c, d) = (crate::support::Container::new(), net_dir());
    let etc = c.layer().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(etc.join("resolv.conf"), "nameserver 10.86.5.1\n").unwrap();
    let id = format!("{:064x}", 0xcafe_0005u64);
    let mut net = netavark(&d, 5, &id, json!([]));
    net["options"]["network_info"]["cairnt5"]["dns_enabled"] = json!(true);
    let (spec, _net) = net_spec(
        &c,
        &["/bin/sh", "-c", "getent hosts t5"],
        &[],
        json!({"namespaces": ns_with_net(), "loopback": true, "network": net}),
    );
    let t = Instant::now();
    let mut m = Monitor::start(&spec, Stdio::null(), Stdio::null(), Stdio::inherit());
    m.pid();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(m.wait(), 0, "{}", log_of(&c));
    let out: Vec<String> = lines(records(&log_of(&c)))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    // One line per answer (glibc may ask for A and AAAA alike).
    assert!(!out.is_empty(), "no answer");
    for line in &out {
        assert_eq!(
            line.split_whitespace().collect::<Vec<_>>(),
            ["10.86.5.5", "t5"],
            "{out:?}"
        );
    }
    let aardvark = Command::new("pgrep")
        .args([
            "-f",
            &format!(
                "aardvark-dns --config {}",
                d.path().join("netavark/aardvark-dns").display()
            ),
        ])
        .output()
        .unwrap();
    assert!(
        aardvark.stdout.is_empty(),
        "aardvark-dns runs on: {}",
        String::from_utf8_lossy(&aardvark.stdout)
    );
    assert!(rules_with(&id).is_empty());
}
