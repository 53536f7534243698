"""The lab: a self-built transformer and the stages that train, align and evaluate it."""

__version__ = "0.1.0"
