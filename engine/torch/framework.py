"""Imports torch, the backend's main framework (engine/backends.py load_backend imports each backend's
``framework`` module first). Nothing to work around here; the TensorFlow backend's twin keeps pyplot out."""
import torch

__all__ = ["torch"]
