"""tf.distribute for engine/tf/backend.py's ``train``: the strategy for a topology, and the replicated training step.

- several processes (engine/distributed.py's Topology): ``MultiWorkerMirroredStrategy``, one worker per process
  (one CPU replica each, or all of a node's GPUs), the cluster from ``TF_CONFIG`` when set, else the topology's
  ports on one node, else ``srun``'s node list (SlurmClusterResolver);
- one process, several GPUs: ``MirroredStrategy`` over them.

The strategy must exist before TensorFlow runs its first op (collective ops are configured at start-up), so
``train`` makes it first. Every replica takes its slice of each global batch (engine.distributed.shard); its
gradient is weighted by its share and Keras' optimizer sums the replicas' gradients (an all-reduce inside
``apply_gradients``): the step is the global batch's mean-loss step, as in one process.
"""
from __future__ import annotations

import os

import numpy as np

from engine.tf.framework import tf  # first: imports TF without matplotlib.pyplot
from engine.distributed import Topology, barrier, device_count, shard
from engine.errors import InputError


def make_strategy(replicas: Topology | None, accelerator: str, devices) -> tf.distribute.Strategy | None:
    """The strategy for this training; None for one replica (the plain, unwrapped path)."""
    if replicas is not None and replicas.world > 1:
        resolver = cluster_resolver(replicas)
        barrier(replicas)  # registration below waits without end, holding the interpreter: meet first
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=replicas.timeout_s)
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)
    n = device_count(devices)
    if n > 1 and accelerator != "cpu":
        gpus = tf.config.list_logical_devices("GPU")[:n]
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    return None


def cluster_resolver(topology: Topology):
    """Where every worker listens: TF_CONFIG (the user's), the ports of this node, or srun's allocation."""
    from tensorflow.python.distribute.cluster_resolver import (SimpleClusterResolver, SlurmClusterResolver,
                                                               TFConfigClusterResolver)

    if os.environ.get("TF_CONFIG"):
        return TFConfigClusterResolver()
    if topology.num_nodes == 1:
        ports = topology.ports[1:] if len(topology.ports) == topology.world + 1 else \
            tuple(topology.ports[0] + 1 + i for i in range(topology.world))  # beside the rendezvous port
        spec = tf.train.ClusterSpec({"worker": [f"{topology.address}:{p}" for p in ports]})
        return SimpleClusterResolver(spec, task_type="worker", task_id=topology.rank, rpc_layer="grpc")
    if "SLURM_PROCID" in os.environ:
        return SlurmClusterResolver(port_base=topology.ports[0] + 1)
    raise InputError("TF_CONFIG", None, "the cluster of TensorFlow workers (one per node) for a multi-node run "
                     "outside SLURM (docs/scaling.md)")


class ReplicatedStep:
    """One training step of a global batch over all replicas; returns the batch's (mean loss, groups, stop?)."""

    def __init__(self, pinn, strategy: tf.distribute.Strategy):
        self.pinn, self.strategy = pinn, strategy
        # No input signature (per-replica values); reduce_retracing: the short last batch generalises the shape.
        self.fn = tf.function(self._step, autograph=False, reduce_retracing=True)

    def __call__(self, data, groups, sel: np.ndarray, stop: bool) -> tuple[float, int, bool]:
        def value(ctx):
            part, share = shard(sel, ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync)
            b = data.batch(groups, part)
            samples = len(part) if share else 0
            return (tf.constant(b.x), tf.constant(b.counts), tf.constant(b.offsets),
                    tf.constant(share, tf.float32), tf.constant([float(samples), float(stop)], tf.float64))

        out = self.fn(self.strategy.experimental_distribute_values_from_function(value))
        loss_sum, samples, stops = self.strategy.experimental_local_results(out)[0].numpy()
        samples = int(round(samples))
        return float(loss_sum) / max(samples, 1), samples, bool(stops > 0)

    def _step(self, values):
        return self.strategy.run(self._replica, args=values)

    def _replica(self, x, counts, offsets, share, tally):
        pinn = self.pinn
        variables = [v for _, v in pinn.named]
        loss, grads = pinn._gradients(x, counts, offsets)  # this slice's mean loss
        pinn.optimizer.apply_gradients(zip([g * share for g in grads], variables))  # Keras all-reduces (sum)
        stats = tf.concat([[tf.cast(loss, tf.float64) * tally[0]], tally], axis=0)  # loss·groups, groups, stop
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, stats)



def share_cores(per_node: int) -> None:
    """This node's processes split its cores (before TensorFlow starts its thread pools; later calls are ignored)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, cores // per_node))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, cores // per_node))
    except RuntimeError:  # the runtime already started (a long-lived process): keep its pools
        pass
