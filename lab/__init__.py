"""The lab: a self-built transformer and the stages that train, align and evaluate it."""

__version__ = "0.1.0"

import os as _os

# The lab prints its own progress; transformers' per-save progress bars only clutter it.
_os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
_os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
_os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
