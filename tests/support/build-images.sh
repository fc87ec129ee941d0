#!/usr/bin/env bash
# Builds cairn's real test images (Debian bookworm content) into one OCI image layout and prints
# its path on stdout (last line); progress goes to stderr.
#
#   tests/support/build-images.sh [--bench]
#
# Cache: ${CAIRN_TEST_CACHE:-/var/cache/cairn-tests} (not root and CAIRN_TEST_CACHE unset:
# ${XDG_CACHE_HOME:-$HOME/.cache}/cairn-tests):
#   oci/              the OCI image layout (refs = index.json org.opencontainers.image.ref.name)
#   summary.json      per ref: manifest, config, platform, layers (digest, mediaType, size,
#                     diffID, uncompressedSize)
#   rootfs/*.tar      mmdebstrap root filesystems, keyed by their mmdebstrap arguments: changing
#                     the layering below does not download Debian again
#   stamp             hash of this script + image set of the published layout
#   lock              flock: concurrent invocations wait for each other
# A cached run is a no-op (milliseconds). Everything is built in a temp dir inside the cache,
# validated (digests, diff_ids, media types, edge cases, a push of every ref to a throw-away
# docker-registry on 127.0.0.1) and only then renamed into place.
#
# Refs: debian-min debian-min-zstd debian-min-plain multi multi-sibling platforms clients net
#       with --bench also: bench-one bench-four
# The edge cases of `multi` (layer 3) are listed in edge_layer() and checked in check_multi().
#
# Needs root (mmdebstrap, ownership of files); tests/support/install-deps.sh installs the tools.
# Env: CAIRN_TEST_CACHE, CAIRN_DEBIAN_MIRROR (default http://deb.debian.org/debian),
#      CAIRN_DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security),
#      CAIRN_TEST_NO_DROP_CACHES=1: do not drop the kernel page cache before heavy phases (a
#      build that is not a no-op does that by default: it halves the cold build on this VM).
set -euo pipefail
shopt -s inherit_errexit

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"; }

BENCH=0
for a in "$@"; do
  case $a in
    --bench) BENCH=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "build-images.sh: unknown argument: $a" >&2; usage >&2; exit 2 ;;
  esac
done

# Everything but the final path goes to stderr.
exec 3>&1 1>&2
log() { printf '[build-images %(%T)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [ -n "${CAIRN_TEST_CACHE:-}" ]; then
  CACHE=$CAIRN_TEST_CACHE
elif [ "$(id -u)" = 0 ]; then
  CACHE=/var/cache/cairn-tests
else
  CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/cairn-tests
fi
mkdir -p "$CACHE" 2>/dev/null || true
[ -d "$CACHE" ] || die "cannot create cache dir $CACHE"
CACHE=$(cd "$CACHE" && pwd -P)

SELF=$(readlink -f "${BASH_SOURCE[0]}")
VERSION=$(sha256sum "$SELF" | cut -c1-16)
WANT_SET=base
[ "$BENCH" = 1 ] && WANT_SET=bench

# -- lock (read-only is enough for flock, so a non-root reader of a root-built cache works)
if [ -w "$CACHE" ] || [ -w "$CACHE/lock" ]; then
  exec 9>>"$CACHE/lock"
else
  exec 9<"$CACHE/lock" 2>/dev/null || die "cache $CACHE is not writable and has no lock file"
fi
if ! flock -n 9; then
  log "another build holds $CACHE/lock; waiting"
  flock 9
fi

stamp_ok() {
  [ -f "$CACHE/stamp" ] && [ -f "$CACHE/oci/index.json" ] || return 1
  local v s
  v=$(sed -n 's/^version=//p' "$CACHE/stamp")
  s=$(sed -n 's/^set=//p' "$CACHE/stamp")
  [ "$v" = "$VERSION" ] || return 1
  [ "$s" = bench ] || [ "$WANT_SET" = base ]
}
if stamp_ok; then
  echo "$CACHE/oci" >&3
  exit 0
fi

[ "$(id -u)" = 0 ] || die "building the images needs root (mmdebstrap, file ownership); run as root or point CAIRN_TEST_CACHE at a cache built by root"
for c in mmdebstrap mmtarfilter umoci skopeo docker-registry jq python3 pigz zstd tar flock; do
  command -v "$c" >/dev/null || die "$c not found: run tests/support/install-deps.sh"
done

# Removes a tree that may still hold mounts left by a killed mmdebstrap (proc, sys, dev binds):
# unmount first, never cross into another file system.
safe_rm() {
  local p m
  for p in "$@"; do
    [ -e "$p" ] || [ -L "$p" ] || continue
    p=$(readlink -f "$p")
    awk -v p="$p" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$p"
  done
}

# -- work dir; leftovers of killed runs are stale (we hold the lock)
safe_rm "$CACHE"/tmp.* "$CACHE"/oci.old.* "$CACHE"/rootfs/*.partial
mkdir -p "$CACHE/rootfs"
WORK=$(mktemp -d "$CACHE/tmp.XXXXXX")
chmod 755 "$WORK" # apt's _apt user downloads into mmdebstrap's tempdir below it
REG_PID=
cleanup() {
  local rc=$?
  if [ -n "$REG_PID" ]; then
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
  fi
  safe_rm "$WORK"
  [ $rc = 0 ] || log "FAILED (exit $rc)"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export TMPDIR=$WORK
export SOURCE_DATE_EPOCH=1747699200 # 2025-05-20T00:00:00Z: all clamped mtimes, config dates
T0=$SECONDS

OCI=$WORK/oci
PY=$WORK/ocitool.py
py() { python3 "$PY" "$@"; }

# ------------------------------------------------------------------------------------------
# Debian root filesystems (cached tarballs)
# ------------------------------------------------------------------------------------------
SUITE=bookworm
MIRROR=${CAIRN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${CAIRN_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SOURCES=("deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main"
  "deb $SECMIRROR $SUITE-security main")
# mmdebstrap copies the host's resolv.conf/hostname in; images must not carry them
SCRUB='rm -f "$1/etc/hostname" "$1/etc/resolv.conf"'
MERGED_USR=/usr/share/mmdebstrap/hooks/merged-usr

# This VM's ext4 gets 2-3x slower at creating/removing files as the page cache fills up
# (see DESIGN.md); dropping it before each heavy phase halves the cold build time.
# CAIRN_TEST_NO_DROP_CACHES=1 turns that off.
drop_caches() {
  [ "${CAIRN_TEST_NO_DROP_CACHES:-0}" = 1 ] && return 0
  sync
  echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
}

# rootfs NAME MMDEBSTRAP_OPTION... ; sets ROOTFS to the cached tarball. The cache key is the
# option list (a child stage names its parent tarball, whose name holds the parent's key).
# Device nodes are dropped (the empty ./dev/ stays): images do not ship them.
# ROOTFS_SOURCES (default: main, updates, security) are the apt sources.
rootfs() {
  local name=$1
  shift
  local -a sources=("${SOURCES[@]}")
  [ -z "${ROOTFS_SOURCES:-}" ] || sources=("$ROOTFS_SOURCES")
  # the key must not depend on where the cache is: parents are named by file name only
  local key
  key=$(printf '%s\0' "$name" "$SUITE" "${sources[@]}" "$@" | sed "s|$CACHE/rootfs/||g" |
    sha256sum | cut -c1-16)
  ROOTFS=$CACHE/rootfs/$name-$key.tar
  if [ ! -f "$ROOTFS" ]; then
    log "mmdebstrap $name (not cached)"
    local t0=$SECONDS try
    drop_caches
    for try in 1 2 3; do
      # mirrors sometimes answer "Mirror sync in progress?" for a minute: retry the stage
      if mmdebstrap --mode=root "$@" "$SUITE" \
        "$WORK/$name.raw.tar" "${sources[@]}" 2> >(sed -u "s/^/  [mmdebstrap $name] /" >&2); then
        break
      fi
      [ $try -lt 3 ] || die "mmdebstrap $name failed 3 times"
      log "mmdebstrap $name failed (try $try); retrying in $((try * 10)) s"
      rm -f "$WORK/$name.raw.tar"
      sleep $((try * 10))
    done
    mmtarfilter --path-exclude='/dev/*' <"$WORK/$name.raw.tar" >"$ROOTFS.partial"
    rm -f "$WORK/$name.raw.tar"
    mv "$ROOTFS.partial" "$ROOTFS"
    log "mmdebstrap $name done in $((SECONDS - t0)) s ($(du -m "$ROOTFS" | cut -f1) MB)"
  fi
  local old
  for old in "$CACHE/rootfs/$name"-*.tar; do
    [ "$old" = "$ROOTFS" ] || rm -f "$old"
  done
}

# Fixtures in layer 2 of `multi` that the edge-case layer 3 acts on (see edge_layer()).
LOWER_FIXTURES='set -e; r=$1
mkdir -p "$r/cairn/lower" "$r/cairn/whiteout/gone-dir/sub" "$r/cairn/opaque/old-dir" \
  "$r/cairn/replace/dir-to-file/sub"
echo "lower hardlink target" > "$r/cairn/lower/hardlink-target"
echo "deleted in layer 3" > "$r/cairn/whiteout/gone-file"
echo a > "$r/cairn/whiteout/gone-dir/a"
echo b > "$r/cairn/whiteout/gone-dir/sub/b"
echo "kept" > "$r/cairn/whiteout/kept"
echo old > "$r/cairn/opaque/old-file"
echo old > "$r/cairn/opaque/old-dir/x"
echo "was a file" > "$r/cairn/replace/file-to-dir"
echo child > "$r/cairn/replace/dir-to-file/child"
echo grandchild > "$r/cairn/replace/dir-to-file/sub/grandchild"'

# A foreign-architecture root that needs no emulation: busybox-static is only extracted.
busybox_hook() { # PLATFORM
  printf '%s' 'set -e; r=$1; echo '"$1"' > "$r/etc/cairn-platform"
for c in sh ash cat echo env false id ls mkdir pwd rm sleep true uname; do
  ln -sf busybox "$r/bin/$c"; done
'"$SCRUB"
}

# ------------------------------------------------------------------------------------------
# the OCI layout writer (stdlib python)
# ------------------------------------------------------------------------------------------
cat >"$PY" <<'PYEOF'
"""Minimal OCI image layout writer used by build-images.sh (stdlib only).

Commands (all print JSON on stdout):
  init LAYOUT
  layer LAYOUT TAR gzip|zstd|none CREATED_BY     store TAR as a layer blob -> descriptor+diffID
  layers LAYOUT REF                              layer descriptors (+diffID) of an image ref
  image LAYOUT REF SPEC_JSON                     write config+manifest, tag REF -> descriptor
  attest LAYOUT SUBJECT_DESC_JSON                buildkit-style attestation manifest -> descriptor
  index LAYOUT REF DESC_JSON...                  write an image index, tag REF -> descriptor
  untag LAYOUT REF...                            drop refs from index.json
  gc LAYOUT                                      delete blobs not reachable from index.json
  files-layer OUT.tar SPEC_JSON                  small tar: [[path, type, content/target, mode], ...]
  edge-layer OUT.tar                             the edge-case layer of `multi`
  verify LAYOUT                                  check every ref; print per-ref layer facts
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time

EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "1747699200"))
CREATED = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EPOCH))
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}
MT_INTOTO = "application/vnd.in-toto+json"
REF = "org.opencontainers.image.ref.name"


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")


def blob_path(layout, digest):
    alg, hexd = digest.split(":", 1)
    return os.path.join(layout, "blobs", alg, hexd)


def sha256_file(path):
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
            size += len(b)
    return "sha256:" + h.hexdigest(), size


def put_bytes(layout, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    p = blob_path(layout, digest)
    if not os.path.exists(p):
        tmp = p + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o444)
        os.rename(tmp, p)
    return digest, len(data)


def put_file(layout, tmp):
    """Move an already written file (inside the layout's blob dir) to its digest name."""
    digest, size = sha256_file(tmp)
    p = blob_path(layout, digest)
    if os.path.exists(p):
        os.unlink(tmp)
    else:
        os.chmod(tmp, 0o444)
        os.rename(tmp, p)
    return digest, size


def read_json(path):
    with open(path, "rb") as f:
        return json.load(f)


def write_index(layout, idx):
    tmp = os.path.join(layout, "index.json.tmp")
    with open(tmp, "wb") as f:
        f.write(dumps(idx))
    os.rename(tmp, os.path.join(layout, "index.json"))


def set_ref(layout, ref, desc):
    idx = read_json(os.path.join(layout, "index.json"))
    ms = [m for m in idx.get("manifests", []) if m.get("annotations", {}).get(REF) != ref]
    entry = {"mediaType": desc["mediaType"], "digest": desc["digest"], "size": desc["size"],
             "annotations": {REF: ref}}
    ms.append(entry)
    idx["manifests"] = ms
    write_index(layout, idx)


def find_ref(layout, ref):
    idx = read_json(os.path.join(layout, "index.json"))
    for m in idx.get("manifests", []):
        if m.get("annotations", {}).get(REF) == ref:
            return m
    raise SystemExit("no ref %r in %s" % (ref, layout))


def cmd_init(layout):
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "wb") as f:
        f.write(dumps({"imageLayoutVersion": "1.0.0"}))
    if not os.path.exists(os.path.join(layout, "index.json")):
        write_index(layout, {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": []})


def cmd_layer(layout, tar, comp, created_by):
    diff_id, usize = sha256_file(tar)
    tmp = os.path.join(layout, "blobs", "sha256", ".tmp-layer-%d" % os.getpid())
    with open(tar, "rb") as src, open(tmp, "wb") as dst:
        if comp == "gzip":
            # pigz output does not depend on the thread count; -n: no name, no mtime
            subprocess.run(["pigz", "-n", "-6", "-c"], stdin=src, stdout=dst, check=True)
        elif comp == "zstd":
            subprocess.run(["zstd", "-q", "-3", "-T0", "-c"], stdin=src, stdout=dst, check=True)
        elif comp == "none":
            while True:
                b = src.read(1 << 20)
                if not b:
                    break
                dst.write(b)
        else:
            raise SystemExit("unknown compression " + comp)
    digest, size = put_file(layout, tmp)
    out({"mediaType": MT_LAYER[comp], "digest": digest, "size": size,
         "diffID": diff_id, "uncompressedSize": usize, "createdBy": created_by})


def cmd_layers(layout, ref):
    m = read_json(blob_path(layout, find_ref(layout, ref)["digest"]))
    cfg = read_json(blob_path(layout, m["config"]["digest"]))
    res = []
    for l, d in zip(m["layers"], cfg["rootfs"]["diff_ids"]):
        res.append({"mediaType": l["mediaType"], "digest": l["digest"], "size": l["size"],
                    "diffID": d})
    out(res)


def cmd_image(layout, ref, spec):
    spec = json.loads(spec)
    plat = spec["platform"]
    cfg = {"created": CREATED, "architecture": plat["architecture"], "os": plat["os"]}
    if plat.get("variant"):
        cfg["variant"] = plat["variant"]
    cfg["config"] = spec["config"]
    cfg["rootfs"] = {"type": "layers", "diff_ids": [l["diffID"] for l in spec["layers"]]}
    cfg["history"] = [{"created": CREATED, "created_by": l.get("createdBy", ""),
                       "comment": "cairn test image layer"} for l in spec["layers"]]
    cdig, csize = put_bytes(layout, dumps(cfg))
    man = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
           "config": {"mediaType": MT_CONFIG, "digest": cdig, "size": csize},
           "layers": [{"mediaType": l["mediaType"], "digest": l["digest"], "size": l["size"]}
                      for l in spec["layers"]]}
    if spec.get("annotations"):
        man["annotations"] = spec["annotations"]
    mdig, msize = put_bytes(layout, dumps(man))
    desc = {"mediaType": MT_MANIFEST, "digest": mdig, "size": msize, "platform": plat}
    if ref != "-":
        set_ref(layout, ref, desc)
    out(desc)


def cmd_attest(layout, subject):
    subject = json.loads(subject)
    stmt = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [{"name": "pkg:docker/cairn-test/platforms@latest?platform=linux%2Famd64",
                     "digest": {"sha256": subject["digest"].split(":", 1)[1]}}],
        "predicate": {"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0",
                      "SPDXID": "SPDXRef-DOCUMENT", "name": "cairn-test-sbom",
                      "documentNamespace": "https://cairn.invalid/sbom/platforms-amd64",
                      "creationInfo": {"created": CREATED,
                                       "creators": ["Tool: cairn build-images.sh"]},
                      "packages": []},
    }
    ldig, lsize = put_bytes(layout, dumps(stmt))
    cfg = {"architecture": "unknown", "os": "unknown", "config": {},
           "rootfs": {"type": "layers", "diff_ids": [ldig]}}
    cdig, csize = put_bytes(layout, dumps(cfg))
    man = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
           "config": {"mediaType": MT_CONFIG, "digest": cdig, "size": csize},
           "layers": [{"mediaType": MT_INTOTO, "digest": ldig, "size": lsize,
                       "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}}]}
    mdig, msize = put_bytes(layout, dumps(man))
    out({"mediaType": MT_MANIFEST, "digest": mdig, "size": msize,
         "annotations": {"vnd.docker.reference.digest": subject["digest"],
                         "vnd.docker.reference.type": "attestation-manifest"},
         "platform": {"architecture": "unknown", "os": "unknown"}})


def cmd_index(layout, ref, *descs):
    idx = {"schemaVersion": 2, "mediaType": MT_INDEX,
           "manifests": [json.loads(d) for d in descs]}
    dig, size = put_bytes(layout, dumps(idx))
    desc = {"mediaType": MT_INDEX, "digest": dig, "size": size}
    set_ref(layout, ref, desc)
    out(desc)


def cmd_untag(layout, *refs):
    idx = read_json(os.path.join(layout, "index.json"))
    idx["manifests"] = [m for m in idx["manifests"]
                        if m.get("annotations", {}).get(REF) not in refs]
    write_index(layout, idx)
    out({"untagged": list(refs)})


def children(layout, desc):
    mt = desc["mediaType"]
    if mt in (MT_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"):
        m = read_json(blob_path(layout, desc["digest"]))
        return [m["config"]] + m["layers"]
    if mt in (MT_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"):
        return read_json(blob_path(layout, desc["digest"]))["manifests"]
    return []


def cmd_gc(layout):
    idx = read_json(os.path.join(layout, "index.json"))
    keep = set()
    todo = list(idx["manifests"])
    while todo:
        d = todo.pop()
        if d["digest"] in keep:
            continue
        keep.add(d["digest"])
        todo.extend(children(layout, d))
    removed = 0
    bdir = os.path.join(layout, "blobs", "sha256")
    for name in os.listdir(bdir):
        if "sha256:" + name not in keep:
            os.unlink(os.path.join(bdir, name))
            removed += 1
    out({"kept": len(keep), "removed": removed})


# ---------------------------------------------------------------- tar writers

class TarBuilder:
    def __init__(self, path):
        self.tf = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)

    def _info(self, path, typ, mode, uid, gid, xattrs=None):
        ti = tarfile.TarInfo(path)
        ti.type = typ
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.uname = ti.gname = ""
        ti.mtime = EPOCH
        if xattrs:
            ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
        return ti

    def dir(self, path, mode=0o755, uid=0, gid=0, xattrs=None):
        self.tf.addfile(self._info(path.rstrip("/") + "/", tarfile.DIRTYPE, mode, uid, gid, xattrs))

    def file(self, path, data, mode=0o644, uid=0, gid=0, xattrs=None):
        if isinstance(data, str):
            data = data.encode()
        ti = self._info(path, tarfile.REGTYPE, mode, uid, gid, xattrs)
        ti.size = len(data)
        self.tf.addfile(ti, io.BytesIO(data))

    def whiteout(self, path):
        d, b = os.path.split(path)
        self.file(os.path.join(d, ".wh." + b), b"", mode=0o644)

    def opaque(self, dirpath):
        self.file(os.path.join(dirpath, ".wh..wh..opq"), b"", mode=0o644)

    def hardlink(self, path, target, mode=0o644, uid=0, gid=0):
        ti = self._info(path, tarfile.LNKTYPE, mode, uid, gid)
        ti.linkname = target
        self.tf.addfile(ti)

    def symlink(self, path, target):
        ti = self._info(path, tarfile.SYMTYPE, 0o777, 0, 0)
        ti.linkname = target
        self.tf.addfile(ti)

    def fifo(self, path, mode=0o644, uid=0, gid=0):
        self.tf.addfile(self._info(path, tarfile.FIFOTYPE, mode, uid, gid))

    def close(self):
        self.tf.close()


def cmd_files_layer(path, spec):
    t = TarBuilder(path)
    for ent in json.loads(spec):
        p, typ = ent[0], ent[1]
        if typ == "dir":
            t.dir(p, int(ent[2], 8) if len(ent) > 2 else 0o755)
        elif typ == "file":
            t.file(p, ent[2], int(ent[3], 8) if len(ent) > 3 else 0o644)
        elif typ == "symlink":
            t.symlink(p, ent[2])
        else:
            raise SystemExit("bad entry type " + typ)
    t.close()
    out({"written": path})


LONG_DIR = "cairn/long/" + "d" * 60 + "-directory-name-longer-than-sixty-chars"
LONG_FILE = LONG_DIR + "/" + "f" * 93 + "-file-name-of-120-chars.txt"  # 120-char name, 231-char path


def cmd_edge_layer(path):
    """Layer 3 of `multi`. Lower fixtures it acts on come from layer 2 (cairn_lower_hook in
    build-images.sh) and layer 1 (Debian files); keep the two in sync."""
    t = TarBuilder(path)
    # deletions: a Debian file of layer 1, a package doc dir of layer 2, fixtures of layer 2
    t.dir("etc")
    t.whiteout("etc/issue.net")
    t.dir("usr/share/doc")
    t.whiteout("usr/share/doc/less")
    t.dir("cairn")
    t.dir("cairn/whiteout")
    t.whiteout("cairn/whiteout/gone-file")
    t.whiteout("cairn/whiteout/gone-dir")
    # opaque directory: emptied and refilled
    t.dir("cairn/opaque")
    t.opaque("cairn/opaque")
    t.file("cairn/opaque/new-file", "refilled\n")
    # a lower file becomes a directory, a lower directory becomes a file (no whiteout needed)
    t.dir("cairn/replace")
    t.dir("cairn/replace/file-to-dir")
    t.file("cairn/replace/file-to-dir/inner", "was a file, now a directory\n")
    t.file("cairn/replace/dir-to-file", "was a directory, now a file\n")
    # hardlinks: within this layer, and to files of lower layers
    t.dir("cairn/hardlink")
    t.file("cairn/hardlink/original", "hardlinked within the layer\n")
    t.hardlink("cairn/hardlink/link-in-layer", "cairn/hardlink/original")
    t.hardlink("cairn/hardlink/link-to-layer2", "cairn/lower/hardlink-target")
    t.hardlink("cairn/hardlink/link-to-layer1", "usr/lib/os-release")
    # special permissions
    t.dir("cairn/perm")
    t.file("cairn/perm/setuid", "#!/bin/sh\necho setuid\n", mode=0o4755)
    t.file("cairn/perm/setgid-file", "#!/bin/sh\necho setgid\n", mode=0o2755)
    t.dir("cairn/perm/setgid-dir", mode=0o2775, gid=1000)
    t.file("cairn/perm/setgid-dir/file", "in a setgid dir\n", mode=0o664, uid=1000, gid=1000)
    t.dir("cairn/perm/sticky-dir", mode=0o1777)
    t.file("cairn/perm/private", "mode 0600\n", mode=0o600)
    t.file("cairn/perm/readonly", "mode 0444\n", mode=0o444)
    # ownership
    t.dir("cairn/owner")
    t.file("cairn/owner/uid1000", "owned by 1000:1000\n", uid=1000, gid=1000)
    t.file("cairn/owner/nobody", "owned by 65534:65534\n", uid=65534, gid=65534)
    t.file("cairn/owner/root-gid1000", "owned by 0:1000\n", mode=0o640, gid=1000)
    t.dir("cairn/owner/dir1000", mode=0o750, uid=1000, gid=1000)
    t.file("cairn/owner/dir1000/file", "in a 1000:1000 dir\n", mode=0o640, uid=1000, gid=1000)
    # symlinks
    t.dir("cairn/links")
    t.symlink("cairn/links/relative", "../hardlink/original")
    t.symlink("cairn/links/absolute", "/usr/lib/os-release")
    t.symlink("cairn/links/dir-relative", "../owner")
    t.symlink("cairn/links/dangling", "/nonexistent/cairn-target")
    t.symlink("cairn/links/escape", "../../../../../../../../etc/passwd")
    # a fifo
    t.dir("cairn/special")
    t.fifo("cairn/special/fifo", mode=0o644)
    # extended attributes (user namespace)
    t.dir("cairn/xattr", xattrs={"user.cairn.dir": "dir-xattr"})
    t.file("cairn/xattr/file", "has a user xattr\n", xattrs={"user.cairn.test": "hello-xattr"})
    # long names (> 100 chars: PAX path / linkpath records)
    t.dir("cairn/long")
    t.dir(LONG_DIR)
    t.file(LONG_FILE, "long path\n")
    t.symlink("cairn/long/symlink-long-target", "/" + LONG_FILE)
    t.hardlink("cairn/long/hardlink-long-target", LONG_FILE)
    t.close()
    out({"written": path, "long_file": LONG_FILE})


# ---------------------------------------------------------------- verification

_usize_cache = {}


def layer_facts(layout, l, diff_id):
    """Decompress a layer blob, check its diff_id, return its uncompressed size."""
    key = l["digest"]
    if key in _usize_cache:
        return _usize_cache[key]
    p = blob_path(layout, l["digest"])
    dig, size = sha256_file(p)
    if dig != l["digest"] or size != l["size"]:
        raise SystemExit("blob %s: digest/size mismatch" % l["digest"])
    mt = l["mediaType"]
    if mt.endswith("+gzip"):
        cmd = ["pigz", "-dc", p]
    elif mt.endswith("+zstd"):
        cmd = ["zstd", "-dc", "-q", p]
    else:
        cmd = ["cat", p]
    with open(p, "rb") as f:
        magic = f.read(4)
    if mt.endswith("+gzip") and magic[:2] != b"\x1f\x8b":
        raise SystemExit("%s: not gzip" % key)
    if mt.endswith("+zstd") and magic != b"\x28\xb5\x2f\xfd":
        raise SystemExit("%s: not zstd" % key)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    h = hashlib.sha256()
    n = 0
    while True:
        b = proc.stdout.read(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
    if proc.wait() != 0:
        raise SystemExit("%s: decompression failed" % key)
    if "sha256:" + h.hexdigest() != diff_id:
        raise SystemExit("%s: diff_id mismatch" % key)
    _usize_cache[key] = n
    return n


def verify_manifest(layout, desc):
    raw = open(blob_path(layout, desc["digest"]), "rb").read()
    if "sha256:" + hashlib.sha256(raw).hexdigest() != desc["digest"] or len(raw) != desc["size"]:
        raise SystemExit("manifest %s: digest/size mismatch" % desc["digest"])
    m = json.loads(raw)
    craw = open(blob_path(layout, m["config"]["digest"]), "rb").read()
    if "sha256:" + hashlib.sha256(craw).hexdigest() != m["config"]["digest"]:
        raise SystemExit("config %s: digest mismatch" % m["config"]["digest"])
    cfg = json.loads(craw)
    diff_ids = cfg["rootfs"]["diff_ids"]
    if len(diff_ids) != len(m["layers"]):
        raise SystemExit("manifest %s: %d layers, %d diff_ids" % (desc["digest"], len(m["layers"]), len(diff_ids)))
    layers = []
    for l, d in zip(m["layers"], diff_ids):
        if l["mediaType"] == MT_INTOTO:
            u = l["size"]
        else:
            u = layer_facts(layout, l, d)
        layers.append({"mediaType": l["mediaType"], "digest": l["digest"], "size": l["size"],
                       "diffID": d, "uncompressedSize": u})
    plat = "/".join(x for x in (cfg.get("os"), cfg.get("architecture"), cfg.get("variant")) if x)
    return {"manifest": desc["digest"], "config": m["config"]["digest"], "platform": plat,
            "layers": layers}


def cmd_verify(layout):
    idx = read_json(os.path.join(layout, "index.json"))
    res = {}
    for e in idx["manifests"]:
        ref = e.get("annotations", {}).get(REF)
        if e["mediaType"] == MT_INDEX:
            raw = open(blob_path(layout, e["digest"]), "rb").read()
            if "sha256:" + hashlib.sha256(raw).hexdigest() != e["digest"]:
                raise SystemExit("index %s: digest mismatch" % e["digest"])
            sub = []
            for m in json.loads(raw)["manifests"]:
                r = verify_manifest(layout, m)
                r["indexPlatform"] = m.get("platform")
                r["annotations"] = m.get("annotations", {})
                sub.append(r)
            res[ref] = {"index": e["digest"], "manifests": sub}
        else:
            res[ref] = verify_manifest(layout, e)
    out(res)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = globals().get("cmd_" + cmd.replace("-", "_"))
    if fn is None:
        raise SystemExit("unknown command " + cmd)
    fn(*args)


if __name__ == "__main__":
    main()
PYEOF

# ------------------------------------------------------------------------------------------
# build
# ------------------------------------------------------------------------------------------
ENV_PATH='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
AMD64='{"architecture":"amd64","os":"linux"}'
ARM64='{"architecture":"arm64","os":"linux","variant":"v8"}'
ARMV7='{"architecture":"arm","os":"linux","variant":"v7"}'

# mkimage REF PLATFORM_JSON CMD_JSON LAYER_JSON... -> manifest descriptor JSON on stdout
# MKIMAGE_CONFIG (a JSON object, default {}) is merged into the image config (ExposedPorts, …).
mkimage() {
  local ref=$1 plat=$2 cmd=$3
  shift 3
  local spec
  spec=$(printf '%s\n' "$@" | jq -sc --argjson p "$plat" --argjson c "$cmd" --arg env "$ENV_PATH" \
    --argjson extra "${MKIMAGE_CONFIG:-"{}"}" \
    '{layers: ., platform: $p, config: ({Env: [$env], Cmd: $c} + $extra)}')
  py image "$OCI" "$ref" "$spec"
}

# umoci_diffs BASE_REF TMP_REF STAGE_TAR... : unpack BASE_REF, then for each stage make the
# bundle's rootfs equal to the stage and let `umoci repack` write the diff (with whiteouts)
umoci_diffs() {
  local base=$1 tag=$2
  shift 2
  local b=$WORK/bundle-$tag t
  drop_caches
  umoci unpack --image "$OCI:$base" "$b" >/dev/null
  for t in "$@"; do
    find "$b/rootfs" -mindepth 1 -delete
    tar -xpf "$t" --numeric-owner --xattrs --xattrs-include='*' -C "$b/rootfs"
    umoci repack --refresh-bundle --image "$OCI:$tag" "$b"
  done
  rm -rf "$b"
}

py init "$OCI"

# ---- Debian minbase: debian-min, -zstd, -plain
rootfs base --variant=minbase --hook-dir="$MERGED_USR" --customize-hook="$SCRUB"
BASE=$ROOTFS
log "layers of debian-min (gzip, zstd, plain)"
L_MIN=$(py layer "$OCI" "$BASE" gzip "mmdebstrap --variant=minbase $SUITE")
L_MIN_ZSTD=$(py layer "$OCI" "$BASE" zstd "mmdebstrap --variant=minbase $SUITE")
L_MIN_PLAIN=$(py layer "$OCI" "$BASE" none "mmdebstrap --variant=minbase $SUITE")
mkimage debian-min "$AMD64" '["bash"]' "$L_MIN" >/dev/null
mkimage debian-min-zstd "$AMD64" '["bash"]' "$L_MIN_ZSTD" >/dev/null
mkimage debian-min-plain "$AMD64" '["bash"]' "$L_MIN_PLAIN" >/dev/null

# ---- multi, multi-sibling
MULTI_PKGS="procps less"
rootfs multi-s2 --variant=custom --setup-hook="tar-in $BASE /" \
  --customize-hook="chroot \"\$1\" apt-get install -y --no-install-recommends $MULTI_PKGS" \
  --customize-hook="$LOWER_FIXTURES" --customize-hook="$SCRUB"
MULTI_S2=$ROOTFS
log "layer 2 of multi (umoci diff)"
umoci_diffs debian-min tmp-multi "$MULTI_S2"
L_MULTI2=$(py layers "$OCI" tmp-multi | jq -c --arg c "apt-get install $MULTI_PKGS" '.[1] + {createdBy: $c}')
log "layers 3 and 4 of multi, 4 of multi-sibling"
py edge-layer "$WORK/edge.tar" >/dev/null
L_MULTI3=$(py layer "$OCI" "$WORK/edge.tar" gzip "cairn edge cases")
py files-layer "$WORK/top.tar" '[["etc","dir"],["etc/cairn-test-release","file","cairn-test multi\n"]]' >/dev/null
L_MULTI4=$(py layer "$OCI" "$WORK/top.tar" gzip "cairn top layer")
py files-layer "$WORK/sib.tar" '[["etc","dir"],["etc/cairn-sibling","file","sibling\n"],["etc/cairn-test-release","file","cairn-test multi-sibling\n"]]' >/dev/null
L_SIB4=$(py layer "$OCI" "$WORK/sib.tar" gzip "cairn sibling top layer")
mkimage multi "$AMD64" '["bash"]' "$L_MIN" "$L_MULTI2" "$L_MULTI3" "$L_MULTI4" >/dev/null
mkimage multi-sibling "$AMD64" '["bash"]' "$L_MIN" "$L_MULTI2" "$L_MULTI3" "$L_SIB4" >/dev/null

# ---- clients: debian-min plus what the real clients' in-container init needs, so that
# tests/tests/clients.rs runs offline. distrobox-init (1.4) runs `apt-get update && apt-get
# install ...` (and fails without a network) unless every one of find mount passwd sudo useradd
# diff pinentry wget curl less bc time lsof and the caller's shell is on PATH; toolbox's
# init-container writes /etc/sudoers.d and `toolbox run` execs through capsh (libcap2-bin). A
# user `dev` (uid 1000) is the Dev Containers remoteUser. One umoci diff layer over
# debian-min's.
CLIENTS_PKGS="sudo pinentry-curses wget curl less bc time lsof procps libcap2-bin"
rootfs clients --variant=custom --setup-hook="tar-in $BASE /" \
  --customize-hook="chroot \"\$1\" apt-get install -y --no-install-recommends $CLIENTS_PKGS" \
  --customize-hook='chroot "$1" useradd --create-home --uid 1000 --shell /bin/bash dev' \
  --customize-hook='chroot "$1" apt-get clean' --customize-hook="$SCRUB"
CLIENTS_TAR=$ROOTFS
log "layer 2 of clients (umoci diff)"
umoci_diffs debian-min tmp-clients "$CLIENTS_TAR"
L_CLIENTS2=$(py layers "$OCI" tmp-clients | jq -c --arg c "apt-get install $CLIENTS_PKGS; useradd dev" '.[1] + {createdBy: $c}')
mkimage clients "$AMD64" '["bash"]' "$L_MIN" "$L_CLIENTS2" >/dev/null

# ---- net: debian-min plus the servers and clients tests/tests/network.rs and
# benches/network.py run inside containers: python3 (http.server; the UDP and TCP echo servers
# of layer 3), curl, iperf3, iproute2 (`ip`), getent (libc-bin, already there) for name lookups.
# ExposedPorts 8000/tcp (http.server) and 9000/udp (udp-echo) for `run -P`. Layer 2 is an umoci
# diff over debian-min's layer, layer 3 the two echo scripts.
NET_PKGS="python3 curl iperf3 iproute2"
rootfs net --variant=custom --setup-hook="tar-in $BASE /" \
  --customize-hook="chroot \"\$1\" apt-get install -y --no-install-recommends $NET_PKGS" \
  --customize-hook='chroot "$1" apt-get clean' \
  --customize-hook='rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/var/lib/apt/lists/*' \
  --customize-hook="$SCRUB"
NET_TAR=$ROOTFS
log "layer 2 of net (umoci diff)"
umoci_diffs debian-min tmp-net "$NET_TAR"
L_NET2=$(py layers "$OCI" tmp-net | jq -c --arg c "apt-get install $NET_PKGS" '.[1] + {createdBy: $c}')
# udp-echo [PORT]: answers every datagram with its bytes (default port 9000).
# tcp-echo [PORT]: per connection, sends back every chunk it reads (default port 9001).
UDP_ECHO='#!/usr/bin/python3
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1]) if len(sys.argv) > 1 else 9000))
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(data, peer)
'
TCP_ECHO='#!/usr/bin/python3
import socket, socketserver, sys
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", int(sys.argv[1]) if len(sys.argv) > 1 else 9001), Echo).serve_forever()
'
py files-layer "$WORK/net3.tar" "$(jq -nc --arg u "$UDP_ECHO" --arg t "$TCP_ECHO" \
  '[["usr","dir"],["usr/local","dir"],["usr/local/bin","dir"],
    ["usr/local/bin/udp-echo","file",$u,"755"],["usr/local/bin/tcp-echo","file",$t,"755"]]')" >/dev/null
L_NET3=$(py layer "$OCI" "$WORK/net3.tar" gzip "udp-echo, tcp-echo")
MKIMAGE_CONFIG='{"ExposedPorts":{"8000/tcp":{},"9000/udp":{}}}' \
  mkimage net "$AMD64" '["bash"]' "$L_MIN" "$L_NET2" "$L_NET3" >/dev/null

# ---- platforms: amd64 (debian-min + marker), real arm64 and armv7 busybox roots, attestation
# only the main suite for these: busybox-static is all they need
ROOTFS_SOURCES="deb $MIRROR $SUITE main" rootfs arm64 --arch=arm64 --variant=extract --include=busybox-static \
  --extract-hook="$(busybox_hook linux/arm64)"
ARM64_TAR=$ROOTFS
ROOTFS_SOURCES="deb $MIRROR $SUITE main" rootfs armhf --arch=armhf --variant=extract --include=busybox-static \
  --extract-hook="$(busybox_hook linux/arm/v7)"
ARMHF_TAR=$ROOTFS
log "platforms index"
py files-layer "$WORK/plat-amd64.tar" '[["etc","dir"],["etc/cairn-platform","file","linux/amd64\n"]]' >/dev/null
L_PLAT_AMD64=$(py layer "$OCI" "$WORK/plat-amd64.tar" gzip "echo linux/amd64 > /etc/cairn-platform")
L_ARM64=$(py layer "$OCI" "$ARM64_TAR" gzip "mmdebstrap --arch=arm64 --variant=extract --include=busybox-static")
L_ARMHF=$(py layer "$OCI" "$ARMHF_TAR" gzip "mmdebstrap --arch=armhf --variant=extract --include=busybox-static")
D_AMD64=$(mkimage - "$AMD64" '["bash"]' "$L_MIN" "$L_PLAT_AMD64")
D_ARM64=$(mkimage - "$ARM64" '["/bin/sh"]' "$L_ARM64")
D_ARMV7=$(mkimage - "$ARMV7" '["/bin/sh"]' "$L_ARMHF")
D_ATT=$(py attest "$OCI" "$D_AMD64")
py index "$OCI" platforms "$D_AMD64" "$D_ARM64" "$D_ARMV7" "$D_ATT" >/dev/null

# ---- benchmark images
if [ "$BENCH" = 1 ]; then
  # bench-one: minbase made slim like debian:*-slim (dpkg path-excludes for docs, man pages,
  # translations; existing ones removed) plus a few packages, one gzip layer
  rootfs bench-one --variant=custom --setup-hook="tar-in $BASE /" \
    --customize-hook='set -e; r=$1; printf "%s\n" "path-exclude /usr/share/doc/*" "path-include /usr/share/doc/*/copyright" "path-exclude /usr/share/man/*" "path-exclude /usr/share/info/*" "path-exclude /usr/share/locale/*" "path-include /usr/share/locale/locale.alias" > "$r/etc/dpkg/dpkg.cfg.d/slim"
find "$r/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/*
find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
chroot "$r" apt-get install -y --no-install-recommends procps less ca-certificates' \
    --customize-hook="$SCRUB"
  BENCH_ONE=$ROOTFS
  # bench-four: minbase (own marker, so it shares no layer with debian-min) / +perl python3 /
  # +gcc make libc6-dev / +git curl vim-tiny, and docs/man pages of lower layers deleted
  rootfs bench-b1 --variant=custom --setup-hook="tar-in $BASE /" \
    --customize-hook='echo bench-four > "$1/etc/cairn-bench"' --customize-hook="$SCRUB"
  B1=$ROOTFS
  rootfs bench-b2 --variant=custom --setup-hook="tar-in $B1 /" \
    --customize-hook='chroot "$1" apt-get install -y --no-install-recommends perl python3' \
    --customize-hook="$SCRUB"
  B2=$ROOTFS
  rootfs bench-b3 --variant=custom --setup-hook="tar-in $B2 /" \
    --customize-hook='chroot "$1" apt-get install -y --no-install-recommends gcc make libc6-dev' \
    --customize-hook="$SCRUB"
  B3=$ROOTFS
  rootfs bench-b4 --variant=custom --setup-hook="tar-in $B3 /" \
    --customize-hook='chroot "$1" apt-get install -y --no-install-recommends git curl vim-tiny' \
    --customize-hook='rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/*' \
    --customize-hook="$SCRUB"
  B4=$ROOTFS
  log "bench-one layer"
  L_B1=$(py layer "$OCI" "$BENCH_ONE" gzip "slim minbase + apt-get install procps less ca-certificates")
  mkimage bench-one "$AMD64" '["bash"]' "$L_B1" >/dev/null
  log "bench-four layers (umoci diffs)"
  L_BF1=$(py layer "$OCI" "$B1" gzip "mmdebstrap --variant=minbase $SUITE")
  mkimage tmp-bench-base "$AMD64" '["bash"]' "$L_BF1" >/dev/null
  umoci_diffs tmp-bench-base tmp-bench "$B2" "$B3" "$B4"
  L_BF=$(py layers "$OCI" tmp-bench)
  mkimage bench-four "$AMD64" '["bash"]' "$L_BF1" \
    "$(jq -c '.[1] + {createdBy: "apt-get install perl python3"}' <<<"$L_BF")" \
    "$(jq -c '.[2] + {createdBy: "apt-get install gcc make libc6-dev"}' <<<"$L_BF")" \
    "$(jq -c '.[3] + {createdBy: "apt-get install git curl vim-tiny; rm -rf /usr/share/{doc,man,info}/*"}' <<<"$L_BF")" >/dev/null
  py untag "$OCI" tmp-bench-base tmp-bench >/dev/null
fi

py untag "$OCI" tmp-multi tmp-clients tmp-net >/dev/null
py gc "$OCI" >/dev/null
# umoci writes its blobs 0600; rootless tests (tests/tests/clients.rs) read the layout as
# their user
chmod -R a+rX "$OCI"
log "built in $((SECONDS - T0)) s; validating"

# ------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------
fail() { die "validation: $*"; }
REFS=(debian-min debian-min-zstd debian-min-plain multi multi-sibling platforms clients net)
[ "$BENCH" = 1 ] && REFS+=(bench-one bench-four)

# digests, sizes, diff_ids (every layer decompressed), media types
py verify "$OCI" >"$WORK/summary.json"
S=$WORK/summary.json
jq -e --argjson n ${#REFS[@]} 'length == $n' "$S" >/dev/null || fail "unexpected ref count: $(jq -c keys "$S")"
GZ=application/vnd.oci.image.layer.v1.tar+gzip
expect() { # JQ_EXPR MESSAGE
  jq -e "$1" "$S" >/dev/null || fail "$2"
}
expect "(.\"debian-min\".layers | length == 1 and .[0].mediaType == \"$GZ\")" "debian-min: want one gzip layer"
expect '.["debian-min-zstd"].layers | length == 1 and .[0].mediaType == "application/vnd.oci.image.layer.v1.tar+zstd"' "debian-min-zstd media type"
expect '.["debian-min-plain"].layers | length == 1 and .[0].mediaType == "application/vnd.oci.image.layer.v1.tar"' "debian-min-plain media type"
expect '[.["debian-min"], .["debian-min-zstd"], .["debian-min-plain"]] | map(.layers[0].diffID) | unique | length == 1' "debian-min variants must share the diff_id"
expect '[.["debian-min"], .["debian-min-zstd"], .["debian-min-plain"]] | map(.layers[0].digest) | unique | length == 3' "debian-min variants must have distinct blobs"
expect "[.multi, .\"multi-sibling\"] | all(.layers | length == 4 and all(.mediaType == \"$GZ\"))" "multi*: want 4 gzip layers"
expect '.multi.layers[0].digest == .["debian-min"].layers[0].digest' "multi layer 1 must be debian-min's blob"
expect '(.multi.layers[0:3] | map(.digest)) == (.["multi-sibling"].layers[0:3] | map(.digest))' "multi/multi-sibling must share layers 1-3"
expect '.multi.layers[3].digest != .["multi-sibling"].layers[3].digest' "multi/multi-sibling top layers must differ"
expect '.["debian-min"].layers[0].digest as $b | .clients.layers | length == 2 and .[0].digest == $b' "clients: want debian-min's layer and one more"
expect '.["debian-min"].layers[0].digest as $b | .net.layers | length == 3 and .[0].digest == $b' "net: want debian-min's layer and two more"
expect '.platforms.manifests | map(.platform) == ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "unknown/unknown"]' "platforms: entries"
expect '.platforms.manifests[0].layers[0].digest == .["debian-min"].layers[0].digest' "platforms amd64 must reuse debian-min's layer"
expect '.platforms.manifests[3].annotations["vnd.docker.reference.digest"] == .platforms.manifests[0].manifest' "attestation must reference the amd64 manifest"
expect '.platforms.manifests[3].layers[0].mediaType == "application/vnd.in-toto+json"' "attestation layer media type"
if [ "$BENCH" = 1 ]; then
  expect "(.\"bench-one\".layers | length == 1) and (.\"bench-four\".layers | length == 4 and all(.mediaType == \"$GZ\"))" "bench layer counts"
  expect '[.["bench-four"].layers[].digest] - [.["debian-min"].layers[].digest] | length == 4' "bench-four must share no layer with debian-min"
fi
net_config=$(jq -r '.net.config | ltrimstr("sha256:")' "$S")
jq -e '.config.ExposedPorts == {"8000/tcp": {}, "9000/udp": {}}' "$OCI/blobs/sha256/$net_config" >/dev/null ||
  fail "net: ExposedPorts must be 8000/tcp and 9000/udp"
log "digests, diff_ids, media types and sharing ok"

# platform marker inside each platform's top layer
check_platform_file() { # INDEX_POS WANT
  local blob
  blob=$(jq -r ".platforms.manifests[$1].layers[-1].digest" "$S")
  local got
  got=$(pigz -dc "$OCI/blobs/sha256/${blob#sha256:}" | tar -xO --wildcards '*etc/cairn-platform')
  [ "$got" = "$2" ] || fail "platforms[$1]: /etc/cairn-platform is '$got', want '$2'"
}
check_platform_file 0 linux/amd64
check_platform_file 1 linux/arm64
check_platform_file 2 linux/arm/v7
# real foreign binaries: ELF class and e_machine of /bin/busybox (aarch64: 64-bit/183, arm: 32-bit/40)
python3 - "$OCI" "$S" <<'EOF' || fail "platforms: busybox of arm64/armv7 is not a real aarch64/arm binary"
import json, sys, tarfile
oci, s = sys.argv[1], json.load(open(sys.argv[2]))
for pos, cls, machine in ((1, 2, 183), (2, 1, 40)):
    d = s["platforms"]["manifests"][pos]["layers"][0]["digest"].split(":")[1]
    with tarfile.open("%s/blobs/sha256/%s" % (oci, d), "r:gz") as t:
        head = t.extractfile("./bin/busybox").read(20)
    assert head[:4] == b"\x7fELF" and head[4] == cls and int.from_bytes(head[18:20], "little") == machine, head
EOF

# skopeo reads every ref
for ref in "${REFS[@]}"; do
  if [ "$ref" = platforms ]; then
    skopeo inspect --raw "oci:$OCI:$ref" | jq -e '.mediaType == "application/vnd.oci.image.index.v1+json" and (.manifests | length == 4)' >/dev/null ||
      fail "skopeo inspect --raw platforms"
    for p in amd64 arm64/v8 arm/v7; do
      args=(--override-os linux --override-arch "${p%%/*}")
      [[ $p != */* ]] || args+=(--override-variant "${p#*/}")
      got=$(skopeo inspect "${args[@]}" "oci:$OCI:$ref" | jq -r '.Os + "/" + .Architecture')
      [ "$got" = "linux/${p%%/*}" ] || fail "skopeo inspect platforms for $p: got $got"
    done
  else
    n=$(skopeo inspect "oci:$OCI:$ref" | jq '.Layers | length')
    [ "$n" = "$(jq ".\"$ref\".layers | length" "$S")" ] || fail "skopeo inspect $ref"
  fi
done
log "skopeo inspect ok"

# the edge cases of multi, as umoci unpacks them
check_multi() {
  local b=$WORK/check-multi r
  umoci unpack --image "$OCI:multi" "$b" >/dev/null
  r=$b/rootfs
  st() { stat -c "$2" "$r/$1" 2>/dev/null || echo missing; }
  want() { # PATH STAT_FORMAT WANT
    local got
    got=$(st "$1" "$2")
    [ "$got" = "$3" ] || fail "multi: $1: stat $2 = '$got', want '$3'"
  }
  gone() { [ ! -e "$r/$1" ] && [ ! -L "$r/$1" ] || fail "multi: $1 should be deleted"; }
  gone etc/issue.net
  gone usr/share/doc/less
  gone cairn/whiteout/gone-file
  gone cairn/whiteout/gone-dir
  want cairn/whiteout/kept %F 'regular file'
  want usr/bin/less %F 'regular file'
  [ "$(ls -A "$r/cairn/opaque")" = new-file ] || fail "multi: cairn/opaque not opaque: $(ls -A "$r/cairn/opaque")"
  want cairn/replace/file-to-dir %F directory
  want cairn/replace/file-to-dir/inner %F 'regular file'
  want cairn/replace/dir-to-file %F 'regular file'
  want cairn/hardlink/link-in-layer %i "$(st cairn/hardlink/original %i)"
  want cairn/hardlink/link-in-layer %h 2
  want cairn/hardlink/link-to-layer2 %i "$(st cairn/lower/hardlink-target %i)"
  want cairn/hardlink/link-to-layer1 %i "$(st usr/lib/os-release %i)"
  want cairn/perm/setuid %a:%u:%g 4755:0:0
  want cairn/perm/setgid-file %a 2755
  want cairn/perm/setgid-dir %F:%a:%u:%g directory:2775:0:1000
  want cairn/perm/sticky-dir %a 1777
  want cairn/perm/private %a 600
  want cairn/owner/uid1000 %u:%g 1000:1000
  want cairn/owner/nobody %u:%g 65534:65534
  want cairn/owner/root-gid1000 %a:%u:%g 640:0:1000
  want cairn/owner/dir1000 %F:%a:%u:%g directory:750:1000:1000
  link() { [ "$(readlink "$r/$1")" = "$2" ] || fail "multi: $1 should be a symlink to $2"; }
  link cairn/links/relative ../hardlink/original
  link cairn/links/absolute /usr/lib/os-release
  link cairn/links/dir-relative ../owner
  link cairn/links/dangling /nonexistent/cairn-target
  link cairn/links/escape ../../../../../../../../etc/passwd
  want cairn/special/fifo %F fifo
  python3 -c 'import os,sys; v=os.getxattr(sys.argv[1],"user.cairn.test"); sys.exit(v!=b"hello-xattr")' \
    "$r/cairn/xattr/file" || fail "multi: cairn/xattr/file lacks user.cairn.test=hello-xattr"
  local long
  long=$(cd "$r" && find cairn/long -type f -name "ffff*")
  [ ${#long} -gt 150 ] || fail "multi: long file name missing"
  want cairn/long/hardlink-long-target %i "$(st "$long" %i)"
  link cairn/long/symlink-long-target "/$long"
  [ "$(cat "$r/etc/cairn-test-release")" = "cairn-test multi" ] || fail "multi: etc/cairn-test-release"
  [ -f "$r/usr/bin/ps" ] || fail "multi: procps missing"
  rm -rf "$b"
}
check_multi
log "multi edge cases ok (umoci unpack)"

# every ref pushes to a real registry (127.0.0.1 only), digests preserved
push_all() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$WORK/registry"
  cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: 127.0.0.1:$port
  secret: cairn-build-images
EOF
  docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
  REG_PID=$!
  local i
  for i in $(seq 100); do
    python3 - "$port" <<'EOF' && break
import sys, urllib.request
o = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    o.open("http://127.0.0.1:%s/v2/" % sys.argv[1], timeout=1).read()
except Exception:
    sys.exit(1)
EOF
    kill -0 "$REG_PID" 2>/dev/null || fail "docker-registry died: $(cat "$WORK/registry.log")"
    sleep 0.1
  done
  [ "$i" -lt 100 ] || fail "docker-registry did not come up"
  local ref want got
  for ref in "${REFS[@]}"; do
    skopeo --insecure-policy copy --quiet --all --preserve-digests --dest-tls-verify=false \
      "oci:$OCI:$ref" "docker://127.0.0.1:$port/cairn-test/$ref:latest"
    want=$(jq -r --arg r "$ref" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $r) | .digest' "$OCI/index.json")
    got=$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$port/cairn-test/$ref:latest" | sha256sum | cut -d' ' -f1)
    [ "sha256:$got" = "$want" ] || fail "registry digest of $ref: sha256:$got, want $want"
  done
  kill "$REG_PID"
  wait "$REG_PID" 2>/dev/null || true
  REG_PID=
}
push_all
log "pushed every ref to a local docker-registry; digests preserved"

# ------------------------------------------------------------------------------------------
# publish
# ------------------------------------------------------------------------------------------
rm -f "$CACHE/stamp"
cp "$S" "$CACHE/summary.json.tmp"
if [ -e "$CACHE/oci" ]; then
  mv "$CACHE/oci" "$CACHE/oci.old.$$"
fi
mv "$OCI" "$CACHE/oci"
mv "$CACHE/summary.json.tmp" "$CACHE/summary.json"
printf 'version=%s\nset=%s\n' "$VERSION" "$WANT_SET" >"$CACHE/stamp.tmp"
mv "$CACHE/stamp.tmp" "$CACHE/stamp"
safe_rm "$CACHE"/oci.old.*
log "done in $((SECONDS - T0)) s: $(du -sm "$CACHE/oci" | cut -f1) MB in $CACHE/oci"
jq -r 'to_entries[] | .key as $r | (.value.layers // [.value.manifests[] | .layers[]]) |
  "  \($r): \(length) layers, \((map(.size) | add) / 1e6 * 10 | round / 10) MB compressed, \((map(.uncompressedSize) | add) / 1e6 * 10 | round / 10) MB uncompressed"' "$CACHE/summary.json" >&2
echo "$CACHE/oci" >&3
