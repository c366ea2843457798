"""The build-python and venv scripts are real files shipped as package data, and shellcheck
finds nothing in them: neither in each file nor in the script as it is sent to the host."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shim.ops import buildpython

SCRIPTS = Path(buildpython.__file__).parent / "scripts"


def shellcheck(path: Path) -> subprocess.CompletedProcess:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed (apt-get install shellcheck; see .ci/run)")
    return subprocess.run(["shellcheck", "--shell=sh", "--severity=style", str(path)],
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize("name", ["common.sh", "build-python.sh", "make-venv.sh"])
def test_each_script_file_is_shellcheck_clean(name):
    result = shellcheck(SCRIPTS / name)
    assert result.returncode == 0, result.stdout + result.stderr


ASSEMBLED = {
    "build-python": lambda: buildpython.build_script(buildpython.BuildRequest(
        version="3.12.7", prefix="~/py it's", source="https://example.org/x.tgz",
        sha256="a" * 64, jobs=2, optimize=True, workdir="rel/work", passenger_version="6.0.17")),
    "build-python, defaults": lambda: buildpython.build_script(buildpython.BuildRequest(
        version="3.11.2", prefix="/srv/s/python-3.11.2")),
    "venv": lambda: buildpython.venv_script(buildpython.VenvRequest(
        venv="/srv/s/venv", approot="/srv/s/www-approot", python="python3", force=True)),
}


@pytest.mark.parametrize("what", sorted(ASSEMBLED))
def test_the_script_sent_to_the_host_is_shellcheck_clean(what, tmp_path):
    script = tmp_path / "script.sh"
    script.write_text(ASSEMBLED[what]())
    result = shellcheck(script)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scripts_are_the_files_not_copies():
    script = buildpython.build_script(buildpython.BuildRequest(version="3.11.2", prefix="/p"))
    for name in ("common.sh", "build-python.sh"):
        body = (SCRIPTS / name).read_text().split("\n", 1)[1]  # without the shebang
        assert body in script
    smoke = (SCRIPTS / "smoke-test.py").read_text()
    assert f"smoke_py={buildpython.shlex.quote(smoke)}" in script
    imp = (SCRIPTS / "imp.py").read_text()
    assert f"imp_py={buildpython.shlex.quote(imp)}" in script
    venv = buildpython.venv_script(buildpython.VenvRequest(venv="/v", approot="/a", python="python3"))
    assert f"imp_py={buildpython.shlex.quote(imp)}" in venv and (SCRIPTS / "common.sh").read_text().split(
        "\n", 1)[1] in venv


def test_no_dead_code_left_from_the_strings():
    for name in ("PYTHON_ORG", "source_url", "_BUILD", "_VENV", "_COMMON", "PASSENGER_FIXED"):
        assert not hasattr(buildpython, name), name


@pytest.mark.realserver
def test_an_installed_wheel_ships_the_scripts(tasks_venv):
    # tasks_venv holds this checkout's wheel, installed as a user would: not the source tree.
    code = ("import shim.ops.buildpython as b, pathlib; "
            "assert 'site-packages' in b.__file__, b.__file__; "
            "print(len(b.build_script(b.BuildRequest(version='3.11.2', prefix='/p'))), "
            "*sorted(p.name for p in (pathlib.Path(b.__file__).parent / 'scripts').iterdir() if p.is_file()))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(tasks_venv / "bin/python"), "-c", code], capture_output=True,
                            text=True, check=False, cwd="/", env=env)
    assert result.returncode == 0, result.stderr
    size, *names = result.stdout.split()
    assert int(size) > 5000
    assert names == ["build-python.sh", "common.sh", "imp.py", "make-venv.sh", "smoke-test.py"]


def test_one_place_for_the_passenger_threshold():
    # build-python's warning and `wsgi-shim check` both read shim/ops/versions.py.
    from shim.ops import checking, versions

    shim_dir = Path(buildpython.__file__).parents[1]
    holders = [str(p.relative_to(shim_dir)) for p in shim_dir.rglob("*.py")
               if "(6, 0, 19)" in p.read_text() or '"6.0.19"' in p.read_text()]
    assert holders == ["ops/versions.py"]
    script = buildpython.build_script(buildpython.BuildRequest(version="3.12.7", prefix="/p"))
    assert "passenger_fixed=6.0.19" in script and "python_without_imp=3.12" in script
    venv = buildpython.venv_script(buildpython.VenvRequest(venv="/v", approot="/a", python="python3"))
    assert "passenger_fixed=6.0.19" in venv and "python_without_imp=3.12" in venv
    below = tuple(versions.PASSENGER_IMP_FIXED[:2]) + (versions.PASSENGER_IMP_FIXED[2] - 1,)
    assert [p.code for p in checking.python_passenger_problems((3, 12, 7), below, "x")] == [
        "imp-missing"]
    assert checking.python_passenger_problems((3, 12, 7), versions.PASSENGER_IMP_FIXED, "x") == []
