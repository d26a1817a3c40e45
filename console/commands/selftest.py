"""`pinnacle selftest`: a tiny fake training job that exercises the job protocol end to end, with no backend.

Why it exists: the event stream, the run store, cancellation and exit codes are tested through a real child
process, and the console uses it as a stand-in engine. It emits stages, progress, epochs with a decreasing loss,
a checkpoint per step, a metric and a result artifact, and honours SIGINT/SIGTERM between steps.
"""
from __future__ import annotations

import json

import typer

from console.commands.common import JOB, JobStream, grouped
from engine.events import EVALUATING, LOADING, SAVING, TRAINING


def _write_json(path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def run_selftest(steps: int, delay: float, fail_at: int | None, per_step: int, runs: str, events: str | None,
                 events_fd: int | None, human: bool) -> int:
    """Validate, then run the fake job; returns the exit code."""
    import time

    from engine.errors import InputError
    from engine.jobs import Job
    from engine.runstore import RunStore

    if steps < 1:
        raise InputError("--steps", None, "an integer >= 1")
    if not delay >= 0:
        raise InputError("--delay", None, "a number of seconds >= 0")
    if per_step < 1:
        raise InputError("--progress-per-step", None, "an integer >= 1")
    config = {"steps": steps, "delay": delay, "fail_at": fail_at, "progress_per_step": per_step}
    dataset = {"path": "selftest:synthetic", "fingerprint": None}
    done = {"steps": 0, "loss": None}
    with Job.start(kind="selftest", store=RunStore(runs), config=config, backend=None, dataset=dataset,
                   events=events, events_fd=events_fd, human=None if human else False) as job:
        job.on_cancel(lambda: job.artifact("partial", _save_partial(job, done)))
        job.log("selftest: a fake training job, no backend")
        job.stage(LOADING)
        for i in range(per_step):
            job.progress(i + 1, per_step, unit="pattern", stage=LOADING)
        job.stage(TRAINING)
        for step in range(1, steps + 1):
            t0 = time.monotonic()
            for i in range(per_step):
                time.sleep(delay / per_step)
                job.progress(i + 1, per_step, unit="batch", stage=TRAINING)
                job.check_cancel()
            if fail_at is not None and step == fail_at:
                raise RuntimeError(f"selftest: injected failure at step {step}")
            loss = 1.0 / step
            done.update(steps=step, loss=loss)
            ckpt = job.run.checkpoints_dir / "last.json"
            _write_json(ckpt, {"step": step, "loss": loss})
            seconds = time.monotonic() - t0
            job.epoch(epoch=step, epochs=steps, train_loss=loss, val_loss=1.1 * loss, lr=1e-3, seconds=seconds,
                      samples_per_s=per_step / seconds if seconds > 0 else None)
            job.artifact("checkpoint", ckpt)
        job.stage(EVALUATING)
        job.metric("final_loss", done["loss"], key=True)
        job.stage(SAVING)
        result = job.run.dir / "result.json"
        _write_json(result, {"steps": done["steps"], "final_loss": done["loss"]})
        job.artifact("result", result)
    return job.exit_code


def _save_partial(job, done: dict):
    path = job.run.dir / "partial.json"
    _write_json(path, {"steps_completed": done["steps"], "loss": done["loss"]})
    return path


def register(app: typer.Typer) -> None:
    @app.command("selftest")
    @grouped
    def selftest(
        steps: int = typer.Option(5, "--steps", help="Fake epochs to run."),
        delay: float = typer.Option(0.05, "--delay", help="Seconds per step."),
        fail_at: int = typer.Option(None, "--fail-at", help="Raise an error at this step (tests failure handling)."),
        progress_per_step: int = typer.Option(10, "--progress-per-step", help="Progress events per step."),
        job: JobStream = JOB,
    ) -> None:
        """Run a tiny fake training job: exercises events, the run store and cancellation without a backend."""
        code = run_selftest(steps, delay, fail_at, progress_per_step, job.runs, job.events, job.events_fd,
                            job.progress)
        raise typer.Exit(code)
