"""Measured cost of one jitted step: compile time, then per-step wall-clock and process CPU time.

The paper presets of several algorithms are accelerator-sized; their ``cost`` scripts time
a few updates of the full network here and project a run from the median. CPU time (all
XLA threads of this process) is reported beside wall-clock because on a shared, saturated
machine it is the honest figure (wall ≈ CPU / cores on an idle one).
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Dict, Optional, Tuple

import jax
import numpy as np

from core import cli


def measure_steps(lower: Callable[[], Any], step: Callable[[Any, Any], Tuple[Any, Any]], state: Any,
                  steps: int) -> Tuple[Dict[str, Any], Any, Any]:
    """Compiles (``lower()`` returns a lowered computation) and times ``steps`` calls of ``step(compiled, state)``.

    ``step`` returns ``(state, output)``; each call is blocked on. Returns ``(timings, state,
    last output)``, timings with ``compile_s``, ``compile_cpu_s``, per-step ``step_s``,
    ``step_cpu_s`` and their medians.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    compiled = lower().compile()
    compile_s, compile_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"compiled in {compile_s:.1f} s wall, {compile_cpu_s:.1f} s CPU", flush=True)
    times, cpu_times, out = [], [], None
    for i in range(steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        state, out = step(compiled, state)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        print(f"step {i}: {times[-1]:.2f} s wall, {cpu_times[-1]:.2f} s CPU (all threads)", flush=True)
    timings = {"compile_s": round(compile_s, 1), "compile_cpu_s": round(compile_cpu_s, 1),
               "step_s": [round(t, 3) for t in times], "step_cpu_s": [round(t, 3) for t in cpu_times],
               "median_step_s": round(float(np.median(times)), 3),
               "median_step_cpu_s": round(float(np.median(cpu_times)), 3)}
    return timings, state, out


def provenance() -> Dict[str, Any]:
    """Versions, date and the 1-minute load average, for a cost file."""
    return {"versions": cli.versions(), "date": time.strftime("%Y-%m-%d"), "load_average_1min": os.getloadavg()[0]}


def write_result(result: Dict[str, Any], out: Optional[str]) -> None:
    """Prints the result as JSON and writes it to ``out`` (when given)."""
    print(json.dumps(result, indent=1))
    if out:
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        cli.write_json(out, result)
