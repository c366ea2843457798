"""build-python's smoke test, run by the freshly built interpreter (python -c, with this
file's text): import each module a site needs, make a venv, and say which -dev package a
missing one needs.

argv[1] == "quiet": no output, exit status only (the idempotence check).
Exit 0 when every required module works, 3 otherwise. Standard library only, any Python 3.
"""
import importlib
import os
import subprocess
import sys
import tempfile

# Module: (the Debian/Ubuntu package whose headers CPython's build needs, why a site cares).
REQUIRED = {
    "ssl": ("libssl-dev", "HTTPS, pip"),
    "sqlite3": ("libsqlite3-dev", "Django's default database, many apps"),
    "ctypes": ("libffi-dev", "cffi/cryptography and other compiled packages"),
    "zlib": ("zlib1g-dev", "pip and ensurepip (wheels are zip files)"),
}
OPTIONAL = {
    "bz2": ("libbz2-dev", ".bz2 archives"),
    "lzma": ("liblzma-dev", ".xz archives"),
    "readline": ("libreadline-dev", "line editing in the interactive prompt"),
}


def try_import(name):
    try:
        importlib.import_module(name)
        return ""
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def try_venv():
    try:
        import ensurepip  # noqa: F401
        import venv  # noqa: F401
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
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


def main(quiet):
    missing_required, missing_optional = [], []
    results = [(name, try_import(name), pkg, use, True) for name, (pkg, use) in REQUIRED.items()]
    results.append(("venv", try_venv(), "", "creating the site venv", True))
    results += [(name, try_import(name), pkg, use, False) for name, (pkg, use) in OPTIONAL.items()]
    for name, error, pkg, use, needed in results:
        if error:
            (missing_required if needed else missing_optional).append((name, pkg))
        if quiet:
            continue
        if not error:
            print(f"    ok       {name}")
        else:
            what = "MISSING " if needed else "missing "
            hint = f" -- needs {pkg}" if pkg else ""
            print(f"    {what} {name}{hint} ({use}): {error}")
    if not quiet and (missing_required or missing_optional):
        pkgs = sorted({pkg for name, pkg in missing_required + missing_optional if pkg})
        if pkgs:
            print("    Debian/Ubuntu packages with the headers these need: " + " ".join(pkgs))
            print("    (sudo apt-get install " + " ".join(pkgs) + "; on shared hosting ask the admins),")
            print("    then run build-python again: an incomplete build is rebuilt.")
    return 3 if missing_required else 0


sys.exit(main(sys.argv[1:] == ["quiet"]))
