"""Register the model in DVC's model registry (a GTO git tag), only past the quality gate.

After ``dvc repro`` and ``git commit`` (in CI, say), in the project::

    python register_model.py digits-classifier eval/evaluate_model.json

A model below its gate is not registered: ``dvc.api.artifacts_show`` finds no version of it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gto.api import register


def register_if_passed(project: str, artifact: str, evaluation_report: str) -> str | None:
    """The tag of the new version (``digits-classifier@v0.0.1``), None when the gate failed."""
    gate = json.loads(Path(project, evaluation_report).read_text())["gate"]
    if not gate["passed"]:
        print(f"{artifact} not registered: accuracy {gate['value']:.4f} < {gate['threshold']}")
        return None
    version = register(project, artifact, ref="HEAD")
    return str(version.tag)


if __name__ == "__main__":
    register_if_passed(".", *sys.argv[1:])
