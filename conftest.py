"""Root pytest configuration: how notebooks are validated under nbval.

nbval starts one kernel per notebook from this process, so the environment set here is the
kernels' environment too.
"""
import os

# Sets and dicts keyed by str iterate in a hash-dependent order; one seed keeps notebook output
# the same on every run and every machine (cfopt grade sets the same for its kernels).
os.environ.setdefault("PYTHONHASHSEED", "0")


def pytest_collectstart(collector):
    # Warnings printed on stderr are not results; never compare them.
    if hasattr(collector, "skip_compare"):
        collector.skip_compare += ("stderr",)
