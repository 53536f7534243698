"""One writer at a time per run directory: `with run_lock(root, command):` around anything that writes into it.

The lock is an flock on RUN/lab.lock, whose text names the holder (pid, command, start time, host), so a second
writer gets one line saying who holds the run. The kernel drops an flock when its process dies, however it
dies, so a lock a SIGKILLed process left is simply taken over: its file is there, its lock is not. Re-entrant
within a process (`lab pretrain` runs the data and tokenizer stages through the pipeline, which locks too);
under torchrun only rank 0 takes it, since the other ranks of the same job write where rank 0 tells them. A
file at that path that is not the lab's lock is never deleted or overwritten: that is one error line too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from lab.errors import LabError

LOCK_NAME = "lab.lock"
_MARK = "lab run lock"  # what makes a lock file the lab's own
_held: set[Path] = set()  # the lock files this process holds


def _holder(text: str) -> dict | None:
    """The holder a lock file's text names, or None when the text is not the lab's lock."""
    try:
        info = json.loads(text)
    except ValueError:
        return None
    return info if isinstance(info, dict) and info.get("lock") == _MARK else None


@contextlib.contextmanager
def run_lock(root: Path, command: str | None = None):
    """Hold RUN/lab.lock for the block (see the module docstring); LabError naming the holder when another
    process holds it, or when the file there is not the lab's."""
    root = Path(root)
    path = (root / LOCK_NAME).resolve()
    if path in _held or os.environ.get("RANK", "0") != "0":  # held by this process, or by rank 0 of this job
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        if text.strip() and _holder(text) is None:
            raise LabError(f"{path} is not the lab's run lock (it holds {text.strip()[:60]!r}); it was left as it is: "
                           "move it away if nothing uses it, or use another --name")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _holder(os.pread(fd, 4096, 0).decode("utf-8", "replace")) or {}
            raise LabError(f"run {root} is in use by pid {who.get('pid', '?')} on {who.get('host', '?')} "
                           f"(`{who.get('command', '?')}`, started {who.get('started', '?')}); wait for it to finish, "
                           "or stop it and run this again") from None
        info = {"lock": _MARK, "pid": os.getpid(), "host": socket.gethostname(),
                "command": command or " ".join(["lab", *sys.argv[1:]]), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        _held.add(path)
        try:
            yield
        finally:
            _held.discard(path)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

