"""Issue 19 item 7: a --url (or config shim.url) with user:password@ is refused by the tasks
before any command is built: under `fab -H` it would be on the server's command line, visible in
`ps`. Run as `inv` subprocesses in a site repository of one's own, against a real site."""

from __future__ import annotations

import pytest

from tests.support.sites import VENV, make_site
from tests.tasks.conftest import command_env, inv

pytestmark = pytest.mark.realserver

PASSWORD = "Task-url-pw-Qm72"
URL = f"https://bob:{PASSWORD}@127.0.0.1:9/"


def test_tasks_refuse_a_url_with_credentials_and_run_nothing(own_repo):
    site = make_site("inv-url-creds")
    before = site.restart_txt.stat().st_mtime
    base = {"INVOKE_SHIM_SITE": str(site.site), "INVOKE_SHIM_VENV": str(VENV)}
    runs = [(["status", "--url", URL], base), (["restart", "--wait", "1", "--url", URL], base),
            (["restart", "--wait", "1"], {**base, "INVOKE_SHIM_URL": URL}),
            (["deploy", "--wait", "1", "--url", URL], base), (["rollback", "--wait", "1", "--url", URL], base)]
    for args, env in runs:
        out = inv(*args, cwd=own_repo, env=command_env(**env))
        text = out.stdout + out.stderr
        assert out.returncode == 2, (args, text)
        assert "user name or password" in text and "refused" in text, text
        assert PASSWORD not in text and "Traceback" not in text, text
    assert site.restart_txt.stat().st_mtime == before  # nothing was run


def test_fab_refuses_it_before_anything_runs_on_the_server(sshd, own_repo):
    from tests.tasks.test_tasks_ssh import fab

    site = make_site("fab-url-creds")
    before = site.restart_txt.stat().st_mtime
    for args in (["status", "--url", URL], ["restart", "--wait", "1", "--url", URL]):
        out = fab(sshd, own_repo, *args, "--site", str(site.site))
        text = out.stdout + out.stderr
        assert out.returncode == 2 and "refused" in text and PASSWORD not in text, text
    assert site.restart_txt.stat().st_mtime == before
