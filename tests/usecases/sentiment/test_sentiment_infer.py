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
    texts = list(load_test_reviews(smoke_cfg).texts[:48])
    reference = infer.predict(model, tok, texts)
    for precision in ("bf16", "int8"):
        pred, info = infer.predict_guarded(model, tok, texts, precision=precision)
        assert info["precision_requested"] == precision
        assert 0.0 <= info["agreement"] <= 1.0 and info["calibration_size"] == 32
        expected = precision if info["agreement"] >= infer.MIN_AGREEMENT else "fp32"
        assert info["precision_used"] == expected and pred.preds.shape == (48,)
        # The guard's promise: the same labels as fp32 (re-checked near the boundary).
        assert (pred.preds == reference.preds).mean() >= infer.MIN_AGREEMENT
    monkeypatch.setattr(infer, "MIN_AGREEMENT", 1.01)  # nothing can pass: falls back to fp32
    pred, info = infer.predict_guarded(model, tok, texts, precision="bf16")
    assert info["precision_used"] == "fp32" and info["rechecked_in_fp32"] == 0
    np.testing.assert_allclose(pred.logits, reference.logits, atol=1e-5)  # other batch mates
    _, info = infer.predict_guarded(model, tok, texts)
    assert info["agreement"] is None and info["precision_used"] == "fp32"


def test_guard_keeps_fp32_for_calibration_and_rechecks_near_the_boundary(
    tiny: tuple[Any, Any], smoke_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tok = tiny
    texts = list(load_test_reviews(smoke_cfg).texts[:48])
    reference = infer.predict(model, tok, texts)
    low = infer.predict(model, tok, texts, precision="bf16")
    monkeypatch.setattr(infer, "MIN_AGREEMENT", 0.0)  # always accept bf16
    pred, info = infer.predict_guarded(model, tok, texts, precision="bf16")
    calib = infer.calibration_indices(pred.n_tokens, infer.CALIBRATION_SIZE)
    rest = np.setdiff1d(np.arange(48), calib)
    assert info["precision_used"] == "bf16" and info["margin"] == 4.0 * info["max_logit_error"]
    # Subsets batch differently from a full run: equal up to float summation order.
    np.testing.assert_allclose(pred.logits[calib], reference.logits[calib], atol=1e-5)
    gap = low.logits[:, 1] - low.logits[:, 0]
    near = rest[np.abs(gap[rest]) <= info["margin"]]
    assert info["rechecked_in_fp32"] == len(near)
    np.testing.assert_allclose(pred.logits[near], reference.logits[near], atol=1e-5)
    far = np.setdiff1d(rest, near)
    assert len(far) and np.abs(pred.logits[far] - reference.logits[far]).max() > 1e-4  # bf16
    np.testing.assert_allclose(pred.logits[far], low.logits[far], atol=0.05)
    # An enormous margin re-checks every non-calibration review: exactly fp32's output.
    monkeypatch.setattr(infer, "MARGIN_SAFETY", 1e9)
    pred, info = infer.predict_guarded(model, tok, texts, precision="bf16")
    assert info["rechecked_in_fp32"] == len(rest)
    np.testing.assert_allclose(pred.logits, reference.logits, atol=1e-5)


def test_calibration_spreads_over_lengths() -> None:
    lengths = np.arange(100)[::-1]
    picks = infer.calibration_indices(lengths, 5)
    assert sorted(lengths[picks].tolist()) == [0, 25, 50, 74, 99]
    assert infer.calibration_indices(np.array([3, 1]), 32).tolist() == [0, 1]


def test_auto_precision_follows_the_hardware(
    tiny: tuple[Any, Any], smoke_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(infer, "cpu_supports_bf16", lambda: True)
    assert infer.resolve_precision("auto", "cpu") == "bf16"
    assert infer.resolve_precision("int8", "cpu") == "int8"
    model, tok = tiny
    texts = list(load_test_reviews(smoke_cfg).texts[:40])
    _, info = infer.predict_guarded(model, tok, texts, precision="auto")
    assert info["precision_requested"] == "auto" and info["agreement"] is not None
    monkeypatch.setattr(infer, "cpu_supports_bf16", lambda: False)  # bf16 would be emulated
    assert infer.resolve_precision("auto", "cpu") == "fp32"
    _, info = infer.predict_guarded(model, tok, texts, precision="auto")
    assert info["precision_used"] == "fp32" and info["agreement"] is None


def test_long_reviews_are_batched_under_a_token_budget() -> None:
    lengths = np.array([512, 500, 490, 480, 470, 100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 5000])
    batches = infer.length_batches(lengths, 8, max_tokens=2048)
    assert [len(b) for b in batches] == [1, 4, 4, 7]
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert all(len(b) * lengths[b].max() <= 2048 for b in batches if len(b) > 1)
    assert [len(b) for b in infer.length_batches(lengths[:5], 8)] == [2, 2, 1]  # default cap
