"""Batched inference: one forward per batch gives logits and CLS embeddings together.

The paper ran the HF pipeline once per review and then the model a second time for the hidden
states. Here reviews are tokenized once, sorted by token length (so each batch pads only to its
own longest review), run under ``torch.inference_mode`` with ``output_hidden_states=True``, and
put back in input order. Lower precision (bf16 weights, int8 dynamic quantisation) is used only
when it agrees with fp32 on >= 99 % of a calibration subset, and reviews it could have flipped
are re-run in fp32 (:func:`predict_guarded`).
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
from mlopsbench.usecases.common.hardware import cpu_supports_bf16

MIN_AGREEMENT = 0.99
CALIBRATION_SIZE = 32
MARGIN_SAFETY = 4.0  # re-check in fp32 within 4x the worst calibration error
SMALL_MODEL_PARAMS = 5_000_000
# bf16/int8 batches are padded to a multiple of 64 tokens: oneDNN builds (and keeps) kernels and
# packed weights per input shape, and one shape per review length grew the process by ~200 MB on
# 500 reviews and cost time building them (500 reviews: peak 1.16 -> 0.97 GB, 44.8 -> 38.1 s).
LOW_PRECISION_PAD_MULTIPLE = 64
MAX_BATCH_TOKENS = 1024  # padded tokens per batch: reviews of 512 tokens go 2 at a time, not 8


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


def length_batches(
    lengths: np.ndarray, batch_size: int, max_tokens: int | None = None
) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (longest first: peak memory shows early),
    each of at most ``batch_size`` reviews and ``max_tokens`` padded tokens (default
    :data:`MAX_BATCH_TOKENS`; a review longer than that goes alone).

    The token cap only splits batches of long reviews (8 of 512 tokens become 4 batches of 2):
    each review's outputs do not depend on its batch, and on one CPU thread batches of 4 x 512
    tokens ran faster per review than 8 x 512 (16 long reviews: 11.2 s against 18.0 s), with a
    quarter of the activation memory; 1024 tokens ran 500 reviews in bf16 as fast as 2048 did,
    with 40 MB less at the peak.
    """
    budget = MAX_BATCH_TOKENS if max_tokens is None else max_tokens
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)  # sorted: the batch's first is its longest
        size = max(1, min(batch_size, budget // longest))
        batches.append(order[start : start + size])
        start += size
    return batches


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int, multiple: int = 1) -> tuple[Any, Any]:
    """Right-pad to the batch's longest sequence, rounded up to ``multiple`` tokens:
    (input_ids, attention_mask) int64 tensors (padding is masked: it changes no output)."""
    import torch

    width = -(-max(len(x) for x in ids) // multiple) * multiple
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


def resolve_precision(requested: str, device: str) -> str:
    """``auto``: bf16 where the hardware computes it natively (CUDA with bf16, AMX/AVX512-BF16
    CPUs), fp32 elsewhere, where bf16 would be emulated and slower. Others pass through."""
    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_supports_bf16() else "fp32"


def prepare_for_precision(model: Any, precision: str, device: str) -> Any:
    """The model to run: itself (fp32), a bf16 copy, or an int8 dynamically quantised copy.

    bf16 converts the weights once instead of autocasting each call: on this AMX CPU the cast
    per forward cost about a third of the gain (200 trained-model reviews: fp32 28.8 s, autocast
    12.8 s, bf16 weights 8.8 s), and the trained model's logits moved by at most 0.011 either way.
    """
    if precision == "fp32":
        return model
    import torch

    if precision == "bf16":
        return bf16_copy(model)
    if precision != "int8":
        raise ConfigError(f"unknown precision {precision!r}; choose fp32, bf16 or int8")
    if device != "cpu":
        raise ConfigError("int8 dynamic quantisation runs on the CPU only; use --device cpu")
    import warnings

    with warnings.catch_warnings():  # torch deprecates quantized tensors in favour of torchao
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
        )


def bf16_copy(model: Any) -> Any:
    """A bf16 copy of ``model`` that never holds a second fp32 copy of the weights.

    ``copy.deepcopy(model).to(torch.bfloat16)`` first copies the 268 MB of fp32 weights, then
    converts them: a transient +268 MB on top of the model. Here each parameter and floating
    buffer is converted straight into the copy (deepcopy's memo maps it to its bf16 version;
    tied weights stay tied), so the copy costs its 134 MB only.
    """
    import torch

    memo: dict[int, Any] = {}
    for param in model.parameters():
        if id(param) not in memo:
            low = param.detach().to(torch.bfloat16)
            memo[id(param)] = torch.nn.Parameter(low, requires_grad=param.requires_grad)
    for buffer in model.buffers():
        if id(buffer) not in memo and buffer.is_floating_point():
            memo[id(buffer)] = buffer.detach().to(torch.bfloat16)
    return copy.deepcopy(model, memo).to(torch.bfloat16)


def release_free_memory() -> None:
    """Hand memory that is free inside the process back to the OS (glibc's ``malloc_trim``).

    Each batch allocates activations of another size (batches follow review lengths); glibc
    keeps the freed blocks in its heap and, its mmap threshold raised by the first large frees,
    serves later sizes from fresh memory: on 500 reviews the process grew by ~170 MB more than
    any batch needs (peak 1.33 GB -> 1.16 GB with a trim before each batch, at the same speed).
    A no-op where the C library has no ``malloc_trim`` (macOS, musl).
    """
    global _malloc_trim
    if _malloc_trim is None:
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _malloc_trim = libc.malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None


@dataclass(frozen=True)
class _Outputs:
    """Raw model outputs for a subset of reviews (rows follow ``index``)."""

    index: np.ndarray
    logits: np.ndarray  # float32 (n, labels), checkpoint order
    embeddings: np.ndarray  # float32 (n, hidden)
    seconds: float

    @property
    def gap(self) -> np.ndarray:
        """Logit of output 1 minus output 0: its sign is the prediction of a 2-label model."""
        return self.logits[:, 1] - self.logits[:, 0]


def _forward(
    runner: Any,
    model: Any,
    encoded: Encoded,
    index: np.ndarray,
    batch_size: int,
    device: str,
    pad_id: int,
) -> _Outputs:
    """Run the reviews ``index`` through ``runner`` (``model`` or its low-precision copy) in
    length-sorted batches: logits and CLS embeddings.

    The embedding is the CLS vector of the last hidden layer, read from the base model's output
    by a forward hook: ``output_hidden_states=True`` would also keep every other layer's hidden
    states of the batch alive (6 x batch x tokens x 768 floats), for nothing.
    """
    import torch

    config = model.config
    hidden = int(getattr(config, "dim", getattr(config, "hidden_size", 0)))
    logits = np.zeros((len(index), config.num_labels), dtype=np.float32)
    embeddings = np.zeros((len(index), hidden), dtype=np.float32)
    lengths = encoded.lengths[index]
    captured: list[Any] = []
    multiple = 1 if runner is model else LOW_PRECISION_PAD_MULTIPLE
    base = getattr(runner, "base_model", runner)
    hook = None
    if base is not runner:

        def keep_cls(module: Any, args: Any, output: Any) -> None:
            captured.append(output[0][:, 0])

        hook = base.register_forward_hook(keep_cls)
    start = time.perf_counter()
    try:
        with torch.inference_mode(), small_model_threads(model):
            for rows in length_batches(lengths, batch_size):
                release_free_memory()
                input_ids, mask = pad_batch([encoded.ids[i] for i in index[rows]], pad_id, multiple)
                out = runner(
                    input_ids=input_ids.to(device),
                    attention_mask=mask.to(device),
                    output_hidden_states=hook is None,
                )
                cls = captured.pop() if hook is not None else out.hidden_states[-1][:, 0]
                logits[rows] = out.logits.float().cpu().numpy()
                embeddings[rows] = cls.float().cpu().numpy()
    finally:
        if hook is not None:
            hook.remove()
    return _Outputs(index, logits, embeddings, time.perf_counter() - start)


def _package(
    config: Any, encoded: Encoded, parts: Sequence[_Outputs], seconds: float
) -> Predictions:
    """Assemble outputs of one or more passes (later parts win) into input order."""
    n = len(encoded.ids)
    hidden = parts[0].embeddings.shape[1]
    logits = np.zeros((n, config.num_labels), dtype=np.float32)
    embeddings = np.zeros((n, hidden), dtype=np.float32)
    for part in parts:
        logits[part.index] = part.logits
        embeddings[part.index] = part.embeddings
    pos = positive_index(config)
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


def predict(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 8,
    max_length: int = 512,
    truncation: str = "tokens",
    precision: str = "fp32",
    device: str = "cpu",
    encoded: Encoded | None = None,
) -> Predictions:
    """Classify ``texts``; one forward per length-sorted batch; outputs in input order.

    No agreement check here: :func:`predict_guarded` is what runs use for bf16/int8.
    """
    device = resolve_device(device)
    if encoded is None:
        model_max = model_max_positions(model, tokenizer)
        encoded = encode(tokenizer, texts, max_length, truncation, model_max)
    runner = prepare_for_precision(model, precision, device).to(device).eval()
    everything = np.arange(len(encoded.ids))
    out = _forward(runner, model, encoded, everything, batch_size, device, _pad_id(tokenizer))
    return _package(model.config, encoded, [out], out.seconds)


def calibration_indices(lengths: np.ndarray, size: int) -> np.ndarray:
    """``size`` reviews spread evenly over the length order (short and long ones both checked)."""
    order = np.argsort(lengths, kind="stable")
    picks = np.unique(np.linspace(0, len(order) - 1, min(size, len(order))).round().astype(int))
    return np.sort(order[picks])


def predict_guarded(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 8,
    max_length: int = 512,
    truncation: str = "tokens",
    precision: str = "fp32",
    device: str = "cpu",
) -> tuple[Predictions, dict[str, Any]]:
    """Like :func:`predict`, but bf16/int8 only where they give fp32's answers
    (``precision="auto"``: bf16 where the hardware has it, see :func:`resolve_precision`).

    1. Calibrate: run a length-spread subset (``CALIBRATION_SIZE`` reviews) in both precisions.
       Below ``MIN_AGREEMENT`` the low precision is refused and everything runs in fp32.
    2. Otherwise run the other reviews in low precision, and re-run in fp32 every review whose
       low-precision logit gap lies within ``MARGIN_SAFETY`` x the largest calibration error
       of the boundary: the only reviews that rounding could have flipped.
    Calibration reviews keep their fp32 outputs. Returns the predictions and what was done.
    """
    device = resolve_device(device)
    positive_index(model.config)  # a 2-label model, so the logit gap decides
    model_max = model_max_positions(model, tokenizer)
    encoded = encode(tokenizer, texts, max_length, truncation, model_max)
    requested, precision = precision, resolve_precision(precision, device)
    info: dict[str, Any] = {
        "precision_requested": requested,
        "precision_used": "fp32",
        "agreement": None,
        "calibration_size": 0,
        "max_logit_error": None,
        "margin": None,
        "rechecked_in_fp32": 0,
    }
    if precision == "fp32" or not encoded.ids:
        pred = predict(
            model, tokenizer, texts, encoded=encoded, batch_size=batch_size, device=device
        )
        return pred, info
    fp32 = model.to(device).eval()
    pad_id = _pad_id(tokenizer)
    everything = np.arange(len(encoded.ids))

    def run(runner: Any, index: np.ndarray) -> _Outputs:
        return _forward(runner, model, encoded, index, batch_size, device, pad_id)

    calib = calibration_indices(encoded.lengths, CALIBRATION_SIZE)
    rest = np.setdiff1d(everything, calib)
    ref = run(fp32, calib)  # before the low-precision copy exists: a lower peak of memory
    low = prepare_for_precision(model, precision, device).to(device).eval()
    low_calib = run(low, calib)
    error = float(np.abs(low_calib.gap - ref.gap).max())
    agreement = float(np.mean((low_calib.gap > 0) == (ref.gap > 0)))
    info.update(agreement=agreement, calibration_size=len(calib), max_logit_error=error)
    if agreement < MIN_AGREEMENT:
        out = run(fp32, rest)
        parts, seconds = [ref, out], ref.seconds + low_calib.seconds + out.seconds
        return _package(model.config, encoded, parts, seconds), info
    bulk = run(low, rest)
    margin = MARGIN_SAFETY * error
    recheck = run(fp32, rest[np.abs(bulk.gap) <= margin])
    info.update(precision_used=precision, margin=margin, rechecked_in_fp32=len(recheck.index))
    seconds = ref.seconds + low_calib.seconds + bulk.seconds + recheck.seconds
    return _package(model.config, encoded, [ref, bulk, recheck], seconds), info


def _pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


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
