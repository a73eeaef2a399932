"""Compare a browser screenshot with a reference image committed in ``tests/screenshots/``.

Two renders of the same page on the same machine are identical; what differs
between machines (or Chromium and font versions) is anti-aliasing and glyph
hinting: a pixel or two along every edge, by a little. A layout change moves
whole boxes and lines of text. So the comparison:

- fails when the size differs by more than ``SIZE_SLACK`` px (a box grew,
  shrank, or the page reflowed);
- blurs both images by one pixel (an edge that moved half a pixel is then
  nearly the same), then cuts them in ``TILE`` x ``TILE`` squares and fails
  when any square has more than ``TILE_SHARE`` of its pixels off by more than
  ``PIXEL_DELTA`` (0-255, the largest of R, G and B). A moved or resized box,
  a changed word or a new line fails the squares it touches; noise spread
  thinly along edges does not fill a square. A share of the whole image
  would not do: a moved label is a tiny share of a tall page.

How the numbers were chosen (this module's four shots of the report, Chromium
156, measured against the references): the same page rendered again is
identical (0); text rendered another way (``--disable-font-subpixel-positioning``,
what another machine's font stack does) fills at most 8.7% of a square and
changes a size by 2 px; a word changed fills 29%, a box's border 3 px instead of
1 fills 17%. So 12% and 3 px: above the noise with a margin, below the smallest
real change. Text nudged by 1 or 2 px (9.9% at most) passes, as font noise
does: a pixel is not a layout change, 4 px of height is. What pixels cannot
see (a faint colour, a preview 10 px narrower on a light background: at most
17 of 255) the tests measure in the browser instead (iframe width, font sizes).

Refresh the references after an intended change with
``JOURNEY_UPDATE_SCREENSHOTS=1 pytest tests/test_report_screens.py`` and commit
the images (see docs/review.md). On a failure the actual image and a diff
(changed squares in red) are written beside the test's temporary folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

REFERENCES = Path(__file__).parent / "screenshots"
UPDATE_ENV = "JOURNEY_UPDATE_SCREENSHOTS"
SIZE_SLACK = 3  # px of width or height
TILE = 24  # px
PIXEL_DELTA = 64  # of 255, after the blur
TILE_SHARE = 0.12  # of a tile's pixels


@dataclass
class Comparison:
    size_ok: bool
    bad_tiles: list[tuple[int, int, float]]  # (x, y, share of pixels off) of every failing tile
    worst: float  # the largest share of any tile

    @property
    def ok(self) -> bool:
        return self.size_ok and not self.bad_tiles


def compare(reference: Image.Image, actual: Image.Image) -> Comparison:
    """How far ``actual`` is from ``reference`` (see the module docstring for the rule)."""
    (rw, rh), (aw, ah) = reference.size, actual.size
    size_ok = abs(rw - aw) <= SIZE_SLACK and abs(rh - ah) <= SIZE_SLACK
    width, height = min(rw, aw), min(rh, ah)
    blur = ImageFilter.GaussianBlur(1)
    a = reference.convert("RGB").crop((0, 0, width, height)).filter(blur)
    b = actual.convert("RGB").crop((0, 0, width, height)).filter(blur)
    channels = ImageChops.difference(a, b).split()
    delta = ImageChops.lighter(ImageChops.lighter(channels[0], channels[1]), channels[2])
    off = delta.point(lambda value: 255 if value > PIXEL_DELTA else 0)
    bad, worst = [], 0.0
    for y in range(0, height, TILE):
        for x in range(0, width, TILE):
            tile = off.crop((x, y, min(x + TILE, width), min(y + TILE, height)))
            pixels = tile.size[0] * tile.size[1]
            share = tile.histogram()[255] / pixels if pixels else 0.0
            worst = max(worst, share)
            if share > TILE_SHARE:
                bad.append((x, y, share))
    return Comparison(size_ok, bad, worst)


def diff_image(reference: Image.Image, actual: Image.Image, comparison: Comparison) -> Image.Image:
    """The actual image with every failing tile outlined in red."""
    marked = actual.convert("RGB")
    draw = ImageDraw.Draw(marked)
    for x, y, _ in comparison.bad_tiles:
        draw.rectangle((x, y, x + TILE - 1, y + TILE - 1), outline=(255, 0, 0), width=2)
    return marked


def assert_matches_reference(png: bytes, name: str, failures: Path) -> None:
    """Fail unless the screenshot ``png`` matches ``tests/screenshots/<name>.png``; refresh it when asked to."""
    actual = Image.open(BytesIO(png))
    reference_path = REFERENCES / f"{name}.png"
    if os.environ.get(UPDATE_ENV) == "1":
        REFERENCES.mkdir(exist_ok=True)
        actual.save(reference_path, optimize=True)
        return
    if not reference_path.exists():
        raise AssertionError(f"no reference image {reference_path}: run with {UPDATE_ENV}=1 to write it, then commit it")
    reference = Image.open(reference_path)
    comparison = compare(reference, actual)
    if comparison.ok:
        return
    failures.mkdir(parents=True, exist_ok=True)
    actual.save(failures / f"{name}.actual.png")
    diff_image(reference, actual, comparison).save(failures / f"{name}.diff.png")
    what = (f"size {actual.size} vs reference {reference.size}" if not comparison.size_ok
            else f"{len(comparison.bad_tiles)} tile(s) of {TILE}px changed (worst {comparison.worst:.0%} of a tile)")
    raise AssertionError(f"screenshot {name} differs from {reference_path}: {what}; actual and diff in {failures}. "
                         f"If the change is intended: {UPDATE_ENV}=1 pytest tests/test_report_screens.py, then commit")
