"""Inference across ranks: every rank predicts one contiguous shard of the groups, rank 0 gathers them in order.

Why a plain TCP handoff and not the frameworks' collectives: inference exchanges no gradients, only each rank's
patches, once, to rank 0 — and the two frameworks would need two gathers (torch.distributed's gather with its
process group; tf.distribute has no gather of unequal shards between workers). One socket per rank to rank 0
(``MASTER_ADDR:MASTER_PORT``, the rendezvous port training meets at) works the same for both backends, on one node
or several (no shared filesystem needed), and every wait in it has a bound we choose:

- a rank connects as soon as it starts and says who it is; rank 0 fails the run when a rank has not connected
  ``timeout_s`` after the gather opened (it died, or never started: the same bound as training's rendezvous);
- a rank reports ``{"done": k}`` after every batch (progress, and a heartbeat); a rank silent for ``timeout_s``
  fails the run (hung), and a connection closed before the patches came fails it at once (died);
- the patches follow as one JSON header (shape, dtype, byte count) and the raw complex64 bytes, received straight
  into the gathered array. Data only: no pickle, nothing a rank sends is executed;
- rank 0 closing the connection (done, failed or cancelled) tells a rank to stop: it ends quietly at its next batch.

The ranks this process started are also watched through ``failed`` (engine/launcher.py's LocalRanks.failed): a
local rank that dies before it connected fails the run at once, with its exit code and last lines.
"""
from __future__ import annotations

import json
import selectors
import socket
import time
from typing import Callable

import numpy as np

from engine.distributed import Topology, bind_host, connect, span
from engine.launcher import RankFailed

#: Seconds between rank 0's checks (cancel, dead local ranks) while it waits for the other ranks' patches.
POLL_S = 0.2
#: The longest header line a rank may send (a JSON object of a few fields).
MAX_LINE = 4096


class RankZeroGone(Exception):
    """Rank 0 closed the connection: the inference ended there (finished, failed or cancelled)."""


class _Peer:
    """What rank 0 knows of one connected rank: its rank, groups done, and the patches received so far."""

    def __init__(self, conn: socket.socket, now: float):
        self.conn, self.seen, self.buffer = conn, now, b""
        self.rank: int | None = None
        self.done = 0
        self.view: memoryview | None = None  # where the patches go, once the header has come
        self.got = 0

    @property
    def complete(self) -> bool:
        return self.view is not None and self.got == len(self.view)


class ShardGather:
    """Rank 0's side, a context manager: listens for ranks 1..world-1 and gathers their shards (``sharded``)."""

    def __init__(self, topology: Topology, check: Callable[[], None] = lambda: None,
                 failed: Callable[[], list[str]] = list, clock: Callable[[], float] = time.monotonic):
        """``check()``: raises to cancel (the job's check_cancel); ``failed()``: lines for local ranks that died."""
        self.topology, self.check, self.failed, self.clock = topology, check, failed, clock
        self.selector = selectors.DefaultSelector()
        self.server: socket.socket | None = None
        self.peers: dict[socket.socket, _Peer] = {}
        self.out: np.ndarray | None = None
        self.opened = 0.0

    def __enter__(self) -> "ShardGather":
        self.server = socket.create_server((bind_host(self.topology.address), self.topology.ports[0]))
        self.server.setblocking(False)
        self.selector.register(self.server, selectors.EVENT_READ)
        self.opened = self.clock()
        return self

    def __exit__(self, *exc) -> None:
        for conn in [*self.peers, self.server]:
            if conn is not None:
                conn.close()  # a rank still predicting sees it at its next batch and stops
        self.selector.close()

    # ------------------------------------------------------------------------------------------------ gather
    def sharded(self, predict: Callable) -> Callable:
        """``predict`` (a backend's, same signature) on rank 0's shard, the others' shards gathered in order."""
        def run(cfg, weights, consts, x, offsets, batch_size, *, progress=None, **kw):
            world, total = self.topology.world, len(x)
            self.out = np.empty((total, *x.shape[1:]), np.complex64)  # (M, C, N, N), as predict_in_batches
            own, reported = span(total, 0, world), [-1]

            def report(done_here: int) -> None:
                done = done_here + sum(p.done for p in self.peers.values())
                if progress is not None and done != reported[0]:
                    reported[0] = done
                    progress(done, total)

            def mine(done: int, _total: int) -> None:
                self.poll(0.0)
                report(done)

            part = None if offsets is None else offsets[own]
            self.out[own] = predict(cfg, weights, consts, x[own], part, batch_size, progress=mine, **kw)
            while not self._all_in():
                self.poll(POLL_S)
                report(own.stop - own.start)
            return self.out

        return run

    def _all_in(self) -> bool:
        done = [p for p in self.peers.values() if p.complete]
        return len(done) == self.topology.world - 1

    def poll(self, timeout: float) -> None:
        """Accept and read what is ready (at most ``timeout`` s of waiting), then check every bound."""
        for key, _ in self.selector.select(timeout):
            if key.fileobj is self.server:
                self._accept()
            else:
                self._read(self.peers[key.fileobj])
        self.check()
        lines = self.failed()
        if lines:
            raise RankFailed("; ".join(lines))
        now, timeout_s = self.clock(), self.topology.timeout_s
        known = {p.rank for p in self.peers.values() if p.rank is not None}
        missing = sorted(set(range(1, self.topology.world)) - known)
        if missing and now - self.opened > timeout_s:
            raise RankFailed(f"ranks {missing} did not connect to rank 0 within {timeout_s:g} s")
        for p in self.peers.values():
            if not p.complete and now - p.seen > timeout_s:
                raise RankFailed(f"rank {p.rank} sent nothing for {timeout_s:g} s (after {p.done} groups)")

    def _accept(self) -> None:
        try:
            conn, _ = self.server.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        self.peers[conn] = _Peer(conn, self.clock())
        self.selector.register(conn, selectors.EVENT_READ)

    def _read(self, p: _Peer) -> None:
        try:
            if p.view is not None:
                n = p.conn.recv_into(p.view[p.got:])
                p.got += n
            else:
                data = p.conn.recv(65536)
                n = len(data)
                p.buffer += data
        except BlockingIOError:
            return
        except OSError as exc:
            n, p.buffer = 0, b""
            if p.complete:
                return
            raise RankFailed(f"rank {p.rank}: connection lost ({exc})") from exc
        if n == 0:
            self.selector.unregister(p.conn)
            if not p.complete:
                who = f"rank {p.rank}" if p.rank is not None else "a rank"
                raise RankFailed(f"{who} closed its connection after {p.done} groups, before sending its patches")
            return
        p.seen = self.clock()
        while p.view is None and b"\n" in p.buffer:
            line, p.buffer = p.buffer.split(b"\n", 1)
            self._message(p, line)
        if p.view is None and len(p.buffer) > MAX_LINE:
            raise RankFailed(f"rank {p.rank} sent a message longer than {MAX_LINE} bytes")

    def _message(self, p: _Peer, line: bytes) -> None:
        """One JSON line: ``rank`` (hello), ``done`` (progress) or ``patches`` (the header of the raw bytes)."""
        try:
            msg = json.loads(line)
        except ValueError:
            raise RankFailed(f"rank {p.rank} sent an unreadable message") from None
        if "rank" in msg:
            rank = int(msg["rank"])
            if not 0 < rank < self.topology.world or rank in {q.rank for q in self.peers.values()}:
                raise RankFailed(f"a rank said it is rank {rank} (expected one of 1..{self.topology.world - 1}, once)")
            p.rank = rank
        elif "done" in msg:
            p.done = int(msg["done"])
        elif "patches" in msg:
            if p.rank is None:
                raise RankFailed("a rank sent patches before saying who it is")
            target = self.out[span(len(self.out), p.rank, self.topology.world)]
            if list(msg["patches"]) != list(target.shape) or msg.get("dtype") != "complex64":
                raise RankFailed(f"rank {p.rank} sent patches {msg['patches']} {msg.get('dtype')}, expected "
                                 f"{list(target.shape)} complex64 (the same bundle, data and groups as rank 0?)")
            p.view, p.done = memoryview(target).cast("B"), len(target)
            first, p.buffer = p.buffer[:len(p.view)], b""
            p.view[:len(first)] = first
            p.got = len(first)


class ShardSender:
    """A rank's side (not rank 0): connect, report progress, send the patches; ``RankZeroGone`` when rank 0 left."""

    def __init__(self, topology: Topology):
        self.topology = topology
        self.conn = connect(topology, time.monotonic() + topology.timeout_s)
        self.conn.settimeout(topology.timeout_s)
        self._send({"rank": topology.rank})

    def progress(self, done: int, _total: int | None = None) -> None:
        """After every batch: stop if rank 0 has closed the connection (it never sends), else say how far we are."""
        ready = selectors.DefaultSelector()
        ready.register(self.conn, selectors.EVENT_READ)
        try:
            if ready.select(0):  # readable: only an end-of-stream (or a reset) can arrive
                raise RankZeroGone()
        finally:
            ready.close()
        self._send({"done": int(done)})

    def send(self, patches: np.ndarray) -> None:
        patches = np.ascontiguousarray(patches, np.complex64)
        self._send({"patches": list(patches.shape), "dtype": "complex64", "nbytes": patches.nbytes})
        self._sendall(memoryview(patches).cast("B"))

    def _send(self, msg: dict) -> None:
        self._sendall(json.dumps(msg).encode() + b"\n")

    def _sendall(self, data) -> None:
        try:
            self.conn.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise RankZeroGone() from exc

    def close(self) -> None:
        self.conn.close()
