"""What a deploy runs in a new release before the switch: pip for its requirements, the release
commands (--run, config.toml [deploy] run), and git for --ref. Output is streamed line by line
as it comes (a pip install can take minutes), with the site's secrets masked."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from shim.ops.deploy.store import DeployError
from shim.runtime.config import Config

Say = Callable[[str], None]


def _stream(cmd: list[str], cwd: Path, env: dict[str, str], say: Say, prefix: str,
            mask: Callable[[str], str]) -> tuple[int, list[str]]:
    """Run CMD, passing each output line to SAY as it arrives; (exit code, last lines)."""
    tail: list[str] = []
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=False)
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = mask(raw.decode("utf-8", "replace").rstrip("\r\n"))
            say(prefix + line)
            tail = (tail + [line])[-15:]
        return proc.wait(), tail
    except BaseException:
        proc.kill()  # interrupted: the command must not go on after the undo
        proc.wait()
        raise


def _masker(cfg: Config | None) -> Callable[[str], str]:
    from shim.runtime.redact import Redactor

    # The same secrets the runtime masks in the app log (shim.runtime.config.secret_values).
    redact = Redactor(cfg.secret_values() if cfg else [],
                      cfg.logging.redact if cfg else [])
    return lambda text: escape_control(redact(text))


def escape_control(text: str) -> str:
    """No raw ESC or CR from a command reaches the terminal (screen clears, forged lines)."""
    return "".join(c if c == "\t" or (" " <= c != "\x7f") else f"\\x{ord(c):02x}" for c in text)


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def install_requirements(python: str, release: Path, cfg: Config | None, say: Say) -> str:
    """pip install -r release/requirements.txt, streamed; returns pip's summary line."""
    cmd = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
           "--progress-bar", "off", "-r", "requirements.txt"]
    try:
        code, tail = _stream(cmd, release, _base_env(), say, "  pip: ", _masker(cfg))
    except OSError as exc:
        raise DeployError(f"cannot run {python} -m pip: {exc.strerror or exc}. Check passenger_python "
                          "in config.toml.") from None
    if code != 0:
        raise DeployError(f"pip install -r requirements.txt failed (exit {code}); its output is above. "
                          "Nothing was switched; the site still serves its current release.")
    done = [line for line in tail if line.startswith("Successfully installed")]
    return done[-1] if done else "all requirements already satisfied"


def compile_release(python: str, release: Path, say: Say) -> list[str]:
    """Byte-compile RELEASE (with its .venv, when it has one) with the site's Python, as the
    first import after the switch would otherwise do in a visitor's request (or in every process,
    when the app's user cannot write __pycache__). Timestamp-checked .pyc as Python writes them
    itself; files that are already compiled cost a stat. Returns the lines naming files that do
    not compile (a syntax error: the check names it if the app imports it)."""
    env = _base_env()
    env.pop("SOURCE_DATE_EPOCH", None)  # would make compileall write hash-checked .pyc
    cmd = [python, "-m", "compileall", "-q", "-j", "0", "-x", r"/(\.git|node_modules)/", str(release)]
    try:
        done = subprocess.run(cmd, cwd=release, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace")
    except OSError as exc:
        raise DeployError(f"cannot run {python} -m compileall: {exc.strerror or exc}. Check passenger_python "
                          "in config.toml.") from None
    if done.returncode == 0:
        return []
    lines = (done.stdout + done.stderr).splitlines()
    failed = [escape_control(line) for line in lines if line.startswith("*** Error compiling")]
    return failed or [escape_control(line) for line in lines[-5:]] or [f"compileall exited with {done.returncode}"]


def pending_requirements(python: str, release: Path, cfg: Config | None) -> tuple[list[str] | None, list[str]]:
    """What `pip install -r requirements.txt` would install with PYTHON, changing nothing
    (`pip install --dry-run --report`, pip 22.2 and later): (["name==version", ...], []); an empty
    list when every requirement is already satisfied; (None, pip's last lines) when pip cannot
    tell (too old, an unknown package, no network)."""
    import json

    mask = _masker(cfg)
    with tempfile.TemporaryDirectory(prefix="wsgi-shim-pip-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [python, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
               "--no-input", "--progress-bar", "off", "--report", str(report), "-r", "requirements.txt"]
        try:
            done = subprocess.run(cmd, cwd=release, env=_base_env(), stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, errors="replace")
        except OSError as exc:
            return None, [f"cannot run {python} -m pip: {exc.strerror or exc}"]
        lines = [mask(line) for line in (done.stdout + done.stderr).splitlines() if line.strip()][-15:]
        try:
            data = json.loads(report.read_text()) if done.returncode == 0 else None
            return [f"{i['metadata']['name']}=={i['metadata']['version']}" for i in data["install"]], []
        except (OSError, ValueError, TypeError, KeyError):
            return None, lines or [f"pip exited with {done.returncode}"]


def release_env(cfg: Config, python: str) -> dict[str, str]:
    """The environment the app gets from wsgi-shim ([environment], secret file paths), with the
    site's Python first on PATH, as a release command should see it."""
    env = _base_env()
    env.update(cfg.env_vars())
    venv = Path(python).parent.parent
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["WSGI_SHIM_DEPLOY"] = "1"
    return env


def run_release_command(command: str, cwd: Path, cfg: Config, python: str, say: Say) -> None:
    """One release command in the new release, with the site's Python and environment."""
    say(f"Running in the new release: {command}")
    try:
        code, _ = _stream(["/bin/sh", "-c", command], cwd, release_env(cfg, python), say, "  | ",
                          _masker(cfg))
    except OSError as exc:
        raise DeployError(f"cannot run the release command {command!r}: {exc.strerror or exc}") from None
    if code != 0:
        raise DeployError(f"the release command {command!r} failed (exit {code}); its output is above. "
                          "Nothing was switched; the site still serves its current release.")


def git_export(source: Path, ref: str, out_dir: Path) -> tuple[Path, str]:
    """(tar archive of exactly REF's tree, full commit id) from the git repository SOURCE."""
    def git(*args: str) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(["git", "-C", str(source), *args], capture_output=True,
                                  stdin=subprocess.DEVNULL, check=False)
        except OSError as exc:
            raise DeployError(f"--ref needs git, which cannot be run: {exc.strerror or exc}") from None

    if ref.startswith("-"):
        raise DeployError(f"--ref {ref!r} is not a git revision (it starts with '-').")
    found = git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if found.returncode != 0:
        where = git("rev-parse", "--git-dir")
        if where.returncode != 0:
            raise DeployError(f"--ref {ref}: {source} is not a git repository.")
        raise DeployError(f"--ref {ref}: no such commit, branch or tag in {source} "
                          "(git fetch first if it is on a remote).")
    commit = found.stdout.decode().strip()
    fd, name = tempfile.mkstemp(suffix=".tar", dir=out_dir)
    os.close(fd)
    done = git("archive", "--format=tar", f"--output={name}", commit)
    if done.returncode != 0:
        raise DeployError(f"git archive {commit} failed: {done.stderr.decode(errors='replace').strip()}")
    from shim.ops.deploy import submodules  # git archive leaves submodules as empty directories

    submodules.add_to_archive(source, commit, Path(name))
    return Path(name), commit
