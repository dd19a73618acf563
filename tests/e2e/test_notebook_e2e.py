"""Notebooks: cells run in ``__main__`` with the source cached under a cell name, as
IPython runs them (IPython is not installed here: a fresh interpreter runs each cell with
``exec`` the way IPython's run_cell does, against the local stack)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# The kernel: each cell compiled under an "<ipython-input-N>" name whose source is in
# linecache (as IPython's compiler caches it), executed in the __main__ namespace.
KERNEL = textwrap.dedent(
    """
    import json, linecache, sys, traceback

    cells = json.load(sys.stdin)
    namespace = sys.modules["__main__"].__dict__
    for number, source in enumerate(cells, 1):
        filename = f"<ipython-input-{number}-cafe>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), namespace)
    """
)

CELLS = [
    "from impetus import Executor\nex = Executor()\nprint('repr:', repr(ex))\n",
    "class Overdrawn(Exception):\n    pass\n\n"
    "rate = 0.1\n\n"
    "def with_tax(price):\n"
    "    if price < 0:\n"
    "        raise Overdrawn(price)  # the cell's failing line\n"
    "    return round(price * (1 + rate), 2)\n",
    "import json\n"
    "print('result:', ex.submit(with_tax, 10).result(timeout=120))\n"
    "try:\n"
    "    ex.submit(with_tax, -1).result(timeout=120)\n"
    "except Overdrawn as exc:\n"
    "    print('raised:', type(exc).__name__, exc.args)\n"
    "    print('cause:', json.dumps(exc.__cause__.text))\n",
    "ex.shutdown()\nprint('after:', repr(ex))\n",
]


def test_cells_run_on_the_nodes_with_faithful_errors_and_a_useful_repr(local_stack):
    run = subprocess.run(
        [sys.executable, "-c", KERNEL],
        input=json.dumps(CELLS),
        capture_output=True,
        text=True,
        env=local_stack["env"],
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = dict(line.split(": ", 1) for line in run.stdout.splitlines() if ": " in line)
    assert lines["repr"].startswith("<impetus.Executor stream=")
    assert "address='http" in lines["repr"] and "pending=0 open>" in lines["repr"]
    assert lines["result"] == "11.0"
    assert lines["raised"] == "Overdrawn (-1,)"
    cause = json.loads(lines["cause"])
    assert 'File "<ipython-input-2-cafe>", line 8, in with_tax' in cause
    assert "raise Overdrawn(price)  # the cell's failing line" in cause
    assert lines["after"].endswith("pending=0 shut down>")
