"""Run one `lab` command in this process and SIGKILL it at a chosen point: the real kills of tests/test_kills.py.

    python tests/kill_worker.py EVENT:WHAT:N lab-args...     (EVENT "none" runs the command unharmed)

The process kills itself with SIGKILL, which nothing can catch: no `finally`, no atexit, no flush runs, as when
the OOM killer or a pre-empted node ends a job. Events, each firing on its Nth occurrence in this process:
  step::N              before the Nth optimizer step (mid-step: gradients computed, weights not yet updated)
  save:GLOB:N          before the Nth torch.save to a file named GLOB (mid-checkpoint: weights written, state not)
  after-replace:GLOB:N right after the Nth os.replace onto a name matching GLOB (e.g. between atomic_dir's renames)
  call:MODULE.NAME:N   before the Nth call of a function (e.g. evals.harness._answers: mid-batch of an eval)
and one that is not a kill:
  fsize:BYTES:         no file may grow past BYTES (RLIMIT_FSIZE): a write past it fails, as on a full disk
"""

import fnmatch
import importlib
import os
import signal
import sys


def die() -> None:
    sys.stderr.write("kill_worker: SIGKILL\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def nth(n: int):
    """A function that is true on its nth call only."""
    calls = 0

    def hit() -> bool:
        nonlocal calls
        calls += 1
        return calls == n

    return hit


def arm(spec: str) -> None:
    event, what, n = spec.split(":")
    hit = nth(int(n or 1))
    if event == "none":
        return
    if event == "fsize":
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so the write fails (EFBIG) instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(what), int(what)))
        return
    if event == "step":
        from torch.optim.optimizer import register_optimizer_step_pre_hook

        def before_step(*_):
            if hit():
                die()

        register_optimizer_step_pre_hook(before_step)
    elif event == "save":
        import torch

        real_save = torch.save

        def save(obj, f, *args, **kwargs):
            name = getattr(f, "name", f)  # a path, or a file object opened on one
            if isinstance(name, (str, os.PathLike)) and fnmatch.fnmatch(os.path.basename(name), what) and hit():
                die()
            return real_save(obj, f, *args, **kwargs)

        torch.save = save
    elif event == "after-replace":
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            real_replace(src, dst, *args, **kwargs)
            if fnmatch.fnmatch(os.path.basename(dst), what) and hit():
                die()

        os.replace = replace
    elif event == "call":
        module_name, name = what.rsplit(".", 1)
        module = importlib.import_module(module_name)
        real = getattr(module, name)

        def call(*args, **kwargs):
            if hit():
                die()
            return real(*args, **kwargs)

        setattr(module, name, call)
    else:
        raise SystemExit(f"kill_worker: unknown event {event!r}")


if __name__ == "__main__":
    arm(sys.argv[1])
    from lab.cli import main

    sys.argv = ["lab", *sys.argv[2:]]
    main()
