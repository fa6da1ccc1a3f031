#!/bin/sh
# Builds the wheelhouse for hosts that cannot reach PyPI: every wheel the release
# needs, made by the hosts' own Python in a root filesystem of their Debian release.
# pip evaluates requirement markers for the Python running it, not the one named by
# --python-version: Debian 12's 3.11.2 needs async-timeout where a newer 3.11 does
# not, so a wheelhouse made by the controller's Python may not install on the hosts.
#
#   sudo debootstrap --variant=minbase --include=python3-venv bookworm /var/tmp/bookworm \
#     http://deb.debian.org/debian
#   sudo ansible/wheelhouse.sh /var/tmp/bookworm dist/patchwork-0.1.0-py3-none-any.whl ansible/wheelhouse
#
# Needs root (chroot) and the network (PyPI); the root filesystem is left as it was.
set -eu
if [ $# -ne 3 ]; then
  echo "usage: $0 ROOT_FILESYSTEM WHEEL OUTPUT_DIRECTORY" >&2
  exit 2
fi
root=$(realpath "$1")
wheel=$(realpath "$2")
output=$(realpath -m "$3")
if [ ! -x "$root/usr/bin/python3" ] || [ ! -d "$root/usr/lib/python3/dist-packages" ]; then
  echo "$root is not a Debian root filesystem with python3 (and python3-venv) installed" >&2
  exit 1
fi

scratch=$(mktemp -d "$root/tmp/wheelhouse.XXXXXX")
inside=${scratch#"$root"}
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$scratch"
  if [ -n "${resolv_saved:-}" ]; then
    cp "$resolv_saved" "$root/etc/resolv.conf"
    rm -f "$resolv_saved"
  fi
}
trap cleanup EXIT
trap "exit 1" INT TERM HUP
resolv_saved=$(mktemp)
cp "$root/etc/resolv.conf" "$resolv_saved" 2>/dev/null || : >"$resolv_saved"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"

cp "$wheel" "$scratch/"
# This machine's certificate authorities (a proxy's among them), not the root filesystem's.
cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$scratch/ca.crt"
in_root() {
  chroot "$root" env -i PATH=/usr/bin:/bin PIP_CERT="$inside/ca.crt" \
    PIP_DISABLE_PIP_VERSION_CHECK=1 ${HTTPS_PROXY:+HTTPS_PROXY="$HTTPS_PROXY"} \
    ${https_proxy:+https_proxy="$https_proxy"} "$@"
}
in_root python3 -m venv "$inside/venv"
# Debian 12's pip (23.0) builds source-only packages with setup.py, which needs `wheel`.
in_root "$inside/venv/bin/pip" install --quiet --upgrade pip
# pip wheel builds a wheel for any dependency published only as source, with the hosts'
# Python: the hosts then install with --no-index and build nothing.
in_root "$inside/venv/bin/pip" wheel --quiet --wheel-dir "$inside/wheels" \
  "$inside/$(basename "$wheel")"
rm -f "$scratch/wheels/$(basename "$wheel")"

mkdir -p "$output"
cp "$scratch"/wheels/*.whl "$output/"
echo "$(ls "$scratch"/wheels/*.whl | wc -l) wheels for $(in_root python3 -c 'import platform; print("Python", platform.python_version())') in $output"
