"""The rendered suite's scenes, each stressing one thing real footage does to the method (SCENES, in order).

All are filmed at 448x256 with 32 samples per pixel (Monte Carlo noise of about 5.4 levels of 255 in the
frame and the clean plate alike), handed to the pipeline through H.264 (crf 20), with coarse masks grown
about 3 px, wobbling and a pixel off (coarse_masks.py).
The camera looks down at the floor from 3 m, so that where it only turns (pans), one homography a
frame explains the whole background; the horizon stays out of view.
"""

from __future__ import annotations

from omnimatte.rendered.scene import Body, CameraPath, Filming, Floor, Lighting, Pond, Prop, Scene

RED = (0.72, 0.22, 0.16)
BLUE = (0.18, 0.32, 0.70)
YELLOW = (0.86, 0.70, 0.20)
WHITE = (0.82, 0.82, 0.80)
FLOOR = Floor(texture="meadow", extent=30.0, texels=3072)
EYE = (0.0, 3.0, 5.5)
TARGET = (0.0, 0.4, 0.0)


def _walker(name: str = "walker", start=(-1.6, 0.2), end=(1.6, -0.2), colour=RED, size: float = 1.3) -> Body:
    return Body(name, "figure", colour, start, end, size)


SCENES: dict[str, Scene] = {scene.name: scene for scene in (
    Scene("pan_shadow", "a sun shadow with a wide penumbra (a 4 degree sun) and sky-blue fill, the camera panning",
          CameraPath(EYE, TARGET, yaw_degrees=22.0),
          (_walker(),),
          floor=FLOOR, lighting=Lighting(elevation=38.0, azimuth=-60.0, angular_diameter=4.0)),
    Scene("tripod", "a still (tripod) camera with two objects and their soft shadows",
          CameraPath(EYE, TARGET),
          (_walker(start=(-1.5, -0.6), end=(1.4, -0.9)),
           Body("ball", "ball", BLUE, (1.3, 0.9), (-1.2, 0.8), 0.35, bounces=3, bounce_height=0.5)),
          floor=Floor(texture="tiles", extent=30.0, texels=3072), lighting=Lighting(elevation=50.0, azimuth=40.0)),
    Scene("glossy", "a glossy floor: the walker's reflection (and a soft shadow) under a slow pan",
          CameraPath((0.0, 2.0, 5.5), (0.0, 0.5, 0.0), yaw_degrees=12.0),
          (_walker(colour=YELLOW),),
          floor=Floor(texture="tiles", extent=30.0, texels=3072, gloss=0.02, brightness=0.55), lighting=Lighting(elevation=55.0, azimuth=120.0)),
    Scene("dark_floor", "a dark floor with faint texture: few features for the camera's registration, a dim shadow",
          CameraPath(EYE, TARGET, yaw_degrees=14.0),
          (Body("cube", "cube", WHITE, (-1.4, 0.3), (1.4, -0.3), 0.6, turns=0.25),),
          floor=Floor(texture="dark", extent=30.0, texels=3072), lighting=Lighting(elevation=45.0, azimuth=-30.0)),
    Scene("trio", "three objects: occlusions and overlapping shadows from a low sun, a slight pan",
          CameraPath(EYE, TARGET, yaw_degrees=8.0),
          (_walker(start=(-1.8, -1.2), end=(1.6, -1.0)),
           Body("cube", "cube", WHITE, (1.5, 0.0), (-1.2, -0.1), 0.55, turns=0.3),
           Body("ball", "ball", BLUE, (-1.0, 1.1), (1.2, 1.0), 0.4, bounces=2, bounce_height=0.4)),
          floor=FLOOR, lighting=Lighting(elevation=28.0, azimuth=-75.0, angular_diameter=3.0)),
    Scene("flicker", "an exposure that flickers by up to 3 % from frame to frame, under a pan",
          CameraPath(EYE, TARGET, yaw_degrees=16.0),
          (_walker(colour=BLUE),),
          floor=FLOOR, filming=Filming(flicker=0.03)),
    Scene("parallax", "a camera translating sideways past three standing poles nobody masked (parallax)",
          CameraPath(EYE, TARGET, travel=(2.4, 0.0, 0.0)),
          (Body("cube", "cube", RED, (-1.0, 0.6), (1.6, 0.4), 0.5, turns=0.2),),
          floor=FLOOR, props=(Prop("pole_left", "pole", WHITE, (-1.6, -0.8), 0.14, 1.6),
                              Prop("pole_middle", "pole", YELLOW, (0.3, -1.4), 0.14, 1.6),
                              Prop("pole_right", "pole", WHITE, (1.9, -0.5), 0.14, 1.6))),
    Scene("pond", "a pond whose ripples move by themselves (no mask), the walker passing it under a pan",
          CameraPath(EYE, TARGET, yaw_degrees=16.0),
          (_walker(start=(-1.6, 0.5), end=(1.6, 0.3)),),
          floor=FLOOR, pond=Pond(centre=(0.2, -1.3), size=(2.2, 1.2))),
    Scene("long", "a long clip: 200 frames of a walk across a 60 degree pan (drift of chained registration)",
          CameraPath(EYE, TARGET, yaw_degrees=60.0),
          (_walker(start=(-3.8, 0.6), end=(3.8, -0.6)),),
          floor=FLOOR, filming=Filming(n_frames=200), max_canvas_scale=30.0),
)}
