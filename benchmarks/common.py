"""What every benchmark shares: timing, the device name, the date, JSONL rows, markdown tables.

A benchmark module measures with :func:`timed` (median and spread of repeats after a
warm-up it runs itself), stamps each result with :func:`meta` (versions, git sha, device,
date), appends it with :func:`append_jsonl` to :func:`results_path` and renders its table
with :func:`markdown_table`. :func:`measurement` is the uniform row the suite
(``python -m benchmarks.run``) collects: one figure beside its in-run baseline.
"""
from __future__ import annotations

import datetime
import json
import os
import statistics
import time
from typing import Any, Callable, Iterable, Optional, Sequence

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def timed(fn: Callable[[], object], *, repeats: int) -> dict:
    """Median and spread (seconds) of ``repeats`` calls of ``fn``, which must block until done."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": repeats}


def device_name() -> str:
    """The first JAX device's kind, spaces replaced (``cpu``, ``NVIDIA_H100_80GB_HBM3``, ``TPU_v4``)."""
    import jax

    return jax.devices()[0].device_kind.replace(" ", "_")


def today() -> str:
    """ISO date of the run (the results file name and every row carry it)."""
    return datetime.date.today().isoformat()


def meta(**extra: Any) -> dict:
    """Fields stamped on every JSON line: versions, git sha, device, date, CPU count, XLA flags."""
    from core import cli

    return {"versions": cli.versions(), "git_sha": cli.git_sha(), "device": device_name(), "date": today(),
            "cpu_count": os.cpu_count(), "xla_flags": os.environ.get("XLA_FLAGS", ""), **extra}


def results_path(out_dir: str, name: str = "") -> str:
    """``out_dir/<name>_<date>_<device>.jsonl`` (``<date>_<device>.jsonl`` for the suite); creates ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    stem = f"{today()}_{device_name()}"
    return os.path.join(out_dir, f"{name}_{stem}.jsonl" if name else f"{stem}.jsonl")


def append_jsonl(path: str, row: dict) -> None:
    """Appends ``row`` as one JSON line (the file is created when missing)."""
    with open(path, "a") as f:
        f.write(json.dumps(row, default=_jsonable) + "\n")


def read_jsonl(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _jsonable(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def rounded(result: dict, digits: int = 4) -> dict:
    """``result`` with floats rounded, for printing."""
    return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in result.items()}


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]],
                   align: Optional[Sequence[str]] = None) -> str:
    """A GitHub markdown table; ``align`` per column ``"l"`` or ``"r"`` (default left)."""
    align = align or ["l"] * len(headers)
    if len(align) != len(headers):
        raise ValueError(f"{len(align)} alignments for {len(headers)} columns")
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    for row in rows:
        row = list(row)
        if len(row) != len(headers):
            raise ValueError(f"row of {len(row)} cells for {len(headers)} columns: {row}")
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def measurement(group: str, name: str, value: float, unit: str, *, config: Optional[dict] = None,
                baseline: Optional[str] = None, baseline_value: Optional[float] = None,
                higher_is_better: bool = True, **details: Any) -> dict:
    """One suite row: ``value`` (in ``unit``) beside ``baseline_value`` measured in the same run.

    ``ratio`` is value / baseline for rates (higher is better) and baseline / value for
    times, so > 1 always means faster than the baseline.
    """
    ratio = None
    if baseline_value and value:
        ratio = value / baseline_value if higher_is_better else baseline_value / value
    return {"group": group, "name": name, "value": float(value), "unit": unit, "config": config or {},
            "baseline": baseline, "baseline_value": None if baseline_value is None else float(baseline_value),
            "ratio": ratio, "higher_is_better": higher_is_better, **details}


def fmt(value: Optional[float], unit: str = "") -> str:
    """A number for a table: thousands separators for large ones, 3 significant digits otherwise."""
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()
