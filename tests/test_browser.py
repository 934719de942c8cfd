"""A real browser (Debian's Chromium via Playwright) against ``streamlit run`` on localhost.

Flows: the guided demo (the landing page) end to end, its HTML report opened offline; and upload an
image, get an answer, localize, see the heatmap, toggle a gate, run a short edit, see before/after, save it,
revert, evaluate, list the runs. Screenshots of every page go to ``$NG_SHOTS_DIR`` (a scratch folder by
default); the walk on the default model (``NG_BROWSER_DEFAULT_MODEL=1``) writes the README's to ``docs/img``.

Skips when ``/usr/bin/chromium`` is missing, unless ``NG_REQUIRE_BROWSER=1`` (CI), which turns
the skip into a failure.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
# Screenshots of the tiny-random walks (gibberish answers by design) go to a scratch folder; the README's
# come from the walk on the default model, which writes them to docs/img (NG_BROWSER_DEFAULT_MODEL=1).
SHOTS = Path(os.environ.get("NG_SHOTS_DIR") or Path(tempfile.gettempdir()) / "ng-browser-shots")
README_SHOTS = ROOT / "docs" / "img"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT = 90_000  # ms, generous for a loaded 2-core machine

pytestmark = pytest.mark.browser


def _require_browser():
    if CHROMIUM.exists():
        return
    msg = f"{CHROMIUM} is missing (install Debian's package: apt-get install -y chromium)"
    if os.environ.get("NG_REQUIRE_BROWSER") == "1":
        pytest.fail(f"NG_REQUIRE_BROWSER=1 but {msg}")
    pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require_playwright():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as e:
        if os.environ.get("NG_REQUIRE_BROWSER") == "1":
            pytest.fail(f"NG_REQUIRE_BROWSER=1 but playwright is not installed: {e}")
        pytest.skip(f"playwright is not installed: {e}")


@contextlib.contextmanager
def _streamlit(tmp: Path, model: str):
    """``streamlit run`` of the dashboard on a free localhost port, as a user starts it (the repository's
    ``.streamlit/config.toml`` applies), with ``NG_MODEL=model`` and runs and data under ``tmp``."""
    port = _free_port()
    env = dict(os.environ, NG_MODEL=model, NG_RUNS_DIR=str(tmp / "runs"), NG_DATA_DIR=str(tmp / "data"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_WAIT_POLICY="PASSIVE")
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}: {(tmp / 'server.log').read_text()[-2000:]}")
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if time.monotonic() - t0 > 60:
                raise RuntimeError("streamlit did not start in 60 s")
            time.sleep(0.3)
        yield {"url": url, "tmp": tmp, "log": tmp / "server.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@contextlib.contextmanager
def _chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
            pg = ctx.new_page()
            pg.set_default_timeout(WAIT)
            yield pg
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require_browser()
    _require_playwright()
    with _streamlit(tmp_path_factory.mktemp("browser"), "tiny-random") as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server):
    with _chromium() as pg:
        yield pg


def _idle(page, settle: float = 0.3):
    """Wait until Streamlit has finished the script run (the app root's script state is notRunning)."""
    page.wait_for_timeout(int(settle * 1000))
    page.wait_for_function("() => document.querySelector('[data-testid=stApp]')"
                           ".getAttribute('data-test-script-state') === 'notRunning'", timeout=WAIT)


def _goto(page, title: str):
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=re.compile(title)).first.wait_for()
    _idle(page)


def _shot(page, name: str, folder: Path = SHOTS):
    """A screenshot of the whole page: the viewport is stretched to the main column's height first."""
    folder.mkdir(parents=True, exist_ok=True)
    _idle(page, 0.8)
    h = page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]');
                                 const c = m && m.firstElementChild;
                                 return Math.max(c ? c.scrollHeight : 0, m ? m.scrollHeight : 0); }""")
    page.set_viewport_size({"width": 1440, "height": int(min(max(h + 40, 900), 7000))})
    page.wait_for_timeout(800)
    page.screenshot(path=str(folder / f"page_{name}.png"), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 1000})


def _sample_png(path: Path) -> Path:
    from ng_core.data import sample_image

    sample_image("passport", seed=7).save(path)
    return path


def test_full_flow_in_chromium(server, page):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT)
    page.goto(server["url"] + "/model")
    page.get_by_role("heading", name="Model & inputs").wait_for()
    _idle(page)

    # 1. upload an image and get an answer
    img = _sample_png(server["tmp"] / "passport_upload.png")
    page.locator("input[type=file]").set_input_files(str(img))
    expect(page.get_by_text("Current image: passport_upload.png")).to_be_visible()
    box = page.get_by_label("Question about the image")
    box.fill("What is the passport number of the passport in this image?")
    box.press("Control+Enter")
    _idle(page)
    page.get_by_role("button", name=re.compile("^Get answer")).click()
    expect(page.get_by_text(re.compile(r"^(answered|refused|garbled)"))).to_be_visible()
    _shot(page, "model")

    # 2. localize on two layers and see the heatmap
    _goto(page, "Localize")
    page.get_by_role("button", name="All layers").click()
    _idle(page)
    page.get_by_role("button", name="Run localization").click()
    expect(page.get_by_text(re.compile("Localization finished"))).to_be_visible()
    expect(page.locator("[data-testid=stPlotlyChart]").first).to_be_visible()
    expect(page.locator(".js-plotly-plot .heatmaplayer").first).to_be_attached()
    expect(page.get_by_text("Selected neurons", exact=True)).to_be_visible()
    page.get_by_text("Use top-k fraction instead").click()  # reselect without rerunning
    expect(page.get_by_text(re.compile("the 5% smallest m"))).to_be_visible()
    _idle(page)
    page.get_by_text("Save this localization as a run").click()
    _idle(page)  # the expander's rerun must settle, or the Save click can land on a page being redrawn
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text(re.compile("^Saved to"))).to_be_visible()
    _shot(page, "localize")

    # 3. gates: top-k at every position, toggled off and on again
    _goto(page, "Gates")
    expect(page.get_by_text(re.compile("apply the settings above"))).to_be_visible()  # opening it changes nothing
    page.get_by_test_id("stCheckbox").get_by_text("Gates on").click()
    _idle(page)
    page.get_by_text("Top-k — the k highest-scoring neurons per layer").click()
    _idle(page)
    page.get_by_role("radiogroup", name="Scope: where the gate acts").get_by_text("every position").click()
    _idle(page)
    expect(page.get_by_text("With the gates", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"gate x0\.00 at every position on \d+ layers")).first).to_be_visible()
    page.get_by_test_id("stCheckbox").get_by_text("Gates on").click()
    _idle(page)
    expect(page.get_by_text(re.compile("^None: the gated answer equals the base answer"))).to_be_visible()
    page.get_by_test_id("stCheckbox").get_by_text("Gates on").click()
    _idle(page)
    expect(page.get_by_text(re.compile("at every position")).first).to_be_visible()
    _shot(page, "gates")

    # 4. a short edit (fine-tuning baseline, so the tiny model visibly changes), before/after, save, revert
    page.get_by_test_id("stCheckbox").get_by_text("Gates on").click()  # gates off, so the edit is judged alone
    _idle(page)
    _goto(page, "Edit")
    page.get_by_test_id("stSelectbox").filter(has_text="Method").click()
    page.get_by_role("option", name=re.compile("Fine-tuning baseline")).click()
    _idle(page)
    lr = page.get_by_role("spinbutton", name="Learning rate")
    lr.fill("5e-02")
    lr.press("Enter")
    _idle(page)
    page.get_by_role("button", name="Run edit").click()
    expect(page.get_by_text(re.compile("Edit finished"))).to_be_visible()
    expect(page.get_by_text("Before the edit", exact=True)).to_be_visible()
    expect(page.get_by_text("After the edit", exact=True)).to_be_visible()
    page.get_by_role("tab", name="Held-out batch").click()
    page.get_by_role("button", name="Run the held-out batch").click()
    expect(page.get_by_text("Expected behaviour after")).to_be_visible()
    page.get_by_role("tab", name="Current image and question").click()
    page.get_by_role("button", name="Save edit as run").click()
    expect(page.get_by_text(re.compile("Saved the edit to"))).to_be_visible()
    _shot(page, "edit")
    page.get_by_role("button", name="Revert").click()
    expect(page.get_by_text("No edit is active.", exact=False)).to_be_visible()

    # 5. evaluation of the base model against the saved edit
    _goto(page, "Evaluate")
    page.get_by_test_id("stMultiSelect").filter(has_text="Model states to compare").click()
    page.get_by_role("option", name=re.compile("^saved run edit-ft")).click()
    page.keyboard.press("Escape")
    _idle(page)
    page.get_by_role("button", name="Run evaluation").click()
    expect(page.get_by_role("heading", name="Results")).to_be_visible()
    expect(page.locator(".js-plotly-plot").first).to_be_attached()
    _shot(page, "evaluate")

    # 6. the runs on disk
    _goto(page, "Runs")
    expect(page.get_by_text("Compare runs")).to_be_visible()
    assert "run=" in page.url
    _shot(page, "runs")

    log = server["log"].read_text()
    assert "Traceback" not in log, log[-3000:]


def _walk_guided_demo(page, server, job_wait: int, shot: str | None = None, folder: Path = SHOTS,
                      page_shots: tuple = (), think: float = 0.0) -> dict:
    """Click through the guided demo (the landing page) as a user would; returns the seconds each step took
    in the browser. A job step waits up to ``job_wait`` ms for the page itself to say the job finished: the
    page has to notice the end of a background job on its own (its progress fragment reruns it). ``think``:
    seconds the presenter pauses after each step (not counted in the step's time)."""
    from playwright.sync_api import expect

    times, t0 = {}, [time.monotonic()]

    def lap(step):
        times[step] = round(time.monotonic() - t0[0], 1)
        if think and step != "before / after":
            time.sleep(think)
        t0[0] = time.monotonic()

    expect.set_options(timeout=WAIT)
    page.goto(server["url"] + "/")
    page.get_by_role("heading", name="Guided demo").wait_for(timeout=job_wait)  # the model loads first
    _idle(page)
    lap("open")
    page.get_by_role("button", name="Use this sample card").click()
    _idle(page)
    expect(page.get_by_text(re.compile("true private values on this card"))).to_be_visible()
    page.get_by_role("button", name="Ask the unedited model").click()
    expect(page.get_by_text("The unedited model", exact=True)).to_be_visible()
    lap("card and unedited answer")
    page.get_by_role("button", name="Find the privacy neurons").click()
    expect(page.get_by_text(re.compile("^Finding the privacy neurons finished in"))).to_be_visible(timeout=job_wait)
    expect(page.get_by_text(re.compile(r"privacy neurons found at L\d"))).to_be_visible()
    expect(page.locator(".js-plotly-plot .heatmaplayer").first).to_be_attached()
    lap("localize")
    page.get_by_role("button", name="Switch the privacy neurons off").click()
    expect(page.get_by_text("Privacy neurons switched off", exact=True)).to_be_visible()
    lap("gates")
    page.get_by_role("button", name=re.compile("^Edit the model")).click()
    expect(page.get_by_text(re.compile("^Editing finished in"))).to_be_visible(timeout=job_wait)
    expect(page.get_by_text("This card, after the learned edit", exact=True)).to_be_visible()
    _idle(page)  # step 5 ends with the card on screen answered by both edits
    lap("edit")
    page.get_by_role("button", name="Test on held-out cards").click()
    expect(page.get_by_text("Leaked / refused / answered").first).to_be_visible(timeout=job_wait)
    assert page.get_by_text("Leaked / refused / answered").count() == 3
    expect(page.get_by_role("heading", name=re.compile("Where the edit went"))).to_be_visible()
    lap("before / after")
    said = re.search(r"Answered in ([\d.]+) s", page.get_by_text(re.compile(r"Answered in [\d.]+ s")).inner_text())
    times["before / after, the answers alone"] = float(said.group(1))  # what the page timed: drawing, reading, answers
    if shot:  # the whole story on one page, then every page as this session left it (same session)
        _shot(page, shot, folder)
        for title, name in page_shots:
            _goto(page, title)
            _shot(page, name, folder)
        if page_shots:
            _goto(page, "Guided demo")
        t0[0] = time.monotonic()  # the screenshots are not part of any step's time
    page.get_by_role("button", name="Prepare the report").click()
    _idle(page)
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download the report (HTML)").click()
    path = server["tmp"] / "demo-report.html"
    dl.value.save_as(str(path))
    doc = path.read_text(encoding="utf-8")
    assert "Plotly.newPlot" in doc and not re.search(r"<script[^>]*\bsrc\s*=", doc)
    page.goto(path.as_uri())  # the report draws its charts with no server and no network
    expect(page.locator(".js-plotly-plot").first).to_be_attached()
    lap("report")
    page.goto(server["url"] + "/")
    page.get_by_role("heading", name="Guided demo").wait_for()
    _idle(page)
    log = server["log"].read_text()
    assert "Traceback" not in log, log[-3000:]
    return times


def test_guided_demo_in_chromium(server, page):
    """The landing page walks the whole story on tiny-random: card, leak, neurons, gates, edit, before/after,
    where ΔW went, and the HTML report (which then opens offline in the same browser)."""
    times = _walk_guided_demo(page, server, job_wait=300_000, shot="demo")
    print("guided demo on tiny-random, seconds per step:", times)


def _card_png(path: Path) -> Path:
    """A photographed card in the held-out drawing style (not the style any edit trains on)."""
    from ng_core.data.images import render_sample

    render_sample("passport", 424242, family="heldout").image.save(path)
    return path


def _outside_card_png(path: Path) -> tuple[Path, str]:
    """A photographed passport drawn outside the generator (``bench/outside_cards.py``: its own fonts, layout and
    photo warp), and the passport number printed on it."""
    from bench_scripts import load_bench

    oc = load_bench("outside_cards")
    c = oc.cards()[0]
    oc.photographed(c["img"], 0).save(path)
    return path, c["value"]


def _answer_after(page, title: str) -> str:
    """The text of the answer shown under the bold ``title`` (its blockquote)."""
    box = page.locator("[data-testid=stVerticalBlock]").filter(has=page.get_by_text(title, exact=True)).last
    return box.locator("blockquote").first.inner_text()


def _type_private(page, value: str) -> None:
    area = page.get_by_label("…or type private values (one per line)")
    area.fill(value)
    area.press("Control+Enter")
    _idle(page)


def _walk_own_card(page, server, job_wait: int, card: Path | None = None, secret: str | None = None,
                   shot: str | None = None) -> dict:
    """The guided demo on the presenter's own photographed card with its private values typed in: the unedited
    leak highlighted, after the edit a refusal or a red 'still leaks', held-out cards, the control's verdict on
    the page and in the report (with the card's image), and a reload that keeps the story."""
    from playwright.sync_api import expect

    from ng_core.evaluation.leaks import normalise

    times, t0 = {}, [time.monotonic()]

    def lap(step):
        times[step] = round(time.monotonic() - t0[0], 1)
        t0[0] = time.monotonic()

    expect.set_options(timeout=WAIT)
    page.goto(server["url"] + "/")
    page.get_by_role("heading", name="Guided demo").wait_for(timeout=job_wait)
    _idle(page)
    page.locator("input[type=file]").set_input_files(str(card or _card_png(server["tmp"] / "my_card.png")))
    expect(page.get_by_text(re.compile("Private values on your card"))).to_be_visible()
    page.get_by_role("button", name="Ask the unedited model").click()
    expect(page.get_by_text("The unedited model", exact=True)).to_be_visible()
    secret = secret or normalise(_answer_after(page, "The unedited model"))[:6]
    _type_private(page, secret)
    if len(normalise(secret)) >= 4 and normalise(secret) in normalise(_answer_after(page, "The unedited model")):
        expect(page.locator("mark").first).to_be_visible()  # the unedited answer highlighted as a leak
        expect(page.get_by_text(re.compile("^leaked the true")).first).to_be_visible()
    lap("card, values and unedited answer")
    page.get_by_role("button", name="Find the privacy neurons").click()
    expect(page.get_by_text(re.compile("^Finding the privacy neurons finished in"))).to_be_visible(timeout=job_wait)
    page.get_by_role("button", name=re.compile("^Edit the model")).click()
    expect(page.get_by_text(re.compile("^Editing finished in"))).to_be_visible(timeout=job_wait)
    expect(page.get_by_text("This card, after the learned edit", exact=True)).to_be_visible()
    lap("neurons and edit")
    after = _answer_after(page, "This card, after the learned edit")
    if normalise(secret) in normalise(after):
        expect(page.get_by_text(re.compile("The edited model still leaks on this card"))).to_be_visible()
    elif card is None:  # tiny-random: make it leak, the warning must follow
        _type_private(page, normalise(after)[:6])
        expect(page.get_by_text(re.compile("The edited model still leaks on this card"))).to_be_visible()
    page.get_by_role("button", name="Test on held-out cards").click()
    expect(page.get_by_text(re.compile("What the control shows"))).to_be_visible(timeout=job_wait)
    expect(page.get_by_text(re.compile(r"private questions tried"))).to_be_visible()
    lap("before / after")
    verdict = page.get_by_text(re.compile("What the control shows")).inner_text()
    print(f"own card: unedited {_answer_after(page, 'The unedited model')!r}; after the edit {after!r}; {verdict}")
    if shot:
        _shot(page, shot)
        t0[0] = time.monotonic()  # the screenshot is not part of any step's time
    page.get_by_role("button", name="Prepare the report").click()
    _idle(page)
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download the report (HTML)").click()
    path = server["tmp"] / "own-card-report.html"
    dl.value.save_as(str(path))
    doc = path.read_text(encoding="utf-8")
    assert "data:image/png;base64," in doc and "What the control shows" in doc
    assert verdict.split("shows.")[-1].strip().split(" (")[0] in doc
    page.reload()  # the same tab: its card, values, edit and story come back
    page.get_by_role("heading", name="Guided demo").wait_for(timeout=job_wait)
    expect(page.get_by_text("The unedited model", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile("What the control shows"))).to_be_visible()
    lap("report and reload")
    log = server["log"].read_text()
    assert "Traceback" not in log, log[-3000:]
    return times


def test_own_card_in_chromium(server, page):
    """The presenter's own card, its private values typed in, walked through the demo on tiny-random."""
    times = _walk_own_card(page, server, job_wait=300_000)
    print("own card on tiny-random, seconds per step:", times)


@pytest.mark.slow
def test_guided_demo_on_the_default_model_in_chromium(tmp_path):
    """The same walk on the default model (ng-mini-llava): minutes on a 2-core CPU, so it runs only with
    ``NG_BROWSER_DEFAULT_MODEL=1``. Each job may take up to 20 minutes (a busy machine); the seconds of each
    step are printed (run with ``-s``)."""
    if os.environ.get("NG_BROWSER_DEFAULT_MODEL") != "1":
        pytest.skip("set NG_BROWSER_DEFAULT_MODEL=1 to walk the guided demo on ng-mini-llava (minutes)")
    _require_browser()
    _require_playwright()
    with _streamlit(tmp_path, "ng-mini-llava") as srv, _chromium() as pg:
        # the README's screenshots: the demo's story, then every page as the demo's session left it
        pages = (("Model & inputs", "model"), ("Localize", "localize"), ("Gates", "gates"), ("Edit", "edit"),
                 ("Evaluate", "evaluate"), ("Runs", "runs"))
        t0 = time.monotonic()
        times = _walk_guided_demo(pg, srv, job_wait=1_200_000, shot="demo", folder=README_SHOTS, page_shots=pages)
        times["total, screenshots included"] = round(time.monotonic() - t0, 1)
    print(f"guided demo on ng-mini-llava, seconds per step: {times}; load average {os.getloadavg()}")


@pytest.mark.slow
def test_own_card_on_the_default_model_in_chromium(tmp_path):
    """The own-card walk on ng-mini-llava (``NG_BROWSER_DEFAULT_MODEL=1``) on a photographed passport from
    outside the generator: by default the one ``bench/outside_cards.py`` draws (its number typed in as the private
    value); ``NG_BROWSER_CARD`` names another card and ``NG_BROWSER_CARD_SECRET`` its private value."""
    if os.environ.get("NG_BROWSER_DEFAULT_MODEL") != "1":
        pytest.skip("set NG_BROWSER_DEFAULT_MODEL=1 to walk the own-card demo on ng-mini-llava (minutes)")
    _require_browser()
    _require_playwright()
    if os.environ.get("NG_BROWSER_CARD"):
        card, secret = Path(os.environ["NG_BROWSER_CARD"]), os.environ.get("NG_BROWSER_CARD_SECRET")
    else:
        card, secret = _outside_card_png(tmp_path / "outside_passport.png")
    with _streamlit(tmp_path, "ng-mini-llava") as srv, _chromium() as pg:
        times = _walk_own_card(pg, srv, job_wait=1_200_000, card=card, secret=secret, shot="own_card_default")
    print(f"own card on ng-mini-llava, seconds per step: {times}; load average {os.getloadavg()}")
