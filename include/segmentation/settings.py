"""Settings: every environment variable and path the package reads, in one place.

Nothing here touches a database or imports a third-party library, so DAG files and light tools
can import it at parse time.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The project checkout (``include/segmentation/settings.py`` -> three levels up).
PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: Environment variables (their names are the interface; values are read when needed).
ARTIFACTS_ENV = "SEGMENTATION_ARTIFACTS_DIR"
WAREHOUSE_URL_ENV = "WAREHOUSE_URL"
AIRFLOW_WAREHOUSE_CONN_ENV = "AIRFLOW_CONN_WAREHOUSE"
ONLINE_RETAIL_ENV = "ONLINE_RETAIL_CSV"
EXTRACT_WORK_MEM_ENV = "SEGMENTATION_EXTRACT_WORK_MEM"
AUDIENCES_FILE_ENV = "SEGMENTATION_AUDIENCES_FILE"
RULES_MAX_DEPTH_ENV = "SEGMENTATION_RULES_MAX_DEPTH"

#: Airflow connection ids.
WAREHOUSE_CONN_ID = "warehouse"

#: The embedded SQLite warehouse used when nothing else is configured.
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "data" / "warehouse.db"

#: Public data sets beside the checkout (``../shared``); absent on a plain clone.
SHARED_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"


def artifacts_dir() -> Path:
    """``$SEGMENTATION_ARTIFACTS_DIR``, else ``<project>/artifacts``: reports, Data Docs, audience files."""
    return Path(os.environ.get(ARTIFACTS_ENV) or PROJECT_ROOT / "artifacts")


def reports_dir() -> Path:
    """Where HTML reports are written and served from: ``<artifacts>/reports``."""
    return artifacts_dir() / "reports"


def data_docs_root() -> Path:
    """Root of the Great Expectations Data Docs sites: ``<artifacts>/data_docs``."""
    return artifacts_dir() / "data_docs"


def audiences_dir() -> Path:
    """Where the file destination writes its add/remove files: ``<artifacts>/audiences``."""
    return artifacts_dir() / "audiences"


def online_retail_path() -> Path:
    """The Online Retail file: ``$ONLINE_RETAIL_CSV``, else ``../shared/data/online_retail/...``."""
    override = os.environ.get(ONLINE_RETAIL_ENV)
    return Path(override) if override else SHARED_DATA_DIR / "online_retail" / "online_retail.csv.gz"
