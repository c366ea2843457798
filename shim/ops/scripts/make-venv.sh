#!/bin/sh
# venv: create (or check) the site's venv from a Python, write-protected, outside the app root.
# Joined after common.sh and the settings buildpython.py writes (venv, approot, python,
# upgrade_pip, force, and common.sh's passenger_version, passenger_fixed, python_without_imp,
# imp_compat, imp_py). Exit status: 0 ok, 1 failed, 2 refused.
# The settings are assigned in that header; $me is used by common.sh.
# shellcheck disable=SC2154,SC2034
me=venv
venv=$(abspath "$venv")
approot=$(abspath "$approot")
case $python in
    */* | "~"*) python=$(abspath "$python") ;;
    *)  # a bare name: this host's PATH decides
        found=$(command -v "$python") || refuse "no '$python' on this host's PATH; pass --python PATH"
        python=$found ;;
esac

# Physical path, also for a path whose tail does not exist yet: resolve the longest existing
# ancestor with cd -P (symlinks!) and append the rest.
physical() {
    p=$1
    rest=""
    while [ ! -d "$p" ]; do
        rest="/${p##*/}$rest"
        p=${p%/*}
        [ -n "$p" ] || p=/
    done
    base=$(cd -P "$p" && pwd)
    [ "$base" != / ] || base=""
    printf '%s%s' "$base" "$rest"
}
v_phys=$(physical "$venv")
a_phys=$(physical "$approot")
case "$v_phys/" in
    "$a_phys/"*)
        refuse "refusing to create the venv inside the app root: $venv is in $approot." \
            "Files in the app root can be reached by the app and are deployed over, and the shim" \
            "refuses to start from a venv there. Put it beside the app root: set shim.venv" \
            "(or pass --path) to e.g. ${approot%/*}/venv." ;;
esac
case "$a_phys/" in
    "$v_phys/"*) refuse "refusing: the venv $venv would contain the app root $approot." ;;
esac

[ -x "$python" ] || refuse "no Python at $python. Build one with build-python (it installs into" \
    "shim.python_prefix) or pass --python PATH, e.g. --python /usr/bin/python3."
# Compare base installations: a venv made from another venv's python is based on that one's base.
base_py='import os, sys; print("%d.%d.%d" % sys.version_info[:3], os.path.realpath(sys.base_prefix))'
want=$("$python" -c "$base_py") ||
    refuse "$python does not run"

info() {  # "VERSION BASE_PREFIX" of the venv's interpreter, or nothing
    "$venv/bin/python" -c "$base_py" 2>/dev/null
}
protect() {  # no group/other write anywhere in the venv; report what changed
    loose=$(find "$venv" \( -perm -020 -o -perm -002 \) ! -type l -print 2>/dev/null | wc -l | tr -d ' ')
    chmod -R go-w "$venv" || die "cannot chmod $venv"
    if [ "$loose" -gt 0 ]; then say "removed group/other write permission from $loose paths"; fi
}

action=create
if [ -e "$venv" ] || [ -L "$venv" ]; then
    if [ -f "$venv/pyvenv.cfg" ]; then
        have=$(info)
        if [ "$have" = "$want" ]; then
            action=keep
        elif [ "$force" = 1 ]; then
            action=recreate
        elif [ -z "$have" ]; then
            refuse "$venv exists but its python does not run (was its base Python moved or removed?)." \
                "--force recreates it (its installed packages are removed)."
        else
            refuse "$venv was made from Python ${have%% *} (${have#* }), not ${want%% *} (${want#* })." \
                "--force recreates it from $python (its installed packages are removed)."
        fi
    elif [ -d "$venv" ] && [ -z "$(ls -A "$venv")" ]; then
        action=create
    else
        refuse "$venv exists and is not a venv; move it away or choose another --path."
    fi
fi

case $action in
    keep)
        say "$venv already exists, made from Python ${want%% *} ($python); left as it is."
        ;;
    create|recreate)
        parent=${venv%/*}
        mkdir -p "${parent:-/}" || die "cannot create $parent"
        clear=""
        if [ "$action" = recreate ]; then
            say "recreating $venv from $python (--force)"
            clear=--clear
        else
            say "creating $venv from $python"
        fi
        # $clear is empty or one word: unquoted on purpose, so that empty means no argument.
        # shellcheck disable=SC2086
        if ! out=$("$python" -m venv $clear "$venv" 2>&1); then
            printf '%s\n' "$out" | tail -n 20 | sed 's/^/    | /'
            die "'$python -m venv $venv' failed (above). A Python built without zlib or ensurepip" \
                "cannot make venvs with pip: build-python's smoke test says what is missing."
        fi
        if [ "$upgrade_pip" = 1 ]; then
            say "upgrading pip"
            if ! out=$("$venv/bin/python" -m pip install --upgrade --disable-pip-version-check -q pip 2>&1); then
                printf '%s\n' "$out" | tail -n 5 | sed 's/^/    | /'
                say "warning: could not upgrade pip (no network to PyPI?); the venv works with the pip it has."
            fi
        fi
        ;;
esac
# Passenger before 6.0.19 imports imp, which Python 3.12 removed: our module for it, unless the
# base Python (a build-python one) has it already.
imp_plan "${want%% *}"
if [ "$imp_install" = 1 ]; then
    purelib=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))') ||
        die "cannot ask $venv/bin/python where its site-packages are"
    imp_place "$venv/bin/python" "$purelib"
fi
protect

# The runtime also refuses a venv whose parent directories others can write to.
d=$v_phys
while [ -n "$d" ] && [ "$d" != / ]; do
    d=${d%/*}
    [ -n "$d" ] || d=/
    if [ -n "$(find "$d" -prune ! -perm -1000 -perm -002 -print 2>/dev/null)" ]; then
        say "WARNING: $d is writable by everyone: whoever can write there can replace the venv," \
            "and the shim will refuse it. Fix: chmod o-w $d"
    elif [ -n "$(find "$d" -prune ! -perm -1000 -perm -020 -print 2>/dev/null)" ]; then
        say "note: $d is group-writable; the shim accepts that only for a project group, not" \
            "for a default group shared with other users."
    fi
done

pyver=$("$venv/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
pipver=$("$venv/bin/python" -m pip --version 2>/dev/null | awk '{print $2}')
say "ready: $venv"
say "  python: $venv/bin/python (Python $pyver, from $python)"
say "  pip:    ${pipver:-not installed}"
say "  write-protected: no group/other write permission inside it"
say "  config.toml: [passenger] passenger_python = \"$venv/bin/python\" (Apache: PassengerPython)"
