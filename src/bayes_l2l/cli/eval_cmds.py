"""`bayes-l2l eval` (checkpoints -> result store) and `bayes-l2l table` (result store -> LossTable file).

Nothing here imports torch, transformers or lm-eval at module level: `bayes-l2l --help` works without
the eval extra, and `eval` says how to install it when it is missing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from bayes_l2l.cli.common import app, console, err_console, parse_assignments, print_json
from bayes_l2l.errors import UserInputError, check_output_file


@app.command("eval")
def eval_cmd(
    manifest: Path = typer.Argument(..., help="Checkpoint manifest (models/*.yaml)."),
    config: Path = typer.Option(..., "--config", "-c", help="Evaluation config (configs/eval/*.yaml)."),
    store: Path = typer.Option(..., "--store", "-s", help="Result store directory (created if new)."),
    task_data: Path | None = typer.Option(
        None, "--task-data", help="Folder of offline task files <task>/<split>.jsonl (overrides the config)."
    ),
    executor: str = typer.Option(
        "inline", "--executor", "-e", help="inline (this process), local (submitit) or slurm (job array)."
    ),
    run: list[str] | None = typer.Option(None, "--run", help="Only these run ids (repeatable)."),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N pending checkpoints."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and list the plan; evaluate nothing."),
    device: str | None = typer.Option(None, "--device", help="Override engine.device (auto, cpu, cuda:N)."),
    batch_tokens: int | None = typer.Option(
        None, "--batch-tokens", help="Override engine.batch_tokens (padded tokens per batch)."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="local/slurm: wait for the jobs to finish."),
    partition: str | None = typer.Option(None, "--partition", help="SLURM partition."),
    gpus: int = typer.Option(1, "--gpus", help="GPUs per job."),
    cpus: int = typer.Option(8, "--cpus", help="SLURM: CPUs per job."),
    mem_gb: float = typer.Option(64.0, "--mem-gb", help="SLURM: memory per job (GB)."),
    time_min: int = typer.Option(240, "--time", help="Time limit per job (minutes)."),
    array_parallelism: int | None = typer.Option(
        None, "--array-parallelism", help="Jobs running at once (SLURM default 32; local default 1)."
    ),
    checkpoints_per_job: int = typer.Option(
        1, "--checkpoints-per-job", help="SLURM: checkpoints per element."
    ),
    account: str | None = typer.Option(None, "--account", help="SLURM account."),
    qos: str | None = typer.Option(None, "--qos", help="SLURM QOS."),
    constraint: str | None = typer.Option(None, "--constraint", help="SLURM node constraint."),
    slurm_extra: list[str] | None = typer.Option(
        None, "--slurm-extra", help="Extra sbatch parameter KEY=VALUE (repeatable)."
    ),
    log_dir: Path | None = typer.Option(None, "--log-dir", help="submitit logs (default STORE/_jobs)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> int:
    """Evaluate the checkpoints of MANIFEST on the corpora and tasks of CFG into the result store."""
    from bayes_l2l.evaluate.jobs import EvalRequest, plan_evaluation, run_evaluation

    cluster = None
    if executor != "inline":
        from bayes_l2l.evaluate.executors import ClusterOptions

        cluster = ClusterOptions(
            partition=partition,
            gpus_per_node=gpus,
            cpus_per_task=cpus,
            mem_gb=mem_gb,
            timeout_min=time_min,
            array_parallelism=array_parallelism,
            checkpoints_per_job=checkpoints_per_job,
            account=account,
            qos=qos,
            constraint=constraint,
            slurm_extra=parse_assignments(slurm_extra, "--slurm-extra"),
        )
    request = EvalRequest(
        manifest=manifest,
        config=config,
        store=store,
        runs=list(run or []),
        limit=limit,
        device=device,
        batch_tokens=batch_tokens,
        task_data=task_data,
        progress=False if no_progress else None,
        executor=executor,
        cluster=cluster,
        log_dir=log_dir,
        wait=wait,
    )
    plan = plan_evaluation(request, dry_run=dry_run)
    if dry_run:
        if as_json:
            print_json({**plan.to_dict(), "dry_run": True})
        else:
            _print_plan(plan.to_dict())
        return 0
    out, report = run_evaluation(plan)
    if as_json:
        print_json(out)
    else:
        _print_report(out)
    if report is not None and report.failed:
        return 2 if report.user_errors == len(report.failed) else 1
    return 0


def _print_plan(plan: dict[str, Any]) -> None:
    console.print(
        f"[bold]{escape(plan['manifest'])}[/]: {plan['checkpoints']} checkpoints, {plan['done']} done, "
        f"{len(plan['to_evaluate'])} to evaluate in store {escape(plan['store'])} (namespace "
        f"{plan['namespace']})",
        highlight=False,
    )
    console.print(f"metrics: {', '.join(plan['metrics'])}", highlight=False)
    for key in plan["to_evaluate"][:50]:
        console.print(f"  {escape(key)}", highlight=False)
    if len(plan["to_evaluate"]) > 50:
        console.print(f"  ... and {len(plan['to_evaluate']) - 50} more", highlight=False)


def _print_report(out: dict[str, Any]) -> None:
    if out.get("job_ids"):
        console.print(
            f"submitted {len(out['job_ids'])} job(s): {', '.join(out['job_ids'][:20])}", highlight=False
        )
    if "evaluated" not in out:
        console.print(
            f"results will land in {escape(out['store'])} (namespace {out['namespace']})", highlight=False
        )
        return
    console.print(
        f"[bold green]evaluated[/] {len(out['evaluated'])} checkpoint(s), skipped "
        f"{len(out['skipped'])} done, "
        f"{out['records_written']} record(s) written to {escape(out['store'])} (namespace "
        f"{out['namespace']}) "
        f"in {out['seconds']:.1f} s",
        highlight=False,
    )
    for key, err in out["failed"].items():
        err_console.print(f"[bold red]failed[/] {escape(key)}: {escape(err)}", highlight=False)


@app.command("table")
def table_cmd(
    store: Path = typer.Argument(..., help="Result store directory written by `bayes-l2l eval`."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Loss table to write (.parquet or .csv)."
    ),
    namespace: str | None = typer.Option(None, "--namespace", help="Which evaluation config's results."),
    accuracy: Path | None = typer.Option(
        None, "--accuracy", help="Also write task accuracies (acc, acc_norm) to this .parquet/.csv."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Turn a result store into a LossTable file (or, without -o, summarise what the store holds)."""
    from bayes_l2l.evaluate.store import ResultStore, accuracy_frame, pick_namespace
    from bayes_l2l.table import read_store

    for path in (output, accuracy):
        if path is not None:
            if path.suffix.lower() not in (".parquet", ".pq", ".csv"):
                raise UserInputError(f"{path}: unknown output format '{path.suffix}'; use .parquet or .csv")
            check_output_file(path, overwrite)
    st = ResultStore(store)
    ns = pick_namespace(st, namespace)
    table = read_store(store, ns.key)
    failures = ns.failures()
    summary: dict[str, Any] = {
        "store": str(store),
        "namespace": ns.key,
        "settings": ns.meta.get("summary"),
        "rows": len(table),
        "checkpoints": len(table.checkpoints()),
        "runs": table.runs,
        "metrics": table.metrics,
        "failures": [{"run": f["run"], "checkpoint": f["checkpoint"], "error": f["error"]} for f in failures],
    }
    if output is not None:
        summary["output"] = str(table.save(output, overwrite=overwrite))
    if accuracy is not None:
        acc = accuracy_frame(ns)
        if acc.empty:
            raise UserInputError(f"{store}: no task accuracies in namespace {ns.key} (no tasks evaluated)")
        if accuracy.exists():
            accuracy.unlink()
        if accuracy.suffix.lower() == ".csv":
            acc.to_csv(accuracy, index=False)
        else:
            acc.to_parquet(accuracy, index=False)
        summary["accuracy_output"] = str(accuracy)
    if as_json:
        print_json(summary)
        return
    _print_table_summary(summary, table)


def _print_table_summary(summary: dict[str, Any], table: Any) -> None:
    console.print(
        f"[bold]{escape(summary['store'])}[/] namespace {summary['namespace']}: {summary['rows']} rows, "
        f"{summary['checkpoints']} checkpoints of {len(summary['runs'])} run(s)",
        highlight=False,
    )
    if summary.get("settings"):
        console.print(f"settings: {escape(summary['settings'])}", highlight=False)
    counts = table.df.groupby(["metric", "unit"]).agg(
        checkpoints=("checkpoint", "size"), mean=("value", "mean"), min=("value", "min"), max=("value", "max")
    )
    tbl = Table("metric", "unit", "checkpoints", "mean", "min", "max")
    for (metric, unit), r in counts.iterrows():
        tbl.add_row(metric, unit, str(r["checkpoints"]), *(_fmt(r[c]) for c in ("mean", "min", "max")))
    console.print(tbl)
    for f in summary["failures"]:
        err_console.print(
            f"[bold red]failed[/] {escape(f['run'])}@{escape(f['checkpoint'])}: {escape(f['error'])}"
        )
    if summary.get("output"):
        console.print(f"wrote {escape(summary['output'])}", highlight=False)
    if summary.get("accuracy_output"):
        console.print(f"wrote {escape(summary['accuracy_output'])}", highlight=False)


def _fmt(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"
