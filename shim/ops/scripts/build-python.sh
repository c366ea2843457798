#!/bin/sh
# build-python: download (or take) CPython's source, verify its sha256, configure, make,
# make install and smoke-test it. Joined after common.sh and the settings buildpython.py
# writes (version, prefix, source, expected, jobs, optimize, force, workdir, heartbeat, progress,
# smoke_py, and common.sh's passenger_version, passenger_fixed, python_without_imp, imp_compat,
# imp_py).
# Exit status: 0 built or already there, 1 a step failed, 2 refused, 3 required modules missing.
# The settings are assigned in that header; $me is used by common.sh.
# shellcheck disable=SC2154,SC2034
me=build-python
steps=7
n=0
step() { n=$((n + 1)); say "[$n/$steps] $* ($(elapsed) elapsed)"; }
short=${version%.*}
prefix=$(abspath "$prefix")
[ -n "$workdir" ] || workdir="${XDG_CACHE_HOME:-$HOME/.cache}/wsgi-shim/build-python"
workdir=$(abspath "$workdir")
py="$prefix/bin/python$short"
log="$workdir/python-$version.log"
tree="$workdir/python-$version-build"
pid=""
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; fi; say "interrupted"; exit 130' INT TERM

fail() {  # fail STEP CODE [HINT]
    say "FAILED: $1 (exit $2) after $(elapsed)"
    if [ -s "$log" ]; then
        say "last 40 lines of the build log:"
        tail -n 40 "$log" | sed 's/^/    | /'
    fi
    say "full build log: $log"
    if [ -d "$tree" ]; then say "build tree kept for a look: $tree (the next run removes it)"; fi
    if [ -n "${3:-}" ]; then say "hint: $3"; fi
    exit 1
}

# run STEP CMD...: output to the log; a line every $heartbeat s so a long make shows life.
run() {
    label=$1
    shift
    printf '\n==== %s: %s\n' "$label" "$*" >>"$log"
    "$@" >>"$log" 2>&1 </dev/null &
    pid=$!
    last=$(date +%s)
    while kill -0 "$pid" 2>/dev/null; do
        sleep 0.2 2>/dev/null || sleep 1
        now=$(date +%s)
        if [ $((now - last)) -ge "$heartbeat" ]; then
            say "    ... $label still running ($(elapsed) elapsed)"
            last=$now
        fi
    done
    wait "$pid"
    rc=$?
    pid=""
    if [ "$rc" -ne 0 ]; then fail "$label" "$rc" "${hint:-}"; fi
}

# download CMD...: run the downloader (it writes $tarball.part), showing bytes and rate every
# $progress seconds while it runs and once at the end: a 26 MB download is not a silent minute.
download() {
    printf '\n==== download: %s\n' "$*" >>"$log"
    "$@" >>"$log" 2>&1 </dev/null &
    pid=$!
    t0=$(date +%s)
    last=$t0
    while kill -0 "$pid" 2>/dev/null; do
        sleep 0.2 2>/dev/null || sleep 1
        now=$(date +%s)
        if [ $((now - last)) -ge "$progress" ]; then
            got=$(wc -c <"$tarball.part" 2>/dev/null || echo 0)
            say "    ... $(human "$got") so far ($(human $((got / (now - t0 > 0 ? now - t0 : 1))))/s)"
            last=$now
        fi
    done
    wait "$pid"
    rc=$?
    pid=""
    if [ "$rc" -ne 0 ]; then fail download "$rc" "$hint"; fi
    got=$(wc -c <"$tarball.part" 2>/dev/null || echo 0)
    secs=$(( $(date +%s) - t0 ))
    [ "$secs" -gt 0 ] || secs=1
    say "    downloaded $(human "$got") in ${secs}s ($(human $((got / secs)))/s)"
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | awk '{print $1}'
    elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | awk '{print $1}'
    elif command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 "$1" | awk '{print $NF}'
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import hashlib, sys
print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"
    else die "no sha256 tool on this host (sha256sum, shasum, openssl or python3)"
    fi
}

built_version() {
    "$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null
}

# --- Passenger before 6.0.19 imports imp, which Python 3.12 removed: our module for it ---------
imp_plan "$version"
add_imp() {
    if [ "$imp_install" = 1 ]; then imp_place "$py" "$prefix/lib/python$short"; fi
}

# --- idempotence: a working build of this version is left alone -----------------------------
if [ "$force" != 1 ] && [ -x "$py" ]; then
    have=$(built_version)
    if [ "$have" = "$version" ] && "$py" -c "$smoke_py" quiet >/dev/null 2>&1; then
        say "Python $version is already built in $prefix and passes the smoke test" \
            "(ssl, sqlite3, ctypes, zlib, venv); nothing to do ($(elapsed)). --force rebuilds it."
        add_imp
        say "python: $py"
        say "next: the site's venv from it: inv venv (fab -H HOST venv over SSH), or $py -m venv SITE/venv"
        exit 0
    elif [ "$have" = "$version" ]; then
        say "Python $version in $prefix fails the smoke test: rebuilding it"
    elif [ -n "$have" ]; then
        say "$py is Python $have, not $version: building $version over it"
    fi
fi

# --- a source we can verify -------------------------------------------------------------------
case $source in
    "") url="https://www.python.org/ftp/python/$version/Python-$version.tgz" ;;
    *://*) url=$source ;;
    *) url="" ;;
esac
if [ -z "$expected" ]; then
    say "error: no known sha256 for Python $version, so the source cannot be verified."
    say "  Look the checksum up on python.org (the release page for $version, or verify the"
    say "  tarball's signature) and pass it: build-python --version $version --sha256 HEX"
    if [ -z "$url" ] && [ -f "$(abspath "$source")" ]; then
        say "  (the sha256 of $source is $(sha256_of "$(abspath "$source")"); compare it with"
        say "  the published one before passing it)"
    fi
    exit 2
fi

# --- tools -----------------------------------------------------------------------------------
cc=""
for c in "${CC:-}" cc gcc clang; do
    if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1; then cc=$c; break; fi
done
[ -n "$cc" ] || die "no C compiler (cc, gcc or clang) on this host's PATH. Debian/Ubuntu:" \
    "sudo apt-get install build-essential (on shared hosting, ask the admins)."
for tool in make tar; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not on this host's PATH; it is needed to build Python."
done
if [ "$jobs" -le 0 ] 2>/dev/null; then
    jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null || echo 2)
    [ "$jobs" -le 4 ] || jobs=4  # a shared host: leave cores to the others
fi

mkdir -p "$workdir" || die "cannot create the work directory $workdir (--workdir DIR)"
: >"$log" || die "cannot write the build log $log"
say "building Python $version into $prefix with $jobs jobs; log: $log"

# --- 1. source -------------------------------------------------------------------------------
if [ -n "$url" ]; then
    name=${url##*/}
    name=${name%%\?*}
    [ -n "$name" ] || name="Python-$version.tgz"
    tarball="$workdir/$name"
    if [ -f "$tarball" ] && [ "$(sha256_of "$tarball")" = "$expected" ]; then
        step "source: $tarball (downloaded before)"
    else
        step "download $url"
        rm -f "$tarball" "$tarball.part"
        hint="check the URL and this host's network access; without network access, fetch $name elsewhere, copy it to this host and pass --source FILE (its sha256 is checked all the same)"
        if command -v curl >/dev/null 2>&1; then
            download curl -fsSL --retry 2 -o "$tarball.part" "$url"
        elif command -v wget >/dev/null 2>&1; then
            download wget -q -O "$tarball.part" "$url"
        elif command -v python3 >/dev/null 2>&1; then
            download python3 -c 'import shutil, sys, urllib.request
with urllib.request.urlopen(sys.argv[1]) as r, open(sys.argv[2], "wb") as f:
    shutil.copyfileobj(r, f)' "$url" "$tarball.part"
        else
            die "no download tool (curl, wget or python3) on this host: copy the tarball" \
                "there and pass --source FILE"
        fi
        hint=""
        mv "$tarball.part" "$tarball"
    fi
else
    tarball=$(abspath "$source")
    [ -f "$tarball" ] || die "source file $tarball does not exist (--source URL|FILE)"
    step "source: $tarball"
fi

# --- 2. verify -------------------------------------------------------------------------------
step "verify sha256"
actual=$(sha256_of "$tarball")
if [ "$actual" != "$expected" ]; then
    say "error: sha256 mismatch for $tarball"
    say "  expected $expected"
    say "  got      $actual"
    say "  Refusing to build from it: it is not the release it claims to be (or the download is"
    say "  damaged). If you trust this file, pass its published checksum with --sha256 HEX."
    if [ -n "$url" ]; then rm -f "$tarball"; fi
    exit 2
fi

# --- 3. unpack -------------------------------------------------------------------------------
step "unpack"
rm -rf "$tree"
mkdir -p "$tree"
hint="is the source a .tgz / .tar.xz of CPython?" run unpack tar -xf "$tarball" -C "$tree"
set -- "$tree"/*
if [ "$#" -ne 1 ] || [ ! -x "$1/configure" ]; then
    fail unpack 1 "the tarball should hold one directory (Python-$version/) with a configure script"
fi
srcdir=$1
cd "$srcdir" || die "cannot enter $srcdir"

# --- 4-6. configure, make, make install -------------------------------------------------------
set -- --prefix="$prefix"
if [ "$optimize" = 1 ]; then set -- "$@" --enable-optimizations --with-lto; fi
step "configure $*"
hint="configure checks the compiler and libraries: the log's last lines say what it missed" \
    run configure ./configure "$@"
step "make -j$jobs (the long part: minutes)"
hint="a compiler error: the log says where; a killed compiler often means too many --jobs" \
    run make make -j"$jobs"
step "make install"
mkdir -p "$prefix" 2>/dev/null
hint="can you write to $prefix?" run install make install

# --- 7. smoke test ---------------------------------------------------------------------------
step "smoke test $py"
have=$(built_version)
if [ "$have" != "$version" ]; then
    fail "smoke test" 1 "$py reports Python '${have:-nothing}', not $version: is the source the right release?"
fi
"$py" -c "$smoke_py" report
rc=$?
cd "$workdir" && rm -rf "$tree"  # the tree is ~0.5 GB; the tarball and the log stay
if [ "$rc" -ne 0 ]; then
    say "Python $version is installed in $prefix but is missing required modules (above)."
    say "build log: $log"
    exit 3
fi
add_imp
say "done in $(elapsed): Python $version in $prefix"
say "python: $py"
say "build log: $log"
say "next: the site's venv from it: inv venv (fab -H HOST venv over SSH), or $py -m venv SITE/venv"
