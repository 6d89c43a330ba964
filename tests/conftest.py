"""Test configuration: one CPU device per test process unless a test spawns its own."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
