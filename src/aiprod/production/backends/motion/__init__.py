"""Procedural motion graphics: the built-in visuals backend.

Every scene becomes a clip of animated background (by palette and motif), a
camera move, kinetic typography and, when the user supplied one, their photo
(Ken Burns) or video (cover-fitted, trimmed or looped).  No models, no GPU, no
network: everything is drawn with NumPy and Pillow and is deterministic for a
seed, a scene index and the scene's visual description.

The package is split along the renderer's layers:

- `palettes`: the named palettes, colour lookup tables, luminance tests;
- `backgrounds`: the camera and the procedural backgrounds (one per motif);
- `media`: the user's photo (Ken Burns) or video (looped) as the base layer;
- `text`: kinetic typography, accent bars, font fitting, easing;
- `renderer`: `MotionRenderer`, which composes them into frames and encodes.

Speed is a design constraint, not an afterthought: the whole pipeline must stay
within 1.5× of a plain x264 encode, which leaves this renderer a few
milliseconds per 1080p frame.  Hence:

- frames are drawn straight into yuv420p, the encoder's own format: an RGB
  frame costs a libswscale conversion that is dearer than encoding it (5.8 ms
  against 5.2 ms at 720p) and twice the bytes to upscale and copy;
- backgrounds are computed in RGB at a quarter of the frame's linear
  resolution, where a full-frame NumPy operation costs ~20 µs, converted to
  Y, U and V there, and upscaled in C: bilinear to half size, which is the
  chroma planes' size, then pixel-doubled for luma (`_upscale_into`).  Fields
  are mostly separable (a function of x plus a function of y), so they are
  built from 1-D arrays by broadcasting;
- colours come from lookup tables indexed by a scalar field, so the palette
  costs one gather per frame whatever its size;
- the camera move is applied analytically to the coordinates the field is
  evaluated at, which is free and never reveals an edge;
- text is rendered once per word into sprites, converted once to Y/U/V planes
  with alpha, and blended only inside each sprite's box
  (`aiprod.production.media.yuv`).
"""

from aiprod.production.backends.motion.palettes import PALETTES, palette_colors
from aiprod.production.backends.motion.renderer import MotionRenderer
from aiprod.production.backends.motion.renderer import _prefetch as _prefetch
from aiprod.production.backends.motion.renderer import _upscale_into as _upscale_into

__all__ = ["PALETTES", "MotionRenderer", "palette_colors"]
