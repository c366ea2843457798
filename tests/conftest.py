import pytest

from tests.support.accounts import is_root


def pytest_collection_modifyitems(config, items):
    if is_root():
        return
    skip = pytest.mark.skip(reason="needs root: creates test users and runs real servers as them")
    for item in items:
        if "realserver" in item.keywords:
            item.add_marker(skip)
