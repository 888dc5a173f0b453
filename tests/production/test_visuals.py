"""The motion-graphics renderer, checked on its decoded output.

Renders are tiny (160x90 to 320x180, about a second) so the suite stays quick
on a shared two-core machine; every clip is decoded back with PyAV and judged
on its pixels.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageDraw
from scipy.spatial import cKDTree

from aiprod.production.backends.motion import (
    PALETTES,
    MotionRenderer,
    _upscale_into,
    palette_colors,
)
from aiprod.production.media.yuv import planes_of
from aiprod.production.models import (
    CameraMove,
    Fps,
    Palette,
    RenderSpec,
    Scene,
    UserMedia,
    VisualMotif,
    VisualStyle,
)
from aiprod.production.stages.visuals import SceneContext

Frames = list[NDArray[np.uint8]]
MOTIFS: tuple[VisualMotif, ...] = ("gradient", "particles", "geometric", "waves")


def spec(width: int = 160, height: int = 90, fps: Fps = 30) -> RenderSpec:
    return RenderSpec(width=width, height=height, fps=fps, quality="draft")


def context(
    render_spec: RenderSpec | None = None,
    *,
    palette: Palette | list[str] = "ocean",
    motif: VisualMotif = "gradient",
    title: str = "Solar Futures",
    seed: int = 11,
) -> SceneContext:
    return SceneContext(
        spec=render_spec or spec(),
        style=VisualStyle(palette=palette, motif=motif),
        title=title,
        scene_count=3,
        seed=seed,
    )


def scene(duration: float = 1.0, **kw: Any) -> Scene:
    kw.setdefault("index", 1)
    kw.setdefault("visual", "sunlit rooftops")
    return Scene(duration=duration, transition="cut", **kw)


def decode(path: Path) -> Frames:
    with av.open(str(path)) as container:
        return [
            np.asarray(f.to_ndarray(format="rgb24"), dtype=np.uint8)
            for f in container.decode(video=0)
        ]


def render(
    tmp_path: Path, sc: Scene, ctx: SceneContext, name: str = "clip", *, explicit: bool = True
) -> Frames:
    """Render and decode a scene.  `explicit` makes the context's style the scene's
    own, so it is honoured as given (these tests check palettes and motifs); the
    vocabulary's choices are tested in test_looks.py."""
    out = tmp_path / f"{name}.mp4"
    if explicit and sc.style is None:
        sc = sc.model_copy(update={"style": ctx.style})
    MotionRenderer().render(sc, ctx, out, lambda _: None)
    return decode(out)


def mad(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    """Mean absolute difference of two frames (0..255)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# ------------------------------------------------------------------- format


@pytest.mark.parametrize(
    ("width", "height", "fps", "duration"),
    [(160, 90, 30, 1.3), (90, 160, 25, 1.02), (96, 96, 24, 0.9), (320, 180, 24, 2.0)],
)
def test_exact_frame_count_size_and_rate(
    tmp_path: Path, width: int, height: int, fps: Fps, duration: float
) -> None:
    s = spec(width, height, fps)
    out = tmp_path / "clip.mp4"
    seen: list[float] = []
    MotionRenderer().render(
        scene(duration, on_screen_text="Count me"), context(s), out, seen.append
    )
    frames = decode(out)
    assert len(frames) == s.frames(duration) == round(duration * fps)
    assert all(f.shape == (height, width, 3) for f in frames)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.average_rate == Fraction(fps)
        assert stream.codec_context.pix_fmt == "yuv420p"
    assert seen
    assert seen == sorted(seen)
    assert seen[0] < 0.5
    assert seen[-1] == 1.0


def test_iter_frames_matches_the_encoded_clip(tmp_path: Path) -> None:
    sc, ctx = scene(1.0, on_screen_text="Same frames"), context(motif="waves")
    drawn = [f.to_ndarray(format="rgb24") for f in MotionRenderer().iter_frames(sc, ctx)]
    decoded = render(tmp_path, sc, ctx, explicit=False)
    assert len(drawn) == len(decoded) == 30
    # The mezzanine is near-lossless: decoded frames are the drawn ones.
    assert max(mad(a, b) for a, b in zip(drawn, decoded, strict=True)) < 1.5


# ------------------------------------------------------------------- motion


@pytest.mark.parametrize("motif", MOTIFS)
def test_backgrounds_move_smoothly(tmp_path: Path, motif: VisualMotif) -> None:
    frames = render(tmp_path, scene(1.0), context(motif=motif))
    steps = [mad(a, b) for a, b in itertools.pairwise(frames)]
    assert min(steps) > 0.03, "every frame should move"
    assert max(steps) < 3.0, "motion should be gradual, not flicker"
    assert mad(frames[0], frames[-1]) > 1.0, "a second of animation should add up"


@pytest.mark.parametrize("move", ["pan_left", "pan_right", "zoom_in", "zoom_out"])
def test_camera_moves_the_background(tmp_path: Path, move: CameraMove) -> None:
    ctx = context(spec(320, 180), motif="geometric")
    still = render(tmp_path, scene(1.0, camera="static"), ctx, "static")
    moved = render(tmp_path, scene(1.0, camera=move), ctx, move)
    # Same scene and seed: only the camera differs, and it shows at one end or
    # the other (a zoom out ends, and a zoom in starts, at the static framing).
    assert max(mad(still[0], moved[0]), mad(still[-1], moved[-1])) > 2.0


def test_pans_go_opposite_ways(tmp_path: Path) -> None:
    """Track the horizontal shift of the picture between the first and last frame."""
    ctx = context(spec(320, 180), motif="geometric")

    def shift(frames: Frames) -> int:
        a = frames[0].astype(float).mean(axis=(0, 2))
        b = frames[-1].astype(float).mean(axis=(0, 2))
        a, b = a - a.mean(), b - b.mean()
        lags = range(-40, 41)
        score = [float(np.dot(a[40:-40], np.roll(b, -lag)[40:-40])) for lag in lags]
        return lags[int(np.argmax(score))]

    left = shift(render(tmp_path, scene(2.0, camera="pan_left"), ctx, "l"))
    right = shift(render(tmp_path, scene(2.0, camera="pan_right"), ctx, "r"))
    assert right < 0 < left  # pan right: the world slides left, and vice versa


# ---------------------------------------------------------- motifs and palettes


def _palette_candidates(colors: list[tuple[int, int, int]]) -> NDArray[np.float64]:
    """Colours a palette can produce: mixes of any two of its colours, darkened by
    the vignette or brightened by glows."""
    c = np.array(colors, float)
    lam = np.linspace(0, 1, 11)[:, None]
    out = [
        np.clip((c[i] * lam + c[j] * (1 - lam)) * s, 0, 255)
        for i, j in itertools.combinations_with_replacement(range(len(c)), 2)
        for s in np.linspace(0.5, 1.25, 8)
    ]
    return np.concatenate(out)


def share_near_palette(frame: NDArray[np.uint8], palette: Palette | list[str]) -> float:
    """Fraction of (sampled) pixels within 30 RGB units of what the palette yields."""
    px = frame.reshape(-1, 3)[::5].astype(float)
    cand = _palette_candidates(palette_colors(palette))
    dist, _ = cKDTree(cand).query(px)  # nearest candidate (a k-d tree, not all pairs)
    return float((dist < 30).mean())


CONTRASTS: list[tuple[Palette | list[str], Palette | list[str]]] = [
    ("sunset", "ocean"),
    ("ocean", "sunset"),
    ("forest", "sunset"),
    ("pastel", "sunset"),
    ("neon", "pastel"),
    ("corporate", "forest"),
    ("mono", ["#ff2200", "#0033ff"]),
    (["#ff2200", "#0033ff"], "forest"),
]


@pytest.mark.parametrize("motif", MOTIFS)
def test_each_palette_gives_its_own_colours(tmp_path: Path, motif: VisualMotif) -> None:
    firsts: list[NDArray[np.uint8]] = []
    for i, (palette, other) in enumerate(CONTRASTS):
        frames = render(tmp_path, scene(0.6), context(palette=palette, motif=motif), f"p{i}")
        frame = frames[len(frames) // 2]
        assert frame.mean() > 20, f"{palette}: picture is (nearly) black"
        own, foreign = share_near_palette(frame, palette), share_near_palette(frame, other)
        assert own > 0.9, f"{motif}/{palette}: only {own:.0%} of pixels from the palette"
        assert foreign < 0.4, f"{motif}/{palette}: {foreign:.0%} would also fit {other}"
        firsts.append(frame)
    for a, b in itertools.combinations(firsts, 2):
        assert mad(a, b) > 5.0


def test_every_named_palette_is_covered() -> None:
    assert set(PALETTES) == {p for p, _ in CONTRASTS if isinstance(p, str)}
    assert all(3 <= len(c) <= 5 for c in PALETTES.values())


def test_motifs_look_different(tmp_path: Path) -> None:
    frames = [render(tmp_path, scene(0.6), context(motif=m), m)[5] for m in MOTIFS]
    for a, b in itertools.combinations(frames, 2):
        assert mad(a, b) > 5.0


# --------------------------------------------------------------------- text

WORDS = "Sunlight powers every home"


def ink(frame: NDArray[np.uint8], reference: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """Pixels much brighter in every channel than in the same scene without text.

    White text is the only thing that brightens a pixel this way: the scrim
    behind text only ever darkens the background.
    """
    brighter = (frame.astype(np.int16) - reference.astype(np.int16)) > 60
    return np.asarray(brighter.all(axis=2), dtype=np.bool_)


def test_on_screen_text_appears_word_by_word_and_fades(tmp_path: Path) -> None:
    ctx = context(spec(320, 180), motif="particles")
    plain = render(tmp_path, scene(2.0), ctx, "plain")
    text = render(tmp_path, scene(2.0, on_screen_text=WORDS), ctx, "text")
    held = int(len(text) * 0.7)
    letters = ink(text[held], plain[held])
    assert letters.sum() > 300
    rows = np.nonzero(letters.any(axis=1))[0]
    assert 40 < rows.mean() < 100  # a little above the middle, clear of subtitles
    # Outside the text area the picture is the same scene.
    assert mad(text[held][:15], plain[held][:15]) < 3.0
    # Early on the first word is in but the last is not: ink on the left only.
    early = np.nonzero(ink(text[15], plain[15]).any(axis=0))[0]
    full = np.nonzero(letters.any(axis=0))[0]
    assert len(early) > 0
    assert early.min() < full.min() + 5
    assert early.max() < full.max() - 40
    # Gone before the scene ends.
    assert ink(text[-1], plain[-1]).sum() == 0
    assert mad(text[-1], plain[-1]) < 1.5


@pytest.mark.parametrize(("width", "height"), [(180, 320), (180, 180)])
def test_text_wraps_inside_narrow_frames(tmp_path: Path, width: int, height: int) -> None:
    ctx = context(spec(width, height), motif="waves", palette="neon")
    words = "A rather long line of on screen text that must wrap"
    plain = render(tmp_path, scene(1.5), ctx, "plain")
    text = render(tmp_path, scene(1.5, on_screen_text=words), ctx, "text")
    held = int(len(text) * 0.7)
    letters = ink(text[held], plain[held])
    rows = np.nonzero(letters.any(axis=1))[0]
    cols = np.nonzero(letters.any(axis=0))[0]
    assert letters.sum() > 150
    lines = 1 + int((np.diff(rows) > 2).sum())  # runs of inked rows
    assert lines >= 2
    assert cols.min() >= 4
    assert cols.max() <= width - 5  # not clipped at the sides


def test_title_card_shows_the_title(tmp_path: Path) -> None:
    s = spec(320, 180)

    def card(title: str, subtitle: str = "") -> Frames:
        sc = scene(1.5, kind="title", on_screen_text=subtitle)
        return render(tmp_path, sc, context(s, title=title), f"{title}-{subtitle}")

    blank, short, long_ = card(""), card("Hi"), card("A Much Longer Title")
    mid = int(len(short) * 0.65)
    short_ink = ink(short[mid], blank[mid]).sum()
    assert short_ink > 30
    assert ink(long_[mid], blank[mid]).sum() > short_ink * 3
    # The subtitle line (on-screen text) comes in below the title.
    # The block (title, rule, subtitle) grows taller and gains letters.
    with_sub = card("Hi", "and a subtitle")
    sub_ink, title_ink = ink(with_sub[mid], blank[mid]), ink(short[mid], blank[mid])
    sub_rows = np.nonzero(sub_ink.any(axis=1))[0]
    title_rows = np.nonzero(title_ink.any(axis=1))[0]
    assert sub_ink.sum() > title_ink.sum() + 80
    assert np.ptp(sub_rows) > np.ptp(title_rows) + 10
    # A title card fades out for the transition into the first scene.
    assert ink(short[-1], blank[-1]).sum() == 0


def test_end_card_shows_the_title_to_the_last_frame(tmp_path: Path) -> None:
    s = spec(320, 180)

    def card(title: str, text: str = "") -> Frames:
        sc = scene(1.2, kind="end", on_screen_text=text)
        return render(tmp_path, sc, context(s, title=title), f"{title}-{text}")

    blank, end, bye = card(""), card("Goodbye Title"), card("Bye")
    assert ink(end[-1], blank[-1]).sum() > 100
    assert ink(end[-1], blank[-1]).sum() > ink(bye[-1], blank[-1]).sum() * 2
    thanks = card("Goodbye Title", "Thanks for watching")
    assert ink(thanks[-1], blank[-1]).sum() > ink(end[-1], blank[-1]).sum()


# -------------------------------------------------------------- user media


def _photo(path: Path) -> Path:
    """A blue photo with grey stripes and one pure red block left of centre."""
    img = Image.new("RGB", (640, 480), (30, 60, 140))
    draw = ImageDraw.Draw(img)
    for x in range(0, 640, 40):
        draw.line((x, 0, x, 480), fill=(150, 150, 150), width=3)
    draw.rectangle((200, 170, 320, 290), fill=(255, 0, 0))
    img.save(path)
    return path


def _red(frame: NDArray[np.uint8]) -> NDArray[np.bool_]:
    f = frame.astype(int)
    return (f[..., 0] > 180) & (f[..., 1] < 80) & (f[..., 2] < 80)


@pytest.mark.parametrize("move", ["pan_left", "pan_right", "zoom_in", "zoom_out", "static"])
def test_ken_burns_shows_the_photo_moving(tmp_path: Path, move: CameraMove) -> None:
    media = UserMedia(scene=1, path=_photo(tmp_path / "photo.png"))
    frames = render(tmp_path, scene(1.5, camera=move, media=media), context(spec(320, 180)))
    first, last = _red(frames[0]), _red(frames[-1])
    assert first.sum() > 500
    assert last.sum() > 500
    # Cover-fit: the photo reaches every edge (no bars).
    for frame in (frames[0], frames[-1]):
        edges = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])
        assert edges.astype(int).sum(axis=1).min() > 60
    x0 = np.nonzero(first)[1].mean()
    x1 = np.nonzero(last)[1].mean()
    # Smooth: the block drifts at most a few pixels and grows a little per frame.
    centres = [np.nonzero(_red(f))[1].mean() for f in frames]
    areas = [int(_red(f).sum()) for f in frames]
    assert max(abs(b - a) for a, b in itertools.pairwise(centres)) < 3.0
    assert max(abs(b / a - 1) for a, b in itertools.pairwise(areas)) < 0.05
    if move == "pan_right":
        assert x1 < x0 - 10
    elif move == "pan_left":
        assert x1 > x0 + 10
    elif move in ("zoom_in", "static"):
        assert last.sum() > first.sum() * (1.1 if move == "zoom_in" else 1.03)
    else:
        assert last.sum() < first.sum() / 1.1


def test_text_is_drawn_over_user_media(tmp_path: Path) -> None:
    media = UserMedia(scene=1, path=_photo(tmp_path / "photo.png"))
    ctx = context(spec(320, 180))
    plain = render(tmp_path, scene(1.5, media=media), ctx, "plain")
    text = render(tmp_path, scene(1.5, media=media, on_screen_text=WORDS), ctx, "text")
    held = int(len(text) * 0.7)
    assert ink(text[held], plain[held]).sum() > 200
    assert mad(text[-1], plain[-1]) < 1.5


def _video(path: Path, levels: list[int], fps: int, size: tuple[int, int] = (320, 240)) -> Path:
    """A clip whose frame k is a flat grey of levels[k] (with a white corner mark)."""
    w, h = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "10"}
        for k, level in enumerate(levels):
            frame = np.full((h, w, 3), level, np.uint8)
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = k
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _levels(frames: Frames) -> list[int]:
    return [round(float(f[5:25, 5:25].mean())) for f in frames]


def test_short_video_loops_seamlessly(tmp_path: Path) -> None:
    source = [30, 70, 110, 150, 190]  # 0.5 s at 10 fps
    media = UserMedia(scene=1, path=_video(tmp_path / "short.mp4", source, 10))
    frames = render(tmp_path, scene(1.5, media=media), context(spec(160, 90)))
    assert len(frames) == 45
    seen = _levels(frames)
    expected = [source[(i // 3) % 5] for i in range(45)]  # each source frame lasts 3 frames
    assert all(abs(a - b) <= 4 for a, b in zip(seen, expected, strict=True)), seen
    assert min(seen) > 20  # never a black gap at the loop point


def test_long_video_is_trimmed(tmp_path: Path) -> None:
    source = [20 + 7 * k for k in range(30)]  # 3 s at 10 fps, a ramp
    media = UserMedia(scene=1, path=_video(tmp_path / "long.mp4", source, 10))
    frames = render(tmp_path, scene(1.0, media=media), context(spec(160, 90)))
    assert len(frames) == 30
    seen = _levels(frames)
    assert abs(seen[0] - source[0]) <= 4
    assert abs(seen[-1] - source[9]) <= 4  # the first second only
    assert max(seen) < source[12]


def test_video_of_another_shape_and_rate_is_cover_fitted(tmp_path: Path) -> None:
    media = UserMedia(scene=1, path=_video(tmp_path / "tall.mov", [200] * 12, 24, (120, 200)))
    frames = render(tmp_path, scene(1.0, media=media), context(spec(160, 90, 25)))
    assert len(frames) == 25
    assert all(f.shape == (90, 160, 3) for f in frames)
    assert min(int(f.min()) for f in frames) > 180  # no bars anywhere


def test_missing_media_raises_value_error_naming_the_file(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    for name in ("nowhere.png", "nowhere.mp4"):
        media = UserMedia(scene=1, path=tmp_path / name)
        with pytest.raises(ValueError, match=re.escape(name)):
            MotionRenderer().render(scene(1.0, media=media), context(), out, lambda _: None)
    assert not out.exists()


@pytest.mark.parametrize("name", ["broken.jpg", "broken.mp4", "broken.webm"])
def test_unreadable_media_raises_value_error_naming_the_file(tmp_path: Path, name: str) -> None:
    bad = tmp_path / name
    bad.write_bytes(b"this is not media at all" * 40)
    out = tmp_path / "clip.mp4"
    with pytest.raises(ValueError, match=re.escape(name)):
        MotionRenderer().render(
            scene(1.0, media=UserMedia(scene=1, path=bad)), context(), out, lambda _: None
        )
    assert not out.exists()


def test_audio_only_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "sound.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        samples = np.zeros((1, 4096), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 48000
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(ValueError, match=re.escape("sound.mp4")):
        MotionRenderer().render(
            scene(1.0, media=UserMedia(scene=1, path=path)),
            context(),
            tmp_path / "clip.mp4",
            lambda _: None,
        )


# -------------------------------------------------------------- determinism


def test_same_inputs_same_pixels(tmp_path: Path) -> None:
    sc = scene(1.0, on_screen_text="Deterministic")
    a = render(tmp_path, sc, context(motif="particles"), "a")
    b = render(tmp_path, sc, context(motif="particles"), "b")
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_seed_index_and_description_vary_the_picture() -> None:
    def first(sc: Scene, ctx: SceneContext) -> NDArray[np.uint8]:
        frame = next(iter(MotionRenderer().iter_frames(sc, ctx)))
        return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)

    base = first(scene(1.0), context(motif="geometric"))
    assert np.array_equal(base, first(scene(1.0), context(motif="geometric")))
    assert mad(base, first(scene(1.0), context(motif="geometric", seed=12))) > 2
    assert mad(base, first(scene(1.0, index=2), context(motif="geometric"))) > 2
    assert mad(base, first(scene(1.0, visual="a forest"), context(motif="geometric"))) > 2


def test_backend_identity() -> None:
    renderer = MotionRenderer()
    assert renderer.name == "motion"
    assert renderer.version == "3"


def test_prefetch_keeps_order_forwards_errors_and_stops_early() -> None:
    from aiprod.production.backends.motion import _prefetch

    assert list(_prefetch(iter(range(50)), depth=3)) == list(range(50))

    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("broken frame")

    got: list[int] = []
    with pytest.raises(ValueError, match="broken frame"):
        got.extend(_prefetch(failing(), depth=2))
    assert got == [1]

    closed: list[bool] = []

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.append(True)

    stream = _prefetch(endless(), depth=2)
    assert next(stream) == 0
    assert next(stream) == 1
    stream.close()  # the helper stops and closes the source on its own thread
    assert closed == [True]


def test_frame_helpers_cover_fit() -> None:
    from aiprod.production.media.frames import (
        center_crop,
        cover_box,
        cover_fit,
        cover_size,
        hex_to_rgb,
    )

    assert cover_size(400, 300, 160, 90) == (160, 120)  # 4:3 into 16:9: height overflows
    assert cover_size(100, 400, 160, 90) == (160, 640)
    assert cover_box(400, 300, 160, 90) == (0.0, 37.5, 400.0, 262.5)
    # A wide image loses its sides, keeps its middle.
    img = Image.new("RGB", (400, 100), (0, 0, 255))
    ImageDraw.Draw(img).rectangle((150, 0, 249, 99), fill=(255, 0, 0))
    fitted = cover_fit(img, 100, 100)
    assert fitted.size == (100, 100)
    assert np.asarray(fitted)[50, 50].tolist() == [255, 0, 0]
    crop = center_crop(np.zeros((10, 20, 3), np.uint8), 6, 4)
    assert crop.shape == (4, 6, 3)
    assert hex_to_rgb("#0a0B0c") == (10, 11, 12)


@pytest.mark.parametrize(("width", "height"), [(160, 90), (161, 91)])
def test_upscale_into_fills_every_plane(width: int, height: int) -> None:
    """Low-resolution Y, U, V go bilinearly to the chroma size, luma is then
    pixel-doubled; even sizes take the 16-bit fast path, odd ones the fallback,
    and both must give the same picture."""
    low = np.zeros((3, 23, 40), np.uint8)
    for k, (left, right) in enumerate(((30, 200), (140, 90), (110, 160))):
        low[k, :, :20], low[k, :, 20:] = left, right
    frame = av.VideoFrame(width, height, "yuv420p")
    planes = planes_of(frame, writable=True)
    for p in planes:
        p[...] = 7  # anything left unwritten shows up
    _upscale_into(low, planes)
    y, u, v = planes
    ch, cw = u.shape
    half = [
        np.asarray(Image.fromarray(low[k], "L").resize((cw, ch), Image.Resampling.BILINEAR))
        for k in range(3)
    ]
    expected_y = half[0].repeat(2, axis=0).repeat(2, axis=1)[:height, :width]
    assert np.array_equal(y, expected_y)
    assert np.array_equal(u, half[1]) and np.array_equal(v, half[2])
    assert y[height // 2, 5] == 30 and y[height // 2, width - 5] == 200
    assert u[ch // 2, 2] == 140 and v[ch // 2, cw - 2] == 160
    assert 30 < int(y[height // 2, 78]) < 200  # interpolated across the edge, not blocky
