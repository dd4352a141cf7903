"""The MMFace4D ``.nut`` format's defaults, without imports: the codec (:mod:`mmface4d.data.nut`)
and its frame layout (:mod:`mmface4d.data.nut_frames`) use them, and the CLI's help shows them
without loading PyAV or numpy."""

from __future__ import annotations

BFM_FRONT_VERTICES = 35_709
"""Vertices per frame in the official release (BFM09 front face)."""
DEFAULT_FPS = 30
"""Frame rate of the official files (and of the files the encoder writes unless told)."""
