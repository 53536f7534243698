"""Web text for pretraining from users' own crawls: HTML, WARC and JSONL in, a filtered, PII-scrubbed,
deduplicated `datasets` Dataset plus a per-stage report out. Entry point: `run_pipeline`."""

from tasks.webtext.pipeline import PipelineConfig, run_pipeline
from tasks.webtext.quality import QualityConfig

__all__ = ["PipelineConfig", "QualityConfig", "run_pipeline"]
