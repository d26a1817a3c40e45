"""Data-parallel training (and inference), backend-neutral: who is which rank, how a global batch is split, and how
ranks meet. Inference across ranks: engine/inference.py.

Why this shape (docs/scaling.md): both frameworks scale out the same way — one process per replica (torch: one per
device; TensorFlow: one per CPU replica, or one per node driving all its GPUs), every process running the same
training over the same shared epoch order, each taking its slice of every global batch, gradients reduced by the
framework (Lightning DDP, tf.distribute). What differs is only who starts the processes:

- one node: the ``pinnacle train`` process is rank 0 and spawns the other ranks itself (engine/replica.py), with
  torchrun-style variables. We do not let Lightning re-execute ``sys.argv`` for the other ranks: inside pytest,
  the console's worker or ``python -c`` that command line is not a training, and TensorFlow has no such launcher;
- several nodes: an outside launcher (``srun``, ``torchrun``) starts every rank with the same command line, and
  ``plan`` reads the rank from its environment.

Either way rank 0 alone owns the run (run.json, events, checkpoints, bundle); the other ranks train silently.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np

from engine.errors import InputError

#: Seconds a collective (or the start-up rendezvous) may wait for a peer before the run fails: a rank that died
#: or hangs ends the run instead of stalling it. Generous, because the first collective waits for every rank to
#: import its framework and load the data; ``PINNACLE_COLLECTIVE_TIMEOUT_S`` overrides it.
COLLECTIVE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Topology:
    """This process's place among the training processes (``world`` in all, ``per_node`` on each of ``num_nodes``)."""

    world: int
    rank: int
    local_rank: int
    node_rank: int
    per_node: int
    num_nodes: int
    address: str  # rank 0's host (MASTER_ADDR)
    ports: tuple[int, ...]  # [0]: the rendezvous (MASTER_PORT); spawned here, then one per rank (TF workers)
    timeout_s: float = COLLECTIVE_TIMEOUT_S
    spawned: bool = False  # the local launcher started the other ranks (rank 0 owns them)

    @property
    def chief(self) -> bool:
        return self.rank == 0

    def worker_env(self, rank: int) -> dict[str, str]:
        """torchrun-style variables for local rank ``rank`` (what ``from_env`` reads back in the child)."""
        return {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(self.world),
                "LOCAL_WORLD_SIZE": str(self.per_node), "GROUP_RANK": "0", "NODE_RANK": "0",
                "MASTER_ADDR": self.address, "MASTER_PORT": str(self.ports[0]),
                "PINNACLE_PORTS": ",".join(map(str, self.ports)), "PINNACLE_COLLECTIVE_TIMEOUT_S": str(self.timeout_s)}


def collective_timeout(env: Mapping[str, str] = os.environ) -> float:
    text = env.get("PINNACLE_COLLECTIVE_TIMEOUT_S")
    try:
        value = float(text) if text else COLLECTIVE_TIMEOUT_S
    except ValueError:
        value = -1.0
    if not value > 0:
        raise InputError("PINNACLE_COLLECTIVE_TIMEOUT_S", text, "a number of seconds > 0")
    return value


def from_env(env: Mapping[str, str] = os.environ) -> Topology | None:
    """The topology an outside launcher (or our own, engine/replica.py) gave this process; None: not launched.

    torchrun (and the local launcher) set RANK/WORLD_SIZE/LOCAL_RANK; ``srun`` sets SLURM_PROCID and, for a
    step of several tasks, SLURM_STEP_NUM_TASKS (the batch script itself has no step of several tasks).
    """
    if "RANK" in env and "WORLD_SIZE" in env:
        world, rank = int(env["WORLD_SIZE"]), int(env["RANK"])
        local, per_node = int(env.get("LOCAL_RANK", 0)), int(env.get("LOCAL_WORLD_SIZE", world))
        node = int(env.get("GROUP_RANK", env.get("NODE_RANK", 0)))
    elif int(env.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1 and "SLURM_PROCID" in env:
        world, rank = int(env["SLURM_STEP_NUM_TASKS"]), int(env["SLURM_PROCID"])
        local, node = int(env.get("SLURM_LOCALID", 0)), int(env.get("SLURM_NODEID", 0))
        nodes = int(env.get("SLURM_STEP_NUM_NODES", env.get("SLURM_NNODES", 1)) or 1)
        per_node = world // max(nodes, 1)
        if "MASTER_ADDR" not in env:
            raise InputError("MASTER_ADDR", None, "the host of rank 0, exported by the batch script (srun sets no "
                             "rendezvous address; docs/scaling.md)")
    else:
        return None
    ports = tuple(int(p) for p in env["PINNACLE_PORTS"].split(",")) if env.get("PINNACLE_PORTS") else \
        (int(env.get("MASTER_PORT", 29500)),)
    return Topology(world=world, rank=rank, local_rank=local, node_rank=node, per_node=per_node,
                    num_nodes=max(1, world // max(per_node, 1)), address=env.get("MASTER_ADDR", "127.0.0.1"),
                    ports=ports, timeout_s=collective_timeout(env), spawned="PINNACLE_PORTS" in env)


def plan(per_node: int, num_nodes: int, env: Mapping[str, str] = os.environ) -> Topology | None:
    """The topology of this training: None for one process; the launcher's (``from_env``) when one started us;
    else this process as rank 0 of ``per_node`` local processes that it will spawn (one node only)."""
    if num_nodes < 1:
        raise InputError("--num-nodes", str(num_nodes), "a node count >= 1")
    world = per_node * num_nodes
    given = from_env(env)
    if given is not None and given.world > 1:
        if given.world != world:
            raise InputError("--devices", f"{per_node} x --num-nodes {num_nodes}",
                             f"{given.world} processes in all, as the launcher started ({given.world} ranks)")
        return replace(given, per_node=per_node, num_nodes=num_nodes)
    if world == 1:
        return None
    if num_nodes > 1:
        raise InputError("--num-nodes", str(num_nodes), "a launcher that starts the ranks on every node (srun or "
                         "torchrun, docs/scaling.md); on one node use --devices alone")
    return Topology(world=world, rank=0, local_rank=0, node_rank=0, per_node=per_node, num_nodes=1,
                    address="127.0.0.1", ports=free_ports(world + 1), timeout_s=collective_timeout(env), spawned=True)


def free_ports(n: int) -> tuple[int, ...]:
    """``n`` distinct ports the OS calls free now (all held open together, so they differ)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return tuple(s.getsockname()[1] for s in socks)
    finally:
        for s in socks:
            s.close()


def barrier(topology: Topology) -> None:
    """Wait until every rank has reached this point (a plain TCP rendezvous at rank 0's ``ports[0]``), within
    ``timeout_s``; TimeoutError names the ranks that never came.

    For frameworks whose start-up waits without a bound while holding the interpreter (TensorFlow's worker
    registration): no other thread could end the run then, so the ranks meet here first, where a wait is bounded.
    """
    deadline = time.monotonic() + topology.timeout_s
    if topology.chief:
        with socket.create_server((bind_host(topology.address), topology.ports[0]), reuse_port=False) as server:
            peers, seen = [], set()
            try:
                while len(seen) < topology.world - 1:
                    server.settimeout(max(0.01, deadline - time.monotonic()))
                    try:
                        conn, _ = server.accept()
                    except socket.timeout:
                        missing = sorted(set(range(1, topology.world)) - seen)
                        raise TimeoutError(f"ranks {missing} did not start within {topology.timeout_s:g} s") from None
                    conn.settimeout(max(0.01, deadline - time.monotonic()))
                    seen.add(int(conn.recv(16).decode() or -1))
                    peers.append(conn)
                for conn in peers:
                    conn.sendall(b"go")
            finally:
                for conn in peers:
                    conn.close()
        return
    while True:
        conn = connect(topology, deadline)
        try:
            with conn:
                conn.sendall(str(topology.rank).encode())
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                if conn.recv(2) == b"go":
                    return
        except OSError:  # rank 0 closed or reset the rendezvous, or did not answer in time: again, to the deadline
            pass
        if time.monotonic() > deadline:
            raise _no_answer(topology)
        time.sleep(0.2)


def connect(topology: Topology, deadline: float) -> socket.socket:
    """A connection to rank 0's ``ports[0]``, retried until ``deadline`` (time.monotonic; rank 0 may not listen yet);
    TimeoutError after it."""
    while True:
        try:
            return socket.create_connection((topology.address, topology.ports[0]), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise _no_answer(topology) from None
            time.sleep(0.2)


def _no_answer(topology: Topology) -> TimeoutError:
    return TimeoutError(f"rank 0 did not answer at {topology.address}:{topology.ports[0]} within "
                        f"{topology.timeout_s:g} s")


def bind_host(address: str) -> str:
    """Rank 0 listens on the loopback when the others reach it there, else on every interface."""
    return address if address in ("127.0.0.1", "localhost") else ""


def check_batch(batch_size: int, replicas: int) -> None:
    """The global batch (--batch-size) is split evenly across replicas: it must divide."""
    if replicas > 1 and batch_size % replicas:
        raise InputError("--batch-size", str(batch_size), f"a multiple of the {replicas} replicas (the global batch "
                         "is split evenly across them)")


def shard(sel: np.ndarray, replica: int, replicas: int) -> tuple[np.ndarray, float]:
    """Replica ``replica``'s contiguous slice of one global batch ``sel``, and its share of the batch's mean loss.

    Every replica's loss is its slice's mean times ``share = len(slice) / len(sel)``; the framework sums (TF) or
    averages (DDP: times ``replicas``) the replicas' gradients, giving the gradient of the whole batch's mean. Full
    batches split evenly (share 1/replicas). A short last batch may leave a replica with nothing: it gets the batch's
    first group with share 0 — it must still join the step's collectives — and contributes exactly zero.
    """
    part = sel[span(len(sel), replica, replicas)]
    if len(part) == 0:
        return sel[:1], 0.0
    return part, len(part) / len(sel)


def span(n: int, replica: int, replicas: int) -> slice:
    """Replica ``replica``'s contiguous part of ``n`` items cut into ``replicas`` parts as even as they come (the
    split of a training's global batch, and of an inference's groups: engine/shards.py)."""
    bounds = np.linspace(0, n, replicas + 1).round().astype(int)
    return slice(int(bounds[replica]), int(bounds[replica + 1]))


def check_device_count(devices, available: int, gpu: bool) -> None:
    """Refuse ``--devices`` asking for more replicas than the node has ``available`` GPUs or CPU cores (at least 1
    is always allowed): both backends' ``check_devices`` end here once they know what the node has."""
    count = device_count(devices)
    if count < 1 or count > max(available, 1):
        raise InputError("--devices", str(devices), f"a device count from 1 to {max(available, 1)} "
                         f"({'GPUs' if gpu else 'CPU cores'}: {available} available)")


def device_count(devices) -> int:
    """``--devices``: a count (2) or a list of device indices ("0,1") → how many devices."""
    text = str(devices).strip()
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        raise InputError("--devices", text, "a device count >= 1 or a list of device indices such as 0,1")
    return int(parts[0]) if len(parts) == 1 else len(parts)
