"""Build CPython from source into a prefix, and make a site venv from it, as shell scripts.

The `build-python` and `venv` tasks (shim/tasks/python.py) are thin: they call the functions
here and hand the resulting POSIX sh script to the remote helper's ``c.run``. So the same
script runs on this machine under `inv` and on the access host under `fab -H host`, where
nothing but a plain shell is available: sh, curl or wget or python3 (download), sha256sum (or
shasum / openssl / python3), tar, make and a C compiler. The scripts are real files, shipped as
package data and linted with shellcheck (tests/tasks/test_scripts.py): shim/ops/scripts/
common.sh, build-python.sh, make-venv.sh and smoke-test.py. Here they only get a header of
shell assignments, the settings; one of them carries scripts/imp.py, the compatibility module
that lets Passenger before 6.0.19 load apps on Python 3.12+ (put into the built Python's
standard library or the venv when the host needs it). Nothing here imports invoke, nothing is
imported by get_app().

The scripts resolve relative paths against the remote shell's working directory (the home
directory over SSH) and expand a leading ``~/``, because the path must mean the same thing on
the host that runs the script, not on the machine that generated it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from importlib import resources

from shim.ops import versions

# sha256 of python.org's Python-X.Y.Z.tgz (the default download). A wrong entry would make
# build-python refuse a genuine source, a missing one only makes the user pass --sha256, so
# only published values are here: those of pyenv's python-build definitions
# (github.com/pyenv/pyenv, plugins/python-build/share/python-build/X.Y.Z, the .tgz line), which
# pyenv verifies on every install. 3.11.2 was also checked against a real copy: byte-identical
# to Debian bookworm's python3.11_3.11.2.orig.tar.gz (md5 f6b5226ccba5ae1ca9376aaba0b0f673).
KNOWN_SHA256: dict[str, str] = {
    "3.11.0": "20d77729a64b2a300f08717f7ffcb8da189d02e7c51e6e4a06c0340b619cbf32",
    "3.11.1": "baed518e26b337d4d8105679caf68c5c32630d702614fc174e98cb95c46bdfa4",
    "3.11.2": "2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849",
    "3.11.3": "1a79f3df32265d9e6625f1a0b31c28eb1594df911403d11f3320ee1da1b3e048",
    "3.11.4": "85c37a265e5c9dd9f75b35f954e31fbfc10383162417285e30ad25cc073a0d63",
    "3.11.5": "a12a0a013a30b846c786c010f2c19dd36b7298d888f7c4bd1581d90ce18b5e58",
    "3.11.6": "c049bf317e877cbf9fce8c3af902436774ecef5249a29d10984ca3a37f7f4736",
    "3.11.7": "068c05f82262e57641bd93458dfa883128858f5f4997aad7a36fd25b13b29209",
    "3.11.8": "d3019a613b9e8761d260d9ebe3bd4df63976de30464e5c0189566e1ae3f61889",
    "3.11.9": "e7de3240a8bc2b1e1ba5c81bf943f06861ff494b69fda990ce2722a504c6153d",
    "3.11.10": "92f2faf242681bfa406d53a51e17d42c5373affe23a130cd9697e132ef574706",
    "3.11.11": "883bddee3c92fcb91cf9c09c5343196953cbb9ced826213545849693970868ed",
    "3.11.12": "379c9929a989a9d65a1f5d854e011f4872b142259f4fc0a8c4062d2815ed7fba",
    "3.11.13": "0f1a22f4dfd34595a29cf69ee7ea73b9eff8b1cc89d7ab29b3ab0ec04179dad8",
    "3.11.14": "563d2a1b2a5ba5d5409b5ecd05a0e1bf9b028cf3e6a6f0c87a5dc8dc3f2d9182",
    "3.12.0": "51412956d24a1ef7c97f1cb5f70e185c13e3de1f50d131c0aac6338080687afb",
    "3.12.1": "d01ec6a33bc10009b09c17da95cc2759af5a580a7316b3a446eb4190e13f97b2",
    "3.12.2": "a7c4f6a9dc423d8c328003254ab0c9338b83037bd787d680826a5bf84308116e",
    "3.12.3": "a6b9459f45a6ebbbc1af44f5762623fa355a0c87208ed417628b379d762dddb0",
    "3.12.4": "01b3c1c082196f3b33168d344a9c85fb07bfe0e7ecfe77fee4443420d1ce2ad9",
    "3.12.5": "38dc4e2c261d49c661196066edbfb70fdb16be4a79cc8220c224dfeb5636d405",
    "3.12.6": "85a4c1be906d20e5c5a69f2466b00da769c221d6a684acfd3a514dbf5bf10a66",
    "3.12.7": "73ac8fe780227bf371add8373c3079f42a0dc62deff8d612cd15a618082ab623",
    "3.12.8": "5978435c479a376648cb02854df3b892ace9ed7d32b1fead652712bee9d03a45",
    "3.12.9": "45313e4c5f0e8acdec9580161d565cf5fea578e3eabf25df7cc6355bf4afa1ee",
    "3.12.10": "15d9c623abfd2165fe816ea1fb385d6ed8cf3c664661ab357f1782e3036a6dac",
    "3.12.11": "7b8d59af8216044d2313de8120bfc2cc00a9bd2e542f15795e1d616c51faf3d6",
    "3.12.12": "487c908ddf4097a1b9ba859f25fe46d22ccaabfb335880faac305ac62bffb79b",
    "3.13.0": "12445c7b3db3126c41190bfdc1c8239c39c719404e844babbd015a1bc3fafcd4",
    "3.13.1": "1513925a9f255ef0793dbf2f78bb4533c9f184bdd0ad19763fd7f47a400a7c55",
    "3.13.2": "b8d79530e3b7c96a5cb2d40d431ddb512af4a563e863728d8713039aa50203f9",
    "3.13.3": "988d735a6d33568cbaff1384a65cb22a1fb18a9ecb73d43ef868000193ce23ed",
    "3.13.4": "2666038f1521b7a8ec34bf2997b363778118d6f3979282c93723e872bcd464e0",
    "3.13.5": "e6190f52699b534ee203d9f417bdbca05a92f23e35c19c691a50ed2942835385",
    "3.13.6": "6cf50672cc03928488817d45af24bc927a48f910fe7893d6f388130e59ba98d7",
    "3.13.7": "6c9d80839cfa20024f34d9a6dd31ae2a9cd97ff5e980e969209746037a5153b2",
    "3.13.8": "06108fe96f4089b7d9e0096cb4ca9c81ddcd5135f779a7de94cf59abcaa4b53f",
    "3.13.9": "c4c066af19c98fb7835d473bebd7e23be84f6e9874d47db9e39a68ee5d0ce35c",
}

SCRIPTS = ("common.sh", "build-python.sh", "make-venv.sh", "smoke-test.py", "imp.py")

# Whether build-python and venv add the imp compatibility module (scripts/imp.py) to a Python
# 3.12+: auto = when the host's Passenger is older than versions.PASSENGER_IMP_FIXED or its
# version is unknown (the module is inert on a newer Passenger); yes = always; no = never.
IMP_COMPAT = ("auto", "yes", "no")

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


def script_text(name: str) -> str:
    """One of the shipped scripts (package data shim/ops/scripts/NAME)."""
    return resources.files("shim.ops").joinpath("scripts", name).read_text(encoding="utf-8")


def parse_version(version: str) -> tuple[int, int, int]:
    """(major, minor, micro) of an X.Y.Z release; ValueError for anything else."""
    m = _VERSION_RE.match(version.strip())
    if not m:
        raise ValueError(f"Python version must look like 3.11.2, not {version!r}")
    return int(m[1]), int(m[2]), int(m[3])


def known_releases() -> str:
    """The releases KNOWN_SHA256 covers, as ranges: "3.11.0-3.11.14, 3.12.0-3.12.12, ..."."""
    by_minor: dict[tuple[int, int], list[int]] = {}
    for version in KNOWN_SHA256:
        major, minor, micro = parse_version(version)
        by_minor.setdefault((major, minor), []).append(micro)
    return ", ".join(f"{a}.{b}.{min(m)}-{a}.{b}.{max(m)}" for (a, b), m in sorted(by_minor.items()))


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
    imp_compat: str = "auto"  # IMP_COMPAT


# Seconds between "still running" lines of a long step, and between download progress lines;
# the environment variables let the tests see them without waiting.
HEARTBEAT = 30
PROGRESS = 5


def _assign(name: str, value: object) -> str:
    line = f"{name}={shlex.quote(str(value))}"
    if str(value).startswith("~"):
        # The ~ stays literal here on purpose: abspath (common.sh) expands it on the host.
        return f"# shellcheck disable=SC2088\n{line}"
    return line


def _imp_settings(passenger_version: str, imp_compat: str) -> list[str]:
    """What common.sh's imp_plan/imp_place need: the thresholds, the choice and the module."""
    if imp_compat not in IMP_COMPAT:
        raise ValueError(f"--imp-compat must be auto, yes or no, not {imp_compat!r}")
    return [
        _assign("passenger_version", passenger_version),
        _assign("passenger_fixed", versions.dotted(versions.PASSENGER_IMP_FIXED)),
        _assign("python_without_imp", versions.dotted(versions.PYTHON_WITHOUT_IMP)),
        _assign("imp_compat", imp_compat),
        _assign("imp_py", script_text("imp.py")),
    ]


def _assemble(what: str, settings: list[str], script: str) -> str:
    """One script for `sh -c`: the settings, common.sh, then the script (shebangs dropped)."""
    parts = [script_text("common.sh"), script_text(script)]
    body = "\n".join(part.split("\n", 1)[1] if part.startswith("#!") else part for part in parts)
    head = ["#!/bin/sh", f"# generated by wsgi-shim (shim/ops/buildpython.py): {what}", *settings]
    return "\n".join(head) + "\n" + body


def build_script(req: BuildRequest) -> str:
    """The sh script that downloads (or takes), verifies, builds, installs and tests CPython.

    Exit status: 0 built or already there, 1 a step failed, 2 refused (no or wrong sha256),
    3 built but required modules are missing.
    """
    parse_version(req.version)
    if not req.prefix:
        raise ValueError("a prefix is needed")
    settings = [
        _assign("version", req.version),
        _assign("prefix", req.prefix),
        _assign("source", req.source),
        _assign("expected", expected_sha256(req.version, req.sha256)),
        _assign("jobs", int(req.jobs)),
        _assign("optimize", int(req.optimize)),
        _assign("force", int(req.force)),
        _assign("workdir", req.workdir),
        *_imp_settings(req.passenger_version, req.imp_compat),
        f'heartbeat="${{WSGI_SHIM_HEARTBEAT:-{HEARTBEAT}}}"',
        f'progress="${{WSGI_SHIM_PROGRESS:-{PROGRESS}}}"',
        _assign("smoke_py", script_text("smoke-test.py")),
    ]
    return _assemble("build-python", settings, "build-python.sh")


@dataclass(frozen=True)
class VenvRequest:
    venv: str                 # where the venv goes
    approot: str              # the site's app root: the venv must not be inside it
    python: str               # interpreter to build it from (absolute, or ~/...)
    upgrade_pip: bool = True
    force: bool = False       # recreate a venv made from another Python
    passenger_version: str = ""  # used when the host has no passenger-config
    imp_compat: str = "auto"  # IMP_COMPAT


def venv_script(req: VenvRequest) -> str:
    """The sh script that creates (or checks) the site venv. Exit 0 ok, 1 failed, 2 refused."""
    settings = [
        _assign("venv", req.venv.rstrip("/") or "/"),
        _assign("approot", req.approot.rstrip("/") or "/"),
        _assign("python", req.python),
        _assign("upgrade_pip", int(req.upgrade_pip)),
        _assign("force", int(req.force)),
        *_imp_settings(req.passenger_version, req.imp_compat),
    ]
    return _assemble("venv", settings, "make-venv.sh")
