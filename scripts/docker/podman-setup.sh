#!/bin/sh
# Makes this machine ready to run the Docker lab (docker-compose.yml) on Podman instead of a Docker
# engine, and prints the environment that points docker-compose at it:
#
#   eval "$(scripts/docker/podman-setup.sh)"      then: docker-compose build && docker-compose up -d
#
# Idempotent and cached: each step is skipped when it is already done, so running it again costs a
# second. Needs root (rootful Podman; Debian bookworm's packages). What it does, and why:
#
#   1. installs podman, catatonit (the init of `init: true`), runc, debootstrap and docker-compose from
#      Debian when one is missing (Debian's podman-compose 1.0.3 cannot read the file's
#      `networks: {<name>: {ipv4_address}}`; docker-compose against Podman's Docker API can);
#   2. writes a containers.conf with `default_ulimits = []` (some sandboxes refuse the setrlimit
#      Podman's default ulimits need), named by CONTAINERS_CONF;
#   3. makes the Dockerfile's base image, node:20-bookworm-slim, when it is missing and cannot be
#      pulled: `debootstrap --variant=minbase bookworm` from the mirror apt already uses, with this
#      machine's node and npm, and its CA bundle (NODE_EXTRA_CA_CERTS) so that `npm ci` in the
#      build reaches the registry through the same proxies as this machine; then `podman import`;
#   4. starts `podman system service` (Docker's API) on a socket of its own, when none answers.
#
# Prints `export CONTAINERS_CONF=... DOCKER_HOST=unix://... COMPOSE_FILE=...` on stdout (COMPOSE_FILE:
# docker-compose.yml and docker/compose.podman.yml, Podman's additions); progress goes to stderr.
# HSMLAB_PODMAN_DIR (default /var/lib/hsmlab-podman) holds the containers.conf, the socket and the
# service's log. HSMLAB_PODMAN_PULL=1 tries `podman pull` of the base image before making it.
set -eu

dir=${HSMLAB_PODMAN_DIR:-/var/lib/hsmlab-podman}
base=docker.io/library/node:20-bookworm-slim
say () { echo "podman-setup: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  say "needs root (rootful Podman); run it with sudo, or use Docker"
  exit 2
fi

# 1. Packages.
missing=
for pair in podman:podman catatonit:catatonit runc:runc debootstrap:debootstrap docker-compose:docker-compose; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
if [ -n "$missing" ]; then
  say "installing$missing from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2
fi

# 2. containers.conf.
mkdir -p "$dir"
conf="$dir/containers.conf"
# crun (Podman's default runtime) refuses cgroups in hybrid mode (v1 controllers beside a v2
# tree: "cgroups in hybrid mode not supported"); runc runs there, so it is the runtime on any
# machine whose /sys/fs/cgroup is not a pure v2 tree.
runtime=
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || runtime='[engine]\nruntime = "runc"\n'
want=$(printf "# Written by scripts/docker/podman-setup.sh (hsmlab).\n[containers]\ndefault_ulimits = []\n$runtime")
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want" ]; then
  printf '%s\n' "$want" > "$conf.tmp"
  mv "$conf.tmp" "$conf"
  # A service started with the old file would keep it: it is started again below.
  if [ -f "$dir/service.pid" ] && kill "$(cat "$dir/service.pid")" 2>/dev/null; then
    say "stopped the podman service started with the old $conf"
    rm -f "$dir/podman.sock"
  fi
fi
CONTAINERS_CONF=$conf
export CONTAINERS_CONF

# 3. The base image.
if ! podman image exists "$base"; then
  if [ "${HSMLAB_PODMAN_PULL:-0}" = 1 ] && podman pull "$base" >&2; then
    :
  else
    say "making $base with debootstrap (about a minute, once)"
    mirror=
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      mirror=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit }' "$f")
      [ -n "$mirror" ] && break
    done
    if [ -z "$mirror" ]; then
      mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }')
    fi
    mirror=${mirror:-http://deb.debian.org/debian}
    node=$(command -v node)
    npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
    rootfs=$(mktemp -d /var/tmp/hsmlab-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >&2
    mkdir -p "$rootfs/usr/local/bin" "$rootfs/usr/local/lib/node_modules"
    cp "$node" "$rootfs/usr/local/bin/node"
    cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
    ca=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
    mkdir -p "$rootfs/etc/ssl/certs"
    [ -f "$ca" ] && cp "$ca" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
    tar -C "$rootfs" -c . | podman import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
      --change 'CMD ["node"]' - "$base" >&2
    rm -rf "$rootfs"
    trap - EXIT
  fi
fi

# 4. Docker's API.
sock="$dir/podman.sock"
# A service whose working directory was deleted (started from a clone since removed) starts no
# container: conmon fails with "Failed to get working directory" and runc with "write child:
# broken pipe". Stop such a service so that a new one starts below.
if [ -f "$dir/service.pid" ]; then
  old_pid=$(cat "$dir/service.pid")
  case "$(readlink "/proc/$old_pid/cwd" 2>/dev/null || true)" in
    *' (deleted)') say "stopping podman system service $old_pid: its working directory is gone"; kill "$old_pid" 2>/dev/null || true; rm -f "$sock" ;;
  esac
fi
if ! curl -fsS --max-time 5 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; then
  say "starting podman system service on $sock"
  rm -f "$sock"
  # Detached from this shell (setsid) so that it outlives it; --time=0: it never stops on its own.
  # Started in / so that its working directory (which conmon inherits) outlives this checkout.
  (cd / && exec setsid podman system service --time=0 "unix://$sock" </dev/null >>"$dir/service.log" 2>&1) &
  echo $! > "$dir/service.pid"
  i=0
  until curl -fsS --max-time 5 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 100 ]; then
      say "podman system service did not answer on $sock within 30 s; its log: $dir/service.log"
      exit 1
    fi
    sleep 0.3
  done
fi

# docker-compose.yml with Podman's additions (docker/compose.podman.yml says why).
repo=$(cd "$(dirname "$0")/../.." && pwd)
echo "export CONTAINERS_CONF=$conf"
echo "export DOCKER_HOST=unix://$sock"
echo "export COMPOSE_FILE=$repo/docker-compose.yml:$repo/docker/compose.podman.yml"
