#!/usr/bin/env bash
# The VM proving ground: boots a Debian 6.1 kernel under qemu (TCG) once per scenario, with a
# busybox initramfs, a static holden and the scenario's files, and reads PASS/FAIL lines from
# the serial console. See docs/vm.md.
#
#   tests/vm/run.sh [-k] [-v] [SCENARIO...]     (default: every tests/vm/scenarios/*)
#     -k  keep going without building (use the static holden already in target/vm)
#     -v  print each VM's console as it runs
#
# Environment: HOLDEN_VM_CACHE (default target/vm-cache), HOLDEN_VM_TIMEOUT (default per
# scenario, else 90 s), HOLDEN_VM_SKIP_PENDING=1 (do not boot pending scenarios),
# HOLDEN_VM_BIN_DIR (with -k: a folder holding a static holden and examples/memhog),
# HOLDEN_SKIPS_FILE (a file to append a line to per pending scenario: test.sh counts skips).
#
# Exit status: 0 when every scenario that is not pending passed; 1 when any check failed, any
# scenario gave no result or timed out; 2 on a setup error.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${HOLDEN_VM_CACHE:-$repo/target/vm-cache}
target_dir=$repo/target/vm
triple=x86_64-unknown-linux-gnu
build=1
build_only=0
verbose=0
while getopts bkv opt; do
    case $opt in
    b) build_only=1 ;;  # build the static binaries, stop
    k) build=0 ;;
    v) verbose=1 ;;
    *) echo "usage: $0 [-b] [-k] [-v] [SCENARIO...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))

join() { local IFS=';'; echo "$*" | sed 's/;/; /g'; }
say() { echo "vm: $*" >&2; }
die() { say "$*"; exit 2; }

# A pending scenario is a skipped test: one line in $HOLDEN_SKIPS_FILE (test.sh counts them).
skipped() { [ -z "${HOLDEN_SKIPS_FILE:-}" ] || echo "vm/$1: pending: $2" >>"$HOLDEN_SKIPS_FILE"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
started=$(now_ms)

# --- what the VM needs on the host: .ci/setup-vm.sh installs it (run by .ci/setup.sh) -------
if [ $build_only = 0 ]; then
    missing=()
    command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
    [ -e /usr/share/qemu/qboot.rom ] || missing+=(qemu-system-x86)
    compgen -G '/boot/vmlinuz-*' >/dev/null || missing+=(linux-image-amd64)
    dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
    command -v cpio >/dev/null || missing+=(cpio)
    [ -x /usr/bin/unshare ] || missing+=(util-linux)
    command -v unxz >/dev/null || missing+=(xz-utils)
    [ ${#missing[@]} = 0 ] || die "missing ${missing[*]}: run .ci/setup.sh (as root) first"
    if ldd /bin/busybox >/dev/null 2>&1; then
        die "/bin/busybox is dynamically linked; install busybox-static"
    fi
fi

# --- the static holden and memhog ------------------------------------------------------------
if [ $build = 1 ]; then
    say "building a static holden and memhog (release, $target_dir)"
    # An explicit --target keeps RUSTFLAGS away from build scripts and proc macros. The VM
    # needs a static binary with release semantics (panic = abort, no debug assertions), not
    # the last percent of speed: without LTO and with incremental builds, a change to holden
    # rebuilds in seconds instead of most of a minute.
    mkdir -p "$cache"
    if ! CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        CARGO_PROFILE_RELEASE_INCREMENTAL=true \
        RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release \
        --manifest-path "$repo/Cargo.toml" --target "$triple" --target-dir "$target_dir" \
        --bin holden --example memhog --example sdnotify >"$cache/build.log" 2>&1; then
        cat "$cache/build.log" >&2
        die "the static build failed (above; also in $cache/build.log)"
    fi
fi
# bench/bhstamp.c, static: the CLOCK_MONOTONIC stamper of the respawn scenario (seconds to build).
bhstamp=$cache/bhstamp
if [ ! -x "$bhstamp" ] || [ "$repo/bench/bhstamp.c" -nt "$bhstamp" ]; then
    mkdir -p "$cache"
    cc -O2 -static -o "$bhstamp" "$repo/bench/bhstamp.c" || die "cc -static of bench/bhstamp.c failed"
fi
[ $build_only = 1 ] && exit 0
bin_dir=${HOLDEN_VM_BIN_DIR:-$target_dir/$triple/release}
holden=$bin_dir/holden
memhog=$bin_dir/examples/memhog
sdnotify=$bin_dir/examples/sdnotify
[ -x "$holden" ] && [ -x "$memhog" ] && [ -x "$sdnotify" ] || die "no static holden/memhog/sdnotify in $bin_dir; run without -k"

# --- the kernel: the ELF vmlinux out of the bzImage, once ----------------------------------
mkdir -p "$cache"
vmlinuz=$(ls /boot/vmlinuz-* | sort -V | tail -n1)
vmlinux=$cache/vmlinux-$(basename "$vmlinuz" | sed 's/^vmlinuz-//')
if [ ! -s "$vmlinux" ]; then
    say "extracting $vmlinux from $vmlinuz"
    # As the kernel's scripts/extract-vmlinux does: find the xz magic, decompress from there
    # (unxz complains about the bytes after the stream; the ELF header says whether it worked).
    for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | cut -d: -f1); do
        tail -c +$((off + 1)) "$vmlinuz" | unxz -c >"$vmlinux.tmp" 2>/dev/null || true
        if [ "$(head -c 4 "$vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
            mv "$vmlinux.tmp" "$vmlinux"
            break
        fi
    done
    rm -f "$vmlinux.tmp"
    [ -s "$vmlinux" ] || die "found no xz-compressed ELF kernel in $vmlinuz"
fi

# --- the initramfs: a common base, and one small archive per scenario -----------------------
# The kernel unpacks concatenated (compressed) cpio archives in order, so each scenario's
# initrd is base.cpio.gz followed by its own archive.
work=$cache/work
rm -rf "$work"
mkdir -p "$work/base"
(
    cd "$work/base"
    mkdir -p bin dev etc lib proc sys run tmp scenario
    cp /bin/busybox bin/busybox
    for applet in $(bin/busybox --list); do
        [ -e "bin/$applet" ] || ln -s busybox "bin/$applet"
    done
    cp "$holden" bin/holden
    cp "$memhog" bin/memhog
    cp "$sdnotify" bin/sdnotify
    cp "$bhstamp" bin/bhstamp
    # util-linux unshare (busybox's has no --cgroup) and the two libraries it needs.
    mkdir -p usr/bin lib64 lib/x86_64-linux-gnu
    cp /usr/bin/unshare usr/bin/unshare
    cp -L /lib64/ld-linux-x86-64.so.2 lib64/
    cp -L /lib/x86_64-linux-gnu/libc.so.6 lib/x86_64-linux-gnu/
    cp "$here/lib/init" init
    cp "$here/lib/vmtest.sh" lib/vmtest.sh
    chmod 755 init bin/holden bin/memhog bin/sdnotify bin/bhstamp
    # The kernel opens /dev/console for init before anything is mounted.
    mknod -m 600 dev/console c 5 1 2>/dev/null || true
    find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1 >"$work/base.cpio.gz"
)

scenario_archive() { # NAME DIR OUT
    local name=$1 dir=$2 out=$3 root=$work/s-$1
    mkdir -p "$root/etc" "$root/scenario"
    cp -r "$dir"/. "$root/scenario/"
    [ -f "$dir/holden.toml" ] && cp "$dir/holden.toml" "$root/etc/holden.toml"
    { [ -f "$dir/scenario.conf" ] && cat "$dir/scenario.conf"; echo "SCENARIO=$name"; } \
        >"$root/scenario/scenario.conf"
    (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$out.part"
    cat "$work/base.cpio.gz" "$out.part" >"$out"
    rm -f "$out.part"
}

# --- run --------------------------------------------------------------------------------------
if [ $# -gt 0 ]; then
    scenarios=("$@")
else
    scenarios=()
    for d in "$here"/scenarios/*/; do scenarios+=("$(basename "$d")"); done
fi

passed=0 failed=0 pending=0 checks_passed=0 checks_failed=0
failed_names=() pending_notes=()
for name in "${scenarios[@]}"; do
    dir=$here/scenarios/$name
    [ -d "$dir" ] || die "no scenario $name in $here/scenarios"
    TIMEOUT=90 PENDING= APPEND= EXPECT_INIT_EXIT= QEMU_EXTRA=
    # shellcheck disable=SC1091
    [ -f "$dir/scenario.conf" ] && . "$dir/scenario.conf"
    timeout_s=${HOLDEN_VM_TIMEOUT:-$TIMEOUT}
    if [ -n "$PENDING" ] && [ "${HOLDEN_VM_SKIP_PENDING:-0}" = 1 ]; then
        pending=$((pending + 1)); pending_notes+=("$name: $PENDING (not booted)")
        skipped "$name" "$PENDING (not booted)"
        echo "PENDING $name: $PENDING"
        continue
    fi
    initrd=$work/$name.initrd.gz
    log=$cache/$name.console.log
    scenario_archive "$name" "$dir" "$initrd"
    t0=$(now_ms)
    set +e
    qemu=(qemu-system-x86_64 -accel tcg -cpu max -m 512 -smp 1 -nographic -no-reboot
        -kernel "$vmlinux" -bios /usr/share/qemu/qboot.rom -nodefaults -serial stdio
        -monitor none -device isa-debug-exit,iobase=0xf4,iosize=0x04 -initrd "$initrd"
        -append "console=ttyS0 quiet panic=-1 $APPEND")
    # shellcheck disable=SC2206  # QEMU_EXTRA: more qemu options, split on blanks
    [ -n "$QEMU_EXTRA" ] && qemu+=($QEMU_EXTRA)
    if [ $verbose = 1 ]; then
        timeout -k 5 "$timeout_s" "${qemu[@]}" </dev/null 2>&1 | tr -d '\r' | tee "$log"
        status=${PIPESTATUS[0]}
    else
        timeout -k 5 "$timeout_s" "${qemu[@]}" </dev/null 2>&1 | tr -d '\r' >"$log"
        status=${PIPESTATUS[0]}
    fi
    set -e
    ms=$(($(now_ms) - t0))
    secs=$((ms / 1000)).$((ms % 1000 / 100))

    # The verdict, from the console: every PASS/FAIL line, the DONE line, the host-side checks.
    results=$(grep -aoE '(PASS|FAIL|DONE): .*' "$log" || true)
    if [ -x "$dir/host-check.sh" ]; then
        results+=$'\n'$("$dir/host-check.sh" "$log" 2>&1 | grep -aoE '(PASS|FAIL): .*' || true)
    fi
    if [ -n "$EXPECT_INIT_EXIT" ]; then
        # PID 1's wait status, as the kernel prints it when init exits (exit N: N << 8).
        want=$(printf 'exitcode=0x%08x' $((EXPECT_INIT_EXIT << 8)))
        seen=$(grep -aoE 'Attempted to kill init! exitcode=0x[0-9a-f]+' "$log" | head -n1 || true)
        if [ "${seen#*! }" = "$want" ]; then
            results+=$'\n'"PASS: PID 1 exited with status $EXPECT_INIT_EXIT (kernel: $seen)"
        else
            results+=$'\n'"FAIL: PID 1 exited with status $EXPECT_INIT_EXIT: kernel said '${seen:-nothing}'"
        fi
    fi
    n_pass=$(grep -c '^PASS: ' <<<"$results" || true)
    n_fail=$(grep -c '^FAIL: ' <<<"$results" || true)
    problems=()
    [ "$status" = 124 ] || [ "$status" = 137 ] && problems+=("timed out after ${timeout_s}s")
    [ "$n_fail" -gt 0 ] && problems+=("$n_fail check(s) failed")
    grep -q '^DONE: ' <<<"$results" || problems+=("no DONE line: the checker did not finish")
    [ "$n_pass" -gt 0 ] || problems+=("no check passed")

    if [ -n "$PENDING" ]; then
        pending=$((pending + 1))
        if [ ${#problems[@]} = 0 ]; then
            verdict="PENDING $name ($PENDING), but it passes now: remove PENDING from scenario.conf"
        else
            verdict="PENDING $name ($PENDING): $(join "${problems[@]}")"
        fi
        pending_notes+=("$name: $PENDING")
        skipped "$name" "$PENDING"
    elif [ ${#problems[@]} = 0 ]; then
        passed=$((passed + 1))
        checks_passed=$((checks_passed + n_pass))
        verdict="ok $name: $n_pass checks passed"
    else
        failed=$((failed + 1))
        checks_passed=$((checks_passed + n_pass))
        checks_failed=$((checks_failed + n_fail))
        failed_names+=("$name")
        verdict="FAILED $name: $(join "${problems[@]}")"
    fi
    echo "--- $name (${secs}s, qemu status $status, console: $log)"
    grep -E '^(PASS|FAIL): ' <<<"$results" | sed 's/^/    /' || true
    # Figures a scenario prints (timings: shown, never judged).
    { grep -aoE 'FIGURE: .*' "$log" || true; } | sed 's/^/    /'
    if [ ${#problems[@]} -gt 0 ] && [ $verbose = 0 ]; then
        echo "    last console lines (kernel lines other than the panic left out):"
        { grep -avE '^\[ *[0-9]+\.[0-9]+\] ' "$log" || true; } | tail -n 15 | sed 's/^/    | /'
        { grep -aoE 'Kernel panic - not syncing: .*' "$log" || true; } | head -n1 | sed 's/^/    | /'
    fi
    echo "$verdict"
done

total_ms=$(($(now_ms) - started))
echo "vm: $passed passed, $failed failed, $pending pending" \
    "($checks_passed checks passed, $checks_failed failed) in $((total_ms / 1000)) s"
for n in "${pending_notes[@]}"; do echo "vm: pending: $n"; done
[ $failed = 0 ] || { echo "vm: failed: ${failed_names[*]}"; exit 1; }
exit 0
