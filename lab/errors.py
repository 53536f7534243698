"""The lab's one error type: bad input gets one clear line, never a traceback."""


class LabError(Exception):
    """A problem the user can fix (bad config, missing file, wrong shape). The CLI prints `error: <message>`
    and exits with status 2; everything else is a bug and keeps its traceback."""
