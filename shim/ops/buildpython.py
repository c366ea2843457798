"""Build CPython from source into a prefix, and make a site venv from it, as shell scripts.

The `build-python` and `venv` tasks (shim/tasks/python.py) are thin: they call the functions
here and hand the resulting POSIX sh script to ``c.run``. So the same script runs on this
machine under `inv` and on the access host under `fab -H host`, where nothing but a plain
shell is available: sh, curl or wget or python3 (download), sha256sum (or shasum / openssl /
python3), tar, make and a C compiler. Nothing here imports invoke, and nothing here is imported
by get_app().

The scripts resolve relative paths against the remote shell's working directory (the home
directory over SSH) and expand a leading ``~/``, because the path must mean the same thing on
the host that runs the script, not on the machine that generated it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

# sha256 of python.org's Python-X.Y.Z.tgz. Only digests that were checked against a real copy
# of the tarball belong here: a wrong entry would make build-python refuse a genuine source,
# a missing one only makes the user pass --sha256.
KNOWN_SHA256: dict[str, str] = {
    # Checked: byte-identical to Debian bookworm's python3.11_3.11.2.orig.tar.gz
    # (md5 f6b5226ccba5ae1ca9376aaba0b0f673).
    "3.11.2": "2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849",
}

# Modules the smoke test imports, the Debian/Ubuntu package whose headers CPython's build needs
# for each, and why a site cares. Required ones make the build count as not working.
REQUIRED_MODULES: dict[str, tuple[str, str]] = {
    "ssl": ("libssl-dev", "HTTPS, pip"),
    "sqlite3": ("libsqlite3-dev", "Django's default database, many apps"),
    "ctypes": ("libffi-dev", "cffi/cryptography and other compiled packages"),
    "zlib": ("zlib1g-dev", "pip and ensurepip (wheels are zip files)"),
}
OPTIONAL_MODULES: dict[str, tuple[str, str]] = {
    "bz2": ("libbz2-dev", ".bz2 archives"),
    "lzma": ("liblzma-dev", ".xz archives"),
    "readline": ("libreadline-dev", "line editing in the interactive prompt"),
}

# Passenger's Python loader before 6.0.19 imports `imp`, which Python 3.12 removed.
PASSENGER_FIXED = "6.0.19"

PYTHON_ORG = "https://www.python.org/ftp/python/{version}/Python-{version}.tgz"

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


def parse_version(version: str) -> tuple[int, int, int]:
    """(major, minor, micro) of an X.Y.Z release; ValueError for anything else."""
    m = _VERSION_RE.match(version.strip())
    if not m:
        raise ValueError(f"Python version must look like 3.11.2, not {version!r}")
    return int(m[1]), int(m[2]), int(m[3])


def source_url(version: str) -> str:
    return PYTHON_ORG.format(version=version)


def expected_sha256(version: str, override: str = "") -> str:
    """The digest the source must have: --sha256 if given, else the table's, else ""."""
    if override:
        if not _SHA256_RE.match(override.strip()):
            raise ValueError(f"--sha256 must be 64 hex digits, not {override!r}")
        return override.strip().lower()
    return KNOWN_SHA256.get(version, "")


def default_prefix(site: str, version: str) -> str:
    """Where a site's own Python goes unless shim.python_prefix says otherwise: beside the
    venv, outside the app root, one directory per version so an upgrade never breaks a venv."""
    return f"{site.rstrip('/')}/python-{version}"


def python_in_prefix(prefix: str, version: str) -> str:
    major, minor, _ = parse_version(version)
    return f"{prefix.rstrip('/')}/bin/python{major}.{minor}"


@dataclass(frozen=True)
class BuildRequest:
    version: str
    prefix: str
    source: str = ""          # URL or file on the target host; "" = python.org
    sha256: str = ""          # --sha256 override
    jobs: int = 0             # 0 = the host's CPU count, at most 4 (it is a shared host)
    optimize: bool = False    # PGO + LTO: much slower build, ~10-20% faster Python
    force: bool = False       # rebuild even if the prefix already holds a working build
    workdir: str = ""         # download cache, build tree, log; "" = ~/.cache/wsgi-shim/build-python
    passenger_version: str = ""  # used when the host has no passenger-config


def _assign(name: str, value: object) -> str:
    return f"{name}={shlex.quote(str(value))}"


def _smoke_test_code() -> str:
    """Python run by the built interpreter: imports each module, tries a venv, reports.

    argv[1] == "quiet": no output, exit status only (the idempotence check).
    Exit 0 when every required module works, 3 otherwise.
    """
    return f"""\
import importlib, os, subprocess, sys, tempfile
quiet = sys.argv[1:] == ["quiet"]
required = {REQUIRED_MODULES!r}
optional = {OPTIONAL_MODULES!r}
def try_import(name):
    try:
        importlib.import_module(name)
        return ""
    except Exception as exc:
        return f"{{type(exc).__name__}}: {{exc}}"
def try_venv():
    try:
        import ensurepip, venv
    except Exception as exc:
        return f"{{type(exc).__name__}}: {{exc}}"
    with tempfile.TemporaryDirectory() as tmp:
        env = os.path.join(tmp, "v")
        r = subprocess.run([sys.executable, "-m", "venv", "--without-pip", env],
                           capture_output=True, text=True)
        if r.returncode:
            return ((r.stderr or r.stdout).strip().splitlines() or ["venv failed"])[-1]
        r = subprocess.run([os.path.join(env, "bin", "python"), "-c", "import sys"],
                           capture_output=True, text=True)
        if r.returncode:
            return "the new venv's python does not run: " + r.stderr.strip()
    return ""
missing_required, missing_optional = [], []
results = [(name, try_import(name), pkg, use, True) for name, (pkg, use) in required.items()]
results.append(("venv", try_venv(), "", "creating the site venv", True))
results += [(name, try_import(name), pkg, use, False) for name, (pkg, use) in optional.items()]
for name, error, pkg, use, needed in results:
    if error:
        (missing_required if needed else missing_optional).append((name, pkg))
    if quiet:
        continue
    if not error:
        print(f"    ok       {{name}}")
    else:
        what = "MISSING " if needed else "missing "
        hint = f" -- needs {{pkg}}" if pkg else ""
        print(f"    {{what}} {{name}}{{hint}} ({{use}}): {{error}}")
if not quiet and (missing_required or missing_optional):
    pkgs = sorted({{pkg for name, pkg in missing_required + missing_optional if pkg}})
    if pkgs:
        print("    Debian/Ubuntu packages with the headers these need: " + " ".join(pkgs))
        print("    (sudo apt-get install " + " ".join(pkgs) + "; on shared hosting ask the admins),")
        print("    then run build-python again: an incomplete build is rebuilt.")
sys.exit(3 if missing_required else 0)
"""


_COMMON = r"""
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
    case $1 in
        "~") printf '%s' "$HOME" ;;
        "~/"*) printf '%s/%s' "$HOME" "${1#"~/"}" ;;
        /*) printf '%s' "$1" ;;
        *) printf '%s/%s' "$PWD" "$1" ;;
    esac
}
"""

_BUILD = r"""
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

# older A B: true when version A < version B (numeric, dotted).
older() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        na = split(a, x, "."); nb = split(b, y, ".")
        for (i = 1; i <= 3; i++) { if (x[i] + 0 < y[i] + 0) exit 0; if (x[i] + 0 > y[i] + 0) exit 1 }
        exit 1 }'
}

built_version() {
    "$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null
}

# --- Passenger: its loader before 6.0.19 cannot run Python 3.12+ ----------------------------
if [ "$needs_new_passenger" = 1 ]; then
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
    if [ -z "$pv" ]; then
        say "note: Python $version needs Passenger $passenger_fixed or newer; this host's Passenger" \
            "version is unknown (no passenger-config). Set shim.passenger_version to be warned."
    elif older "$pv" "$passenger_fixed"; then
        say "WARNING: Python $version needs Passenger $passenger_fixed or newer, but this site's" \
            "Passenger is $pv ($pv_from): its loader imports the 'imp' module that Python 3.12" \
            "removed, so the site would fail to start. Build a 3.11 release instead" \
            "(--version 3.11.2) or ask the admins to upgrade Passenger."
    fi
fi

# --- idempotence: a working build of this version is left alone -----------------------------
if [ "$force" != 1 ] && [ -x "$py" ]; then
    have=$(built_version)
    if [ "$have" = "$version" ] && "$py" -c "$smoke_py" quiet >/dev/null 2>&1; then
        say "Python $version is already built in $prefix and passes the smoke test" \
            "(ssl, sqlite3, ctypes, zlib, venv); nothing to do ($(elapsed)). --force rebuilds it."
        say "python: $py"
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
        if command -v curl >/dev/null 2>&1; then
            hint="check the URL and this host's network access" run download \
                curl -fsSL --retry 2 -o "$tarball.part" "$url"
        elif command -v wget >/dev/null 2>&1; then
            hint="check the URL and this host's network access" run download \
                wget -q -O "$tarball.part" "$url"
        elif command -v python3 >/dev/null 2>&1; then
            hint="check the URL and this host's network access" run download \
                python3 -c 'import shutil, sys, urllib.request
with urllib.request.urlopen(sys.argv[1]) as r, open(sys.argv[2], "wb") as f:
    shutil.copyfileobj(r, f)' "$url" "$tarball.part"
        else
            die "no download tool (curl, wget or python3) on this host: copy the tarball" \
                "there and pass --source FILE"
        fi
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
say "done in $(elapsed): Python $version in $prefix"
say "python: $py"
say "build log: $log"
"""


def build_script(req: BuildRequest, heartbeat: int = 30) -> str:
    """The sh script that downloads (or takes), verifies, builds, installs and tests CPython.

    Exit status: 0 built or already there, 1 a step failed, 2 refused (no or wrong sha256),
    3 built but required modules are missing.
    """
    major, minor, _ = parse_version(req.version)
    if not req.prefix:
        raise ValueError("a prefix is needed")
    settings = [
        "#!/bin/sh",
        "# generated by wsgi-shim (shim/buildpython.py): build-python",
        _assign("version", req.version),
        _assign("prefix", req.prefix),
        _assign("source", req.source),
        _assign("expected", expected_sha256(req.version, req.sha256)),
        _assign("jobs", int(req.jobs)),
        _assign("optimize", int(req.optimize)),
        _assign("force", int(req.force)),
        _assign("workdir", req.workdir),
        _assign("passenger_version", req.passenger_version),
        _assign("passenger_fixed", PASSENGER_FIXED),
        _assign("needs_new_passenger", int((major, minor) >= (3, 12))),
        f'heartbeat="${{WSGI_SHIM_HEARTBEAT:-{int(heartbeat)}}}"',
        _assign("smoke_py", _smoke_test_code()),
    ]
    return "\n".join(settings) + _COMMON + _BUILD


@dataclass(frozen=True)
class VenvRequest:
    venv: str                 # where the venv goes
    approot: str              # the site's app root: the venv must not be inside it
    python: str               # interpreter to build it from (absolute, or ~/...)
    upgrade_pip: bool = True
    force: bool = False       # recreate a venv made from another Python


_VENV = r"""
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
        if [ "$action" = recreate ]; then
            say "recreating $venv from $python (--force)"
            out=$("$python" -m venv --clear "$venv" 2>&1)
        else
            say "creating $venv from $python"
            out=$("$python" -m venv "$venv" 2>&1)
        fi
        if [ $? -ne 0 ]; then
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
"""


def venv_script(req: VenvRequest) -> str:
    """The sh script that creates (or checks) the site venv. Exit 0 ok, 1 failed, 2 refused."""
    settings = [
        "#!/bin/sh",
        "# generated by wsgi-shim (shim/buildpython.py): venv",
        _assign("venv", req.venv.rstrip("/") or "/"),
        _assign("approot", req.approot.rstrip("/") or "/"),
        _assign("python", req.python),
        _assign("upgrade_pip", int(req.upgrade_pip)),
        _assign("force", int(req.force)),
    ]
    return "\n".join(settings) + _COMMON + _VENV
