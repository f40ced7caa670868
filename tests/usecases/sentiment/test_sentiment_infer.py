from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlopsbench.errors import ConfigError
from mlopsbench.usecases.sentiment import infer
from mlopsbench.usecases.sentiment.data import load_test_reviews

LONG = " ".join(["a surprisingly great film with a wonderful cast"] * 40)  # ~320 tokens


def test_token_truncation_keeps_special_tokens(tiny: tuple[Any, Any]) -> None:
    _, tok = tiny
    enc = infer.encode(tok, [LONG, "short and sweet"], 64, "tokens", 512)
    assert len(enc.ids[0]) == 64 and enc.truncated.tolist() == [True, False]
    assert enc.ids[0][0] == tok.cls_token_id and enc.ids[0][-1] == tok.sep_token_id
    assert enc.ids[1] == tok("short and sweet")["input_ids"]


def test_char_truncation_is_the_papers_cut(tiny: tuple[Any, Any]) -> None:
    _, tok = tiny
    enc = infer.encode(tok, [LONG, "short"], 100, "chars", 512)
    assert enc.ids[0] == tok(LONG[:100])["input_ids"]
    assert enc.truncated.tolist() == [True, False]
    # The character cut keeps far fewer tokens than the token cut at the same number.
    tokens = infer.encode(tok, [LONG], 100, "tokens", 512)
    assert len(enc.ids[0]) < len(tokens.ids[0]) == 100


def test_max_length_beyond_the_model_is_a_config_error(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    with pytest.raises(ConfigError, match="exceeds the model's 512 positions"):
        infer.encode(tok, ["x"], 1024, "tokens", infer.model_max_positions(model, tok))


def test_length_batches_cover_everything_longest_first() -> None:
    lengths = np.array([5, 9, 1, 7, 3])
    batches = infer.length_batches(lengths, 2)
    assert [b.tolist() for b in batches] == [[1, 3], [0, 4], [2]]


def test_batched_equals_one_at_a_time(tiny: tuple[Any, Any], smoke_cfg: Any) -> None:
    model, tok = tiny
    texts = [*load_test_reviews(smoke_cfg).texts[:24], LONG]
    batched = infer.predict(model, tok, texts, batch_size=8)
    single = infer.predict(model, tok, texts, batch_size=1)
    assert (batched.preds == single.preds).all()
    np.testing.assert_allclose(batched.logits, single.logits, atol=1e-4)
    np.testing.assert_allclose(batched.embeddings, single.embeddings, atol=1e-4)
    assert batched.embeddings.shape == (len(texts), model.config.dim)
    assert batched.n_tokens.tolist() == [len(tok(t)["input_ids"]) for t in texts]


def test_outputs_follow_input_order(tiny: tuple[Any, Any], smoke_cfg: Any) -> None:
    model, tok = tiny
    texts = list(load_test_reviews(smoke_cfg).texts[:12])
    perm = np.random.default_rng(0).permutation(len(texts))
    base = infer.predict(model, tok, texts, batch_size=4)
    shuffled = infer.predict(model, tok, [texts[i] for i in perm], batch_size=4)
    np.testing.assert_allclose(shuffled.logits, base.logits[perm], atol=1e-4)
    scores = base.scores
    assert ((scores >= 0.5) & (scores <= 1.0)).all()


def test_positive_index_follows_the_checkpoint_labels() -> None:
    class Cfg:
        num_labels = 2

        def __init__(self, id2label: dict[int, str]) -> None:
            self.id2label = id2label

    assert infer.positive_index(Cfg({0: "NEGATIVE", 1: "POSITIVE"})) == 1
    assert infer.positive_index(Cfg({0: "POSITIVE", 1: "NEGATIVE"})) == 0
    assert infer.positive_index(Cfg({0: "neg", 1: "other"})) == 1
    assert infer.positive_index(Cfg({0: "LABEL_0", 1: "LABEL_1"})) == 1


def test_low_precision_only_with_enough_agreement(
    tiny: tuple[Any, Any], smoke_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tok = tiny
    texts = list(load_test_reviews(smoke_cfg).texts[:16])
    for precision in ("bf16", "int8"):
        pred, info = infer.predict_guarded(model, tok, texts, precision=precision)
        assert info["precision_requested"] == precision
        assert 0.0 <= info["agreement"] <= 1.0 and info["calibration_size"] == 16
        expected = precision if info["agreement"] >= infer.MIN_AGREEMENT else "fp32"
        assert info["precision_used"] == expected and pred.preds.shape == (16,)
    monkeypatch.setattr(infer, "MIN_AGREEMENT", 1.01)  # nothing can pass: falls back to fp32
    pred, info = infer.predict_guarded(model, tok, texts, precision="bf16")
    reference = infer.predict(model, tok, texts)
    assert info["precision_used"] == "fp32"
    np.testing.assert_array_equal(pred.logits, reference.logits)
    _, info = infer.predict_guarded(model, tok, texts)
    assert info["agreement"] is None and info["precision_used"] == "fp32"
