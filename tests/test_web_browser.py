"""The dashboard in a real browser: Chromium, driven by Playwright, against a real
`queuectl dashboard` process, on a queue that the real CLI and a real worker pool fill.

One dashboard, one worker pool and one browser serve the whole module; each test gets
a fresh browser context (its own cookies) with one page in it. Everything that page
does is watched: a console error, an uncaught exception, a failed request,
an HTTP error, or a request that leaves the dashboard (a CDN) fails the test.

Set QUEUECTL_SCREENSHOTS=DIR to also save a full-page screenshot of every page.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import expect, sync_playwright

from conftest import CLI, QUEUECTL, wait_for
from queuectl import Queue

CHROMIUM = "/usr/bin/chromium"
XSS = "<script>alert(1)</script>"


def _require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


# ------------------------------------------------------------------ the site under test


class Site:
    """The running dashboard and its queue (the CLI, and the Python API for quick reads)."""

    def __init__(self, cli: CLI, queue: Queue, url: str):
        self.cli = cli
        self.queue = queue
        self.url = url  # ends with "/"

    def ids(self, state: str | None = None) -> set[str]:
        return {job.id for job in self.queue.jobs(state=state)}


def _read_url(proc: subprocess.Popen, log: Path, timeout: float = 20) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("queuectl dashboard on http://"):
        proc.kill()
        proc.wait(timeout=10)
        pytest.fail(f"dashboard did not start: {line!r}\n{log.read_text()}")
    return line.split()[3]


def _stop(proc: subprocess.Popen, *, twice: bool = False) -> None:
    """SIGTERM (twice for a worker pool: the second stops its running jobs), then wait."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    if twice:
        try:
            proc.wait(timeout=0.3)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    workdir = root / "work"
    workdir.mkdir()
    cli = CLI(root / "data" / "queue.db", workdir)
    queue = Queue(str(cli.db))
    dashboard = pool = None
    try:
        queue.enqueue_many(
            [
                {"id": "hello", "command": "echo hello world"},
                {"id": "report", "command": "echo building report; echo done", "priority": 5},
                {"id": "broken", "command": "echo 'disk full' >&2; exit 3", "max_retries": 0},
                {"id": "flaky", "command": "echo 'no route' >&2; exit 3", "max_retries": 0},
                {"id": XSS, "command": XSS, "max_retries": 0},  # the shell fails on it: dead
                {"id": "later", "command": "date", "delay": "1h"},  # stays pending
                # for a pool that works only the `slow` queue: the workers page shows a busy
                # slot, and the default queue is left alone (a retried job stays pending)
                {"id": "long", "command": "sleep 300", "queue": "slow"},  # stopped at teardown
            ],
            cwd=str(workdir),
        )
        # the dashboard and the pool start up while the CLI runs the rest
        log = root / "dashboard.log"
        with open(log, "wb") as err:
            dashboard = subprocess.Popen(
                [QUEUECTL, "dashboard", "--port", "0"],
                env=cli.env,
                cwd=workdir,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        with open(root / "pool.log", "wb") as out:
            pool = subprocess.Popen(
                [QUEUECTL, "worker", "start", "--count", "2", "--queue", "slow"],
                env=cli.env,
                cwd=workdir,
                stdout=out,
                stderr=out,
            )
        cli.run("worker", "start", "--burst", "--queue", "default")
        cli.run("schedule", "add", "nightly", "0 3 * * *", "--command", "backup.sh")
        wait_for(lambda: queue.get("long").state == "processing", message="the pool to start")
        yield Site(cli, queue, _read_url(dashboard, log))
    finally:
        if dashboard is not None:
            _stop(dashboard)
            assert dashboard.stdout is not None
            dashboard.stdout.close()
        if pool is not None:
            _stop(pool, twice=True)
        queue.close()


@pytest.fixture(scope="module")
def browser():
    _require_chromium()
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def tab(browser, site):
    """A fresh context (cookies) and its one page, watched."""
    context = browser.new_context(base_url=site.url, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(5000)
    try:
        yield Tab(context.new_page(), site.url)
    finally:
        context.close()


# ------------------------------------------------------------------ watching a page


class Tab:
    """A page and everything that went wrong on it."""

    def __init__(self, page, base_url: str):
        self.page = page
        self.base_url = base_url
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.navigating = False
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("request", self._request)
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _console(self, message) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")

    def _request(self, request) -> None:
        self.requests.append(request.url)
        if not request.url.startswith(self.base_url):
            self.problems.append(f"request leaves the dashboard: {request.url}")

    def _failed(self, request) -> None:
        if self.navigating and request.failure == "net::ERR_ABORTED":
            return  # a live part's refresh, cancelled by the navigation the test asked for
        self.problems.append(f"request failed: {request.url}: {request.failure}")

    def _response(self, response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def goto(self, path: str) -> None:
        """Load `path` in this page and wait for htmx to be up."""
        self.navigating = True
        try:
            self.page.goto(path)
        finally:
            self.navigating = False
        self.page.wait_for_function("typeof htmx !== 'undefined'")

    def follow(self, link, url: str) -> None:
        """Click `link` and wait for the page at `url` to load."""
        self.navigating = True
        try:
            link.click()
            self.page.wait_for_url(url)
        finally:
            self.navigating = False

    def refresh_live(self) -> None:
        """Fire the `refresh` event the live part listens to and wait for its swap: the
        partial's own rendering, as the poll fetches it."""
        self.page.evaluate(
            """() => new Promise((resolve, reject) => {
                document.body.addEventListener("htmx:afterSettle", resolve, {once: true});
                setTimeout(() => reject(new Error("no swap within 5 s")), 5000);
                htmx.trigger(document.body, "refresh");
            })"""
        )

    def mark(self) -> None:
        """Mark the document: `reloaded` tells whether it was replaced since."""
        self.page.evaluate("window.__marker = 1")

    def reloaded(self) -> bool:
        return self.page.evaluate("window.__marker !== 1")

    def accept_next_dialog(self) -> list[str]:
        """Accept the next confirmation the page asks; its message lands in the list."""
        asked: list[str] = []

        def accept(dialog):
            asked.append(dialog.message)
            dialog.accept()

        self.page.once("dialog", accept)
        return asked

    def screenshot(self, name: str) -> None:
        folder = os.environ.get("QUEUECTL_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)

    def rows(self) -> list[str]:
        """The ids in the jobs table, top to bottom."""
        return self.page.locator("#live table.jobs tbody tr td:first-child a").all_inner_texts()

    def fields(self) -> dict[str, str]:
        """A job page's field table: name -> the text shown."""
        return self.page.eval_on_selector_all(
            "table.fields tr",
            """trs => Object.fromEntries(trs.map((tr) => [
                tr.querySelector("th").textContent.trim(), tr.querySelector("td").innerText.trim(),
            ]))""",
        )

    def assert_clean(self) -> None:
        assert self.problems == [], "\n".join(self.problems)


# ------------------------------------------------------------------ tests


def test_every_page_loads_cleanly_from_the_dashboard_alone(tab, site):
    page = tab.page
    pages = [
        ("/", "overview", "Overview"),
        ("/jobs", "jobs", "Jobs"),
        ("/jobs/report", "job", "Job report"),
        ("/dlq", "dlq", "Dead letters"),
        ("/workers", "workers", "Workers"),
        ("/schedules", "schedules", "Schedules"),
    ]
    for path, name, heading in pages:
        tab.goto(path)
        expect(page.locator("h1")).to_have_text(heading)
        if path == "/":
            expect(page.locator("#chart .uplot canvas")).to_have_count(1)
        elif path == "/workers":
            expect(page.locator("#live table.workers td.num").first).to_have_text("1/2")
            expect(page.locator("#live table.workers a")).to_have_text("long")
        elif path == "/schedules":
            expect(page.locator("#live table tbody tr")).to_contain_text("nightly")
            expect(page.locator("#live table tbody tr")).to_contain_text("backup.sh")
        if path != "/jobs":  # its table follows the filters, not a timer
            tab.refresh_live()
        tab.screenshot(name)
        tab.assert_clean()
    assets = {url.removeprefix(site.url) for url in tab.requests if "/static/" in url}
    assert {"static/app.css", "static/app.js", "static/htmx-2.0.11.min.js"} <= assets, assets
    assert any(asset.startswith("static/uPlot-") for asset in assets), assets


def test_filtering_the_job_table_swaps_it_in_place(tab, site):
    page = tab.page
    tab.goto("/jobs")
    assert set(tab.rows()) == site.ids()
    tab.mark()

    completed = site.ids("completed")
    assert completed >= {"hello", "report"}
    page.locator("#filters select[name=state]").select_option("completed")
    wait_for(lambda: set(tab.rows()) == completed, timeout=5, message="completed jobs only")
    expect(page.locator("#live .state")).to_have_text(["completed"] * len(completed))
    assert "state=completed" in page.url  # pushed into the history, not loaded

    page.locator("#search").fill("hello")
    wait_for(lambda: tab.rows() == ["hello"], timeout=5, message="the search to narrow it")

    page.locator("#filters select[name=state]").select_option("")
    page.locator("#search").fill("no-such-thing")
    expect(page.locator("#live .empty")).to_have_text("No jobs match.")
    page.locator("#search").fill("rep")
    wait_for(lambda: tab.rows() == ["report"], timeout=5, message="a search on the id")

    assert not tab.reloaded()
    tab.assert_clean()


def test_a_job_opens_from_the_table_with_its_fields(tab, site):
    page = tab.page
    tab.goto("/jobs")
    tab.follow(page.locator("#live table.jobs a", has_text="report"), f"{site.url}jobs/report")
    expect(page.locator("h1")).to_have_text("Job report")

    job = site.queue.get("report").to_dict()
    shown = tab.fields()
    for name in ("id", "command", "state", "queue", "priority", "attempts", "exit_code"):
        assert shown[name] == str(job[name]), (name, shown)
    expect(page.locator("#output")).to_have_text("building report\ndone")
    expect(page.locator("table.runs tbody tr")).to_have_count(1)
    expect(page.locator(".actions button")).to_have_text(["Requeue", "Delete"])
    tab.assert_clean()


def test_retrying_a_dead_job_from_the_dlq_page(tab, site):
    page = tab.page
    assert site.queue.get("broken").state == "dead"
    dead = len(site.ids("dead"))
    tab.goto("/dlq")
    tab.mark()
    row = page.locator('#live tr[data-job="broken"]')
    expect(row).to_contain_text("exit code 3")
    count = page.locator("#live .actions .count")
    expect(count).to_have_text(f"{dead} dead")

    asked = tab.accept_next_dialog()
    row.get_by_role("button", name="Retry").click()
    expect(row).to_have_count(0)
    expect(count).to_have_text(f"{dead - 1} dead")
    assert asked == ["Retry job broken?"]
    assert not tab.reloaded()

    assert site.cli.state("broken") == "pending"  # no worker takes the default queue
    assert "broken" not in site.ids("dead")
    tab.assert_clean()


def test_markup_in_a_job_is_shown_as_text(tab, site):
    page = tab.page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    def no_such_script() -> None:
        found = page.eval_on_selector_all(
            "script", "els => els.filter((e) => e.textContent.includes('alert(1)')).length"
        )
        assert found == 0

    tab.goto("/jobs")
    page.locator("#search").fill("alert")
    wait_for(lambda: tab.rows() == [XSS], timeout=5, message="the search to find the job")
    expect(page.locator("#live table.jobs td.command code")).to_have_text(XSS)
    no_such_script()

    tab.follow(page.get_by_role("link", name=XSS), f"{site.url}jobs/{quote(XSS, safe='')}")
    expect(page.locator("h1 code")).to_have_text(XSS)
    assert XSS in page.title()
    shown = tab.fields()
    assert shown["id"] == shown["command"] == XSS
    tab.refresh_live()  # the partial, as htmx fetches it, escapes it too
    assert tab.fields()["command"] == XSS
    no_such_script()

    tab.goto("/dlq")
    expect(page.locator("#live table.jobs").get_by_role("link", name=XSS)).to_be_visible()
    no_such_script()
    assert dialogs == []
    tab.assert_clean()


def test_overview_draws_its_chart_and_counts_live(tab, site):
    page = tab.page
    tab.goto("/")
    expect(page.locator("#chart .uplot canvas")).to_have_count(1)
    expect(page.locator("#chart-note")).to_contain_text("completed")
    pending = page.locator('.card[data-state="pending"] .count')
    before = int(pending.inner_text().replace(",", ""))
    tab.mark()

    site.cli.enqueue(id="fresh", command="true", queue="idle")  # no worker takes `idle`
    expect(pending).to_have_text(f"{before + 1:,}", timeout=8000)  # the next 2-s poll
    expect(page.locator("#live table a", has_text="idle")).to_be_visible()
    assert not tab.reloaded()
    tab.assert_clean()


def test_the_job_table_follows_its_jobs_states(tab, site):
    page = tab.page
    tab.goto("/jobs?queue=idle2")
    expect(page.locator("p.empty")).to_have_text("No jobs match.")
    tab.mark()
    site.cli.enqueue(id="watched", command="true", queue="idle2")  # no worker takes it
    row = page.locator("table.jobs tbody tr", has_text="watched")
    expect(row).to_be_visible(timeout=10000)  # the next 5-s refresh
    expect(row.locator(".state")).to_have_text("pending")
    site.cli.run("cancel", "watched")
    expect(row.locator(".state")).to_have_text("canceled", timeout=10000)
    assert not tab.reloaded()
    tab.assert_clean()


def test_canceling_a_job_with_its_dependents_from_its_page(tab, site):
    page = tab.page
    site.cli.enqueue(id="gate", command="true", queue="idle3", delay="1h")
    site.cli.enqueue(id="behind", command="true", queue="idle3", depends_on=["gate"])
    site.cli.enqueue(id="last", command="true", queue="idle3", depends_on=["behind"])
    tab.goto("/jobs/gate")
    expect(page.locator(".actions button")).to_have_text(
        ["Cancel", "Cancel with dependents", "Delete"]
    )
    asked = tab.accept_next_dialog()
    page.get_by_role("button", name="Cancel with dependents").click()
    expect(page.locator(".actions .state")).to_have_text("canceled", timeout=5000)
    assert asked == ["Cancel job gate and every job that waits for it?"]
    assert [site.cli.state(i) for i in ("gate", "behind", "last")] == ["canceled"] * 3
    expect(page.locator(".actions button")).to_have_text(["Requeue", "Delete"])
    tab.assert_clean()
