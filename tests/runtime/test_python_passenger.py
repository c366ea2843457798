"""Passenger before 6.0.19 cannot load apps on Python 3.12+ (its loader imports `imp`)."""

import shutil

import pytest

from shim.ops.checking import passenger_version, python_passenger_problems


def codes(python, passenger):
    return [(p.code, p.severity) for p in python_passenger_problems(python, passenger, "/site/venv/bin/python")]


def test_the_combinations():
    assert codes((3, 11, 2), (6, 0, 17)) == []
    assert codes((3, 12, 1), (6, 0, 17)) == [("python-too-new", "error")]
    assert codes((3, 13, 0), (6, 0, 19)) == []
    assert codes((3, 12, 0), None) == [("python-passenger-unknown", "warning")]
    assert codes((3, 11, 9), None) == []


@pytest.mark.skipif(shutil.which("passenger-config") is None, reason="Passenger is not installed here")
def test_reads_the_installed_passenger():
    version = passenger_version()
    assert version is not None and version >= (6, 0, 0)
