#!/usr/bin/env bash
# Creates (as root; idempotent, a few ms when done) the non-root user the rootless tests run as:
# $CAIRN_TEST_USER (default cairntest) with exactly TWO subordinate uid and gid ranges,
# 500000+65536 and 600000+2000, so the tests prove that cairn maps every range, not only the
# first. Needs useradd (passwd package) and newuidmap/newgidmap (uidmap, from install-deps.sh).
set -euo pipefail
user=${CAIRN_TEST_USER:-cairntest}
if [ "$(id -u)" != 0 ]; then
  echo "test-user.sh: run as root to create $user" >&2
  exit 1
fi
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
want="$user:500000:65536
$user:600000:2000"
for f in /etc/subuid /etc/subgid; do
  touch "$f"
  if [ "$(grep "^$user:" "$f" || true)" != "$want" ]; then
    sed -i "/^$user:/d" "$f"
    printf '%s\n' "$want" >>"$f"
  fi
done
