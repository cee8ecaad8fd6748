#!/usr/bin/env bash
# Build holden's container image in one command: FROM scratch, holding the static holden alone
# (and its config), from the Containerfile next to this script.
#
#   contrib/container/build.sh [-d DIR] [IMAGE]      (IMAGE: default localhost/holden:latest)
#
#   -d DIR   the folder of another Containerfile that COPYs `holden` (default: this folder;
#            containers/agent for the agent image). Every file of DIR goes into the context.
#
# The static holden is built first (RUSTFLAGS="-C target-feature=+crt-static" cargo build
# --release --target x86_64-unknown-linux-gnu), unless HOLDEN_BIN names one already built (the
# tests pass the one test.sh builds). The image is built with $ENGINE (default podman; docker
# works the same way). Prints the image's name.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=$here
while getopts d: opt; do
    case $opt in
    d) dir=$(cd "$OPTARG" && pwd) ;;
    *) echo "usage: $0 [-d DIR] [IMAGE]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
image=${1:-localhost/holden:latest}
engine=${ENGINE:-podman}
die() { echo "build.sh: $*" >&2; exit 1; }

[ -f "$dir/Containerfile" ] || die "no Containerfile in $dir"
bin=${HOLDEN_BIN:-}
if [ -z "$bin" ]; then
    triple=x86_64-unknown-linux-gnu
    echo "build.sh: building a static holden (release, target/$triple)" >&2
    # An explicit --target keeps the flag away from build scripts and proc macros.
    RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet \
        --manifest-path "$repo/Cargo.toml" --target "$triple" --bin holden
    bin=$repo/target/$triple/release/holden
fi
[ -x "$bin" ] || die "$bin is not an executable"
# FROM scratch has no libc: a dynamically linked holden would not even start.
if ldd "$bin" 2>/dev/null | grep -q '=>'; then
    die "$bin is dynamically linked; build it with RUSTFLAGS=\"-C target-feature=+crt-static\""
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp -r "$dir"/. "$ctx"/
rm -f "$ctx/build.sh"
cp "$bin" "$ctx/holden"
"$engine" build -q -t "$image" "$ctx" >/dev/null
echo "$image"
