#!/usr/bin/env bash
# What tests/integration/import.rs reads supervisord's own sample config with:
# `echo_supervisord_conf`, from `pip install supervisor` (only the sample printer is used; no
# supervisord is started). Idempotent and quick when it is there.
set -euo pipefail
command -v echo_supervisord_conf >/dev/null && exit 0
if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip
fi
# Debian's Python refuses a system-wide pip install (PEP 668) unless told it may.
python3 -m pip install --quiet supervisor \
    || python3 -m pip install --quiet --break-system-packages supervisor
command -v echo_supervisord_conf >/dev/null \
    || { echo "setup-supervisor: pip installed supervisor but echo_supervisord_conf is not on PATH" >&2; exit 1; }
