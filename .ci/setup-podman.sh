#!/usr/bin/env bash
# podman for the container tests (tests/integration/agent.rs, `podman_*`), rootful and offline:
# images are built FROM scratch with a static holden. Measured on our machines (TESTING.md):
# podman needs runc (crun refuses the hybrid cgroup layout) and ulimits that root may set here.
# Idempotent; quick when everything is in place. Needs root and a reachable Debian mirror the
# first time.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
    echo "setup-podman: not root; skipping (the podman tests will skip too)" >&2
    exit 0
fi
if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc
fi
conf=/etc/containers/containers.conf
if ! grep -q 'holden: setup-podman' "$conf" 2>/dev/null; then
    mkdir -p /etc/containers
    if [ -s "$conf" ]; then
        cp "$conf" "$conf.before-holden"
    fi
    cat > "$conf" <<'CONF'
# holden: setup-podman (.ci/setup-podman.sh)
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
CONF
fi
