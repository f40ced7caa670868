"""Where the classifier comes from: the hub model (the paper's), a local folder, or a saved run.

Every checkpoint is used as a *folder* (config, weights, tokenizer): the hub model resolves to
its Hugging Face cache snapshot, so stages hand over a path and nothing is copied. When the hub
model is not available (offline, not cached) the error says exactly how to provide it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, DataError
from mlopsbench.usecases.sentiment.config import SentimentConfig

# Files a sequence-classification checkpoint needs (the hub repo also holds TF/ONNX weights).
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model"]
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def resolve_model_dir(cfg: SentimentConfig) -> Path:
    """The local folder of the configured checkpoint (``model_path`` or the hub cache)."""
    if cfg.model_path:
        return check_model_dir(Path(cfg.model_path))
    return check_model_dir(_hub_snapshot(cfg.model_name))


def check_model_dir(path: Path) -> Path:
    """Fail with one line unless ``path`` holds a config, weights and a tokenizer."""
    if not path.is_dir():
        raise DataError(f"model folder not found: {path}")
    missing = []
    if (path / "config.json").is_file():
        # Checked first, so a broken config is named even when other files are missing too.
        check_model_config(path / "config.json")
    else:
        missing.append("config.json")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    if not any((path / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        missing.append("tokenizer (tokenizer.json or vocab.txt)")
    if missing:
        raise DataError(f"{path} is not a usable checkpoint: missing {', '.join(missing)}")
    return path


def check_model_config(config_path: Path) -> dict[str, Any]:
    """The checkpoint's config.json as a dict with a ``model_type``, or a one-line DataError.

    transformers reads the file itself, but a valid JSON file that is not an object (a list, a
    string) makes it fail with a TypeError deep inside, not with a message about the file.
    """
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"model config not found: {config_path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = f"{type(exc).__name__}: {_one_line(exc)}"
        raise DataError(f"cannot read model config {config_path}: {reason}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"model config {config_path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        kind = type(config).__name__
        raise DataError(f"model config {config_path} must be a JSON object, got a JSON {kind}")
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type.strip():
        raise DataError(
            f"model config {config_path} lacks a 'model_type' string (e.g. \"distilbert\")"
        )
    return config


def _one_line(exc: BaseException) -> str:
    """The message's first line, plus the next one when the first only introduces it
    ("Validation error for field 'dim':")."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return " ".join(lines[:2]) if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def _config_errors() -> type[Exception]:
    """huggingface_hub's error for a config field of the wrong type (not a TypeError)."""
    try:
        from huggingface_hub.errors import StrictDataclassError
    except ImportError:  # older huggingface_hub: such configs raise TypeError instead
        return TypeError
    return StrictDataclassError


def offline_hint(model_name: str) -> str:
    """How to make ``model_name`` available without the network (one line)."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    why = (
        "HF_HUB_OFFLINE is set and it is not in the Hugging Face cache"
        if offline
        else ("it is not in the Hugging Face cache and the hub could not be reached")
    )
    return (
        f"model {model_name!r} is not available ({why}): download it once with network access "
        f"(`hf download {model_name}`, then HF_HUB_OFFLINE=1 uses the cache), pass --model-path "
        "DIR (a folder with config.json, weights and tokenizer), or use --smoke for the offline "
        "tiny model"
    )


def _hub_snapshot(model_name: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=model_name, allow_patterns=HUB_FILES))
    except Exception:  # offline, not cached, unknown repo, hub down: all mean "not available"
        raise DataError(offline_hint(model_name)) from None


def load_classifier(model_dir: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) from a checkpoint folder, in fp32 and eval mode."""
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = check_model_dir(Path(model_dir))
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
    # TypeError / StrictDataclassError: a config value of the wrong type (e.g. "num_labels":
    # "two") fails in the config class's constructor; the checkpoint's fault, not a bug here.
    except (OSError, ValueError, KeyError, TypeError, SafetensorError, _config_errors()) as exc:
        raise DataError(f"cannot load the checkpoint in {path}: {_one_line(exc)}") from None
    if int(model.config.num_labels) != 2:
        raise ConfigError(
            f"{path}: the model has {model.config.num_labels} labels; sentiment needs 2"
        )
    return model.eval(), tokenizer


def save_classifier(model: Any, tokenizer: Any, out_dir: str | Path) -> Path:
    """Save in the transformers format (safetensors + config + tokenizer), never a pickle.

    Written to a temporary sibling folder and renamed, so a crash never leaves half a model.
    """
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with quiet_transformers():
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    if not (tmp / "model.safetensors").is_file():
        raise DataError(f"saving the model to {out_dir} did not produce model.safetensors")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.replace(out_dir)
    return out_dir


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No progress bars or warnings from transformers while loading/saving (restored after):
    they would garble the CLI's one-line output and every tool's logs."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
