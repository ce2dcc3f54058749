"""What every leaderboard build does to the records it read, before any table sees them.

- Recomputable numbers are recomputed: each ok record's metrics come from its accuracy matrix
  (`bench.eval.metrics.summarize`), so a doctored stored metric never reaches a table; a stored copy that
  disagrees is reported (`problems`), and an ok record whose matrix cannot be summarised is shown as failed.
- Free text is neutralised: a label is a row's name on every table, plot and CSV. Characters outside
  `SAFE_LABEL` (Markdown, HTML, mathtext and spreadsheet syntax, control characters) become "_", and a label is
  at most `MAX_LABEL_CHARS` long. Suites and submissions refuse such labels up front; this covers a results
  folder written by hand or by an older version.
- `csv_safe`: string cells that a spreadsheet would run as a formula (leading = + - @, tab, CR) get a leading
  apostrophe (OWASP's CSV-injection advice).
"""
from __future__ import annotations

import copy
import math
import re
from typing import Any, Iterable

SAFE_LABEL = re.compile(r"[A-Za-z0-9_.+\-()/:, ]")
MAX_LABEL_CHARS = 64
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TOLERANCE = 1e-6


def safe_label(text: str) -> str:
    """`text` with every character outside `SAFE_LABEL` replaced by "_", cut to `MAX_LABEL_CHARS`."""
    return "".join(c if SAFE_LABEL.fullmatch(c) else "_" for c in str(text)[:MAX_LABEL_CHARS])


def label_problem(text: str) -> str | None:
    """Why `text` cannot be a label (suites and submissions refuse it), or None."""
    if len(text) > MAX_LABEL_CHARS:
        return f"{len(text)} characters; a label has at most {MAX_LABEL_CHARS}"
    if safe_label(text) != text or text[:1] in FORMULA_START:
        return (f"{text!r} has characters a label cannot have (letters, digits, space and _ . + - ( ) / : , only, "
                f"not starting with + or -)")
    return None


def csv_cell(value: Any) -> Any:
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def csv_safe(frame: Any) -> Any:
    """A copy of the pandas `frame` whose string cells cannot run as spreadsheet formulas."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(csv_cell)
    return out


def _same(a: Any, b: Any) -> bool:
    missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in (a, b)]
    if any(missing):
        return all(missing)
    return isinstance(a, (int, float)) and math.isclose(a, b, rel_tol=0.0, abs_tol=TOLERANCE)


def intake(records: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The records as the tables must see them (copies; see the module docstring) and one line per problem."""
    from bench.eval.metrics import summarize
    from bench.report.multimodal import multimodal_intake
    from bench.run.seq2seq_metrics import is_multimodal_record

    out, problems = [], []
    for record in records:
        record = copy.deepcopy(record)
        for section in ("strategy", "config"):
            part = record.get(section)
            if isinstance(part, dict) and isinstance(part.get("label"), str):
                part["label"] = safe_label(part["label"])
        if record.get("status") == "ok" and is_multimodal_record(record):  # metric matrices, not accuracies
            out.append(multimodal_intake(record, problems))
            continue
        if record.get("status") == "ok":
            cell = record.get("cell_id")
            try:
                kind = "joint" if record["strategy"]["flags"]["joint_training"] else record["scenario"]["kind"]
                computed = summarize(record["results"]["acc_matrix"], record["results"]["eval_names"], kind)
            except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as error:
                problems.append(f"record {cell}: its accuracy matrix cannot be summarised "
                                f"({type(error).__name__}: {error}); shown as failed")
                record.update({"status": "failed", "error": f"unreadable accuracy matrix: {error}"})
                out.append(record)
                continue
            stored = record.get("metrics")
            for name, value in (stored or {}).items() if isinstance(stored, dict) else ():
                if name in computed and not _same(value, computed[name]):
                    problems.append(f"record {cell}: stored {name} {value!r} differs from its accuracy matrix's "
                                    f"{computed[name]!r}; the matrix's value is shown")
            record["metrics"] = computed
        out.append(record)
    return out, problems


def row_identity(record: dict[str, Any]) -> tuple[str, str, str, bool]:
    """What a row is, whatever its label says: (strategy, backbone, hash of the resolved config without label
    and seed, submitted). Claims and comparisons must match rows on this, never on the free `label` text, so a
    linear probe labelled "l2p" can never stand in for L2P."""
    from bench.core.store import config_hash

    config = {k: v for k, v in (record.get("config") or {}).items() if k not in ("label", "seed")}
    return (str(config.get("strategy")), str(config.get("backbone")), config_hash(config),
            bool(record.get("submitted")))
