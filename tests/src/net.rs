//! Network helpers for tests/tests/network.rs: server containers of the `net` fixture image,
//! waits for a published port to really answer, UDP round trips, a host HTTP server on a
//! chosen address, and the leftovers a container's network may leave on the host (helper
//! processes, iptables/nftables rules, namespace files and mounts, held ports).
//!
//! Only 127.0.0.1, the addresses of bridges the tests' engines create, and the containers' own
//! namespaces are ever addressed.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::util::HttpResponse;
use crate::Cairn;

/// The `net` fixture's name in a store ([`Cairn::pull_fixture_as`]).
pub const IMAGE: &str = "localhost/net:latest";

/// The port http.server listens on in [`http_server_cmd`] (the image's `ExposedPorts` has it).
pub const HTTP_PORT: u16 = 8000;

/// The port the image's `udp-echo` listens on (also in its `ExposedPorts`).
pub const UDP_PORT: u16 = 9000;

/// A container command serving `token` as `/index.html` with python's http.server on
/// [`HTTP_PORT`], so an answer proves which container answered.
pub fn http_server_cmd(token: &str) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "mkdir -p /tmp/www && echo {token} > /tmp/www/index.html && cd /tmp/www && \
             exec python3 -m http.server {HTTP_PORT}"
        ),
    ]
}

/// `run -d --name NAME ARGS... IMAGE http-server(token)`: the container's full id. Panics
/// with cairn's output when it fails.
pub fn start_http_container(c: &Cairn, name: &str, args: &[&str], token: &str) -> String {
    let mut argv: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.into()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    argv.push(IMAGE.into());
    argv.extend(http_server_cmd(token));
    c.ok(&argv).trim().to_owned()
}

/// GETs `/` from `addr` until it answers 200 or `timeout` passes, and returns the answer.
///
/// A TCP connect alone proves nothing: pasta and netavark's port reservations accept on the
/// host before the container's server listens, then reset the connection.
pub fn wait_http(addr: &str, timeout: Duration) -> anyhow::Result<HttpResponse> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match http_get_timeout(addr, Duration::from_secs(3)) {
            Ok(r) if r.status == 200 => return Ok(r),
            Ok(r) => format!(
                "status {} body {:?}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("no HTTP 200 from {addr} within {timeout:?}; last: {last}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// One `GET /` with `Connection: close`, connect and read bounded by `timeout`.
pub fn http_get_timeout(addr: &str, timeout: Duration) -> anyhow::Result<HttpResponse> {
    let sock: SocketAddr = addr.parse().with_context(|| format!("parse {addr}"))?;
    let mut s =
        TcpStream::connect_timeout(&sock, timeout).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .with_context(|| format!("send to {addr}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("read from {addr}"))?;
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!(
            "no HTTP head from {addr}: {:?}",
            String::from_utf8_lossy(&raw)
        );
    };
    let (status, headers) = crate::util::parse_http_head(&raw[..split]);
    Ok(HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
        read_error: None,
    })
}

/// Sends `payload` to the UDP `addr` (resent every 200 ms: the first datagrams may arrive
/// before the container's socket exists) and returns the first answer, or fails after
/// `timeout`.
pub fn udp_round_trip(addr: &str, payload: &[u8], timeout: Duration) -> anyhow::Result<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").context("bind a UDP socket on 127.0.0.1")?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 65536];
    loop {
        // ECONNREFUSED from an earlier ICMP port-unreachable is reported on send or recv:
        // both are "not yet".
        let _ = sock.send_to(payload, addr);
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return Ok(buf[..n].to_vec());
        }
        if Instant::now() >= deadline {
            bail!("no UDP answer from {addr} within {timeout:?}");
        }
    }
}

/// An HTTP server of the test process on `ip:port` answering every request with `token`;
/// stopped on drop.
#[derive(Debug)]
pub struct HostServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl HostServer {
    /// Binds `ip:port` (port 0: any free port) and serves `token`.
    pub fn start(ip: IpAddr, port: u16, token: &str) -> anyhow::Result<HostServer> {
        let listener =
            TcpListener::bind((ip, port)).with_context(|| format!("bind {ip}:{port}"))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let body = format!("{token}\n");
        let flag = stop.clone();
        // Polled, not blocked in accept: the address may vanish before the
        // drop (a bridge's gateway, gone with the last container), and then
        // no connection could wake a blocked accept.
        listener.set_nonblocking(true)?;
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let mut conn = match listener.accept() {
                    Ok((conn, _)) => conn,
                    Err(_) => {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(
                    format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
                let _ = conn.shutdown(Shutdown::Both);
            }
        });
        Ok(HostServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HostServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Processes whose name (`/proc/PID/comm`) is `comm`, owned by `uid` when given, with their
/// command lines.
pub fn processes_named(comm: &str, uid: Option<u32>) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(name) = std::fs::read_to_string(e.path().join("comm")) else {
            continue;
        };
        if name.trim_end() != comm {
            continue;
        }
        if let Some(want) = uid {
            let owner = std::fs::read_to_string(e.path().join("status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Uid:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok())
                });
            if owner != Some(want) {
                continue;
            }
        }
        let cmd = std::fs::read(e.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        // A zombie has an empty command line and holds nothing: not a leftover.
        if cmd.is_empty() {
            continue;
        }
        out.push((pid, cmd));
    }
    out
}

/// The network helpers a container's network may start: pasta, slirp4netns, aardvark-dns,
/// netavark (a hung setup) and podman's rootlessport, owned by `uid` when given.
pub fn network_helpers(uid: Option<u32>) -> Vec<(u32, String)> {
    let mut v = Vec::new();
    for comm in [
        "pasta",
        "passt",
        "slirp4netns",
        "aardvark-dns",
        "netavark",
        "rootlessport",
    ] {
        v.extend(processes_named(comm, uid));
    }
    v
}

/// Lines of `iptables-save`, `ip6tables-save` and `nft list ruleset` that contain `needle` (a
/// container id: netavark names it in its rules' comments). Tools that are missing or fail
/// count as holding nothing; [`iptables_available`] says whether the check means anything.
pub fn firewall_lines_with(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for argv in [
        &["iptables-save"][..],
        &["ip6tables-save"][..],
        &["nft", "list", "ruleset"][..],
    ] {
        let Ok(o) = Command::new(argv[0]).args(&argv[1..]).output() else {
            continue;
        };
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.contains(needle))
                .map(|l| format!("{}: {l}", argv[0])),
        );
    }
    out
}

/// Whether `iptables-save` runs here (root with the iptables package).
pub fn iptables_available() -> bool {
    Command::new("iptables-save")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Namespace mounts (`nsfs` in this mount namespace) whose mount point contains one of
/// `needles` (a store root, a container id, a run directory).
pub fn nsfs_mounts_with(needles: &[&str]) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.split_once(" - ")
                .is_some_and(|(_, rest)| rest.starts_with("nsfs "))
        })
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| needles.iter().any(|n| m.contains(n)))
        .map(str::to_owned)
        .collect()
}

/// Files and directories under `dir` (at most `depth` levels down, not following symlinks)
/// whose name contains `needle`, e.g. a container's `netns` file. Directories named in `skip`
/// (a container's `upper`, `merged`, image layers) are not entered.
pub fn names_under(dir: &Path, needle: &str, depth: usize, skip: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if name.contains(needle) {
            out.push(path.display().to_string());
        }
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && depth > 0 && !skip.contains(&name.as_str()) {
            out.extend(names_under(&path, needle, depth - 1, skip));
        }
    }
    out
}

/// Whether TCP `port` can be bound on every IPv4 address (0.0.0.0) and on 127.0.0.1, i.e.
/// nothing holds it any more.
pub fn port_free(port: u16) -> bool {
    TcpListener::bind(("0.0.0.0", port)).is_ok() && TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Interface names of a `/proc/net/dev` text, sorted.
pub fn interface_names(proc_net_dev: &str) -> Vec<String> {
    let mut v: Vec<String> = proc_net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, _)| n.trim().to_owned())
        .collect();
    v.sort();
    v
}

/// The host's interface names, sorted.
pub fn host_interface_names() -> Vec<String> {
    interface_names(&std::fs::read_to_string("/proc/net/dev").unwrap_or_default())
}

/// The host's network namespace (`net:[INODE]`).
pub fn host_netns() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// The parent pid of `pid` (field 4 of `/proc/PID/stat`), if it runs.
pub fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `addr` (an IPv4 address) is inside `cidr` (`A.B.C.D/N`).
pub fn in_subnet(addr: &str, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(a), Ok(n), Ok(bits)) = (
        addr.parse::<std::net::Ipv4Addr>(),
        net.parse::<std::net::Ipv4Addr>(),
        bits.parse::<u32>(),
    ) else {
        return false;
    };
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(a) & mask == u32::from(n) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_and_interface_lists_parse() {
        assert!(in_subnet("10.87.3.4", "10.87.0.0/16"));
        assert!(!in_subnet("10.88.0.4", "10.87.0.0/16"));
        assert!(!in_subnet("nonsense", "10.87.0.0/16"));
        let dev = "Inter-|   Receive\n face |bytes\n    lo: 1 2\n  eth0: 3 4\n";
        assert_eq!(interface_names(dev), ["eth0", "lo"]);
        assert!(parent_pid(std::process::id()).is_some());
    }

    #[test]
    fn host_server_answers_and_udp_times_out_without_a_peer() {
        let s = HostServer::start("127.0.0.1".parse().unwrap(), 0, "tok").unwrap();
        let r = wait_http(&s.addr().to_string(), Duration::from_secs(5)).unwrap();
        assert_eq!(String::from_utf8_lossy(&r.body), "tok\n");
        let port = s.addr().port();
        drop(s);
        // A sibling test's fork may hold a copy of the listener until its
        // child execs (close-on-exec acts only then): wait that out.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !port_free(port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(port_free(port));
        let free = crate::util::free_port().unwrap();
        let t = Instant::now();
        assert!(udp_round_trip(
            &format!("127.0.0.1:{free}"),
            b"x",
            Duration::from_millis(300)
        )
        .is_err());
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
