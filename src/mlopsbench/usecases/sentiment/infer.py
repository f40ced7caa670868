"""Batched inference: one forward per batch gives logits and CLS embeddings together.

The paper ran the HF pipeline once per review and then the model a second time for the hidden
states. Here reviews are tokenized once, sorted by token length (so each batch pads only to its
own longest review), run under ``torch.inference_mode`` with ``output_hidden_states=True``, and
put back in input order. Lower precision (bf16 autocast, int8 dynamic quantisation) is used only
when it agrees with fp32 on >= 99 % of a calibration subset (:func:`predict_guarded`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlopsbench.errors import ConfigError

MIN_AGREEMENT = 0.99
CALIBRATION_SIZE = 128
SMALL_MODEL_PARAMS = 5_000_000


@dataclass(frozen=True)
class Encoded:
    """Token ids per review (no padding) and whether each review was cut."""

    ids: list[list[int]]
    truncated: np.ndarray  # bool (N,)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))


@dataclass(frozen=True)
class Predictions:
    """Per-review outputs, in the order the texts were given."""

    preds: np.ndarray  # int64 (N,) label ids
    prob_positive: np.ndarray  # float32 (N,)
    logits: np.ndarray  # float32 (N, 2)
    embeddings: np.ndarray  # float32 (N, hidden): CLS vector of the last hidden layer
    n_tokens: np.ndarray  # int64 (N,) tokens fed to the model
    truncated: np.ndarray  # bool (N,)
    seconds: float  # forward passes only (tokenization excluded)

    @property
    def scores(self) -> np.ndarray:
        """Probability of the predicted class (what the HF pipeline calls ``score``)."""
        return np.where(self.preds == 1, self.prob_positive, 1.0 - self.prob_positive)


def model_max_positions(model: Any, tokenizer: Any) -> int:
    """Longest input the model accepts (position embeddings), bounded by the tokenizer's."""
    limit = int(getattr(model.config, "max_position_embeddings", 512))
    tok_max = getattr(tokenizer, "model_max_length", limit) or limit
    return min(limit, int(tok_max)) if tok_max < 10**6 else limit


def encode(
    tokenizer: Any, texts: Sequence[str], max_length: int, truncation: str, model_max: int
) -> Encoded:
    """Tokenize with the configured cut: ``tokens`` (max_length tokens, special tokens included)
    or ``chars`` (the paper's ``text[:max_length]``, then the model's own token limit)."""
    if truncation == "tokens":
        if max_length > model_max:
            raise ConfigError(f"max_length {max_length} exceeds the model's {model_max} positions")
        limit, cut = max_length, list(texts)
        char_cut = np.zeros(len(cut), dtype=bool)
    elif truncation == "chars":
        limit, cut = model_max, [t[:max_length] for t in texts]
        char_cut = np.fromiter((len(t) > max_length for t in texts), dtype=bool, count=len(texts))
    else:
        raise ConfigError(f"unknown truncation {truncation!r}; choose tokens or chars")
    full = tokenizer(cut, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    too_long = [i for i, ids in enumerate(full) if len(ids) > limit]
    if too_long:  # re-tokenize only the long ones, letting the tokenizer place special tokens
        short = tokenizer([cut[i] for i in too_long], truncation=True, max_length=limit)
        for i, ids in zip(too_long, short["input_ids"], strict=True):
            full[i] = ids
    token_cut = np.zeros(len(cut), dtype=bool)
    token_cut[too_long] = True
    return Encoded(ids=[list(x) for x in full], truncated=char_cut | token_cut)


def length_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (longest first: peak memory shows early)."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """Right-pad to the batch's longest sequence: (input_ids, attention_mask) int64 tensors."""
    import torch

    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return input_ids, mask


@contextmanager
def small_model_threads(model: Any) -> Iterator[None]:
    """Run models under 5 M parameters on one thread, restoring the setting afterwards.

    The smoke model's ops are too small to split: on the shared 2-core machine one epoch took
    0.7 s with one thread and 11 s with two (threads waiting on each other under load).
    """
    import torch

    if sum(p.numel() for p in model.parameters()) >= SMALL_MODEL_PARAMS:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda requested but no CUDA GPU is available; use --device cpu")
    return device


def prepare_for_precision(model: Any, precision: str, device: str) -> Any:
    """The model to run: itself (fp32, bf16 autocast) or an int8 dynamically quantised copy."""
    if precision != "int8":
        return model
    if device != "cpu":
        raise ConfigError("int8 dynamic quantisation runs on the CPU only; use --device cpu")
    import warnings

    import torch

    with warnings.catch_warnings():  # torch deprecates quantized tensors in favour of torchao
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
        )


def predict(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 512,
    truncation: str = "tokens",
    precision: str = "fp32",
    device: str = "cpu",
    encoded: Encoded | None = None,
) -> Predictions:
    """Classify ``texts``; one forward per length-sorted batch; outputs in input order."""
    import torch

    device = resolve_device(device)
    if encoded is None:
        model_max = model_max_positions(model, tokenizer)
        encoded = encode(tokenizer, texts, max_length, truncation, model_max)
    runner = prepare_for_precision(model, precision, device).to(device).eval()
    n = len(encoded.ids)
    hidden = int(getattr(model.config, "dim", getattr(model.config, "hidden_size", 0)))
    logits = np.zeros((n, model.config.num_labels), dtype=np.float32)
    embeddings = np.zeros((n, hidden), dtype=np.float32)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    start = time.perf_counter()
    with torch.inference_mode(), small_model_threads(model):
        for index in length_batches(encoded.lengths, batch_size):
            input_ids, mask = pad_batch([encoded.ids[i] for i in index], pad_id)
            with torch.autocast(device.split(":")[0], torch.bfloat16, enabled=precision == "bf16"):
                out = runner(
                    input_ids=input_ids.to(device),
                    attention_mask=mask.to(device),
                    output_hidden_states=True,
                )
            logits[index] = out.logits.float().cpu().numpy()
            embeddings[index] = out.hidden_states[-1][:, 0].float().cpu().numpy()
    seconds = time.perf_counter() - start
    pos = positive_index(model.config)
    probs = _softmax(logits)
    # Label ids are the core's (0 negative, 1 positive), whatever order the checkpoint uses.
    return Predictions(
        preds=(probs.argmax(axis=1) == pos).astype(np.int64),
        prob_positive=probs[:, pos].astype(np.float32),
        logits=logits,
        embeddings=embeddings,
        n_tokens=encoded.lengths,
        truncated=encoded.truncated,
        seconds=seconds,
    )


def predict_guarded(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 512,
    truncation: str = "tokens",
    precision: str = "fp32",
    device: str = "cpu",
) -> tuple[Predictions, dict[str, Any]]:
    """Like :func:`predict`, but bf16/int8 only if they agree with fp32 on a calibration subset.

    Returns the predictions and what was used: requested/used precision and the measured
    agreement (None for fp32).
    """
    model_max = model_max_positions(model, tokenizer)
    encoded = encode(tokenizer, texts, max_length, truncation, model_max)
    info: dict[str, Any] = {
        "precision_requested": precision,
        "precision_used": "fp32",
        "agreement": None,
        "calibration_size": 0,
    }
    if precision != "fp32":
        calib = np.unique(
            np.linspace(0, len(texts) - 1, min(CALIBRATION_SIZE, len(texts))).astype(int)
        )
        sub = Encoded([encoded.ids[i] for i in calib], encoded.truncated[calib])
        ref = predict(
            model,
            tokenizer,
            [],
            encoded=sub,
            precision="fp32",
            batch_size=batch_size,
            device=device,
        )
        low = predict(
            model,
            tokenizer,
            [],
            encoded=sub,
            precision=precision,
            batch_size=batch_size,
            device=device,
        )
        agreement = float((ref.preds == low.preds).mean())
        info.update(agreement=agreement, calibration_size=len(calib))
        if agreement >= MIN_AGREEMENT:
            info["precision_used"] = precision
    result = predict(
        model,
        tokenizer,
        texts,
        encoded=encoded,
        precision=info["precision_used"],
        batch_size=batch_size,
        device=device,
    )
    return result, info


def positive_index(config: Any) -> int:
    """Which output of a 2-label checkpoint means "positive" (from its id2label names)."""
    names = {int(k): str(v).lower() for k, v in (getattr(config, "id2label", None) or {}).items()}
    if int(config.num_labels) != 2:
        raise ConfigError(f"the model has {config.num_labels} labels; sentiment needs 2")
    for idx, name in names.items():
        if name.startswith("pos"):
            return idx
    for idx, name in names.items():
        if name.startswith("neg"):
            return 1 - idx
    return 1  # LABEL_0/LABEL_1 checkpoints: the usual convention (1 = positive)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
