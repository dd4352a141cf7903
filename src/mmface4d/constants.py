"""Constants that layers which may not import each other share (core: imports nothing else).

A constant that belongs to one subpackage lives there (the frames and units in
:mod:`mmface4d.geometry.frames`, the camera indices in :mod:`mmface4d.capture.cameras`); one that
a lower layer needs but a higher one owns lives here, and the owner re-exports it.
"""

SAMPLE_RATE = 16_000
"""Rate of speech audio in Hz: MMFace4D's recordings (docs/FORMATS.md), the speech encoders'
input, and the default of every function that takes or writes speech
(``audio.io.DEFAULT_SAMPLE_RATE``; ``render.video`` cannot import ``audio``)."""
