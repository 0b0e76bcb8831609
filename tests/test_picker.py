"""`omnimatte pick` in a real browser (headless Chromium driven by selenium): draw a box and points, name and
order the objects, save, and check the sheet rows in source-video pixels; SAM's mask shown before saving."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from omnimatte.errors import StageError
from omnimatte.io import write_video
from omnimatte.picker import make_server, open_session, sheet_sample
from omnimatte.samples import load_sheets
from tests.helpers import build_sam_vit_tiny

SOURCE = (1280, 720)  # wider than the page shows it (960 px), so the page must scale prompts back
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)),
                None)
CHROMEDRIVER = shutil.which("chromedriver")
SELENIUM = importlib.util.find_spec("selenium") is not None
MISSING = [what for what, present in (("chromium", CHROMIUM), ("chromium-driver", CHROMEDRIVER), ("selenium", SELENIUM))
           if not present]
# CI sets OMNIMATTE_REQUIRE_BROWSER=1 (.ci/run installs Chromium): there a missing browser fails instead of skipping.
# Straight to 127.0.0.1: urllib.request.urlopen keeps the proxies of its first use in this process, which
# another test may have pointed at a closed port.
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))
needs_browser = pytest.mark.skipif(bool(MISSING) and os.environ.get("OMNIMATTE_REQUIRE_BROWSER") != "1",
                                   reason=f"no headless browser: {', '.join(MISSING)} missing "
                                          "(apt-get install chromium chromium-driver; pip install selenium)")


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """Six frames of a red square moving right over a grey gradient, at 1280x720."""
    path = tmp_path_factory.mktemp("pick") / "clip.mp4"
    ramp = np.linspace(60, 180, SOURCE[0], dtype=np.uint8)
    frames = []
    for t in range(6):
        frame = np.repeat(np.repeat(ramp[None, :, None], SOURCE[1], axis=0), 3, axis=2)
        frame[300:420, 200 + 60 * t:320 + 60 * t] = (220, 30, 30)
        frames.append(frame)
    write_video(path, frames, fps=25)
    return path


@pytest.fixture
def sheets(tmp_path) -> tuple[Path, Path]:
    shutil.copy(Path(__file__).resolve().parents[1] / "config" / "samples.tsv", tmp_path / "samples.tsv")
    shutil.copy(Path(__file__).resolve().parents[1] / "config" / "objects.tsv", tmp_path / "objects.tsv")
    return tmp_path / "samples.tsv", tmp_path / "objects.tsv"


def serving(session):
    """Start the page's server in a thread; returns its URL and a function that stops it."""
    server = make_server(session, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop():
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_address[1]}/", stop


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1500,900", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for_status(driver, text: str, timeout: float = 30) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: text in d.find_element("id", "status").text
                                         or "error" in d.find_element("id", "status").get_attribute("class"))
    status = driver.find_element("id", "status").text
    assert text in status, status
    return status


def canvas_point(driver, fx: float, fy: float) -> tuple[float, float]:
    """Offsets from the canvas's centre (selenium's origin) of the point at fractions fx, fy of its shown size."""
    rect = driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()",
                                 driver.find_element("id", "frame-canvas"))
    return (fx - 0.5) * rect["width"], (fy - 0.5) * rect["height"]


def drag(driver, start: tuple[float, float], end: tuple[float, float]) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = driver.find_element("id", "frame-canvas")
    (x0, y0), (x1, y1) = canvas_point(driver, *start), canvas_point(driver, *end)
    ActionChains(driver).move_to_element_with_offset(canvas, round(x0), round(y0)).click_and_hold() \
        .move_by_offset(round((x1 - x0) / 2), round((y1 - y0) / 2)).move_by_offset(round((x1 - x0) / 2), round((y1 - y0) / 2)) \
        .release().perform()


def click_at(driver, at: tuple[float, float]) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    x, y = canvas_point(driver, *at)
    ActionChains(driver).move_to_element_with_offset(driver.find_element("id", "frame-canvas"), round(x), round(y)) \
        .click().perform()


def name_object(driver, index: int, name: str) -> None:
    """Click into the object's name field, as a person does, and type over its name."""
    from selenium.webdriver.common.keys import Keys

    field = driver.find_elements("css selector", "input.object-name")[index]
    field.click()
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(name)


@needs_browser
def test_draw_a_box_and_points_order_and_save_writes_the_rows(video, sheets, browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    session = open_session(video, "clip", *sheets)
    assert session.display_size == (960, 540)
    url, stop = serving(session)
    try:
        browser.get(url)
        wait_for_status(browser, "ready")
        browser.find_element("id", "frame-slider").send_keys(Keys.RIGHT, Keys.RIGHT, Keys.RIGHT)
        assert browser.find_element("id", "frame-label").text.startswith("3 /")
        name_object(browser, 0, "square")
        drag(browser, (0.25, 0.40), (0.40, 0.60))  # the square on frame 3: x 380..500, y 300..420
        browser.find_element("id", "add-object").click()
        name_object(browser, 1, "ground")
        browser.find_element("id", "tool-positive").click()
        click_at(browser, (0.80, 0.80))
        browser.find_element("id", "tool-negative").click()
        click_at(browser, (0.34, 0.5))
        browser.find_elements("css selector", "#object-list li")[1].find_element("css selector", "button.up").click()
        browser.find_element("id", "save").click()
        status = wait_for_status(browser, "Saved 2 object(s)")
        browser.save_screenshot(str(tmp_path / "picker.png"))
    finally:
        stop()
    assert str(sheets[1]) in status
    samples = load_sheets(*sheets)
    assert samples["clip"]["video"] == str(video)
    objects = samples["clip"]["objects"]
    assert list(objects) == ["ground", "square"]  # moved up: nearest the background
    box = objects["square"]["box"]
    assert np.allclose(box, [0.25 * 1280, 0.40 * 720, 0.40 * 1280, 0.60 * 720], atol=3), box  # source pixels
    assert objects["square"]["frame"] == 3
    assert np.allclose(objects["ground"]["points"], [[0.80 * 1280, 0.80 * 720], [0.34 * 1280, 0.5 * 720]], atol=3)
    assert objects["ground"]["labels"] == [1, 0] and objects["ground"]["frame"] == 3
    shot = cv2.imread(str(tmp_path / "picker.png"))
    assert shot is not None and shot.shape[1] >= 960
    red_box = (np.abs(shot.astype(int) - (70, 70, 255)).max(axis=2) < 40).sum()  # the first object's colour (BGR)
    assert red_box > 200  # the box is drawn on the page


@needs_browser
def test_sam_mask_is_shown_for_the_prompt_before_saving(video, sheets, browser, tmp_path, tiny_sam):
    checkpoint = tmp_path / "sam_vit_tiny.pth"
    torch.manual_seed(0)
    torch.save(build_sam_vit_tiny().state_dict(), checkpoint)
    session = open_session(video, "clip", *sheets, sam_model_type=tiny_sam, sam_checkpoint=checkpoint)
    assert session.segmenter is not None
    url, stop = serving(session)
    try:
        request = urllib.request.Request(f"{url}api/mask", json.dumps({"frame": 0, "box": [200, 300, 320, 420]}).encode(),
                                         {"Content-Type": "application/json"})
        answer = json.loads(LOCAL.open(request, timeout=60).read())
        overlay = cv2.imdecode(np.frombuffer(base64.b64decode(answer["png"]), np.uint8), cv2.IMREAD_UNCHANGED)
        assert overlay.shape == (540, 960, 4) and 0 <= answer["coverage"] <= 1
        browser.get(url)
        wait_for_status(browser, "ready")
        assert "SAM vit_tiny" in browser.find_element("id", "sam-note").text
        name_object(browser, 0, "square")
        drag(browser, (0.15, 0.40), (0.26, 0.60))
        wait_for_status(browser, "SAM mask for square", timeout=60)
        assert browser.find_element("id", "frame-canvas").get_attribute("data-mask-shown") == "square"
    finally:
        stop()


def test_a_sheet_sample_opens_with_its_frame_selection_and_objects(video, sheets):
    with open(sheets[0], "a") as sheet:
        sheet.write(f"clip\t{video}\t1\t\t2\n")
    with open(sheets[1], "a") as sheet:
        sheet.write("clip\tsquare\t2\t\t200,300,320,420\t\t\t1\nclip\tground\t1\tdata/ground\n")
    row, objects = sheet_sample(*sheets, "clip")
    assert (row["start"], row["stride"]) == (1, 2)
    assert [spec["name"] for spec in objects] == ["ground", "square"]
    assert objects[1] == {"name": "square", "order": 2, "frame": 1, "masks": None, "box": [200, 300, 320, 420],
                          "points": None, "labels": None}
    session = open_session(Path(row["video"]), "clip", *sheets, start=1, stride=2, objects=objects)
    assert len(session.frames) == 3  # frames 1, 3, 5: the ones the frames stage extracts, so `frame` means the same
    assert session.info()["objects"] == objects and not session.info()["sam"]
    session.save({"objects": objects})  # as the page sends them back: the mask folder object keeps its folder
    assert load_sheets(*sheets)["clip"]["objects"] == {"ground": {"masks": "data/ground"},
                                                       "square": {"box": [200, 300, 320, 420], "frame": 1}}
    with pytest.raises(StageError, match="no row for 'other'"):
        sheet_sample(*sheets, "other")


def test_pick_command_serves_the_page_for_a_new_video_with_the_configs_sheets(video, workdir):
    process = subprocess.Popen([sys.executable, "-m", "omnimatte", "pick", str(video), "--port", "0"], cwd=workdir,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        assert "open http://127.0.0.1:" in line, line
        url = line.split("open ")[1].strip()
        info = json.loads(LOCAL.open(f"{url}api/info", timeout=30).read())
        assert (info["sample"], info["count"], info["source_width"]) == ("clip", 6, SOURCE[0])
        assert info["objects_sheet"] == "config/objects.tsv" and not info["sam"]
        assert "weights/sam_vit_b_01ec64.pth" in info["sam_note"]  # the config's checkpoint, absent here
        page = LOCAL.open(url, timeout=30).read().decode()
        assert '<canvas id="frame-canvas"' in page and '<script src="/picker.js">' in page
        assert LOCAL.open(f"{url}picker.js", timeout=30).status == 200
        LOCAL.open(urllib.request.Request(f"{url}api/done", b"", method="POST"), timeout=30)
        assert process.wait(timeout=30) == 0  # Done in the page ends the command: a loop goes on to the next clip
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
