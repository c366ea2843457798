"""Command strings the site tasks hand to c.run (MockContext: the string is all there is here;
test_tasks_local.py and test_tasks_ssh.py run the same tasks for real)."""

from __future__ import annotations

import re
import sys

import pytest
from invoke import Config, MockContext, Result
from invoke.exceptions import Exit, UnexpectedExit

from shim.tasks import DEFAULTS, install, ns, preview, site

SHIM = "/srv/s/venv/bin/wsgi-shim"
APPROOT = "/srv/s/www-approot"


class SiteContext(MockContext):
    """A MockContext that fails the way a real Context does: a non-zero result raises
    UnexpectedExit unless the caller passed warn=True."""

    def run(self, command, *args, **kwargs):
        result = super().run(command, *args, **kwargs)
        if not result.ok and not kwargs.get("warn"):
            raise UnexpectedExit(result)
        return result


def context(results: dict | None = None, **shim) -> SiteContext:
    config = Config()
    config.load_collection(ns.configuration())
    config.load_overrides({"shim": {"site": "/srv/s", **shim}})
    runs = dict(results or {})
    runs.setdefault(re.compile(".*"), Result())
    return SiteContext(config=config, run=runs, repeat=True)


PRECHECK = re.compile(r"^test -x .*/bin/wsgi-shim'?$")


def commands(c) -> list[str]:
    """The commands a task ran, without the `test -x .../bin/wsgi-shim` every wsgi-shim task
    runs first (test_a_missing_wsgi_shim_is_found_before_any_command checks that one)."""
    return [call.args[0] for call in c.run.call_args_list if not PRECHECK.match(call.args[0])]


def all_commands(c) -> list[str]:
    return [call.args[0] for call in c.run.call_args_list]


def only_command(c) -> str:
    (command,) = commands(c)
    return command


# --- the collection -----------------------------------------------------------------------


def test_collection_has_every_site_task():
    names = set(ns.task_names)
    assert {"install", "check", "maint", "restart", "status", "logs", "serve", "demo"} <= names


def test_collection_defaults_live_under_shim():
    shim = ns.configuration()["shim"]
    assert shim == DEFAULTS
    assert shim["site"] == "" and shim["venv"] == ""
    assert shim["approot"] == "www-approot"
    for key in ("url", "python_version", "python_prefix", "wheel", "restart_wait"):
        assert key in shim


@pytest.mark.parametrize("name", sorted(ns.task_names))
def test_every_task_explains_itself_and_every_flag(name):
    task = ns[name]
    assert (task.__doc__ or "").strip(), f"{name} has no docstring (its --help text)"
    saved = dict(task.help)  # invoke's get_arguments() pops the help texts it uses
    try:
        arguments = task.get_arguments()
    finally:
        task.help = saved
    missing = [arg.name for arg in arguments if not (arg.help or "").strip()]
    assert not missing, f"{name}: flags without help: {missing}"


# --- site resolution ----------------------------------------------------------------------


def test_no_site_configured_is_a_clear_usage_error():
    c = context(site="")
    with pytest.raises(Exit) as info:
        site.check(c)
    assert info.value.code == 2
    assert "shim.site" in str(info.value.message) and "--site" in str(info.value.message)
    assert commands(c) == []


def test_site_flag_overrides_config_and_venv_follows_it():
    c = context()
    site.check(c, site="/other")
    assert only_command(c) == "/other/venv/bin/wsgi-shim check /other/www-approot"


def test_configured_venv_and_approot_names_are_used():
    c = context(venv="/opt/venvs/s/", approot="app", docroot="public_html")
    site.check(c)
    assert only_command(c) == "/opt/venvs/s/bin/wsgi-shim check /srv/s/app"


def test_home_relative_site_stays_expandable_on_the_remote_side():
    c = context(site="~/my site")
    site.status(c)
    assert only_command(c) == (
        """"$HOME"/'my site/venv/bin/wsgi-shim' status "$HOME"/'my site/www-approot'""")


# --- check / maint / restart / status / logs -----------------------------------------------


def test_check():
    c = context()
    site.check(c)
    assert only_command(c) == f"{SHIM} check {APPROOT}"


def test_check_json():
    c = context()
    site.check(c, json=True)
    assert only_command(c) == f"{SHIM} check {APPROOT} --json"


def test_check_passes_the_sites_url_for_djangos_allowed_hosts():
    c = context(url="https://www.example.org/")
    site.check(c)
    assert only_command(c) == f"{SHIM} check {APPROOT} --url https://www.example.org/"
    c = context()
    site.check(c, url="http://127.0.0.1:8080/")
    assert only_command(c) == f"{SHIM} check {APPROOT} --url http://127.0.0.1:8080/"


def test_check_with_problems_exits_1_with_a_message_not_a_traceback():
    c = context({f"{SHIM} check {APPROOT}": Result(exited=1, stdout="[config-syntax] ...")})
    with pytest.raises(Exit) as info:
        site.check(c)
    assert info.value.code == 1
    assert "problems" in info.value.message


def test_missing_wsgi_shim_says_how_to_get_it():
    c = context({f"{SHIM} maint on {APPROOT}": Result(exited=127)})
    with pytest.raises(Exit) as info:
        site.maint(c, "on")
    assert info.value.code == 127
    assert "inv install" in info.value.message and SHIM in info.value.message


def test_a_missing_wsgi_shim_is_found_before_any_command():
    # Only our message: the shell's raw "No such file or directory" never comes first.
    c = context({f"test -x {SHIM}": Result(exited=1)})
    with pytest.raises(Exit) as info:
        site.maint(c, "on")
    assert info.value.code == 127
    assert f"{SHIM} was not found" in info.value.message and "inv install" in info.value.message
    assert all_commands(c) == [f"test -x {SHIM}"]
    assert c.run.call_args_list[0].kwargs["hide"] is True


def test_every_wsgi_shim_task_checks_for_it_first():
    c = context()
    site.check(c)
    assert all_commands(c) == [f"test -x {SHIM}", f"{SHIM} check {APPROOT}"]


@pytest.mark.parametrize("action", ["on", "off", "status"])
def test_maint(action):
    c = context()
    site.maint(c, action)
    assert only_command(c) == f"{SHIM} maint {action} {APPROOT}"


def test_maint_refuses_other_words():
    c = context()
    with pytest.raises(Exit) as info:
        site.maint(c, "maybe")
    assert info.value.code == 2
    assert commands(c) == []


def test_restart_plain():
    c = context()
    site.restart(c)
    assert only_command(c) == f"{SHIM} restart {APPROOT}"


def test_restart_wait_flag_alone_uses_configured_seconds_and_url():
    c = context(url="https://example.org/app/", restart_wait=45)
    site.restart(c, wait=True)
    assert only_command(c) == f"{SHIM} restart {APPROOT} --wait 45 --url https://example.org/app/"


def test_restart_wait_seconds_and_url_flag():
    c = context()
    site.restart(c, wait="7.5", url="http://127.0.0.1:8080/x?a=1&b=2")
    assert only_command(c) == (
        f"{SHIM} restart {APPROOT} --wait 7.5 --url 'http://127.0.0.1:8080/x?a=1&b=2'")


def test_restart_wait_must_be_seconds():
    with pytest.raises(Exit) as info:
        site.restart(context(), wait="soon")
    assert info.value.code == 2


def test_restart_failure_reports_the_command_and_its_exit_code():
    c = context({f"{SHIM} restart {APPROOT} --wait 30": Result(exited=1)})
    with pytest.raises(Exit) as info:
        site.restart(c, wait=True)
    assert info.value.code == 1
    assert f"{SHIM} restart {APPROOT} --wait 30" in info.value.message


def test_status():
    c = context()
    site.status(c)
    assert only_command(c) == f"{SHIM} status {APPROOT}"


def test_status_with_url_and_json():
    c = context(url="https://example.org/")
    site.status(c, json=True)
    assert only_command(c) == f"{SHIM} status {APPROOT} --url https://example.org/ --json"


def test_status_of_a_site_not_serving_its_app_exits_1_with_a_message():
    c = context({f"{SHIM} status {APPROOT}": Result(exited=1)})
    with pytest.raises(Exit) as info:
        site.status(c)
    assert info.value.code == 1
    assert "not serving its app" in info.value.message


def test_logs_default_and_all_flags():
    c = context()
    site.logs(c)
    site.logs(c, follow=True, errors=True, since="2h", lines="50")
    site.logs(c, id="e-1a2b")
    assert commands(c) == [f"{SHIM} logs {APPROOT}",
                           f"{SHIM} logs {APPROOT} --follow --errors --since 2h -n 50",
                           f"{SHIM} logs {APPROOT} --id e-1a2b"]
    # Locally no pty: a pty only matters to stop a remote --follow.
    assert c.run.call_args_list[1].kwargs.get("pty") is False


# --- preview ------------------------------------------------------------------------------


def test_serve_uses_config_defaults_and_flags():
    c = context()
    preview.serve(c)
    preview.serve(c, host="0.0.0.0", port="9000")
    assert commands(c) == [f"{SHIM} serve {APPROOT} --host 127.0.0.1 --port 8000",
                           f"{SHIM} serve {APPROOT} --host 0.0.0.0 --port 9000"]


def test_demo_runs_locally_with_this_python_and_needs_no_site():
    c = context(site="", port=8123)
    preview.demo(c, dir="/tmp/my demo")
    command = only_command(c)
    assert command.endswith("demo '/tmp/my demo' --host 127.0.0.1 --port 8123")
    assert command.startswith(preview.local_wsgi_shim())
    assert sys.executable.rsplit("/", 2)[0] in preview.local_wsgi_shim() or "wsgi-shim" in command


# --- install --------------------------------------------------------------------------------

PY = "/srv/s/venv/bin/python"
PIP = f"{PY} -m pip install --disable-pip-version-check -q"


@pytest.fixture
def wheel_file(tmp_path) -> str:
    path = tmp_path / "wsgi_shim-0.2.0-py3-none-any.whl"
    path.write_bytes(b"PK")
    return str(path)


def test_install_wheel_into_existing_site(wheel_file):
    c = context()
    install.install(c, wheel=wheel_file)
    wheel = wheel_file
    assert commands(c) == [
        f"test -x {PY}",
        f"{PIP} --force-reinstall --no-deps {wheel} && {PIP} {wheel}",
        f"test -e {APPROOT}",
    ]


def test_install_creates_a_missing_site_with_the_venv_python():
    c = context({f"test -e {APPROOT}": Result(exited=1)}, user="shimsite", group="shimproj",
                app="mysite.wsgi.application")
    install.install(c, source="git+https://example.org/wsgi-shim.git@v0.2.0")
    req = "git+https://example.org/wsgi-shim.git@v0.2.0"
    assert commands(c) == [
        f"test -x {PY}",
        f"{PIP} --force-reinstall --no-deps {req} && {PIP} {req}",
        f"test -e {APPROOT}",
        (f"{SHIM} install /srv/s -a www-approot -d www-docroot --python {PY} "
        "--user shimsite --group shimproj --app mysite.wsgi.application"),
    ]


def test_install_without_venv_says_to_make_one(wheel_file):
    c = context({f"test -x {PY}": Result(exited=1)})
    with pytest.raises(Exit) as info:
        install.install(c, wheel=wheel_file)
    assert info.value.code == 1
    assert "inv venv" in info.value.message
    assert commands(c) == [f"test -x {PY}"]


def test_install_pip_failure_is_a_clear_exit(wheel_file):
    wheel = wheel_file
    c = context({f"{PIP} --force-reinstall --no-deps {wheel} && {PIP} {wheel}": Result(exited=1)})
    with pytest.raises(Exit) as info:
        install.install(c, wheel=wheel)
    assert info.value.code == 1
    assert "installing wsgi-shim" in info.value.message


def test_install_of_a_missing_wheel_file_says_so(tmp_path):
    c = context()
    with pytest.raises(Exit) as info:
        install.install(c, wheel=str(tmp_path / "nope.whl"))
    assert info.value.code == 1 and "No such wheel file here" in info.value.message
    assert not any("pip" in command for command in commands(c))


def test_install_from_tasks_installed_as_a_wheel_never_falls_back_to_pypi(tmp_path, monkeypatch):
    # Tasks imported from site-packages: no checkout to build from, and PyPI's wsgi-shim is
    # 0.1.0, so the task names what to pass instead of trying wsgi-shim==<version>.
    monkeypatch.setattr(install, "CHECKOUT", tmp_path)
    c = context()
    with pytest.raises(Exit) as info:
        install.install(c)
    assert info.value.code == 2
    assert "--wheel FILE" in info.value.message and "0.1.0" in info.value.message
    assert not any("pip" in command for command in commands(c))


def test_install_builds_the_wheel_from_the_checkout_it_runs_from(tmp_path, monkeypatch):
    built = tmp_path / "wsgi_shim-0.2.0-py3-none-any.whl"
    built.write_bytes(b"PK")
    monkeypatch.setattr(install, "build_wheel", lambda c, source: built)
    assert install.is_checkout(install.CHECKOUT)
    c = context()
    install.install(c)
    assert f"{PIP} --force-reinstall --no-deps {built} && {PIP} {built}" in commands(c)


def test_every_task_is_declared_with_shim_task():
    # @shim_task validates the config and checks the host key before the body: a task declared
    # with plain @task would skip both (test_host_keys.py runs each one against a real sshd).
    from shim.tasks.flags import ShimTask

    plain = [name for name in ns.task_names if not isinstance(ns[name], ShimTask)]
    assert plain == []


def test_a_misspelt_key_stops_the_task_before_any_command():
    c = context(stie="/srv/x")
    with pytest.raises(Exit) as info:
        site.check(c)
    assert info.value.code == 2
    assert "unknown key shim.stie" in info.value.message and "did you mean shim.site?" in info.value.message
    assert all_commands(c) == []
