"""Check 3, exposure and white balance: how the registered background's brightness and colour drift per frame.

background_fit fits each frame's gain per channel over its view of the plate on the free
background. Against the clip's median: the brightness (the mean gain) may drift (an auto
exposure) or flicker (lights, a shutter against mains light), and the channels may drift apart
(an auto white balance). The training's camera adjustment follows a brightness that changes
slowly (one scale per key, keys ten frames apart, train.camera_adjustment); a faster flicker and
any change of white balance go to the layers as a change over the whole frame.
"""

from __future__ import annotations

import numpy as np

from omnimatte.background_fit import BackgroundFit
from omnimatte.diagnose.findings import CheckResult, Finding, percent, worst_frames
from omnimatte.diagnose.settings import ExposureSettings

CHECK = "exposure"
TITLE = "exposure & white balance"
CHANNELS = ("red", "green", "blue")


def exposure_series(gains: np.ndarray) -> dict[str, np.ndarray]:
    """From per-frame channel gains (T, 3): the brightness against the clip's median, its change from the frame
    before, and each channel's share of the brightness against its median (the white balance)."""
    brightness = gains.mean(axis=1)
    brightness = brightness / np.median(brightness)
    flicker = np.r_[0.0, np.abs(np.diff(brightness) / brightness[:-1])]
    balance = gains / gains.mean(axis=1, keepdims=True)
    balance = balance / np.median(balance, axis=0)
    series = {"brightness": brightness, "flicker": flicker}
    series.update({f"white_balance_{name}": balance[:, c] for c, name in enumerate(CHANNELS)})
    return series


def check_exposure(fit: BackgroundFit, settings: ExposureSettings) -> CheckResult:
    series = exposure_series(fit.gains)
    brightness = np.abs(series["brightness"] - 1)
    balance = np.max(np.abs(np.stack([series[f"white_balance_{name}"] for name in CHANNELS], 1) - 1), axis=1)
    channel = CHANNELS[int(np.abs(np.stack([series[f"white_balance_{n}"] for n in CHANNELS], 1) - 1)
                           [int(balance.argmax())].argmax())]
    findings = [
        Finding(CHECK, "brightness", float(brightness.max()), "relative change", settings.brightness_warn,
                settings.brightness_fail,
                f"The background's brightness moves by up to {percent(float(brightness.max()))} from the clip's median "
                f"(frame {int(brightness.argmax())}).",
                "The camera adjustment (train.camera_adjustment) scales each frame's brightness, but only as it changes "
                "slowly, and every comparison with the background is thrown off by a change this large: a layer may "
                "take up a bright or dark frame. Lock the exposure when filming, or even it out before (a deflicker "
                "filter).", frames=worst_frames(brightness)),
        Finding(CHECK, "flicker", float(series["flicker"].max()), "relative change", settings.flicker_warn,
                settings.flicker_fail,
                f"From one frame to the next the brightness changes by up to {percent(float(series['flicker'].max()))} "
                f"(frame {int(series['flicker'].argmax())}).",
                "The camera adjustment follows the brightness at keys ten frames apart, not each frame: a flicker this "
                "fast goes to the layers as a change over the whole frame. Deflicker the video first.",
                frames=worst_frames(series["flicker"])),
        Finding(CHECK, "white_balance", float(balance.max()), "relative change", settings.white_balance_warn,
                settings.white_balance_fail,
                f"The background's white balance moves by up to {percent(float(balance.max()))} ({channel}, frame "
                f"{int(balance.argmax())}).",
                "Nothing in the model follows a change of colour: the layers take it up, most where the background "
                "is bright. Lock the white balance when filming, or grade the clip to one balance first.",
                frames=worst_frames(balance)),
    ]
    return CheckResult(CHECK, TITLE, findings, series, None)
