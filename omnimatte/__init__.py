"""Omnimatte: split a video into per-object RGBA layers that carry each object's effects."""

__version__ = "0.1.0"
