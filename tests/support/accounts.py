"""Real non-root test accounts: the site's owner, its project group, and a stranger."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess

SITE_USER = "shimsite"
PROJECT_GROUP = "shimproj"
OTHER_USER = "shimother"


def is_root() -> bool:
    return os.geteuid() == 0


def _exists(kind, name: str) -> bool:
    try:
        kind(name)
        return True
    except KeyError:
        return False


def ensure_accounts() -> None:
    """Create the accounts once (idempotent; needs root)."""
    if not _exists(grp.getgrnam, PROJECT_GROUP):
        subprocess.run(["groupadd", PROJECT_GROUP], check=False)
    for user in (SITE_USER, OTHER_USER):
        if not _exists(pwd.getpwnam, user):
            subprocess.run(["useradd", "-m", "-U", "-s", "/bin/bash", user], check=False)
            # An unlocked account is needed for ssh key logins with UsePAM no.
            subprocess.run(["usermod", "-p", "*", user], check=True)
    if SITE_USER not in grp.getgrnam(PROJECT_GROUP).gr_mem:
        subprocess.run(["usermod", "-aG", PROJECT_GROUP, SITE_USER], check=True)


def uid(user: str = SITE_USER) -> int:
    return pwd.getpwnam(user).pw_uid


def gid(group: str = PROJECT_GROUP) -> int:
    return grp.getgrnam(group).gr_gid


TEAM_USER = "shimteam"  # another member of the project group (a colleague), for ownership tests


def ensure_team_member() -> None:
    """Create TEAM_USER, a member of PROJECT_GROUP that is not the site's user (idempotent)."""
    ensure_accounts()
    if not _exists(pwd.getpwnam, TEAM_USER):
        subprocess.run(["useradd", "-m", "-U", "-s", "/bin/bash", TEAM_USER], check=False)
    if TEAM_USER not in grp.getgrnam(PROJECT_GROUP).gr_mem:
        subprocess.run(["usermod", "-aG", PROJECT_GROUP, TEAM_USER], check=True)
