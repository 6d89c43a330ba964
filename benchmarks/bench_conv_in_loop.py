"""The MinAtar torso's convolution inside and outside ``lax`` loops: XLA conv vs shifted matmuls.

    python -m benchmarks.bench_conv_in_loop [--quick] [--out benchmarks/results]

The MinAtar agents train inside one ``jit`` (``lax.scan`` over environment steps, the
learner behind ``lax.cond``). On XLA:CPU a convolution's gradient inside a loop runs
several times slower than the same jitted step called from Python, so the MinAtar torso
computes its 3×3 convolution as nine shifted matmuls (:class:`core.networks.ShiftedMatmulConv2D`).
This measures, in one run, one Adam step of the MinAtar value network (conv 3×3×16 on
10×10×C, dense 128, A outputs; batch 32) with each convolution:

* ``python_loop``: the jitted step called from Python (the baseline of each form);
* ``fori_loop``: 100 steps inside one jitted ``lax.fori_loop`` (how the MinAtar loop runs).

One JSON line per measurement goes to ``benchmarks/results/conv_in_loop_<date>_<device>.jsonl``
and a table to ``conv_in_loop.md``.
"""
from __future__ import annotations

import argparse
import os

import haiku as hk
import jax
import jax.numpy as jnp
import optax

from benchmarks import common
from benchmarks.common import RESULTS, timed
from core.networks import ShiftedMatmulConv2D
BATCH, SIZE, CHANNELS, ACTIONS, LOOP = 32, 10, 6, 6, 100


def network(conv: str):
    def forward(x):
        layer = hk.Conv2D if conv == "xla_conv" else ShiftedMatmulConv2D
        h = jax.nn.relu(layer(16, 3, stride=1, padding="VALID", name="conv2_d")(x))
        h = jax.nn.relu(hk.Linear(128)(h.reshape(h.shape[0], -1)))
        return hk.Linear(ACTIONS)(h)

    return hk.without_apply_rng(hk.transform(forward))


def measure(conv: str, observations, *, repeats: int) -> dict:
    net = network(conv)
    optimizer = optax.adam(1e-4)
    params = net.init(jax.random.PRNGKey(0), observations)
    carry = (params, optimizer.init(params))

    def step(_, carry):
        params, opt_state = carry
        grads = jax.grad(lambda p: jnp.mean(net.apply(p, observations) ** 2))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    one = jax.jit(lambda c: step(0, c))
    loop = jax.jit(lambda c: jax.lax.fori_loop(0, LOOP, step, c))
    carry = jax.block_until_ready(loop(jax.block_until_ready(one(carry))))

    def python_loop():
        c = carry
        for _ in range(LOOP):
            c = one(c)
        jax.block_until_ready(c)

    outside = timed(python_loop, repeats=repeats)
    inside = timed(lambda: jax.block_until_ready(loop(carry)), repeats=repeats)
    return {"conv": conv, "python_loop_ms": 1e3 * outside["median_s"] / LOOP,
            "fori_loop_ms": 1e3 * inside["median_s"] / LOOP, "repeats": repeats, "steps": LOOP}


def run(quick: bool, out: str = RESULTS) -> list[dict]:
    """Every measurement; JSON lines and ``conv_in_loop.md`` in ``out``; suite rows back."""
    repeats = 3 if quick else 7
    meta = common.meta(shapes={"batch": BATCH, "board": [SIZE, SIZE, CHANNELS], "actions": ACTIONS})
    path = common.results_path(out, "conv_in_loop")
    observations = jax.random.uniform(jax.random.PRNGKey(1), (BATCH, SIZE, SIZE, CHANNELS))
    rows = []
    for conv in ("xla_conv", "shifted_matmul"):
        row = measure(conv, observations, repeats=repeats)
        rows.append(row)
        common.append_jsonl(path, {**row, **meta})
        print(common.rounded(row), flush=True)
    base = rows[0]["fori_loop_ms"]
    text = (f"Measured {common.today()} on `{meta['device']}` (jax {meta['versions'].get('jax')}, "
            f"XLA_FLAGS=`{meta['xla_flags']}`), by `python -m benchmarks.bench_conv_in_loop{' --quick' if quick else ''}`; "
            f"one Adam step of the MinAtar network, batch {BATCH}.\n\n"
            + common.markdown_table(["convolution", "step from Python", "step inside fori_loop",
                                     "in-loop speed-up vs XLA conv"],
                                    [[r["conv"], f"{r['python_loop_ms']:.3f} ms", f"{r['fori_loop_ms']:.3f} ms",
                                      f"{base / r['fori_loop_ms']:.2f}×"] for r in rows]))
    common.write_text(os.path.join(out, "conv_in_loop.md"), text)
    print(text)
    return [common.measurement("kernel", "MinAtar Adam step, shifted-matmul conv inside fori_loop",
                               rows[1]["fori_loop_ms"], "ms", config={"batch": BATCH},
                               baseline="XLA conv inside fori_loop", baseline_value=base, higher_is_better=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    args = parser.parse_args()
    run(args.quick, args.out)


if __name__ == "__main__":
    main()
