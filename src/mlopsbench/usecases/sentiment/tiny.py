"""The smoke model: a tiny DistilBERT and a WordPiece vocabulary built from the review fixture.

Everything is made locally and offline. The vocabulary is built deterministically instead of
with ``BertWordPieceTokenizer.train_from_iterator``: that trainer breaks frequency ties in hash
order, so two runs with the same input gave different vocabularies (checked with tokenizers
0.23), which made the smoke model depend on the run. Here the vocabulary is every word of the
training texts (BERT normalisation and pre-tokenisation from ``tokenizers``), most frequent
first, plus every character alone and as a ``##`` continuation, so unseen words still split into
pieces instead of becoming ``[UNK]``. The WordPiece model itself is the standard one.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterable
from typing import Any

from mlopsbench.usecases.sentiment.config import LABELS

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_VOCAB = 8000
# Small enough to train in a second or two on 2 CPU cores, large enough to learn the fixture.
TINY_DIM, TINY_LAYERS, TINY_HEADS, TINY_FFN = 64, 2, 2, 128
MAX_POSITIONS = 512  # same limit as the real model, so --max-length 512 works unchanged


def build_vocab(texts: Iterable[str], max_size: int = MAX_VOCAB) -> dict[str, int]:
    """Deterministic WordPiece vocabulary: specials, characters, then words by frequency."""
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    # Printable ASCII always, so test texts with a character unseen in training still tokenize.
    chars = sorted(
        {c for word in counts for c in word}
        | set(string.ascii_lowercase + string.digits + string.punctuation)
    )
    tokens = list(SPECIAL_TOKENS) + chars + [f"##{c}" for c in chars]
    seen = set(tokens)
    for word, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(tokens) >= max_size:
            break
        if word not in seen:
            tokens.append(word)
            seen.add(word)
    return {tok: i for i, tok in enumerate(tokens)}


def build_tokenizer(texts: Iterable[str]) -> Any:
    """A DistilBERT (WordPiece) tokenizer over :func:`build_vocab`; saves with save_pretrained."""
    from transformers import DistilBertTokenizer

    return DistilBertTokenizer(
        vocab=build_vocab(texts), do_lower_case=True, model_max_length=MAX_POSITIONS
    )


def build_tiny_model(vocab_size: int, seed: int) -> Any:
    """Randomly initialised (with ``seed``) 2-layer DistilBERT sequence classifier."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(
        vocab_size=vocab_size,
        max_position_embeddings=MAX_POSITIONS,
        id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)},
        pad_token_id=0,
        dim=TINY_DIM,
        n_layers=TINY_LAYERS,
        n_heads=TINY_HEADS,
        hidden_dim=TINY_FFN,
    )
    torch.manual_seed(seed)
    return DistilBertForSequenceClassification(config)
