"""Test configuration: one CPU device per test process unless a test spawns its own."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING_FIELDS = ("sps", "wall_s")


def run_script(module, *args, timeout=180):
    """``python -m module args...`` from the repository root, output captured."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def learning_metrics(run_dir):
    """metrics.jsonl without the timing fields: equal for equal seeds on one machine."""
    from core import metrics
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS}
            for r in metrics.read_jsonl(os.path.join(run_dir, "metrics.jsonl"))]


def kill_at_checkpoint_and_resume(module, preset, out, step, timeout=180):
    """Starts ``module preset --out-dir out``, SIGKILLs it once checkpoint ``step`` exists,
    checks it had not finished, then runs the same command again and returns that result."""
    proc = subprocess.Popen([sys.executable, "-m", module, preset, "--out-dir", out, "--no-progress"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, reached = time.time() + timeout, False
    while time.time() < deadline:
        reached = os.path.isdir(os.path.join(out, "checkpoints", str(step)))
        if reached or proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert reached, f"the run never reached its checkpoint at step {step}"
    assert not os.path.exists(os.path.join(out, "summary.json")), "killed too late to test resuming"
    result = run_script(module, preset, "--out-dir", out, "--no-progress", timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming" in result.stdout
    return result


@pytest.fixture
def scripts():
    """The script helpers above, for tests (test modules cannot import conftest)."""
    return type("Scripts", (), {"run": staticmethod(run_script), "learning_metrics": staticmethod(learning_metrics),
                                "kill_at_checkpoint_and_resume": staticmethod(kill_at_checkpoint_and_resume)})
