# Shared fixtures of the Python module's tests (tests/python, CTest labels python and
# python-install): the kvlab binary and source tree CTest passes in the environment.
import os
import pathlib
import subprocess

import pytest

SOURCE_DIR = pathlib.Path(os.environ.get("KVLAB_SOURCE_DIR",
                                         pathlib.Path(__file__).resolve().parents[2]))
KVLAB = os.environ.get("KVLAB_BINARY", str(SOURCE_DIR / "build" / "cpu" / "kvlab"))


def run_kvlab(*args, check=True):
    """Runs the kvlab CLI; returns the CompletedProcess (text)."""
    r = subprocess.run([KVLAB, *map(str, args)], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"kvlab {' '.join(map(str, args))} failed: {r.stderr}")
    return r


@pytest.fixture(scope="session")
def kvlab_cli():
    assert os.path.exists(KVLAB), f"the kvlab binary is missing: {KVLAB}"
    return run_kvlab
