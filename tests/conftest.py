"""Shared fixtures. Real sample data lives in ../shared/data beside the project; tests that use it
skip with a reason when it is absent (a user's fresh clone does not have it)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

if "MMFACE4D_CACHE_DIR" not in os.environ:
    # the synthetic face model's on-disk cache (mmface4d.facemodel.synth) of this run, not the
    # user's; the command-line tests' processes inherit it
    os.environ["MMFACE4D_CACHE_DIR"] = tempfile.mkdtemp(prefix="mmface4d-test-cache-")
    atexit.register(shutil.rmtree, os.environ["MMFACE4D_CACHE_DIR"], ignore_errors=True)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one thread per xdist worker: 2 workers x N torch threads would oversubscribe the cores
    torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA}")
    return SHARED_DATA
