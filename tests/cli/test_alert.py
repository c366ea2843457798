"""`wsgi-shim alert` delivering to a real SMTP server on loopback (aiosmtpd), run by the site's
user: what is new since the last alert, never a secret, nothing when nothing is new, one mail
per interval."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import time

import pytest
from aiosmtpd.controller import Controller

from tests.support.sites import load_like_passenger, make_site, update_config, write_file, wsgi_shim

pytestmark = pytest.mark.realserver

SECRET = "hunter2-correct-horse-battery"

APP = """\
import os
def application(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise KeyError("password is " + os.environ["DB_PASSWORD"])
    if environ["PATH_INFO"] == "/div":
        1 / 0
    start_response("200 OK", [])
    return [b"ok"]
"""


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        raw = envelope.content.decode("utf-8", "replace")
        mail = email.message_from_string(raw, policy=email.policy.default)
        assert SECRET not in raw  # in no encoding: neither raw nor decoded
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              f"Subject: {mail['subject']}\n{mail.get_content()}"))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.address = f"127.0.0.1:{port}"
    yield inbox
    controller.stop()


def _site(smtp, name: str, interval: int = 60):
    site = make_site(name, {"app.py": APP})
    update_config(site, {"environment": {"DB_PASSWORD": SECRET},
                         "alerts": {"mail": "owner@example.org", "smtp": smtp.address, "interval": interval,
                                    "sender": "site@example.org"},
                         "jobs": {"import": {"schedule": "@daily", "command": "python -c 'raise SystemExit(2)'"}}})
    return site


def test_alert_mails_what_is_new_without_the_secret(smtp):
    site = _site(smtp, "alert-mail")
    load_like_passenger(site, [{"path": "/div"}, {"path": "/boom"}, {"path": "/boom"}])
    assert wsgi_shim("run", str(site.site), "--job", "import").returncode == 2
    out = wsgi_shim("alert", str(site.site))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Sent the alert mail (3 request errors, 1 failed job) to owner@example.org through" in out.stdout
    assert len(smtp.messages) == 1
    sender, rcpts, mail = smtp.messages[0]
    assert sender == "site@example.org" and rcpts == ["owner@example.org"]
    assert "Subject: [wsgi-shim] site: 3 request errors, 1 failed job" in mail
    assert "2 x KeyError" in mail and "1 x ZeroDivisionError" in mail
    assert "KeyError: 'password is [redacted]'" in mail  # the newest entry in full, masked
    assert "job import: exit 2" in mail
    assert SECRET not in mail and "[redacted]" in mail
    # nothing new: no mail
    out = wsgi_shim("alert", str(site.site))
    assert "Nothing new" in out.stdout and len(smtp.messages) == 1


def test_one_mail_per_interval_and_a_failed_start(smtp):
    site = _site(smtp, "alert-interval")
    load_like_passenger(site, [{"path": "/div"}])
    assert wsgi_shim("alert", str(site.site)).returncode == 0 and len(smtp.messages) == 1
    time.sleep(1.1)
    write_file(site.approot / "app.py", "import nosuchmodule_xyz\n")  # the next start fails
    load_like_passenger(site)
    held = wsgi_shim("alert", str(site.site))
    assert held.returncode == 0 and "held back until" in held.stdout and "1 failed start" in held.stdout
    assert len(smtp.messages) == 1
    dry = wsgi_shim("alert", str(site.site), "--dry-run")
    assert "Failed starts: 1" in dry.stdout and "app-dependency-missing" in dry.stdout
    assert len(smtp.messages) == 1
    # the interval is over (as if the last mail were an hour old): the held-back news goes out
    state = site.approot / "logs/alerts.json"
    data = json.loads(state.read_text())
    data["last_mail"] -= 3600
    state.write_text(json.dumps(data))
    out = wsgi_shim("alert", str(site.site))
    assert "Sent the alert mail (1 failed start)" in out.stdout, out.stdout + out.stderr
    assert len(smtp.messages) == 2 and "nosuchmodule_xyz" in smtp.messages[1][2]


def test_an_unreachable_server_is_one_clear_line_and_nothing_is_lost(smtp):
    site = _site(smtp, "alert-down")
    update_config(site, {"alerts": {"smtp": f"127.0.0.1:{_free_port()}"}})
    load_like_passenger(site, [{"path": "/div"}])
    out = wsgi_shim("alert", str(site.site))
    assert out.returncode == 1 and "cannot send the alert mail through 127.0.0.1:" in out.stderr
    assert "Traceback" not in out.stderr
    update_config(site, {"alerts": {"smtp": smtp.address}})
    assert "Sent the alert mail (1 request error)" in wsgi_shim("alert", str(site.site)).stdout


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback: on purpose
def test_login_from_a_secret_file_never_shows_the_password():
    """An SMTP server that wants a login (on loopback, where it may go unencrypted)."""
    from aiosmtpd.smtp import AuthResult

    seen: list[tuple[str, str]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"smtp-pass-987654321")

    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False, auth_required=True)
    controller.start()
    try:
        inbox.address = f"127.0.0.1:{port}"
        site = _site(inbox, "alert-login")
        login = site.site / "smtp-login"
        write_file(login, "alerts@example.org:smtp-pass-987654321\n", 0o600)
        update_config(site, {"secret_files": {"SMTP_LOGIN": str(login)}, "alerts": {"login": "SMTP_LOGIN"}})
        load_like_passenger(site, [{"path": "/div"}])
        out = wsgi_shim("alert", str(site.site))
        assert out.returncode == 0, out.stdout + out.stderr
        assert seen == [("alerts@example.org", "smtp-pass-987654321")] and len(inbox.messages) == 1
        assert "smtp-pass" not in out.stdout + out.stderr + inbox.messages[0][2]
        # a wrong password: one line, the password not in it, nothing marked as reported
        write_file(login, "alerts@example.org:wrong-password-123456\n", 0o600)
        load_like_passenger(site, [{"path": "/div"}])
        state = site.approot / "logs/alerts.json"
        data = json.loads(state.read_text())
        data["last_mail"] -= 3600
        state.write_text(json.dumps(data))
        out = wsgi_shim("alert", str(site.site))
        assert out.returncode == 1 and "cannot send the alert mail" in out.stderr
        assert "wrong-password" not in out.stdout + out.stderr
    finally:
        controller.stop()


def test_without_smtp_the_mail_goes_through_the_local_sendmail():
    """The default transport: /usr/sbin/sendmail when there is one (Debian's exim4 here, pulled in
    by cron, as on a real host), delivering to the site user's local mailbox."""
    import os
    from pathlib import Path

    from tests.support.accounts import SITE_USER

    sendmail = Path("/usr/sbin/sendmail")
    assert sendmail.exists(), "/usr/sbin/sendmail missing: .ci/run installs cron with its recommended MTA"
    mailbox = Path("/var/mail") / SITE_USER
    before = mailbox.stat().st_size if mailbox.exists() else 0
    site = make_site("alert-sendmail", {"app.py": APP})
    update_config(site, {"environment": {"DB_PASSWORD": SECRET},
                         "alerts": {"mail": f"{SITE_USER}@localhost", "interval": 60}})
    load_like_passenger(site, [{"path": "/div"}])
    out = wsgi_shim("alert", str(site.site))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "sendmail" in out.stdout, out.stdout
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        if mailbox.exists() and mailbox.stat().st_size > before:
            with open(mailbox, "rb") as f:
                f.seek(before)
                text = f.read().decode("utf-8", "replace")
            if "ZeroDivisionError" in text:
                break
        time.sleep(0.5)
    assert "ZeroDivisionError" in text, text[-2000:]
    assert SECRET not in text
    assert os.path.basename(str(site.site)) in text or str(site.site) in text
