#!/usr/bin/env bash
# Builds a guest root filesystem for the firecracker sandbox backend: an ext4 image with
# MCPGuard's guest agent as /sbin/mcpguard-vm-agent (started by the kernel as init, with
# the shared libraries it needs), busybox as /bin/sh and the usual tools, and optionally
# Python 3 from this machine. Booting it needs a Firecracker guest kernel with virtio
# block and vsock (CONFIG_VIRTIO_BLK, CONFIG_VIRTIO_VSOCKETS); see docs/sandbox.md.
#
#   bash scripts/firecracker_rootfs.sh [--python] [--size 256M] [OUTPUT]   (default OUTPUT:
#   target/firecracker/rootfs.ext4)
#
# This builds the image only: no Firecracker has booted it on our machines (they have no
# hardware KVM).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

python=0
size=256M
output=target/firecracker/rootfs.ext4
while [ $# -gt 0 ]; do
  case "$1" in
    --python) python=1; size=1G ;;
    --size) size="$2"; shift ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) output="$1" ;;
  esac
  shift
done

need=()
command -v mkfs.ext4 >/dev/null 2>&1 || [ -x /sbin/mkfs.ext4 ] || need+=(e2fsprogs)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

say "building mcpguard-vm-agent (release)"
cargo build --release --quiet -p mcpguard-sandbox --bin mcpguard-vm-agent
agent=target/release/mcpguard-vm-agent

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{sbin,bin,usr/bin,proc,tmp,work,dev,etc}
chmod 1777 "$stage/tmp" "$stage/work"

# Copies a binary and the shared libraries ldd says it loads, at the same paths.
copy_with_libs() {
  local binary="$1" target="$2"
  install -D -m 0755 "$binary" "$stage$target"
  ldd "$binary" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
    [ -e "$stage$lib" ] || install -D -m 0755 "$lib" "$stage$lib"
  done
}

copy_with_libs "$agent" /sbin/mcpguard-vm-agent
install -m 0755 /bin/busybox "$stage/bin/busybox"
for tool in sh cat echo ls env id sleep true false head tail wc grep sed tr sort mkdir rm cp mv; do
  ln -sf busybox "$stage/bin/$tool"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$stage/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$stage/etc/group"

if [ "$python" = 1 ]; then
  say "adding Python 3 from this machine"
  copy_with_libs "$(readlink -f /usr/bin/python3)" /usr/bin/python3
  version=$(/usr/bin/python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  mkdir -p "$stage/usr/lib"
  cp -a "/usr/lib/python$version" "$stage/usr/lib/"
  rm -rf "$stage/usr/lib/python$version"/{test,idlelib,tkinter,ensurepip}
fi

mkdir -p "$(dirname "$output")"
say "writing $output ($size)"
mkfs.ext4 -q -F -L mcpguard-rootfs -d "$stage" "$output" "$size"
echo "$output"
