"""Paper-style sentiment inference vs the core path, in one process (not a timed test).

The paper classifies one review at a time with ``transformers.pipeline("sentiment-analysis")``
and then runs the model a second time on the same review to get the hidden states for its t-SNE
plot. The core (:func:`mlopsbench.usecases.sentiment.infer.predict`) tokenizes all reviews once,
sorts them by token length, pads each batch only to its longest review and gets logits and CLS
embeddings from one forward per batch under ``torch.inference_mode``.

Offline by construction: the model is the full-size DistilBERT architecture (the default
``DistilBertConfig()``: 6 layers, dim 768, 12 heads, 66 M parameters), which costs exactly what
the real checkpoint costs per token. The tokenizer is a WordPiece vocabulary built locally
(:func:`mlopsbench.usecases.sentiment.tiny.build_tokenizer`: every word of the corpus plus
single characters), so every word is one token and token counts are close to what BERT's
vocabulary gives on English reviews. The reviews are sentences of the project's fixture reviews
of one class concatenated up to a log-normal word count (median 174, mean about 230 words, long
tail capped at 2,500) like IMDB's test split; half are positive.

``--weights trained`` (default) first trains that full-size model for a few minutes on other
synthetic reviews with the core's fine-tuning loop (short inputs, 4 epochs), so that its outputs
separate the classes the way a real checkpoint's do. Only then does "bf16 agrees with fp32" mean
something: a random model puts every review within a hair of its decision boundary (logit gaps
of about 0.005 against bf16 rounding of about 0.003), where any rounding flips labels.
``--weights random`` keeps random weights (head bias centred on the median logit gap, see
:func:`center_decision`) to show that worst case. With ``--model-path`` a real checkpoint and its
own tokenizer are used (e.g. a cached distilbert-base-uncased-finetuned-sst-2-english).

bf16 and int8 go through :func:`mlopsbench.usecases.sentiment.infer.predict_guarded`, the path
runs use: calibration against fp32 on 32 reviews, refusal below 99 % agreement, fp32 re-check of
reviews near the boundary. Their time includes all of that.

Both paths truncate the same way (``--truncation tokens``: 512 tokens; ``chars``: the paper's
``text[:512]``). Full run (the issue's workload, about 7 minutes)::

    .venv/bin/python benchmarks/sentiment_infer.py --n 500

On a shared machine use fewer reviews (``--n 100``); ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlopsbench.usecases.sentiment.data import FIXTURE_PATH, parse_labels
from mlopsbench.usecases.sentiment.infer import (
    encode,
    model_max_positions,
    predict,
    predict_guarded,
)

MEDIAN_WORDS, SIGMA, MAX_WORDS, MIN_WORDS = 174.0, 0.75, 2500, 10
CENTER_SAMPLE = 48  # reviews used to centre the random model's decision boundary


def synthetic_reviews(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``n`` labelled reviews (alternating negative, positive) with IMDB-like word counts.

    Each review strings together sentences of fixture reviews of its own class, so a model can
    learn the labels; the lengths follow a log-normal like IMDB's test split.
    """
    rows = [json.loads(line) for line in FIXTURE_PATH.read_text().splitlines() if line.strip()]
    sentences: dict[int, list[str]] = {0: [], 1: []}
    for row, label in zip(rows, parse_labels([r["label"] for r in rows], "fixture"), strict=True):
        sentences[int(label)] += [s for s in re.split(r"(?<=[.!?])\s+", row["text"]) if s]
    rng = np.random.default_rng(seed)
    targets = np.clip(rng.lognormal(np.log(MEDIAN_WORDS), SIGMA, n), MIN_WORDS, MAX_WORDS)
    labels = np.arange(n) % 2
    reviews = []
    for target, label in zip(targets.astype(int), labels, strict=True):
        pool = sentences[int(label)]
        words: list[str] = []
        while len(words) < target:
            words += pool[int(rng.integers(len(pool)))].split()
        reviews.append(" ".join(words[:target]))
    return reviews, labels


def build_model_and_tokenizer(
    args: argparse.Namespace, texts: Sequence[str]
) -> tuple[Any, Any, dict[str, Any]]:
    """The model to time, its tokenizer, and how it was made."""
    if args.model_path:
        from mlopsbench.usecases.sentiment.model import load_classifier

        model, tokenizer = load_classifier(args.model_path)
        return model, tokenizer, {"weights": args.model_path}
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    from mlopsbench.usecases.sentiment.tiny import build_tokenizer

    train_texts, train_labels = synthetic_reviews(args.train_n, args.seed + 1)
    tokenizer = build_tokenizer([*texts, *train_texts])
    torch.manual_seed(args.seed)
    model = DistilBertForSequenceClassification(DistilBertConfig()).eval()
    if args.weights == "random":
        center_decision(model, tokenizer, texts[:CENTER_SAMPLE])
        return model, tokenizer, {"weights": "DistilBertConfig() random, centred head"}
    return model, tokenizer, train_full_size(model, tokenizer, train_texts, train_labels, args)


def train_full_size(
    model: Any, tokenizer: Any, texts: list[str], labels: np.ndarray, args: argparse.Namespace
) -> dict[str, Any]:
    """Train the full-size model in place with the core's loop (short inputs keep it quick)."""
    from mlopsbench.usecases.sentiment.train import TrainSettings, train_classifier

    settings = TrainSettings(
        epochs=args.train_epochs,
        lr=args.train_lr,
        batch_size=16,
        max_length=args.train_max_length,
        truncation="tokens",
        seed=args.seed,
    )
    start = time.perf_counter()
    history = train_classifier(
        model,
        tokenizer,
        texts,
        labels,
        settings,
        on_epoch_end=lambda row: print(f"train epoch {row['epoch']}: {row}", flush=True),
    )
    return {
        "weights": "DistilBertConfig() trained on synthetic reviews",
        "train_reviews": len(texts),
        "train_max_length": args.train_max_length,
        "train_epochs": args.train_epochs,
        "train_seconds": time.perf_counter() - start,
        "train_accuracy_last_epoch": history[-1]["train_accuracy"],
    }


def center_decision(model: Any, tokenizer: Any, texts: Sequence[str]) -> None:
    """Shift the random head's bias so that half of the reviews fall on each side.

    Untouched, the random model gives every review the same label, so "bf16 agrees with fp32"
    would be trivially true. Centred, many reviews sit near the decision boundary, where any
    rounding flips a label: a harsher agreement test than a trained model's confident outputs.
    """
    logits = predict(model, tokenizer, texts).logits
    with torch.no_grad():
        model.classifier.bias[1] -= float(np.median(logits[:, 1] - logits[:, 0]))


def paper_style(
    model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, truncation: str, device: str
) -> tuple[np.ndarray, float]:
    """One review at a time: a pipeline call, then a second forward for the hidden states."""
    from transformers import pipeline

    pipe = pipeline("sentiment-analysis", model=model, tokenizer=tokenizer, device=device)
    preds = []
    start = time.perf_counter()
    for text in texts:
        if truncation == "chars":
            text = text[:max_length]
        limit = max_length if truncation == "tokens" else model_max_positions(model, tokenizer)
        out = pipe(text, truncation=True, max_length=limit)[0]
        inputs = tokenizer(text, return_tensors="pt", truncation=True, max_length=limit).to(device)
        with torch.no_grad():
            hidden = model(**inputs, output_hidden_states=True).hidden_states[-1][:, 0]
        _ = hidden.cpu().numpy()
        preds.append(model.config.label2id[out["label"]])
    return np.asarray(preds), time.perf_counter() - start


def core_path(
    model: Any, tokenizer: Any, texts: Sequence[str], args: argparse.Namespace, precision: str
) -> tuple[np.ndarray, float, dict[str, Any]]:
    """The core: plain :func:`predict` in fp32, the guarded path for bf16/int8 (as runs do)."""
    options = {
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "truncation": args.truncation,
        "device": args.device,
    }
    start = time.perf_counter()
    if precision == "fp32":
        pred, guard = predict(model, tokenizer, texts, **options), {}
    else:
        pred, guard = predict_guarded(model, tokenizer, texts, precision=precision, **options)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    # Raw argmax (checkpoint order), comparable with the pipeline's label ids.
    return pred.logits.argmax(axis=1), time.perf_counter() - start, guard


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    texts, labels = synthetic_reviews(args.n, args.seed)
    model, tokenizer, made = build_model_and_tokenizer(args, texts)
    model.to(args.device).eval()
    limit = model_max_positions(model, tokenizer)
    enc = encode(tokenizer, texts, args.max_length, args.truncation, limit)
    tokens = int(enc.lengths.sum())
    info = {
        "reviews": args.n,
        "mean_words": float(np.mean([len(t.split()) for t in texts])),
        "max_words": max(len(t.split()) for t in texts),
        "mean_tokens_fed": tokens / args.n,
        "truncated_fraction": float(enc.truncated.mean()),
        "truncation": f"{args.truncation}:{args.max_length}",
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "device": args.device,
        **made,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    print(json.dumps(info, indent=1), flush=True)
    precisions = args.precisions.split(",")
    paths = ([] if args.skip_paper else ["paper"]) + precisions
    _warm_up(model, tokenizer, texts[:4], args, paths)
    times: dict[str, list[float]] = {path: [] for path in paths}
    preds: dict[str, np.ndarray] = {}
    guards: dict[str, dict[str, Any]] = {}
    # Interleaved repeats: a noisy neighbour slows every path a little, not one path a lot.
    for repeat in range(args.repeats):
        for path in paths:
            if path == "paper":
                preds[path], seconds = paper_style(
                    model, tokenizer, texts, args.max_length, args.truncation, args.device
                )
            else:
                preds[path], seconds, guards[path] = core_path(model, tokenizer, texts, args, path)
            times[path].append(seconds)
            print(f"repeat {repeat + 1}: {path} {seconds:.2f} s", flush=True)
    runs = {
        path: _row(path, preds[path], times[path], tokens, labels, guards.get(path, {}))
        for path in paths
    }
    for path, row in runs.items():
        if path != "paper" and "fp32" in preds:
            row["agreement_with_core_fp32"] = float((preds[path] == preds["fp32"]).mean())
        if path != "paper" and "paper" in runs:
            row["speedup_vs_paper"] = runs["paper"]["seconds"] / row["seconds"]
            row["agreement_with_paper"] = float((preds[path] == preds["paper"]).mean())
    _print_table(runs)
    if args.json:
        args.json.write_text(json.dumps({"info": info, "runs": runs}, indent=2))
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="synthetic reviews (default 500)")
    parser.add_argument("--batch-size", type=int, default=8, help="the core's default (8)")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--truncation", choices=("tokens", "chars"), default="tokens")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precisions",
        default="fp32,bf16",
        help="core-path precisions to time, from fp32,bf16,int8 (agreement against fp32)",
    )
    parser.add_argument("--weights", choices=("trained", "random"), default="trained")
    parser.add_argument("--train-n", type=int, default=256, help="training reviews (trained)")
    parser.add_argument("--train-epochs", type=int, default=4)
    parser.add_argument("--train-lr", type=float, default=5e-5)
    parser.add_argument("--train-max-length", type=int, default=64)
    parser.add_argument("--model-path", default=None, help="a real checkpoint folder instead")
    parser.add_argument("--skip-paper", action="store_true", help="time the core path only")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    unknown = set(args.precisions.split(",")) - {"fp32", "bf16", "int8"}
    if unknown or args.repeats < 1 or args.n < 2:
        parser.error(f"bad --precisions {sorted(unknown)}, --repeats or --n")
    if args.device.startswith("cuda"):
        args.precisions = ",".join(p for p in args.precisions.split(",") if p != "int8")
    return args


def _warm_up(
    model: Any, tokenizer: Any, texts: list[str], args: argparse.Namespace, paths: list[str]
) -> None:
    """First calls pay one-off costs (allocator, oneDNN kernels, pipeline imports)."""
    for path in paths:
        if path == "paper":
            paper_style(model, tokenizer, texts, args.max_length, args.truncation, args.device)
        else:
            core_path(model, tokenizer, texts, args, path)


def _row(
    path: str,
    preds: np.ndarray,
    times: list[float],
    tokens: int,
    labels: np.ndarray,
    guard: dict[str, Any],
) -> dict[str, Any]:
    seconds = float(np.median(times))
    name = "paper-style (1 review, 2 forwards)" if path == "paper" else f"core {path}"
    return {
        "name": name,
        "seconds": seconds,
        "all_seconds": times,
        "reviews_per_s": len(preds) / seconds,
        "tokens_per_s": tokens / seconds,
        # Raw argmax: label 1 of a trained model is positive; for random weights it means nothing.
        "accuracy_vs_labels": float(np.mean(preds == labels)),
        "label_1_fraction": float(np.mean(preds == 1)),
        **{f"guard_{k}": v for k, v in guard.items()},
    }


def _print_table(runs: dict[str, dict[str, Any]]) -> None:
    print(
        f"{'path':36} {'median s':>8} {'reviews/s':>10} {'tokens/s':>9} {'speedup':>8} "
        f"{'agree fp32':>10} {'agree paper':>11} {'accuracy':>8}"
    )
    for row in runs.values():
        speed = row.get("speedup_vs_paper")
        agree = row.get("agreement_with_core_fp32")
        agree_paper = row.get("agreement_with_paper")
        print(
            f"{row['name']:36} {row['seconds']:8.2f} {row['reviews_per_s']:10.1f} "
            f"{row['tokens_per_s']:9.0f} {_fmt(speed, 'x'):>8} {_fmt(agree):>10} "
            f"{_fmt(agree_paper):>11} {row['accuracy_vs_labels']:8.3f}"
        )
    for row in runs.values():
        if "guard_precision_used" in row:
            print(
                f"{row['name']}: guard used {row['guard_precision_used']}, calibration "
                f"agreement {_fmt(row['guard_agreement'])} on {row['guard_calibration_size']}, "
                f"max logit error {_fmt(row['guard_max_logit_error'])}, "
                f"re-checked in fp32 {row['guard_rechecked_in_fp32']}"
            )


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.2f}{unit}" if unit else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
