"""The model subpackage."""

from include.segmentation.model.clustering import (
    ClusterConfig,
    ClusteringError,
    fit_segments,
)
from include.segmentation.model.features import (
    CATEGORICAL_FEATURES,
    FEATURES,
    MODEL_FEATURES,
    NUMERIC_FEATURES,
    build_features,
    model_weights,
    transform_for_model,
)
from include.segmentation.model.identity import (
    match_ids,
    name_segments,
)
from include.segmentation.model.scoring import (
    quality_gate,
    sample_indices,
    sampled_silhouette,
    score_labels,
    silhouette,
)

__all__ = [
    "CATEGORICAL_FEATURES",
    "ClusterConfig",
    "ClusteringError",
    "FEATURES",
    "MODEL_FEATURES",
    "NUMERIC_FEATURES",
    "build_features",
    "fit_segments",
    "match_ids",
    "model_weights",
    "name_segments",
    "quality_gate",
    "sample_indices",
    "sampled_silhouette",
    "score_labels",
    "silhouette",
    "transform_for_model",
]
