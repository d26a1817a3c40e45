"""TensorFlow/Keras backend (the default). Importing any engine.tf module imports TensorFlow: only job processes do.

TF's C++ logging is silenced here, before the first ``import tensorflow`` of the package, so that a job's
stdout/stderr carry only what Pinnacle writes (an operator's explicit TF_CPP_MIN_LOG_LEVEL wins).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
