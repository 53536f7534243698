"""The model's tools: hostile code must end as a clear tool error, normal code and arithmetic must just work.

Hostile runs use short limits (1 s CPU, 2 s wall) so each is bounded by the sandbox itself and the file stays fast.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import replace

import pytest

from lab.tools import TOOLS, SandboxLimits, ToolContext, calculate, lookup, run_python, run_tool, sandbox, sandbox_status
from tasks.world import WorldConfig, build_world

# RLIMIT_NPROC counts every process of the sandbox uid on the machine: the fork-bomb test run beside
# another sandbox test in a second xdist worker can starve it of forks, so they all run on one worker.
pytestmark = [pytest.mark.xdist_group("sandbox"), pytest.mark.sandbox]

FAST = SandboxLimits(cpu_seconds=1, wall_seconds=2)
STATUS = sandbox_status()
needs_sandbox = pytest.mark.skipif(not STATUS["available"], reason=f"no python sandbox here: {STATUS['problem']}")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="dropping to uid nobody needs root; the lab runs as root")
needs_netns = pytest.mark.skipif(not STATUS["network_isolated"],
                                 reason=f"no network namespace on this machine: {STATUS['problem']}")
needs_private_fs = pytest.mark.skipif(not STATUS["private_filesystem"],
                                      reason=f"no private mount namespace on this machine: {STATUS['problem']}")


# --- sandbox: protections and normal code ---

@needs_sandbox
def test_status_reports_what_the_child_saw():
    """Measured inside the sandbox: compared with what the lab asks for, not with a copy of itself."""
    limits = SandboxLimits()
    assert STATUS["rlimits"] == {"cpu": limits.cpu_seconds, "as": limits.memory_mb << 20,
                                 "nproc": limits.max_processes, "fsize": limits.file_size_mb << 20}
    assert STATUS["rlimits_as_set"]
    assert STATUS["environment"] == sorted(["PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING"])
    assert os.access(STATUS["interpreter"], os.X_OK)
    if os.geteuid() == 0:
        assert (STATUS["uid"], STATUS["gid"], STATUS["groups"]) == (65534, 65534, [])
        assert STATUS["no_new_privs"] and int(STATUS["capabilities"], 16) == 0
    if "pid" in STATUS["namespaces"]:  # its own sh (pid 1) and itself: no host process
        assert STATUS["pid_isolated"] and STATUS["processes_visible"][0] == 1 and len(STATUS["processes_visible"]) <= 3
    if "net" in STATUS["namespaces"]:
        assert STATUS["network_interfaces"] in ([], ["lo"])


@needs_sandbox
@pytest.mark.parametrize("code, expected", [('print("strawberry".count("r"))', "3\n"),
                                            ("print(sum(range(10)))", "45\n"), ('print("héllo ✓")', "héllo ✓\n")])
def test_normal_code_runs(code, expected):
    result = run_python(code)
    assert result == replace(result, ok=True, output=expected, error_kind=None)
    assert result.seconds < 5


@needs_sandbox
@needs_root
def test_child_is_nobody_with_empty_environment_in_empty_workdir():
    code = "import os; print(os.getuid(), os.getgid(), os.getgroups()); print(sorted(os.environ)); print(os.listdir())"
    lines = run_python(code, FAST).output.splitlines()
    assert lines[0] == "65534 65534 []"
    assert lines[1] == str(sorted(["PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING"]))
    assert lines[2] == "[]"


@needs_sandbox
@pytest.mark.parametrize("module", ["lab", "torch"])
def test_lab_packages_are_not_importable(module):
    result = run_python(f"import {module}", FAST)
    assert (result.ok, result.error_kind) == (False, "nonzero_exit")
    assert result.output == f"ModuleNotFoundError: No module named '{module}'"


@needs_sandbox
def test_syntax_error_and_exit_status():
    assert run_python("print(1", FAST).error_kind == "syntax"
    result = run_python("import sys; print('hi'); sys.exit(3)", FAST)
    assert (result.ok, result.output, result.error_kind) == (False, "hi\nerror: exit status 3", "nonzero_exit")


@pytest.mark.parametrize("code, message", [("", "needs code"), ("print(1)\x00", "NUL byte"),
                                           ("x = 1\n" * 20000, "code longer than"), ("'\ud800'", "UTF-8")])
def test_bad_code_arguments_are_refused_before_running(code, message):
    result = run_python(code)
    assert not result.ok and result.error_kind == "bad_arguments" and message in result.output


@needs_sandbox
def test_the_error_is_the_exception_line_even_when_a_cut_traceback_follows_it():
    # what a fork bomb leaves on the shared stderr: the real error, then a child killed mid-traceback
    code = "import sys\nsys.stderr.write('BlockingIOError: [Errno 11] Resource temporarily unavailable\\n'"\
           " 'Traceback (most recent call last):\\n  File \"<string>\", line 2, in <module>\\n')\nsys.exit(1)"
    result = run_python(code, FAST)
    assert (result.ok, result.error_kind) == (False, "nonzero_exit")
    assert result.output == "BlockingIOError: [Errno 11] Resource temporarily unavailable"


# --- sandbox: hostile code ---

@needs_sandbox
def test_fork_bomb_hits_the_process_limit():
    """Children that stay alive use up RLIMIT_NPROC: the fork that fails must be refused by the limit (EAGAIN)
    long before the wall clock, and every child dies with the run."""
    code = ("import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(60)\n"
            "        n += 1\nexcept BlockingIOError as e:\n    print('refused after', n, 'forks:', e)")
    result = run_python(code, SandboxLimits(cpu_seconds=5, wall_seconds=20))
    assert result.ok and result.seconds < 10, result
    assert result.output.startswith("refused after ") and "[Errno 11] Resource temporarily unavailable" in result.output
    assert int(result.output.split()[2]) < SandboxLimits().max_processes


@needs_sandbox
@pytest.mark.parametrize("code", ["while True: pass",
                                  # ignoring SIGXCPU (the soft limit) only buys one more second: then SIGKILL
                                  "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True: pass"])
def test_infinite_loop_hits_the_cpu_limit_long_before_the_wall_clock(code):
    result = run_python(code, SandboxLimits(cpu_seconds=1, wall_seconds=30))
    assert (result.ok, result.error_kind) == (False, "cpu_limit")
    assert result.output == "error: CPU time limit of 1 s exceeded"
    assert result.seconds < 15  # the wall clock (30 s) did not end it


@needs_sandbox
def test_sleep_hits_the_wall_clock_limit():
    result = run_python("import time\nprint('going to sleep', flush=True)\ntime.sleep(100)", FAST)
    assert (result.ok, result.error_kind) == (False, "timeout")
    assert result.output == "going to sleep\nerror: timed out after 2 s"
    assert result.seconds < 4


@needs_sandbox
def test_huge_allocation_hits_the_memory_limit():
    result = run_python("x = bytearray(2 * 1024**3)", FAST)
    assert (result.ok, result.output, result.error_kind) == (False, "error: memory limit exceeded", "memory")


@needs_sandbox
@needs_root
def test_reading_etc_shadow_is_denied():
    result = run_python("print(open('/etc/shadow').read())", FAST)
    assert (result.ok, result.error_kind) == (False, "nonzero_exit")
    assert result.output == "PermissionError: [Errno 13] Permission denied: '/etc/shadow'"


@contextlib.contextmanager
def host_path(folder: str):
    """A fresh path under `folder` on the host, removed afterwards whatever the sandbox managed to do."""
    path = os.path.join(folder, f"lab-sandbox-test-{uuid.uuid4().hex}")
    try:
        yield path
    finally:
        if os.path.exists(path):
            os.remove(path)


@needs_sandbox
@needs_root
@pytest.mark.parametrize("folder", ["/etc", "/root", pytest.param("/var/tmp", marks=needs_private_fs)])
def test_writes_outside_the_workdir_are_refused(folder):
    with host_path(folder) as path:
        result = run_python(f"try:\n    open({path!r}, 'w').write('x')\n    print('written')\nexcept OSError as e:\n"
                            f"    print('refused:', e)", FAST)
        assert result.ok and result.output.startswith("refused: ["), result  # the sandbox ran, and said no
        assert "Read-only file system" in result.output or "Permission denied" in result.output
        assert not os.path.exists(path)


@needs_sandbox
@needs_root
@needs_private_fs
def test_tmp_is_private_and_its_files_do_not_reach_the_host():
    with host_path("/tmp") as path:
        result = run_python(f"open({path!r}, 'w').write('x')\nprint(open({path!r}).read())", FAST)
        assert (result.ok, result.output) == (True, "x\n")  # written inside, where /tmp is the sandbox's tmpfs
        assert not os.path.exists(path)


@needs_sandbox
@needs_root
@needs_private_fs
def test_filling_the_tmpfs_ends_in_no_space_and_leaves_the_host_alone():
    """/tmp is a tmpfs of 4 x the file-size limit (+1 MB): files just under the limit fill it; ENOSPC, not the
    host's disk, ends the loop."""
    before = shutil.disk_usage("/tmp").used
    code = ("n = 0\ntry:\n    while True:\n        open(f'/tmp/f{n}', 'wb').write(b'x' * ((8 << 20) - 1))\n"
            "        n += 1\nexcept OSError as e:\n    print(n, e)")
    result = run_python(code, SandboxLimits(cpu_seconds=5, wall_seconds=20))
    assert result.ok and result.output.endswith("[Errno 28] No space left on device\n"), result
    assert int(result.output.split()[0]) == 4  # 4 full files, the fifth did not fit
    assert abs(shutil.disk_usage("/tmp").used - before) < 16 << 20


@needs_sandbox
@needs_root
def test_host_processes_are_invisible_and_cannot_be_signalled():
    host = subprocess.Popen(["sleep", "30"])
    try:
        code = (f"import os\nprint(os.path.exists('/proc/{host.pid}'), sorted(int(p) for p in os.listdir('/proc') "
                f"if p.isdigit()))\ntry:\n    os.kill({host.pid}, 9)\n    print('killed')\nexcept OSError as e:\n"
                f"    print('refused:', type(e).__name__)")
        result = run_python(code, FAST)
        assert result.ok, result
        seen, kill = result.output.splitlines()
        assert kill in ("refused: ProcessLookupError", "refused: PermissionError")
        if STATUS["pid_isolated"]:
            assert seen.startswith("False [1, ") and len(seen.split(",")) <= 3  # its sh and itself only
        assert host.poll() is None  # still running
    finally:
        host.kill()
        host.wait()


@needs_sandbox
def test_file_size_limit():
    result = run_python("open('big', 'wb').write(b'x' * (9 << 20))", FAST)
    assert (result.ok, result.output) == (False, "OSError: [Errno 27] File too large")


@needs_sandbox
@needs_netns
@pytest.mark.parametrize("address", ["127.0.0.1", "1.1.1.1"])
def test_network_is_unreachable(address):
    with socket.socket() as listener:  # a live port on the host: only the sandbox's own namespace can refuse it
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1] if address == "127.0.0.1" else 80
        code = f"import socket\nsocket.create_connection(({address!r}, {port}), timeout=1)\nprint('connected')"
        result = run_python(code, FAST)
    assert not result.ok and "connected" not in result.output
    assert result.output.startswith("OSError") or "timed out" in result.output


@needs_sandbox
@pytest.mark.parametrize("code", ["print('x' * 10_000_000)", "while True: print('y' * 1000)",
                                  "import sys\nwhile True: sys.stderr.write('z' * 1000)"])
def test_floods_of_output_are_truncated(code):
    result = run_python(code, FAST)
    assert (result.ok, result.error_kind) == (False, "output_limit")
    assert result.output.endswith("error: output truncated at 2000 bytes")
    assert len(result.output) <= 2000 + 40 and result.seconds < 2


@needs_sandbox
def test_background_processes_die_with_the_run():
    marker = uuid.uuid4().hex
    code = f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)  # {marker}\nprint('parent done')"
    assert run_python(code, FAST).output == "parent done\n"
    assert not any(marker.encode() in _cmdline(pid) for pid in filter(str.isdigit, os.listdir("/proc")))


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:  # exited while we looked
        return b""


@needs_sandbox
@needs_root
@pytest.mark.parametrize("namespaces, private_fs", sandbox._LEVELS)
def test_every_level_protects_and_leaves_no_work_dirs(namespaces, private_fs, monkeypatch):
    """Weaker levels are used where unshare is refused; they must still drop the uid, limit and clean up.
    The strongest levels keep the work dir in a private tmpfs; the others make (and must remove) a host dir."""
    base = tempfile.mkdtemp(prefix="lab-tools-test-")
    os.chmod(base, 0o755)
    monkeypatch.setattr(tempfile, "tempdir", base)  # count this test's host work dirs only
    setup = replace(sandbox._setup(), namespaces=namespaces, private_fs=private_fs)
    try:
        uid = sandbox._run(setup, "import os; open('f', 'w').write('x'); print(os.getuid())", FAST)
        memory = sandbox._run(setup, "x = bytearray(2 * 1024**3)", FAST)
        flood = sandbox._run(setup, "print('x' * 10_000_000)", FAST)
        assert (uid.ok, uid.output) == (True, "65534\n")
        assert memory.error_kind == "memory" and flood.error_kind == "output_limit"
        assert os.listdir(base) == []  # no work dirs left behind
    finally:
        os.rmdir(base)


# --- calculator ---

@pytest.mark.parametrize("expression, expected", [
    ("1/3*3", "1"), ("1/3", "0.3333333333"), ("2/3", "0.6666666667"), ("0.1+0.2", "0.3"), ("-(3+4)*2", "-14"),
    ("3 * (4 + 5) - 6 / 2", "24"), ("7//2", "3"), ("-7//2", "-4"), ("7 % 3", "1"), ("5.5 % 2", "1.5"),
    ("2**10", "1024"), ("2**-2", "0.25"), ("--1", "1"), (" 1_000 * 2 ", "2000"), ("10**100", "1" + "0" * 100),
    ("(1/3)**1000", "7.563891323e-478"), ("(" * 90 + "1" + ")" * 90, "1")])
def test_calculator_is_exact(expression, expected):
    result = calculate(expression)
    assert (result.ok, result.output, result.error_kind) == (True, expected, None)


@pytest.mark.parametrize("expression, message", [
    ("9**9**9**9", "error: number too large"), ("2**1001", "error: number too large"),
    ("10**100 + 1", "error: number too large"), ("1e400", "error: number too large"),
    ("1/0", "error: division by zero"), ("5 % 0", "error: division by zero"), ("0**-1", "error: division by zero"),
    ("__import__('os')", "error: only arithmetic is allowed"), ("(1).__class__", "error: only arithmetic is allowed"),
    ("x + 1", "error: only arithmetic is allowed"), ("'a' * 3", "error: only arithmetic is allowed"),
    ("[1, 2]", "error: only arithmetic is allowed"), ("True + 1", "error: only arithmetic is allowed"),
    ("2 ^ 3", "error: only arithmetic is allowed (use ** for powers)"),
    ("1 +" + " 1 +" * 60 + " 1", "error: expression longer than 200 characters"),
    ("2 +", "error: not a valid arithmetic expression"), ("4 ** 0.5", "error: only whole-number exponents")])
def test_calculator_refuses_clearly(expression, message):
    result = calculate(expression)
    assert not result.ok and result.output.startswith(message) and result.error_kind


def test_calculator_never_raises_on_junk():
    for junk in [None, 42, "", "   ", "\x00", "(" * 199, "-" * 199 + "1", "1" * 200, "lambda: 1", "import os"]:
        assert calculate(junk).ok is (junk == "-" * 199 + "1")


# --- lookup and the registry ---

@pytest.fixture(scope="module")
def world():
    return build_world(WorldConfig(people_per_exposure=2))


def test_lookup_hit_strips_quotes_and_whitespace(world):
    person = world.people[0]
    result = lookup(f'  "{person.name}"\n', world)
    assert result.ok and result.output == world.encyclopedia(person.name)
    assert f"Birth city: {person.attributes['birth_city']}" in result.output


def test_lookup_miss_and_missing_world(world):
    result = lookup("'Nobody Atall'", world)
    assert (result.output, result.error_kind) == ("error: no article about 'Nobody Atall'", "not_found")
    assert lookup("", world).error_kind == "bad_arguments"
    assert lookup("Anyone", None).error_kind == "unavailable"


@pytest.mark.parametrize("name, message", [
    ("", "error: lookup needs a person's name"), ("' \n`", "error: lookup needs a person's name"),
    ("Mira\nTolvane", "error: lookup takes one person's name on one line"),
    ("Mira Tolvane, who was born " * 10, "error: a name is at most 80 characters"),
])
def test_a_bad_name_is_one_short_error_line_not_an_echo_of_it(world, name, message):
    """A miss echoes the name: a paragraph or several lines as the name would come back as one."""
    result = lookup(name, world)
    assert (result.ok, result.error_kind) == (False, "bad_arguments") and result.output.startswith(message)
    assert "\n" not in result.output and len(result.output) < 100


def test_run_tool_dispatches_and_rejects_unknown_tools(world):
    assert list(TOOLS) == ["python", "calculator", "lookup"]
    unknown = run_tool("x", "1")
    assert (unknown.ok, unknown.output, unknown.error_kind) == (
        False, "error: unknown tool 'x'; tools: python, calculator, lookup", "unknown_tool")
    assert run_tool("calculator", "6*7").output == "42"
    assert run_tool("lookup", world.people[1].name, ToolContext(world=world)).ok
    assert run_tool("python", None).error_kind == "bad_arguments"
    if STATUS["available"]:
        assert run_tool("python", "print(6*7)", ToolContext(limits=FAST)).output == "42\n"


# --- CI: a security test may not skip ---

@pytest.mark.parametrize("required, outcome", [("1", "1 error"), ("", "1 skipped")])  # skips happen in setup
def test_a_skipped_sandbox_test_fails_when_the_sandbox_is_required(tmp_path, required, outcome):
    """LAB_REQUIRE_SANDBOX=1 (.ci/run) turns the skip of a test marked `sandbox` into a failure (tests/conftest.py)."""
    import sys

    shutil.copy(os.path.join(os.path.dirname(__file__), "conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_skips.py").write_text("import pytest\n\n@pytest.mark.sandbox\n"
                                            "@pytest.mark.skipif(True, reason='no namespaces here')\n"
                                            "def test_isolated():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "-W", "ignore::pytest.PytestUnknownMarkWarning", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "LAB_REQUIRE_SANDBOX": required})
    assert outcome in proc.stdout, proc.stdout
    if required:
        assert "may not skip: no namespaces here" in proc.stdout
