"""`omnimatte pick` in a real browser (headless Chromium driven by selenium): draw a box and points, name and
order the objects, save, and check the sheet rows in source-video pixels; SAM's mask shown before saving.
The server answers only its own page: requests from other pages, with a foreign Host, without the run's
token, or malformed are refused with a JSON answer, the sheets unchanged and the server still serving,
both from plain HTTP clients and from other pages in the browser."""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import re
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from omnimatte.errors import StageError
from omnimatte.io import write_video
from omnimatte.picker import MAX_BODY_BYTES, TOKEN_HEADER, make_server, open_session, sheet_sample
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


def page_token(url: str) -> str:
    """The run's token, as the page holds it."""
    page = LOCAL.open(url, timeout=30).read().decode()
    return re.search(r'<meta name="omnimatte-token" content="([^"]+)">', page).group(1)


class Client:
    """Plain HTTP to the picker, every header as given (http.client sends no Host of its own when one is given)."""

    def __init__(self, url: str) -> None:
        self.port = int(url.rstrip("/").rsplit(":", 1)[1])
        self.token = page_token(url)

    def send(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
             token: bool = True, host: str | None = None) -> tuple[int, bytes, dict]:
        headers = {"Host": host or f"127.0.0.1:{self.port}", **({TOKEN_HEADER: self.token} if token else {}),
                   **(headers or {})}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read(), dict(response.getheaders())
        finally:
            connection.close()

    def post(self, path: str, data, **kwargs) -> tuple[int, dict]:
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        status, answer, _ = self.send("POST", path, body, {"Content-Type": "application/json",
                                                           **kwargs.pop("headers", {})}, **kwargs)
        return status, json.loads(answer)


def start_chromium(*arguments: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1500,900", "--force-device-scale-factor=1", *arguments):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture
def browser():
    driver = start_chromium()
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
                                         {"Content-Type": "application/json", TOKEN_HEADER: page_token(url)})
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
        token = {TOKEN_HEADER: page_token(url)}
        info = json.loads(LOCAL.open(urllib.request.Request(f"{url}api/info", headers=token), timeout=30).read())
        assert (info["sample"], info["count"], info["source_width"]) == ("clip", 6, SOURCE[0])
        assert info["objects_sheet"] == "config/objects.tsv" and not info["sam"]
        assert "weights/sam_vit_b_01ec64.pth" in info["sam_note"]  # the config's checkpoint, absent here
        page = LOCAL.open(url, timeout=30).read().decode()
        assert '<canvas id="frame-canvas"' in page and '<script src="/picker.js">' in page
        assert LOCAL.open(f"{url}picker.js", timeout=30).status == 200
        LOCAL.open(urllib.request.Request(f"{url}api/done", b"", token, method="POST"), timeout=30)
        assert process.wait(timeout=30) == 0  # Done in the page ends the command: a loop goes on to the next clip
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


# --------------------------------------------------------------------------- who may ask, and what a bad request gets


class FailingSam:
    """A segmenter that fails as SAM does when the device runs out of memory."""

    def __call__(self, frame, box, points, labels):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.fixture
def picking(video, sheets):
    """The page's server for the sheet's sample 'clip' (a square with a box, a ground with a mask folder), with a
    SAM that fails; yields a plain HTTP client and a function reading the sheets' bytes."""
    with open(sheets[0], "a") as sheet:
        sheet.write(f"clip\t{video}\t\t\t\n")
    with open(sheets[1], "a") as sheet:
        sheet.write("clip\tsquare\t2\t\t200,300,320,420\t\t\t1\nclip\tground\t1\tdata/ground\n")
    _, objects = sheet_sample(*sheets, "clip")
    session = open_session(video, "clip", *sheets, objects=objects)
    session.segmenter, session.sam_note = FailingSam(), "SAM that fails"
    url, stop = serving(session)
    try:
        yield Client(url), lambda: (sheets[0].read_bytes(), sheets[1].read_bytes())
    finally:
        stop()


GOOD_SAVE = {"objects": [{"name": "ground", "masks": "data/ground"},
                         {"name": "square", "frame": 2, "box": [300, 300, 420, 420]}]}
BIG = b'{"objects": [' + b" " * (10 * 2**20) + b"]}"  # 10 MB of JSON


REFUSALS = [
    # other pages, and pages that reach the picker under another name (DNS rebinding)
    ({"path": "/api/save", "data": GOOD_SAVE, "headers": {"Origin": "http://evil.example"}}, 403,
     "a request from the page 'http://evil.example' is refused"),
    ({"path": "/api/save", "data": GOOD_SAVE, "headers": {"Origin": "null"}}, 403, "a request from the page 'null'"),
    ({"path": "/api/save", "data": GOOD_SAVE, "headers": {"Origin": "http://127.0.0.1:1"}}, 403, "is refused"),
    ({"path": "/api/save", "data": GOOD_SAVE, "host": "rebound.example"}, 403,
     "the Host 'rebound.example' is not this picker's address"),
    ({"method": "GET", "path": "/", "host": "rebound.example:{port}"}, 403, "is not this picker's address"),
    ({"method": "GET", "path": "/api/frames/0.jpg", "host": "127.0.0.1:1"}, 403, "is not this picker's address"),
    # without the run's token, or with another
    ({"path": "/api/save", "data": GOOD_SAVE, "token": False}, 403, "no X-Omnimatte-Token header"),
    ({"path": "/api/save", "data": GOOD_SAVE, "headers": {TOKEN_HEADER: "guess"}}, 403, "a wrong X-Omnimatte-Token"),
    ({"method": "GET", "path": "/api/info", "token": False}, 403, "no X-Omnimatte-Token header"),
    ({"method": "GET", "path": "/api/frames/0.jpg", "token": False}, 403, "no X-Omnimatte-Token header"),
    ({"path": "/api/done", "data": {}, "token": False}, 403, "no X-Omnimatte-Token header"),
    # frames that are not the video's
    ({"path": "/api/mask", "data": {"frame": -1, "box": [1, 1, 9, 9]}}, 400,
     "frame -1 is not one of the video's frames 0..5"),
    ({"path": "/api/mask", "data": {"frame": 6, "box": [1, 1, 9, 9]}}, 400,
     "frame 6 is not one of the video's frames 0..5"),
    ({"path": "/api/mask", "data": {"frame": 1.5, "box": [1, 1, 9, 9]}}, 400, "frame is 1.5; give a whole number"),
    ({"path": "/api/save", "data": {"objects": [{"name": "square", "frame": -1, "box": [1, 1, 9, 9]}]}}, 400,
     "object 'square': frame -1 is not one of the video's frames 0..5"),
    ({"method": "GET", "path": "/api/frames/6.jpg"}, 404, "nothing at /api/frames/6.jpg"),
    # malformed requests
    ({"path": "/api/save", "data": b'{"objects": [{"name": "square",'}, 400, "the request body is not JSON"),
    ({"path": "/api/save", "data": [1, 2]}, 400, "the request body is not a JSON object"),
    ({"path": "/api/save", "data": {"object": []}}, 400, "the request has no objects"),
    ({"path": "/api/save", "data": {"objects": [{"frame": 0, "box": [1, 1, 9, 9]}]}}, 400,
     "object 1 is {\"frame\": 0"),
    ({"path": "/api/save", "data": {"objects": [{"name": "square", "frame": 0}]}}, 400,
     "object 'square': no prompt"),
    ({"path": "/api/save", "data": {"objects": [{"name": "square", "frame": 0, "box": [1, 1, 9]}]}}, 400,
     "object 'square': the box is [1, 1, 9]; give 4 numbers"),
    ({"path": "/api/save", "data": {"objects": [{"name": "square", "frame": 0, "points": [[10, 2000]]}]}}, 400,
     "object 'square': the point [10, 2000] lies outside the source frame 1280x720"),
    ({"path": "/api/save", "data": {"objects": [{"name": "square", "frame": 0, "points": [[10, 20]],
                                                 "labels": [2]}]}}, 400, "labels is [2]"),
    ({"path": "/api/save", "data": {"objects": [{"name": "a square", "frame": 0, "box": [1, 1, 9, 9]}]}}, 400,
     "column 'object'"),  # the sheet's own check of a name
    ({"path": "/api/save", "data": BIG}, 413, f"the picker takes at most {MAX_BODY_BYTES}"),
    ({"method": "PUT", "path": "/api/save", "data": GOOD_SAVE}, 501, "Unsupported method ('PUT')"),
    ({"method": "GET", "path": "/../omnimatte/picker.py"}, 404, "nothing at /../omnimatte/picker.py"),
    ({"method": "GET", "path": "/picker/../../cli.py"}, 404, "nothing at /picker/../../cli.py"),
    # a path the sheets do not hold already
    ({"path": "/api/save", "data": {"objects": [{"name": "ground", "masks": "/home/someone/.ssh"}]}}, 400,
     "the mask folder \"/home/someone/.ssh\" is not one the sheet gives to 'clip'"),
    # SAM failing
    ({"path": "/api/mask", "data": {"frame": 2, "box": [200, 300, 320, 420]}}, 500,
     "SAM failed on frame 2: RuntimeError: CUDA out of memory"),
]


@pytest.mark.parametrize(("request_", "status", "message"), REFUSALS,
                         ids=[f"{status}-{message[:48]}" for _, status, message in REFUSALS])
def test_a_refused_request_gets_a_json_answer_and_leaves_the_sheets_as_they_were(picking, request_, status, message):
    client, sheet_bytes = picking
    before = sheet_bytes()
    data = request_.get("data")
    body = None if data is None else data if isinstance(data, bytes) else json.dumps(data).encode()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    got, answer, response_headers = client.send(request_.get("method", "POST"), request_["path"], body,
                                                {**headers, **request_.get("headers", {})},
                                                token=request_.get("token", True),
                                                host=request_.get("host", "").format(port=client.port) or None)
    assert response_headers["Content-Type"] == "application/json"
    answer = json.loads(answer)
    assert (got, answer["status"]) == (status, status), answer
    assert message in answer["message"], answer["message"]
    assert sheet_bytes() == before
    # ... and the server serves on: the page's own requests are answered
    assert client.send("GET", "/api/info")[0] == 200
    assert client.post("/api/save", GOOD_SAVE)[0] == 200 and sheet_bytes() != before


def test_a_request_with_no_length_or_a_broken_one_is_refused(picking):
    client, sheet_bytes = picking
    before = sheet_bytes()
    connection = http.client.HTTPConnection("127.0.0.1", client.port, timeout=60)
    connection.putrequest("POST", "/api/save")
    connection.putheader(TOKEN_HEADER, client.token)
    connection.putheader("Transfer-Encoding", "chunked")  # no Content-Length
    connection.endheaders()
    connection.send(b"5\r\nhello\r\n0\r\n\r\n")
    response = connection.getresponse()
    assert response.status == 411 and json.loads(response.read())["message"] == "the request has no Content-Length"
    connection.close()
    status, answer = client.post("/api/save", b"{}", headers={"Content-Length": "-4"})
    assert status == 400 and "is not a length" in answer["message"]
    assert sheet_bytes() == before and client.send("GET", "/api/info")[0] == 200


def test_the_page_is_answered_at_the_served_port_by_address_and_as_localhost(picking):
    client, sheet_bytes = picking
    for host in (f"127.0.0.1:{client.port}", f"localhost:{client.port}", f"LOCALHOST:{client.port}"):
        status, page, headers = client.send("GET", "/", host=host, token=False)
        assert status == 200 and client.token.encode() in page
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]  # no other page may frame it
    # The page's own origin, as a browser sends it, under either name.
    for host in (f"127.0.0.1:{client.port}", f"localhost:{client.port}"):
        status, answer = client.post("/api/save", GOOD_SAVE, host=host, headers={"Origin": f"http://{host}"})
        assert status == 200, answer
    # The page of one name may not post to the other: another origin.
    status, answer = client.post("/api/save", GOOD_SAVE, host=f"127.0.0.1:{client.port}",
                                 headers={"Origin": f"http://localhost:{client.port}"})
    assert status == 403
    assert sheet_bytes()[1].decode().splitlines()[-1] == "clip\tsquare\t2\t\t300,300,420,420\t\t\t2"


def test_each_run_has_its_own_token(video, sheets):
    session = open_session(video, "clip", *sheets)
    urls, stops = zip(*(serving(session) for _ in range(2)))
    try:
        first, second = Client(urls[0]), Client(urls[1])
        assert first.token != second.token and len(first.token) >= 32
        second.token = first.token
        assert second.send("GET", "/api/info")[0] == 403
    finally:
        for stop in stops:
            stop()


ATTACK = """<!doctype html>
<html><body><p id="result">running</p>
<iframe name="sink"></iframe>
<form id="form" method="POST" action="PICKERapi/save" enctype="text/plain" target="sink">
  <input name='{"objects": [{"name": "evil", "frame": 0, "box": [1, 1, 9, 9]}], "x": "' value='"}'>
</form>
<script>
const body = JSON.stringify({objects: [{name: "evil", frame: 0, box: [1, 1, 9, 9]}]});
const results = [];
async function attack() {
  // A simple request: no preflight, so the browser sends it (this page cannot read the answer).
  await fetch("PICKERapi/save", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body})
    .then(() => results.push("sent"), () => results.push("not sent"));
  // With a guessed token: a header of its own needs a preflight, which the picker does not grant.
  await fetch("PICKERapi/save", {method: "POST", headers: {"X-Omnimatte-Token": "guess"}, body})
    .then(() => results.push("answered"), () => results.push("blocked"));
  // Reading the page for its token: another origin, so the browser keeps it from this page.
  await fetch("PICKER").then((response) => response.text())
    .then(() => results.push("read the page"), () => results.push("page unreadable"));
  document.getElementById("form").submit();  // and the oldest way: a form posted into a frame
  document.getElementById("result").textContent = results.join(",");
}
attack();
</script></body></html>"""


def serve_page(html: str) -> tuple[str, callable]:
    """Another origin: `html` at / of a server on another port."""
    class Page(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop():
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_address[1]}/", stop


@needs_browser
def test_another_page_in_the_browser_cannot_save_or_read_the_token(picking, browser, package_log):
    from selenium.webdriver.support.ui import WebDriverWait

    client, sheet_bytes = picking
    before = sheet_bytes()
    picker = f"http://127.0.0.1:{client.port}/"
    attacker, stop = serve_page(ATTACK.replace("PICKER", picker))
    try:
        package_log.clear()
        browser.get(attacker)
        WebDriverWait(browser, 30).until(lambda d: d.find_element("id", "result").text != "running")
        assert browser.find_element("id", "result").text == "sent,blocked,page unreadable"
        # The simple request and the form reached the picker, which refused both for their origin.
        origin = attacker.rstrip("/")
        WebDriverWait(browser, 30).until(lambda d: package_log.text.count(f"a request from the page '{origin}'") >= 2)
    finally:
        stop()
    assert sheet_bytes() == before
    assert client.send("GET", "/api/info")[0] == 200


@needs_browser
def test_a_page_that_reaches_the_picker_under_its_own_name_gets_no_token(picking):
    """DNS rebinding: a page of rebound.test whose name then resolves to 127.0.0.1 may read what it loads
    from its own origin; the picker answers it nothing but the refusal."""
    client, sheet_bytes = picking
    before = sheet_bytes()
    driver = start_chromium("--host-resolver-rules=MAP rebound.test 127.0.0.1", "--no-proxy-server")
    try:
        driver.get(f"http://rebound.test:{client.port}/")
        text = driver.find_element("tag name", "body").text
        assert f"the Host 'rebound.test:{client.port}' is not this picker's address" in text, text
        assert client.token not in driver.page_source
        answer = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('/api/save', {method: 'POST', body: '{\"objects\": []}'}).then((r) => r.json()).then(done);")
        assert answer["status"] == 403 and "is not this picker's address" in answer["message"]
    finally:
        driver.quit()
    assert sheet_bytes() == before


@needs_browser
def test_the_page_shows_why_sam_failed_and_saves_after_it(picking, browser):
    client, sheet_bytes = picking
    browser.get(f"http://127.0.0.1:{client.port}/")
    wait_for_status(browser, "ready")
    browser.find_elements("css selector", "#object-list li .prompt")[1].click()  # the square, shown on its frame 1
    drag(browser, (0.15, 0.40), (0.26, 0.60))
    status = wait_for_status(browser, "SAM failed on frame 1: RuntimeError: CUDA out of memory")
    assert "error" in browser.find_element("id", "status").get_attribute("class"), status
    browser.find_element("id", "save").click()
    wait_for_status(browser, "Saved 2 object(s)")
    assert "clip\tsquare\t2\t\t192,288,333,432\t\t\t1\n" in sheet_bytes()[1].decode()  # the box drawn
