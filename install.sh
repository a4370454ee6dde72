#!/bin/bash
# Install what VMCraft needs on a Debian 12 host, then set up the project's virtual
# environment in .venv with VMCraft installed in editable mode, with its dev tools.
#
# Usage (as root): ./install.sh
#
# Safe to run again: Debian packages already installed are not fetched again, and an
# existing .venv made by the same Python is reused.
set -euo pipefail

cd -- "$(dirname -- "${BASH_SOURCE[0]}")"

# The host tools VMCraft and its tests run (see README.md, "What the host needs").
PACKAGES=(
    qemu-utils qemu-system-common fuse3 parted gdisk fdisk lvm2
    e2fsprogs xfsprogs btrfs-progs dosfstools mtools fusefat ntfs-3g
    exfat-fuse exfatprogs fuse2fs squashfs-tools
    augeas-lenses libaugeas0 libaugeas-dev pkg-config libhivex-bin
    rpm db5.3-util
)
PYTHON=${PYTHON:-python3}
VENV=.venv

log() {
    echo "install.sh: $*" >&2
}

missing_packages() {
    local package
    for package in "$@"; do
        if ! dpkg-query -W -f '${db:Status-Status}\n' "$package" 2>/dev/null |
            grep -qx installed; then
            echo "$package"
        fi
    done
}

install_packages() {
    local missing
    mapfile -t missing < <(missing_packages "$@")
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "Debian packages: all ${#} present"
        return
    fi
    log "Debian packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# The interpreter's own venv module may be missing (Debian's python3 splits it out).
ensure_venv_module() {
    if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
        install_packages python3-venv
    fi
}

make_venv() {
    local wanted current=""
    wanted=$("$PYTHON" -c 'import sys; print(sys.base_prefix, sys.version)')
    if [[ -x $VENV/bin/python ]]; then
        current=$("$VENV/bin/python" -c 'import sys; print(sys.base_prefix, sys.version)' || true)
    fi
    if [[ $current != "$wanted" ]]; then
        log "creating $VENV with $("$PYTHON" --version)"
        rm -rf -- "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
}

if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (it installs Debian packages)"
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    log "$PYTHON is older than 3.11; set PYTHON=/path/to/python3.11"
    exit 1
fi

install_packages "${PACKAGES[@]}"
ensure_venv_module
make_venv
log "done: $VENV/bin/vmcraft is ready"
