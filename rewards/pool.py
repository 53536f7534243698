"""The verifier's worker pool: checks that need sympy run in separate processes with a hard deadline each.

Workers are fresh interpreters started by subprocess (sympy, math-verify's parser and their grammars imported
once each), so the pool survives a later fork (torch, TRL) and needs no `__main__` guard from callers. A
worker that overruns its deadline, or dies (out of memory: each has an address-space limit), is killed and
replaced; only its own check is lost, as "timeout". Workers start lazily, only as many as there is work for.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

STARTUP_TIMEOUT = 120.0
POOL_SIZE = min(4, os.cpu_count() or 1)
ROOT = str(Path(__file__).resolve().parents[1])


class Worker:
    """One worker process; `job` is the index of the check it runs (None when idle), `due` its deadline."""

    def __init__(self):
        code = f"import sys; sys.path.insert(0, {ROOT!r}); from rewards.equivalence import worker_main; worker_main()"
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.ready, self.job, self.due = False, None, time.monotonic() + STARTUP_TIMEOUT

    def close(self, kill: bool = True) -> None:
        if kill:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


class Pool:
    """Workers start lazily, only as many as there is work for; `lock` makes one batch run at a time."""

    def __init__(self, size: int):
        self.size, self.pid, self.workers, self.lock = size, os.getpid(), [], threading.Lock()

    def run(self, messages: list[list], timeout: float) -> list[str]:
        """Each message checked by some worker within `timeout` seconds of being handed over, order kept."""
        results, todo = [None] * len(messages), deque(range(len(messages)))
        with self.lock:
            self.workers += [Worker() for _ in range(min(self.size, len(messages)) - len(self.workers))]
            try:
                while todo or any(w.job is not None for w in self.workers):
                    for w in self.workers:
                        if w.ready and w.job is None and todo:
                            self._send(w, todo.popleft(), messages, timeout)
                    self._wait(results)
            except BaseException:  # interrupted: a late reply must not answer the next batch
                for w in [w for w in self.workers if w.job is not None]:
                    self._replace(w)
                raise
        return results

    def _send(self, w: Worker, job: int, messages: list[list], timeout: float) -> None:
        w.job, w.due = job, time.monotonic() + timeout
        try:
            w.proc.stdin.write((json.dumps(messages[job]) + "\n").encode())
            w.proc.stdin.flush()
        except BrokenPipeError:
            pass  # died while idle: its stdout reports EOF in _wait

    def _wait(self, results: list) -> None:
        busy = [w for w in self.workers if w.job is not None or not w.ready]
        wait = max(0.0, min(w.due for w in busy) - time.monotonic())
        poller = select.poll()  # not select.select: a big training process may hold fds above 1024
        for w in busy:
            poller.register(w.proc.stdout, select.POLLIN)
        readable = {fd for fd, _ in poller.poll(wait * 1000)}
        for w in busy:
            # one reply is outstanding at a time, so readline's buffer never hides a second one from poll
            line = w.proc.stdout.readline() if w.proc.stdout.fileno() in readable else None
            if line is None and time.monotonic() < w.due:
                continue
            if not w.ready and not line:
                raise RuntimeError("a verifier worker failed to start (its stderr says why)")
            if line:  # a verdict, or a new worker's "ready"
                if w.ready:
                    results[w.job] = json.loads(line)
                w.ready, w.job = True, None
            else:  # overran its deadline, or died mid-check (out of memory): only its own check is lost
                results[w.job] = "timeout"
                self._replace(w)

    def _replace(self, w: Worker) -> None:
        w.close()
        self.workers[self.workers.index(w)] = Worker()

    def close(self) -> None:
        with self.lock:
            for w in self.workers:
                w.close()
            self.workers = []


pool = Pool(POOL_SIZE)  # starts no process until a check needs one


def _new_pool_in_child() -> None:
    """A forked child closes its copies of the parent's pipes (so workers still see EOF when the parent
    exits) and gets a pool of its own, started if it ever needs one."""
    global pool
    for w in pool.workers:
        w.close(kill=False)
    pool = Pool(POOL_SIZE)


def shutdown() -> None:
    """Stop the pool's workers (registered with atexit); a later check starts new ones."""
    if pool.pid == os.getpid():
        pool.close()


atexit.register(shutdown)
os.register_at_fork(after_in_child=_new_pool_in_child)
