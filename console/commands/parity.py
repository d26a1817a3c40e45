"""`pinnacle parity DATA.npz [--test HELD_OUT.npz]`: prove that the two backends agree (docs/parity.md).

A job of kind "parity": levels 0–2 in one probe child per backend, level 3 as ``pinnacle train``/``infer``
children (engine.parity_job), then parity.json, parity.md and images in the run directory and a verdict table on
stdout. Exit 0 when every check passes, 3 when any is out of tolerance, 2 for bad input (before any run dir).
Module level imports only typer/stdlib; this process never imports TensorFlow or PyTorch.
"""
from __future__ import annotations

import typer

from console.commands.common import events_fd_option, events_option, native_log, progress_option, runs_option

#: Default epochs: the whole fixture parity (probes, two trainings, four inferences) in about 3 minutes on 2 cores.
DEFAULT_EPOCHS = 5


def parse_levels(text: str) -> tuple[int, ...]:
    from engine.errors import InputError
    from engine.parity import LEVELS

    try:
        levels = tuple(sorted({int(x) for x in text.replace(" ", "").split(",") if x}))
    except ValueError:
        levels = ()
    if not levels or any(x not in LEVELS for x in levels):
        raise InputError("--levels", text, "expected a comma-separated subset of 0,1,2,3 (3 includes cross-loading)")
    return levels


def check_options(ds, test_ds, test: str, epochs: int, gridsize: int, seed: int, filters_scale: int,
                  levels: tuple[int, ...]) -> None:
    """Everything that can be bad input, before the run directory exists."""
    from engine.backends import BACKENDS, info, installed_backends
    from engine.config import ModelConfig, RunConfig, TrainingConfig
    from engine.errors import BackendUnavailable, ConfigError, InputError
    from engine.grouping import default_neighbours
    from engine.pipeline import check_training_input

    present = installed_backends()  # asked without importing a framework
    for name in BACKENDS:
        if name not in present and (set(levels) - {0} or not present):
            b = info(name)
            why = "" if not present else "levels 1-3 compare both backends (--levels 0 checks one alone); "
            raise BackendUnavailable("--backend", name, f"{why}{b.label} is not installed; install it with: "
                                     f"{b.install}")
    options = {"n_filters_scale": "--filters-scale", "gridsize": "--gridsize", "epochs": "--epochs", "seed": "--seed"}
    try:
        model = ModelConfig(N=ds.N, n_filters_scale=filters_scale, gridsize=gridsize)
        training = TrainingConfig(epochs=epochs, seed=seed, neighbours=default_neighbours(gridsize))
        cfg = RunConfig(model=model, training=training)
    except ConfigError as exc:
        raise InputError(options.get(exc.key) or str(exc.key), None, exc.expected) from exc
    check_training_input(ds.source, ds, cfg)
    if 3 in levels:
        if test_ds.N != ds.N:
            raise InputError(test, "diffraction", f"expected patterns of N = {ds.N} (the training data's), got {test_ds.N}")
        if test_ds.object is None:
            raise InputError(test, "objectGuess", "expected the true object: level 3 compares reconstruction metrics")


def table_rows(checks: list[dict]) -> list[dict]:
    """The checks as the verdict table shows them: passing checks of one ``group`` (e.g. the gradient of every
    parameter tensor) folded into one row naming the count and the worst; every failing check on its own row."""
    rows: list[dict] = []
    folded: dict[str, list[dict]] = {}
    for c in checks:
        group = c.get("group") or ""
        if group and c["passed"]:
            if group not in folded:
                folded[group] = []
                rows.append({"fold": group})
            folded[group].append(c)
        else:
            rows.append(c)
    out = []
    for r in rows:
        if "fold" not in r:
            out.append(r)
            continue
        members = folded[r["fold"]]
        worst = max(members, key=lambda c: (c["value"] or 0) / (c["tolerance"] or 1))
        out.append({**worst, "name": f"{r['fold']}: {len(members)} pass, worst {worst['subject']}", "backend": ""})
    return out


def verdict_table(report: dict):
    from rich.markup import escape
    from rich.table import Table

    from engine.parity_report import level_key

    table = Table(title="Pinnacle parity: TensorFlow vs PyTorch", title_justify="left")
    for col, kw in (("level", {}), ("check", {}), ("value", {"justify": "right"}),
                    ("tolerance", {"justify": "right"}), ("result", {})):
        table.add_column(col, **kw)
    for c in table_rows(report["checks"]):
        v = c["value"]
        value = f"{v:.3g}" if isinstance(v, (int, float)) else str(v if v is not None else "missing")
        result = "[green]pass[/]" if c["passed"] else "[bold red]FAIL[/]"
        name = c["name"] + (f" [{c['backend']}]" if c["backend"] and c["backend"] not in c["name"] else "")
        table.add_row(level_key(c["level"]), escape(name), value, f"{c['tolerance']:.3g}", result)
    return table


def register(app: typer.Typer) -> None:
    @app.command("parity")
    def parity(
        ctx: typer.Context,
        data: str = typer.Argument(..., metavar="DATA.npz", help="Training scan (needs probeGuess)."),
        test: str = typer.Option(None, "--test", metavar="HELD_OUT.npz",
                                 help="Held-out scan with objectGuess for level 3 (default: DATA itself)."),
        epochs: int = typer.Option(DEFAULT_EPOCHS, "--epochs",
                                   help="Level-3 training epochs per backend (default 5: ~3 min on the fixture)."),
        gridsize: int = typer.Option(1, "--gridsize", help="g: groups of g² neighbouring patterns (1, 2 or 3)."),
        seed: int = typer.Option(0, "--seed", help="Seed for the initial weights, groups and batch order."),
        filters_scale: int = typer.Option(1, "--filters-scale", help="Network width f (1: CI size; 2: paper)."),
        levels: str = typer.Option("0,1,2,3", "--levels",
                                   help="Levels to run, e.g. 0,1,2 for a quick check (3 includes cross-loading)."),
        as_json: bool = typer.Option(False, "--json", help="Print parity.json to stdout instead of the table."),
        runs: str = runs_option(),
        events: str = events_option(),
        events_fd: int = events_fd_option(),
        progress: bool = progress_option(),
    ) -> None:
        """Run the parity levels 0–3 and cross-loading on both backends; exit 3 when anything is out of tolerance."""
        import json
        import sys
        from pathlib import Path

        from engine.errors import EXIT_PARITY, InputError
        from engine.pipeline import dataset_info, load_data

        lv = parse_levels(levels)
        if as_json and events == "-":
            raise InputError("--json", None, "expected the event stream elsewhere than stdout (--events PATH)")
        ds = load_data(data, require_probe=True)
        test_path = test or data
        test_ds = load_data(test_path, require_probe=False) if test else ds
        check_options(ds, test_ds, test_path, epochs, gridsize, seed, filters_scale, lv)

        from engine import parity_job, parity_report
        from engine.jobs import Job
        from engine.runstore import RunStore

        opts = parity_job.ParityOptions(data=str(data), test=str(test_path), epochs=epochs, gridsize=gridsize,
                                        seed=seed, filters_scale=filters_scale, levels=lv)
        config = {"data": opts.data, "test": opts.test, "epochs": epochs, "gridsize": gridsize, "seed": seed,
                  "filters_scale": filters_scale, "levels": list(lv)}
        with Job.start(kind="parity", store=RunStore(runs), config=config, backend="both",
                       dataset=dataset_info(ds), events=events, events_fd=events_fd,
                       human=None if progress else False, native_log=native_log(ctx)) as job:
            job.stage("loading")
            job.log(f"parity levels {', '.join(map(str, lv))} on {data}" + (f", held out {test}" if test else ""))
            checks, level3, images = [], None, {}
            if set(lv) & {0, 1, 2}:
                job.stage("evaluating")
                checks += parity_job.run_probes(job, ds, opts, job.dir / "probes")
            if 3 in lv:
                level3 = parity_job.run_level3(job, opts, job.dir, test_ds.M)
                checks += level3["checks"]
            job.stage("saving")
            if level3 is not None:
                images = parity_report.write_images(job.dir, level3["objects"])
                for kind, name in images.items():
                    job.artifact(f"parity_{kind}", job.dir / name)
            report = parity_report.build(opts, checks, level3, images)
            parity_report.write_json(job.dir / "parity.json", report)
            (job.dir / "parity.md").write_text(parity_report.markdown(report, job.run_id), encoding="utf-8")
            job.artifact("parity", job.dir / "parity.json")
            job.artifact("parity_report", job.dir / "parity.md")
            passed = report["passed"]
            job.metric("parity_passed", passed, key=True)
            job.metric("parity_failures", len(report["failures"]))
            for line in report["failures"]:
                job.log(f"out of tolerance: {line}", level="error")
            if as_json:
                print(json.dumps(parity_report.json_safe(report), indent=2))
            else:
                from rich.console import Console

                out = Console(file=sys.stderr if events == "-" else sys.stdout, width=max(120, Console().width),
                              soft_wrap=False)  # stdout belongs to the event stream with --events -
                out.print(verdict_table(report))
                from rich.markup import escape

                for line in report["failures"]:
                    out.print(f"[bold red]FAIL[/] {escape(line)}", highlight=False)
                n, bad = len(checks), len(report["failures"])
                verdict = (f"[bold green]PASS[/]: the backends agree on all {n} checks" if passed else
                           f"[bold red]FAIL[/]: {bad} of {n} checks out of tolerance (exit 3)")
                out.print(f"{verdict}. Report: {job.dir / 'parity.md'}", highlight=False)
            if not passed:
                job.fail_reason(f"{len(report['failures'])} of {len(checks)} parity checks out of tolerance; first: "
                                f"{report['failures'][0]}")
                raise typer.Exit(EXIT_PARITY)
        raise typer.Exit(job.exit_code)
