"""Which of the config's train settings only the render stage reads, and the settings each stage is given.

The train section holds both how the model is trained and how the trained model becomes layers. The
pipeline gives the train stage the section without the render-only switches, so that changing one
reruns the render stage alone from the trained model instead of training again. Kept apart from the
train and render packages so that the Snakefile can read it without importing torch.
"""

from __future__ import annotations

#: The train section's settings that training never reads: omnimatte.render's RenderSettings, but for
#: background_match_threshold, which also decides in training where the frame shows the background (the zero
#: alpha's release and the canvas), so it belongs to both stages.
RENDER_ONLY = ("refine_alpha", "fit_alpha", "fill_cores", "claim_effects", "fit_shadows", "cut_strays", "cut_copies",
               "merge_overlaps", "sample_background", "detail_transfer", "background_detail")


def training_settings(train_section: dict) -> dict:
    """The config's train section without its render-only switches, in its CPU overrides (`cpu`) too."""
    settings = {key: value for key, value in train_section.items() if key not in RENDER_ONLY}
    if isinstance(settings.get("cpu"), dict):
        settings["cpu"] = {key: value for key, value in settings["cpu"].items() if key not in RENDER_ONLY}
    return settings
