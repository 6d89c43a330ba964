"""Functions compiled ahead of time on their first call and reused, with the compile time kept apart.

A training loop's chunk is compiled once, explicitly (``jax.jit(f).lower(args).compile()``),
and the executable is reused for every later call whose arguments have the same tree
structure, shapes and dtypes. Two reasons to do this instead of calling ``jax.jit(f)``:

* the compile time can be reported apart from the steps/s (``Compiler.seconds``);
* the cache key ignores sharding annotations: after one chunk, leaves that passed through a
  ``shard_map`` carry its mesh in their type (``f32[N, ...]({Auto: ('data',)})``), which a
  plain ``jax.jit`` treats as a new signature and retraces and recompiles the whole loop for
  (measured: 15–40 s per recompile of the vmapped-seeds chunk on 2 CPU cores).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import jax


def signature(args: Sequence[Any]) -> tuple:
    """Tree structure, shapes and dtypes of ``args`` (not their shardings)."""
    leaves, tree = jax.tree.flatten(args)
    return tree, tuple((getattr(x, "shape", None), getattr(x, "dtype", type(x))) for x in leaves)


class Compiler:
    """Wraps functions so that each is compiled once per argument signature; ``seconds`` is the total compile time."""

    def __init__(self):
        self.seconds = 0.0

    def __call__(self, fn: Callable, *, donate_argnums: int | Sequence[int] = ()) -> Callable:
        """``fn`` jitted (donating ``donate_argnums``), compiled on the first call for each signature.

        The returned function's ``jitted`` attribute is the ``jax.jit`` of ``fn`` (``.lower(...)``
        to inspect its compiled code).
        """
        jitted = jax.jit(fn, donate_argnums=donate_argnums)
        executables: dict = {}

        def call(*args):
            key = signature(args)
            if key not in executables:
                start = time.perf_counter()
                executables[key] = jitted.lower(*args).compile()
                self.seconds += time.perf_counter() - start
            return executables[key](*args)

        call.jitted = jitted
        return call
