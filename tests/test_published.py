"""Published numbers beside ours: shown only where a reference names our scenario and backbone, with our mean over
seeds and the difference computed from the records."""
from __future__ import annotations

from pathlib import Path

from bench.report.published import matching
from bench.report.references import Reference, load_references
from bench.report.tables import write_tables
from test_tables import ci_metrics, make_record

BACKBONE = "vit_base_patch16_224.augreg_in21k"
L2P = Reference(paper="Wang et al. (L2P), CVPR 2022", method="L2P", protocol="class_incremental",
                metric="final_accuracy", value=83.83, strategy="l2p", scenario="split_cifar100_10t",
                backbone_name=BACKBONE)


def records(finals: list[float], backbone: str = BACKBONE) -> list[dict]:
    out = []
    for seed, final in enumerate(finals):
        record = make_record("l2p", seed, scenario="split_cifar100_10t", metrics=ci_metrics(final))
        record["config"]["backbone"] = backbone
        out.append(record)
    return out


def test_the_paper_number_stands_beside_our_mean_with_the_difference(tmp_path: Path) -> None:
    write_tables(records([0.80, 0.82, 0.84]), tmp_path, references=[L2P])
    text = (tmp_path / "split_cifar100_10t.md").read_text()
    assert "## Published numbers beside ours" in text
    row = next(line for line in text.splitlines() if line.startswith("| L2P |"))
    # mean 82.0, sample std 2.0 over 3 seeds; 82.0 - 83.83 = -1.83
    assert "82.0 ± 2.0 (n=3)" in row and "| 83.83 |" in row and "| -1.8 |" in row and "Wang et al." in row


def test_another_backbone_is_not_compared_and_says_not_run(tmp_path: Path) -> None:
    write_tables(records([0.80], backbone="vit_glyph_tiny"), tmp_path, references=[L2P])
    row = next(line for line in (tmp_path / "split_cifar100_10t.md").read_text().splitlines()
               if line.startswith("| L2P |"))
    assert "not run" in row and "| — |" in row


def test_a_reference_without_our_setting_stays_out_of_the_tables(tmp_path: Path) -> None:
    loose = Reference(paper="p", method="L2P", protocol="class_incremental", metric="final_accuracy", value=83.83,
                      strategy="l2p")
    write_tables(records([0.80]), tmp_path, references=[loose])
    assert "Published numbers" not in (tmp_path / "split_cifar100_10t.md").read_text()


def test_the_committed_references_name_registered_scenarios_and_backbones() -> None:
    from bench.models.backbones import BACKBONES
    from scenarios.catalog import SCENARIOS

    tagged = [r for r in load_references() if r.scenario]
    assert tagged, "no reference names a scenario of ours"
    for ref in tagged:
        SCENARIOS.get(ref.scenario)
        BACKBONES.get(ref.backbone_name)
        assert matching(ref.scenario, [ref]) == [ref]
