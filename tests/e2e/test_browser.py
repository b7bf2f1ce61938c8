"""The web page in a real browser: Debian's chromium, headless, driven by Playwright, against the
service run by uvicorn on a free port. A shopper searches by words, refines a result twice with
words ("modify this") and sees the results change; the screenshot is test-artifacts/browser-search.png.
The try-on panel puts a garment photo, then a catalog item, on a person of the test world (a tiny
inpainting model), and is disabled with a note on a server without a try-on model.

Chromium (apt) and Playwright (pip) are installed by `make test`; without them this test fails (never skips).
"""
import io
import shutil
from pathlib import Path


import pytest
import uvicorn
from PIL import Image

from live_server import running
from unifashion.service.app import create_app

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

INSTALL = "run `make test` (it runs `apt-get install chromium` and `pip install -e '.[test]'`)"


def serving(app):
    """`app` on 127.0.0.1 at a free port, in a background thread: yields its address."""
    for port in running(uvicorn.Config(app, log_level="warning")):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server(service_search, tiny_tryon_model):
    """The service, with a (tiny) try-on model."""
    yield from serving(create_app(service_search, tryon=tiny_tryon_model))


@pytest.fixture(scope="module")
def plain_server(service_search):
    """The service without a try-on model."""
    yield from serving(create_app(service_search))


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


def opened(browser, address: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(address)
    page.wait_for_selector("body[data-ready='true']")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(browser, server):
    yield from opened(browser, server)


@pytest.fixture
def plain_page(browser, plain_server):
    yield from opened(browser, plain_server)


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


# ---- try-on --------------------------------------------------------------------------------------

def tryon_files(small_world) -> dict:
    root = small_world[0] / "vitonhd" / "test"
    stem = sorted(p.stem for p in (root / "image").glob("*.jpg"))[0]
    return {"person": root / "image" / f"{stem}.jpg", "mask": root / "agnostic-mask" / f"{stem}_mask.png",
            "pose": root / "openpose_img" / f"{stem}_rendered.png", "garment": root / "cloth" / f"{stem}.jpg"}


def tried_on(page, previous: str | None = None) -> str:
    """The src of the try-on picture once a new one is shown (the status line is checked to be no error)."""
    page.click("[data-testid=tryon-button]")
    page.wait_for_function("prev => { const img = document.querySelector('[data-testid=tryon-image]');"
                           " return !img.hidden && img.src && img.src !== prev; }", arg=previous or "")
    picture = page.locator("[data-testid=tryon-image]")
    assert picture.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    assert "steps" in page.text_content("[data-testid=tryon-status]")
    return picture.get_attribute("src")


def test_tryon_with_a_garment_photo_then_a_catalog_item(page, small_world, tmp_path):
    assert "try-on" in page.text_content("[data-testid=health]")
    assert not page.is_visible("[data-testid=tryon-note]")
    files = tryon_files(small_world)
    page.click("[data-testid=tryon-button]")  # nothing chosen yet: one line says what is missing
    assert page.text_content("[data-testid=tryon-status]") == "Choose the person photo."
    for name, path in files.items():
        page.set_input_files(f"[data-testid=tryon-{name}]", str(path))
    page.fill("[data-testid=tryon-caption]", "a red striped shirt")
    page.fill("[data-testid=tryon-steps]", "2")
    first = tried_on(page)
    assert first.startswith("data:image/png;base64,")
    page.screenshot(path=str(tmp_path / "browser-tryon.png"), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-tryon.png"), full_page=True)

    # a catalog item as the garment: "Try on" on a search result
    page.fill("[data-testid=query]", "red dress")
    page.click("[data-testid=search-button]")
    wait_for_step(page, 1)
    card = page.locator("[data-testid=result-card]").first
    card.get_by_test_id("tryon-button-card").click()
    assert page.text_content("#tryon-item-title") == card.get_by_test_id("result-title").text_content()
    assert page.eval_on_selector("[data-testid=tryon-garment]", "input => input.files.length") == 0
    page.fill("[data-testid=tryon-seed]", "1")
    tried_on(page, first)

    # a server refusal is one line in the panel: a mask that does not cover the person
    small = io.BytesIO()
    Image.new("L", (8, 8), 255).save(small, "PNG")
    page.set_input_files("[data-testid=tryon-mask]", {"name": "m.png", "mimeType": "image/png",
                                                      "buffer": small.getvalue()})
    page.click("[data-testid=tryon-button]")
    page.wait_for_function("() => document.querySelector('[data-testid=tryon-status]').textContent.includes('cover')")
    assert "\n" not in page.text_content("[data-testid=tryon-status]")


def test_tryon_panel_is_disabled_without_a_tryon_model(plain_page):
    assert plain_page.is_visible("[data-testid=tryon-note]")
    assert "--tryon-model" in plain_page.text_content("[data-testid=tryon-note]")
    assert plain_page.is_disabled("[data-testid=tryon-button]")
    assert "try-on" not in plain_page.text_content("[data-testid=health]")
    plain_page.fill("[data-testid=query]", "dress")
    plain_page.click("[data-testid=search-button]")
    wait_for_step(plain_page, 1)
    assert not plain_page.locator("[data-testid=tryon-button-card]").first.is_visible()
