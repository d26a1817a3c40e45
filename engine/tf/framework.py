"""The one place the TensorFlow backend imports TensorFlow and Keras — without matplotlib.pyplot.

``import tensorflow`` imports Keras, and Keras imports ``matplotlib.pyplot`` at module level for one gallery helper
(keras.src.visualization.plot_image_gallery, which falls back to ``plt = None`` when the import fails). pyplot with
its projections costs ~0.4–0.5 s of a cold ``pinnacle infer`` on two cores (issue 17: the target is 5 s) and Pinnacle
never uses it (engine/preview.py draws with matplotlib.figure.Figure and Agg). So the first import here blocks
pyplot for its duration only: the block is lifted at once, and a process that imports pyplot later (a notebook, a
test) gets it normally. Keras's image-gallery helper is the only thing left without pyplot in that process.
"""
from __future__ import annotations

import sys

_PYPLOT = "matplotlib.pyplot"


def _import_frameworks():
    blocked = _PYPLOT not in sys.modules  # already imported: nothing to save, nothing to block
    if blocked:
        sys.modules[_PYPLOT] = None  # makes `import matplotlib.pyplot` raise ImportError, which Keras catches
    try:
        import keras
        import tensorflow
    finally:
        if blocked and sys.modules.get(_PYPLOT, "") is None:
            del sys.modules[_PYPLOT]
    return tensorflow, keras


tf, keras = _import_frameworks()

__all__ = ["keras", "tf"]
