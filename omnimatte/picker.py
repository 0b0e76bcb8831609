"""`omnimatte pick`: draw each object's prompt on the video's frames in a local web page and save it as sheet rows.

A small HTTP server on 127.0.0.1 serves a plain HTML and JS page (omnimatte/picker/,
shipped with the package: no internet, no build step). The page shows the frames the
frames stage would extract (the sample's start/end/stride) with a slider; the user
draws a box or clicks positive and negative points for each object, names and orders
the objects, and saves, which writes the sample's rows into the sample sheets with
coordinates in the source video's pixels. Where the SAM checkpoint of the config is
present the page shows SAM's mask for the prompt before saving, from the same loading
code the masks stage uses. The server answers only its own page (make_server): the Host, the
Origin of a POST and the run's secret token in the page are checked on every request.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import re
import secrets
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from omnimatte.errors import StageError
from omnimatte.frames import decode_frames
from omnimatte.io import probe_video
from omnimatte.logs import get_logger
from omnimatte.masks import PALETTE, SamSegmenter, load_sam
from omnimatte.samples import SCHEMA_DIR, check_row, load_schema, parse_cell, read_rows, save_sample

STAGE = "pick"
log = get_logger(STAGE)

#: Frames are shown at most this wide; prompts are scaled back to the source's pixels.
DISPLAY_WIDTH = 960
PAGE_FILES = {"/": ("index.html", "text/html"), "/picker.js": ("picker.js", "text/javascript"),
              "/picker.css": ("picker.css", "text/css")}
#: The page's copy of the run's secret token (index.html holds this placeholder) and the header its API calls carry.
TOKEN_PLACEHOLDER = b"__OMNIMATTE_TOKEN__"
TOKEN_HEADER = "X-Omnimatte-Token"
#: The largest request body answered: a request is one sample's prompts, a few kilobytes.
MAX_BODY_BYTES = 1 << 20
#: A refused larger body is still read away up to this size, so the client gets its answer; beyond, the connection ends.
DISCARD_BYTES = 64 << 20
REQUEST_TIMEOUT_S = 60


class RequestError(Exception):
    """A request the page's server refuses or could not answer: its HTTP status and a message for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _whole_number(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{what} is {json.dumps(value)}; give a whole number")
    return value


def _coordinates(value: Any, count: int | None, what: str, size: tuple[int, int]) -> list[float]:
    """`count` numbers (any count with None), in pairs x, y inside a frame of `size` (source pixels)."""
    if (not isinstance(value, list) or (count is not None and len(value) != count)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise RequestError(HTTPStatus.BAD_REQUEST,
                           f"{what} is {json.dumps(value)[:80]}; give {count or 2} numbers, x and y in source pixels")
    for x, y in zip(value[0::2], value[1::2]):
        if not (0 <= x <= size[0] and 0 <= y <= size[1]):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{what} {json.dumps(value)[:80]} lies outside the source frame "
                                                       f"{size[0]}x{size[1]}")
    return list(value)


@dataclass
class Session:
    """What the page edits: one sample's video, its frames as shown, its sheets and, when there are weights, SAM."""

    sample: str
    video: Path
    samples_sheet: Path
    objects_sheet: Path
    source_size: tuple[int, int]
    frames: list[bytes]  # JPEG, display size
    display_size: tuple[int, int]
    objects: list[dict[str, Any]] = field(default_factory=list)  # the sample's rows already in the sheet
    segmenter: SamSegmenter | None = None
    sam_note: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def info(self) -> dict:
        return {"sample": self.sample, "video": str(self.video), "count": len(self.frames),
                "source_width": self.source_size[0], "source_height": self.source_size[1],
                "display_width": self.display_size[0], "display_height": self.display_size[1],
                "objects": self.objects, "sam": self.segmenter is not None, "sam_note": self.sam_note,
                "samples_sheet": str(self.samples_sheet), "objects_sheet": str(self.objects_sheet)}

    def frame_index(self, value: Any, what: str = "frame") -> int:
        """A frame of the page's slider: a whole number in 0..count-1 (never counted from the end)."""
        index = _whole_number(value, what)
        if not 0 <= index < len(self.frames):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{what} {index} is not one of the video's frames "
                                                       f"0..{len(self.frames) - 1}")
        return index

    def prompt(self, request: dict, what: str) -> dict:
        """A box and/or points with their labels, checked: numbers inside the source frame, labels 0 or 1."""
        box = request.get("box")
        points = request.get("points") or None  # [] as none: a box alone
        labels = request.get("labels") or None
        prompt: dict[str, Any] = {"box": None, "points": None, "labels": None}
        if box is not None:
            prompt["box"] = _coordinates(box, 4, f"{what}: the box", self.source_size)
            x0, y0, x1, y1 = prompt["box"]
            if not (x0 < x1 and y0 < y1):
                raise RequestError(HTTPStatus.BAD_REQUEST, f"{what}: the box {json.dumps(box)} has no area; give "
                                                           "x0, y0, x1, y1 with x0 < x1 and y0 < y1")
        if points is not None:
            if not isinstance(points, list):
                raise RequestError(HTTPStatus.BAD_REQUEST, f"{what}: points is {json.dumps(points)[:80]}; give a list "
                                                           "of [x, y] pairs")
            prompt["points"] = [_coordinates(point, 2, f"{what}: the point", self.source_size) for point in points]
            labels = [1] * len(points) if labels is None else labels
            if (not isinstance(labels, list) or len(labels) != len(points)
                    or not all(label in (0, 1) and not isinstance(label, bool) for label in labels)):
                raise RequestError(HTTPStatus.BAD_REQUEST, f"{what}: labels is {json.dumps(labels)[:80]}; give one "
                                                           "0 (not the object) or 1 (the object) per point")
            prompt["labels"] = labels
        elif labels is not None:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{what}: labels without points")
        if prompt["box"] is None and prompt["points"] is None:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{what}: no prompt; draw a box or click points")
        return prompt

    def mask(self, request: dict) -> dict:
        """SAM's mask for a prompt (source pixels) on one frame, as a coloured PNG overlay at display size."""
        if self.segmenter is None:
            raise RequestError(HTTPStatus.CONFLICT, f"no SAM: {self.sam_note}")
        frame_index = self.frame_index(request.get("frame"))
        prompt = self.prompt(request, f"frame {frame_index}")
        colour = PALETTE[_whole_number(request.get("colour", 0), "colour") % len(PALETTE)]
        frame = cv2.cvtColor(cv2.imdecode(np.frombuffer(self.frames[frame_index], np.uint8), cv2.IMREAD_COLOR),
                             cv2.COLOR_BGR2RGB)
        scale = np.array([self.display_size[0] / self.source_size[0], self.display_size[1] / self.source_size[1]],
                         np.float32)
        box = None if prompt["box"] is None else (np.asarray(prompt["box"], np.float32).reshape(2, 2) * scale).reshape(4)
        points = None if prompt["points"] is None else np.asarray(prompt["points"], np.float32) * scale
        labels = None if prompt["labels"] is None else np.asarray(prompt["labels"], np.int32)
        try:
            with self.lock:
                mask = np.asarray(self.segmenter(frame, box, points, labels))
        except Exception as err:  # noqa: BLE001 - whatever SAM raises, the page gets an answer
            log.exception("%s: SAM failed on frame %d", self.sample, frame_index)
            raise RequestError(HTTPStatus.INTERNAL_SERVER_ERROR,
                               f"SAM failed on frame {frame_index}: {type(err).__name__}: {err}") from err
        mask = mask[0] if mask.ndim == 3 else mask
        overlay = np.zeros(mask.shape + (4,), np.uint8)
        overlay[mask] = (*colour[::-1], 140)  # BGRA for cv2
        png = cv2.imencode(".png", overlay)[1].tobytes()
        return {"png": base64.b64encode(png).decode(), "coverage": float(mask.mean())}

    def save(self, request: dict) -> dict:
        """Write the page's objects (back to front) as the sample's rows. A mask folder is kept only where the sheet
        already gives it to this sample: the page can keep a folder, never point the sheet at another path."""
        objects = request.get("objects")
        if not isinstance(objects, list) or not objects:
            raise RequestError(HTTPStatus.BAD_REQUEST, "the request has no objects; give a list of objects, each a "
                                                       "name with a box or points, back to front")
        folders = {spec.get("masks") for spec in self.objects if spec.get("masks")}
        checked = []
        for number, spec in enumerate(objects, start=1):
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise RequestError(HTTPStatus.BAD_REQUEST, f"object {number} is {json.dumps(spec)[:80]}; give an "
                                                           "object with a name")
            what = f"object '{spec['name']}'"
            if spec.get("masks") is not None:
                if spec["masks"] not in folders:
                    raise RequestError(HTTPStatus.BAD_REQUEST,
                                       f"{what}: the mask folder {json.dumps(spec['masks'])[:120]} is not one the "
                                       f"sheet gives to '{self.sample}'; the picker keeps a sample's mask folders, "
                                       f"it does not add one: write it into {self.objects_sheet}")
                checked.append({"name": spec["name"], "masks": spec["masks"]})
            else:
                checked.append({"name": spec["name"], "frame": self.frame_index(spec.get("frame"), f"{what}: frame"),
                                **self.prompt(spec, what)})
        try:
            rows = save_sample(self.samples_sheet, self.objects_sheet, self.sample, str(self.video), checked)
        except ValueError as err:  # SheetError: a row the sheet's schema refuses (a name, a duplicate, ...)
            raise RequestError(HTTPStatus.BAD_REQUEST, str(err)) from err
        log.info("%s: saved %d object(s) to %s", self.sample, len(rows), self.objects_sheet)
        return {"rows": rows, "objects_sheet": str(self.objects_sheet), "samples_sheet": str(self.samples_sheet)}


def sheet_sample(samples_sheet: Path, objects_sheet: Path, name: str) -> tuple[dict, list[dict]]:
    """A sample's row of the samples sheet (checked) and its objects' rows, back to front, as the page takes them."""
    schema = load_schema("samples", SCHEMA_DIR)
    for line, cells in read_rows(samples_sheet.read_text() if samples_sheet.is_file() else "", samples_sheet):
        if cells.get("sample") == name:
            row = check_row(samples_sheet, line, f"sample '{name}'", cells, schema)
            break
    else:
        raise StageError(STAGE, name, f"no row for '{name}' in {samples_sheet}",
                         "pick a new video with `omnimatte pick VIDEO --sample NAME`, which adds the row, "
                         "or add the row to the sheet (samples given in a YAML config are edited there)")
    objects = []
    text = objects_sheet.read_text() if objects_sheet.is_file() else ""
    for _, cells in read_rows(text, objects_sheet):
        if cells.get("sample") == name:  # mask-folder objects too, so that saving keeps them
            values = {column: parse_cell(column, cell) for column, cell in cells.items()}
            objects.append({"name": values.get("object"), "order": values.get("order"), "frame": values.get("frame", 0),
                            "masks": values.get("masks"), "box": values.get("box"), "points": values.get("points"),
                            "labels": values.get("labels")})
    objects.sort(key=lambda spec: spec["order"] if isinstance(spec["order"], int) else 0)
    return row, objects


def display_size(width: int, height: int) -> tuple[int, int]:
    """The size frames are shown at: the source's, or DISPLAY_WIDTH wide with the source's aspect."""
    if width <= DISPLAY_WIDTH:
        return width, height
    return DISPLAY_WIDTH, max(2, round(height * DISPLAY_WIDTH / width / 2) * 2)


def open_session(video: Path, sample: str, samples_sheet: Path, objects_sheet: Path, start: int = 0,
                 end: int | None = None, stride: int = 1, objects: list[dict] | None = None,
                 sam_model_type: str = "vit_b", sam_checkpoint: Path | None = None, device: str = "cpu") -> Session:
    """Decode the frames the frames stage would extract (shown smaller when the source is wide) and load SAM when its weights exist."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", sample):
        raise StageError(STAGE, sample, f"'{sample}' cannot be a sample name",
                         "give --sample a name of letters, digits, _ and - (it becomes results/NAME/)")
    if not Path(video).exists():  # a file, or a folder of images (an image sequence)
        raise StageError(STAGE, sample, f"video file {video} does not exist", "check the path of the video")
    try:
        probe = probe_video(Path(video))
    except ValueError as err:
        raise StageError(STAGE, sample, f"ffmpeg cannot read {video}: {err}",
                         "check that the file is a complete video, or that the folder holds one numbered image per frame") from err
    size = display_size(probe["width"], probe["height"])
    frames = [cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])[1].tobytes()
              for frame in tqdm(decode_frames(Path(video), *size, start, end, stride), desc=f"{sample}: frames",
                                unit="frame")]
    if not frames:
        raise StageError(STAGE, sample, f"no frames in {video} for start={start}, end={end}, stride={stride}",
                         "check the video and the sample's start/end/stride")
    session = Session(sample, Path(video), Path(samples_sheet), Path(objects_sheet), (probe["width"], probe["height"]),
                      frames, size, objects or [])
    if sam_checkpoint is not None and Path(sam_checkpoint).is_file():
        session.segmenter = SamSegmenter(load_sam(sam_model_type, sam_checkpoint, device))
        session.sam_note = f"SAM {sam_model_type} from {sam_checkpoint}"
    else:
        session.sam_note = (f"no SAM checkpoint at {sam_checkpoint}: prompts are saved without a preview of the mask"
                            if sam_checkpoint else "no SAM checkpoint configured")
    log.info("%s: %d frames of %s; %s", sample, len(frames), video, session.sam_note)
    return session


def allowed_hosts(port: int) -> set[str]:
    """The Host headers of requests to the server on 127.0.0.1:`port`, as a browser sends them: by address or as
    localhost, with the port (a browser leaves out only port 80)."""
    hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
    return hosts | {"127.0.0.1", "localhost"} if port == 80 else hosts


def make_server(session: Session, port: int = 0) -> ThreadingHTTPServer:
    """The page's server on 127.0.0.1 (only this machine can reach it); port 0 takes a free one.

    Other pages open in the same browser can send requests to it too, so it answers only its own page:
    every request must name the served address as its Host (a DNS-rebinding page names its own host),
    a POST that carries an Origin must come from the page's own origin, and every API call must carry
    the run's secret token, which only the page holds (a cross-origin page can send requests but cannot
    read the page). A body is at most MAX_BODY_BYTES. Every error is a JSON answer {"status", "message"}.
    """
    token = secrets.token_urlsafe(32)

    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT_S  # a client that stops sending holds a thread no longer than this

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            log.debug(format, *args)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            # No other page may frame the picker (and have the user click Save in it), nor may the page load
            # anything but its own files; frames come as blob: URLs, SAM's masks as data: URLs.
            self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; "
                                                        "frame-ancestors 'none'; form-action 'none'")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: Any) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def _error(self, status: int, message: str) -> None:
            log.warning("%s: refused %s %s: %d %s", session.sample, self.command, getattr(self, "path", ""), status,
                        message)
            self._json(status, {"status": int(status), "message": message})

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """http.server's own refusals (a malformed request line, an unsupported method) as JSON too."""
            self.close_connection = True
            self._error(code, message or HTTPStatus(code).phrase)

        def _check_host(self) -> str:
            host = (self.headers.get("Host") or "").strip().lower()
            if host not in allowed_hosts(self.server.server_address[1]):
                raise RequestError(HTTPStatus.FORBIDDEN, f"the Host {host or '(none)'!r} is not this picker's address "
                                                         f"127.0.0.1:{self.server.server_address[1]}")
            return host

        def _check_origin(self, host: str) -> None:
            origin = self.headers.get("Origin")
            if origin is not None and origin.strip().lower() != f"http://{host}":
                raise RequestError(HTTPStatus.FORBIDDEN,
                                   f"a request from the page {origin!r} is refused: only the picker's own page "
                                   f"(http://{host}) may change the sheets")

        def _check_token(self) -> None:
            given = self.headers.get(TOKEN_HEADER)
            if given is None:
                raise RequestError(HTTPStatus.FORBIDDEN, f"no {TOKEN_HEADER} header: the picker's API answers only "
                                                         "its own page (reload the page)")
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise RequestError(HTTPStatus.FORBIDDEN, f"a wrong {TOKEN_HEADER}: the picker's API answers only its "
                                                         "own page of this run (reload the page)")

        def _body(self) -> dict:
            """The request's JSON object, read only when it is at most MAX_BODY_BYTES long."""
            length_header = self.headers.get("Content-Length")
            if length_header is None:
                self.close_connection = True
                raise RequestError(HTTPStatus.LENGTH_REQUIRED, "the request has no Content-Length")
            try:
                length = int(length_header)
                if length < 0:
                    raise ValueError
            except ValueError:
                self.close_connection = True
                raise RequestError(HTTPStatus.BAD_REQUEST, f"Content-Length {length_header!r} is not a length") from None
            if length > MAX_BODY_BYTES:
                self._discard(length)
                raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                   f"the request body is {length} bytes; the picker takes at most {MAX_BODY_BYTES}")
            try:
                request = json.loads(self.rfile.read(length) or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise RequestError(HTTPStatus.BAD_REQUEST, f"the request body is not JSON: {err}") from None
            if not isinstance(request, dict):
                raise RequestError(HTTPStatus.BAD_REQUEST, "the request body is not a JSON object")
            return request

        def _discard(self, length: int) -> None:
            """Read a refused body away (up to DISCARD_BYTES), so that the client, still sending, gets the answer;
            a longer one ends the connection."""
            self.close_connection = True
            if length > DISCARD_BYTES:
                return
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 16))
                if not chunk:
                    return
                length -= len(chunk)

        def _answer(self, method: str) -> None:
            path = self.path.split("?")[0]
            try:
                host = self._check_host()
                if method == "GET" and path in PAGE_FILES:
                    name, content_type = PAGE_FILES[path]
                    body = resources.files("omnimatte").joinpath("picker", name).read_bytes()
                    if name == "index.html":
                        body = body.replace(TOKEN_PLACEHOLDER, token.encode())
                    self._send(HTTPStatus.OK, body, f"{content_type}; charset=utf-8")
                    return
                if method == "POST":
                    self._check_origin(host)
                self._check_token()
                if method == "GET":
                    self._get(path)
                else:
                    self._post(path)
            except RequestError as err:
                self._error(err.status, err.message)
            except Exception as err:  # noqa: BLE001 - the page gets an answer, and the server serves on
                log.exception("%s: %s %s failed", session.sample, method, path)
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"the picker failed: {type(err).__name__}: {err}")

        def _get(self, path: str) -> None:
            if path == "/api/info":
                self._json(HTTPStatus.OK, session.info())
            elif (match := re.fullmatch(r"/api/frames/(\d+)\.jpg", path)) and int(match.group(1)) < len(session.frames):
                self._send(HTTPStatus.OK, session.frames[int(match.group(1))], "image/jpeg")
            else:
                raise RequestError(HTTPStatus.NOT_FOUND, f"nothing at {path}")

        def _post(self, path: str) -> None:
            handlers = {"/api/mask": session.mask, "/api/save": session.save, "/api/done": None}
            if path not in handlers:
                raise RequestError(HTTPStatus.NOT_FOUND, f"nothing at {path}")
            request = self._body()
            if path == "/api/done":  # the page's Done: stop serving, so `omnimatte pick` returns (the next clip of a loop)
                self._json(HTTPStatus.OK, {"done": True})
                threading.Thread(target=self.server.shutdown, daemon=True).start()
                return
            self._json(HTTPStatus.OK, handlers[path](request))

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self._answer("GET")

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self._answer("POST")

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def serve(session: Session, port: int = 0) -> None:
    """Serve the page until its Done button or Ctrl-C."""
    server = make_server(session, port)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    log.info("%s: open %s in a browser (Done in the page, or Ctrl-C, stops); saving writes %s and %s", session.sample, url,
             session.samples_sheet, session.objects_sheet)
    print(f"omnimatte pick: open {url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
