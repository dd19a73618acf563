"""The README's and docs' blocks marked ``<!-- run: local stack -->``, run on a local stack.

One test per Markdown file: its marked blocks run in order, as a reader follows them,
in one scratch working directory (so a later block sees the task files an earlier one
wrote). A file whose blocks run ``impetus local up`` (the README's quickstart,
docs/local-stack.md) gets a stack of its own under a private IMPETUS_HOME, from that
block until its ``impetus local down``; the test stops it whatever happens. Blocks of the
other files run on the session's stack (conftest's ``local_stack``). The unit half, and
the conventions, are in tests/unit/test_doc_examples.py and docs/blocks.py.

(Not named test_doc_examples.py like its unit half: tests/ has no __init__.py files, so
pytest cannot collect two test modules of one basename.)
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from conftest import impetus_cli

from docs import blocks as docblocks

BY_FILE = {
    path: list(group)
    for path, group in itertools.groupby(
        (b for b in docblocks.all_blocks() if b.how == docblocks.STACK), key=lambda b: b.path
    )
}


def _param(path: Path, file_blocks: list) -> object:
    own_stack = any(b.starts_stack for b in file_blocks)
    # The e2e marker means "starts and stops its own stack" (pyproject.toml).
    marks = [pytest.mark.e2e] if own_stack else []
    return pytest.param(file_blocks, id=str(path.relative_to(docblocks.ROOT)), marks=marks)


@pytest.mark.parametrize("file_blocks", [_param(p, bs) for p, bs in BY_FILE.items()])
def test_blocks_run_on_a_local_stack(file_blocks, request, tmp_path):
    cwd = docblocks.workspace(tmp_path / "work")
    own_env = docblocks.environment(tmp_path / "home")
    own_up = False
    timings = []
    try:
        for block in file_blocks:
            own_up = own_up or block.starts_stack
            if own_up:
                env = own_env
            else:  # the session's stack, started on first use
                shared = request.getfixturevalue("local_stack")
                env = docblocks.environment(shared["home"], shared["env"])
            started = time.monotonic()
            docblocks.run(block, cwd, env, timeout=120)
            timings.append(f"{block.id} {time.monotonic() - started:.1f}s")
            if block.stops_stack:
                own_up = False
    finally:
        if own_up:  # a block failed between `impetus local up` and `down`
            impetus_cli("local", "down", env=own_env)
    print("\n".join(timings))
    if any(b.starts_stack for b in file_blocks):
        status = impetus_cli("local", "status", env=own_env)
        assert status.returncode == 1, "the file's own stack is still up:\n" + status.stdout
