"""Fixtures for the sandbox tests: the isolations that work here, and checks that a run left nothing behind.

The plugin is imported inside the fixtures, so that where it is not installed its test modules skip, not error.
"""

from __future__ import annotations

import glob
import os
import tempfile
import time
from pathlib import Path

import pytest

SANDBOXES = ("bwrap", "unshare")


def processes_with(needle: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose command line holds `needle`; zombies have none."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            if needle.encode() in cmdline:
                found.append((int(entry.name), cmdline.replace(b"\0", b" ")[:200].decode(errors="replace")))
    return found


def workdirs() -> set[str]:
    from trl_grpo_plus_code.sandbox import WORKDIR_PREFIX

    return set(glob.glob(os.path.join(tempfile.gettempdir(), WORKDIR_PREFIX + "*")))


@pytest.fixture(params=SANDBOXES)
def isolation(request) -> str:
    """Each sandbox that works on this machine; the others are skipped, saying why, unless they run but leak."""
    from trl_grpo_plus_code.sandbox import NOT_ISOLATING, isolation_problem

    problem = isolation_problem(request.param)
    if problem is not None and problem.startswith(NOT_ISOLATING):
        pytest.fail(f"{request.param}: {problem}")
    if problem is not None:
        pytest.skip(f"{request.param} does not work here: {problem}")
    return request.param


@pytest.fixture
def no_residue():
    """Fails the test if a sandboxed process or a working directory outlives it. Yields a marker for programs to put
    in the command lines of processes they start, so that those are found too."""
    from trl_grpo_plus_code.sandbox import HARNESS_TAG

    marker = f"residue-marker-{os.getpid()}-{time.monotonic_ns()}"
    before = workdirs()
    yield marker
    deadline = time.monotonic() + 5  # SIGKILL is delivered asynchronously
    ours = f"{HARNESS_TAG}:{os.getpid()}:"  # not another test session's sandboxes
    while (left := processes_with(ours) + processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == [], f"processes outlived the sandbox: {left}"
    assert workdirs() - before == set()
