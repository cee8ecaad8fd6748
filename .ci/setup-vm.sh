#!/usr/bin/env bash
# What the VM proving ground (tests/vm/run.sh) needs on the host: qemu, a kernel to boot, a
# static busybox for the initramfs (also the programs' tools in the podman tests), cpio, unxz.
# Idempotent and quick when everything is there. Needs root the first time.
set -euo pipefail
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -e /usr/share/qemu/qboot.rom ] || need+=(qemu-system-x86)
compgen -G '/boot/vmlinuz-*' >/dev/null || need+=(linux-image-amd64)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
[ -x /usr/bin/unshare ] || need+=(util-linux)
command -v unxz >/dev/null || need+=(xz-utils)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-vm: missing ${need[*]}: run as root, or apt-get install them" >&2
        exit 1
    fi
    echo "setup-vm: installing ${need[*]}" >&2
    apt-get update -qq
    # INITRD=No: the kernel package would otherwise build a host initrd twice (80 s).
    INITRD=No DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${need[@]}" >/dev/null
fi
