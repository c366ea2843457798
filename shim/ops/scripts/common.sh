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

# --- Passenger's loader and Python 3.12+: the imp compatibility module ----------------------
# Settings used here: passenger_version, passenger_fixed, python_without_imp, imp_compat, imp_py.

# older A B: true when version A < version B (numeric, dotted).
older() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        na = split(a, x, "."); nb = split(b, y, ".")
        for (i = 1; i <= 3; i++) { if (x[i] + 0 < y[i] + 0) exit 0; if (x[i] + 0 > y[i] + 0) exit 1 }
        exit 1 }'
}

# host_passenger: this host's Passenger version into $pv ("" when unknown) and its source into
# $pv_from: passenger-config, else the setting shim.passenger_version.
host_passenger() {
    pv=""
    pv_from=""
    # The remote shell is non-login: its PATH may lack the sbin and local directories.
    for pc in passenger-config /usr/sbin/passenger-config /usr/local/bin/passenger-config; do
        if command -v "$pc" >/dev/null 2>&1; then
            pv=$("$pc" --version 2>/dev/null |
                 awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+\.[0-9]+/) { print $i; exit } }')
            pv_from="passenger-config --version"
            break
        fi
    done
    if [ -z "$pv" ] && [ -n "$passenger_version" ]; then
        pv=$passenger_version
        pv_from="config shim.passenger_version"
    fi
}

# imp_plan VERSION: whether a Python of VERSION gets wsgi-shim's imp module ($imp_install=1,
# $imp_why), and why, said once. Passenger before $passenger_fixed imports imp, which Python
# $python_without_imp removed; with an unknown Passenger it is installed: it is inert on newer ones.
# shellcheck disable=SC2034  # imp_install is read by the script this file is joined with
imp_plan() {
    imp_install=0
    imp_why=""
    if older "$1" "$python_without_imp"; then
        if [ "$imp_compat" = yes ]; then say "Python $1 has its own imp module: nothing to add"; fi
        return 0
    fi
    host_passenger
    case $imp_compat in
        no)
            if [ -n "$pv" ] && older "$pv" "$passenger_fixed"; then
                say "WARNING: Python $1 needs Passenger $passenger_fixed or newer, but this site's" \
                    "Passenger is $pv ($pv_from): its loader imports the 'imp' module that Python" \
                    "$python_without_imp removed, and --imp-compat no leaves out wsgi-shim's" \
                    "compatibility module, so the site would fail to start."
            else
                say "imp compatibility module: not installed (--imp-compat no)"
            fi ;;
        yes)
            imp_install=1
            imp_why="--imp-compat yes"
            say "Python $1 gets wsgi-shim's imp compatibility module (--imp-compat yes)" ;;
        *)
            if [ -z "$pv" ]; then
                imp_install=1
                imp_why="Passenger's version unknown here"
                say "note: this host's Passenger version is unknown (no passenger-config; set" \
                    "shim.passenger_version). Passenger before $passenger_fixed imports 'imp', which" \
                    "Python $python_without_imp removed, so Python $1 gets wsgi-shim's imp" \
                    "compatibility module all the same: it is inert on a newer Passenger" \
                    "(--imp-compat no leaves it out)."
            elif older "$pv" "$passenger_fixed"; then
                imp_install=1
                imp_why="for Passenger $pv"
                say "Passenger $pv ($pv_from) imports 'imp', which Python $python_without_imp removed:" \
                    "apps on Python $1 need wsgi-shim's imp compatibility module there" \
                    "(--imp-compat no leaves it out)."
            else
                say "Passenger $pv ($pv_from) loads apps on Python $1 without 'imp': no compatibility" \
                    "module needed (--imp-compat yes installs it anyway)."
            fi ;;
    esac
}

imp_is_ours() { grep -q '^WSGI_SHIM_IMP_COMPAT = ' "$1" 2>/dev/null; }

# imp_place PYTHON DIR: put imp.py into DIR unless PYTHON already has an imp module: ours
# elsewhere (the base Python's, for a venv) is enough; someone else's is never overwritten.
imp_place() {
    target="$2/imp.py"
    found=$("$1" -c 'import imp, sys; sys.stdout.write(getattr(imp, "__file__", None) or "(built in)")' \
            2>/dev/null) || found=""
    if [ -n "$found" ] && ! imp_is_ours "$found"; then
        say "imp compatibility: $1 already has an 'imp' module that is not wsgi-shim's ($found):" \
            "left alone"
        return 0
    fi
    if [ -n "$found" ] && [ "$found" != "$target" ]; then
        say "imp compatibility: already provided by $found"
        return 0
    fi
    if [ -e "$target" ] && ! imp_is_ours "$target"; then
        say "WARNING: $target is not wsgi-shim's imp compatibility module, and 'import imp' fails:" \
            "not overwritten. Passenger before $passenger_fixed cannot start apps on this Python" \
            "until 'import imp' works: move that file away and run this again."
        return 0
    fi
    [ -d "$2" ] || die "imp compatibility: $2 is not a directory; cannot install $target"
    tmp="$target.wsgi-shim-$$"
    printf '%s' "$imp_py" >"$tmp" || die "imp compatibility: cannot write $tmp"
    chmod 644 "$tmp"
    if [ -f "$target" ] && cmp -s "$tmp" "$target"; then
        rm -f "$tmp"
        say "imp compatibility: $target is up to date"
        return 0
    fi
    done_what=installed
    if [ -f "$target" ]; then done_what=updated; fi
    mv -f "$tmp" "$target" || { rm -f "$tmp"; die "imp compatibility: cannot write $target"; }
    if ! "$1" -c 'import imp; imp.load_source' >/dev/null 2>&1; then
        say "WARNING: installed $target, but $1 still cannot run 'import imp; imp.load_source'"
        return 0
    fi
    say "imp compatibility: $done_what $target ($imp_why): imp.load_source for Passenger's" \
        "loader before $passenger_fixed"
}
