"""The package's exceptions: one base, and one marker for errors that a retry cannot fix.

``SegmentationError`` is the root of every error the package raises on purpose. An error that
also derives from ``PermanentError`` is about the data, the configuration or the model (a failed
check, an empty window, a rejected model, a bad parameter): re-running the same task on the same
inputs gives the same answer, so the Airflow adapter fails such a task at once instead of retrying.
Everything else (a dropped connection, a platform's 5xx) is worth a retry.
"""

from __future__ import annotations


class SegmentationError(Exception):
    """Base of the package's own errors."""


class PermanentError(SegmentationError):
    """A retry cannot fix this: the task fails at once, with this message."""


class ParamsError(PermanentError, ValueError):
    """A run parameter is unknown, of the wrong type or out of range (named in the message)."""


class TooSmallToSegmentError(PermanentError, ValueError):
    """The population is below ``min_population``, or too small for ``k_min`` segments of
    ``min_segment_size`` customers: the run is rejected and the previous snapshot stays current."""
