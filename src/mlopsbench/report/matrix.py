"""The paper's weighted evaluation matrix: load it, recompute it exactly, re-weight it.

Arithmetic is done with ``Decimal`` so Table 2's printed totals (8.30, 7.15, 8.25, 7.05) are
reproduced exactly, not within a float tolerance. Weights are percent and must sum to 100.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError

MATRIX_FILE = "paper_matrix.toml"
PROFILES_FILE = "profiles.toml"
CENT = Decimal("0.01")
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Criterion:
    key: str
    name: str
    weight: Decimal  # percent
    section: str
    scores: dict[str, Decimal]  # tool -> 0..10


@dataclass(frozen=True)
class Discrepancy:
    where: str
    quote: str
    context: str
    table_says: str
    note: str


@dataclass(frozen=True)
class PaperMatrix:
    source: dict[str, str]
    tools: tuple[str, ...]
    tool_names: dict[str, str]
    criteria: tuple[Criterion, ...]
    printed_totals: dict[str, Decimal]
    text_scores: dict[str, dict[str, Decimal]]
    discrepancies: tuple[Discrepancy, ...]

    @property
    def criterion_keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.criteria)

    @property
    def weights(self) -> dict[str, Decimal]:
        return {c.key: c.weight for c in self.criteria}

    def scores(self) -> dict[str, dict[str, Decimal]]:
        """tool -> criterion -> score."""
        return {t: {c.key: c.scores[t] for c in self.criteria} for t in self.tools}


@dataclass(frozen=True)
class WeightProfile:
    name: str
    title: str
    basis: str
    weights: dict[str, Decimal]  # criterion -> percent, validated

    def to_meta(self) -> dict[str, Any]:
        """As recorded in a compare's meta row (weights as exact decimal strings)."""
        return {
            "name": self.name,
            "title": self.title,
            "basis": self.basis,
            "weights": {k: str(v) for k, v in self.weights.items()},
        }


def _read_toml_resource(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("mlopsbench.report").joinpath(name).read_text("utf-8"))


def _dec(value: Any, what: str) -> Decimal:
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a number, got {value!r}")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{what}: expected a number, got {value!r}") from None
    if not result.is_finite():
        raise ConfigError(f"{what}: expected a finite number, got {value!r}")
    return result


def load_matrix() -> PaperMatrix:
    """The bundled transcription of the paper's Table 2 (see paper_matrix.toml)."""
    raw = _read_toml_resource(MATRIX_FILE)
    tools = tuple(raw["tools"])
    criteria = tuple(
        Criterion(
            key=c["key"],
            name=c["name"],
            weight=_dec(c["weight"], c["key"]),
            section=c["section"],
            scores={t: _dec(c["scores"][t], f"{c['key']}.{t}") for t in tools},
        )
        for c in raw["criteria"]
    )
    return PaperMatrix(
        source=dict(raw["source"]),
        tools=tools,
        tool_names=dict(raw["tool_names"]),
        criteria=criteria,
        printed_totals={t: Decimal(v) for t, v in raw["printed_totals"].items()},
        text_scores={
            k: {t: _dec(s, k) for t, s in v.items()} for k, v in raw.get("text_scores", {}).items()
        },
        discrepancies=tuple(Discrepancy(**d) for d in raw.get("discrepancies", [])),
    )


def weighted_total(scores: dict[str, Decimal], weights: dict[str, Decimal]) -> Decimal:
    """Sum of score x weight% over the criteria, rounded half-up to 2 decimals (as printed)."""
    total = sum((scores[k] * weights[k] / HUNDRED for k in weights), Decimal(0))
    return total.quantize(CENT, rounding=ROUND_HALF_UP)


def totals(matrix: PaperMatrix, weights: dict[str, Decimal] | None = None) -> dict[str, Decimal]:
    weights = weights or matrix.weights
    return {tool: weighted_total(s, weights) for tool, s in matrix.scores().items()}


def ranking(totals_by_tool: dict[str, Decimal]) -> list[tuple[int, str, Decimal]]:
    """(rank, tool, total), best first; equal totals share a rank (1, 1, 3...)."""
    ordered = sorted(totals_by_tool.items(), key=lambda kv: (-kv[1], kv[0]))
    ranked: list[tuple[int, str, Decimal]] = []
    for i, (tool, total) in enumerate(ordered):
        rank = ranked[-1][0] if ranked and ranked[-1][2] == total else i + 1
        ranked.append((rank, tool, total))
    return ranked


def validate_weights(
    weights: dict[str, Any], criteria: tuple[str, ...], source: str = "weights"
) -> dict[str, Decimal]:
    """Exactly the six criteria, each a non-negative number, summing to 100 (percent)."""
    if not isinstance(weights, dict):
        raise ConfigError(f"{source}: expected a table of criterion = percent")
    unknown = sorted(set(weights) - set(criteria))
    if unknown:
        raise ConfigError(
            f"{source}: unknown criteria {', '.join(unknown)}; expected: {', '.join(criteria)}"
        )
    missing = [c for c in criteria if c not in weights]
    if missing:
        raise ConfigError(f"{source}: missing weights for {', '.join(missing)}")
    parsed = {c: _dec(weights[c], f"{source}: weight {c}") for c in criteria}
    negative = [c for c, w in parsed.items() if w < 0]
    if negative:
        raise ConfigError(f"{source}: weights must be non-negative ({', '.join(negative)} < 0)")
    total = sum(parsed.values(), Decimal(0))
    if total != HUNDRED:
        raise ConfigError(f"{source}: weights must sum to 100 (percent), got {total.normalize()}")
    return parsed


def load_profiles(criteria: tuple[str, ...]) -> dict[str, WeightProfile]:
    """The bundled presets (paper default + profiles from the paper's recommendations)."""
    raw = _read_toml_resource(PROFILES_FILE)
    return {
        name: WeightProfile(
            name=name,
            title=p.get("title", name),
            basis=p.get("basis", ""),
            weights=validate_weights(p.get("weights", {}), criteria, f"profile {name!r}"),
        )
        for name, p in raw.items()
    }


def load_weights_file(path: Path, criteria: tuple[str, ...]) -> WeightProfile:
    """A user's TOML file: ``[weights]`` with the six criteria in percent (optional ``title``)."""
    try:
        raw = tomllib.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"weights file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read weights file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"weights file {path} is not valid TOML: {exc}") from None
    if "weights" not in raw:
        raise ConfigError(f"weights file {path} has no [weights] table")
    weights = validate_weights(raw["weights"], criteria, f"weights file {Path(path).name}")
    return WeightProfile(
        name=str(raw.get("name", Path(path).stem)),
        title=str(raw.get("title", f"custom ({Path(path).name})")),
        basis=str(raw.get("basis", f"user weights from {path}")),
        weights=weights,
    )


def resolve_profiles(
    matrix: PaperMatrix, weights_file: Path | None = None, profile: str | None = None
) -> tuple[WeightProfile, dict[str, WeightProfile]]:
    """(the selected profile, every profile to rank) — presets plus the user's file if given."""
    profiles = load_profiles(matrix.criterion_keys)
    if weights_file is not None and profile is not None:
        raise ConfigError("give either --weights FILE or --profile NAME, not both")
    if weights_file is not None:
        custom = load_weights_file(weights_file, matrix.criterion_keys)
        profiles = {**profiles, custom.name: custom}
        return custom, profiles
    name = profile or "paper"
    if name not in profiles:
        raise ConfigError(f"unknown profile {name!r}; choose one of: {', '.join(profiles)}")
    return profiles[name], profiles


def dominated_pairs(matrix: PaperMatrix) -> list[tuple[str, str]]:
    """(a, b) where a scores >= b on every criterion and > on one: no weighting ranks b above a."""
    scores = matrix.scores()
    pairs = []
    for a in matrix.tools:
        for b in matrix.tools:
            if a == b:
                continue
            ge = all(scores[a][k] >= scores[b][k] for k in matrix.criterion_keys)
            gt = any(scores[a][k] > scores[b][k] for k in matrix.criterion_keys)
            if ge and gt:
                pairs.append((a, b))
    return pairs


def table_vs_text(matrix: PaperMatrix) -> list[str]:
    """Cells where Table 2 disagrees with the per-section 'Score: N' in the text."""
    diffs = []
    for c in matrix.criteria:
        for tool, text_score in matrix.text_scores.get(c.key, {}).items():
            if c.scores[tool] != text_score:
                diffs.append(
                    f"{c.name} / {matrix.tool_names[tool]}: table {c.scores[tool]}, "
                    f"Section {c.section} text {text_score}"
                )
    return diffs


def printed_total_mismatches(matrix: PaperMatrix) -> list[str]:
    """Tools whose printed total differs from the recomputation (empty: Table 2 is consistent)."""
    computed = totals(matrix)
    return [
        f"{matrix.tool_names[t]}: printed {matrix.printed_totals[t]}, recomputed {computed[t]}"
        for t in matrix.tools
        if computed[t] != matrix.printed_totals[t]
    ]
