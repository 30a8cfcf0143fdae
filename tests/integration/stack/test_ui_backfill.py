"""What a user sees in the Airflow UI, in a real browser: the trigger form, a backfill, the report, Data Docs.

Playwright drives Debian's Chromium (/usr/bin/chromium, installed by scripts/install_browser.sh;
never `playwright install`) against the local stack started by scripts/stack_up.sh, logged in with
the documented account. In order (the later checks read what the backfill published):

1. the trigger form shows every run parameter by its title, with its help sentence (PARAM_SPECS);
2. Trigger -> Backfill, the dates, Run Backfill; the runs succeed on the DAG's Runs tab;
3. Browse -> Segment report links the index of older reports, which lists the backfilled snapshot
   dates, and an older one opens;
4. Data Docs, opened from the report's link, with every request to a host other than localhost
   blocked (the browser resolves no other host and the page's requests are intercepted): their local
   stylesheet applies and the index lists validation results, as rows linking to their pages.

Screenshots go to artifacts/ (and, with CUSTSEG_UPDATE_DOCS_SCREENSHOTS=1, to docs/img/ for the README).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from include.segmentation.params import PARAM_SPECS
from tests.stack_helpers import DAG_ID, ROOT, LocalStack, running_stack

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.postgres, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Offline but for the stack: no host name other than localhost resolves.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost",
]
DATA_END = date(2024, 6, 30)
FIRST, LAST = date(2024, 6, 28), date(2024, 6, 30)
SNAPSHOTS = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
ARTIFACTS = ROOT / "artifacts"
DOCS_IMG = ROOT / "docs" / "img"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/install_browser.sh`")
    with running_stack(tmp_path_factory.mktemp("ui-stack")) as st:
        st.cli("generate", "--customers", "1000", "--days", "400", "--end-date", DATA_END.isoformat(), "--seed", "7")
        st.wait_for_dag()
        yield st


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def left_localhost() -> list[str]:
    """URLs the page tried to load from another host than localhost (each one was blocked)."""
    return []


@pytest.fixture
def page(browser, left_localhost: list[str]):
    """A fresh browser context (no session yet) whose requests to any other host are aborted and recorded."""

    def local_only(route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            left_localhost.append(url)
            route.abort("internetdisconnected")

    context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="UTC")
    try:
        context.route("**/*", local_only)
        pg = context.new_page()
        pg.set_default_timeout(30_000)
        yield pg
    finally:
        context.close()


def _save(pg, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    pg.screenshot(path=str(path))
    if os.environ.get("CUSTSEG_UPDATE_DOCS_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / name)
    return path


def _log_in(pg, stack: LocalStack) -> None:
    """Log in with the documented account; lands on the DAG's page."""
    from playwright.sync_api import expect

    pg.goto(f"{stack.url}/dags/{DAG_ID}")
    expect(pg.get_by_text("Sign into Airflow")).to_be_visible()
    pg.get_by_label("Username").fill("admin")
    pg.get_by_label("Password").fill("admin")
    pg.get_by_role("button", name="Sign in").click()
    pg.wait_for_url(re.compile(rf"/dags/{DAG_ID}"))
    expect(pg.get_by_role("heading", name=DAG_ID).first).to_be_visible()


def _trigger_dialog(pg):
    pg.get_by_role("button", name="Trigger Dag").click()
    return pg.get_by_role("dialog").filter(has=pg.get_by_role("heading", name=re.compile(r"Trigger Dag|Run Backfill")))


def _published_snapshots(stack: LocalStack) -> list[date]:
    engine = sa.create_engine(stack.warehouse_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(
                sa.text("SELECT snapshot_date FROM segmentation.segment_runs WHERE status = 'published' ORDER BY 1")
            ).scalars())
    finally:
        engine.dispose()


def _open_segment_report(pg, stack: LocalStack):
    """Browse -> Segment report; returns the plugin page's iframe once the latest report shows."""
    from playwright.sync_api import expect

    published = _published_snapshots(stack)
    assert published == SNAPSHOTS, f"needs test_three_day_backfill_from_the_ui first; published: {published}"
    _log_in(pg, stack)
    pg.get_by_role("button", name="Browse").click()
    pg.get_by_role("menuitem", name="Segment report").click()
    pg.wait_for_url(re.compile(r"/plugin/segment-report"))
    frame = pg.frame_locator("iframe[title='Segment report']")
    expect(frame.get_by_role("heading", name=f"Customer segments · snapshot {LAST.isoformat()}")).to_be_visible()
    return frame


def test_trigger_form_shows_each_params_title_and_help(stack: LocalStack, page) -> None:
    from playwright.sync_api import expect

    pg = page
    _log_in(pg, stack)
    dialog = _trigger_dialog(pg)
    expect(dialog.get_by_role("heading", name=re.compile("Trigger Dag"))).to_be_visible()
    labels = dialog.locator("label")
    for spec in PARAM_SPECS:
        # The label is the Param's title (a required field's label ends in "*"), the help sentence under it.
        title = labels.filter(has_text=re.compile(rf"^\s*{re.escape(spec.title)}\s*\*?\s*$"))
        expect(title, spec.name).to_have_count(1)
        expect(title, spec.name).to_be_visible()
        expect(dialog.get_by_text(spec.description, exact=True), spec.name).to_be_visible()
    shown = {text.strip().rstrip("*").strip() for text in labels.all_inner_texts()}
    snake_case = sorted(spec.name for spec in PARAM_SPECS if spec.name in shown)
    assert not snake_case, f"labels in snake_case: {snake_case}"
    _save(pg, "ui_trigger_form.png")


def test_three_day_backfill_from_the_ui(stack: LocalStack, page) -> None:
    from playwright.sync_api import expect

    pg = page
    assert stack.api_json("GET", f"/dags/{DAG_ID}")["is_paused"] is True  # as after a fresh deploy

    _log_in(pg, stack)
    # Trigger -> Backfill, the dates, two runs at a time.
    dialog = _trigger_dialog(pg)
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
    for day in SNAPSHOTS:
        row = rows.filter(has_text=f"backfill__{day.isoformat()}T02:00:00+00:00")
        expect(row).to_have_count(1)
        expect(row.get_by_text("Success")).to_be_visible()
    _save(pg, "ui_backfill_runs.png")

    # What the runs published.
    assert stack.api_json("GET", f"/dags/{DAG_ID}")["is_paused"] is False
    engine = sa.create_engine(stack.warehouse_url)
    try:
        with engine.connect() as conn:
            current = conn.execute(sa.text("SELECT DISTINCT snapshot_date FROM segmentation.customer_segments")).scalars().all()
    finally:
        engine.dispose()
    assert _published_snapshots(stack) == SNAPSHOTS
    assert current == [LAST]


def test_report_links_the_index_of_older_snapshots(stack: LocalStack, page) -> None:
    from playwright.sync_api import expect

    pg = page
    frame = _open_segment_report(pg, stack)
    frame.get_by_role("link", name="All reports (older snapshots)").click()
    expect(frame.get_by_role("heading", name="Segment reports")).to_be_visible()
    listed = frame.get_by_role("listitem").get_by_role("link")
    expect(listed.first).to_be_visible()
    dates = [text.strip() for text in listed.all_inner_texts()]
    assert len(dates) >= 2 and dates == sorted(dates, reverse=True), dates
    assert set(dates) >= {d.isoformat() for d in SNAPSHOTS}, dates
    _save(pg, "ui_report_index.png")
    # An older snapshot's report opens, with the way back.
    frame.get_by_role("link", name=FIRST.isoformat(), exact=True).click()
    expect(frame.get_by_role("heading", name=f"Customer segments · snapshot {FIRST.isoformat()}")).to_be_visible()
    expect(frame.get_by_role("link", name="All reports (older snapshots)")).to_be_visible()


def test_data_docs_open_offline_with_their_styles(stack: LocalStack, page, left_localhost: list[str]) -> None:
    from playwright.sync_api import expect

    pg = page
    frame = _open_segment_report(pg, stack)
    left_localhost.clear()  # from here on, every page is the plugin's
    frame.get_by_role("link", name="Data Docs", exact=True).click()
    expect(frame.get_by_role("heading", name="Data Docs")).to_be_visible()
    # Each run's sites ("date / run / stage"), newest snapshot first: open the newest run's raw-data validation
    # (no "/" in the pattern: Playwright's selector syntax would read it as the regex's end).
    frame.get_by_role("link", name=re.compile(rf"^{LAST.isoformat()}\W+seg_\w+\W+raw_window$")).first.click()
    results = frame.locator("table.ge-index-page-validation-results-table")
    rows = results.locator("tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 1
    # The rows are the run's validation results, each linking to its page (the suite's cell to the suite).
    hrefs = rows.evaluate_all("trs => trs.map(tr => tr.querySelector('a').getAttribute('href'))")
    assert hrefs and all(h.startswith("validations/") for h in hrefs), hrefs
    expect(results.locator("tbody")).to_contain_text(re.compile(r"Success|Failed"))
    # The local stylesheet applied: its rules are loaded, and a table header differs from the browser's default.
    rules = results.evaluate(
        "() => Array.from(document.styleSheets).filter(s => (s.href || '').endsWith('/offline.css'))"
        ".map(s => s.cssRules.length)"
    )
    assert rules and rules[0] > 0, rules
    header_bg = results.locator("th").first.evaluate("th => getComputedStyle(th).backgroundColor")
    assert header_bg == "rgb(241, 243, 245)", header_bg  # offline.css: th { background: #f1f3f5 }
    _save(pg, "ui_data_docs_offline.png")
    # A validation result opens from its row.
    rows.first.locator("a").first.click()
    expect(frame.get_by_text("Expectation Validation Result").first).to_be_visible()
    assert not left_localhost, f"Data Docs tried to load from other hosts: {left_localhost}"
