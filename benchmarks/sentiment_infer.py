"""Paper-style sentiment inference vs the core path, in one process (not a timed test).

The paper classifies one review at a time with ``transformers.pipeline("sentiment-analysis")``
and then runs the model a second time on the same review to get the hidden states for its t-SNE
plot. The core (:func:`mlopsbench.usecases.sentiment.infer.predict`) tokenizes all reviews once,
sorts them by token length, pads each batch only to its longest review and gets logits and CLS
embeddings from one forward per batch under ``torch.inference_mode``.

Offline by construction: the model is the full-size DistilBERT architecture (the default
``DistilBertConfig()``: 6 layers, dim 768, 12 heads, 66 M parameters) with random weights, which
costs exactly what the real checkpoint costs per token. The tokenizer is a WordPiece vocabulary
built locally (:func:`mlopsbench.usecases.sentiment.tiny.build_tokenizer`: every word of the
corpus plus single characters) over the synthetic corpus, so every word is one token and the
token counts are close to what BERT's vocabulary gives on English reviews (punctuation included).
The reviews are sentences of the project's fixture reviews concatenated up to a log-normal word
count (median 174, mean about 230 words, long tail capped at 2,500) like IMDB's test split. With
``--model-path`` the real checkpoint and its own tokenizer are used instead (e.g. a cached
distilbert-base-uncased-finetuned-sst-2-english). The random model's head bias is centred on
the median logit gap (:func:`center_decision`), otherwise it labels every review the same and
agreement between precisions would say nothing.

Both paths truncate the same way (``--truncation tokens``: 512 tokens; ``chars``: the paper's
``text[:512]``). Full run (the issue's workload)::

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

from mlopsbench.usecases.sentiment.data import FIXTURE_PATH
from mlopsbench.usecases.sentiment.infer import encode, model_max_positions, predict

MEDIAN_WORDS, SIGMA, MAX_WORDS, MIN_WORDS = 174.0, 0.75, 2500, 10
CENTER_SAMPLE = 48  # reviews used to centre the random model's decision boundary


def synthetic_reviews(n: int, seed: int) -> list[str]:
    """``n`` reviews built from fixture sentences, with IMDB-like word counts."""
    rows = [json.loads(line) for line in FIXTURE_PATH.read_text().splitlines() if line.strip()]
    sentences = [s for r in rows for s in re.split(r"(?<=[.!?])\s+", r["text"]) if s]
    rng = np.random.default_rng(seed)
    targets = np.clip(rng.lognormal(np.log(MEDIAN_WORDS), SIGMA, n), MIN_WORDS, MAX_WORDS)
    reviews = []
    for target in targets.astype(int):
        words: list[str] = []
        while len(words) < target:
            words += sentences[int(rng.integers(len(sentences)))].split()
        reviews.append(" ".join(words[:target]))
    return reviews


def build_model_and_tokenizer(model_path: str | None, corpus: Sequence[str]) -> tuple[Any, Any]:
    if model_path:
        from mlopsbench.usecases.sentiment.model import load_classifier

        return load_classifier(model_path)
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    from mlopsbench.usecases.sentiment.tiny import build_tokenizer

    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(DistilBertConfig()).eval()
    tokenizer = build_tokenizer(corpus)
    center_decision(model, tokenizer, corpus[:CENTER_SAMPLE])
    return model, tokenizer


def center_decision(model: Any, tokenizer: Any, texts: Sequence[str]) -> None:
    """Shift the random head's bias so that half of the reviews fall on each side.

    Untouched, the random model gives every review the same label, so "bf16 agrees with fp32"
    would be trivially true. Centred, many reviews sit near the decision boundary, where any
    rounding flips a label: a harsher agreement test than a trained model's confident outputs.
    """
    logits = predict(model, tokenizer, texts, batch_size=16).logits
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
) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    pred = predict(
        model,
        tokenizer,
        texts,
        batch_size=args.batch_size,
        max_length=args.max_length,
        truncation=args.truncation,
        precision=precision,
        device=args.device,
    )
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    # Raw argmax (checkpoint order), comparable with the pipeline's label ids.
    return pred.logits.argmax(axis=1), time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="synthetic reviews (default 500)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--truncation", choices=("tokens", "chars"), default="tokens")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precisions",
        default="fp32,bf16,int8",
        help="core-path precisions to time (agreement measured against fp32)",
    )
    parser.add_argument("--model-path", default=None, help="a real checkpoint folder instead")
    parser.add_argument("--skip-paper", action="store_true", help="time the core path only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda"):
        args.precisions = ",".join(p for p in args.precisions.split(",") if p != "int8")

    texts = synthetic_reviews(args.n, args.seed)
    model, tokenizer = build_model_and_tokenizer(args.model_path, texts)
    model.to(args.device)
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
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "device": args.device,
        "model": args.model_path or "DistilBertConfig() random weights",
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    print(json.dumps(info, indent=1))
    # Warm-up: first calls pay one-off costs (allocator, oneDNN kernels, pipeline imports).
    warm = texts[:4]
    core_path(model, tokenizer, warm, args, "fp32")
    results: dict[str, Any] = {"info": info, "runs": {}}
    if not args.skip_paper:
        paper_style(model, tokenizer, warm, args.max_length, args.truncation, args.device)
        preds, seconds = paper_style(
            model, tokenizer, texts, args.max_length, args.truncation, args.device
        )
        results["runs"]["paper"] = _row(
            "paper-style (1 review, 2 forwards)", preds, seconds, tokens, args.n
        )
    reference = None
    for precision in args.precisions.split(","):
        if precision != "fp32":
            core_path(model, tokenizer, warm, args, precision)
        preds, seconds = core_path(model, tokenizer, texts, args, precision)
        row = _row(
            f"core {precision} (batch {args.batch_size}, 1 forward)", preds, seconds, tokens, args.n
        )
        reference = preds if precision == "fp32" else reference
        if reference is not None:
            row["agreement_with_core_fp32"] = float((preds == reference).mean())
        if "paper" in results["runs"]:
            paper = results["runs"]["paper"]
            row["speedup_vs_paper"] = paper["seconds"] / seconds
            row["agreement_with_paper"] = float((preds == paper["_preds"]).mean())
        results["runs"][f"core_{precision}"] = row
    for row in results["runs"].values():
        row.pop("_preds")
    _print_table(results["runs"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _row(name: str, preds: np.ndarray, seconds: float, tokens: int, n: int) -> dict[str, Any]:
    return {
        "name": name,
        "seconds": seconds,
        "reviews_per_s": n / seconds,
        "tokens_per_s": tokens / seconds,
        # Agreement means little when one class wins everywhere (random weights often do).
        "label_1_fraction": float(np.mean(preds == 1)),
        "_preds": preds,
    }


def _print_table(runs: dict[str, dict[str, Any]]) -> None:
    print(
        f"{'path':44} {'seconds':>8} {'reviews/s':>10} {'tokens/s':>10} {'speedup':>8} "
        f"{'agree fp32':>10} {'agree paper':>11} {'label 1':>8}"
    )
    for row in runs.values():
        speed = row.get("speedup_vs_paper")
        agree = row.get("agreement_with_core_fp32")
        agree_paper = row.get("agreement_with_paper")
        print(
            f"{row['name']:44} {row['seconds']:8.2f} {row['reviews_per_s']:10.1f} "
            f"{row['tokens_per_s']:10.0f} {_fmt(speed, 'x'):>8} {_fmt(agree):>10} "
            f"{_fmt(agree_paper):>11} {row['label_1_fraction']:8.2f}"
        )


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.2f}{unit}" if unit else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
