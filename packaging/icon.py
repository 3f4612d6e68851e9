"""The extension's and the task's icon, drawn here from shapes (no third-party artwork).

A key whose bow is a token's ring, on a rounded square in a blue gradient: credentials from a token.
It is drawn four times larger than needed and scaled down, which smooths every edge. ``make package``
writes it as a 128x128 PNG to the extension's ``images/icon.png`` (the marketplace icon, vss-extension.json
``icons.default``) and to the task folder's ``icon.png`` (the task's icon in the pipeline editor).

``python packaging/icon.py out.png`` writes it alone, to look at.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image as PilImage

SIZE = 128
SCALE = 4
TOP = (0, 120, 212)  # the gradient's top colour
BOTTOM = (0, 69, 135)
INK = (255, 255, 255)
ACCENT = (120, 220, 160)  # the short-lived arc


def draw() -> PilImage:
    """The icon as a Pillow image (RGBA, SIZE x SIZE)."""
    from PIL import Image, ImageDraw

    big = SIZE * SCALE

    def s(value: float) -> int:
        return round(value * SCALE)

    gradient = Image.new("RGBA", (big, big))
    pen = ImageDraw.Draw(gradient)
    for y in range(big):
        t = y / (big - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(TOP, BOTTOM))
        pen.line([(0, y), (big, y)], fill=(*colour, 255))
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).rounded_rectangle([0, 0, big - 1, big - 1], radius=s(24), fill=255)
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    image.paste(gradient, (0, 0), mask)

    pen = ImageDraw.Draw(image)
    # the bow: a ring (the token) with a hole, upper left
    cx, cy, outer, inner = 46, 50, 26, 12
    pen.ellipse([s(cx - outer), s(cy - outer), s(cx + outer), s(cy + outer)], fill=INK)
    pen.ellipse([s(cx - inner), s(cy - inner), s(cx + inner), s(cy + inner)], fill=(*BOTTOM, 255))
    # an open arc round the bow: short-lived
    pen.arc(
        [s(cx - outer - 8), s(cy - outer - 8), s(cx + outer + 8), s(cy + outer + 8)],
        start=150,
        end=300,
        fill=ACCENT,
        width=s(5),
    )
    # the shaft, to the lower right, and its two teeth
    shaft = 9
    pen.rounded_rectangle([s(cx + outer - 4), s(cy - shaft / 2), s(112), s(cy + shaft / 2)], radius=s(3), fill=INK)
    pen.rectangle([s(92), s(cy + shaft / 2 - 1), s(100), s(cy + 22)], fill=INK)
    pen.rectangle([s(104), s(cy + shaft / 2 - 1), s(112), s(cy + 16)], fill=INK)
    # a dotted line under the key: the token it was traded from
    for x in range(24, 108, 14):
        pen.rounded_rectangle([s(x), s(100), s(x + 8), s(106)], radius=s(3), fill=(*INK, 200))
    return image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def write(*paths: Path) -> list[Path]:
    """Write the icon to each path (folders created); returns them."""
    image = draw()
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, format="PNG", optimize=True)
    return list(paths)


if __name__ == "__main__":
    write(*(Path(arg) for arg in sys.argv[1:] or ["icon.png"]))
