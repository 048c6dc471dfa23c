"""Issue 8, key hygiene in notebook outputs: the scanner in the root ``conftest.py`` can fail.

``make test`` executes every notebook with nbval; the root conftest plants a fake API key in the
kernels' environment and fails any cell whose outputs show it. Here a throwaway notebook leaks
the key in each kind of output, under a separate ``pytest --nbval-lax`` run that uses the same
conftest: each leaking cell must fail by name and kind, the clean ones must pass, the key must
not appear in pytest's own report, and a test after the notebook must not see the key.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys

import nbformat

ROOT = os.path.join(os.path.dirname(__file__), "..")
_spec = importlib.util.spec_from_file_location("cfopt_root_conftest", os.path.join(ROOT, "conftest.py"))
root_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(root_conftest)
KEY, MIDDLE, ENV = root_conftest.PLANTED_KEY, root_conftest.PLANTED_MIDDLE, root_conftest.PLANTED_ENV

# cell source -> where the scanner must find the key (None: the cell must pass)
CELLS = [
    ("import os, sys\nprint('nothing secret here')", None),
    ("print(os.environ['ANTHROPIC_API_KEY'])", "stdout"),
    ("os.environ['FAL_KEY'][7:-4]   # the ends cut off, the middle shown", "execute_result text/plain"),
    ("print('key:', os.environ['UNSPLASH_ACCESS_KEY'], file=sys.stderr)", "stderr"),
    ("from IPython.display import HTML, display\n"
     "display(HTML('<b>' + os.environ['CFOPT_API_KEY'] + '</b>'))", "display_data text/html"),
    ("raise RuntimeError('bad key ' + os.environ['ANTHROPIC_API_KEY'])", "error"),
    ("key = os.environ['ANTHROPIC_API_KEY']\nprint(key[:6] + '...' + key[-4:], len(key))", None),
    (f"assert all(os.environ.get(n, '').startswith('sk-ant-') for n in {ENV!r}), 'not planted'",
     None),
]
AFTER = f"""
import os
def test_the_key_is_gone_after_the_notebook():
    assert all(os.environ.get(n) != {KEY!r} for n in {ENV!r})
"""


def test_a_cell_that_shows_the_planted_key_fails_by_name_and_kind(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src, _ in CELLS]
    nbformat.write(nb, tmp_path / "leaky.ipynb")
    shutil.copy(os.path.join(ROOT, "conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_after.py").write_text(AFTER)
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
         "-rA", "-q", "leaky.ipynb", "test_after.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert KEY not in out and MIDDLE not in out, "the failure report itself showed the key"
    failed = set(map(int, re.findall(r"^FAILED leaky\.ipynb::Cell (\d+)", out, re.M)))
    passed = set(map(int, re.findall(r"^PASSED leaky\.ipynb::Cell (\d+)", out, re.M)))
    expected = {i for i, (_, where) in enumerate(CELLS) if where}
    assert failed == expected, f"failed cells {sorted(failed)}, expected {sorted(expected)}\n{out}"
    assert passed == set(range(len(CELLS))) - expected, out
    for i, (_, where) in enumerate(CELLS):
        if where:
            assert f"leaky.ipynb::Cell {i}: the planted API key appeared in the cell's output " \
                   f"({where})" in out, f"cell {i} should be reported with {where!r}\n{out}"
    assert re.search(r"^PASSED test_after\.py::test_the_key_is_gone_after_the_notebook", out, re.M), out
    assert proc.returncode == 1, out
    print(f"\nnotebook key scan: {len(CELLS)} cells, {len(failed)} leaks caught "
          f"({', '.join(w for _, w in CELLS if w)}), {len(passed)} clean cells passed")


def test_leaks_reads_every_output_kind():
    outputs = [
        {"output_type": "stream", "name": "stdout", "text": "ok"},
        {"output_type": "execute_result", "data": {"application/json": {"k": f"x{MIDDLE}x"}}},
        {"output_type": "error", "ename": "E", "evalue": "",
         "traceback": [f"\x1b[0;31m{KEY[:20]}\x1b[0m{KEY[20:]}"]},   # split by a colour code
    ]
    assert root_conftest.leaks(outputs) == ["execute_result application/json", "error"]
    assert root_conftest.leaks(None) == []
