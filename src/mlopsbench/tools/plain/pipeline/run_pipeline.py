"""The paper's pipeline with no MLOps tool: load the data, build the model, evaluate it.

Three calls into the core, in one process, every file in one folder::

    python -m mlopsbench.tools.plain.pipeline.run_pipeline digits runs/plain --epochs 1

This is the baseline: each tool's pipeline does this same work, and its overhead is measured
against this script's.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlopsbench.usecases.registry import get_usecase


def run_pipeline(
    usecase: str, cfg: Any, out_dir: str | Path, show_progress: bool = False
) -> dict[str, dict[str, Any]]:
    """Run the three stages; return what each returned (paths, metrics, seconds)."""
    stages = get_usecase(usecase).stages
    data = stages.prepare_data(cfg, out_dir)
    model = stages.build_model(cfg, data["data_path"], out_dir, show_progress=show_progress)
    evaluation = stages.evaluate_model(
        cfg, data["data_path"], model["model_dir"], out_dir, history_path=model["history_path"]
    )
    return {"prepare_data": data, "build_model": model, "evaluate_model": evaluation}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("usecase", help="digits or sentiment")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--epochs", type=int, help="training epochs (digits)")
    args = parser.parse_args()
    case = get_usecase(args.usecase)
    cfg = case.config({"epochs": args.epochs} if args.epochs else {})
    args.out_dir.mkdir(parents=True, exist_ok=True)
    outputs = run_pipeline(case.name, cfg, args.out_dir, show_progress=True)
    evaluation = outputs["evaluate_model"]
    print(f"accuracy {evaluation['metrics']['accuracy']:.4f}; gate {evaluation['gate']}")


if __name__ == "__main__":
    main()
