"""PyTorch/Lightning backend. Its modules import torch (only job processes do), except the light ``checkpoints.py``
that the command line uses before a job starts.

OpenMP's idle threads spin before they sleep (libgomp: 300,000 turns unless told otherwise). With another process
on one of two cores, a spinning thread keeps its core from the thread everyone waits for at the next barrier: a
training epoch took 2.9× its quiet time there, against 1.8× for TensorFlow. 3,000 turns cut that to 2.45× and
changed the quiet time by less than run-to-run noise (−4 % to +8 %); ``OMP_WAIT_POLICY=PASSIVE`` (no spinning) cut
it further but cost 35 % on a quiet machine (benchmarks/bench_load.py, docs/performance.md "Under load"). Set here,
before torch loads libgomp; an operator's own GOMP_SPINCOUNT or OMP_WAIT_POLICY wins.
"""
import os

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "3000")
