"""The lab's one error type: bad input gets one clear line, never a traceback."""

import errno


class LabError(Exception):
    """A problem the user can fix (bad config, missing file, wrong shape). The CLI prints `error: <message>`
    and exits with status 2; everything else is a bug and keeps its traceback."""


def disk_full(error: BaseException) -> bool:
    """A write failed for want of space: ENOSPC, a quota or a file-size limit, in the error or anything it
    was raised from (torch.save wraps the OSError of the file it writes), or in the message of a writer that
    keeps no errno (safetensors, torch.save to a path)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return True
        if any(s in str(error) for s in ("No space left on device", "File too large", "Disk quota exceeded",
                                          "file write failed")):
            return True
        error = error.__cause__ or error.__context__
    return False
