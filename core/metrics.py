"""Run outputs: JSONL + CSV metrics, a tqdm progress bar with steps/s, learning-curve PNGs."""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.generic,)) or (hasattr(value, "dtype") and np.ndim(value) == 0):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_jsonl(path: str) -> list[dict]:
    """Reads one JSON object per line; a torn last line (a killed writer) is skipped."""
    records = []
    if not os.path.exists(path):
        return records
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


class MetricsWriter:
    """Appends one record per logging step to ``metrics.jsonl`` and ``metrics.csv``.

    The CSV columns are fixed by ``columns`` (missing values left empty). On resume call
    :meth:`truncate` with the restored step so that records written after the checkpoint
    (by the run that was killed) are dropped and the files match an uninterrupted run.
    """

    def __init__(self, out_dir: str, columns: Sequence[str], *, step_key: str = "env_steps"):
        self.jsonl_path = os.path.join(out_dir, "metrics.jsonl")
        self.csv_path = os.path.join(out_dir, "metrics.csv")
        self.columns = list(columns)
        self.step_key = step_key
        os.makedirs(out_dir, exist_ok=True)

    def truncate(self, max_step: int) -> int:
        """Keeps only records with ``step_key`` ≤ ``max_step``; returns how many remain."""
        kept = [r for r in read_jsonl(self.jsonl_path) if r.get(self.step_key, 0) <= max_step]
        self._rewrite(kept)
        return len(kept)

    def reset(self) -> None:
        self._rewrite([])

    def _rewrite(self, records: Iterable[Mapping[str, Any]]) -> None:
        tmp = self.jsonl_path + ".tmp"
        with open(tmp, "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, self.jsonl_path)
        tmp = self.csv_path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            for r in read_jsonl(self.jsonl_path):
                writer.writerow(r)
        os.replace(tmp, self.csv_path)

    def write(self, record: Mapping[str, Any]) -> None:
        record = {k: _jsonable(v) for k, v in record.items()}
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        new_csv = not os.path.exists(self.csv_path)
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new_csv:
                writer.writeheader()
            writer.writerow(record)


def progress_bar(total: int, *, initial: int = 0, desc: str = "", disable: Optional[bool] = None):
    """A tqdm bar counting environment steps; tqdm shows steps/s itself."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, desc=desc, unit="step", unit_scale=True,
        dynamic_ncols=True, disable=disable, mininterval=1.0,
    )


def plot_learning_curve(
    run_dirs: Sequence[str] | str,
    out_path: str,
    *,
    x: str = "env_steps",
    y: str = "eval_return",
    title: str = "",
    labels: Optional[Sequence[str]] = None,
    hline: Optional[float] = None,
) -> str:
    """Plots ``y`` against ``x`` from the ``metrics.jsonl`` of one or several run dirs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(run_dirs, str):
        run_dirs = [run_dirs]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for i, run_dir in enumerate(run_dirs):
        records = [r for r in read_jsonl(os.path.join(run_dir, "metrics.jsonl")) if r.get(y) is not None]
        if not records:
            continue
        label = labels[i] if labels else os.path.basename(os.path.normpath(run_dir))
        ax.plot([r[x] for r in records], [r[y] for r in records], marker=".", label=label)
    if hline is not None:
        ax.axhline(hline, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(run_dirs) > 1 or labels:
        ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path)
    plt.close(fig)
    return out_path
