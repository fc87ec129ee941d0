#!/usr/bin/env bash
# Installs (as root, with apt-get) every Debian package that cairn's tests, the test-image
# build (tests/support/build-images.sh) and the benchmarks need, and the Dev Containers CLI
# (npm, pinned) into /opt/devcontainers. Idempotent: when everything is already installed it
# touches neither apt nor npm and returns in well under a second.
# Not root: prints what is missing and exits 1 (0 when nothing is missing).
#
#   tests/support/install-deps.sh [--check]     --check: only report, never install
set -euo pipefail

# package               why
PACKAGES=(
  docker-registry       # registry for push/pull tests (distribution 2.8, "docker-registry serve")
  skopeo                # copies OCI layouts into the registry
  umoci                 # layer diffs for the test images, unpack checks
  podman                # reference engine for comparisons/benchmarks
  crun                  # podman's runtime here
  catatonit             # podman --init
  mmdebstrap            # Debian root filesystems for the test images (and mmtarfilter)
  debian-archive-keyring # mmdebstrap verifies the Debian archive with it
  arch-test             # mmdebstrap checks foreign architectures with it
  uidmap                # newuidmap/newgidmap for rootless
  zstd pigz gzip tar    # layer (de)compression
  rsync                 # tree sync in tests
  jq                    # JSON in scripts
  python3               # OCI layout writer inside build-images.sh
  openssl               # TLS and token certificates for the test registry
  apache2-utils         # htpasswd for the registry's basic auth
  time                  # /usr/bin/time -v in benchmarks
  hyperfine             # benchmarks
  util-linux            # unshare, nsenter, flock, mount
  procps                # ps in tests
  coreutils findutils
  libseccomp-dev        # cairn links libseccomp to compile seccomp profiles (build dependency)
  keyutils              # keyctl: the keyring attack in tests/tests/seccomp.rs
  gcc libc6-dev         # cc -static builds the probes of tests/tests/seccomp.rs and attacks*.rs
  attr                  # getfattr: xattrs compared with umoci in tests/tests/unpack.rs
  distrobox             # real client of cairn's CLI (tests/tests/clients.rs)
  podman-toolbox        # real client: toolbox (tests/tests/clients.rs)
  dbus-daemon           # a private system bus for toolbox in tests/tests/clients.rs
  nodejs                # runs the Dev Containers CLI (below; it declares node >= 20, Debian 12 has 18)
  passt                 # pasta: rootless networking (tests/tests/network.rs, benches/network.py)
  slirp4netns           # rootless networking where pasta is missing; podman 4.3's rootless default
  netavark aardvark-dns # root bridge networks and their DNS (podman only Recommends netavark)
  iptables              # netavark's firewall driver; tests grep iptables-save for leftovers
  iproute2              # ip: interfaces, addresses and routes in tests/tests/network.rs
  iperf3                # TCP throughput through a published port in benches/network.py
)

# commands that must work afterwards (a package can be "installed" yet broken)
COMMANDS=(docker-registry skopeo umoci podman crun mmdebstrap mmtarfilter arch-test newuidmap getfattr
  newgidmap zstd pigz gzip tar rsync jq python3 openssl htpasswd /usr/bin/time hyperfine unshare
  nsenter flock mount umount ps sha256sum find keyctl cc distrobox-create distrobox-enter toolbox
  dbus-daemon node npm pasta slirp4netns /usr/lib/podman/netavark /usr/lib/podman/aardvark-dns
  iptables-save ip iperf3)

# The Dev Containers CLI, from npm, pinned, in a fixed prefix (tests/src/clients.rs looks there)
DEVCONTAINER_CLI=@devcontainers/cli@0.89.0
DEVCONTAINER_PREFIX=/opt/devcontainers
DEVCONTAINER_BIN=$DEVCONTAINER_PREFIX/node_modules/.bin/devcontainer

check_only=0
for a in "$@"; do
  case $a in
    --check) check_only=1 ;;
    -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps.sh: unknown argument: $a" >&2; exit 2 ;;
  esac
done

# nodejs from another source (NodeSource) ships npm itself and conflicts with Debian's npm
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)
mapfile -t uniq < <(printf '%s\n' "${PACKAGES[@]}" | awk '!seen[$0]++')

missing_pkgs() {
  # one dpkg-query call for all packages (fast); unknown packages count as missing
  local installed
  installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${uniq[@]}" 2>/dev/null || true)
  local p
  for p in "${uniq[@]}"; do
    grep -q "^$p ii" <<<"$installed" || echo "$p"
  done
}

missing_cmds() {
  local c
  for c in "${COMMANDS[@]}"; do command -v "$c" >/dev/null 2>&1 || echo "$c"; done
}

# the installed version, read from its package.json (starting node takes a second)
devcontainer_ok() {
  [ -x "$DEVCONTAINER_BIN" ] &&
    grep -q "\"version\": \"${DEVCONTAINER_CLI##*@}\"" \
      "$DEVCONTAINER_PREFIX/node_modules/@devcontainers/cli/package.json" 2>/dev/null
}

# npm install of the pinned CLI (root, npm present); a no-op when that version is there
install_devcontainer() {
  devcontainer_ok && return 0
  if [ "$check_only" = 1 ] || [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing $DEVCONTAINER_CLI in $DEVCONTAINER_PREFIX; as root run: tests/support/install-deps.sh" >&2
    return 1
  fi
  mkdir -p "$DEVCONTAINER_PREFIX"
  npm install --prefix "$DEVCONTAINER_PREFIX" --save-exact --no-audit --no-fund --loglevel=error \
    "$DEVCONTAINER_CLI" >&2
  [ "$("$DEVCONTAINER_BIN" --version)" = "${DEVCONTAINER_CLI##*@}" ] || {
    echo "install-deps: $DEVCONTAINER_BIN --version is not ${DEVCONTAINER_CLI##*@} after npm install" >&2
    return 1
  }
}

# Rootless networking (pasta, slirp4netns) opens /dev/net/tun as the user: Debian, Fedora and
# Ubuntu ship it as crw-rw-rw- (udev's default rule; the kernel allows TUNSETIFF only for an
# interface in a namespace the caller owns, so 0666 is safe). Some container and VM images ship
# it 0600 or not at all (10:200 is the kernel's fixed tun number), which breaks every rootless
# network, podman's too. Root only; --check just reports.
tun_ok() { [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" = 666 ]; }
fix_tun() {
  tun_ok && return 0
  if [ "$check_only" = 1 ] || [ "$(id -u)" != 0 ]; then
    echo "install-deps: /dev/net/tun is missing or not mode 0666; as root run: tests/support/install-deps.sh" >&2
    return 1
  fi
  if [ ! -c /dev/net/tun ]; then
    mkdir -p /dev/net
    rm -f /dev/net/tun
    mknod -m 0666 /dev/net/tun c 10 200
  fi
  chmod 0666 /dev/net/tun
}

mapfile -t mp < <(missing_pkgs)
mapfile -t mc < <(missing_cmds)
if [ ${#mp[@]} -eq 0 ] && [ ${#mc[@]} -eq 0 ]; then
  rc=0
  fix_tun || rc=1
  install_devcontainer || rc=1
  exit $rc
fi

echo "install-deps: missing packages: ${mp[*]:-none}; missing commands: ${mc[*]:-none}" >&2
if [ "$check_only" = 1 ]; then
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: not root; as root run: tests/support/install-deps.sh (apt-get install ${mp[*]:-${uniq[*]}})" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# reinstall everything listed when only a command is missing (a broken or diverted install)
if [ ${#mp[@]} -eq 0 ]; then
  apt-get install -y -qq --reinstall "${uniq[@]}" >&2
else
  apt-get install -y -qq "${uniq[@]}" >&2
fi

mapfile -t mp < <(missing_pkgs)
mapfile -t mc < <(missing_cmds)
if [ ${#mp[@]} -ne 0 ] || [ ${#mc[@]} -ne 0 ]; then
  echo "install-deps: still missing after apt-get: packages: ${mp[*]:-none}; commands: ${mc[*]:-none}" >&2
  exit 1
fi
fix_tun
install_devcontainer
echo "install-deps: ok" >&2
