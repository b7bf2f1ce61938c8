"""The web page in a real browser: Debian's chromium, headless, driven by Playwright, against the
service run by uvicorn on a free port. A shopper searches by words, refines a result twice with
words ("modify this") and sees the results change; the screenshot is test-artifacts/browser-search.png.

Chromium (apt) and Playwright (pip) are installed by `make test`; without them this test fails (never skips).
"""
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from unifashion.service.app import create_app

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
INSTALL = "run `make test` (it runs `apt-get install chromium` and `pip install -e '.[test]'`)"


@pytest.fixture(scope="module")
def server(service_search):
    """The service on 127.0.0.1 at a free port, in a background thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(service_search), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail(f"chromium is not installed: {INSTALL}", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the playwright Python package is not installed: {INSTALL}", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server)
    page.wait_for_selector("body[data-ready='true']")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def card_ids(page) -> list[str]:
    return page.eval_on_selector_all("[data-testid=result-card]", "cards => cards.map(c => c.dataset.itemId)")


def wait_for_step(page, step: int) -> list[str]:
    page.wait_for_selector(f"#results[data-step='{step}'][aria-busy='false']")
    assert not page.is_visible("[data-testid=error]"), page.text_content("[data-testid=error]")
    return card_ids(page)


def refine(page, text: str) -> None:
    first = page.locator("[data-testid=result-card]").first
    first.get_by_test_id("modify-button").click()
    first.get_by_test_id("modify-input").fill(text)
    first.get_by_test_id("modify-submit").click()


def test_search_then_refine_twice_with_words(page, service_search):
    assert "24 items" in page.text_content("[data-testid=health]")
    options = page.eval_on_selector_all("#category option", "os => os.map(o => o.value).filter(Boolean)")
    assert options == service_search.index.categories()

    page.fill("[data-testid=query]", "red floral dress")
    page.click("[data-testid=search-button]")
    found = wait_for_step(page, 1)
    assert len(found) == 24 and len(set(found)) == 24
    assert page.locator("[data-testid=result-card] img").first.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0

    refine(page, "in black with long sleeves")
    once = wait_for_step(page, 2)
    assert once and once != found
    refine(page, "shorter")
    twice = wait_for_step(page, 3)
    assert twice and twice != once

    crumbs = page.locator("[data-testid=crumb]")
    assert crumbs.count() == 3
    assert "red floral dress" in crumbs.nth(0).text_content()
    assert "in black with long sleeves" in crumbs.nth(1).text_content()
    assert "shorter" in crumbs.nth(2).text_content() and crumbs.nth(2).get_attribute("aria-current") == "step"
    page.wait_for_load_state("networkidle")
    page.wait_for_function("window.scrollY === 0")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-search.png"))

    crumbs.nth(0).click()  # back to the first step
    assert wait_for_step(page, 1) == found


def test_caption_drop_and_generate(page, service_search):
    page.fill("[data-testid=query]", "sneakers")
    page.click("[data-testid=search-button]")
    wait_for_step(page, 1)
    first = page.locator("[data-testid=result-card]").first
    first.get_by_test_id("caption-button").click()
    caption = first.get_by_test_id("caption-text")
    page.wait_for_function("el => el.textContent && !el.textContent.startsWith('Writing')", arg=caption.element_handle())
    assert caption.text_content().strip()

    # a photo dropped on the page searches by it: the item's own picture comes first
    item_id = card_ids(page)[3]
    page.fill("[data-testid=query]", "")
    page.evaluate("""async (url) => {
        const blob = await (await fetch(url)).blob();
        const data = new DataTransfer();
        data.items.add(new File([blob], "dropped.png", {type: "image/png"}));
        document.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
    }""", f"/items/{item_id}/image")
    assert wait_for_step(page, 1)[0] == item_id
    assert page.is_visible("[data-testid=upload-chip]")
    assert page.locator("[data-testid=crumb]").count() == 1

    page.fill("[data-testid=generate-text]", "a navy striped shirt")
    page.fill("[data-testid=generate-steps]", "2")
    page.click("[data-testid=generate-button]")
    picture = page.wait_for_selector("[data-testid=generated-image]:not([hidden])")
    assert picture.get_attribute("src").startswith("data:image/png;base64,")
    size = service_search.model.generator.config.image_size
    assert picture.evaluate("img => img.decode().then(() => img.naturalWidth)") == size
