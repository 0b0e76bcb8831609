"""What a rendered scene is: a floor, a sun and a sky, a camera path, the objects a user masks (bodies),
standing objects nobody masks (props), a region of the floor that moves by itself (a pond), and how the
clip is filmed (size, samples per pixel, exposure, codec, how coarse the masks are).

Everything is plain data (frozen dataclasses of numbers, strings and tuples), so a scene hashes into the
render cache's key (cache.py) and is written beside its clip. Units: metres, y up, the floor is y = 0;
ground positions are (x, z) with the camera looking roughly along -z.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

Vector = tuple[float, float, float]
GroundPoint = tuple[float, float]

BODY_SHAPES = ("figure", "ball", "cube")
PROP_SHAPES = ("pole", "box")
FLOOR_TEXTURES = ("meadow", "tiles", "dark")


@dataclass(frozen=True)
class CameraPath:
    """A pinhole camera: at frame 0 at `eye` looking at `target`, then turning about its own centre by up to
    `yaw_degrees` (a pan: the background stays explained by one homography a frame) and moving by up to
    `travel` metres (a translation: what stands off the floor shows parallax).

    With `oscillations` 0 the yaw and the travel run linearly from -1/2 to +1/2 of their amount over the
    clip; otherwise they swing back and forth sinusoidally that many times.
    """

    eye: Vector
    target: Vector
    fov: float = 45.0  # horizontal field of view, degrees
    yaw_degrees: float = 0.0
    travel: Vector = (0.0, 0.0, 0.0)
    oscillations: float = 0.0

    def phase(self, t: int, n_frames: int) -> float:
        """Where frame t is along the path, in [-1/2, 1/2]."""
        s = t / max(n_frames - 1, 1)
        return s - 0.5 if self.oscillations == 0 else 0.5 * math.sin(2 * math.pi * self.oscillations * s)

    def pose(self, t: int, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """The eye and the target of frame t."""
        p = self.phase(t, n_frames)
        eye = np.asarray(self.eye, float) + p * np.asarray(self.travel, float)
        angle = math.radians(self.yaw_degrees * p)
        look = np.asarray(self.target, float) - np.asarray(self.eye, float)
        c, s = math.cos(angle), math.sin(angle)  # a positive yaw turns the view right (towards +x)
        look = np.array([c * look[0] - s * look[2], look[1], s * look[0] + c * look[2]])
        return eye, eye + look

    @property
    def still(self) -> bool:
        return self.yaw_degrees == 0 and not any(self.travel)

    @property
    def translates(self) -> bool:
        return any(self.travel)


@dataclass(frozen=True)
class Body:
    """An object a user masks, moving over the floor from `start` to `end` (ground points) over the clip.

    shape: "figure" (a walking person of capsules, `size` tall), "ball" (`size` across; with `bounces`, it
    bounces that many times up to `bounce_height`), "cube" (`size` an edge, turning `turns` times about
    its vertical axis). colour: sRGB in [0, 1]. gloss: 0 for a diffuse surface, else a plastic's roughness.
    """

    name: str
    shape: str
    colour: Vector
    start: GroundPoint
    end: GroundPoint
    size: float
    bounces: int = 0
    bounce_height: float = 0.0
    turns: float = 0.0
    gloss: float = 0.0


@dataclass(frozen=True)
class Prop:
    """A standing object nobody masks: a "pole" (`size` across, `height` tall) or a "box" (`size` an edge)."""

    name: str
    shape: str
    colour: Vector
    position: GroundPoint
    size: float
    height: float = 1.0


@dataclass(frozen=True)
class Pond:
    """A rectangle of floor whose texture moves by itself every frame (water: ripples drifting at `speed`
    texture widths a frame); nobody masks it."""

    centre: GroundPoint
    size: tuple[float, float]  # (x, z) extent, metres
    colour: Vector = (0.10, 0.22, 0.30)
    speed: float = 0.02


@dataclass(frozen=True)
class Floor:
    """The ground: a procedural texture ("meadow", "tiles", "dark": a dark floor with faint, low-contrast
    texture) `extent` metres square, `texels` pixels across; gloss 0 for diffuse, else the roughness of a
    glossy coat (reflections of what stands on it)."""

    texture: str = "meadow"
    extent: float = 16.0
    texels: int = 2048
    gloss: float = 0.0
    brightness: float = 1.0  # scales the texture's colour


@dataclass(frozen=True)
class Lighting:
    """A sun of `angular_diameter` degrees (its penumbra) at `elevation`/`azimuth` degrees with `irradiance`
    (linear RGB, on a surface facing it), and a uniform sky of `sky` radiance (the shadows' fill light)."""

    elevation: float = 50.0
    azimuth: float = 30.0
    angular_diameter: float = 3.0
    irradiance: Vector = (3.0, 2.85, 2.6)
    sky: Vector = (0.25, 0.33, 0.48)

    def direction(self) -> np.ndarray:
        """Unit vector from the scene towards the sun."""
        el, az = math.radians(self.elevation), math.radians(self.azimuth)
        return np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])


@dataclass(frozen=True)
class Filming:
    """How the clip is filmed and handed to the pipeline.

    spp: path-tracing samples per pixel (fewer: more Monte Carlo noise); max_depth: path length;
    exposure: linear gain before the sRGB curve; flicker: each frame's gain varies by up to this share
    (seeded); crf: the H.264 quality of the input video (the pipeline reads the encoded video, as a
    user's); mask_grow: px the coarse masks extend past the object on average (negative: they fall
    short); mask_wobble: px of smooth random wobble along their outline; mask_shift: px the masks may
    sit off the object, drifting over the clip (coarse_masks.py).
    """

    width: int = 448
    height: int = 256
    n_frames: int = 32
    fps: float = 24.0
    spp: int = 32
    max_depth: int = 4
    exposure: float = 1.0
    flicker: float = 0.0
    crf: int = 20
    mask_grow: float = 3.0
    mask_wobble: float = 1.5
    mask_shift: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class Scene:
    """One clip of the rendered suite: `stresses` says in a line what it tests; `max_canvas_scale` is the homography
    stage's limit on the canvas, raised for a long pan as a user would raise it (not part of the render)."""

    name: str
    stresses: str
    camera: CameraPath
    bodies: tuple[Body, ...]  # back to front, as the layers are ordered
    floor: Floor = Floor()
    lighting: Lighting = Lighting()
    filming: Filming = Filming()
    props: tuple[Prop, ...] = ()
    pond: Pond | None = None
    max_canvas_scale: float = 4.0

    def __post_init__(self) -> None:
        names = [b.name for b in self.bodies] + [p.name for p in self.props]
        if not self.bodies:
            raise ValueError(f"scene {self.name!r} has no bodies: nothing to separate")
        if len(set(names)) != len(names):
            raise ValueError(f"scene {self.name!r} has duplicate object names {names}")
        for body in self.bodies:
            if body.shape not in BODY_SHAPES:
                raise ValueError(f"scene {self.name!r}: body {body.name!r} has shape {body.shape!r}; choose from "
                                 f"{', '.join(BODY_SHAPES)}")
        for prop in self.props:
            if prop.shape not in PROP_SHAPES:
                raise ValueError(f"scene {self.name!r}: prop {prop.name!r} has shape {prop.shape!r}; choose from "
                                 f"{', '.join(PROP_SHAPES)}")
        if self.floor.texture not in FLOOR_TEXTURES:
            raise ValueError(f"scene {self.name!r}: floor texture {self.floor.texture!r}; choose from "
                             f"{', '.join(FLOOR_TEXTURES)}")
        f = self.filming
        if f.width < 16 or f.height < 16 or f.n_frames < 2 or f.spp < 1:
            raise ValueError(f"scene {self.name!r}: {f.width}x{f.height}, {f.n_frames} frames, {f.spp} spp is too "
                             "small (at least 16x16, 2 frames, 1 sample per pixel)")

    @property
    def object_names(self) -> list[str]:
        return [body.name for body in self.bodies]

    @property
    def has_unexplained(self) -> bool:
        """Whether some background is not explained by one homography a frame: a prop seen from a
        translating camera (parallax) or a pond (it moves by itself)."""
        return self.pond is not None or (bool(self.props) and self.camera.translates)

    def filmed(self, **changes) -> "Scene":
        """The scene filmed otherwise (e.g. width=64, height=36, n_frames=4 for a quick render)."""
        return dataclasses.replace(self, filming=dataclasses.replace(self.filming, **changes))

    def describe(self) -> dict:
        """The scene as plain JSON data (the cache key hashes it; info.json holds it)."""
        return dataclasses.asdict(self)
