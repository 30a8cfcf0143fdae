"""A user starts a three-day backfill from the Airflow UI's own dialog, in a real browser.

Playwright drives Debian's Chromium (/usr/bin/chromium, installed by scripts/install_browser.sh;
never `playwright install`) against the local stack started by scripts/stack_up.sh: log in with
the documented account, open the DAG, Trigger -> Backfill, pick the dates, Run Backfill, then
watch the runs succeed on the DAG's Runs tab. Screenshots go to artifacts/ (and, with
CUSTSEG_UPDATE_DOCS_SCREENSHOTS=1, to docs/img/ for the README).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.stack_helpers import DAG_ID, ROOT, LocalStack, running_stack

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.postgres, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DATA_END = date(2024, 6, 30)
FIRST, LAST = date(2024, 6, 28), date(2024, 6, 30)
ARTIFACTS = ROOT / "artifacts"
DOCS_IMG = ROOT / "docs" / "img"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/install_browser.sh`")
    with running_stack(tmp_path_factory.mktemp("ui-stack")) as st:
        st.cli("generate", "--customers", "1000", "--days", "400", "--end-date", DATA_END.isoformat(), "--seed", "7")
        st.wait_for_dag()
        yield st


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="UTC")
            pg = context.new_page()
            pg.set_default_timeout(30_000)
            yield pg
        finally:
            browser.close()


def _save(pg, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    pg.screenshot(path=str(path))
    if os.environ.get("CUSTSEG_UPDATE_DOCS_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / name)
    return path


def test_three_day_backfill_from_the_ui(stack: LocalStack, page) -> None:
    from playwright.sync_api import expect

    pg = page
    assert stack.api_json("GET", f"/dags/{DAG_ID}")["is_paused"] is True  # as after a fresh deploy

    # Log in with the documented account.
    pg.goto(f"{stack.url}/dags/{DAG_ID}")
    expect(pg.get_by_text("Sign into Airflow")).to_be_visible()
    pg.get_by_label("Username").fill("admin")
    pg.get_by_label("Password").fill("admin")
    pg.get_by_role("button", name="Sign in").click()
    pg.wait_for_url(re.compile(rf"/dags/{DAG_ID}"))
    expect(pg.get_by_role("heading", name=DAG_ID).first).to_be_visible()

    # Trigger -> Backfill, the dates, two runs at a time.
    pg.get_by_role("button", name="Trigger Dag").click()
    dialog = pg.get_by_role("dialog").filter(has=pg.get_by_role("heading", name=re.compile(r"Trigger Dag|Run Backfill")))
    dialog.get_by_text("Backfill", exact=True).click()
    expect(dialog.get_by_role("heading", name=re.compile("Run Backfill"))).to_be_visible()
    for i, (day, clock) in enumerate(((FIRST, "00:00"), (LAST, "23:59"))):
        dialog.get_by_test_id("datetime-input").nth(i).click()
        # The date-time picker pops up with a date field and a time field (earlier pickers stay hidden).
        pg.get_by_placeholder("YYYY/MM/DD").filter(visible=True).fill(day.strftime("%Y/%m/%d"))
        pg.get_by_placeholder("HH:mm").filter(visible=True).fill(clock)
        pg.keyboard.press("Escape")
        expect(pg.get_by_placeholder("YYYY/MM/DD").filter(visible=True)).to_have_count(0)  # picker closed
    expect(dialog.get_by_text("3 runs will be triggered.")).to_be_visible()
    dialog.locator("input[name=max_active_runs]").fill("2")
    unpause = dialog.get_by_role("checkbox", name=re.compile(f"Unpause {DAG_ID} on trigger"))
    expect(unpause).to_be_checked()  # the paused DAG gets unpaused by the dialog itself
    _save(pg, "ui_backfill_dialog.png")
    dialog.get_by_role("button", name="Run Backfill").click()
    expect(pg.get_by_text("Backfill in progress")).to_be_visible()

    # Wait for the scheduler to finish the backfill (bounded), then look at the Runs tab.
    deadline = time.monotonic() + 900
    while True:
        backfills = stack.api_json("GET", "/backfills", params={"dag_id": DAG_ID})["backfills"]
        if backfills and all(b["completed_at"] for b in backfills):
            break
        assert time.monotonic() < deadline, f"backfill did not complete\n{stack.diagnostics()}"
        time.sleep(3)
    assert len(backfills) == 1 and backfills[0]["max_active_runs"] == 2

    pg.reload()
    pg.get_by_role("link", name="Runs", exact=True).click()
    pg.wait_for_url(re.compile(rf"/dags/{DAG_ID}/runs"))
    rows = pg.locator("tbody tr").filter(has_text="backfill__")
    expect(rows).to_have_count(3)
    for day in (FIRST + timedelta(days=i) for i in range(3)):
        row = rows.filter(has_text=f"backfill__{day.isoformat()}T02:00:00+00:00")
        expect(row).to_have_count(1)
        expect(row.get_by_text("Success")).to_be_visible()
    _save(pg, "ui_backfill_runs.png")

    # What the runs published.
    assert stack.api_json("GET", f"/dags/{DAG_ID}")["is_paused"] is False
    engine = sa.create_engine(stack.warehouse_url)
    try:
        with engine.connect() as conn:
            published = conn.execute(
                sa.text("SELECT snapshot_date FROM segmentation.segment_runs WHERE status = 'published' ORDER BY 1")
            ).scalars().all()
            current = conn.execute(sa.text("SELECT DISTINCT snapshot_date FROM segmentation.customer_segments")).scalars().all()
    finally:
        engine.dispose()
    assert published == [FIRST + timedelta(days=i) for i in range(3)]
    assert current == [LAST]
