"""The trusted script that runs first inside each sandbox: it limits itself, runs the program, then each test.

It is run as source (``python -I -B -c <this file> <tag>``) and imports the standard library only, so it needs
nothing from the host but the interpreter. It reads one JSON payload from stdin (the program, the test steps, the
limits, a nonce and the number of the result pipe's write end), then reports each test through that pipe as
``<nonce> <index> pass|fail``. The program's own stdout and stderr are never read for results, so printing a pass
marker gains nothing, and a test counts only when this script wrote its line: exiting early leaves tests unreported,
which the host scores as failed.

What this cannot stop: the program runs in this very process, so code that searches the interpreter's memory for the
nonce and the pipe (``gc.get_objects()``, frame inspection) could forge lines. See the plugin README's threat model.
"""

import builtins
import json
import os
import resource
import sys
import traceback


def _limit(payload):
    uid = payload["drop_to_uid"]
    if uid is not None:
        # Privileged bwrap starts us as root: the program must not be, and root is exempt from RLIMIT_NPROC.
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        if os.getuid() != uid or os.geteuid() != uid:
            os._exit(3)
    limits = payload["limits"]
    for name, value in (
        ("RLIMIT_CORE", 0),
        ("RLIMIT_NPROC", limits["processes"]),
        ("RLIMIT_NOFILE", limits["open_files"]),
        ("RLIMIT_FSIZE", limits["file_bytes"]),
        ("RLIMIT_CPU", limits["cpu_seconds"]),
        ("RLIMIT_AS", limits["memory_bytes"]),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))


def main():
    payload = json.loads(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # `input()` in a completion reads EOF instead of waiting for the timeout
    os.close(devnull)
    _limit(payload)
    # Bound before the program runs: it may rebind names in modules (os.write, json.dumps) to forge results.
    write, fd, nonce = os.write, payload["result_fd"], payload["nonce"]
    exit_now, source_of = os._exit, compile

    def leave(status, error=False):
        if error:
            try:
                traceback.print_exc()
            except BaseException:  # noqa: BLE001, S110 (as below)
                pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()  # what the program printed helps whoever debugs a reward
            except BaseException:  # noqa: BLE001, S110 (the program may have closed or replaced its streams)
                pass
        exit_now(status)  # skips the program's atexit handlers and any threads it left running

    def report(index, passed):
        try:
            write(fd, f"{nonce} {index} {'pass' if passed else 'fail'}\n".encode())
        except BaseException:  # noqa: BLE001 (whatever the program did to the pipe, stop reporting)
            exit_now(4)  # the program closed or replaced the pipe: every unreported test counts as failed

    namespace = {"__name__": "__solution__", "__builtins__": builtins}
    try:
        exec(source_of(payload["program"], "<completion>", "exec"), namespace)  # noqa: S102 (the sandbox's purpose)
    except BaseException:  # noqa: BLE001 (SystemExit included: exiting before the tests is failing them)
        leave(1, error=True)
    steps, payload = payload["steps"], None
    for index, (kind, source) in enumerate(steps):
        try:
            exec(source_of(source, f"<test {index}>", "exec"), namespace)  # noqa: S102
            passed = True
        except BaseException:  # noqa: BLE001 (a test that exits or is interrupted failed)
            passed = False
        if kind == "test":
            report(index, passed)
    leave(0)


if __name__ == "__main__":  # run as `python -c`; importing this module runs nothing
    main()
