#!/usr/bin/env bash
# Builds sandvmm's Linux guest (see README.md beside this file):
#   images/out/vmlinux              Linux 6.1 ELF with a PVH entry note
#   images/out/bzImage              the same kernel as a bzImage
#   images/out/initramfs.cpio       uncompressed newc initramfs: busybox-static
#                                   and rootfs/ (/init, /etc)
#   images/out/rootfs.ext4          the same files as an ext4 root disk (64 MiB,
#                                   made by mke2fs -d: no root, no loop device),
#                                   plus /bin/sandvmm-fill for the disk step
#
# Idempotent.  The kernel is built once per cache key under
#   ${SANDVMM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sandvmm}/linux-<key>/
# where <key> hashes the installed linux-source-6.1 version, the compiler
# version, kernel.patch, guest.config and the kernel recipe section of this
# script.  A later run with the same key only rebuilds the initramfs.
#
# Environment:
#   SANDVMM_CACHE        cache directory (see above)
#   SANDVMM_KEEP_SRC=1   keep the kernel tree after a successful build
#                        (normally deleted: ~1.5 GB, and a new key means a
#                        new tree anyway)
#   SANDVMM_VERBOSE=1    show every kernel build line, not one in 25
#   JOBS                 make -j (default: nproc)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=$(cd "$HERE/.." && pwd)/out
HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
CACHE_ROOT=${SANDVMM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sandvmm}
JOBS=${JOBS:-$(nproc)}
SRC_TARBALL=/usr/src/linux-source-6.1.tar.xz

export LC_ALL=C
# Environment that would change what kbuild/kconfig do.
unset ARCH CROSS_COMPILE KBUILD_OUTPUT KCONFIG_CONFIG KCONFIG_ALLCONFIG \
	LOCALVERSION INSTALL_PATH 2>/dev/null || true

START=$SECONDS
log() { printf 'linux: %s\n' "$*"; }
die() { printf 'linux: ERROR: %s\n' "$*" >&2; exit 1; }
elapsed() { local s=$((SECONDS - ${1:-$START})); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# ---------------------------------------------------------------- packages
# linux-source-6.1: the kernel source (/usr/src/linux-source-6.1.tar.xz)
# build-essential (gcc, make, libc headers), bc, bison, flex, libelf-dev:
#   what the kernel build needs; lz4 compresses the bzImage payload;
#   xz-utils to unpack the source; python3 for mkcpio.py; binutils (objdump,
#   readelf) for the checks; e2fsprogs (mke2fs -d) for the root disk.
PACKAGES=(linux-source-6.1 build-essential bc bison flex libelf-dev lz4 xz-utils
	python3 binutils e2fsprogs)

install_packages() {
	local missing=() p status
	for p in "${PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[[ $status == installed ]] || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0

	local sudo=()
	if [[ $(id -u) != 0 ]]; then
		command -v sudo >/dev/null || die "missing packages (${missing[*]}) and not root; install them with apt-get"
		sudo=(sudo -n)
	fi
	log "installing missing packages: ${missing[*]}"
	local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y
		-o Dpkg::Use-Pty=0 install --no-install-recommends "${missing[@]}")
	if ! "${apt[@]}" </dev/null; then
		log "apt-get install failed; running apt-get update and trying again"
		"${sudo[@]}" apt-get -q update </dev/null
		"${apt[@]}" </dev/null
	fi
}

install_packages
[[ -f $SRC_TARBALL ]] || die "$SRC_TARBALL missing although linux-source-6.1 is installed"

# ---------------------------------------------------------------- kernel
# Everything between the two markers below is part of the cache key: edit it
# and the kernel is rebuilt.
# >>> kernel-recipe
KERNEL_ARCH=x86
# Fixed build identity, so the same inputs give the same kernel.
export KBUILD_BUILD_USER=sandvmm KBUILD_BUILD_HOST=sandvmm KBUILD_BUILD_VERSION=1
export KBUILD_BUILD_TIMESTAMP="Thu Jan  1 00:00:00 UTC 1970"

# Options that must be in the final .config.  Every line of guest.config is
# checked as well; these are named again so the check never gets weaker than
# this if guest.config is edited carelessly.
REQUIRED_OPTIONS=(CONFIG_64BIT CONFIG_PVH CONFIG_SERIAL_8250_CONSOLE
	CONFIG_BLK_DEV_INITRD CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES CONFIG_VIRTIO_NET
	CONFIG_VIRTIO_BLK CONFIG_EXT4_FS CONFIG_SLAB CONFIG_HZ_25)

kmake() { make -C "$SRC" --no-print-directory ARCH=$KERNEL_ARCH "$@" </dev/null; }

unpack_and_patch() {
	[[ -f $SRC/.sandvmm-patched ]] && return 0
	log "unpacking $SRC_TARBALL"
	rm -rf "$SRC" "$SRC.tmp"
	mkdir -p "$SRC.tmp"
	tar -xf "$SRC_TARBALL" -C "$SRC.tmp" --strip-components=1
	log "applying kernel.patch"
	patch -d "$SRC.tmp" -p1 --batch --forward --no-backup-if-mismatch \
		<"$HERE/kernel.patch" >/dev/null
	touch "$SRC.tmp/.sandvmm-patched"
	mv "$SRC.tmp" "$SRC"
}

# Checks that guest.config (and REQUIRED_OPTIONS) made it into .config:
# merge_config.sh only warns when a value does not stick, e.g. when the
# symbol is misspelt or its dependencies are not met.
verify_config() {
	local config=$SRC/.config line sym bad=() n=0
	while IFS= read -r line; do
		case $line in
		CONFIG_*=*)
			n=$((n + 1))
			grep -qxF -- "$line" "$config" ||
				bad+=("$line (got: $(grep -E "^(# )?${line%%=*}[= ]" "$config" || echo unset))")
			;;
		"# CONFIG_"*" is not set")
			n=$((n + 1))
			sym=${line#\# }
			sym=${sym%% *}
			! grep -qE "^$sym=[ym]" "$config" || bad+=("$line (got: $(grep -E "^$sym=" "$config"))")
			;;
		esac
	done <"$HERE/guest.config"
	for sym in "${REQUIRED_OPTIONS[@]}"; do
		grep -qx "$sym=y" "$config" || bad+=("$sym=y (required by build.sh)")
	done
	if ((${#bad[@]})); then
		printf 'linux: ERROR: these options did not end up in .config:\n' >&2
		printf 'linux:   %s\n' "${bad[@]}" >&2
		die "fix images/linux/guest.config (missing dependency or misspelt symbol?)"
	fi
	log "config verified: all $n lines of guest.config hold (incl. ${REQUIRED_OPTIONS[*]})"
}

configure() {
	[[ -f $SRC/.sandvmm-configured ]] && return 0
	log "configuring: make tinyconfig, merge guest.config, make olddefconfig"
	# Their chatter (tinyconfig reports its own overrides) goes to a log.
	local log=$SRC/configure.log
	{
		kmake tinyconfig &&
			(cd "$SRC" && ./scripts/kconfig/merge_config.sh -m .config "$HERE/guest.config") &&
			kmake olddefconfig
	} >"$log" 2>&1 || { cat "$log" >&2; die "configuring the kernel failed (log above)"; }
	verify_config
	touch "$SRC/.sandvmm-configured"
}

# Runs a kernel make target.  Kbuild prints one "  CC  file.o"-style line
# per step; show one in 25 with a running count (all of them with
# SANDVMM_VERBOSE=1) and everything else (warnings, errors) as it comes.
progress_filter() {
	local t0=$1 n=0 line
	while IFS= read -r line; do
		if [[ $line =~ ^\ \ [A-Z0-9_]+\ +[^\ ] ]]; then
			n=$((n + 1))
			if [[ ${SANDVMM_VERBOSE:-} == 1 ]] || ((n % 25 == 1)); then
				printf 'linux:   [%4d steps, %s] %s\n' "$n" "$(elapsed "$t0")" "${line#  }"
			fi
		else
			printf '%s\n' "$line"
		fi
	done
	log "  $n steps in $(elapsed "$t0")"
}

build_target() {
	local t0=$SECONDS
	log "make -j$JOBS $1"
	if ! kmake -j"$JOBS" "$1" 2>&1 | progress_filter "$t0"; then
		die "make $1 failed (see the messages above)"
	fi
}

build_kernel() {
	unpack_and_patch
	configure
	build_target vmlinux
	build_target bzImage
	kmake -s kernelrelease >"$SRC/kernelrelease"
}
# <<< kernel-recipe

# ---------------------------------------------------------------- cache key
KVER=$(dpkg-query -W -f='${Version}' linux-source-6.1)
CC_VERSION=$(gcc --version | head -n1)
KEY=$({
	printf 'linux-source-6.1 %s\n' "$KVER"
	printf 'compiler %s\n' "$CC_VERSION"
	for f in kernel.patch guest.config; do
		printf '== %s\n' "$f"
		cat "$HERE/$f"
	done
	printf '== recipe\n'
	sed -n '/^# >>> kernel-recipe$/,/^# <<< kernel-recipe$/p' "$HERE/build.sh"
} | sha256sum | cut -c1-16)
CDIR=$CACHE_ROOT/linux-$KEY
SRC=$CDIR/src

mkdir -p "$CACHE_ROOT" "$OUT"
# One build.sh at a time per cache (tests may start several).
exec 9>"$CACHE_ROOT/linux-build.lock"
if ! flock -n 9; then
	log "waiting for another build.sh run ($CACHE_ROOT/linux-build.lock)"
	flock 9
fi

if [[ -f $CDIR/vmlinux && -f $CDIR/bzImage ]]; then
	log "up to date (key $KEY)"
else
	log "building the kernel: linux-source-6.1 $KVER, $CC_VERSION"
	log "key $KEY, tree $SRC"
	# Kernel trees of other keys are left only by failed or interrupted
	# builds; they are 1.5 GB each.  (Their cached outputs are kept.)
	for stale in "$CACHE_ROOT"/linux-*/src "$CACHE_ROOT"/linux-*/src.tmp; do
		[[ -d $stale && $stale != "$SRC" && $stale != "$SRC.tmp" ]] || continue
		log "removing stale kernel tree $stale"
		rm -rf "$stale"
	done
	mkdir -p "$CDIR"
	avail_kb=$(df -Pk "$CDIR" | awk 'NR == 2 { print $4 }')
	if [[ ! -d $SRC ]] && ((avail_kb < 2 * 1024 * 1024)); then
		die "need about 2 GB free in $CDIR, have $((avail_kb / 1024)) MB (set SANDVMM_CACHE to build elsewhere)"
	fi
	build_kernel
	cp "$SRC/.config" "$CDIR/config"
	cp "$SRC/System.map" "$SRC/kernelrelease" "$CDIR/"
	cp "$SRC/arch/x86/boot/bzImage" "$CDIR/bzImage.tmp"
	mv "$CDIR/bzImage.tmp" "$CDIR/bzImage"
	# vmlinux last: its presence marks a complete cache entry.
	cp "$SRC/vmlinux" "$CDIR/vmlinux.tmp"
	mv "$CDIR/vmlinux.tmp" "$CDIR/vmlinux"
	if [[ ${SANDVMM_KEEP_SRC:-} != 1 ]]; then
		log "removing the kernel tree (SANDVMM_KEEP_SRC=1 keeps it)"
		rm -rf "$SRC"
	fi
	log "kernel built in $(elapsed)"
fi

# ---------------------------------------------------------------- checks
VMLINUX=$CDIR/vmlinux
readelf -h "$VMLINUX" | grep -q 'Machine:.*X86-64' || die "$VMLINUX is not an x86-64 ELF"
# PVH: an ELF note of owner "Xen", type 18 (XEN_ELFNOTE_PHYS32_ENTRY).
readelf -n "$VMLINUX" | grep -qE '^[[:space:]]+Xen[[:space:]]+0x[0-9a-f]+[[:space:]]+.*(0x00000012|PHYS32_ENTRY)' ||
	die "$VMLINUX has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); is CONFIG_PVH set?"
ENTRY=$(readelf -h "$VMLINUX" | awk '/Entry point address/ { print $NF }')
# The PVH entry address is the note's descriptor.
PVH_ENTRY=$(python3 - "$VMLINUX" <<'PY' || true
import struct, sys
data = open(sys.argv[1], "rb").read()
e_phoff, = struct.unpack_from("<Q", data, 0x20)
e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x36)
for i in range(e_phnum):
    p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, e_phoff + i * e_phentsize)
    if p_type != 4:  # PT_NOTE
        continue
    off, end = p_offset, p_offset + p_filesz
    while off + 12 <= end:
        namesz, descsz, ntype = struct.unpack_from("<III", data, off)
        name = data[off + 12:off + 12 + namesz].rstrip(b"\0")
        desc_off = off + 12 + (namesz + 3) // 4 * 4
        if name == b"Xen" and ntype == 18:
            value = int.from_bytes(data[desc_off:desc_off + descsz], "little")
            print(f"{value:#x}")
            sys.exit(0)
        off = desc_off + (descsz + 3) // 4 * 4
PY
)
log "vmlinux: x86-64 ELF, entry $ENTRY, PVH entry ${PVH_ENTRY:-?} (XEN_ELFNOTE_PHYS32_ENTRY)"
BANNER=$(strings "$VMLINUX" | grep '^Linux version ' || true)
log "version: ${BANNER%%$'\n'*}"
read -r text data bss _ < <(size "$VMLINUX" | awk 'NR == 2')
log "size: vmlinux $(stat -c %s "$VMLINUX") bytes (text $text, data $data, bss $bss); bzImage $(stat -c %s "$CDIR/bzImage") bytes"

# ---------------------------------------------------------------- initramfs
# busybox-static from Debian, fetched with `apt-get download` and unpacked in
# the cache (installing the package would replace a host's /bin/busybox).
fetch_busybox() {
	local ver
	ver=$(apt-cache show --no-all-versions busybox-static 2>/dev/null | awk '/^Version:/ { print $2; exit }')
	if [[ -z $ver ]]; then
		log "busybox-static unknown to apt; running apt-get update"
		apt-get -q update </dev/null >/dev/null
		ver=$(apt-cache show --no-all-versions busybox-static | awk '/^Version:/ { print $2; exit }')
		[[ -n $ver ]] || die "apt has no busybox-static package"
	fi
	BUSYBOX_VERSION=$ver
	BUSYBOX=$CACHE_ROOT/busybox-${ver//:/_}/bin/busybox
	[[ -x $BUSYBOX ]] && return 0
	log "downloading busybox-static $ver"
	local tmp
	tmp=$(mktemp -d "$CACHE_ROOT/busybox.XXXXXX")
	(cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "busybox-static=$ver" </dev/null >/dev/null) ||
		die "apt-get download busybox-static=$ver failed"
	dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/root"
	[[ -x $tmp/root/bin/busybox ]] || die "busybox-static $ver has no /bin/busybox"
	rm -rf "${BUSYBOX%/bin/busybox}"
	mv "$tmp/root" "${BUSYBOX%/bin/busybox}"
	rm -rf "$tmp"
}
fetch_busybox

# The archive: the directories, /dev/console (the kernel opens it for init
# before devtmpfs is mounted), busybox with two links, /bin/sh and /sbin/init,
# then rootfs/ as it is in the checkout.  No link per applet: each costs the
# emulated kernel about 25 ms to unpack (270 of them, 6.5 s), and busybox's
# shell runs its applets by name without them.
# Rebuilt every run: it takes about a second.
ROOTFS=$HERE/rootfs
entries=(dir:dev:0755 cdev:dev/console:0600:5:1 dir:proc:0555 dir:sys:0555
	dir:tmp:1777 dir:root:0700 dir:bin:0755 dir:sbin:0755
	file:bin/busybox:0755:"$BUSYBOX" symlink:bin/sh:busybox symlink:sbin/init:../bin/busybox)
while IFS= read -r path; do
	rel=${path#"$ROOTFS"/}
	if [[ -d $path ]]; then
		entries+=("dir:$rel:0755")
	elif [[ -x $path ]]; then
		entries+=("file:$rel:0755:$path")
	else
		entries+=("file:$rel:0644:$path")
	fi
done < <(find "$ROOTFS" -mindepth 1 | sort)
IDIR=$CACHE_ROOT/init
mkdir -p "$IDIR"
python3 "$HERE/mkcpio.py" "$IDIR/initramfs.cpio" "${entries[@]}"
log "initramfs: busybox-static $BUSYBOX_VERSION ($("$BUSYBOX" --list | wc -l) applets), rootfs/; archive $(stat -c %s "$IDIR/initramfs.cpio") bytes"

# ---------------------------------------------------------------- root disk
# The same tree as an ext4 image, made from a staging directory by `mke2fs -d`
# (no root, no loop device).  No /dev/console: without an initramfs the kernel
# opens the console before mounting the disk, and mounts devtmpfs on /dev.
# No metadata checksums: crc32c over every metadata block would run in the
# emulated guest kernel.  Rebuilt every run: it takes about a second.
STAGE=$CACHE_ROOT/rootfs-stage
rm -rf "$STAGE"
mkdir -p "$STAGE"/{dev,proc,sys,tmp,root,bin,sbin}
chmod 0555 "$STAGE/proc" "$STAGE/sys"
chmod 1777 "$STAGE/tmp"
chmod 0700 "$STAGE/root"
cp "$BUSYBOX" "$STAGE/bin/busybox"
ln -s busybox "$STAGE/bin/sh"
ln -s ../bin/busybox "$STAGE/sbin/init"
cp -a "$ROOTFS"/. "$STAGE"/
# The disk step's data generator (tools/sandvmm-fill.c): freestanding, no libc.
gcc -O2 -static -nostdlib -ffreestanding -fno-stack-protector -fno-builtin -no-pie \
	-Wall -Wextra -Werror -o "$STAGE/bin/sandvmm-fill" "$HERE/tools/sandvmm-fill.c"
# Fixed times (with the fixed UUID and hash seed below): the same inputs give the
# same image.
find "$STAGE" -exec touch -h -d @0 {} +
DISK=$CACHE_ROOT/rootfs.ext4
rm -f "$DISK"
E2FSPROGS_FAKE_TIME=0 mke2fs -q -t ext4 -O ^metadata_csum -L sandvmm -U clear \
	-E root_owner=0:0,hash_seed=00000000-0000-0000-0000-000000000000 \
	-d "$STAGE" "$DISK" 64M
log "root disk: $(stat -c %s "$DISK") bytes, ext4 of the same files"

# ---------------------------------------------------------------- install
# Copy only when changed, so unchanged outputs keep their mtime.
install_out() {
	local src=$1 dst=$OUT/$2
	if ! cmp -s "$src" "$dst"; then
		cp "$src" "$dst.tmp"
		mv "$dst.tmp" "$dst"
	fi
}
install_out "$CDIR/vmlinux" vmlinux
install_out "$CDIR/bzImage" bzImage
install_out "$IDIR/initramfs.cpio" initramfs.cpio
install_out "$DISK" rootfs.ext4
rm -f "$OUT/initramfs-init.cpio" # its name before the busybox userspace
log "outputs in $OUT: vmlinux bzImage initramfs.cpio rootfs.ext4 ($(elapsed))"
