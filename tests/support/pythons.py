"""CPython source tarballs for the real build tests, fetched by .ci/fetch-python-source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def source_tarball(variable: str, version: str) -> Path:
    """The tarball $VARIABLE names; without it, a failure under CI (it must run there) and a skip
    with the command that fetches it elsewhere."""
    path = os.environ.get(variable, "")
    if path and Path(path).is_file():
        return Path(path)
    why = (f"{variable} does not name CPython {version}'s source tarball; get it with: "
           f"export {variable}=$(sh .ci/fetch-python-source DIR {version})")
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)
