"""The paper's matrix as data: exact totals, weight validation, profiles, and the paper's text."""

from __future__ import annotations

import itertools
import re
from decimal import Decimal
from pathlib import Path

import pytest

from mlopsbench.errors import ConfigError
from mlopsbench.report import matrix as mx

# The paper lives in the project's shared/ folder, beside the checkout (CI lays a copy there).
_SEED = Path("shared/seeds/000_f6bdcc3e3aafc107.txt")
PAPER_TEXT = next(
    (
        root / _SEED
        for root in (Path(__file__).resolve().parents[3], Path("/work"))
        if (root / _SEED).exists()
    ),
    Path(__file__).resolve().parents[3] / _SEED,
)
CRITERIA = (
    "installation",
    "flexibility",
    "interoperability",
    "instrumentation",
    "interpretability",
    "documentation",
)


@pytest.fixture(scope="module")
def matrix() -> mx.PaperMatrix:
    return mx.load_matrix()


def test_table2_totals_are_reproduced_exactly(matrix: mx.PaperMatrix) -> None:
    totals = mx.totals(matrix)
    assert totals == {
        "mlflow": Decimal("8.30"),
        "metaflow": Decimal("7.15"),
        "airflow": Decimal("8.25"),
        "kfp": Decimal("7.05"),
    }
    assert totals == matrix.printed_totals
    assert mx.printed_total_mismatches(matrix) == []


def test_table2_transcription(matrix: mx.PaperMatrix) -> None:
    assert matrix.criterion_keys == CRITERIA
    assert [c.weight for c in matrix.criteria] == [Decimal(w) for w in (15, 15, 20, 15, 15, 20)]
    assert sum(matrix.weights.values()) == 100
    scores = matrix.scores()
    assert [scores["mlflow"][c] for c in CRITERIA] == [9, 8, 7, 8, 9, 9]
    assert [scores["metaflow"][c] for c in CRITERIA] == [4, 9, 7, 9, 7, 7]
    assert [scores["airflow"][c] for c in CRITERIA] == [8, 9, 9, 6, 8, 9]
    assert [scores["kfp"][c] for c in CRITERIA] == [6, 9, 8, 5, 7, 7]
    # The per-section "Score: N" transcription agrees with the table, cell by cell.
    assert mx.table_vs_text(matrix) == []


def test_weighted_total_rounds_half_up() -> None:
    weights = {"a": Decimal(50), "b": Decimal(50)}
    assert mx.weighted_total({"a": Decimal("8.01"), "b": Decimal("8.00")}, weights) == Decimal(
        "8.01"
    )  # 8.005
    assert mx.weighted_total({"a": Decimal(7), "b": Decimal(8)}, weights) == Decimal("7.50")


def test_ranking_shares_ranks_on_ties() -> None:
    ranked = mx.ranking({"a": Decimal("8.30"), "b": Decimal("8.30"), "c": Decimal("7")})
    assert ranked == [(1, "a", Decimal("8.30")), (1, "b", Decimal("8.30")), (3, "c", Decimal("7"))]


def test_paper_ranking_and_dominance(matrix: mx.PaperMatrix) -> None:
    assert [t for _r, t, _v in mx.ranking(mx.totals(matrix))] == [
        "mlflow",
        "airflow",
        "metaflow",
        "kfp",
    ]
    # Airflow >= KFP on every criterion: no weighting can put KFP above Airflow.
    assert mx.dominated_pairs(matrix) == [("airflow", "kfp")]


def test_profiles_are_valid_and_change_the_ranking(matrix: mx.PaperMatrix) -> None:
    profiles = mx.load_profiles(matrix.criterion_keys)
    assert {"paper", "prototyping", "enterprise", "kubernetes"} <= set(profiles)
    assert profiles["paper"].weights == matrix.weights
    for profile in profiles.values():
        assert sum(profile.weights.values()) == 100
        assert all(w >= 0 for w in profile.weights.values())
        assert profile.basis
    leaders = {name: mx.ranking(mx.totals(matrix, p.weights))[0][1] for name, p in profiles.items()}
    assert leaders["paper"] == "mlflow"
    assert leaders["prototyping"] == "mlflow"
    assert leaders["enterprise"] == "airflow"


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({**dict.fromkeys(CRITERIA, 15), "documentation": 30}, "sum to 100"),
        ({**dict.fromkeys(CRITERIA, 20), "installation": -20, "flexibility": 20}, "non-negative"),
        ({c: 20 for c in CRITERIA[:5]}, "missing weights for documentation"),
        ({**dict.fromkeys(CRITERIA, 0), "installation": 100, "speed": 0}, "unknown criteria speed"),
        ({**dict.fromkeys(CRITERIA, 0), "installation": "lots"}, "expected a number"),
        ({**dict.fromkeys(CRITERIA, 0), "installation": True}, "expected a number"),
    ],
)
def test_bad_weights_raise_one_line_config_error(weights: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        mx.validate_weights(weights, CRITERIA)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_fractional_weights_summing_to_100_are_accepted() -> None:
    weights = dict(zip(CRITERIA, (12.5, 12.5, 25, 10, 20, 20), strict=True))
    parsed = mx.validate_weights(weights, CRITERIA)
    assert parsed["installation"] == Decimal("12.5")


def test_weights_file(tmp_path: Path, matrix: mx.PaperMatrix) -> None:
    good = tmp_path / "ops.toml"
    good.write_text(
        'title = "ops team"\n[weights]\ninstallation = 10\nflexibility = 20\ninteroperability = 30\n'
        "instrumentation = 10\ninterpretability = 10\ndocumentation = 20\n"
    )
    selected, profiles = mx.resolve_profiles(matrix, good, None)
    assert selected.name == "ops" and selected.title == "ops team"
    assert "ops" in profiles and "paper" in profiles
    assert mx.totals(matrix, selected.weights)["airflow"] == Decimal("8.50")

    (tmp_path / "bad.toml").write_text("[weights\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        mx.load_weights_file(tmp_path / "bad.toml", CRITERIA)
    (tmp_path / "empty.toml").write_text("title = 'x'\n")
    with pytest.raises(ConfigError, match=r"no \[weights\] table"):
        mx.load_weights_file(tmp_path / "empty.toml", CRITERIA)
    with pytest.raises(ConfigError, match="not found"):
        mx.load_weights_file(tmp_path / "nope.toml", CRITERIA)


def test_profile_selection_errors(matrix: mx.PaperMatrix, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown profile 'fastest'"):
        mx.resolve_profiles(matrix, None, "fastest")
    with pytest.raises(ConfigError, match="not both"):
        mx.resolve_profiles(matrix, tmp_path / "w.toml", "paper")
    assert mx.resolve_profiles(matrix, None, None)[0].name == "paper"


# --- against the paper's text (the seed file lives outside the repository) ----------------------

needs_paper = pytest.mark.skipif(
    not PAPER_TEXT.exists(), reason=f"paper text not present at {PAPER_TEXT}"
)


def _paper() -> str:
    return re.sub(r"\s+", " ", PAPER_TEXT.read_text("utf-8").replace("**", ""))


@needs_paper
def test_discrepancy_quotes_are_verbatim(matrix: mx.PaperMatrix) -> None:
    text = _paper()
    assert len(matrix.discrepancies) >= 3
    for d in matrix.discrepancies:
        assert d.quote in text, d.quote
    assert (
        "MLflow and Apache Airflow achieve the highest overall scores with a weighted average of 8.30"
        in text
    )


@needs_paper
def test_section_scores_in_the_text_match_the_transcription(matrix: mx.PaperMatrix) -> None:
    """Parse every "<Tool> ... Score: N." of Sections 4.1-4.6 from the paper itself."""
    text = _paper()
    names = {
        "MLflow": "mlflow",
        "Metaflow": "metaflow",
        "Apache Airflow": "airflow",
        "Kubeflow Pipelines": "kfp",
    }
    starts = [text.index(f"4.{i} ") for i in range(1, 8)]
    for criterion, (start, end) in zip(CRITERIA, itertools.pairwise(starts), strict=True):
        section = text[start:end]
        found = {}
        for paragraph in re.split(
            r"(?=(?:MLflow|Metaflow|Apache Airflow|Kubeflow Pipelines)\b(?: :|:| has| provides| allows| stands| is| requires| was| features| offers))",
            section,
        ):
            score = re.search(r"Score: (\d+)", paragraph)
            head = next((n for n in names if paragraph.startswith(n)), None)
            if score and head:
                found[names[head]] = Decimal(score.group(1))
        assert found == matrix.text_scores[criterion], criterion
        assert found == {t: matrix.criteria[CRITERIA.index(criterion)].scores[t] for t in found}
