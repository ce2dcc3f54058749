"""Mutation check over the prompt mechanisms, their shared plumbing and the training/evaluation loop.

    OMP_NUM_THREADS=1 python scripts/mutate.py                 # the named mutants of issue 20 (~5 CPU-minutes)
    OMP_NUM_THREADS=1 python scripts/mutate.py --ast 4         # + 4 random operator mutants per target file
    python scripts/mutate.py --list                            # what would be planted, without running anything

Each mutant is planted in a scratch copy of the repository (the working tree is never edited), then only the
test files that cover the mutated file run (`pytest -x`); a failing run kills the mutant. Prints killed/survived
per file and exits 1 if any named mutant survives or no longer applies (its line changed: update the catalogue).

Why a small hand-written mutator and not mutmut (3.x, installable from PyPI): mutmut rewrites every function of
every module into trampolines under `mutants/`, then collects per-test coverage by running the whole suite
(over 1,000 tests here, tens of CPU-minutes on this 2-core machine) before it mutates anything; and its operators
are generic, so they cannot plant the specific wrong mechanisms issue 20 names (halves swapped, a term dropped,
a line deleted), which are the ones a reviewer found surviving. The named catalogue plants exactly those; the
optional `--ast` mode adds generic operator mutants (arithmetic, comparisons, constants, deleted statements) for
a sampled view of everything else.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

VIT_TESTS = ("tests/test_mutants_vit_prompts.py",)
CLIP_TESTS = ("tests/test_mutants_clip_prompts.py",)
HARNESS_TESTS = ("tests/test_mutants_harness.py",)


@dataclass(frozen=True)
class Mutant:
    """A one-line bug: `old` (which must occur exactly once in `file`) replaced by `new`."""

    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


CATALOGUE = (
    # DualPrompt
    Mutant("dualprompt: key/value halves swapped", "strategies/dualprompt.py",
           "return {layer: (kv[0], kv[1]) for", "return {layer: (kv[1], kv[0]) for", VIT_TESTS),
    Mutant("dualprompt: E-prompt value half used twice", "strategies/dualprompt.py",
           "append(expert[:, i].transpose(0, 1))", "append(expert[:, i][:, [1, 1]].transpose(0, 1))", VIT_TESTS),
    Mutant("dualprompt: pull term's sign flipped", "strategies/dualprompt.py",
           "return ce + self.cfg.pull_weight * (1.0 - match)", "return ce - self.cfg.pull_weight * (1.0 - match)",
           VIT_TESTS),
    Mutant("dualprompt: pull term dropped", "strategies/dualprompt.py",
           "return ce + self.cfg.pull_weight * (1.0 - match)", "return ce", VIT_TESTS),
    Mutant("dualprompt: class mask dropped from CE", "strategies/dualprompt.py",
           "ce = F.cross_entropy(mask_logits(logits, ctx.train_classes), batch.y)",
           "ce = F.cross_entropy(logits, batch.y)", VIT_TESTS),
    Mutant("dualprompt: head reads token 1, not [CLS]", "strategies/dualprompt.py",
           "return self.head(bb.final_norm()(tokens)[:, 0]), query",
           "return self.head(bb.final_norm()(tokens)[:, 1]), query", VIT_TESTS),
    Mutant("dualprompt: uncached query computed through the prompted blocks", "strategies/dualprompt.py",
           "cached = bb(x)", "cached = bb.finalize(run_with_prefixes(bb, bb.embed(x), self.prefixes(self.task"
           ".expand(x.shape[0]))))", VIT_TESTS),
    # the query test `frozen_inputs(x) == backbone(x)` compares the wrapped backbone with itself: a bug in the
    # wrapper with no prefix set passes it; the replacement compares with an unwrapped copy
    Mutant("prefix attention: wrapper without prefix attends q to q (query test)", "strategies/_vit_prompting.py",
           "q, k = a.q_norm(q), a.k_norm(k)", "q, k = a.q_norm(q), a.k_norm(q)", VIT_TESTS),
    Mutant("prefix attention: prefix keys and values swapped in attention", "strategies/_vit_prompting.py",
           "pk, pv = self.prefix", "pv, pk = self.prefix", VIT_TESTS + CLIP_TESTS),
    # CODA-Prompt
    Mutant("coda_prompt: class mask dropped from CE", "strategies/coda_prompt.py",
           "F.cross_entropy(mask_logits(self(batch.x, batch.cached), ctx.train_classes), batch.y)",
           "F.cross_entropy(self(batch.x, batch.cached), batch.y)", VIT_TESTS),
    # MaPLe
    Mutant("maple: one coupling map used by all layers", "strategies/maple.py",
           "return [f(p) for f, p in zip(self.couplings, self.text_prompts())]",
           "return [self.couplings[0](p) for p in self.text_prompts()]", CLIP_TESTS),
    Mutant("maple: one coupling module shared by all layers", "strategies/maple.py",
           "[first] + [copy.deepcopy(clone) for _ in range(self.depth - 1)]", "[first] * self.depth", CLIP_TESTS),
    # PromptSRC
    Mutant("promptsrc: image features unnormalised", "strategies/promptsrc.py",
           "return F.normalize(encode_image_deep(self.backbone.visual, x, prompts), dim=-1)",
           "return encode_image_deep(self.backbone.visual, x, prompts)", CLIP_TESTS),
    Mutant("promptsrc: vision prompts only at the input layer", "strategies/promptsrc.py",
           "prompts = list(self.vision_prompts.unbind(0))", "prompts = list(self.vision_prompts.unbind(0))[:1]",
           CLIP_TESTS),
    Mutant("promptsrc: single-template teacher", "strategies/promptsrc.py",
           "for t in TEMPLATES]", "for t in TEMPLATES[:1]]", CLIP_TESTS),
    # prefix tuning / P-tuning v2
    Mutant("prefix tuning: keys and values swapped", "strategies/_vit_prompting.py",
           "return kv[0].unsqueeze(0), kv[1].unsqueeze(0)", "return kv[1].unsqueeze(0), kv[0].unsqueeze(0)",
           CLIP_TESTS),
    Mutant("prefix tuning: ReLU instead of tanh (preset)", "strategies/text_prompts.py",
           'activation = "tanh"', 'activation = "relu"', CLIP_TESTS),
    Mutant("prefix tuning: ReLU instead of tanh (table)", "strategies/_vit_prompting.py",
           '"tanh": nn.Tanh}', '"tanh": nn.ReLU}', CLIP_TESTS),
    # golden-value tests (numbers from the official code) must catch a wrong mechanism too
    Mutant("golden: vpt_deep prompts not replaced at block 1", "strategies/vpt.py",
           "if i > 0 and self.deep:", "if i > 1 and self.deep:", ("tests/test_golden_vpt.py",)),
    Mutant("golden: ranpac random features without ReLU", "strategies/ranpac.py",
           "return F.relu(features.float() @ self.projection)", "return features.float() @ self.projection",
           ("tests/test_golden_ranpac.py",)),
    Mutant("golden: l2p pull term's sign flipped", "strategies/l2p.py",
           "return ce - self.cfg.pull_weight * sim.sum(dim=1).mean()",
           "return ce + self.cfg.pull_weight * sim.sum(dim=1).mean()", ("tests/test_golden_l2p.py",)),
    Mutant("golden: prefix keys and values swapped (PEFT)", "strategies/_vit_prompting.py",
           "return kv[0].unsqueeze(0), kv[1].unsqueeze(0)", "return kv[1].unsqueeze(0), kv[0].unsqueeze(0)",
           ("tests/test_golden_peft_prefix.py",)),
    Mutant("golden: maple/promptsrc first vision prompts appended after ln_pre", "strategies/_clip_deep.py",
           "    tokens = torch.cat([tokens, prompts[0].to(tokens.dtype).unsqueeze(0).expand(tokens.shape[0], -1, -1)],"
           " dim=1)\n    tokens = pre_norm(tokens)",
           "    tokens = pre_norm(tokens)\n    tokens = torch.cat([tokens, prompts[0].to(tokens.dtype).unsqueeze(0)"
           ".expand(tokens.shape[0], -1, -1)], dim=1)",
           ("tests/test_golden_maple.py", "tests/test_golden_promptsrc.py")),
    Mutant("golden: promptsrc KL to the zero-shot logits dropped", "strategies/promptsrc.py",
           " + cfg.logits_weight * kl)", ")", ("tests/test_golden_promptsrc.py",)),
    Mutant("golden: dapl pseudo-label confidence mask dropped", "strategies/dapl.py",
           "target_loss = (per_sample * keep).sum() / keep.sum().clamp(min=1)", "target_loss = per_sample.mean()",
           ("tests/test_golden_dapl.py",)),
    Mutant("golden: aper adapter reads the normalised MLP input", "strategies/aper.py",
           'return output + adapter(seen.pop("x"))', 'return output + adapter(norm(seen.pop("x")))',
           ("tests/test_golden_aper.py",)),
    # harness
    Mutant("harness: unlabelled target batches not handed to the strategy", "bench/train/harness.py",
           "batch.target_x, batch.target_cached = target.x, target.cached", "pass", HARNESS_TESTS),
    Mutant("harness: strategy.eval() removed from evaluate", "bench/train/harness.py",
           "    strategy.eval()\n    correct = 0", "    correct = 0", HARNESS_TESTS),
    Mutant("harness: strategy.eval() removed from evaluate_row", "bench/train/harness.py",
           "    strategy.eval()\n    strategy.before_eval()", "    strategy.before_eval()", HARNESS_TESTS),
)

# --ast mode: the files mutated and the tests that cover each (existing mechanism tests + the mutant tests).
AST_TARGETS = {
    "strategies/dualprompt.py": ("tests/test_dualprompt.py", "tests/test_task_pool_prompting.py") + VIT_TESTS,
    "strategies/coda_prompt.py": ("tests/test_coda_prompt.py", "tests/test_task_pool_prompting.py") + VIT_TESTS,
    "strategies/maple.py": ("tests/test_maple.py",) + CLIP_TESTS,
    "strategies/promptsrc.py": ("tests/test_promptsrc.py",) + CLIP_TESTS,
    "strategies/text_prompts.py": ("tests/test_text_prompts.py",) + CLIP_TESTS,
    "strategies/_vit_prompting.py": ("tests/test_prompt_mechanisms.py",) + VIT_TESTS + CLIP_TESTS,
    "strategies/_clip_deep.py": ("tests/test_maple.py", "tests/test_promptsrc.py") + CLIP_TESTS,
    "bench/train/harness.py": ("tests/test_harness.py",) + HARNESS_TESTS,
}


# ------------------------------------------------------------------------------------------- AST operators
SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Lt: ast.GtE,
         ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
         ast.And: ast.Or, ast.Or: ast.And}


def ast_sites(tree: ast.Module) -> list[tuple[int, str]]:
    """(index of the node in `ast.walk` order, operator name) for every mutable site outside docstrings."""
    skip = {id(sub) for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "hp"
            for sub in ast.walk(node)}  # config defaults: a changed default is a different recipe, not a bug
    sites = []
    for i, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        if isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in SWAPS:
            sites.append((i, "swap-op"))
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in SWAPS:
            sites.append((i, "swap-compare"))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float) and not isinstance(node.value, bool):
            sites.append((i, "constant"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            sites.append((i, "drop-unary"))
        elif isinstance(node, (ast.Expr, ast.Assign, ast.AugAssign)) and not (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            sites.append((i, "delete-statement"))
    return sites


class _Mutator(ast.NodeTransformer):
    def __init__(self, target: int, kind: str) -> None:
        self.target, self.kind, self.index, self.description = target, kind, -1, ""
        self.order: dict[int, int] = {}

    def visit(self, node: ast.AST):  # type: ignore[override]
        index = self.order.get(id(node), -2)
        if index != self.target:
            return self.generic_visit(node)
        line = getattr(node, "lineno", 0)
        if self.kind in ("swap-op",):
            node.op = SWAPS[type(node.op)]()
        elif self.kind == "swap-compare":
            node.ops = [SWAPS[type(node.ops[0])]()]
        elif self.kind == "constant":
            node.value = node.value + 1 if node.value in (0, 0.0) else (0 if isinstance(node.value, int) else
                                                                         node.value * 2)
        elif self.kind == "drop-unary":
            self.description = f"line {line}: {self.kind}"
            return node.operand
        elif self.kind == "delete-statement":
            self.description = f"line {line}: {self.kind}"
            return ast.copy_location(ast.Pass(), node)
        self.description = f"line {line}: {self.kind}"
        return node


def ast_mutant(source: str, site: tuple[int, str]) -> tuple[str, str]:
    """The source with one site mutated, and a description."""
    tree = ast.parse(source)
    mutator = _Mutator(*site)
    mutator.order = {id(node): i for i, node in enumerate(ast.walk(tree))}
    tree = ast.fix_missing_locations(mutator.visit(tree))
    return ast.unparse(tree), mutator.description


# ------------------------------------------------------------------------------------------------- running
def scratch_copy() -> Path:
    dest = Path(tempfile.mkdtemp(prefix="promptshift-mutants-"))
    ignore = shutil.ignore_patterns(".git", "results", ".cache", "__pycache__", "*.pyc", ".venv", "leaderboards",
                                    ".pytest_cache")
    shutil.copytree(ROOT, dest / "repo", ignore=ignore)
    return dest / "repo"


def run_tests(repo: Path, tests: tuple[str, ...], timeout: float) -> tuple[bool, float]:
    """Whether the tests pass in `repo`, and the seconds they took (a timeout counts as failing)."""
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    try:
        done = subprocess.run([PYTHON, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests], cwd=repo,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout)
        passed = done.returncode == 0
    except subprocess.TimeoutExpired:
        passed = False
    return passed, time.perf_counter() - start


@contextlib.contextmanager
def planted(repo: Path, file: str, text: str) -> Iterator[None]:
    """`text` written into `repo/file` for the duration of the block, the original restored afterwards."""
    path = repo / file
    original = path.read_text()
    path.write_text(text)
    try:
        yield
    finally:
        path.write_text(original)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ast", type=int, default=0, metavar="N", help="also N random AST mutants per target file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the AST mutant sample")
    parser.add_argument("--only", default="", help="run only named mutants whose name contains this text")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per test run (a timeout kills)")
    args = parser.parse_args()

    named = [m for m in CATALOGUE if args.only in m.name]
    jobs: list[tuple[str, str, str, tuple[str, ...], bool]] = []  # (file, description, mutated text, tests, named)
    stale = []
    for m in named:
        source = (ROOT / m.file).read_text()
        if source.count(m.old) != 1:
            stale.append(m)
            continue
        jobs.append((m.file, m.name, source.replace(m.old, m.new), m.tests, True))
    rng = random.Random(args.seed)
    for file, tests in AST_TARGETS.items() if args.ast else ():
        source = (ROOT / file).read_text()
        sites = ast_sites(ast.parse(source))
        for site in rng.sample(sites, min(args.ast, len(sites))):
            text, description = ast_mutant(source, site)
            jobs.append((file, f"ast {description}", text, tests, False))
    for m in stale:
        print(f"STALE    {m.file}: {m.name} (the planted line is not in the file exactly once)")
    if args.list:
        for file, description, _, tests, _ in jobs:
            print(f"{file}: {description}  <- {' '.join(tests)}")
        return 0

    repo = scratch_copy()
    try:
        baseline = sorted({t for *_, tests, _ in jobs for t in tests})
        ok, seconds = run_tests(repo, tuple(baseline), args.timeout * 3)
        if not ok:
            print(f"the unmutated tests fail ({' '.join(baseline)}): fix them before mutating")
            return 2
        print(f"baseline: {len(baseline)} test files pass unmutated ({seconds:.0f} s)")
        tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        survivors = []
        for file, description, text, tests, is_named in jobs:
            with planted(repo, file, text):
                passed, seconds = run_tests(repo, tests, args.timeout)
            tally[file][0 if not passed else 1] += 1
            print(f"{'SURVIVED' if passed else 'killed  '} {file}: {description} ({seconds:.0f} s)", flush=True)
            if passed:
                survivors.append((description, is_named))
    finally:
        shutil.rmtree(repo.parent, ignore_errors=True)

    print(f"\nmutation check, {datetime.date.today().isoformat()}: killed / survived per file")
    for file in sorted(tally):
        killed, survived = tally[file]
        print(f"  {file:34s} {killed:3d} killed  {survived:3d} survived")
    total_killed = sum(k for k, _ in tally.values())
    total = sum(k + s for k, s in tally.values())
    print(f"  {'total':34s} {total_killed:3d} / {total}")
    named_survivors = [d for d, is_named in survivors if is_named]
    return 1 if named_survivors or stale else 0


if __name__ == "__main__":
    sys.exit(main())
