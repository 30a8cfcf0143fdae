"""The DAG's trigger form, made from the package's one run-parameter spec."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from include.segmentation.params import PARAM_SPECS


def dag_params() -> dict[str, Param]:
    """One Airflow ``Param`` per run parameter, with its title, help text, type and bounds."""
    out: dict[str, Param] = {}
    for spec in PARAM_SPECS:
        schema: dict[str, Any] = {"type": spec.type, "title": spec.title, "description": spec.description}
        if spec.minimum is not None:
            schema["minimum"] = spec.minimum
        if spec.maximum is not None:
            schema["maximum"] = spec.maximum
        if spec.enum is not None:
            schema["enum"] = list(spec.enum)
        default = dict(spec.default) if isinstance(spec.default, dict) else spec.default
        out[spec.name] = Param(default, **schema)
    return out
