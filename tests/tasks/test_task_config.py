"""The tasks' configuration and command line, as a user meets them (issue 11, point 7):
`inv` and `fab` run as subprocesses from a site repository of one's own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from shim.tasks import ns
from shim.tasks.flags import INT_FLAGS
from tests.tasks.conftest import command_env, inv

TASKS = sorted(ns.task_names)


def fab(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fabric", *args], cwd=cwd,
                          env=command_env(**env), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120, check=False)


def test_a_misspelt_key_is_named_with_a_did_you_mean(own_repo):
    (own_repo / "invoke.yaml").write_text("shim:\n  stie: /srv/mysite\n")
    result = inv("check", cwd=own_repo)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "unknown key shim.stie" in result.stderr
    assert "did you mean shim.site?" in result.stderr
    assert str(own_repo / "invoke.yaml") in result.stderr  # where it is
    assert "No site given" not in result.stderr and "Traceback" not in result.stderr


def test_fab_checks_fabric_yaml_the_same_way(own_repo):
    (own_repo / "fabric.yaml").write_text("shim:\n  site: /srv/x\n  host_key_polcy: strict\n")
    result = fab("check", cwd=own_repo)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "unknown key shim.host_key_polcy" in result.stderr
    assert "did you mean shim.host_key_policy?" in result.stderr


def test_a_dotted_key_is_explained(own_repo):
    (own_repo / "invoke.yaml").write_text("shim.site: /srv/mysite\n")
    result = inv("check", cwd=own_repo)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "'shim.site'" in result.stderr and "does not split dotted keys" in result.stderr
    assert "site: VALUE" in result.stderr


def test_a_misspelt_environment_variable_is_named(own_repo):
    result = inv("check", cwd=own_repo, env=command_env(INVOKE_SHIM_STIE="/srv/mysite"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "INVOKE_SHIM_STIE" in result.stderr and "did you mean INVOKE_SHIM_SITE?" in result.stderr


def test_values_of_the_wrong_type_are_named(own_repo):
    (own_repo / "invoke.yaml").write_text(
        "shim:\n  site: /srv/x\n  port: eighty\n  python_version: 3.12\n"
        "  host_key_policy: yes-please\n  imp_compat: sometimes\n")
    result = inv("check", cwd=own_repo)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "shim.port must be a number, not 'eighty'" in result.stderr
    assert "shim.python_version must be text, not 3.12" in result.stderr
    assert "put it in quotes" in result.stderr
    assert "shim.host_key_policy must be strict, accept-new or off" in result.stderr
    assert "shim.imp_compat must be auto, yes or no, not 'sometimes'" in result.stderr
    assert "4 problem(s)" in result.stderr


@pytest.mark.parametrize("written,said", [
    ("yes", "gets wsgi-shim's imp compatibility module (--imp-compat yes)"),
    ("no", "--imp-compat no leaves out wsgi-shim's compatibility module"),
    ('"auto"', "apps on Python 3.12.1 need wsgi-shim's imp compatibility module there"),
])
def test_imp_compat_yes_and_no_mean_what_they_say_although_yaml_reads_booleans(
        own_repo, tmp_path, written, said):
    # YAML 1.1 reads a bare yes/no as true/false. A fake 3.12.1 tarball with a wrong digest
    # stops build-python right after it has said what it will do about imp.
    from tests.tasks.test_build_python import make_fake_tarball, restricted_path

    (own_repo / "invoke.yaml").write_text(f"shim:\n  passenger_version: 6.0.17\n  imp_compat: {written}\n")
    tarball, _, _ = make_fake_tarball(tmp_path, "3.12.1")
    # No passenger-config on the PATH: shim.passenger_version is what the script goes by.
    env = command_env(PATH=restricted_path(tmp_path, {"passenger-config"}))
    result = inv("build-python", "--version", "3.12.1", "--prefix", str(tmp_path / "p"), "--source",
                 str(tarball), "--sha256", "0" * 64, "--workdir", str(tmp_path / "w"), cwd=own_repo,
                 env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert said in result.stdout and "sha256 mismatch" in result.stdout


def test_a_missing_venv_gives_only_our_message(own_repo, tmp_path):
    site = tmp_path / "no-such-site"
    for name in ("check", "status", "logs", "restart", "releases"):
        result = inv(name, "--site", str(site), cwd=own_repo)
        assert result.returncode == 127, result.stdout + result.stderr
        assert result.stderr.strip() == (
            f"{site}/venv/bin/wsgi-shim was not found: create the venv (inv venv) and install "
            f"the shim into it (inv install), or set shim.venv to the venv that has it (now "
            f"{site}/venv).")
        assert "No such file or directory" not in result.stdout + result.stderr


def test_demo_dash_h_shows_its_help(own_repo):
    result = inv("demo", "-h", cwd=own_repo)
    assert result.returncode == 0, result.stderr
    assert "Create a throwaway demo site" in result.stdout
    assert "needed value" not in result.stdout + result.stderr


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_maint_dash_h_shows_its_help(own_repo, flag):
    """maint's action is positional: invoke hands it "-h" instead of showing the help."""
    result = inv("maint", flag, cwd=own_repo)
    assert result.returncode == 0, result.stderr
    assert "Usage: inv maint on|off|status" in result.stdout and "Example: inv maint on" in result.stdout
    assert "expected on, off or status" not in result.stderr


def help_of(name: str, cwd: Path) -> str:
    result = inv("--help", name, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_task_help_has_an_example_and_typed_flags(own_repo):
    shorts: dict[str, set[str]] = {}
    for name in TASKS:
        text = help_of(name, own_repo)
        assert re.search(rf"Example: inv {name}\b", text), f"{name} --help has no example"
        for short, long in re.findall(r"^\s+(?:-(\w) \S+, |-(?:\w), )?--(?:\[no-\])?([\w-]+)",
                                      text, flags=re.M):
            shorts.setdefault(long, set()).add(short)
        for flag in INT_FLAGS:
            assert f"--{flag}=STRING" not in text, f"{name}: --{flag} is untyped"
        assert not re.search(r"^\s+-h\b", text, flags=re.M), f"{name} hides -h (help)"
    # The same option has the same short flag (or none) in every task.
    for long, seen in shorts.items():
        assert len(seen) == 1, f"--{long} has different short flags: {sorted(seen)}"
    assert shorts["site"] == {"s"} and shorts["keep"] == {"k"} and shorts["port"] == {"p"}


def test_short_flags_are_the_same_in_check_and_deploy(own_repo):
    for name in ("check", "deploy"):
        assert re.search(r"-s STRING, --site=STRING", help_of(name, own_repo)), name
    assert "-k INT, --keep=INT" in help_of("deploy", own_repo)


@pytest.mark.parametrize("args,message", [
    (["deploy", "--keep", "many"], "--keep takes a whole number, not 'many'"),
    (["serve", "--port", "http"], "--port takes a whole number, not 'http'"),
    (["logs", "-n", "ten"], "--lines takes a whole number, not 'ten'"),
])
def test_a_bad_number_is_a_usage_message_not_a_traceback(own_repo, args, message):
    result = inv(*args, "--site", "/srv/x", cwd=own_repo)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
