"""`omnimatte pick`: draw each object's prompt on the video's frames in a local web page and save it as sheet rows.

A small HTTP server on 127.0.0.1 serves a plain HTML and JS page (omnimatte/picker/,
shipped with the package: no internet, no build step). The page shows the frames the
frames stage would extract (the sample's start/end/stride) with a slider; the user
draws a box or clicks positive and negative points for each object, names and orders
the objects, and saves, which writes the sample's rows into the sample sheets with
coordinates in the source video's pixels. Where the SAM checkpoint of the config is
present the page shows SAM's mask for the prompt before saving, from the same loading
code the masks stage uses.
"""

from __future__ import annotations

import base64
import json
import re
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
from omnimatte.samples import SCHEMA_DIR, SheetError, check_row, load_schema, parse_cell, read_rows, save_sample

STAGE = "pick"
log = get_logger(STAGE)

#: Frames are shown at most this wide; prompts are scaled back to the source's pixels.
DISPLAY_WIDTH = 960
PAGE_FILES = {"/": ("index.html", "text/html"), "/picker.js": ("picker.js", "text/javascript"),
              "/picker.css": ("picker.css", "text/css")}


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

    def mask(self, request: dict) -> dict:
        """SAM's mask for a prompt (source pixels) on one frame, as a coloured PNG overlay at display size."""
        if self.segmenter is None:
            raise ValueError(f"no SAM: {self.sam_note}")
        frame_index = int(request["frame"])
        frame = cv2.cvtColor(cv2.imdecode(np.frombuffer(self.frames[frame_index], np.uint8), cv2.IMREAD_COLOR),
                             cv2.COLOR_BGR2RGB)
        scale = np.array([self.display_size[0] / self.source_size[0], self.display_size[1] / self.source_size[1]],
                         np.float32)
        box = np.asarray(request["box"], np.float32).reshape(2, 2) * scale if request.get("box") else None
        points = np.asarray(request["points"], np.float32) * scale if request.get("points") else None
        labels = np.asarray(request.get("labels") or [1] * len(points), np.int32) if points is not None else None
        with self.lock:
            mask = np.asarray(self.segmenter(frame, None if box is None else box.reshape(4), points, labels))
        mask = mask[0] if mask.ndim == 3 else mask
        colour = PALETTE[int(request.get("colour", 0)) % len(PALETTE)]
        overlay = np.zeros(mask.shape + (4,), np.uint8)
        overlay[mask] = (*colour[::-1], 140)  # BGRA for cv2
        png = cv2.imencode(".png", overlay)[1].tobytes()
        return {"png": base64.b64encode(png).decode(), "coverage": float(mask.mean())}

    def save(self, request: dict) -> dict:
        rows = save_sample(self.samples_sheet, self.objects_sheet, self.sample, str(self.video), request["objects"])
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


def make_server(session: Session, port: int = 0) -> ThreadingHTTPServer:
    """The page's server on 127.0.0.1 (only this machine can reach it); port 0 takes a free one."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            log.debug(format, *args)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: Any) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?")[0]
            if path in PAGE_FILES:
                name, content_type = PAGE_FILES[path]
                self._send(HTTPStatus.OK, resources.files("omnimatte").joinpath("picker", name).read_bytes(),
                           f"{content_type}; charset=utf-8")
            elif path == "/api/info":
                self._json(HTTPStatus.OK, session.info())
            elif match := re.fullmatch(r"/api/frames/(\d+)\.jpg", path):
                index = int(match.group(1))
                if index >= len(session.frames):
                    self._json(HTTPStatus.NOT_FOUND, {"error": f"no frame {index}"})
                else:
                    self._send(HTTPStatus.OK, session.frames[index], "image/jpeg")
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"nothing at {path}"})

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/api/done":  # the page's Done: stop serving, so `omnimatte pick` returns (the next clip of a loop)
                self._json(HTTPStatus.OK, {"done": True})
                threading.Thread(target=self.server.shutdown, daemon=True).start()
                return
            handlers = {"/api/mask": session.mask, "/api/save": session.save}
            if self.path not in handlers:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"nothing at {self.path}"})
                return
            try:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                self._json(HTTPStatus.OK, handlers[self.path](request))
            except (SheetError, ValueError, KeyError, TypeError, IndexError) as err:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(err)})

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
