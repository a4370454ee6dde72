#!/bin/bash
# Build a small example guest for trying VMCraft: a qcow2 disk with a GPT table,
#   sda1  ext4  LABEL=boot               (/boot)
#   sda2  LVM PV of VG "example" with the linear LVs
#         root  ext4  LABEL=root         (/: /etc/hostname, /etc/os-release, /etc/fstab,
#                                         /usr/bin/ls, a dpkg status file)
#         home  ext4  LABEL=home         (/home)
#
# Usage: sudo examples/build-example-image.sh OUT.qcow2
#
# Only host tools are used, and none needs device-mapper: the LVs are created with
# activation off, and each LV's filesystem is made through a loop device over the LV's
# byte range. Every loop device this script attaches is detached on exit, whatever
# happens, and the temporary raw disk is removed. /etc/lvm is left untouched.
#
# Host tools: sfdisk, losetup, partx, pvcreate, vgcreate, lvcreate, pvs, vgs, lvs,
# mkfs.ext4, qemu-img.
set -euo pipefail

readonly MIB=$((1024 * 1024))
readonly DISK_SIZE=$((120 * MIB))
readonly VG=example
readonly LVM_CONFIG='global{activation=0} backup{backup=0 archive=0}'
readonly PV_UUID=vmcrft-exam-ple0-0000-0000-0000-pv0001
readonly BOOT_START_SECTORS=2048 BOOT_SIZE_SECTORS=65536   # 1 MiB, 32 MiB
readonly PV_START_SECTORS=$((2048 + 65536))                # up to the backup GPT
readonly GPT_LINUX=0FC63DAF-8483-4772-8E79-3D47D8E4DE47
readonly GPT_LVM=E6D6D379-F507-44C2-A23C-238F2A3DF928

usage() {
    echo "usage: $0 OUT.qcow2" >&2
    exit 2
}

[[ $# -eq 1 && -n $1 && $1 != -* ]] || usage
out=$1
[[ $(id -u) -eq 0 ]] || { echo "$0: must run as root (loop devices)" >&2; exit 1; }

export LC_ALL=C LVM_SUPPRESS_FD_WARNINGS=1

out_dir=$(dirname -- "$out")
mkdir -p -- "$out_dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/vmcraft-example.XXXXXX")
raw=$work/disk.raw
loops=()           # every loop device attached, detached in reverse on exit
partitioned=""     # the loop device that got partition nodes from partx

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    if [[ -n $partitioned ]]; then
        partx -d "$partitioned" 2>/dev/null || echo "warning: partx -d $partitioned failed" >&2
    fi
    for ((i = ${#loops[@]} - 1; i >= 0; i--)); do
        losetup -d "${loops[i]}" || echo "warning: cannot detach ${loops[i]}" >&2
    done
    rm -rf -- "$work"
    rm -f -- "$out.partial"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

attach() {  # attach VAR [losetup options...] FILE: attach and remember a loop device
    local -n device_var=$1
    shift
    device_var=$(losetup -f --show "$@")
    loops+=("$device_var")
}

# lvm COMMAND PV ARGS...: an LVM command that sees only the guest's PV and writes no
# backups. Its warnings (no activation, no zeroing: both on purpose) go to a log that is
# shown only if the command fails.
lvm() {
    local cmd=$1 pv=$2
    shift 2
    if ! "$cmd" --config "$LVM_CONFIG" --devices "$pv" "$@" 2>>"$work/lvm.log"; then
        cat "$work/lvm.log" >&2
        return 1
    fi
}

seed_tree() {  # seed_tree DIR: the files each filesystem starts with
    local dir=$1
    case $dir in
    */boot)
        mkdir -p "$dir/grub"
        printf 'not a kernel\n' >"$dir/vmlinuz-6.1.0-example"
        printf 'linux /vmlinuz-6.1.0-example root=/dev/mapper/%s-root ro\n' "$VG" \
            >"$dir/grub/grub.cfg"
        ;;
    */root)
        mkdir -p "$dir/etc" "$dir/boot" "$dir/home" "$dir/tmp" "$dir/usr/bin" "$dir/var/lib/dpkg"
        chmod 1777 "$dir/tmp"
        ln -s usr/bin "$dir/bin"            # Debian 12's merged /usr
        cp /usr/bin/ls "$dir/usr/bin/ls"    # an ELF program, so inspection finds an arch
        cat >"$dir/var/lib/dpkg/status" <<'EOF'
Package: base-files
Status: install ok installed
Priority: required
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files

EOF
        printf 'example.vmcraft\n' >"$dir/etc/hostname"
        cat >"$dir/etc/os-release" <<'EOF'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
EOF
        {
            printf '%-24s %-6s %-5s %-18s %s\n' \
                "/dev/mapper/$VG-root" / ext4 errors=remount-ro "0 1" \
                LABEL=boot /boot ext4 defaults "0 2" \
                "/dev/$VG/home" /home ext4 defaults "0 2"
        } >"$dir/etc/fstab"
        ;;
    */home)
        mkdir -p "$dir/alice"
        printf 'Welcome to the example guest.\n' >"$dir/alice/notes.txt"
        ;;
    esac
}

make_ext4() {  # make_ext4 DEVICE LABEL
    local device=$1 label=$2
    seed_tree "$work/$label"
    mkfs.ext4 -q -F -L "$label" -d "$work/$label" "$device"
}

# One row of an LVM report, fields separated by '|', with sizes in bytes.
report() {
    local cmd=$1 pv=$2
    shift 2
    lvm "$cmd" "$pv" --noheadings --units b --nosuffix --separator '|' "$@" | tr -d ' '
}

# 1. A sparse raw disk with a GPT table: 32 MiB for /boot, the rest for the PV.
truncate -s "$DISK_SIZE" "$raw"
sfdisk --quiet --no-reread --no-tell-kernel "$raw" <<EOF
label: gpt
unit: sectors
start=$BOOT_START_SECTORS, size=$BOOT_SIZE_SECTORS, type=$GPT_LINUX, name=boot
start=$PV_START_SECTORS, type=$GPT_LVM, name=lvm
EOF
pv_start=$((PV_START_SECTORS * 512))

# 2. Partition nodes through a loop device (the kernel may lack partition parsers).
attach disk "$raw"
partx -a "$disk"
partitioned=$disk
make_ext4 "${disk}p1" boot

# 3. LVM without device-mapper: nothing is activated, nothing is zeroed.
pv=${disk}p2
lvm pvcreate "$pv" --uuid "$PV_UUID" --norestorefile "$pv" >/dev/null
lvm vgcreate "$pv" "$VG" "$pv" >/dev/null
lvm lvcreate "$pv" -an -Zn -Wn -n root -L 48m "$VG" >/dev/null
lvm lvcreate "$pv" -an -Zn -Wn -n home -L 32m "$VG" >/dev/null

pe_start=$(report pvs "$pv" -o pe_start "$pv")
extent_size=$(report vgs "$pv" -o vg_extent_size "$VG")
lv_rows=$(report lvs "$pv" -o lv_name,seg_pe_ranges,seg_size_pe "$VG")

partx -d "$disk"
partitioned=""

# 4. Each LV's filesystem through a loop device at the LV's offset on the disk.
while IFS='|' read -r name ranges size_pe; do
    [[ -n $name ]] || continue
    range=${ranges##*:}    # /dev/loop0p2:0-11 -> 0-11 (first and last PE on the PV)
    first_pe=${range%%-*}
    offset=$((pv_start + pe_start + first_pe * extent_size))
    attach lv_dev -o "$offset" --sizelimit "$((size_pe * extent_size))" "$raw"
    make_ext4 "$lv_dev" "$name"
done <<<"$lv_rows"

# 5. Release the loop devices before qemu-img reads the disk.
for ((i = ${#loops[@]} - 1; i >= 0; i--)); do
    losetup -d "${loops[i]}"
    unset 'loops[i]'
done

qemu-img convert -f raw -O qcow2 "$raw" "$out.partial"
mv -f -- "$out.partial" "$out"
echo "built $out"
