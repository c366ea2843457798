"""Real outside apps for the real-site tests (tests/e2e/test_real_sites.py) and benchmark
(bench/real_site.py): a Wagtail site made by `wagtail start` from the pinned Wagtail, and the
Flask tutorial's flaskr taken from Flask's own source distribution, Radicale (a CalDAV server
that reads its configuration file at its first request), Trac (an issue tracker that opens its
environment at each request and renders its own 500 page), each with only the deployment glue a
user would add (examples/realsites/, shown on docs/real-sites.md); and a visitor with cookies
that fills in their forms over HTTP.

    project = wagtail_project(parent)          # mysite/ as `wagtail start` made it, + local.py
    project = flaskr_project(parent)           # examples/tutorial of Flask's sdist, + wsgi.py
    project = radicale_project(parent, site)   # wsgi.py, radicale.conf, pinned requirements
    project = trac_project(parent)             # Trac's pinned requirements.txt
    me = Visitor("http://127.0.0.1:PORT")      # loopback only
    me.submit("/auth/register", {"username": "alice", "password": "..."})

Everything pip installs comes from PyPI at the versions pinned in examples/realsites/*/
requirements.txt, as the site's (non-root) user, so that user's pip cache serves every later
install: the tools venv a project is made with is built once per pinned file (its hash names
it) and kept under the test directory, like the shared site venv.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import http.cookiejar
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from shim.runtime.layout import Site
from tests.support.accounts import PROJECT_GROUP, ensure_accounts, gid, uid
from tests.support.sites import (BASE, REPO, SYSTEM_PYTHON, _checked, _lock, run_as_site, shared_venv,
                                 update_config, write_file)

REALSITES = REPO / "examples" / "realsites"
WORK = BASE / "realsites"
# The placeholder site directory in examples/realsites/*/config.toml.
EXAMPLE_SITE = "/home/me/mysite"
PYTEST_PIN = "pytest==8.4.2"  # for the Flask tutorial's own tests, in flaskr's tools venv


def pinned(app: str) -> Path:
    return REALSITES / app / "requirements.txt"


def pinned_version(app: str, package: str) -> str:
    for line in pinned(app).read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and name.strip().lower() == package.lower():
            return version.strip()
    raise LookupError(f"{package} is not pinned in {pinned(app)}")


def _site_owned_dir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid(), gid())
    path.chmod(mode)
    return path


def _work() -> Path:
    ensure_accounts()
    BASE.mkdir(mode=0o755, exist_ok=True)
    return _site_owned_dir(WORK)


def tools_venv(app: str, extra: tuple[str, ...] = ()) -> Path:
    """A venv of the site's user with APP's pinned requirements (and EXTRA): the developer's
    own environment, where `wagtail start` comes from. Made once per pinned file's content."""
    digest = hashlib.sha256(pinned(app).read_bytes() + repr(extra).encode()).hexdigest()[:12]
    venv = _work() / f"{app}-tools-{digest}"
    with _lock(f"realsites-{app}"):
        if not (venv / ".ok").exists():
            shutil.rmtree(venv, ignore_errors=True)
            _checked(run_as_site([SYSTEM_PYTHON, "-m", "venv", str(venv)]))
            _checked(run_as_site([str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check",
                                  "-r", str(pinned(app)), *extra], timeout=1200))
            (venv / ".ok").touch()
    return venv


def _chown_tree(top: Path) -> None:
    for root, dirs, files in os.walk(top):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.lchown(name, uid(), gid())


def git_commit(project: Path, message: str) -> None:
    """`git add -A && git commit` as the project's owner (so .gitignore decides what inv deploy packs)."""
    git = ["git", "-C", str(project), "-c", "user.name=Site Owner", "-c", "user.email=owner@example.org",
           "-c", "init.defaultBranch=main"]
    mine = project.stat().st_uid == os.geteuid()

    def run(args: list[str]) -> None:
        _checked(subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL) if mine
                 else run_as_site(args))
    if not (project / ".git").exists():
        run([*git, "init", "-q"])
    run([*git, "add", "-A"])
    run([*git, "commit", "-q", "--allow-empty", "-m", message])


# ---- Wagtail ----------------------------------------------------------------------------------

def wagtail_project(parent: Path, name: str = "mysite") -> Path:
    """PARENT/NAME as `wagtail start NAME PARENT/NAME` made it (the pinned Wagtail, run as the
    site's user), plus the one glue file: NAME/settings/local.py from examples/realsites/wagtail.
    Its requirements.txt is still the one `wagtail start` wrote: see pin_requirements()."""
    venv = tools_venv("wagtail")
    project = _site_owned_dir(parent / name)
    _checked(run_as_site([str(venv / "bin/wagtail"), "start", name, str(project)]))
    local = (REALSITES / "wagtail" / "local.py").read_text()
    write_file(project / name / "settings" / "local.py", local, 0o644)
    return project


def pin_requirements(project: Path, app: str) -> None:
    """The project's requirements.txt becomes the pinned list (what `pip freeze` gave us)."""
    write_file(project / "requirements.txt", pinned(app).read_text(), 0o644)


def example_config(app: str, site: Site) -> dict:
    """examples/realsites/APP/config.toml with the example's site directory replaced by SITE's."""
    text = (REALSITES / app / "config.toml").read_text().replace(EXAMPLE_SITE, str(site.site))
    return tomllib.loads(text)


def configure_wagtail(site: Site) -> None:
    """What the user adds after `inv install`: the secret key file and config.toml's sections
    from examples/realsites/wagtail/config.toml."""
    config = example_config("wagtail", site)
    key_file = Path(config["secret_files"]["DJANGO_SECRET_KEY_FILE"])
    write_file(key_file, secrets.token_urlsafe(50) + "\n", 0o600)
    update_config(site, config)


def own_venv_site(parent: Path, app: str) -> tuple[Site, Path]:
    """SITE/venv from /usr/bin/python3 with this checkout's wsgi-shim, and the site installed by
    its `wsgi-shim install` (maintenance on), as the site's user."""
    shared_venv()  # builds this checkout's wheel
    site = Site(parent / "site")
    venv = site.site / "venv"
    _checked(run_as_site([SYSTEM_PYTHON, "-m", "venv", str(venv)]))
    wheel = next((BASE / "wheels").glob("*.whl"))
    _checked(run_as_site([str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", str(wheel)]))
    _checked(run_as_site([str(venv / "bin/wsgi-shim"), "install", str(site.site), "--group", PROJECT_GROUP,
                          "--app", app, "--python", str(venv / "bin/python")]))
    return site, venv


# ---- a plain Django project ----------------------------------------------------------------------

def django_project(parent: Path, name: str = "mysite") -> Path:
    """PARENT/NAME as `django-admin startproject NAME PARENT/NAME` made it (the pinned Django of
    examples/realsites/django, run by this process: fab's local side), plus the glue docs/django.md
    shows: settings_tail.py at the end of settings.py, the pinned requirements.txt; committed."""
    venv = tools_venv("django")
    project = parent / name
    project.mkdir()
    _checked(subprocess.run([str(venv / "bin/django-admin"), "startproject", name, str(project)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL))
    settings = project / name / "settings.py"
    settings.write_text(settings.read_text() + (REALSITES / "django" / "settings_tail.py").read_text())
    shutil.copy(pinned("django"), project / "requirements.txt")
    git_commit(project, "django-admin startproject, with the production settings from the environment")
    return project


def configure_django(site: Site) -> None:
    """What docs/django.md adds on the host: the secret key file and config.toml's sections."""
    config = example_config("django", site)
    write_file(Path(config["secret_files"]["DJANGO_SECRET_KEY_FILE"]), secrets.token_urlsafe(50) + "\n", 0o600)
    update_config(site, config)


# ---- flaskr -----------------------------------------------------------------------------------

def flask_sdist() -> Path:
    """Flask's source distribution at the pinned version (pip download, once per test directory)."""
    version = pinned_version("flaskr", "flask")
    target = _work() / f"flask-{version}.tar.gz"
    with _lock("realsites-flask-sdist"):
        if not target.exists():
            with tempfile.TemporaryDirectory(dir=WORK) as tmp:
                subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                                "--no-deps", "--no-binary", ":all:", "-d", tmp, f"flask=={version}"],
                               check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=600)
                got = next(Path(tmp).glob("flask-*.tar.gz"))
                os.chmod(got, 0o644)
                os.rename(got, target)
    return target


def flaskr_project(parent: Path, site_owned: bool = False) -> Path:
    """PARENT/flaskr: examples/tutorial of Flask's sdist as published (flaskr/, tests/,
    pyproject.toml, .gitignore ...), plus the glue: wsgi.py and the pinned requirements.txt,
    committed to git (its .gitignore keeps instance/ out of what inv deploy packs). Owned by
    whoever runs the tasks: the site's user (SITE_OWNED), or this process (fab's local side)."""
    sdist = flask_sdist()
    project = parent / "flaskr"
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        prefix = f"{top}/examples/tutorial/"
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        if not any(m.name == prefix + "flaskr/__init__.py" for m in members):
            raise AssertionError(f"{sdist} has no examples/tutorial/flaskr: the sdist's layout changed")
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            tar.extractall(tmp, members=members, filter="data")
            shutil.move(os.path.join(tmp, prefix), project)
    project.chmod(0o755)
    shutil.copy(REALSITES / "flaskr" / "wsgi.py", project / "wsgi.py")
    shutil.copy(pinned("flaskr"), project / "requirements.txt")
    if site_owned:
        _chown_tree(project)
    git_commit(project, "the Flask tutorial's flaskr, with wsgi.py and pinned requirements")
    return project


def flaskr_secret_config(site: Site) -> Path:
    """SITE/shared/instance/config.py with a SECRET_KEY, as the tutorial's deploy page says
    (written once, before the first deploy: data already in SITE/shared is never replaced)."""
    path = site.site / "shared" / "instance" / "config.py"
    write_file(path, f"SECRET_KEY = {secrets.token_hex()!r}\n", 0o600)
    return path


def flaskr_forgotten_migration(project: Path) -> None:
    """A new release of flaskr whose index lists pinned posts first: schema.sql gains the column,
    blog.py reads it, and nothing changes the live database (the ALTER TABLE that should run as
    a release command is forgotten). It imports cleanly; its "/" fails with
    `no such column: p.pinned`, rendered as Flask's own 500 page; /auth/login still works."""
    schema = project / "flaskr" / "schema.sql"
    text = schema.read_text()
    assert "  body TEXT NOT NULL," in text, text
    pinned = "  body TEXT NOT NULL,\n  pinned INTEGER NOT NULL DEFAULT 0,"
    schema.write_text(text.replace("  body TEXT NOT NULL,", pinned))
    blog = project / "flaskr" / "blog.py"
    text = blog.read_text()
    query = "SELECT p.id, title, body, created, author_id, username"
    assert query in text and "ORDER BY created DESC" in text, text
    blog.write_text(text.replace(query, "SELECT p.id, p.pinned, title, body, created, author_id, username")
                    .replace("ORDER BY created DESC", "ORDER BY p.pinned DESC, created DESC"))
    git_commit(project, "pinned posts first")


# ---- Radicale ---------------------------------------------------------------------------------

RADICALE_GLUE = ("wsgi.py", "radicale.conf", "requirements.txt")


def radicale_project(parent: Path, site: Site) -> Path:
    """PARENT/radicale, the site's user's: examples/realsites/radicale's wsgi.py, radicale.conf
    (its paths naming SITE's directories) and pinned requirements.txt. Also SITE's users file
    (one user, alice, SHA-512 crypt as Apache's htpasswd -2 writes it) that radicale.conf names."""
    project = _site_owned_dir(parent / "radicale")
    for name in RADICALE_GLUE:
        text = (REALSITES / "radicale" / name).read_text().replace(EXAMPLE_SITE, str(site.site))
        write_file(project / name, text, 0o644)
    users = subprocess.run(["htpasswd", "-nb", "-2", "alice", RADICALE_PASSWORD], capture_output=True,
                           text=True, check=True).stdout.strip()
    write_file(site.site / "secrets" / "radicale-users", users + "\n", 0o600)
    return project


RADICALE_PASSWORD = "alice-" + secrets.token_hex(8)


def radicale_request(url: str, method: str, path: str, user: str = "alice",
                     password: str = RADICALE_PASSWORD) -> int:
    """The status of METHOD PATH as USER, as a CalDAV client sends it (MKCALENDAR /alice/calendar/
    makes a calendar: 201; GET of it: 200): requests that reach Radicale's storage."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        conn.request(method, path, headers={"Authorization": f"Basic {token}"})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


# ---- Trac ---------------------------------------------------------------------------------------

def trac_project(parent: Path) -> Path:
    """PARENT/trac, the site's user's: a Trac site's code is Trac itself, so the project is its
    pinned requirements.txt (examples/realsites/trac); the Trac environment is data, in SITE/shared."""
    project = _site_owned_dir(parent / "trac")
    write_file(project / "requirements.txt", pinned("trac").read_text(), 0o644)
    return project


# ---- a visitor with cookies -------------------------------------------------------------------

@dataclass
class Page:
    status: int
    url: str      # after redirects
    text: str

    def forms(self) -> list[dict]:
        parser = _Forms()
        parser.feed(self.text)
        return parser.forms


class _Forms(HTMLParser):
    """Every <form>: its id, action, method and the fields a browser would send as they are."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._select: list | None = None
        self._textarea: list | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "option" and self._select is not None:  # the selected one, else the first
            if self._select[1] is None or "selected" in a:
                self._select[1] = a.get("value") or ""
        elif tag == "form":
            self._form = {"id": a.get("id"), "action": a.get("action"), "method": (a.get("method") or "get").lower(),
                          "fields": []}
            self.forms.append(self._form)
        elif self._form is None or not a.get("name"):
            return
        elif tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "button", "image", "file", "reset") or \
                    (kind in ("checkbox", "radio") and "checked" not in a):
                return
            self._form["fields"].append([a["name"], a.get("value") or ""])
        elif tag == "textarea":
            self._textarea = [a["name"], ""]
            self._form["fields"].append(self._textarea)
        elif tag == "select":
            self._select = [a["name"], None]
            self._form["fields"].append(self._select)

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


class Visitor:
    """A browser without JavaScript on a loopback site: cookies kept, redirects followed,
    4xx/5xx returned as pages (never raised)."""

    def __init__(self, base: str, timeout: float = 60) -> None:
        parts = urllib.parse.urlsplit(base)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"Visitor only visits loopback sites, not {base!r}")
        self.base = base.rstrip("/")
        self.cookies = http.cookiejar.CookieJar()
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def _open(self, path: str, data: bytes | None) -> Page:
        try:
            with self._opener.open(self.base + path, data, timeout=self.timeout) as r:
                return Page(r.status, r.geturl(), r.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as e:
            return Page(e.code, e.geturl(), e.read().decode("utf-8", "replace"))

    def get(self, path: str) -> Page:
        return self._open(path, None)

    def post(self, path: str, fields: list[tuple[str, str]] | dict[str, str]) -> Page:
        items = list(fields.items()) if isinstance(fields, dict) else fields
        return self._open(path, urllib.parse.urlencode(items).encode())

    def submit(self, path: str, values: dict[str, str], form_id: str | None = None,
               extra: list[tuple[str, str]] = ()) -> Page:
        """GET PATH, fill in its POST form (the one with FORM_ID, else the first) with VALUES
        over what the page put there (hidden CSRF tokens, formset counts ...), and send it."""
        page = self.get(path)
        forms = [f for f in page.forms() if f["method"] == "post" and (form_id is None or f["id"] == form_id)]
        if not forms:
            raise AssertionError(f"no POST form{f' #{form_id}' if form_id else ''} on {path} "
                                 f"({page.status} {page.url}):\n{page.text[:2000]}")
        form = forms[0]
        fields = [(k, v) for k, v in form["fields"] if k not in values and v is not None]
        action = urllib.parse.urlsplit(urllib.parse.urljoin(page.url, form["action"] or page.url))
        target = action.path + (f"?{action.query}" if action.query else "")
        return self.post(target, fields + list(values.items()) + list(extra))

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)


# ---- what a site writes ------------------------------------------------------------------------

def wagtail_login(me: Visitor, username: str, password: str) -> None:
    page = me.submit("/admin/login/", {"username": username, "password": password})
    if urllib.parse.urlsplit(page.url).path != "/admin/" or me.cookie("sessionid") is None:
        raise AssertionError(f"Wagtail admin login failed ({page.status} {page.url}):\n{page.text[:3000]}")


def wagtail_logged_in(me: Visitor) -> bool:
    """The admin's dashboard, not a redirect to its login page: the session row is in the database."""
    page = me.get("/admin/")
    return page.status == 200 and urllib.parse.urlsplit(page.url).path == "/admin/"


def wagtail_add_page(me: Visitor, title: str, slug: str) -> None:
    """A page under the home page, created and published through Wagtail's admin forms."""
    home = me.get("/admin/pages/")
    found = re.findall(r'/admin/pages/(\d+)/add_subpage/', home.text)
    parent = max((int(n) for n in found), default=3)  # the home page is the newest of the two
    page = me.submit(f"/admin/pages/{parent}/add_subpage/", {"title": title, "slug": slug},
                     form_id="page-edit-form", extra=[("action-publish", "action-publish")])
    if page.status != 200 or "/add/" in page.url:
        raise AssertionError(f"the page {title!r} was not created ({page.status} {page.url}):\n{page.text[:3000]}")


def flaskr_register_and_login(me: Visitor, username: str, password: str) -> None:
    me.submit("/auth/register", {"username": username, "password": password})
    flaskr_login(me, username, password)


def flaskr_login(me: Visitor, username: str, password: str) -> None:
    page = me.submit("/auth/login", {"username": username, "password": password})
    if urllib.parse.urlsplit(page.url).path != "/" or "Log Out" not in page.text:
        raise AssertionError(f"flaskr login as {username} failed ({page.status} {page.url}):\n{page.text[:2000]}")


def flaskr_post(me: Visitor, title: str, body: str) -> None:
    page = me.submit("/create", {"title": title, "body": body})
    if urllib.parse.urlsplit(page.url).path != "/" or title not in page.text:
        raise AssertionError(f"flaskr post {title!r} was not created ({page.status} {page.url}):\n{page.text[:2000]}")


def head_status(url: str) -> int:
    """The status of a GET of URL (e.g. a static file Apache serves from the document root)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", parts.path)
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()

