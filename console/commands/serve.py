"""`pinnacle serve`: the warm reconstruction worker — frameworks imported once, each job a fork (docs/worker.md).

Module level imports only typer/stdlib (the worker's imports happen in the command body).
"""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        backend: list[str] = typer.Option(None, "--backend", "-b", metavar="NAME",
                                          help="Backend to keep warm (repeat for both; default: every installed "
                                               "one)."),
        socket: str = typer.Option(None, "--socket", metavar="PATH",
                                   help="Unix socket to listen on (env PINNACLE_WORKER_SOCKET; default "
                                        "$XDG_RUNTIME_DIR/pinnacle-UID/worker.sock, /tmp without it)."),
    ) -> None:
        """Keep a reconstruction worker warm: `infer` and `reconstruct` (with the default --worker auto) then run in
        a fork of it instead of importing TensorFlow/PyTorch again (about 1–2 s instead of 4–6 s for a 256-pattern
        scan). Local to this user: a private Unix socket, no network. Stops on Ctrl-C or SIGTERM, stopping its
        running jobs."""
        import signal
        import sys
        from pathlib import Path

        from console.worker import channel
        from console.worker.server import Worker, warm
        from engine.backends import canonical_name, installed_backends
        from engine.errors import EXIT_BAD_INPUT

        path = Path(socket) if socket else channel.socket_path()
        names = [canonical_name(b) for b in backend] if backend else list(installed_backends())  # bad name: exit 2
        worker = Worker(path, names)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, worker.stop)
        try:
            worker.backends = warm(names)
            worker.bind()
        except channel.ChannelError as exc:
            print(f"pinnacle: error: {exc}", file=sys.stderr)
            raise typer.Exit(EXIT_BAD_INPUT)
        if worker.stopping.is_set():
            worker.stop()
        print(f"worker ready: {path} ({', '.join(worker.backends)}; pid {__import__('os').getpid()})", flush=True)
        worker.serve()
        print("worker stopped", flush=True)
