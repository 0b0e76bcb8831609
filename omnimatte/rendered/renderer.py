"""The path tracer's calls: Mitsuba 3 on the CPU (the `render` extra), in its `llvm_ad_rgb` variant where
drjit finds LLVM 19 or newer (Debian: `apt install libllvm19`), else its `scalar_rgb` variant, about four
times slower ($OMNIMATTE_RENDER_VARIANT chooses one; the render cache's key holds it, so a clip rendered
by one is never taken for the other's).

Every render of frame t, whichever objects it holds, is seeded with the same number (frame_seed), and
Mitsuba seeds its sampler per pixel and sample from it: a pixel whose paths never meet an object is bit
for bit the same in the frame, the clean plate and every other ground-truth render of that frame. Each
sample counts in its own pixel only (a box filter), so the coverage pass, which traces the same first
rays, gives exactly the share of each pixel's samples that saw an object.

Why Mitsuba and not Blender's `bpy` (both measured on a 2-core CPU, 448x256 at 16 samples per pixel,
untouched pixels identical with either): Mitsuba's scalar variant renders a frame in about half of
Cycles' time and its LLVM variant in about an eighth, it installs 206 MB against 821 MB, and it leaves
numpy alone (bpy pins numpy below 2 and Python to 3.11 exactly). LLVM 15 and 16 fail to compile
Mitsuba's kernels, so older LLVMs get the scalar variant.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
from functools import cached_property

import numpy as np

from omnimatte.rendered.geometry import Box, Primitive, Sphere, body_primitives, prop_primitives
from omnimatte.rendered.materials import floor_texture, pond_texture
from omnimatte.rendered.scene import Scene

VARIANTS = ("llvm_ad_rgb", "scalar_rgb")
VARIANT_VARIABLE = "OMNIMATTE_RENDER_VARIANT"  # auto (the default), llvm_ad_rgb or scalar_rgb
MIN_LLVM = (19,)
INSTALL_HINT = 'install the path tracer with `pip install -e ".[render]"` (Mitsuba 3 from PyPI)'
SUN_DISTANCE = 1000.0  # metres: far enough that the sun's rays are parallel across the scene
POND_LIFT = 0.002  # metres the pond lies above the floor


class RendererMissing(RuntimeError):
    """Mitsuba is not installed, or the variant asked for cannot run here."""


def _llvm_works() -> bool:
    import drjit as dr

    return bool(dr.has_backend(dr.JitBackend.LLVM)) and tuple(dr.detail.llvm_version()) >= MIN_LLVM


def render_variant() -> str:
    """The Mitsuba variant that renders here: $OMNIMATTE_RENDER_VARIANT, or with "auto" (the default)
    llvm_ad_rgb where LLVM 19 or newer loads, else scalar_rgb."""
    asked = os.environ.get(VARIANT_VARIABLE, "auto")
    if asked not in ("auto", *VARIANTS):
        raise RendererMissing(f"{VARIANT_VARIABLE}={asked!r}: choose auto, {' or '.join(VARIANTS)}")
    try:
        llvm = _llvm_works()
    except ImportError as err:
        raise RendererMissing(f"Mitsuba 3 cannot be imported ({err}): {INSTALL_HINT}") from err
    if asked == "llvm_ad_rgb" and not llvm:
        raise RendererMissing(f"{VARIANT_VARIABLE}=llvm_ad_rgb needs LLVM {MIN_LLVM[0]} or newer (Debian: apt install "
                              "libllvm19); leave it unset to render with scalar_rgb")
    return asked if asked != "auto" else ("llvm_ad_rgb" if llvm else "scalar_rgb")


def renderer_version() -> str:
    """The tracer, its version and variant, as the render cache's key holds them."""
    try:
        version = importlib.metadata.version("mitsuba")
    except importlib.metadata.PackageNotFoundError as err:
        raise RendererMissing(f"Mitsuba 3 is not installed: {INSTALL_HINT}") from err
    return f"mitsuba {version} {render_variant()}"


def _mitsuba():
    try:
        import mitsuba as mi
    except ImportError as err:
        raise RendererMissing(f"Mitsuba 3 cannot be imported ({err}): {INSTALL_HINT}") from err
    mi.set_variant(render_variant())
    return mi


def srgb_to_linear(colour) -> list[float]:
    """sRGB values in [0, 1] as the linear RGB a tracer's reflectance takes."""
    c = np.asarray(colour, float)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).tolist()


def frame_seed(scene: Scene, t: int) -> int:
    """The sampler's seed of frame t: the same for every render of that frame, different between frames."""
    return (scene.filming.seed * 100_003 + t) % 2**32


class SceneRenderer:
    """Renders one scene's frames: `render` (linear RGB) with any subset of its bodies, and `coverage`, the
    share of each pixel's samples that see some bodies or the background's unexplained parts."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.mi = _mitsuba()

    # Materials, made once per clip (the floor's texture is large).
    @cached_property
    def _floor_bsdf(self):
        floor = self.scene.floor
        texture = {"type": "bitmap", "bitmap": self.mi.Bitmap(floor_texture(floor, self.scene.filming.seed)),
                   "filter_type": "bilinear", "wrap_mode": "clamp"}
        if floor.gloss > 0:
            return self.mi.load_dict({"type": "roughplastic", "distribution": "ggx", "alpha": floor.gloss,
                                      "diffuse_reflectance": texture})
        return self.mi.load_dict({"type": "diffuse", "reflectance": texture})

    @cached_property
    def _black(self):
        return self.mi.load_dict({"type": "diffuse", "reflectance": {"type": "rgb", "value": [0.0, 0.0, 0.0]}})

    def _surface(self, colour, gloss: float):
        reflectance = {"type": "rgb", "value": srgb_to_linear(colour)}
        if gloss > 0:
            return self.mi.load_dict({"type": "roughplastic", "distribution": "ggx", "alpha": gloss,
                                      "diffuse_reflectance": reflectance})
        return self.mi.load_dict({"type": "diffuse", "reflectance": reflectance})

    @cached_property
    def _body_bsdfs(self) -> dict:
        return {b.name: self._surface(b.colour, b.gloss) for b in self.scene.bodies}

    @cached_property
    def _prop_bsdfs(self) -> dict:
        return {p.name: self._surface(p.colour, 0.0) for p in self.scene.props}

    # Shapes.
    def _shapes(self, primitive: Primitive, bsdf, emitter: dict | None) -> list[dict]:
        T = self.mi.ScalarTransform4f
        extra = {"bsdf": bsdf, **({"emitter": emitter} if emitter else {})}
        if isinstance(primitive, Sphere):
            return [{"type": "sphere", "center": list(primitive.centre), "radius": primitive.radius, **extra}]
        if isinstance(primitive, Box):
            to_world = (T().translate(list(primitive.centre)) @ T().rotate([0, 1, 0], math.degrees(primitive.yaw))
                        @ T().scale(list(primitive.half)))
            return [{"type": "cube", "to_world": to_world, **extra}]
        start, end = np.asarray(primitive.start), np.asarray(primitive.end)
        shapes = [{"type": "cylinder", "p0": start.tolist(), "p1": end.tolist(), "radius": primitive.radius, **extra}]
        axis = (end - start) / np.linalg.norm(end - start)
        for centre, normal in ((start, -axis), (end, axis)):  # caps: disks facing out
            frame = T().look_at(origin=centre.tolist(), target=(centre + normal).tolist(),
                                up=[1, 0, 0] if abs(normal[1]) > 0.9 else [0, 1, 0])
            shapes.append({"type": "disk", "to_world": frame @ T().scale(primitive.radius), **extra})
        return shapes

    def _floor(self, bsdf) -> dict:
        T = self.mi.ScalarTransform4f
        half = self.scene.floor.extent / 2
        return {"type": "rectangle", "to_world": T().rotate([1, 0, 0], -90) @ T().scale([half, half, 1]), "bsdf": bsdf}

    def _pond(self, t: int, bsdf) -> dict:
        T = self.mi.ScalarTransform4f
        pond = self.scene.pond
        if bsdf is None:
            texture = {"type": "bitmap", "bitmap": self.mi.Bitmap(pond_texture(pond, t, self.scene.filming.seed)),
                       "filter_type": "bilinear", "wrap_mode": "clamp"}
            bsdf = {"type": "roughplastic", "distribution": "ggx", "alpha": 0.08, "diffuse_reflectance": texture}
        to_world = (T().translate([pond.centre[0], POND_LIFT, pond.centre[1]]) @ T().rotate([1, 0, 0], -90)
                    @ T().scale([pond.size[0] / 2, pond.size[1] / 2, 1]))
        return {"type": "rectangle", "to_world": to_world, "bsdf": bsdf}

    def _sensor(self, t: int) -> dict:
        f = self.scene.filming
        eye, target = self.scene.camera.pose(t, f.n_frames)
        return {"type": "perspective", "fov": self.scene.camera.fov, "fov_axis": "x",
                "to_world": self.mi.ScalarTransform4f().look_at(origin=eye.tolist(), target=target.tolist(),
                                                                 up=[0, 1, 0]),
                "film": {"type": "hdrfilm", "width": f.width, "height": f.height, "pixel_format": "rgb",
                         "rfilter": {"type": "box"}},
                "sampler": {"type": "independent", "sample_count": f.spp}}

    def _lights(self) -> dict:
        light = self.scene.lighting
        half_angle = math.radians(light.angular_diameter / 2)
        radiance = [e / (math.pi * math.sin(half_angle) ** 2) for e in light.irradiance]
        return {"sun": {"type": "sphere", "center": (SUN_DISTANCE * light.direction()).tolist(),
                        "radius": SUN_DISTANCE * math.tan(half_angle), "bsdf": self._black,
                        "emitter": {"type": "area", "radiance": {"type": "rgb", "value": radiance}}},
                "sky": {"type": "constant", "radiance": {"type": "rgb", "value": list(light.sky)}}}

    def _render(self, t: int, shapes: dict, max_depth: int) -> np.ndarray:
        description = {"type": "scene", "integrator": {"type": "path", "max_depth": max_depth},
                       "sensor": self._sensor(t), **shapes}
        image = self.mi.render(self.mi.load_dict(description), seed=frame_seed(self.scene, t))
        return np.array(image, dtype=np.float32)[..., :3]

    def render(self, t: int, bodies: list[str]) -> np.ndarray:
        """Frame t with only the named bodies (and every prop, the pond, the floor and the lights): linear RGB
        (H, W, 3) float32, at the scene's samples per pixel and seed."""
        n = self.scene.filming.n_frames
        shapes: dict = {**self._lights(), "floor": self._floor(self._floor_bsdf)}
        if self.scene.pond is not None:
            shapes["pond"] = self._pond(t, None)
        for prop in self.scene.props:
            for i, primitive in enumerate(prop_primitives(prop)):
                for j, shape in enumerate(self._shapes(primitive, self._prop_bsdfs[prop.name], None)):
                    shapes[f"{prop.name}_{i}_{j}"] = shape
        for body in self.scene.bodies:
            if body.name in bodies:
                for i, primitive in enumerate(body_primitives(body, t, n)):
                    for j, shape in enumerate(self._shapes(primitive, self._body_bsdfs[body.name], None)):
                        shapes[f"{body.name}_{i}_{j}"] = shape
        return self._render(t, shapes, self.scene.filming.max_depth)

    def coverage(self, t: int, bodies: list[str], groups: list[list[str]]) -> np.ndarray:
        """For up to three groups of parts, the share (H, W, groups) float32 in [0, 1] of each pixel's samples
        in frame t whose first hit is a part of that group, with the named `bodies` present (and the props,
        the pond and the floor, which hide what lies behind them). Parts are bodies, props, or "pond".

        One pass: each group glows in its own colour channel and every surface is black, so only what the
        first hit emits counts (traced as direct light, max_depth 2: Mitsuba draws a path of length 1's
        first ray otherwise than the frame's).
        """
        if not 1 <= len(groups) <= 3:
            raise ValueError(f"coverage takes one to three groups of parts, got {len(groups)}")
        n = self.scene.filming.n_frames

        def glow(part: str) -> dict | None:
            channels = [float(part in group) for group in groups] + [0.0] * (3 - len(groups))
            return {"type": "area", "radiance": {"type": "rgb", "value": channels}} if any(channels) else None

        shapes: dict = {"floor": self._floor(self._black)}
        if self.scene.pond is not None:
            pond = glow("pond")
            shapes["pond"] = {**self._pond(t, self._black), **({"emitter": pond} if pond else {})}
        for prop in self.scene.props:
            for i, primitive in enumerate(prop_primitives(prop)):
                for j, shape in enumerate(self._shapes(primitive, self._black, glow(prop.name))):
                    shapes[f"{prop.name}_{i}_{j}"] = shape
        for body in self.scene.bodies:
            if body.name in bodies:
                for i, primitive in enumerate(body_primitives(body, t, n)):
                    for j, shape in enumerate(self._shapes(primitive, self._black, glow(body.name))):
                        shapes[f"{body.name}_{i}_{j}"] = shape
        return np.clip(self._render(t, shapes, 2)[..., :len(groups)], 0.0, 1.0)
