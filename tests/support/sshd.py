"""A real OpenSSH server on loopback, for running the tasks under `fab -H` in tests.

    with SshServer.start_new() as sshd:
        sshd.authorize("shimsite")
        sshd.fab("-H", sshd.host("shimsite"), "check", cwd=repo)

It listens on 127.0.0.1 and 127.0.0.2 (two "hosts" for `fab -H a,b`; Linux routes all of
127.0.0.0/8 to lo), with its own host key, a client key, and a known_hosts file naming both
addresses. Login is by key only; authorized keys live in the server's own directory
(AuthorizedKeysFile), so nobody's ~/.ssh is touched. Needs root (sshd must start as root to
switch to the user) and openssh-server (see .ci/run and ../shared/FACTS.md).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
ADDRESSES = ("127.0.0.1", "127.0.0.2")
# sshd's StrictModes refuses key files under a group/world-writable directory such as /tmp.
BASE = Path(os.environ.get("WSGI_SHIM_SSH_DIR", "/srv/wsgi-shim-tests-ssh"))


def sshd_available() -> str | None:
    """None when a test sshd can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    for path in (SSHD, SFTP_SERVER, shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"):
        if not os.path.exists(path):
            return f"{path} missing (apt-get install openssh-server)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL)
    return path.with_suffix(".pub").read_text().strip()


def unlock(user: str) -> None:
    """With UsePAM no, sshd refuses a locked account ('!' password): give it '*' instead."""
    shadow = subprocess.run(["getent", "shadow", user], capture_output=True, text=True,
                            check=False).stdout.split(":")
    if len(shadow) > 1 and shadow[1].startswith("!"):
        subprocess.run(["usermod", "-p", "*", user], check=True)


class SshServer:
    def __init__(self, base: Path, port: int) -> None:
        self.base = base
        self.port = port
        self.host_key = base / "ssh_host_ed25519_key"
        self.client_key = base / "client_ed25519"
        self.known_hosts = base / "known_hosts"
        self.keys_dir = base / "authorized_keys"
        self.config = base / "sshd_config"
        self.log = base / "sshd.log"
        self.process: subprocess.Popen | None = None

    @classmethod
    def start_new(cls) -> Self:
        reason = sshd_available()
        if reason:
            raise RuntimeError(f"cannot start a test sshd: {reason}")
        BASE.mkdir(parents=True, exist_ok=True)
        os.chmod(BASE, 0o755)
        base = Path(tempfile.mkdtemp(prefix="sshd-", dir=BASE))
        os.chmod(base, 0o755)  # users read their authorized_keys file with their own uid
        server = cls(base, free_port())
        server.start()
        return server

    def start(self) -> None:
        host_pub = _keygen(self.host_key, "wsgi-shim-test-host")
        _keygen(self.client_key, "wsgi-shim-test-client")
        key_type, key = host_pub.split()[:2]
        self.known_hosts.write_text("".join(f"[{addr}]:{self.port} {key_type} {key}\n"
                                            for addr in ADDRESSES))
        self.keys_dir.mkdir(mode=0o755)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        listen = "".join(f"ListenAddress {addr}\n" for addr in ADDRESSES)
        self.config.write_text(
            f"Port {self.port}\n{listen}"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.base / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.keys_dir}/%u\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin no\n"
            "StrictModes yes\nX11Forwarding no\nPrintMotd no\nLogLevel VERBOSE\n"
            f"Subsystem sftp {SFTP_SERVER}\n")
        subprocess.run([SSHD, "-t", "-f", str(self.config)], check=True)
        with open(self.log, "ab") as log:
            # -D: stay in the foreground so this object owns the process; -e: log to stderr.
            self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited ({self.process.returncode}):\n{self.log_text()}")
            try:
                for addr in ADDRESSES:
                    socket.create_connection((addr, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sshd did not listen on port {self.port}:\n{self.log_text()}")

    def authorize(self, user: str) -> None:
        """Let the test client key log in as USER."""
        unlock(user)
        path = self.keys_dir / user
        path.write_text(self.client_key.with_suffix(".pub").read_text())
        os.chmod(path, 0o644)

    def host(self, user: str, addr: str = ADDRESSES[0]) -> str:
        return f"{user}@{addr}:{self.port}"

    def fab_env(self, **extra: str) -> dict[str, str]:
        """Environment for `fab`: our known_hosts (strict checking is the tasks' default)."""
        env = dict(os.environ, FABRIC_SHIM_KNOWN_HOSTS=str(self.known_hosts))
        env.update(extra)
        return env

    def fab(self, *args: str, cwd: Path | str, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
        """Run `fab -i CLIENT_KEY ARGS` in CWD (a directory with a fabfile.py)."""
        return subprocess.run(
            [sys.executable, "-m", "fabric", "-i", str(self.client_key), *args],
            cwd=cwd, env=env if env is not None else self.fab_env(), stdin=subprocess.DEVNULL,
            check=False,
            capture_output=True, text=True, timeout=timeout)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()
