# shellcheck shell=bash
# Sourced by the README's two commands (tests/run.sh, tests/demo.sh) before they do
# anything, from the repository root:
#   preflight SCRIPT
# checks what they need and prints one line naming the fix for each thing missing,
# then exits 1:
#   root       they install packages, create users and network namespaces. Checked
#              first and alone: what the rest finds changes under sudo (PATH, HOME).
#   /dev/kvm   every test and the demo boot guests.
#   cargo      at least the workspace's rust-version (Cargo.toml), on PATH or in
#              ${CARGO_HOME:-~/.cargo}/bin, where rustup puts it and which sudo's PATH
#              leaves out; found there, it is put on PATH for the caller.
#   Debian 12  the scripts install bookworm's packages (linux-source-6.1 is the guest
#              kernel's source; Debian 13 ships 6.12).
# Uses only bash, sed and sort, so it runs with a bare PATH.

# The "cargo X.Y.Z" version of the cargo at $1, without any -nightly suffix.
preflight_cargo_version() {
	local v
	v=$("$1" --version 2>/dev/null) || return 1
	v=${v#cargo }
	v=${v%% *}
	printf '%s\n' "${v%%-*}"
}

preflight() {
	local script=$1 missing=() want cargo home version os
	if ((EUID != 0)); then
		echo "sandvmm: run as root: sudo $script" >&2
		exit 1
	fi

	[[ -e /dev/kvm ]] ||
		missing+=("/dev/kvm is missing: run on a host with KVM (load kvm_intel or kvm_amd; in a VM, enable nested virtualisation)")

	want=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml)
	[[ -n $want ]] || {
		echo "sandvmm: Cargo.toml has no rust-version; run $script from a sandvmm checkout" >&2
		exit 1
	}
	cargo=$(command -v cargo || true)
	home=${CARGO_HOME:-${HOME:+$HOME/.cargo}}
	if [[ -z $cargo && -n $home && -x $home/bin/cargo ]]; then
		cargo=$home/bin/cargo
		export PATH=$home/bin:$PATH
	fi
	if [[ -z $cargo ]]; then
		missing+=("cargo $want or newer is needed (found none): install it with rustup https://rustup.rs")
	elif ! version=$(preflight_cargo_version "$cargo"); then
		missing+=("cargo $want or newer is needed ($cargo --version fails): reinstall it with rustup https://rustup.rs")
	elif ! printf '%s\n' "$want" "$version" | sort -V -C; then
		missing+=("cargo $want or newer is needed (found $version, $cargo): update it with rustup update, or install rustup https://rustup.rs")
	fi

	# shellcheck source=/dev/null
	os=$(. /etc/os-release 2>/dev/null && printf '%s %s %s' "${ID:-}" "${VERSION_CODENAME:-}" "${PRETTY_NAME:-unknown}") || os="? ? no /etc/os-release"
	case $os in
	"debian bookworm "*) ;;
	*) missing+=("Debian 12 (bookworm) is needed (found ${os#* * }): the scripts install its packages (linux-source-6.1 among them); run them on a bookworm host") ;;
	esac

	((${#missing[@]} == 0)) && return 0
	printf 'sandvmm: %s\n' "${missing[@]}" >&2
	exit 1
}
