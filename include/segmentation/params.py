"""The run parameters: one spec from which the DAG's trigger form and the pipeline's checks are made.

Dependency-free (standard library only), so DAG files can build their Params from it at parse time,
and the command line, the tests and the DAG validate a run's parameters with the same rules before
anything runs (``resolve_params``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from include.segmentation.errors import ParamsError


@dataclass(frozen=True)
class ParamSpec:
    """One run parameter: default, JSON-schema type and bounds, and the trigger form's help."""

    name: str
    default: Any
    type: str  # JSON-schema type: integer, number, string, object
    title: str
    description: str
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] | None = None


PARAM_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("window_days", 365, "integer", "History window (days)",
              "How many days of purchases and browsing before the snapshot date each customer is judged on.",
              1, 3650),
    ParamSpec("k_min", 3, "integer", "Fewest segments",
              "The smallest number of segments the model may choose.", 2, 50),
    ParamSpec("k_max", 10, "integer", "Most segments",
              "The largest number of segments the model may choose (it picks the best-separated count in between).",
              2, 50),
    ParamSpec("algorithm", "auto", "string", "Clustering algorithm",
              "k-means for up to 200,000 customers and mini-batch k-means above (auto), or force one of them.",
              enum=("auto", "kmeans", "minibatch_kmeans")),
    ParamSpec("min_silhouette", 0.2, "number", "Minimum separation (silhouette)",
              "Quality gate: segments whose silhouette score is below this are not published; "
              "yesterday's segments stay current.", -1, 1),
    ParamSpec("min_segment_share", 0.02, "number", "Minimum segment share",
              "Quality gate: a model with a segment holding less than this share of customers is not published.",
              0, 0.5),
    ParamSpec("min_population", 500, "integer", "Smallest population",
              "Runs with fewer customers than this in the window are rejected as too small to segment; "
              "the previous segments stay current.", 1, 10_000_000),
    ParamSpec("min_segment_size", 50, "integer", "Smallest segment (customers)",
              "Each segment should hold at least this many customers: the number of segments is capped "
              "accordingly, and a run too small for the fewest segments is rejected.", 1, 10_000_000),
    ParamSpec("random_seed", 42, "integer", "Random seed",
              "Fixes the model's random choices, so re-running a date gives the same segments.", 0, 2**31 - 1),
    ParamSpec("outlier_method", "distance", "string", "Outlier rule",
              "How customers far from every segment are flagged: distance to their segment's centre, or DBSCAN.",
              enum=("distance", "dbscan")),
    ParamSpec("max_match_distance", 1.5, "number", "Segment id match distance",
              "How far (in standard deviations) a segment may move from yesterday's and keep its id.", 0, 100),
    ParamSpec("k_change_min_gain", 0.02, "number", "Evidence to change the segments (silhouette gain)",
              "Yesterday's segments are kept (same count, warm-started from their centres) while they still fit "
              "today's data; the count changes only when today's best silhouette beats theirs by more than this.",
              0, 1),
    ParamSpec("k_stability_tolerance", 0.01, "number", "Silhouette tolerance for preferring stable segments",
              "Among segment counts whose silhouette is within this of the best, the one whose segments are most "
              "stable under resampling is chosen.", 0, 1),
    ParamSpec("quality", {}, "object", "Data-quality overrides",
              'Change a check\'s severity or thresholds for this run, e.g. {"transactions.last_day_volume": '
              '"off"}; see docs/data_quality.md.'),
)

SPECS: dict[str, ParamSpec] = {p.name: p for p in PARAM_SPECS}
DEFAULT_PARAMS: dict[str, Any] = {p.name: p.default for p in PARAM_SPECS}


def _coerce(spec: ParamSpec, value: Any) -> Any:
    """The value in the spec's type, or a ParamsError that names the parameter."""
    kind = spec.type
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
            raise ParamsError(f"run parameter {spec.name!r} must be an integer, got {value!r}")
        value = int(value)
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ParamsError(f"run parameter {spec.name!r} must be a number, got {value!r}")
        value = float(value)
    elif kind == "string" and not isinstance(value, str):
        raise ParamsError(f"run parameter {spec.name!r} must be a string, got {value!r}")
    elif kind == "object" and not isinstance(value, Mapping):
        raise ParamsError(f"run parameter {spec.name!r} must be a JSON object, got {value!r}")
    if spec.minimum is not None and value < spec.minimum or spec.maximum is not None and value > spec.maximum:
        raise ParamsError(f"run parameter {spec.name!r} must be within [{spec.minimum}, {spec.maximum}], got {value!r}")
    if spec.enum is not None and value not in spec.enum:
        raise ParamsError(f"run parameter {spec.name!r} must be one of {', '.join(spec.enum)}, got {value!r}")
    return value


def resolve_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with the run's parameters, each checked against its spec."""
    given = dict(params or {})
    unknown = sorted(set(given) - set(SPECS))
    if unknown:
        raise ParamsError(f"unknown run parameter(s): {', '.join(unknown)}")
    merged = {name: _coerce(SPECS[name], given.get(name, spec.default)) for name, spec in SPECS.items()}
    if merged["k_min"] > merged["k_max"]:
        raise ParamsError(f"k range must satisfy k_min <= k_max, got {merged['k_min']}..{merged['k_max']}")
    if "quality" not in given:
        del merged["quality"]  # recorded only when the run overrides a check
    return merged
