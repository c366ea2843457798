"""`check` warnings for a Django project, from the settings the probe read after the import
(shim/ops/probe.py django_report): static files that visitors cannot reach, and an
ALLOWED_HOSTS without the site's own host. Django-specific code lives here and in the probe,
never in the runtime.

On Apache + Passenger, files in the document root are served by Apache itself; the app is asked
for everything else. Django serves no static files when DEBUG is off (unless WhiteNoise does), so
collectstatic must put them under the document root, at the URL STATIC_URL names.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from shim.runtime.layout import Site
from shim.runtime.problems import Problem

FIX_STATIC = ("In the settings: STATIC_ROOT = \"{docroot}/static\" and STATIC_URL = \"/static/\"; then run "
              "collectstatic as a release command ([deploy] run = [\"python manage.py collectstatic --noinput\"]). "
              "See docs/django.md.")


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def static_problems(site: Site, report: dict) -> list[Problem]:
    """django-static-unreachable: STATIC_ROOT unset, outside the document root, or served at
    another URL than STATIC_URL."""
    url = report.get("static_url", "")
    if not report.get("staticfiles") or report.get("served_by_app") or urlsplit(url).netloc:
        return []  # no static files, served by the app (WhiteNoise), or from another host (a CDN)
    where = report.get("settings_file") or "the Django settings"
    docroot = os.path.realpath(site.docroot)
    fix = FIX_STATIC.format(docroot=site.docroot)
    root = report.get("static_root", "")
    if not root:
        return [Problem("django-static-unreachable", "STATIC_ROOT is not set: collectstatic has nowhere to put the "
                                                     "static files, and visitors get no CSS (the admin unstyled).",
                        f"{where}, STATIC_ROOT", fix, severity="warning")]
    real = os.path.realpath(root)
    if not _within(real, docroot):
        return [Problem("django-static-unreachable",
                        f"STATIC_ROOT is {root}, outside the document root {site.docroot}: Apache serves "
                        "files only from there, and Django serves none with DEBUG off, so every "
                        f"{url or '/static/'} URL is 404 (the admin has no CSS).", f"{where}, STATIC_ROOT",
                        fix, severity="warning")]
    rel = os.path.relpath(real, docroot)
    served_at = "/" if rel == "." else "/" + Path(rel).as_posix() + "/"
    path = urlsplit(url).path.strip("/")
    wanted = "/" + path + "/" if path else "/"
    if wanted != served_at:
        return [Problem("django-static-unreachable",
                        f"STATIC_URL is {url}, but the files in STATIC_ROOT ({root}) are served at {served_at}: "
                        "pages link to URLs that are 404.", f"{where}, STATIC_URL",
                        f"Set STATIC_URL = \"{served_at}\", or move STATIC_ROOT to "
                        f"{site.docroot}{wanted.rstrip('/')}.", severity="warning")]
    return []


def host_problems(report: dict) -> list[Problem]:
    """django-allowed-hosts: the site's own host (check --url) not allowed, or none at all."""
    where = f"{report.get('settings_file') or 'the Django settings'}, ALLOWED_HOSTS"
    hosts = report.get("allowed_hosts", [])
    host = report.get("host")
    if host and not report.get("host_allowed", True):
        return [Problem("django-allowed-hosts",
                        f"ALLOWED_HOSTS = {hosts!r} does not hold {host}, the site's own host: Django answers "
                        "every request to it with 400 Bad Request.", where,
                        f"Add \"{host}\" to ALLOWED_HOSTS (or to the [environment] variable your settings read it "
                        "from), then restart. See docs/django.md.", severity="warning")]
    if not host and not hosts and not report.get("debug"):
        return [Problem("django-allowed-hosts",
                        "ALLOWED_HOSTS is empty and DEBUG is off: Django answers every request with 400 Bad "
                        "Request.", where,
                        "Put the site's host name in ALLOWED_HOSTS (e.g. [\"www.example.org\"]); `check --url URL` "
                        "checks it against the site's own address.", severity="warning")]
    return []


def django_problems(site: Site, report: dict | None) -> list[Problem]:
    """Every Django warning of `check`, from the probe's report (None: not a Django app)."""
    if not report or "error" in report:
        return []
    return static_problems(site, report) + host_problems(report)
