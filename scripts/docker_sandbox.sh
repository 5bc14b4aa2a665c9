#!/usr/bin/env bash
# A private Docker engine for the docker sandbox backend's tests and demo, and the image
# they run (no registry is reachable: the image is made with `docker import`).
#
#   bash scripts/docker_sandbox.sh start   # dockerd on .dockerd/docker.sock (no bridge,
#                                          # no iptables), then the image if missing
#   bash scripts/docker_sandbox.sh stop    # stop that dockerd (by PID)
#
# The image `mcpguard-sandbox:busybox` holds Debian's static busybox (sh and the usual
# tools as applets), /etc/passwd with root and nobody, and empty /tmp and /work.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=$root/.dockerd
sock=$dir/docker.sock
pidfile=$dir/dockerd.pid
image=mcpguard-sandbox:busybox
export DOCKER_HOST=unix://$sock

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && docker version >/dev/null 2>&1; }

start() {
  missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  [ -x /bin/busybox ] || missing+=(busybox-static)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null; }
  fi
  mkdir -p "$dir"
  if ! running; then
    say "starting a private dockerd on $sock"
    dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
      --data-root "$dir/data" --exec-root /run/mcpguard-dockerd \
      -H "unix://$sock" --pidfile "$pidfile" >"$dir/dockerd.log" 2>&1 &
    for _ in $(seq 100); do running && break; sleep 0.1; done
    running || { tail -n 20 "$dir/dockerd.log" >&2; echo "dockerd did not start" >&2; exit 1; }
  fi
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    say "building $image with docker import"
    rootfs=$(mktemp -d)
    mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/work" "$rootfs/proc" "$rootfs/dev"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $(/bin/busybox --list); do
      [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
    done
    printf 'root:x:0:0:root:/work:/bin/sh\nnobody:x:65534:65534:nobody:/work:/bin/sh\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    chmod 1777 "$rootfs/tmp" "$rootfs/work"
    tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/bin' -c 'WORKDIR /work' - "$image" >/dev/null
    rm -rf "$rootfs"
  fi
  echo "$sock"
}

stop() {
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
