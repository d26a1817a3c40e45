"""What a rank other than 0 runs: the same training, silent — rank 0 alone owns the run (engine/distributed.py) — or
its shard of an inference, sent to rank 0 (engine/shards.py).

Two ways in: ``python -m engine.replica SPEC`` from the local launcher (engine/launcher.py), or ``pinnacle train``
(``infer``) itself under srun/torchrun, where engine.pipeline.train_job (engine.inference.infer_job) finds a rank
other than 0 and calls ``train_replica`` (``infer_replica``).
No run directory, no events, no bundle; checkpoints only through the backend's rank-0 rule. The exit code is the
rank's own (0, or 1 with the traceback on stderr, which the launcher reports).
"""
from __future__ import annotations

import os
import json
import signal
import sys
import threading
import time
from pathlib import Path

from engine.distributed import Topology


class SilentHooks:
    """TrainHooks that report nothing; the stop decision comes from rank 0 through the training step."""

    def on_train_start(self, epochs: int, batches_per_epoch: int) -> None:
        pass

    def on_batch_end(self, epoch: int, batch: int, batches: int, loss: float, samples: int) -> None:
        pass

    def on_epoch_end(self, *args, **kwargs) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def train_replica(ds, cfg, backend, topology: Topology, resume_path: Path | None, accelerator: str, devices) -> int:
    """Prepare the same groups and split as rank 0 (deterministic from the config) and train as ``topology.rank``."""
    from engine.pipeline import prepare_training
    from engine.weights import init_weights

    _ignore_sigint()  # rank 0 decides; the stop travels with the training step, so every rank stops on the same one
    data, consts = prepare_training(ds, cfg)  # the scales and groups rank 0's input check computed, computed again
    result = backend.train(cfg, data, consts, init_weights(cfg.model, cfg.training.seed), SilentHooks(), None,
                           resume_path, accelerator=accelerator, devices=devices, replicas=topology)
    return 0 if result.status in ("ok", "cancelled") else 1


def infer_replica(bundle, ds, backend, batch_size: int, topology: Topology, accelerator: str, prepared=None) -> int:
    """Predict this rank's shard of the groups (the same groups as rank 0's, deterministic from the bundle) and send
    the patches to rank 0 (engine/shards.py). Ends quietly (0) when rank 0 has closed the connection."""
    from engine.distributed import span
    from engine.reconstruction import Network, pinn_inputs
    from engine.shards import RankZeroGone, ShardSender

    _ignore_sigint()
    sender = ShardSender(topology)  # connected first: from here rank 0 sees this rank alive, or its death
    try:
        consts, groups, x = pinn_inputs(Network.of(bundle), ds, prepared)
        part = span(len(x), topology.rank, topology.world)
        offsets = None if groups.offsets is None else groups.offsets[part]
        sender.send(backend.predict(bundle.run_config.model, bundle.weights, consts, x[part], offsets, batch_size,
                                    progress=sender.progress, accelerator=accelerator, replicas=topology))
    except RankZeroGone:
        pass
    finally:
        sender.close()
    return 0


def _ignore_sigint() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is rank 0's to decide; it stops the other ranks


def _watch_launcher(pid: int) -> None:
    """Exit when the launcher has gone (its children would otherwise wait for a collective's timeout)."""
    def watch() -> None:
        while os.getppid() == pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    from engine.backends import load_backend
    from engine.distributed import from_env
    from engine.pipeline import load_data

    from engine.config import from_dict
    from engine.formats.geometry import ScanOptions

    spec = json.loads(Path(argv[0]).read_text())
    if os.environ.get("PINNACLE_LAUNCHER_PID"):
        _watch_launcher(int(os.environ["PINNACLE_LAUNCHER_PID"]))
    topology = from_env()
    options = ScanOptions(**spec["options"]) if spec["options"] is not None else None
    if spec.get("kind") == "infer":
        from engine.bundle import load_bundle

        bundle = load_bundle(spec["bundle"])
        ds = load_data(spec["data_path"], require_probe=False, N=bundle.run_config.model.N, options=options)
        return infer_replica(bundle, ds, load_backend(spec["backend"]), spec["batch_size"], topology,
                             spec["accelerator"])
    cfg = from_dict(spec["cfg"])
    resume = Path(spec["resume_path"]) if spec["resume_path"] is not None else None
    ds = load_data(spec["data_path"], require_probe=True, options=options)
    return train_replica(ds, cfg, load_backend(cfg.backend), topology, resume, spec["accelerator"], spec["devices"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
