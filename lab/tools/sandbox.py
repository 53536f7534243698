"""The `python` tool: run model-written code in a throwaway, locked-down child process.

Model output is data, never code for this process: it runs in a separate interpreter (`-I -S`: no lab or
site packages), as uid/gid 65534 (nobody) with no groups, no capabilities and no_new_privs, under rlimits
(CPU, address space, processes, file size), with an empty environment. Where the kernel allows (probed once,
see `sandbox_status`) it also gets new network, pid, mount, ipc and uts namespaces: no network at all, no view
of other processes, and a read-only root filesystem with private tmpfs on /tmp and /dev/shm, so nothing it
writes outlives it. The whole process group is killed at the wall-clock limit and output is capped while it
is read. The chain is util-linux tools: unshare -> sh (root, pid 1, mounts) -> prlimit -> setpriv -> python.
"""

from __future__ import annotations

import functools
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace

from lab.tools.result import ToolResult

NOBODY = 65534
MAX_CODE_BYTES = 64 * 1024  # one argv string can hold 128 KiB; no sane tool call is this long
STDERR_TAIL = 4096  # only the traceback's end is ever shown
MAX_STDERR_BYTES = 256 * 1024  # past this the child is killed, so a stderr flood cannot keep us busy reading

# Namespace flags per protection; --mount-proc gives the new pid namespace its own /proc.
_FLAGS = {"net": ["--net"], "pid": ["--pid", "--fork", "--mount-proc"], "mount": ["--mount"], "ipc": ["--ipc"],
          "uts": ["--uts"]}
# Strongest first; the first that runs a trivial program is used (containers often forbid unshare).
_LEVELS = [(("net", "pid", "mount", "ipc", "uts"), True), (("net", "pid", "mount"), True), (("net",), False),
           ((), False)]

# Runs as root inside the new mount namespace, before privileges are dropped. The root remount is a
# per-mount-namespace bind flag: the host's filesystem stays writable. sh stays pid 1 and waits (no exec) so
# that a child killed by a signal reports 128+signal; `unshare --fork` would garble that status.
_PRIVATE_FS = """set -e
mount -o remount,bind,ro /
mount -t tmpfs -o size="$1"m,mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o size=1m,mode=1777,nosuid,nodev tmpfs /dev/shm
mkdir -m 700 /tmp/work && chown "$2:$2" /tmp/work && cd /tmp/work
shift 2
"$@"
"""
_TRACEBACK_HEADERS = ("Traceback (most recent call last):",
                      "During handling of the above exception, another exception occurred:",
                      "The above exception was the direct cause of the following exception:")
_SHARED_FS = 'cd "$1" && shift 2 && "$@"'  # fallback: a host temp dir, removed by us afterwards


@dataclass(frozen=True)
class SandboxLimits:
    cpu_seconds: int = 5
    wall_seconds: float = 10
    memory_mb: int = 512  # address space, so it also bounds what a single allocation may ask for
    max_processes: int = 16  # RLIMIT_NPROC: counts every process of the sandbox uid, machine-wide
    max_output_bytes: int = 2000
    file_size_mb: int = 8


@dataclass(frozen=True)
class _Setup:
    interpreter: str | None
    namespaces: tuple[str, ...]
    private_fs: bool
    drop_uid: bool
    problem: str | None  # why protections are missing, or why nothing can run


def rlimits(limits: SandboxLimits) -> dict[str, int]:
    """The soft rlimits the child runs under (seconds, bytes, processes), named as in RLIMIT_<NAME>."""
    return {"cpu": limits.cpu_seconds, "as": limits.memory_mb << 20, "nproc": limits.max_processes,
            "fsize": limits.file_size_mb << 20}


def _command(code: str, limits: SandboxLimits, setup: _Setup, workdir: str) -> list[str]:
    # env -i right before the interpreter: the shell's cd would otherwise export PWD and OLDPWD (a host path).
    variables = [f"{key}={value}" for key, value in _environment(setup, workdir).items()]
    python = ["env", "-i", *variables, setup.interpreter, "-I", "-S", "-B", "-X", "utf8", "-c", code]
    if setup.drop_uid:
        python = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--no-new-privs",
                  "--bounding-set=-all", "--inh-caps=-all", "--", *python]
    # Soft CPU limit sends SIGXCPU; the hard limit one second later is SIGKILL for code that catches it.
    soft = rlimits(limits)
    python = ["prlimit", f"--cpu={soft['cpu']}:{soft['cpu'] + 1}", f"--as={soft['as']}", f"--nproc={soft['nproc']}",
              f"--fsize={soft['fsize']}", "--", *python]
    owner = str(NOBODY if setup.drop_uid else os.getuid())
    if setup.private_fs:
        shell = ["/bin/sh", "-c", _PRIVATE_FS, "sandbox", str(4 * limits.file_size_mb + 1), owner]
    else:
        shell = ["/bin/sh", "-c", _SHARED_FS, "sandbox", workdir, owner]
    flags = [flag for name in setup.namespaces for flag in _FLAGS[name]]
    return (["unshare", *flags, "--"] if flags else []) + shell + python


def _environment(setup: _Setup, workdir: str) -> dict[str, str]:
    """The child's whole environment (-I makes python ignore the PYTHON* ones; they document intent)."""
    home = "/tmp/work" if setup.private_fs else workdir
    return {"PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONIOENCODING": "utf-8"}


def _trial(setup: _Setup) -> str | None:
    """Run print('ok') under `setup`; None when it works, else the reason it does not."""
    result = _run(setup, "print('ok')", SandboxLimits())
    return None if result.ok and result.output == "ok\n" else (result.output.strip() or "no output")


@functools.lru_cache(maxsize=1)
def _setup() -> _Setup:
    root = os.geteuid() == 0
    tools = ["prlimit"] + (["setpriv"] if root else [])
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        return _Setup(None, (), False, root, f"{', '.join(missing)} not found (install util-linux)")
    # sys.executable comes last: a venv under /root (mode 700) is not executable by nobody.
    candidates = ["/usr/bin/python3", "/usr/local/bin/python3", shutil.which("python3"), sys.executable]
    interpreter, problem = None, "no python3 interpreter found"
    for candidate in dict.fromkeys(os.path.realpath(c) for c in candidates if c):
        problem = _trial(_Setup(candidate, (), False, root, None))
        if problem is None:
            interpreter = candidate
            break
    if interpreter is None:
        who = "the nobody user" if root else "this user"
        return _Setup(None, (), False, root, f"no python3 that {who} can run ({problem})")
    if not root:
        return _Setup(interpreter, (), False, root, "not running as root: no uid drop, namespaces or private /tmp")
    if shutil.which("unshare") is None:
        return _Setup(interpreter, (), False, root, "unshare not found: no namespaces or private /tmp")
    first_problem = None
    for namespaces, private_fs in _LEVELS:
        setup = _Setup(interpreter, namespaces, private_fs, root, None)
        problem = _trial(setup)
        if problem is None:
            return replace(setup, problem=first_problem)
        first_problem = first_problem or f"full isolation failed: {problem}"
    return _Setup(interpreter, (), False, root, first_problem)


# Run inside the sandbox by sandbox_status: what the child itself sees, not what the command line asked for.
_PROBE = """import json, os, resource
status = open("/proc/self/status").read()
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "no_new_privs": "NoNewPrivs:\\t1" in status,
    "capabilities": [line.split()[1] for line in status.splitlines() if line.startswith("CapEff:")][0],
    "rlimits": {name: resource.getrlimit(getattr(resource, "RLIMIT_" + name.upper()))[0]
                for name in ("cpu", "as", "nproc", "fsize")},
    "processes_visible": sorted(int(pid) for pid in os.listdir("/proc") if pid.isdigit()),
    "network_interfaces": sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]),
    "root_read_only": bool(os.statvfs("/").f_flag & os.ST_RDONLY),
    "tmp_filesystem": [line.split()[2] for line in open("/proc/self/mounts") if line.split()[1] == "/tmp"][-1:],
    "environment": sorted(os.environ)}))"""


@functools.lru_cache(maxsize=1)
def _measured() -> dict | None:
    """The probe's report from inside the sandbox at its default limits, or None when it cannot run."""
    setup = _setup()
    if setup.interpreter is None:
        return None
    result = _run(setup, _PROBE, SandboxLimits())
    return json.loads(result.output) if result.ok else None


def sandbox_status() -> dict:
    """Which protections the python tool has on this machine, as measured from inside it (probed once per
    process): the child's uid, privileges, capabilities, rlimits, the processes and network interfaces it can
    see, whether the root filesystem is read-only; plus the isolation level chosen and why it is not stronger."""
    setup, seen = _setup(), _measured()
    status = {"available": seen is not None, "interpreter": setup.interpreter, "namespaces": list(setup.namespaces),
              "problem": setup.problem if seen is not None or setup.interpreter is None else "the probe did not run"}
    if seen is None:
        return status
    return {**status, **seen,
            "rlimits_as_set": seen["rlimits"] == rlimits(SandboxLimits()),
            "network_isolated": seen["network_interfaces"] in ([], ["lo"]),
            "pid_isolated": len(seen["processes_visible"]) < 4,  # its sh (pid 1) and itself, not the host's
            "private_filesystem": seen["root_read_only"] and seen["tmp_filesystem"] == ["tmpfs"]}


def _collect(proc: subprocess.Popen, limits: SandboxLimits, deadline: float) -> tuple[bytes, bytes, str | None]:
    """Read stdout (at most max_output_bytes + 1) and the tail of stderr until both close or a limit hits."""
    out, err, err_total = b"", b"", 0
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    selector.register(proc.stderr, selectors.EVENT_READ)
    with selector:
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return out, err, "timeout"
            for key, _ in selector.select(remaining):
                if key.fileobj is proc.stdout:
                    chunk = os.read(key.fd, limits.max_output_bytes + 1 - len(out))
                    out += chunk
                    if len(out) > limits.max_output_bytes:
                        return out, err, "output"
                else:
                    chunk = os.read(key.fd, 65536)
                    err, err_total = (err + chunk)[-STDERR_TAIL:], err_total + len(chunk)
                    if err_total > MAX_STDERR_BYTES:
                        return out, err, "output"
                if not chunk:
                    selector.unregister(key.fileobj)
    try:
        proc.wait(timeout=max(deadline - time.monotonic(), 0.001))
    except subprocess.TimeoutExpired:  # pipes closed (or handed to a daemon) but still running
        return out, err, "timeout"
    return out, err, None


def _error_line(stderr: str) -> str:
    """The exception line of a traceback: the last line that is neither a frame nor a traceback header.

    Processes the code forked share its stderr and are killed when the sandbox's pid 1 exits, so the stream
    can end in the first line of a child's traceback, cut short ("Traceback (most recent call last):")."""
    for line in reversed(stderr.splitlines()):
        if line.strip() and not line[0].isspace() and line.strip() not in _TRACEBACK_HEADERS:
            return line.strip()
    return ""


def _verdict(out: bytes, err: bytes, stop: str | None, returncode: int, limits: SandboxLimits):
    """(ok, message appended to stdout, error_kind) for a finished run."""
    last = _error_line(err.decode("utf-8", "replace"))
    if stop == "timeout":
        return False, f"error: timed out after {limits.wall_seconds:g} s", "timeout"
    if stop == "output":
        return False, f"error: output truncated at {limits.max_output_bytes} bytes", "output_limit"
    if returncode == 0:
        return True, "", None
    # sh reports a child killed by signal N as 128+N. SIGKILL is the hard CPU limit for code that ignores SIGXCPU.
    sig = returncode - 128 if returncode > 128 else -returncode if returncode < 0 else 0
    if sig in (signal.SIGXCPU, signal.SIGKILL):  # the CPU rlimit, told apart from the wall clock
        return False, f"error: CPU time limit of {limits.cpu_seconds} s exceeded", "cpu_limit"
    if last.startswith("MemoryError"):
        return False, "error: memory limit exceeded", "memory"
    if last.split(":")[0] in ("SyntaxError", "IndentationError", "TabError"):
        return False, last, "syntax"
    if sig in signal.valid_signals():
        return False, f"error: killed by {signal.Signals(sig).name}", "crash"
    return False, last or f"error: exit status {returncode}", "nonzero_exit"


def _run(setup: _Setup, code: str, limits: SandboxLimits) -> ToolResult:
    start = time.monotonic()
    workdir = "" if setup.private_fs else tempfile.mkdtemp(prefix="lab-sandbox-")
    try:
        if workdir and setup.drop_uid:
            os.chown(workdir, NOBODY, NOBODY)
        try:
            proc = subprocess.Popen(_command(code, limits, setup, workdir), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, start_new_session=True)
        except OSError as error:  # e.g. the machine is out of processes
            return ToolResult(False, f"error: could not start the sandbox: {error.strerror}", "unavailable",
                              time.monotonic() - start)
        try:
            out, err, stop = _collect(proc, limits, start + limits.wall_seconds)
        finally:
            # Kill the group before reaping the leader, so its id cannot have been reused by then.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            returncode = proc.wait()
            proc.stdout.close()
            proc.stderr.close()
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    ok, message, kind = _verdict(out, err, stop, returncode, limits)
    text = out[:limits.max_output_bytes].decode("utf-8", "replace")
    if message:
        text += ("" if not text or text.endswith("\n") else "\n") + message
    return ToolResult(ok, text, kind, time.monotonic() - start)


def run_python(code: str, limits: SandboxLimits = SandboxLimits()) -> ToolResult:
    """Run untrusted code in the sandbox; stdout is the output, and every failure is an `error: ...` result."""
    if not isinstance(code, str) or not code.strip():
        return ToolResult(False, "error: the python tool needs code to run, e.g. print(2 + 2)", "bad_arguments")
    if "\x00" in code:
        return ToolResult(False, "error: the code contains a NUL byte", "bad_arguments")
    try:
        size = len(code.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates cannot go into argv
        return ToolResult(False, "error: the code is not valid UTF-8 text", "bad_arguments")
    if size > MAX_CODE_BYTES:
        return ToolResult(False, f"error: code longer than {MAX_CODE_BYTES} bytes", "bad_arguments")
    setup = _setup()
    if setup.interpreter is None:
        return ToolResult(False, f"error: the python sandbox is unavailable: {setup.problem}", "unavailable")
    return _run(setup, code, limits)
