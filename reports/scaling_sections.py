"""The report's section on the scaling sweep (experiments/scaling, lab/experiments/scaling.py): loss against size
and compute, recall by size, and the test of "some abilities appear abruptly with size" against Schaeffer et al.
2023, copying scored by exact match and by per-digit accuracy with the verdict the rule gives."""

from __future__ import annotations

import base64

from lab.runs import Run, read_json
from lab.stage_names import SCALING


def scaling_sections(run: Run, stage: str = SCALING) -> list[tuple[str, list]]:
    """The sweep's table (its fit and the copying verdict under it) and its figure, when the stage ran."""
    out = run.stage_dir(stage)
    if not run.is_complete(stage) or not (out / "table.md").exists():
        return []
    results = read_json(out / "results.json")
    steps = results.get("steps")
    verdict = results.get("abruptness", {}).get("verdict")
    text = (f"Models of several sizes pretrained on the same data ({steps} steps each, the run's batches: fixed data; "
            "the pipeline's experiments/scaling stage, or `lab experiment scaling RUN` with other sizes and steps): "
            "held-out loss against non-embedding parameters and training compute, knowledge recall by exposure per "
            "size, and copying 8 digits, scored by exact match (discontinuous) and per digit (continuous).")
    if verdict:
        text += (f" Copying: {verdict} — read under the table: a jump that only exact match shows is Schaeffer et "
                 "al.'s mirage, the metric's threshold rather than a sudden change in the model.")
    data = base64.b64encode((out / "scaling.png").read_bytes()).decode()
    return [(f"Scaling sweep ({run.name})", [
        ("text", text),
        ("markdown", (out / "table.md").read_text()),
        ("figure", (f"scaling_{run.name}", data, "Loss vs size and compute; copying by size under both metrics; recall "
                                                 "by exposure per size"))])]
