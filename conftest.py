"""Root pytest configuration: how notebooks are validated under nbval.

nbval starts one kernel per notebook from this process, so the environment set here is the
kernels' environment too.

Key hygiene (issue 8): every notebook kernel starts with a planted fake API key in the
variables a ContentFlow user would keep their keys in (``PLANTED_ENV``). ``cfopt.latency.client`` reads
``ANTHROPIC_API_KEY`` when no key is passed, so notebook 03's clients send the planted key to
``cfopt serve`` (which accepts any key). Every cell's outputs, as this run produced them (stdout,
stderr, display data, results, error tracebacks), are scanned, and a cell that shows the key,
or its distinctive middle, fails, naming the cell and the output, never showing the key.
``tests/test_reliability_notebooks.py`` proves a leaking cell fails.
"""
import json
import os
import re

import pytest

# Sets and dicts keyed by str iterate in a hash-dependent order; one seed keeps notebook output
# the same on every run and every machine (cfopt grade sets the same for its kernels).
os.environ.setdefault("PYTHONHASHSEED", "0")

# Under pytest-xdist (make test runs one worker per CPU), notebooks run side by side: each
# worker's kernels keep their Redis keys under a prefix of their own, as learners sharing one
# Redis do (kit.namespace, docs/workshops.md), so solutions/02 and notebooks/02 never clear each
# other's keys.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("CFOPT_NAMESPACE", f"cfopt-test-{os.environ['PYTEST_XDIST_WORKER']}")

PLANTED_KEY = "sk-ant-api03-PLANTEDnbval9c41e7d2b8-notareal-key"
PLANTED_MIDDLE = "PLANTEDnbval9c41e7d2b8"   # caught even when the ends are cut off
PLANTED_ENV = ("ANTHROPIC_API_KEY", "FAL_KEY", "UNSPLASH_ACCESS_KEY", "CFOPT_API_KEY")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")   # IPython colours its tracebacks


def pytest_collectstart(collector):
    # Warnings printed on stderr are not results; never compare them.
    if hasattr(collector, "skip_compare"):
        collector.skip_compare += ("stderr",)


def _is_cell(item) -> bool:
    return hasattr(item, "test_outputs") and hasattr(item, "cell_num")   # nbval's IPyNbCell


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    # A notebook's kernel starts in the setup of its first cell: plant the key for that moment
    # only, so the kernel inherits it and no other test runs with it.
    if not _is_cell(item):
        return (yield)
    saved = {name: os.environ.get(name) for name in PLANTED_ENV}
    os.environ.update(dict.fromkeys(PLANTED_ENV, PLANTED_KEY))
    try:
        return (yield)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def leaks(outputs) -> list[str]:
    """Where in ``outputs`` (nbformat output dicts) the planted key shows, e.g. ["stdout"]."""
    found = []
    for out in outputs or ():
        kind = out.get("output_type", "?")
        if kind == "stream":
            parts = {out.get("name", "stream"): out.get("text", "")}
        elif kind == "error":
            parts = {"error": "\n".join([out.get("ename", ""), out.get("evalue", ""),
                                         *out.get("traceback", [])])}
        else:   # display_data, execute_result: every MIME type
            parts = {f"{kind} {mime}": v if isinstance(v, str) else json.dumps(v)
                     for mime, v in (out.get("data") or {}).items()}
        found += [where for where, text in parts.items() if PLANTED_MIDDLE in _ANSI.sub("", text)]
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.when == "call" and _is_cell(item):
        where = leaks(item.test_outputs)
        if where:
            report.outcome = "failed"
            # nbval's own failure text would quote the output, key included: replace it.
            report.longrepr = (f"{item.nodeid}: the planted API key appeared in the cell's "
                               f"output ({', '.join(where)}); outputs withheld")
            report.sections = []
    return report
