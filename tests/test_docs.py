"""The docs: the troubleshooting table lists every problem code wsgi-shim can report, README.md
stays a front page, links lead somewhere, and table cells stay short."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
TROUBLESHOOTING = DOCS / "troubleshooting.md"
MARKDOWN = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md", *DOCS.glob("*.md")])
MAX_CELL = 200  # longer text goes into a paragraph below the table


def problem_codes() -> set[str]:
    """First string argument of every Problem(...), _problem(...) and add(...) call in shim/."""
    codes = set()
    for path in (REPO / "shim").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            first = node.args[0]
            options = [first.body, first.orelse] if isinstance(first, ast.IfExp) else [first]
            for option in options:
                if name in ("Problem", "_problem", "add") and isinstance(option, ast.Constant) \
                        and isinstance(option.value, str) \
                        and re.fullmatch(r"[a-z]+(-[a-z0-9]+)+", option.value):
                    codes.add(option.value)
    return codes


def test_the_scan_finds_codes():
    assert {"config-syntax", "app-exception", "venv-mismatch", "secret-exposed"} <= problem_codes()


def test_every_problem_code_is_in_the_troubleshooting_table():
    table = TROUBLESHOOTING.read_text()
    missing = sorted(c for c in problem_codes() if f"`{c}`" not in table)
    assert not missing, f"add these codes to docs/troubleshooting.md: {missing}"


def test_readme_is_a_front_page():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move text to docs/"


def _outside_blocks(text: str) -> str:
    """The text without fenced and indented code blocks."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.M | re.S)
    return re.sub(r"^(?: {4}|\t).*$", "", text, flags=re.M)


def _outside_code(text: str) -> str:
    """The text without code blocks and inline code spans."""
    return re.sub(r"`[^`\n]*`", "", _outside_blocks(text))


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    found = set()
    for line in _outside_blocks(path.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            base, n = slug, 1
            while slug in found:
                slug, n = f"{base}-{n}", n + 1
            found.add(slug)
    return found


def links(path: Path) -> list[str]:
    """Every relative link target of a Markdown file: [text](target) outside code."""
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", _outside_code(path.read_text()))
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_the_link_finder_finds_links_and_anchors():
    page = DOCS / "index.md"
    assert "quickstart.md" in links(page)
    assert "how-the-site-is-started" in _anchors(DOCS / "quickstart.md")


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_and_heading(path):
    broken = []
    for target in links(path):
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{path.name}: broken links: {broken}"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_table_cells_stay_short(path):
    long = []
    for line in _outside_blocks(path.read_text()).splitlines():
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
            long += [c.strip()[:60] + "..." for c in cells if len(c.strip()) > MAX_CELL]
    assert not long, f"{path.name}: table cells over {MAX_CELL} characters (move the text below " \
                     f"the table): {long}"


def readme_demo_command() -> str:
    """The newcomer's command of README.md: its first sh block that runs the demo."""
    blocks = re.findall(r"^```sh\n(.*?)^```", (REPO / "README.md").read_text(), flags=re.M | re.S)
    return next(b.strip() for b in blocks if "wsgi-shim demo" in b)


def test_readme_names_both_newcomer_commands():
    assert readme_demo_command().startswith("python3 -m venv .venv")
    assert "sudo bash .ci/run" in (REPO / "README.md").read_text()


@pytest.mark.realserver
def test_readme_demo_command_works_in_a_fresh_copy_as_a_normal_user(tmp_path):
    """The exact README command, run by a non-root user in a copy of this tree as git would
    check it out, serves the demo page (only the port is changed to a free one)."""
    import os
    import signal
    import subprocess
    import tempfile
    import time

    from tests.support.accounts import PROJECT_GROUP, SITE_USER
    from tests.support.apache import free_port, http_get
    from tests.support.sites import BASE, RUNUSER, _chown_tree

    command = readme_demo_command()
    assert "--port 8000" in command
    port = free_port()
    command = command.replace("--port 8000", f"--port {port}")
    BASE.mkdir(mode=0o755, exist_ok=True)
    clone = Path(tempfile.mkdtemp(prefix="readme-", dir=BASE))
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            (clone / name).write_bytes((REPO / name).read_bytes())
    (clone / "tmp").mkdir()
    _chown_tree(clone)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": f"/home/{SITE_USER}", "LANG": "C.UTF-8",
           "TMPDIR": str(clone / "tmp")}  # the demo's throwaway site goes where we clean up
    log = tmp_path / "readme-demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([RUNUSER, "-u", SITE_USER, "-g", PROJECT_GROUP, "--", "bash", "-c",
                                 f"cd {clone} && {command}"], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        import re

        printed = None
        deadline = time.monotonic() + 600  # a venv and pip install -e . come first
        while printed is None and proc.poll() is None and time.monotonic() < deadline:
            # README says: open the address it prints (its token lets the owner's browser in).
            printed = re.search(rf"http://127\.0\.0\.1:{port}/\?wsgi-shim-preview=[\w-]+", log.read_text())
            time.sleep(0.5)
        assert printed is not None, f"exit {proc.poll()}"
        assert http_get(f"http://127.0.0.1:{port}/", timeout=10).status == 403  # no token: locked
        login = http_get(printed.group(0), timeout=10)
        assert login.status == 303 and "HttpOnly" in login.headers.get("set-cookie", ""), login
        page = http_get(f"http://127.0.0.1:{port}{login.headers['location']}", timeout=10,
                        headers={"Cookie": login.headers["set-cookie"].split(";")[0]})
        assert page.status == 200, page
        assert "Hello from the wsgi-shim demo" in page.body
    except Exception as exc:
        raise AssertionError(f"{command}:\n{log.read_text(errors='replace')[-3000:]}") from exc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        subprocess.run(["rm", "-rf", str(clone)], check=False)


def test_every_subcommand_and_flag_is_in_the_command_page():
    import argparse

    from shim.cli import build_parser

    page = (DOCS / "command.md").read_text()
    headings = "\n".join(line for line in page.splitlines() if line.startswith("#"))
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, parser in sub.choices.items():
        if not re.search(rf"\b{re.escape(name)}\b", headings):
            missing.append(f"a heading for {name}")
        for action in parser._actions:
            missing += [f"{name} {o}" for o in action.option_strings
                        if o.startswith("--") and o != "--help" and o not in page]
    assert not missing, f"document these in docs/command.md: {missing}"


def test_every_task_and_flag_is_in_the_docs():
    pytest.importorskip("invoke")
    from shim.tasks import ns

    text = "\n".join((DOCS / page).read_text()
                     for page in ("tasks.md", "deploying.md", "building-python.md"))
    missing = []
    for name in ns.task_names:
        if f"inv {name}" not in text:
            missing.append(f"inv {name}")
        task = ns[name]
        saved = dict(task.help)  # invoke's get_arguments() pops the help texts it uses
        try:
            arguments = task.get_arguments()
        finally:
            task.help = saved
        for arg in arguments:
            if arg.positional:
                continue
            long = max(arg.names, key=len)
            flag = f"--no-{long}" if arg.kind is bool and arg.default is True else f"--{long}"
            if flag not in text:
                missing.append(f"inv {name} {flag}")
    assert not missing, f"document these in docs/tasks.md (or deploying/building-python): {missing}"


def test_every_docs_page_is_in_the_table_of_contents():
    listed = set(links(DOCS / "index.md"))
    missing = [p.name for p in DOCS.glob("*.md") if p.name != "index.md" and p.name not in listed]
    assert not missing, f"add these pages to docs/index.md: {missing}"


def test_the_real_sites_page_shows_every_glue_file_and_command_as_the_test_runs_them():
    """docs/real-sites.md against examples/realsites/ and tests/e2e/test_real_sites.py."""
    from shim.runtime.layout import Site
    from tests.e2e import test_real_sites as real
    from tests.support.realsites import EXAMPLE_SITE, REALSITES

    page = (REPO / "docs" / "real-sites.md").read_text()
    for app, name in (("wagtail", "local.py"), ("wagtail", "config.toml"), ("flaskr", "wsgi.py"),
                      ("flaskr", "config.toml"), ("radicale", "wsgi.py"), ("radicale", "radicale.conf"),
                      ("radicale", "config.toml"), ("trac", "config.toml")):
        text = (REALSITES / app / name).read_text()
        assert text.strip() in page, f"docs/real-sites.md does not show examples/realsites/{app}/{name} as it is"
    from tests.e2e.test_first_request import TRAC_INIT

    for command in (real.WAGTAIL_MIGRATE, real.WAGTAIL_STATIC, real.FLASKR_INIT, TRAC_INIT,
                    real.wagtail_superuser(Site(Path(EXAMPLE_SITE)))):
        assert command in page, command
