#!/bin/sh
# Shared by build-python.sh and make-venv.sh. shim/ops/buildpython.py sends each of them to
# the host as one script: the settings it writes (shell assignments), this file, then the
# script itself. They are POSIX sh: a site's access host may have nothing else.
# $me is set by the script this file is joined with.
# shellcheck disable=SC2154
umask 022  # nothing we create may be group/other-writable: the shim refuses such a venv
start=$(date +%s)
say() { printf '%s: %s\n' "$me" "$*"; }
elapsed() {
    s=$(( $(date +%s) - start ))
    if [ "$s" -ge 60 ]; then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}
die() { say "error: $*"; exit 1; }
refuse() { say "error: $*"; exit 2; }
# Absolute path on *this* host: ~ is this host's home, relative is relative to our cwd.
abspath() {
    # shellcheck disable=SC2088  # the literal ~ and ~/ are what this expands
    case $1 in
        "~") printf '%s' "$HOME" ;;
        "~/"*) printf '%s/%s' "$HOME" "${1#"~/"}" ;;
        /*) printf '%s' "$1" ;;
        *) printf '%s/%s' "$PWD" "$1" ;;
    esac
}
# human BYTES: 1.2 MB
human() { awk -v b="$1" 'BEGIN { if (b >= 1048576) printf "%.1f MB", b / 1048576; else printf "%.0f kB", b / 1024 }'; }
