"""Multi-process DQN/Rainbow: actors in every process feeding one synchronised learner step.

    python -m benchmarks.bench_multihost --spawn 2 [--agent dqn|rainbow] [--iterations 20]
    # or one process per host (the same command on each, process ids 0..P-1):
    python -m benchmarks.bench_multihost --num-processes P --process-id I --coordinator HOST:PORT

Each process joins the job with :func:`core.distributed.initialize` (gloo collectives on
CPU), builds the value-based agent of :mod:`algorithms.dqn.agent` with the learner update
over the *global* mesh (every process's devices), and then repeats:

1. its actors take ``--env-steps`` steps of gymnax CartPole (``--num-envs`` environments,
   a jitted ``lax.scan`` of ``agent.observe`` and the environment step, seeded apart per
   process) into its own replay;
2. ``--updates`` times: sample ``batch_size`` rows from its own replay, then the global
   learner update (:func:`core.distributed.make_global_step`): the global batch is the
   processes' rows side by side, gradients are averaged across processes, and every
   process receives the same new parameters; Rainbow's prioritized replay gets back the
   priorities of its own rows.

At the end every process prints one JSON line with a fingerprint of its parameters;
``--spawn P`` starts P such processes on this machine over loopback, checks that the
fingerprints agree and reports aggregate environment steps/s and updates/s (the suite
compares P = 2 against P = 1 measured in the same run; on one 2-core machine the
processes share the cores, so this measures the cost of synchronisation, not a speed-up).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results")
ENV_ID = "gymnax/CartPole-v1"


def agent_config(agent: str, *, batch_size: int, num_envs: int):
    from algorithms.dqn import train as dqn
    from algorithms.rainbow import train as rainbow

    cfg = (dqn if agent == "dqn" else rainbow).PRESETS["smoke"][1]
    return dataclasses.replace(cfg, env_id=ENV_ID, num_envs=num_envs, batch_size=batch_size, learning_starts=0,
                               train_every=num_envs, progress=False)


def worker(args) -> dict:
    """One process of the job: actors, local replay, the global learner step."""
    from core import distributed

    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    import jax

    import environments
    from algorithms.dqn.agent import make_agent
    from core import prioritized

    mesh = distributed.global_mesh()
    cfg = agent_config(args.agent, batch_size=args.batch_size, num_envs=args.num_envs)
    env = environments.make_jax(ENV_ID)
    agent = make_agent(cfg, env.spec, mesh=mesh)
    me = jax.process_index()

    loop = agent.init(jax.random.PRNGKey(args.seed))  # the learner state is the same on every process
    loop = loop._replace(actor_key=jax.random.fold_in(loop.actor_key, me))  # the actors explore apart
    env_key = jax.random.fold_in(jax.random.PRNGKey(args.seed + 1), me)
    env_state, timestep = env.reset(env_key, cfg.num_envs)
    # Committed to this process's first device, like the learner's outputs (a jit caches per commitment).
    loop, env_state, timestep, env_key = jax.device_put((loop, env_state, timestep, env_key), jax.local_devices()[0])
    steps = args.env_steps // cfg.num_envs

    @jax.jit
    def act(loop, env_state, timestep, env_key):
        def body(carry, _):
            loop, env_state, timestep, env_key = carry
            loop, actions = agent.observe(loop, timestep)
            env_key, step_key = jax.random.split(env_key)
            env_state, timestep = env.step(step_key, env_state, actions)
            return (loop, env_state, timestep, env_key), None

        return jax.lax.scan(body, (loop, env_state, timestep, env_key), None, length=steps)[0]

    sample = jax.jit(agent.sample)
    learn = distributed.make_global_step(lambda train, key, batch, weight: agent.learner_update(train, batch, weight,
                                                                                                key),
                                         mesh, num_replicated=2)
    reprioritize = jax.jit(lambda buffer, indices, priority: prioritized.update_priorities(
        buffer, indices, priority, alpha=cfg.priority_exponent))

    timings = []
    losses = []
    for iteration in range(args.iterations):
        start = time.perf_counter()
        loop, env_state, timestep, env_key = jax.block_until_ready(act(loop, env_state, timestep, env_key))
        act_s = time.perf_counter() - start
        for _ in range(args.updates):
            loop, batch, indices, weight, loss_key = sample(loop)
            train, loss, priority = learn(loop.train, loss_key, batch, weight)
            if cfg.prioritized:
                loop = loop._replace(replay=reprioritize(loop.replay, indices, distributed.process_rows(priority,
                                                                                                        mesh)))
            loop = loop._replace(train=train)
        losses.append(float(loss))
        timings.append((act_s, time.perf_counter() - start - act_s))
    steady = timings[1:] or timings
    act_s, learn_s = sum(t[0] for t in steady), sum(t[1] for t in steady)
    result = {
        "process_id": me, "num_processes": jax.process_count(), "global_devices": jax.device_count(),
        "local_devices": jax.local_device_count(), "agent": args.agent, "grad_steps": int(loop.train.step),
        "env_steps": int(loop.env_steps), "episodes": int(loop.returns_count), "final_loss": losses[-1],
        "fingerprint": distributed.fingerprint(loop.train.params),
        "target_fingerprint": distributed.fingerprint(loop.train.target_params),
        "actor_fingerprint": distributed.fingerprint(loop.replay),
        "env_steps_per_s": len(steady) * args.env_steps / (act_s + learn_s),
        "updates_per_s": len(steady) * args.updates / (act_s + learn_s),
        "learner_s_per_update": learn_s / (len(steady) * args.updates),
        "global_batch": args.batch_size * jax.process_count(),
    }
    print(json.dumps(result), flush=True)
    jax.distributed.shutdown()
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(num_processes: int, *, agent: str = "dqn", iterations: int = 3, env_steps: int = 256, updates: int = 4,
          batch_size: int = 16, num_envs: int = 4, seed: int = 0, timeout: float = 300) -> list[dict]:
    """Starts ``num_processes`` workers on this machine over loopback; their result lines, by process id."""
    port = free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    procs = []
    for pid in range(num_processes):
        command = [sys.executable, "-m", "benchmarks.bench_multihost", "--num-processes", str(num_processes),
                   "--process-id", str(pid), "--coordinator", f"127.0.0.1:{port}", "--agent", agent,
                   "--iterations", str(iterations), "--env-steps", str(env_steps), "--updates", str(updates),
                   "--batch-size", str(batch_size), "--num-envs", str(num_envs), "--seed", str(seed)]
        procs.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    deadline = time.time() + timeout
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.time()))
            outputs.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    results = []
    for pid, (code, out, err) in enumerate(outputs):
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if code != 0 or not lines:
            raise RuntimeError(f"process {pid} exited with {code}:\n{err[-4000:]}")
        results.append(lines[-1])
    return sorted(results, key=lambda r: r["process_id"])


def run(quick: bool, out: str = RESULTS) -> list[dict]:
    """1 process against 2 over loopback, same per-process work; JSON lines and ``multihost.md``."""
    from benchmarks import common

    settings = dict(iterations=3 if quick else 12, env_steps=256, updates=8, batch_size=32, num_envs=4)
    path = common.results_path(out, "multihost")
    meta = common.meta(shapes=settings)
    suite, table, base = [], [], None
    for processes in (1, 2):
        results = spawn(processes, **settings)
        same = len({r["fingerprint"] for r in results}) == 1
        env_sps = sum(r["env_steps_per_s"] for r in results)
        ups = results[0]["updates_per_s"]
        row = {"processes": processes, "identical_parameters": same, "aggregate_env_steps_per_s": env_sps,
               "updates_per_s": ups, "per_process": results}
        common.append_jsonl(path, {**row, **meta})
        base = base or env_sps
        suite.append(common.measurement(
            "multihost", f"DQN actors + synchronised learner, {processes} process(es)", env_sps, "env steps/s",
            config={"processes": processes, "global_batch": results[0]["global_batch"]},
            baseline="1 process, same per-process work", baseline_value=base, identical_parameters=same))
        table.append([processes, results[0]["global_batch"], f"{env_sps:,.0f}", f"{ups:,.1f}",
                      f"{env_sps / base:.2f}", "yes" if same else "NO"])
    text = (f"Measured {common.today()} on `{meta['device']}` ({os.cpu_count()} cores, processes on loopback with "
            f"gloo collectives), by `python -m benchmarks.bench_multihost --suite{' --quick' if quick else ''}`; per "
            f"process: {settings['num_envs']} CartPole envs, {settings['env_steps']} env steps then "
            f"{settings['updates']} updates of {settings['batch_size']} rows per iteration.\n\n"
            + common.markdown_table(["processes", "global batch", "aggregate env steps/s", "updates/s",
                                     "× 1 process", "identical parameters"], table, align="rrrrrl"))
    common.write_text(os.path.join(out, "multihost.md"), text)
    print(text)
    return suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spawn", type=int, default=0, help="start this many processes here over loopback")
    parser.add_argument("--suite", action="store_true", help="measure 1 against 2 processes, write results")
    parser.add_argument("--quick", action="store_true", help="(with --suite) fewer iterations")
    parser.add_argument("--out", default=RESULTS, help="(with --suite) results directory")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--coordinator", default=None, help="host:port of process 0")
    parser.add_argument("--agent", choices=("dqn", "rainbow"), default="dqn")
    parser.add_argument("--iterations", type=int, default=3, help="act-then-learn iterations")
    parser.add_argument("--env-steps", type=int, default=256, help="environment steps per process per iteration")
    parser.add_argument("--updates", type=int, default=4, help="synchronised learner updates per iteration")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per process (global batch = P × this)")
    parser.add_argument("--num-envs", type=int, default=4, help="CartPole environments per process")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.suite:
        run(args.quick, args.out)
    elif args.spawn:
        results = spawn(args.spawn, agent=args.agent, iterations=args.iterations, env_steps=args.env_steps,
                        updates=args.updates, batch_size=args.batch_size, num_envs=args.num_envs, seed=args.seed)
        for r in results:
            print(json.dumps(r))
        same = len({r["fingerprint"] for r in results}) == 1
        print(f"{len(results)} processes, identical parameters: {same}")
        sys.exit(0 if same else 1)
    else:
        worker(args)


if __name__ == "__main__":
    main()
