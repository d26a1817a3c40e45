"""engine/preview.py: the fixed layout of the PNG previews and their titles."""
from __future__ import annotations

import numpy as np
import pytest

from engine.preview import FIGSIZE, MARGINS, TITLE_CHARS, layout, wrap_title, write_previews


@pytest.mark.parametrize("shape", [(232, 232), (120, 300), (300, 90), (1, 1)])
def test_layout_keeps_square_pixels_and_a_bar_as_tall_as_the_image(shape):
    (x, y, w, h), (bx, by, bw, bh) = layout(shape)
    fw, fh = FIGSIZE
    # square pixels: inches per column equal inches per row
    assert w * fw / shape[1] == pytest.approx(h * fh / shape[0], rel=1e-12)
    # inside the margins, and one side fills its room
    assert x * fw >= MARGINS["left"] - 1e-9 and y * fh >= MARGINS["bottom"] - 1e-9
    assert (y + h) * fh <= fh - MARGINS["top"] + 1e-9
    assert (bx + bw) * fw <= fw - MARGINS["right"] + 0.12 + 0.15 + 1e-9
    room_w = fw - MARGINS["left"] - MARGINS["right"]
    room_h = fh - MARGINS["bottom"] - MARGINS["top"]
    assert max(w * fw / room_w, h * fh / room_h) == pytest.approx(1.0)
    # the colour bar: right of the image, as tall as it, same bottom
    assert bx > x + w and (by, bh) == (y, h)


def test_wrap_title_breaks_at_separators_and_keeps_short_titles_whole():
    short = "20261203-200652-d939-infer · pinn · torch"
    assert wrap_title(short) == short
    long = "20261203-200652-d939-reconstruct · hybrid · tensorflow · bundle by tensorflow, 60 epochs"
    lines = wrap_title(long).split("\n")
    assert lines == ["20261203-200652-d939-reconstruct · hybrid · tensorflow", "bundle by tensorflow, 60 epochs"]
    assert all(len(line) <= TITLE_CHARS for line in lines)
    assert wrap_title("x" * 100) == "x" * 100  # one part longer than a line stays whole


def test_write_previews_writes_two_pngs_of_the_figure_size(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    obj = (1 + 0.1 * rng.standard_normal((40, 60))) * np.exp(0.3j * rng.standard_normal((40, 60)))
    paths = write_previews(tmp_path, obj, metrics={"amplitude": {"ssim": 0.5}}, title="run · pinn · torch")
    assert sorted(paths) == ["amplitude", "phase"]
    for path in paths.values():
        with Image.open(path) as im:
            assert im.size == (round(FIGSIZE[0] * 100), round(FIGSIZE[1] * 100))
    assert not list(tmp_path.glob(".*.tmp.png"))  # written through a temporary name, nothing left behind
