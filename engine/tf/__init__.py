"""TensorFlow/Keras backend (the default). Its modules import TensorFlow (only job processes do), except the light
``checkpoints.py`` that the command line uses before a job starts.

TF's C++ logging is silenced here, before the first ``import tensorflow`` of the package, so that a job's
stdout/stderr carry only what Pinnacle writes (an operator's explicit TF_CPP_MIN_LOG_LEVEL wins).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
