"""PromptShift command line.

    python run_bench.py                      run the default suite, then rebuild the leaderboards
    python run_bench.py run --suite NAME     run another suite (same options as the default run)
    python run_bench.py run --workers N      N local worker processes (default: one per core)
    python run_bench.py run --executor slurm|ray   run the cells as a SLURM job array (submitit) or Ray tasks
    python run_bench.py list [--json]        every registered strategy, scenario, backbone and suite
    python run_bench.py leaderboard          rebuild every leaderboard from stored results (no training)
    python run_bench.py pretrain             re-create the embedded backbones by the suite's recipe
    python run_bench.py check-plugin FILE    run the strategy contract on a plugin file (tiny CPU models)
    python run_bench.py submit FILE.json     validate a results file and merge it into the leaderboards
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("run", "list", "leaderboard", "pretrain", "check-plugin", "submit")


def _csv(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_bench.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run a suite (the default command)")
    run.add_argument("--suite", default="default", help="suite name (bench/suites/NAME.yaml) or YAML path")
    run.add_argument("--strategies", help="comma-separated strategy names (default: the suite's)")
    run.add_argument("--scenarios", help="comma-separated scenario names (default: the suite's)")
    run.add_argument("--seeds", help="comma-separated seeds (default: the suite's)")
    run.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
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
    run.add_argument("--ray-address", default=None, help="ray: the cluster to join (default: RAY_ADDRESS or a "
                                                         "local instance)")
    lst = sub.add_parser("list", help="list strategies, scenarios, backbones and suites")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.add_argument("--plugin", action="append", default=[])
    lst.add_argument("--fresh", action="store_true", help="rebuild the cached listing (import every strategy)")
    board = sub.add_parser("leaderboard", help="rebuild leaderboards from stored results")
    board.add_argument("--results", default=str(ROOT / "results"))
    board.add_argument("--leaderboards", default=str(ROOT / "leaderboards"))
    pre = sub.add_parser("pretrain", help="pretrain the embedded backbones (writes checkpoints/)")
    pre.add_argument("--only", help="comma-separated: vit, clip, coca")
    pre.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    check = sub.add_parser("check-plugin", help="run the strategy contract on a plugin file")
    check.add_argument("path", help="a Python file registering one or more strategies")
    check.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                       help="config override for the check runs, e.g. --set epochs=10 (value parsed as JSON)")
    submit = sub.add_parser("submit", help="validate a result record (JSON) and merge it into the leaderboards")
    submit.add_argument("path", help="one cell's record, following bench/schema/result.schema.json")
    submit.add_argument("--results", default=str(ROOT / "results"))
    submit.add_argument("--leaderboards", default=str(ROOT / "leaderboards"))
    return parser


def _quiet_libraries() -> None:
    # avalanche-lib imports qpsolvers, which warns about optional solvers this suite never uses.
    warnings.filterwarnings("ignore", message="no QP solver found")


def load_plugins(paths: list[str]) -> None:
    from bench.contract.plugins import load_plugins as load
    load(paths)


def cmd_list(args: argparse.Namespace) -> int:
    from bench.run.listing import listing  # cached: no torch import unless the sources changed

    data = listing(args.plugin, fresh=args.fresh)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    print("strategies:")
    for name, info in data["strategies"].items():
        print(f"  {name:<22} {info['family']:<16} on {'/'.join(info['backbones']):<9} flags: {info['flags']}")
    print("scenarios:")
    for name, info in data["scenarios"].items():
        print(f"  {name:<22} {info['kind']:<19} {info['description']}")
    print("backbones:")
    for name, info in data["backbones"].items():
        print(f"  {name:<34} {info['family']:<5} {info['description']}")
    print("suites: " + ", ".join(data["suites"]))
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from bench.report.leaderboard import build_leaderboards

    paths = build_leaderboards(Path(args.results), Path(args.leaderboards))
    print(f"wrote {len(paths)} files under {args.leaderboards}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import strategies  # noqa: F401
    from bench.core.registry import UnknownNameError
    from bench.eval.robustness import robustness_hook
    from bench.report.leaderboard import build_leaderboards
    from bench.run.executors import make_executor
    from bench.run.runner import run_grid
    from bench.run.suite import SuiteError, expand, load_suite

    load_plugins(args.plugin)
    try:
        suite = load_suite(args.suite)
        seeds = [int(s) for s in _csv(args.seeds)] if args.seeds else None
        cells, skipped = expand(suite, _csv(args.strategies), _csv(args.scenarios), seeds)
    except (SuiteError, UnknownNameError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if skipped:
        print(f"skipping {len(skipped)} (strategy, scenario) pairs the strategy does not support, e.g. {skipped[0]}")
    if args.workers is not None and args.workers < 0:
        print(f"error: --workers {args.workers}: expected 0 or more", file=sys.stderr)
        return 2
    try:
        executor = make_executor(args.executor, args.workers, args.results, args.device, args.cells_per_task,
                                 _overrides(args.slurm), args.ray_address)
    except (ValueError, ImportError) as error:
        print(f"error: --executor {args.executor}: {error}", file=sys.stderr)
        return 2
    print(f"suite {suite.name} v{suite.version}: {len(cells)} cells -> {args.results}, {executor.describe()}")
    records = run_grid(cells, args.results, args.device, not args.no_progress, after_training=robustness_hook(),
                       executor=executor, plugins=args.plugin)
    failed = [r for r in records if r.get("status") != "ok"]
    paths = build_leaderboards(Path(args.results), Path(args.leaderboards))
    print(f"{len(records) - len(failed)} cells ok, {len(failed)} failed; leaderboards: {args.leaderboards} "
          f"({len(paths)} files)")
    return 1 if failed else 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from bench.models.pretrain import pretrain_all

    pretrain_all(_csv(args.only), args.device)
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
    from bench.contract.plugins import precheck_plugin_file

    try:
        overrides = _overrides(args.set)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    precheck_plugin_file(args.path)  # a missing file or a syntax error is reported before torch loads
    print(f"checking {args.path} on tiny CPU models...", flush=True)
    from bench.contract.check import main as check

    return check(args.path, overrides)


def cmd_submit(args: argparse.Namespace) -> int:
    from bench.run.submit import submit_file

    return submit_file(Path(args.path), Path(args.results), Path(args.leaderboards))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS + ("-h", "--help"):
        argv = ["run", *argv]
    args = _parser().parse_args(argv)
    _quiet_libraries()
    handlers = {"run": cmd_run, "list": cmd_list, "leaderboard": cmd_leaderboard, "pretrain": cmd_pretrain,
                "check-plugin": cmd_check_plugin, "submit": cmd_submit}
    from bench.contract.plugins import PluginError

    try:
        return handlers[args.command](args)
    except PluginError as error:  # one clear paragraph, not a traceback wall
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted(args)


def _interrupted(args: argparse.Namespace) -> int:
    """Ctrl-C: workers have stopped and finished cells are on disk; say how to go on, exit 130 (128 + SIGINT)."""
    print("\ninterrupted.", file=sys.stderr)
    if args.command == "run":
        script = sys.argv[0]
        command = [sys.executable, script, *sys.argv[1:]] if script.endswith(".py") else sys.argv
        print(f"Finished cells are saved in {args.results}; interrupted cells were released, not recorded.\n"
              f"Resume (finished cells are skipped) with:\n  {shlex.join(command)}", file=sys.stderr)
    return 130


if __name__ == "__main__":
    sys.exit(main())
