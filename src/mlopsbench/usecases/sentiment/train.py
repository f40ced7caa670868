"""Fine-tuning: one loop for the smoke model (from scratch) and a pre-trained DistilBERT.

Same tokenization and truncation as inference (:mod:`.infer`), AdamW with linear warm-up and
decay, shuffled mini-batches padded per batch. Seeded: the shuffling generator, dropout and (for
the smoke model) the initial weights all derive from the config's seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlopsbench.usecases.sentiment.infer import (
    encode,
    model_max_positions,
    pad_batch,
    positive_index,
    small_model_threads,
)

WARMUP_FRACTION = 0.1
WEIGHT_DECAY = 0.01


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    lr: float
    batch_size: int
    max_length: int
    truncation: str
    seed: int
    device: str = "cpu"


def train_classifier(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    labels: np.ndarray,
    settings: TrainSettings,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place on (texts, labels); return one history row per epoch."""
    with small_model_threads(model):
        return _train(model, tokenizer, texts, labels, settings, on_epoch_end)


def _train(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    labels: np.ndarray,
    settings: TrainSettings,
    on_epoch_end: Callable[[dict[str, float]], None] | None,
) -> list[dict[str, float]]:
    import torch

    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    model_max = model_max_positions(model, tokenizer)
    encoded = encode(tokenizer, texts, settings.max_length, settings.truncation, model_max)
    # The core's label ids (0 negative, 1 positive) mapped to the checkpoint's output order.
    pos = positive_index(model.config)
    targets = torch.as_tensor(np.where(labels == 1, pos, 1 - pos), dtype=torch.long)
    model.to(settings.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = -(-len(texts) // settings.batch_size)
    scheduler = _linear_schedule(optimizer, steps_per_epoch * settings.epochs)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    history = []
    for epoch in range(1, settings.epochs + 1):
        start = time.perf_counter()
        order = torch.randperm(len(texts), generator=generator).tolist()
        batches = [
            order[i : i + settings.batch_size] for i in range(0, len(order), settings.batch_size)
        ]
        loss_sum, correct = 0.0, 0
        for index in batches:
            input_ids, mask = pad_batch([encoded.ids[j] for j in index], pad_id)
            loss, hits = _step(model, optimizer, input_ids, mask, targets[index], settings.device)
            scheduler.step()
            loss_sum += loss * len(index)
            correct += hits
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / len(texts),
            "train_accuracy": correct / len(texts),
            "seconds": time.perf_counter() - start,
        }
        history.append(row)
        if on_epoch_end is not None:
            on_epoch_end(row)
    model.eval()
    return history


def _step(
    model: Any, optimizer: Any, input_ids: Any, mask: Any, y: Any, device: str
) -> tuple[float, int]:
    """One optimisation step; returns the batch's mean loss and its number of correct labels."""
    import torch

    y = y.to(device)
    out = model(input_ids=input_ids.to(device), attention_mask=mask.to(device), labels=y)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(out.loss.detach()), int((out.logits.detach().argmax(dim=1) == y).sum())


def _linear_schedule(optimizer: Any, total_steps: int) -> Any:
    import torch

    warmup = max(1, int(WARMUP_FRACTION * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
