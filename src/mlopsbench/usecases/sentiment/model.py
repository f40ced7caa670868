"""Where the classifier comes from: the hub model (the paper's), a local folder, or a saved run.

Every checkpoint is used as a *folder* (config, weights, tokenizer): the hub model resolves to
its Hugging Face cache snapshot, so stages hand over a path and nothing is copied. When the hub
model is not available (offline, not cached) the error says exactly how to provide it.

A checkpoint that is used as it is (not fine-tuned here) is handed over and logged *by
reference*: a model folder holding only ``reference.json`` (the model's name, the hub revision
when it came from the hub, the folder it was read from, and the sha256 of its weights), the way
the paper logged the model's name instead of its 258 MB of weights. :func:`check_model_dir` and
:func:`load_classifier` accept such a folder wherever they accept a checkpoint: the reference
resolves to the recorded folder or the Hugging Face cache, and only to weights with the recorded
hash. A model trained here is saved with its weights (safetensors).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, DataError
from mlopsbench.usecases.common.modelfiles import REFERENCE_FILE
from mlopsbench.usecases.sentiment.config import SentimentConfig

# Files a sequence-classification checkpoint needs (the hub repo also holds TF/ONNX weights).
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model"]
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
REFERENCE_KIND = "mlopsbench.pretrained-checkpoint"
_HASH_CHUNK = 1 << 22
_digests: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, per process


def resolve_model_dir(cfg: SentimentConfig) -> Path:
    """The local folder of the configured checkpoint (``model_path`` or the hub cache)."""
    if cfg.model_path:
        return check_model_dir(Path(cfg.model_path))
    return check_model_dir(_hub_snapshot(cfg.model_name))


def check_model_dir(path: Path) -> Path:
    """Fail with one line unless ``path`` holds a config, weights and a tokenizer; a reference
    folder (:data:`REFERENCE_FILE`) is resolved first. Returns the checkpoint folder."""
    if not path.is_dir():
        raise DataError(f"model folder not found: {path}")
    if is_reference(path):
        return resolve_reference(path)
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


def _hub_snapshot(model_name: str, revision: str | None = None) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(repo_id=model_name, revision=revision, allow_patterns=HUB_FILES)
        )
    except Exception:  # offline, not cached, unknown repo, hub down: all mean "not available"
        raise DataError(offline_hint(model_name)) from None


# ------------------------------------------------------------------------------------------
# pre-trained checkpoints by reference
# ------------------------------------------------------------------------------------------


def is_reference(path: str | Path) -> bool:
    """Whether ``path`` is a model folder that refers to a checkpoint instead of holding one."""
    path = Path(path)
    return (path / REFERENCE_FILE).is_file() and not (path / "config.json").is_file()


def checkpoint_reference(cfg: SentimentConfig, checkpoint: Path) -> dict[str, Any]:
    """What identifies the (not fine-tuned) checkpoint in ``checkpoint``: name, hub revision (the
    cache snapshot's commit), the folder, and the sha256 and size of each weights file."""
    checkpoint = check_model_dir(checkpoint).resolve()
    from_hub = not cfg.model_path
    return {
        "kind": REFERENCE_KIND,
        "model_name": cfg.model_name if from_hub else checkpoint.name,
        "source": "hub" if from_hub else "local",
        "revision": _snapshot_revision(checkpoint) if from_hub else None,
        "path": str(checkpoint),
        "weights": {
            f.name: {"sha256": file_sha256(f), "bytes": f.stat().st_size}
            for f in _weight_files(checkpoint)
        },
    }


def write_reference(reference: dict[str, Any], out_dir: str | Path) -> Path:
    """A model folder holding only ``reference.json`` (replacing whatever ``out_dir`` held)."""
    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    tmp = out_dir / f".{REFERENCE_FILE}.tmp"
    tmp.write_text(json.dumps(reference, indent=2), encoding="utf-8")
    tmp.replace(out_dir / REFERENCE_FILE)
    return out_dir


def read_reference(path: str | Path) -> dict[str, Any]:
    """The reference in a model folder, checked for the fields resolution needs."""
    file = Path(path) / REFERENCE_FILE
    try:
        reference = json.loads(file.read_text(encoding="utf-8"))
        if reference.get("kind") != REFERENCE_KIND or not isinstance(reference["weights"], dict):
            raise ValueError(f"not a {REFERENCE_KIND}")
        str(reference["model_name"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"unreadable model reference {file}: {_one_line(exc)}") from None
    return dict(reference)


def resolve_reference(path: str | Path) -> Path:
    """The checkpoint folder a reference points to: the recorded folder, else (hub models) the
    Hugging Face cache at the recorded revision; only weights with the recorded sha256 count."""
    reference = read_reference(path)
    name, revision = str(reference["model_name"]), reference.get("revision")
    recorded = Path(str(reference.get("path") or ""))
    if reference.get("path") and recorded.is_dir() and _weights_match(recorded, reference):
        return check_model_dir(recorded)
    if reference.get("source") == "hub":
        snapshot = _hub_snapshot(name, revision)
        if _weights_match(snapshot, reference):
            return check_model_dir(snapshot)
    where = f"revision {revision}" if revision else f"the folder {recorded}"
    raise DataError(
        f"the pre-trained model {name!r} ({where}) that {path} refers to is not available with "
        "the recorded weights (sha256): put that checkpoint back at the recorded folder or in "
        "the Hugging Face cache"
    )


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per process for a given size and modification time."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
        _digests[key] = digest.hexdigest()
    return _digests[key]


def _weight_files(checkpoint: Path) -> list[Path]:
    """The files holding the weights (every shard of a sharded checkpoint)."""
    files = sorted(checkpoint.glob("*.safetensors")) or sorted(checkpoint.glob("*.bin"))
    return [f for f in files if f.is_file()]


def _weights_match(checkpoint: Path, reference: dict[str, Any]) -> bool:
    expected = reference["weights"]
    found = {f.name: f for f in _weight_files(checkpoint)}
    if not expected or set(found) != set(expected):
        return False
    return all(
        found[name].stat().st_size == int(meta.get("bytes", -1))
        and file_sha256(found[name]) == meta.get("sha256")
        for name, meta in expected.items()
    )


def _snapshot_revision(checkpoint: Path) -> str | None:
    """The commit of a Hugging Face cache snapshot (``.../snapshots/<commit>``), else None."""
    if checkpoint.parent.name == "snapshots" and len(checkpoint.name) == 40:
        return checkpoint.name
    return None


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
