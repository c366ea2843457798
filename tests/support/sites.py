"""Real sites for tests: a shared venv built from /usr/bin/python3, sites made by `wsgi-shim
install` run as the site's (non-root) user, and requests served the way Passenger serves them."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from shim.runtime.layout import Site
from tests.support.accounts import PROJECT_GROUP, SITE_USER, ensure_accounts, gid, uid

REPO = Path(__file__).resolve().parents[2]

def _tree_base() -> Path:
    """/srv/wsgi-shim-tests for the main checkout; one directory per other work tree (a git
    worktree, a fresh clone), so test runs of different trees never reinstall each other's venv.
    WSGI_SHIM_TEST_DIR overrides."""
    given = os.environ.get("WSGI_SHIM_TEST_DIR")
    if given:
        return Path(given)
    if REPO == Path("/work/main"):
        return Path("/srv/wsgi-shim-tests")
    import hashlib

    return Path("/srv/wsgi-shim-tests-" + hashlib.sha256(str(REPO).encode()).hexdigest()[:8])


BASE = _tree_base()
VENV = BASE / "venv"
HARNESS = BASE / "passenger_harness.py"
LOADER = BASE / "passenger_loader.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # other users cannot run the root-only pyenv python (FACTS.md)
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"
VENV_PACKAGES = ["tomli-w", "waitress", "flask", "django"]


@contextmanager
def _lock(name: str):
    BASE.mkdir(mode=0o755, exist_ok=True)
    with open(BASE / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def run_as(user: str, group: str, cmd: list[str], **kw) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": f"/home/{user}", "LANG": "C.UTF-8",
           **kw.pop("env", {})}
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("errors", "replace")  # whatever an app writes must not break the test's reading
    kw.setdefault("timeout", 600)
    return subprocess.run([RUNUSER, "-u", user, "-g", group, "--", *cmd], env=env,
                          stdin=subprocess.DEVNULL, **kw)


def run_as_site(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return run_as(SITE_USER, PROJECT_GROUP, cmd, **kw)


def _chown_tree(path: Path, user: str = SITE_USER, group: str = PROJECT_GROUP) -> None:
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.lchown(name, uid(user), gid(group))


_venv_ready = False


def shared_venv() -> Path:
    """The site venv all test sites use, with this checkout's wsgi-shim freshly installed."""
    global _venv_ready
    if _venv_ready:
        return VENV
    ensure_accounts()
    with _lock("venv"):
        BASE.chmod(0o755)
        if not (VENV / ".packages-ok").exists():
            shutil.rmtree(VENV, ignore_errors=True)
            VENV.mkdir(mode=0o755)
            os.chown(VENV, uid(), gid())
            _checked(run_as_site([SYSTEM_PYTHON, "-m", "venv", str(VENV)]))
            _checked(run_as_site([str(VENV / "bin/pip"), "install", "-q", *VENV_PACKAGES]))
            (VENV / ".packages-ok").touch()
        # Reinstall wsgi-shim only when its sources changed: other test runs may be using the venv.
        digest = _source_digest()
        marker = VENV / ".shim-digest"
        wheel_built = any((BASE / "wheels").glob("*.whl"))
        if not marker.exists() or marker.read_text() != digest or not (VENV / "bin/wsgi-shim").exists() \
                or not wheel_built:
            wheels = BASE / "wheels"
            shutil.rmtree(wheels, ignore_errors=True)
            wheels.mkdir(mode=0o755)
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                            str(REPO)], check=True, capture_output=True)
            for path in wheels.iterdir():
                path.chmod(0o644)
            wheel = next(wheels.glob("*.whl"))
            _checked(run_as_site([str(VENV / "bin/pip"), "install", "-q", "--no-deps", "--force-reinstall",
                                  str(wheel)]))
            marker.write_text(digest)
        shutil.copy(REPO / "tests/support/passenger_harness.py", HARNESS)
        HARNESS.chmod(0o644)
        # The harness imports wsgi-shim's one emulation of Passenger's loader from beside it.
        shutil.copy(REPO / "shim/ops/passenger_loader.py", LOADER)
        LOADER.chmod(0o644)
    _venv_ready = True
    return VENV


def _source_digest() -> str:
    import hashlib

    h = hashlib.sha256()
    # Every file of the package, not only *.py: the build scripts are package data.
    files = [p for p in (REPO / "shim").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for path in sorted([*files, REPO / "pyproject.toml"]):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def _checked(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        raise RuntimeError(f"{proc.args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def wsgi_shim(*args: str, **kw) -> subprocess.CompletedProcess:
    """Run the `wsgi-shim` command of the shared venv as the site's user."""
    shared_venv()  # with this tree's wsgi-shim, also in a test that makes no site
    return run_as_site([str(VENV / "bin/wsgi-shim"), *args], **kw)


def small_venv(path: Path) -> Path:
    """Another venv (stdlib + wsgi-shim only) owned by the site's user, e.g. to break on purpose."""
    shared_venv()
    if not path.parent.exists():
        path.parent.mkdir(parents=True)
        os.chown(path.parent, uid(), gid())
    _checked(run_as_site([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(path)]))
    # The runtime needs only the standard library: the shim package itself is enough.
    source = next(VENV.glob("lib/python3*/site-packages")) / "shim"
    _checked(run_as_site(["cp", "-r", str(source), str(next(path.glob("lib/python3*/site-packages")))]))
    return path


HELLO_APP = """\
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"hello from the app"]
"""


def write_file(path: Path, text: str, mode: int = 0o640) -> None:
    """Write a site file as if the site's user had (owner and group set, no world access)."""
    missing = [p for p in [path.parent, *path.parent.parents] if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    for directory in missing:  # new package directories belong to the site's user too
        os.chown(directory, uid(), gid())
        directory.chmod(0o750)
    path.write_text(text)
    os.chown(path, uid(), gid())
    path.chmod(mode)


def update_config(site: Site, changes: dict | None = None, remove: list[tuple[str, ...]] = ()) -> None:
    import tomli_w

    data = tomllib.loads(site.config_toml.read_text())
    for section, values in (changes or {}).items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    for path in remove:
        target = data
        for key in path[:-1]:
            target = target[key]
        target.pop(path[-1], None)
    mode = site.config_toml.stat().st_mode & 0o777
    write_file(site.config_toml, tomli_w.dumps(data), mode)


_cleaned = False


def _remove_old_sites(hours: float = 6) -> None:
    """Sites of earlier runs pile up under BASE/sites: remove those older than a few hours."""
    global _cleaned
    if _cleaned:
        return
    _cleaned = True
    import time

    for path in (BASE / "sites").iterdir():
        if time.time() - path.stat().st_mtime > hours * 3600:
            shutil.rmtree(path, ignore_errors=True)


def make_site(name: str = "site", app_source: dict[str, str] | None = None, config: dict | None = None,
              maint: bool = False, app: str = "app.application") -> Site:
    """A new site installed by `wsgi-shim install` as the site's user, with maintenance off."""
    venv = shared_venv()
    (BASE / "sites").mkdir(mode=0o755, exist_ok=True)
    _remove_old_sites()
    parent = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=BASE / "sites"))
    parent.chmod(0o755)
    os.chown(parent, uid(), gid())
    site = Site(parent / "site")
    _checked(wsgi_shim("install", str(site.site), "--group", PROJECT_GROUP, "--app", app,
                       "--python", str(venv / "bin/python")))
    for rel, text in (app_source if app_source is not None else {"app.py": HELLO_APP}).items():
        write_file(site.approot / rel, text)
    if config:
        update_config(site, config)
    if not maint:
        site.maint_txt.unlink()
    return site


@dataclass
class Response:
    status: str | None
    headers: dict[str, str]
    body: str
    request_error: str | None = None

    @property
    def code(self) -> int:
        return int(self.status.split()[0]) if self.status else 0

    @property
    def kind(self) -> str:
        return self.headers.get("X-Wsgi-Shim", "")


@dataclass
class LoadResult:
    loader_error: str | None
    responses: list[Response] = field(default_factory=list)
    raw: dict = field(default_factory=dict)

    @property
    def response(self) -> Response:
        assert self.loader_error is None, f"Passenger would show its generic page:\n{self.loader_error}"
        return self.responses[0]


def load_like_passenger(site: Site, requests: list[dict] | None = None, user: str = SITE_USER,
                        group: str = PROJECT_GROUP, python: str | None = None,
                        watch_env: list[str] = ()) -> LoadResult:
    """Start a fresh app process as Passenger would (as user:group, cwd = app root) and serve."""
    requests = requests or [{"path": "/"}]
    python = python or str(VENV / "bin/python")
    with tempfile.TemporaryFile() as report:
        fd = report.fileno()
        proc = run_as(user, group, [python, str(HARNESS), str(site.approot), json.dumps(requests), str(fd)],
                      env={"HARNESS_WATCH": json.dumps(list(watch_env))}, timeout=120, pass_fds=(fd,))
        report.seek(0)
        text = report.read().decode("utf-8", "replace")
    try:
        raw = json.loads(text)
    except ValueError:
        raise AssertionError(f"harness failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from None
    return LoadResult(raw["loader_error"], [Response(**r) for r in raw["responses"]], raw)


OWNER_TOKEN = "owner-debug-token-0123456789abcdef"


def opt_in_owner(site: Site) -> dict[str, str]:
    """Give SITE a debug token file (mode 600, the site user's) in [logging] debug_token_file;
    return the header that opts a request in, as the site's owner would send it."""
    token_file = site.site / "debug-token"
    write_file(token_file, OWNER_TOKEN + "\n", 0o600)
    update_config(site, {"logging": {"debug_token_file": str(token_file)}})
    return {"X-Shim-Debug-Token": OWNER_TOKEN}
