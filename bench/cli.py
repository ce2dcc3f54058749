"""PromptShift command line (`promptshift` once installed; `python run_bench.py` in a checkout is the same).

    promptshift                      run the default suite, then rebuild the leaderboards
    promptshift run --suite NAME     run another suite (same options as the default run)
    promptshift run --workers N      N local worker processes (default: one per core)
    promptshift run --executor slurm|ray   run the cells as a SLURM job array (submitit) or Ray tasks
    promptshift run --executor slurm --dry-run   print the sbatch array that would be submitted
    promptshift status / collect     progress of a `--no-wait` submission / its leaderboards once done
    promptshift plan --suite NAME    print the cells and which data sources / weights are missing
    promptshift list [--json]        every registered strategy, scenario, backbone and suite
    promptshift leaderboard          rebuild every leaderboard from stored results (no training)
    promptshift tune [--suite NAME]  pick each strategy's lr, epochs and knobs on validation data (same budget for all)
    promptshift pretrain             re-create the embedded backbones by the suite's recipe
    promptshift check-plugin FILE    run the strategy contract on a plugin file (tiny CPU models)
    promptshift submit FILE.json     validate a results file and merge it into the leaderboards
    promptshift --version            the installed version

Results and leaderboards go to ./results and ./leaderboards of the current directory unless --results and
--leaderboards say otherwise (in a checkout, run from its root to update the committed leaderboards/).
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import shlex
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports torch-backed modules lazily, per command
    from bench.run.suite import Suite
    from bench.run.tune import TuneBudget

# Where results/ and leaderboards/ go by default: the current directory, wherever the package is installed (never
# next to the source files, which may sit in a read-only site-packages).
ROOT = Path()
COMMANDS = ("run", "plan", "list", "leaderboard", "tune", "pretrain", "check-plugin", "submit", "status",
            "collect")


def version() -> str:
    """The installed distribution's version (from its metadata, so it cannot drift from pyproject.toml)."""
    try:
        return metadata.version("promptshift")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: `pip install -e .` in the checkout)"


def _csv(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="promptshift", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command")
    run = argparse.ArgumentParser(add_help=False)  # the options `run` and `plan` share
    run.add_argument("--suite", default="default", help="suite name (bench/suites/NAME.yaml) or YAML path")
    run.add_argument("--strategies", help="comma-separated strategy names (default: the suite's)")
    run.add_argument("--scenarios", help="comma-separated scenario names (default: the suite's)")
    run.add_argument("--seeds", help="comma-separated seeds (default: the suite's)")
    run.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                     help="where cells compute (auto: CUDA when torch sees a GPU, else the CPU)")
    run.add_argument("--results", default=str(ROOT / "results"), help="directory of per-cell result files")
    run.add_argument("--leaderboards", default=str(ROOT / "leaderboards"), help="where tables are written")
    run.add_argument("--plugin", action="append", default=[], help="a Python file registering a strategy")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--workers", type=int, default=None, metavar="N",
                     help="local: N worker processes, a fresh one per cell (default: one per core; 0: in this "
                          "process, one cell after another); ray: CPUs of a local Ray instance")
    run.add_argument("--executor", default="local", choices=("local", "slurm", "ray"),
                     help="where cells run: local processes, a SLURM job array (submitit), or Ray tasks")
    run.add_argument("--cells-per-task", type=int, default=1, metavar="K",
                     help="slurm: cells run one after another in each array task")
    run.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                     help="slurm: a submitit parameter, e.g. --slurm slurm_partition=gpu --slurm timeout_min=120")
    run.add_argument("--slurm-profile", default=None, metavar="FILE",
                     help="slurm: a profile YAML (partition, gpus, cpus_per_task, mem_gb, time_min, "
                          "array_parallelism, max_requeues; defaults in bench/run/slurm.py)")
    run.add_argument("--no-wait", action="store_true",
                     help="slurm: submit the array and exit; `promptshift status` / `collect` later")
    run.add_argument("--ray-address", default=None, help="ray: the cluster to join (default: RAY_ADDRESS or a "
                                                         "local instance)")
    run.add_argument("--data-root", help="folder holding the real data sets (sets PROMPTSHIFT_DATA for this run)")
    run.add_argument("--dry-run", action="store_true", help="print the plan (cells, missing sources / weights), "
                     "run nothing")
    run.add_argument("--force", action="store_true",
                     help="rebuild the leaderboards even if that drops tables or rows they have now")
    run.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                     help="wall-clock limit per cell (default: the suite's time_limit_s, else none); a cell past it "
                          "is stopped and recorded as timed out, the run goes on")
    run.add_argument("--checkpoint-every", type=float, default=None, metavar="MINUTES",
                     help="inside a task, save the cell's checkpoint at the first epoch boundary this many minutes "
                          "after the last save (default: $PROMPTSHIFT_CHECKPOINT_MINUTES, else 10; 0: every epoch; "
                          "negative: only after each task)")
    sub.add_parser("run", parents=[run], help="run a suite (the default command)")
    # not set_defaults(dry_run=True): the parents' actions are shared, and it would make every `run` a dry run
    sub.add_parser("plan", parents=[run], help="print the cells and which data sources / weights are missing; "
                   "run nothing (same options as run)")
    lst = sub.add_parser("list", help="list strategies, scenarios, backbones and suites")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.add_argument("--plugin", action="append", default=[], help="a Python file registering a strategy")
    lst.add_argument("--data-root", help="where to look for the real data sets (default: $PROMPTSHIFT_DATA)")
    lst.add_argument("--fresh", action="store_true", help="rebuild the cached listing (import every strategy)")
    status = sub.add_parser("status", help="progress of a `run --executor slurm --no-wait` submission")
    status.add_argument("--results", default=str(ROOT / "results"))
    collect = sub.add_parser("collect", help="status of a submission, then its leaderboards (like `leaderboard`)")
    collect.add_argument("--results", default=str(ROOT / "results"))
    collect.add_argument("--leaderboards", default=str(ROOT / "leaderboards"))
    collect.add_argument("--force", action="store_true",
                         help="rebuild even if that drops tables or rows the leaderboards have now")
    board = sub.add_parser("leaderboard", help="rebuild leaderboards from stored results")
    board.add_argument("--results", default=str(ROOT / "results"), help="directory of per-cell result files")
    board.add_argument("--leaderboards", default=str(ROOT / "leaderboards"), help="where tables are written")
    board.add_argument("--force", action="store_true",
                       help="rebuild even if that drops tables or rows the leaderboards have now")
    tune = sub.add_parser("tune", help="tune every strategy's lr, epochs and method knobs on images held out of the "
                                       "first two tasks' training data, and the seq2seq strategies' lr and steps on "
                                       "the multimodal streams' val splits (writes tuning/<suite>.csv/.yaml)")
    tune.add_argument("--suite", default="default", help="suite name (bench/suites/NAME.yaml) or YAML path")
    tune.add_argument("--strategies", help="comma-separated labels to (re)tune; the other rows are kept")
    tune.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the trials compute")
    tune.add_argument("--out", help="folder for <suite>.csv/.yaml (default: tuning/ beside the suite in a "
                      "source checkout, else ./tuning; an installed package is never written to)")
    tune.add_argument("--fresh", action="store_true", help="rerun every trial, even those already in the table "
                                                           "(after a change to a strategy's code)")
    pre = sub.add_parser("pretrain", help="pretrain the embedded backbones (writes ./checkpoints/)")
    pre.add_argument("--only", help="comma-separated: vit, clip, coca")
    pre.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to train")
    pre.add_argument("--out", default="checkpoints", help="folder for the new checkpoints (default ./checkpoints; "
                     "runs load them with PROMPTSHIFT_CHECKPOINTS=<folder>; in a checkout, "
                     "bench/models/checkpoints_data rewrites the committed ones)")
    check = sub.add_parser("check-plugin", help="run the strategy contract on a plugin file")
    check.add_argument("path", help="a Python file registering one or more strategies")
    check.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                       help="config override for the check runs, e.g. --set epochs=10 (value parsed as JSON)")
    submit = sub.add_parser("submit", help="validate a result record (JSON) and merge it into the leaderboards")
    submit.add_argument("path", help="one cell's record, following bench/schema/result.schema.json")
    submit.add_argument("--results", default=str(ROOT / "results"), help="directory of per-cell result files")
    submit.add_argument("--leaderboards", default=str(ROOT / "leaderboards"), help="where tables are written")
    submit.add_argument("--replace", action="store_true", help="replace an earlier submission of the same config")
    submit.add_argument("--force", action="store_true",
                        help="rebuild the leaderboards even if that drops tables or rows they have now")
    return parser


def _quiet_libraries() -> None:
    # avalanche-lib imports qpsolvers, which warns about optional solvers this suite never uses.
    warnings.filterwarnings("ignore", message="no QP solver found")


def load_plugins(paths: list[str]) -> None:
    from bench.contract.plugins import load_plugins as load
    load(paths)


def cmd_list(args: argparse.Namespace) -> int:
    from bench.run.listing import listing  # cached: no torch import unless the sources changed
    from scenarios.sources import source_status

    data = listing(args.plugin, fresh=args.fresh)

    def data_needs(source: str | None) -> dict[str, object]:  # live: the data root is not part of the cache
        if not source:
            return {"source": None, "needs_root": False}
        found, text = source_status(source, args.data_root)
        return {"source": source, "needs_root": True, "found": found, "status": text}

    for info in data["scenarios"].values():
        info.update(data_needs(info.get("source")))
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    def width(items: dict, key: str | None = None) -> int:  # columns as wide as their longest entry
        return max((len(name if key is None else str(info[key])) for name, info in items.items()), default=0)

    strategies, scenarios, backbones = data["strategies"], data["scenarios"], data["backbones"]
    print("strategies:")
    for name, info in strategies.items():
        print(f"  {name:<{width(strategies)}} {info['family']:<{width(strategies, 'family')}} "
              f"on {'/'.join(info['backbones']):<9} flags: {info['flags']}")
    print("scenarios:")
    for name, info in scenarios.items():
        where = f"  [{info['source']}: {info['status']}]" if info["needs_root"] else ""
        print(f"  {name:<{width(scenarios)}} {info['kind']:<{width(scenarios, 'kind')}} {info['description']}{where}")
    print("backbones:")
    for name, info in backbones.items():
        print(f"  {name:<{width(backbones)}} {info['family']:<{width(backbones, 'family')}} {info['description']}")
    print("suites: " + ", ".join(data["suites"]))
    kinds = data.get("task_kinds") or {}
    if kinds:  # the multimodal scenarios' task kinds and the metric each is scored by
        print("task kinds (multimodal scenarios): " + "; ".join(f"{k}: {m}" for k, m in kinds.items()))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from bench.run.slurm import status_lines

    print("\n".join(status_lines(args.results)))
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    cmd_status(args)
    return cmd_leaderboard(args)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from bench.report.leaderboard import build_leaderboards

    paths = build_leaderboards(Path(args.results), Path(args.leaderboards), force=args.force,
                               echo=print)  # prints failing sanity checks
    print(f"wrote {len(paths)} files under {args.leaderboards}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bench.run.cached_run import finished_records, run_key

    args.dry_run = args.dry_run or args.command == "plan"

    try:  # options that need no suite are checked first: the fully cached path below must refuse them too
        if args.data_root:  # the environment carries it to every cell, in this process or a worker's
            os.environ["PROMPTSHIFT_DATA"] = _data_root(args.data_root)
        if args.time_limit is not None and not args.time_limit > 0:
            raise ValueError(f"--time-limit {args.time_limit:g}: expected a positive number of seconds")
        if args.checkpoint_every is not None:  # the environment carries it to every cell, as --data-root
            os.environ["PROMPTSHIFT_CHECKPOINT_MINUTES"] = repr(args.checkpoint_every)
        _checkpoint_minutes(os.environ.get("PROMPTSHIFT_CHECKPOINT_MINUTES", ""))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # A rerun whose cells are all finished: tables only, without torch or workers (bench/run/cached_run.py).
    key = run_key(args.suite, {"strategies": args.strategies, "scenarios": args.scenarios, "seeds": args.seeds},
                  args.plugin) if not args.dry_run else None
    simple = (args.executor == "local" and args.device != "cuda" and (args.workers or 0) >= 0
              and all(Path(p).is_file() for p in args.plugin))  # else the full path names the problem
    cached = finished_records(key, args.results) if simple else None
    if cached is not None:
        return _tables_only(args, cached)
    pool = args.executor == "local" and args.workers != 0 and not args.dry_run
    if pool and not _has_results(args.results):  # a fresh run: workers load torch while the suite is checked
        _prestart(args)
        pool = False
    if args.dry_run and not args.plugin and args.device != "cuda":  # a plan from the cached listing: no torch
        planned = _plan_from_listing(args)
        if planned is not None:
            return planned
    import strategies  # noqa: F401
    from bench.core.registry import UnknownNameError
    from bench.eval.robustness import robustness_hook
    from bench.core.store import ResultStore
    from bench.run.cached_run import remember
    from bench.run.executors import make_executor
    from bench.run.order import by_past_seconds
    from bench.run.runner import run_grid
    from bench.core.device import select_device
    from bench.core.paths import check_output_dir
    from bench.run.suite import SuiteError, expand, load_suite

    from bench.core.strategy import STRATEGIES

    builtin = set(STRATEGIES.names())  # before any plugin registers: built-in cells never run beside plugin code
    load_plugins(args.plugin)
    try:  # everything a user wrote is checked before any data is built or any cell runs
        select_device(args.device)
        check_output_dir(args.results, "--results")
        check_output_dir(args.leaderboards, "--leaderboards")
        suite = load_suite(args.suite)
        seeds = _seeds(args.seeds)
        cells, skipped = expand(suite, _csv_given(args.strategies), _csv_given(args.scenarios), seeds)
        if args.plugin and args.workers == 0 and any(c.strategy in builtin for c in cells):
            raise ValueError("--workers 0 runs every cell in this process, where --plugin's code is loaded: a "
                             "plugin could change a built-in cell's numbers. Use worker processes (--workers 1 "
                             "or more), which load a plugin only for its own cells")
    except (SuiteError, UnknownNameError, ValueError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if skipped:
        print(f"skipping {len(skipped)} (strategy, scenario) pairs the strategy does not support, e.g. {skipped[0]}")
    from bench.run.plan import check_sources

    if args.dry_run:
        return _print_plan(args, suite, cells)
    from bench.eval.robustness import missing_autoattack

    problems = check_sources(cells) + [m for m in [missing_autoattack(cells)] if m]
    if problems:  # nothing runs, and never a fallback to the embedded glyphs
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 0:
        print(f"error: --workers {args.workers}: expected 0 or more", file=sys.stderr)
        return 2
    try:
        executor = make_executor(args.executor, args.workers, args.results, args.device, args.cells_per_task,
                                 _overrides(args.slurm), args.ray_address, args.slurm_profile)
    except (ValueError, ImportError) as error:
        print(f"error: --executor {args.executor}: {error}", file=sys.stderr)
        return 2
    store = ResultStore(Path(args.results))
    todo = [c for c in cells if not store.is_done(c.cell_id())]
    if pool and todo:
        _prestart(args)  # only when a cell is left to compute
    if any(c.robustness for c in todo):
        from bench.core.device import flush_denormals
        from bench.eval.robustness import pregenerate_corrupted_sets

        flush_denormals()  # this process computes too, now
        made = pregenerate_corrupted_sets(todo)
        if made["sets"]:
            print(f"corrupted evaluation sets: {made['sets']} ready in {made['seconds']:.0f} s, before the cells "
                  f"(not counted in any cell's robustness time)")
    print(f"suite {suite.name} v{suite.version}: {len(cells)} cells -> {args.results}, {executor.describe()}")
    if args.no_wait:
        return _submit_and_exit(cells, args, executor)
    records = run_grid(cells, args.results, args.device, not args.no_progress, after_training=robustness_hook(),
                       executor=executor, plugins=args.plugin, estimate=by_past_seconds(args.leaderboards),
                       time_limit=args.time_limit or suite.time_limit_s)
    failed = [r for r in records if r.get("status") != "ok"]
    if len(failed) == len(records):  # nothing new to show: the tables stay as they are
        print(f"error: all {len(failed)} cells failed (see {args.results}/logs/); leaderboards left unchanged",
              file=sys.stderr)
        return 1
    if not failed:
        remember(key, [c.cell_id() for c in cells])
    paths, where = _write_tables(args, records)
    print(f"{len(records) - len(failed)} cells ok, {len(failed)} failed; leaderboards: {where} "
          f"({len(paths)} files)")
    return 1 if failed else 0


def _plan_from_listing(args: argparse.Namespace) -> int | None:
    """`plan` (or `run --dry-run`) with strategies and backbones read from the cached listing (bench.run.catalog):
    the same checks, cells and ids as the full path, without importing torch. None when the listing cannot stand
    for the registries (a config field of a type it cannot rebuild) or this process has them already; the caller
    then takes the full path."""
    from bench.core.paths import check_output_dir
    from bench.core.registry import UnknownNameError
    from bench.run.catalog import listed_catalog
    from bench.run.listing import listing
    from bench.run.suite import SuiteError, expand, load_suite

    if "bench.core.strategy" in sys.modules:  # the registries are loaded already (a test, an embedding program)
        return None
    catalog = listed_catalog(listing())
    if catalog is None:
        return None
    try:  # the checks of cmd_run's full path, in its order (--device cpu/auto needs no check)
        check_output_dir(args.results, "--results")
        check_output_dir(args.leaderboards, "--leaderboards")
        suite = load_suite(args.suite, catalog)
        cells, skipped = expand(suite, _csv_given(args.strategies), _csv_given(args.scenarios), _seeds(args.seeds),
                                catalog)
    except (SuiteError, UnknownNameError, ValueError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if skipped:
        print(f"skipping {len(skipped)} (strategy, scenario) pairs the strategy does not support, e.g. {skipped[0]}")
    return _print_plan(args, suite, cells)


def _print_plan(args: argparse.Namespace, suite, cells: list) -> int:
    """Print what the run would do (and the sbatch array for --executor slurm); 2 when something it needs is
    missing."""
    from bench.run.plan import plan

    lines, ready = plan(cells)
    print(f"suite {suite.name} v{suite.version}: plan (nothing runs)")
    print("\n".join(lines))
    if args.executor == "slurm":  # the array as sbatch would get it; needs no SLURM here
        from bench.run.slurm import array_script, load_profile

        profile = load_profile(args.slurm_profile, {k: v for k, v in _overrides(args.slurm).items()
                                                    if not k.startswith(("slurm_", "timeout_min"))})
        tasks = -(-len(cells) // max(1, args.cells_per_task))
        print(f"slurm array: {tasks} task(s) of {args.cells_per_task} cell(s), profile "
              f"{args.slurm_profile or '(defaults)'}:\n{profile.model_dump_json(indent=None)}")
        print(array_script(profile, args.device, tasks, Path(args.results) / "submitit"))
        minutes = float(os.environ.get("PROMPTSHIFT_CHECKPOINT_MINUTES") or 10)
        inside = (f"and at the first epoch boundary {minutes:g} min after the last save" if minutes >= 0 else
                  "only (none inside a task)")
        print(f"checkpoints: {Path(args.results) / 'checkpoints'}, after each task {inside}; a requeued task "
              f"resumes its cell there (--checkpoint-every, PROMPTSHIFT_CHECKPOINT_MINUTES)")
    return 0 if ready else 2


def _checkpoint_minutes(text: str) -> None:
    """Refuse a PROMPTSHIFT_CHECKPOINT_MINUTES that is not a number before any cell starts."""
    try:
        float(text or 0)
    except ValueError:
        raise ValueError(f"PROMPTSHIFT_CHECKPOINT_MINUTES={text!r}: expected a number of minutes") from None


def _data_root(text: str) -> str:
    """The absolute data root; a symlink loop is a one-line error, not a traceback."""
    try:
        return str(Path(text).expanduser().resolve(strict=False))
    except (RuntimeError, OSError) as error:
        raise ValueError(f"--data-root {text}: cannot be resolved ({error})") from None


def _has_results(results: str) -> bool:
    folder = Path(results)
    return folder.is_dir() and any(folder.glob("*.json"))


def _prestart(args: argparse.Namespace) -> None:
    from bench.run.executors import prestart_pool

    prestart_pool(args.workers if args.workers and args.workers > 0 else None)


def _tables_only(args: argparse.Namespace, records: list[dict]) -> int:
    """`run` when every cell is finished: rebuild the tables from the records, nothing else."""
    from bench.core.paths import check_output_dir

    try:
        check_output_dir(args.results, "--results")
        check_output_dir(args.leaderboards, "--leaderboards")
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"suite {args.suite}: all {len(records)} cells are finished in {args.results}; nothing to compute")
    paths, where = _write_tables(args, records)
    print(f"leaderboards: {where} ({len(paths)} files)")
    return 0


def _write_tables(args: argparse.Namespace, records: list[dict]) -> tuple[list[Path], Path]:
    """Rebuild the leaderboards, then print the run's summary table. When the leaderboards hold rows this results
    folder lacks (a plugin's cells run in a checkout whose committed tables have the whole suite), the tables go
    beside the results folder instead, and the message says where: the run's work is never lost to a refusal."""
    from bench.report.leaderboard import LeaderboardLossError, build_leaderboards
    from bench.report.summary import summary_table

    where = Path(args.leaderboards)
    try:
        paths = build_leaderboards(Path(args.results), where, force=args.force, echo=print)
    except LeaderboardLossError:
        if args.leaderboards != str(ROOT / "leaderboards"):
            raise  # a folder the user named: their call (--force), not a silent detour
        where = Path(f"{Path(args.results)}-leaderboards")
        paths = build_leaderboards(Path(args.results), where, force=True, echo=print)
        print(f"note: {args.leaderboards}/ has tables or rows that {args.results}/ lacks (e.g. the committed "
              f"suite's), so it was left as it is.\nThis run's tables are in {where}/ (open {where}/index.html); "
              f"compare with {args.leaderboards}/, or pass --force to rebuild {args.leaderboards}/ from "
              f"{args.results}/ alone.")
    print(summary_table(records))
    return paths, where


def _submit_and_exit(cells: list, args: argparse.Namespace, executor) -> int:
    """Submit the unfinished cells as one array, write results/submitted.json, and return at once."""
    from bench.core.store import ResultStore
    from bench.run.data_identity import attach_data_identity
    from bench.run.runner import CellTask
    from bench.run.slurm import write_manifest

    if args.executor != "slurm":
        print("error: --no-wait needs --executor slurm", file=sys.stderr)
        return 2
    cells = attach_data_identity(cells)
    store = ResultStore(Path(args.results))
    todo = [c for c in cells if not store.is_done(c.cell_id())]
    tasks = [CellTask(c, str(args.results), args.device, tuple(args.plugin)) for c in todo]
    jobs = executor.submit(tasks) if tasks else []
    job_ids = sorted({str(job.job_id).split("_")[0] for job in jobs})
    write_manifest(args.results, job_ids, [c.cell_id() for c in cells])
    print(f"submitted {len(todo)} cells ({len(cells) - len(todo)} already done) as job(s) {', '.join(job_ids)}; "
          f"later: promptshift status --results {args.results}, then promptshift collect")
    return 0


def _csv_given(text: str | None) -> list[str] | None:
    """None when the option was not given; a list (maybe empty, e.g. `--strategies ,`) when it was."""
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def _seeds(text: str | None) -> list[int] | None:
    names = _csv_given(text)
    try:
        return None if names is None else [int(s) for s in names]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected comma-separated integers") from None


def cmd_tune(args: argparse.Namespace) -> int:
    import strategies  # noqa: F401
    from bench.core.device import select_device
    from bench.core.registry import UnknownNameError
    from bench.run.suite import SuiteError, load_suite, suite_path
    from bench.run.tune import TuneBudget, default_out_dir, tune_suite

    try:
        suite = load_suite(args.suite)
        path = suite_path(args.suite)
        labels = _csv(args.strategies)
        known = {e.label or e.name for e in suite.strategies}
        unknown = sorted(set(labels or []) - known)
        if unknown:
            raise SuiteError(f"suite {suite.name!r} has no strategy entries {unknown}; entries: {sorted(known)}")
    except (SuiteError, UnknownNameError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from bench.core.device import flush_denormals

    flush_denormals()  # the trials compute in this process (bench.core.device.flush_denormals: why)
    try:
        budget = TuneBudget.for_suite(suite)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else default_out_dir(path)
    print(f"tuning suite {suite.name} v{suite.version}: {budget.trials} trials per strategy, validation = "
          f"{_validation_said(suite, budget)}; tables in {out}")
    tune_suite(suite, path, budget, select_device(args.device), labels, fresh=args.fresh, out_dir=out)
    return 0


def _validation_said(suite: Suite, budget: TuneBudget) -> str:
    """What the trials of `suite` score: a seq2seq method each multimodal task's own val split
    (bench/run/tune_seq2seq.py), a classifier a carve of the first tasks' training images."""
    from bench.run.seq2seq_strategies import trained_in_steps

    in_steps = {trained_in_steps(entry.name) for entry in suite.strategies}
    said = []
    if False in in_steps:
        said.append(f"{budget.val_fraction:.0%} of the first {budget.val_tasks} tasks' training images (classifiers)")
    if True in in_steps:
        said.append("each multimodal task's own val split (seq2seq methods)")
    return "; ".join(said)


def cmd_pretrain(args: argparse.Namespace) -> int:
    from bench.models.checkpoint_out import ENV, check_families, prepare_output

    try:
        check_families(_csv_given(args.only))
        out = prepare_output(args.out)  # before bench.models.checkpoints is imported: it reads the folder once
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from bench.core.device import flush_denormals
    from bench.models.pretrain import pretrain_all

    flush_denormals()  # pretraining computes in this process
    try:
        pretrain_all(_csv_given(args.only), args.device)
    except PermissionError as error:  # a read-only folder: said before any training starts
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"checkpoints written to {out}; run with them: {ENV}={out} promptshift run ...")
    return 0


def _overrides(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value  # a bare word is a string
    return out


def cmd_check_plugin(args: argparse.Namespace) -> int:
    from bench.contract.plugins import PluginError, precheck_plugin_file

    try:
        overrides = _overrides(args.set)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        precheck_plugin_file(args.path)  # a missing file or a syntax error is reported before torch loads
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"checking {args.path} on tiny CPU models...", flush=True)
    from bench.contract.check import main as check

    return check(args.path, overrides)


def cmd_submit(args: argparse.Namespace) -> int:
    from bench.run.submit import submit_file

    return submit_file(Path(args.path), Path(args.results), Path(args.leaderboards), replace=args.replace,
                       force=args.force)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        # A bare word is never a run option: `lsit` is a misspelt command, not `run lsit`.
        close = difflib.get_close_matches(argv[0], COMMANDS, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(f"error: unknown command {argv[0]!r}.{hint} Commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if not argv or argv[0] not in COMMANDS + ("-h", "--help", "--version"):
        argv = ["run", *argv]
    args = _parser().parse_args(argv)
    for option in ("results", "leaderboards", "data_root"):  # Path('') is the current folder: never meant
        if isinstance(getattr(args, option, None), str) and not getattr(args, option).strip():
            print(f"error: --{option.replace('_', '-')} is empty; name a folder", file=sys.stderr)
            return 2
    _quiet_libraries()
    handlers = {"run": cmd_run, "plan": cmd_run, "list": cmd_list, "leaderboard": cmd_leaderboard, "tune": cmd_tune,
                "pretrain": cmd_pretrain, "check-plugin": cmd_check_plugin, "submit": cmd_submit,
                "status": cmd_status, "collect": cmd_collect}
    from bench.run.lifetime import stop_signals_interrupt

    try:
        with stop_signals_interrupt():  # SIGTERM and SIGHUP stop a command the way Ctrl-C does
            return handlers[args.command](args)
    except KeyboardInterrupt as stop:
        return _interrupted(args, getattr(stop, "signum", 2))
    except Exception as error:
        if not isinstance(error, _user_errors()):
            raise
        # one clear paragraph, not a traceback wall (OSError: a folder that cannot be written, a record kept aside)
        print(f"error: {error}", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors shown as one line. Imported only once one happened: the leaderboard module loads pandas and torch,
    which `list`, `--help` and `check-plugin` on a bad file must not wait for."""
    from bench.contract.plugins import PluginError
    from bench.core.registry import UnknownNameError
    from bench.report.leaderboard import LeaderboardLossError

    return (PluginError, LeaderboardLossError, UnknownNameError, OSError, ValueError)


def _interrupted(args: argparse.Namespace, signum: int = 2) -> int:
    """Ctrl-C (or SIGTERM, SIGHUP): workers have stopped and finished cells are on disk; say how to go on, exit
    128 + the signal's number (130 for Ctrl-C)."""
    print("\ninterrupted." if signum == 2 else f"\nstopped by signal {signum}.", file=sys.stderr)
    if args.command in ("run", "plan"):
        script = sys.argv[0]
        command = [sys.executable, script, *sys.argv[1:]] if script.endswith(".py") else sys.argv
        print(f"Finished cells are saved in {args.results}; interrupted cells were released, not recorded.\n"
              f"Resume (finished cells are skipped) with:\n  {shlex.join(command)}", file=sys.stderr)
    return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
