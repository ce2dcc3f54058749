"""Robustness: attacks (budget 0, monotone, PGD >= FGSM, AutoAttack >= PGD, inside the ball, agreement with
ART and torchattacks), corruptions (all 15 x 5 on 32x32, seeded, global RNG untouched), config validation, the record a
cell gets through run_cell, and the leaderboard table."""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bench.eval.robustness as robustness
from bench.eval.attacks import BudgetViolation, check_budget, fgsm, pgd
from bench.eval.robustness import (COMMON_CORRUPTIONS, RobustnessConfig, attack_accuracies, autoattack_accuracy,
                                   corrupt_images, robustness_hook)
from bench.report.robustness_tables import write_robustness_tables
from bench.run.runner import CellConfig, run_cell
from bench.run.submit import schema_problems
from bench.run.suite import SuiteError, load_suite

BUDGETS = ("0", "1/255", "2/255", "4/255", "8/255")
NOISE = 2  # images: the allowed slack when comparing two attacks on the same inputs


class Fixed(nn.Module):
    """A fixed classifier exposing the two things the robustness code reads from LabelSpaceClassifier."""

    def __init__(self, net: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("space", torch.arange(num_classes), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.fixture(scope="module")
def fixed():
    """A small MLP trained on nearly overlapping classes: clean ~98%, near 0% at 8/255, so budgets matter."""
    g = torch.Generator().manual_seed(0)
    means = 0.5 + 0.05 * (torch.rand(4, 3, 8, 8, generator=g) - 0.5)
    y = torch.arange(128) % 4
    x = (means[y] + 0.1 * torch.randn(128, 3, 8, 8, generator=g)).clamp(0, 1)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(192, 16), nn.Tanh(), nn.Linear(16, 4))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        optimizer.step()
    model = Fixed(net.eval().requires_grad_(False), 4)
    return model, x, y


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(-1) == y).float().mean())


def budget(text: str) -> float:
    return robustness.parse_budget(text)


# -------------------------------------------------------------------------------------------------- attacks
def test_budget_zero_is_clean_accuracy_exactly(fixed):
    model, x, y = fixed
    assert torch.equal(fgsm(model, x, y, 0.0), x)
    assert torch.equal(pgd(model, x, y, 0.0, 5, 0.0, random_start=True, generator=torch.Generator()), x)
    clean = torch.as_tensor(model(x).argmax(-1) == y)
    cfg = RobustnessConfig(eps=BUDGETS, pgd_steps=5)
    out = attack_accuracies(model, x, y, clean, cfg, seed=0)
    assert out["fgsm"]["0"] == out["pgd"]["0"] == accuracy(model, x, y)


def test_accuracy_never_rises_with_the_budget_and_pgd_beats_fgsm(fixed):
    model, x, y = fixed
    raw = {"fgsm": [], "pgd": []}
    for text in BUDGETS:
        eps = budget(text)
        raw["fgsm"].append(accuracy(model, fgsm(model, x, y, eps), y))
        raw["pgd"].append(accuracy(model, pgd(model, x, y, eps, 10, 0.25 * eps, True, torch.Generator().manual_seed(1)),
                                   y))
    for name, accs in raw.items():  # the raw attacks, not only the cumulative record, are monotone here
        assert all(b <= a for a, b in zip(accs, accs[1:])), (name, accs)
    assert raw["pgd"][0] > 0.9 and raw["pgd"][-1] < 0.1, "the fixed model must span the budgets"
    for f, p in zip(raw["fgsm"], raw["pgd"]):
        assert p <= f + NOISE / len(y)
    clean = torch.as_tensor(model(x).argmax(-1) == y)
    record = attack_accuracies(model, x, y, clean, RobustnessConfig(eps=BUDGETS), seed=0)
    for name in ("fgsm", "pgd"):
        accs = [record[name][b] for b in BUDGETS]
        assert all(b <= a for a, b in zip(accs, accs[1:]))
        assert all(r <= a + 1e-9 for r, a in zip(accs, raw[name]))  # cumulative: never above the raw attack


def test_fgsm_at_every_budget_takes_one_gradient_per_image_and_matches_each_budget_alone(fixed):
    model, x, y = fixed
    clean = torch.as_tensor(model(x).argmax(-1) == y)
    cfg = RobustnessConfig(eps=BUDGETS, pgd=False)
    backward_rows = []

    class Counting(nn.Module):
        def forward(self, images):
            if images.requires_grad:
                backward_rows.append(len(images))
            return model(images)

    record = attack_accuracies(Counting(), x, y, clean, cfg, seed=0)["fgsm"]
    assert sum(backward_rows) == len(y)  # not len(y) per budget
    robust = clean.clone()
    for text in sorted(BUDGETS, key=budget):  # by hand: each budget attacked on its own, cumulative over budgets
        robust &= torch.as_tensor(model(fgsm(model, x, y, budget(text))).argmax(-1) == y)
        assert record[text] == int(robust.sum()) / len(y), text


def test_adversarial_examples_stay_in_the_ball_and_pixel_range(fixed):
    model, x, y = fixed
    x = x.clone()
    x[:8] = x[:8].round()  # pixels at exactly 0 and 1, where the pixel-range clamp bites
    for eps in (1 / 255, 8 / 255, 0.5):
        for adv in (fgsm(model, x, y, eps), pgd(model, x, y, eps, 4, eps / 2, True, torch.Generator())):
            assert float((adv - x).abs().max()) <= eps + 1e-6
            assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    with pytest.raises(BudgetViolation, match="exceeds eps"):
        check_budget(x + 2 / 255, x, 1 / 255)
    with pytest.raises(BudgetViolation, match="leave"):
        check_budget(torch.full_like(x, 1.001), torch.ones_like(x), 0.01)


def _art(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, step: float):
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=4,
                            clip_values=(0.0, 1.0), device_type="cpu")
    run = lambda attack: torch.from_numpy(attack.generate(x.numpy(), y=y.numpy()))  # noqa: E731
    return (run(ProjectedGradientDescent(clf, norm=np.inf, eps=eps, eps_step=step, max_iter=steps, num_random_init=0,
                                         batch_size=len(y), verbose=False)),
            run(FastGradientMethod(clf, norm=np.inf, eps=eps, batch_size=len(y))))


def _torchattacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, step: float):
    import torchattacks

    return (torchattacks.PGD(model, eps=eps, alpha=step, steps=steps, random_start=False)(x, y),
            torchattacks.FGSM(model, eps=eps)(x, y))


@pytest.mark.parametrize("library, module, run", [
    ("adversarial-robustness-toolbox (test extra)", "art", _art),
    ("torchattacks (optional: pip install --no-deps torchattacks==3.5.1; it pins requests~=2.25.1)",
     "torchattacks", _torchattacks)], ids=["art", "torchattacks"])
def test_our_pgd_and_fgsm_agree_with_a_second_implementation(fixed, library, module, run):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{library} is not installed")
    model, x, y = fixed
    for eps in (2 / 255, 8 / 255):  # no random start: both are deterministic, so they must match
        their_pgd, their_fgsm = run(model.net, x, y, eps, 10, eps / 4)
        ours = pgd(model, x, y, eps, 10, eps / 4, random_start=False)
        assert float((ours - their_pgd).abs().max()) < 1e-6
        assert accuracy(model, ours, y) == accuracy(model, their_pgd, y)
        assert float((fgsm(model, x, y, eps) - their_fgsm).abs().max()) < 1e-6


def test_autoattack_is_never_weaker_than_pgd(fixed):
    if importlib.util.find_spec("pyautoattack") is None:
        pytest.skip("pyautoattack not installed")
    model, x, y = fixed
    x, y = x[:32], y[:32]
    cfg = RobustnessConfig(autoattack_eps="4/255", autoattack_subset_size=32)
    state = torch.random.get_rng_state()
    out = autoattack_accuracy(model, x, y, cfg, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state), "AutoAttack's reseeding leaked out"
    pgd_acc = accuracy(model, pgd(model, x, y, 4 / 255, 10, 1 / 255, True, torch.Generator().manual_seed(0)), y)
    assert out["n"] == 32 and out["eps"] == "4/255" and out["target_classes"] == 3
    assert out["acc"] <= pgd_acc + NOISE / len(y)


# ---------------------------------------------------------------------------------------------- corruptions
def _images(n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def test_every_corruption_works_on_32px_images_and_is_seeded():
    images = _images()
    before = np.random.get_state()
    for name in COMMON_CORRUPTIONS:
        for severity in (1, 2, 3, 4, 5):
            first = corrupt_images(images, name, severity, seed=7)
            assert first.shape == images.shape and first.dtype == np.uint8, (name, severity)
            assert np.array_equal(first, corrupt_images(images, name, severity, seed=7)), (name, severity)
        assert not np.array_equal(corrupt_images(images, name, 5, seed=7), images), name
    after = np.random.get_state()
    assert after[0] == before[0] and np.array_equal(after[1], before[1]) and after[2:] == before[2:]


def test_random_corruptions_follow_the_seed():
    images = _images()
    for name in ("gaussian_noise", "impulse_noise", "glass_blur", "frost"):  # global RNG / own seed / both
        assert not np.array_equal(corrupt_images(images, name, 3, seed=1), corrupt_images(images, name, 3, seed=2))


def test_glass_blur_from_the_disk_cached_kernel_equals_the_library_kernel(monkeypatch):
    """Glass blur's pixel-shuffling kernel is recompiled with numba's disk cache (`_glass_blur_compiled_once`):
    it must be a cached kernel, and give the pixels of the library's own `@njit()` kernel at every severity."""
    import numba
    from imagecorruptions import corruptions

    images = _images(3)
    ours = [corrupt_images(images, "glass_blur", severity, seed=5) for severity in (1, 2, 3, 4, 5)]
    kernel = corruptions._shuffle_pixels_njit_glass_blur
    assert type(kernel._cache).__name__ != "NullCache"  # compiled once per machine, not once per process
    monkeypatch.setattr(corruptions, "_shuffle_pixels_njit_glass_blur", numba.njit()(kernel.py_func))
    library = [corrupt_images(images, "glass_blur", severity, seed=5) for severity in (1, 2, 3, 4, 5)]
    for severity, (a, b) in enumerate(zip(ours, library), start=1):
        assert np.array_equal(a, b), severity
        assert not np.array_equal(a, images), severity


def test_corrupted_sets_are_computed_once_and_read_back_from_disk_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(tmp_path))
    monkeypatch.setattr(robustness, "_CORRUPTED", type(robustness._CORRUPTED)())
    images, variants = _images(3), [("gaussian_noise", 1), ("glass_blur", 5), ("frost", 2)]
    direct = np.concatenate([corrupt_images(images, n, s, seed=11) for n, s in variants])
    calls = []
    original = robustness.corrupt_images
    monkeypatch.setattr(robustness, "corrupt_images", lambda *a, **k: calls.append(a[1]) or original(*a, **k))
    first = robustness._corrupted_stack(images, variants, 11)
    assert calls == [n for n, _ in variants] and len(list(tmp_path.glob("*.npz"))) == 1
    robustness._CORRUPTED.clear()  # a new process: only the disk entry is left
    second = robustness._corrupted_stack(images, variants, 11)
    assert calls == [n for n, _ in variants]  # nothing recomputed
    assert np.array_equal(first, direct) and np.array_equal(second, direct)
    robustness._corrupted_stack(images, variants, 12)  # another seed is another entry
    assert len(list(tmp_path.glob("*.npz"))) == 2


# ---------------------------------------------------------------------------------------------------- config
def test_config_rejects_unknown_fields_and_bad_values():
    with pytest.raises(ValueError, match="robustness.subset_sise"):
        RobustnessConfig.from_dict({"subset_sise": 8})
    with pytest.raises(ValueError, match="robustness.eps"):
        RobustnessConfig.from_dict({"eps": ["8/255", "lots"]})
    with pytest.raises(ValueError, match="unknown corruption"):
        RobustnessConfig.from_dict({"corruption_names": ["rain"]})
    with pytest.raises(ValueError, match="severities"):
        RobustnessConfig.from_dict({"severities": [0, 6]})
    with pytest.raises(ValueError, match="repeat"):
        RobustnessConfig.from_dict({"eps": ["4/255", "8/510"]})
    cfg = RobustnessConfig.from_dict({"eps": [0.01, "8/255"], "subset_size": 48})
    assert cfg.eps == ("0.01", "8/255") and cfg.subset_size == 48
    assert RobustnessConfig().corruption_names == COMMON_CORRUPTIONS and len(COMMON_CORRUPTIONS) == 15


def test_cell_id_follows_the_resolved_robustness_settings():
    cell = lambda rob: CellConfig(scenario="ci5_glyphs", strategy="linear_probe", backbone="vit_test_micro",  # noqa
                                  seed=0, robustness=rob).cell_id()
    assert cell({"subset_size": 8}) == cell({"subset_size": 8, "pgd_steps": 10})  # a default, spelt out or not
    assert cell({"subset_size": 8}) != cell({"subset_size": 8, "pgd_steps": 5}) != cell(None)


def test_a_suite_with_a_wrong_robustness_field_fails_on_load(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nversion: 1\nscenarios: [ci5_glyphs]\nstrategies: [{name: linear_probe}]\n"
                    "robustness: {subset_sise: 8}\n")
    with pytest.raises(SuiteError, match="robustness.subset_sise"):
        load_suite(str(path))


# ---------------------------------------------------------------------------------------------------- record
TINY_CI = {"num_tasks": 2, "num_classes": 8, "train_per_font": 2, "test_per_font": 1}
SMALL = {"subset_size": 8, "eps": ["1/255", "8/255"], "pgd_steps": 2, "autoattack_subset_size": 4,
         "corruption_names": ["gaussian_noise", "frost"], "severities": [1, 5]}


def test_run_cell_records_robustness_with_every_batch_in_budget(tmp_path, monkeypatch):
    batches = []

    def checked(attack):
        def run(model, x, y, eps, *args, **kwargs):
            adv = attack(model, x, y, eps, *args, **kwargs)
            distance = (adv - x).abs().flatten(1).max(1).values
            assert bool((distance <= torch.as_tensor(eps) + 1e-6).all()) and 0 <= adv.min() <= adv.max() <= 1
            batches.append(torch.as_tensor(eps).unique().numel())
            return adv
        return run

    monkeypatch.setattr(robustness, "fgsm", checked(fgsm))
    monkeypatch.setattr(robustness, "pgd", checked(pgd))
    cfg = CellConfig(scenario="ci5_glyphs", strategy="linear_probe", backbone="vit_test_micro", seed=0,
                     strategy_config={"epochs": 2}, scenario_overrides=TINY_CI, robustness=SMALL)
    record = run_cell(cfg, tmp_path, device="cpu", show_progress=False, after_training=robustness_hook())
    assert record["status"] == "ok", record["error"]
    rob = record["robustness"]
    names = record["results"]["eval_names"]
    assert set(rob["per_eval_set"]) == set(names)
    assert rob["subset_size"] == sum(s["subset_size"] for s in rob["per_eval_set"].values()) == 8 * len(names)
    # the sets share one label space after the last task: attacked together, a budget per call, only images still
    # robust (at most one call per attack and budget: 16 rows); none when no image is right clean
    assert set(batches) <= {1} and len(batches) <= 2 * 2 and bool(batches) == (rob["clean"] > 0)
    for entry in [rob, *rob["per_eval_set"].values()]:
        assert 0 <= entry["clean"] <= 1
        assert set(entry["fgsm"]) == set(entry["pgd"]) == {"1/255", "8/255"}
        assert entry["pgd"]["8/255"] <= entry["pgd"]["1/255"] <= entry["clean"]
        assert entry["autoattack"]["eps"] == "8/255" and 0 <= entry["autoattack"]["acc"] <= 1
        corr = entry["corruptions"]
        assert corr["constants"] == "ImageNet-C" and set(corr["per_corruption"]) == {"gaussian_noise", "frost"}
        assert math.isclose(corr["mean"], np.mean(list(corr["per_corruption"].values())))
    sets = list(rob["per_eval_set"].values())
    weighted = sum(s["clean"] * s["subset_size"] for s in sets) / sum(s["subset_size"] for s in sets)
    assert math.isclose(rob["clean"], weighted)
    assert rob["settings"]["subset_size"] == 8
    timing = record["timing"]  # the attacks' time is its own column, apart from training and evaluation
    assert 0 < timing["robustness_seconds"] <= timing["total_seconds"] - timing["train_seconds"]
    assert [p for p in schema_problems(record) if "robustness" in p] == []  # the submission schema's layout
    assert run_cell(cfg, tmp_path, device="cpu", show_progress=False)["robustness"] == rob  # stored as written
    table = write_robustness_tables([record], tmp_path / "boards")[0].read_text()
    assert "| linear_probe | vit_test_micro |" in table and "8 images per evaluation set" in table


def test_clip_strategy_is_attacked_through_its_prompted_text_classifier(tmp_path, monkeypatch):
    from strategies.coop import CoOp

    calls = []
    monkeypatch.setattr(CoOp, "before_eval", lambda self, f=CoOp.before_eval: (calls.append("before"), f(self))[1])
    monkeypatch.setattr(CoOp, "after_eval", lambda self, f=CoOp.after_eval: (calls.append("after"), f(self))[1])
    settings = {**SMALL, "autoattack": False, "corruptions": False}
    cfg = CellConfig(scenario="b2n_glyphs", strategy="coop", backbone="clip_test_micro", seed=0,
                     strategy_config={"epochs": 1}, robustness=settings,
                     scenario_overrides={"num_classes": 8, "shots": 2, "train_per_font": 2, "test_per_font": 1})
    record = run_cell(cfg, tmp_path, device="cpu", show_progress=False, after_training=robustness_hook())
    assert record["status"] == "ok", record["error"]
    assert calls[-2:] == ["before", "after"]  # the robustness pass holds the text features fixed, then frees them
    assert set(record["robustness"]["per_eval_set"]) == set(record["results"]["eval_names"])


# ----------------------------------------------------------------------------------------------- leaderboard
def _record(strategy: str, pgd8: float, corr: float, seed: int = 0, family: str = "vit") -> dict:
    rob = {"subset_size": 96, "clean": 0.9, "fgsm": {"1/255": 0.8, "8/255": 0.5}, "pgd": {"1/255": 0.7, "8/255": pgd8},
           "autoattack": {"eps": "8/255", "acc": pgd8 - 0.05, "n": 32},
           "corruptions": {"mean": corr, "per_corruption": {}, "constants": "ImageNet-C"},
           "settings": RobustnessConfig(subset_size=48).model_dump(mode="json")}
    return {"status": "ok", "config": {"scenario": "ci5_glyphs", "strategy": strategy, "backbone": "vit_glyph_tiny",
                                       "seed": seed},
            "scenario": {"name": "ci5_glyphs"}, "strategy": {"name": strategy, "label": strategy,
                                                              "backbone_family": family, "flags": {}},
            "robustness": rob}


def test_robustness_table_compares_drops_with_full_finetuning(tmp_path):
    records = [_record("full_finetune", 0.1, 0.5), _record("vpt", 0.4, 0.7), _record("vpt", 0.2, 0.7, seed=1),
               _record("coop", 0.3, 0.6, family="clip"), {"status": "failed"}]
    paths = write_robustness_tables(records, tmp_path)
    text = (tmp_path / "robustness.md").read_text()
    assert [p.name for p in paths] == ["robustness.md", "robustness.csv"]
    assert "## ci5_glyphs" in text and "ImageNet-C constants" in text and "48 images per evaluation set" in text
    assert "| PGD 8/255 |" in text and "AA 8/255" in text and "Corr. mean" in text
    vpt = next(line for line in text.splitlines() if line.startswith("| vpt "))
    # vpt: PGD 8/255 mean 0.3, drop 0.6 vs full FT's 0.8 -> -20.0; corruption drop 0.2 vs 0.4 -> -20.0
    # two seeds: mean ± sample std, PGD 8/255 (0.4, 0.2) -> 30.0 ± 14.1
    assert "| 2 |" in vpt and "| 30.0 ± 14.1 |" in vpt and "| 60.0 | -20.0 | 20.0 | -20.0 |" in vpt
    # PGD kept: (0.7 + 0.3) / 2 / 0.9 = 55.6 vs full FT's (0.7 + 0.1) / 2 / 0.9 = 44.4 -> +11.1
    assert vpt.endswith("| 55.6 | +11.1 |")
    coop = next(line for line in text.splitlines() if line.startswith("| coop "))
    assert coop.endswith("| — | 30.0 | — | 55.6 | — |")  # no full fine-tuning on CLIP here
    zero = _record("zero", 0.0, 0.0)
    zero["robustness"].update(clean=0.0, pgd={"1/255": 0.0, "8/255": 0.0})
    write_robustness_tables([zero], tmp_path)  # a model with no clean accuracy keeps no share: shown as —
    assert next(line for line in (tmp_path / "robustness.md").read_text().splitlines()
                if line.startswith("| zero ")).endswith("| — | — |")
    assert write_robustness_tables([{"status": "ok"}], tmp_path) == [] and not (tmp_path / "robustness.md").exists()


def test_corruption_accuracy_from_shared_frozen_features_equals_the_pixel_path(tmp_path, monkeypatch):
    """A strategy that reads only frozen features gets the corrupted images' features from the suite-wide cache
    (computed once for every strategy sharing the function) and exactly the accuracies of running the pixels."""
    from bench.core.strategy import build_strategy
    from bench.models.backbones import create_backbone
    from bench.train.feature_cache import FeatureStore
    from scenarios.catalog import build_scenario

    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(tmp_path / "data"))
    scenario = build_scenario("ci5_glyphs", 0, num_tasks=2, num_classes=4, train_per_font=1, test_per_font=1)
    cfg = RobustnessConfig(subset_size=4, corruption_names=("gaussian_noise", "fog"), severities=(1, 5),
                           batch_size=8)
    store = FeatureStore(tmp_path / "features")
    results = {}
    for name in ("linear_probe", "mlp_k", "l2p"):  # L2P reads pixels too: only its query pass is cached
        torch.manual_seed(0)
        strategy = build_strategy(name, create_backbone("vit_test_micro"), scenario.info(), {})
        model = robustness.LabelSpaceClassifier(strategy, [0, 1, 2, 3]).eval()
        data = scenario.eval_sets[0].data
        y = model.targets(data.labels[:4])
        with robustness.evaluating(strategy):
            shared = robustness.corruption_accuracies(model, data.images[:4], y, cfg, 3, torch.device("cpu"), store)
            pixels = robustness.corruption_accuracies(model, data.images[:4], y, cfg, 3, torch.device("cpu"), None)
        assert shared == pixels
        results[name] = shared
    assert (store.misses, store.hits) == (1, 2)  # the later strategies read the first one's features


# ------------------------------------------------------------------------------ pooled, robust-only attacks
def _sets(x: torch.Tensor, y: torch.Tensor, sizes: tuple[int, ...], model: nn.Module):
    """Consecutive slices of (x, y) as evaluation sets (x, y, clean, seed), each with its own seed."""
    parts, start = [], 0
    for seed, n in enumerate(sizes):
        xs, ys = x[start:start + n], y[start:start + n]
        parts.append((xs, ys, torch.as_tensor(model(xs).argmax(-1) == ys), 10 + seed))
        start += n
    return parts


@pytest.mark.parametrize("random_start", [True, False])
def test_pooled_robust_only_attacks_equal_attacking_every_image_set_by_set(fixed, random_start):
    """Sets of 1, 7 and 40 images (a batch of one included) attacked together, and each image only while it can
    still count, give exactly each set's numbers from attacking every image at every budget on its own."""
    model, x, y = fixed
    cfg = RobustnessConfig(eps=BUDGETS, pgd_steps=3, batch_size=16, pgd_random_start=random_start)
    parts = _sets(x, y, (1, 7, 40), model)
    pooled = robustness.robust_only_attacks(model, parts, cfg)
    alone = [attack_accuracies(model, xs, ys, clean, cfg, seed) for xs, ys, clean, seed in parts]
    assert pooled == alone
    assert any(0 < r < 1 for r in pooled[2]["pgd"].values())  # the budgets split the images: a real comparison


def test_robust_only_attacks_skip_images_that_no_longer_count(fixed):
    """PGD runs each budget only on the images right clean and under every smaller budget: fewer rows through
    the model's backward than attacking every image at every budget."""
    model, x, y = fixed
    cfg = RobustnessConfig(eps=BUDGETS[1:], pgd_steps=2, fgsm=False)
    rows = []

    class Counting(nn.Module):
        space = model.space

        def forward(self, images):
            if images.requires_grad:
                rows.append(len(images))
            return model(images)

    parts = _sets(x, y, (64, 64), model)
    out = robustness.robust_only_attacks(Counting(), parts, cfg)
    alive = [sum(int(p[2].sum()) for p in parts)] + [
        round(sum(o["pgd"][b] * len(p[1]) for o, p in zip(out, parts))) for b in BUDGETS[1:-1]]
    assert sum(rows) == cfg.pgd_steps * sum(alive) < cfg.pgd_steps * len(BUDGETS[1:]) * len(x)


def test_robustness_report_pooled_equals_every_image_per_set(tmp_path, monkeypatch):
    """On trained tiny cells (a prompt learner that reads pixels and a cached query, a CLIP prompt learner scoring
    only each base-to-new label space), the default robustness report equals the per-set, every-image one."""
    from bench.run.runner import prepare

    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(tmp_path / "cache"))
    settings = {**SMALL, "autoattack": False}
    for scenario_name, strategy, backbone, overrides in (
            ("ci5_glyphs", "l2p", "vit_test_micro", TINY_CI),
            ("b2n_glyphs", "cocoop", "clip_test_micro", {"num_classes": 8, "shots": 8, "train_per_font": 2,
                                                         "test_per_font": 1})):
        cfg = CellConfig(scenario=scenario_name, strategy=strategy, backbone=backbone, seed=0,
                         strategy_config={"epochs": 1}, scenario_overrides=overrides, robustness=settings)
        scenario, _, model = prepare(cfg)
        from bench.train.harness import run_stream

        run_stream(model, scenario.steps, scenario.eval_sets, torch.device("cpu"), 0, show_progress=False)
        reports = [robustness.robustness_report(model, scenario, settings, torch.device("cpu"), every_image=every)
                   for every in (True, False)]
        for report in reports:
            report.pop("seconds")
            for entry in report["per_eval_set"].values():
                entry.pop("seconds", None)
        assert reports[0] == reports[1], strategy
        assert 0 < reports[1]["clean"], strategy  # some images were attacked


def test_batch_voting_strategies_keep_the_per_set_every_image_path(monkeypatch):
    """A prediction that reads other images of its batch must see the batches it always saw."""
    calls = []
    monkeypatch.setattr(robustness, "evaluate_set", lambda inputs, *a, **k: calls.append(inputs) or {"seconds": {}})
    monkeypatch.setattr(robustness, "robust_only_attacks", lambda *a, **k: pytest.fail("pooled a batch-vote model"))

    class Voting:
        flags = type("F", (), {"batchwise_inference": True})()

    inputs = type("Set", (), {"model": type("M", (), {"strategy": Voting()})()})()
    per_set, _ = robustness.evaluate_sets({"a": inputs, "b": inputs}, RobustnessConfig(), torch.device("cpu"))
    assert set(per_set) == {"a", "b"} and len(calls) == 2
