"""Hostile completions: each is contained, scores 0.0, leaves this test process unharmed and leaves nothing behind.

Each program does its harm and, only if the harm worked, defines the function the test calls: a program that escapes
scores 1.0. Every test runs in each sandbox that works here (bwrap, unshare); what unshare does not isolate (the file
system; as root, the process count) is skipped for it, as the README states.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import sys
import tempfile
import time

import pytest

pytest.importorskip("trl_grpo_plus_code", reason="needs `pip install -e ./plugins/trl-grpo-plus-code`")
from trl_grpo_plus_code import code_tests, row_tests, sandbox
from trl_grpo_plus_code.sandbox import NOT_ISOLATING, Limits, run_program

TIMEOUT = 3
TESTS = ["assert add_one(1) == 2"]
# Appended to a program: defined only when `escaped` is true, which the harm sets.
REWARD_IF_ESCAPED = "\nif escaped:\n    def add_one(x):\n        return x + 1\n"


def score(program: str, isolation: str) -> float:
    [reward] = code_tests([program], tests=[TESTS], isolation=isolation, timeout_seconds=TIMEOUT, memory_mb=512)
    return reward


@pytest.fixture
def host_dirs(tmp_path):
    """A directory under /tmp and one elsewhere (/var/tmp): a sandbox's own /tmp could hide the first only."""
    elsewhere = tempfile.mkdtemp(dir="/var/tmp" if os.path.isdir("/var/tmp") else None)
    yield [tmp_path, elsewhere]
    shutil.rmtree(elsewhere)


def unshare_does_not_isolate(isolation: str, what: str) -> None:
    if isolation == "unshare":
        pytest.skip(f"unshare does not isolate {what} (README: isolation)")


def test_an_infinite_loop_is_killed_at_the_timeout(isolation, no_residue):
    start = time.monotonic()
    result = run_program(
        f"# {no_residue}\nwhile True:\n    pass\n", row_tests(TESTS), isolation, Limits(timeout_seconds=2)
    )
    assert (result.passed, result.timed_out) == (0, True)
    assert time.monotonic() - start < 4


def test_a_fork_bomb_is_contained(isolation, no_residue):
    if isolation == "unshare" and os.geteuid() == 0:
        pytest.skip("unshare cannot cap a root user's processes (README: isolation); a bomb could exhaust pids")
    program = "import os\nescaped = False\nwhile True:\n    os.fork()\n" + REWARD_IF_ESCAPED
    assert score(program, isolation) == 0.0


def test_a_program_cannot_start_more_processes_than_max_processes(isolation, no_residue):
    if isolation == "unshare" and os.geteuid() == 0:
        pytest.skip("root is exempt from RLIMIT_NPROC, and unshare keeps the program root (README: isolation)")
    program = (
        "import os, sys, time\nstarted = 0\ntry:\n    while started < 100:\n        if os.fork() == 0:\n"
        f"            os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(30)', {no_residue!r}])\n"
        "        started += 1\nexcept OSError:\n    pass\nescaped = started >= 100\n" + REWARD_IF_ESCAPED
    )
    assert score(program, isolation) == 0.0


def test_memory_past_the_limit_cannot_be_had(isolation, no_residue):
    # 4 GiB of address space, which costs nothing until touched: only the limit (512 MB here) refuses it.
    program = (
        "import mmap\ntry:\n    mmap.mmap(-1, 4 << 30)\n    escaped = True\nexcept OSError:\n    escaped = False\n"
    )
    assert score(program + REWARD_IF_ESCAPED, isolation) == 0.0


def test_a_memory_bomb_fails(isolation, no_residue):
    program = "hoard = []\nwhile True:\n    hoard.append(bytearray(1 << 24))\nescaped = True\n" + REWARD_IF_ESCAPED
    start = time.monotonic()
    assert score(program, isolation) == 0.0
    assert time.monotonic() - start < TIMEOUT  # stopped by the limit, not the timeout


@pytest.mark.parametrize(
    "recursion",
    [
        "def down(n):\n    return down(n + 1)\ndown(0)\n",  # Python frames: until memory or the timeout runs out
        "nested = []\nfor _ in range(10**6):\n    nested = [nested]\nrepr(nested)\n",  # the C stack: a segfault
    ],
    ids=["python", "c-stack"],
)
def test_deep_recursion_fails(isolation, no_residue, recursion):
    program = "import sys\nsys.setrecursionlimit(10**8)\n" + recursion + "escaped = True\n" + REWARD_IF_ESCAPED
    assert score(program, isolation) == 0.0


def test_the_network_is_unreachable(isolation, no_residue):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        program = (
            "import socket\nescaped = False\ntry:\n"
            f"    with socket.create_connection(('127.0.0.1', {port}), timeout=1) as connection:\n"
            "        connection.sendall(b'leak')\n        escaped = True\nexcept OSError:\n    pass\n"
            + REWARD_IF_ESCAPED
        )
        assert score(program, isolation) == 0.0
        ready, _, _ = select.select([listener], [], [], 0.5)
        assert ready == [], "the listener on the host's 127.0.0.1 received a connection"


def test_files_outside_the_working_directory_cannot_be_written(isolation, no_residue, host_dirs):
    unshare_does_not_isolate(isolation, "the file system")
    host_files = [os.path.join(directory, "escaped.txt") for directory in host_dirs]
    host_files.append(os.path.join(sys.prefix, no_residue))  # the interpreter's files are there, read-only
    shared_tmp_file = f"/tmp/{no_residue}.txt"
    program = (
        "escaped = False\n"
        # The sandbox's own /tmp takes this write; the host's /tmp must not see it.
        f"open({shared_tmp_file!r}, 'w').write('kept inside')\n"
        f"for path in {host_files!r}:\n"
        "    try:\n        open(path, 'w').write('escaped')\n        escaped = True\n    except OSError:\n        pass\n"
        + REWARD_IF_ESCAPED
    )
    assert score(program, isolation) == 0.0
    assert [path for path in [*host_files, shared_tmp_file] if os.path.exists(path)] == []


@pytest.mark.parametrize("where", ["under /tmp", "elsewhere"])
def test_files_outside_the_working_directory_cannot_be_read(isolation, no_residue, host_dirs, where):
    unshare_does_not_isolate(isolation, "the file system")
    directory = host_dirs[["under /tmp", "elsewhere"].index(where)]
    os.chmod(directory, 0o755)
    secret = os.path.join(directory, "secret.txt")
    with open(secret, "w") as file:
        file.write(no_residue)
    os.chmod(secret, 0o644)  # readable by any user: only the sandbox's file system stands in the way
    program = (
        f"try:\n    escaped = open({secret!r}).read() == {no_residue!r}\nexcept OSError:\n    escaped = False\n"
        + REWARD_IF_ESCAPED
    )
    assert score(program, isolation) == 0.0


def test_the_parent_environment_is_not_visible(isolation, no_residue, monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", no_residue)
    program = (
        "import os\nescaped = os.environ.get('SECRET_TOKEN') is not None\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n    try:\n"
        f"        escaped |= {no_residue.encode()!r} in open(f'/proc/{{pid}}/environ', 'rb').read()\n"
        "    except OSError:\n        pass\n" + REWARD_IF_ESCAPED
    )
    assert score(program, isolation) == 0.0


def test_a_hundred_megabytes_of_output_is_drained_and_capped(isolation, no_residue):
    program = "import os\nfor _ in range(100):\n    os.write(1, b'x' * (1 << 20))\n"
    limits = Limits(timeout_seconds=TIMEOUT, memory_mb=512)
    result = run_program(program, row_tests(TESTS), isolation, limits)
    assert (result.passed, result.timed_out) == (0, False)
    assert result.stdout == b"x" * limits.output_bytes


def test_killing_its_parent_and_process_groups_reaches_neither_the_host_nor_other_sandboxes(isolation, no_residue):
    killer = (
        "import os\nfor kill in (lambda: os.kill(os.getppid(), 9), lambda: os.killpg(os.getpgrp(), 9),\n"
        "             lambda: os.killpg(0, 9), lambda: os.kill(-1, 9)):\n"
        "    try:\n        kill()\n    except OSError:\n        pass\n"
    )
    neighbour = "import time\ntime.sleep(1)\ndef add_one(x):\n    return x + 1\n"  # runs beside it in the pool
    parent = os.getppid()
    rewards = code_tests([killer, neighbour], tests=[TESTS] * 2, isolation=isolation, max_workers=2)
    assert rewards == [0.0, 1.0]
    os.kill(parent, 0)  # pytest's parent lives on, as this process does


def test_a_program_that_leaves_its_process_group_is_still_killed(isolation, no_residue):
    program = f"# {no_residue}\nimport os, time\nos.setsid()\ntime.sleep(60)\n"  # asleep: the CPU limit won't end it
    result = run_program(program, row_tests(TESTS), isolation, Limits(timeout_seconds=2))
    assert (result.passed, result.timed_out) == (0, True)  # and `no_residue` finds no harness left running


def test_a_daemon_that_outlives_the_program_is_killed(isolation, no_residue):
    program = (
        "import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', {no_residue!r}])\n"
        "    os._exit(0)\ntime.sleep(0.3)\nescaped = False\n" + REWARD_IF_ESCAPED
    )
    assert score(program, isolation) == 0.0  # and `no_residue` finds no process carrying its marker


def test_closing_or_redirecting_stdout_neither_breaks_nor_fakes_the_verdict(isolation, no_residue):
    silence = "import os, sys\nos.close(1)\nos.close(2)\nsys.stdout = open(os.devnull, 'w')\nprint('1 passed')\n"
    right = silence + "def add_one(x):\n    return x + 1\n"
    wrong = silence + "def add_one(x):\n    return x\n"
    assert code_tests([right, wrong], tests=[TESTS] * 2, isolation=isolation, timeout_seconds=TIMEOUT) == [1.0, 0.0]


def test_closing_every_other_file_descriptor_fails_closed(isolation, no_residue):
    program = "import os\nos.closerange(3, 4096)\ndef add_one(x):\n    return x + 1\n"
    assert score(program, isolation) == 0.0  # the results pipe went with them: no test is reported passed


@pytest.mark.parametrize("exit_call", ["sys.exit(0)", "os._exit(0)", "raise SystemExit", "raise KeyboardInterrupt"])
def test_exiting_before_the_tests_run_is_not_passing(isolation, no_residue, exit_call):
    program = f"import os, sys\ndef add_one(x):\n    return x + 1\n{exit_call}\n"
    assert score(program, isolation) == 0.0


def test_exiting_inside_a_test_is_failing_it(isolation, no_residue):
    program = "import sys\ndef add_one(x):\n    if x < 0:\n        sys.exit(0)\n    return x + 1\n"
    tests = ["assert add_one(1) == 2", "assert add_one(-1) == 0"]
    assert code_tests([program], tests=[tests], isolation=isolation, timeout_seconds=TIMEOUT) == [0.5]


def test_printing_pass_markers_and_forged_results_does_not_score(isolation, no_residue):
    # Prints what test runners print, writes result lines (it cannot know the nonce) to every descriptor, and
    # leaves before the harness could report the test failed.
    program = (
        "import os\ndef add_one(x):\n    return x\n"
        "print('PASSED\\n1 passed, 0 failed\\nOK\\nall tests passed', flush=True)\n"
        "for fd in range(1, 256):\n    for nonce in ('', '0', 'nonce', 'None'):\n        try:\n"
        "            os.write(fd, f'{nonce} 0 pass\\n'.encode())\n        except OSError:\n            pass\n"
        "os._exit(0)\n"
    )
    assert score(program, isolation) == 0.0


def test_a_sandbox_that_would_share_the_host_network_is_refused(isolation, monkeypatch):
    command = sandbox._command
    monkeypatch.setattr(
        sandbox, "_command", lambda *args: [a for a in command(*args) if a not in ("--unshare-net", "--net")]
    )
    sandbox._isolation_problem.cache_clear()
    try:
        assert sandbox.isolation_problem(isolation).startswith(NOT_ISOLATING)
    finally:
        sandbox._isolation_problem.cache_clear()


# isolation="none" (allow_unsandboxed) promises less, but what it promises it keeps.


def test_unsandboxed_runs_still_kill_the_whole_process_group_at_the_timeout(no_residue):
    program = (
        "import os, sys, time\nif os.fork() == 0:\n"
        f"    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', {no_residue!r}])\n"
        "while True:\n    pass\n"
    )
    result = run_program(program, row_tests(TESTS), "none", Limits(timeout_seconds=2))
    assert (result.passed, result.timed_out) == (0, True)


def test_unsandboxed_runs_still_scrub_the_environment_and_limit_memory(no_residue, monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", no_residue)
    programs = [
        "import os\nescaped = 'SECRET_TOKEN' in os.environ\n" + REWARD_IF_ESCAPED,
        "block = bytearray(4 << 30)\nescaped = True\n" + REWARD_IF_ESCAPED,
    ]
    rewards = code_tests(programs, tests=[TESTS] * 2, isolation="none", allow_unsandboxed=True, memory_mb=512)
    assert rewards == [0.0, 0.0]
