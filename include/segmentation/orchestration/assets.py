"""The Assets the DAGs exchange: one definition, imported by the producer and the consumers."""

from __future__ import annotations

from airflow.sdk import Asset

#: Updated when a run publishes a snapshot that consumers' ``customer_segments`` shows.
PUBLISHED_SEGMENTS = Asset(name="segmentation.customer_segments", uri="warehouse://segmentation/customer_segments")

#: Updated when a live assignment run (``segment_assignment``) changed at least one customer's segment or
#: outlier flag in ``customer_segments_now`` (a new customer counts): audiences may need a sync.
LIVE_SEGMENTS = Asset(name="segmentation.customer_segments_now", uri="warehouse://segmentation/customer_segments_now")
