"""The fenced code blocks of README.md and docs/**/*.md, and how the tests run each one.

    python -m docs.blocks        # list every block with how it is checked

Conventions (see docs/index.md, "How these docs are tested"):

- A ```python block runs as a script, a ```sh block runs in ``bash -e -o pipefail`` with
  the venv's commands first on the PATH, a ```json block is parsed (node classes must
  also pass :mod:`infra.node_classes`). ``tests/unit/test_doc_examples.py`` runs them.
- ``<!-- run: local stack -->`` on the line before a block: it needs a running stack.
  ``tests/e2e/test_doc_examples_e2e.py`` runs those, file by file, in order, in one
  working directory per file; a file whose blocks run ``impetus local up`` gets a stack
  of its own under a private ``IMPETUS_HOME``, the others use the test session's stack.
- ``<!-- not run: REASON -->`` on the line before a block: it cannot run here.
- The generated pages (:data:`docs.generate.OUTPUTS`) are checked by regenerating them
  (``tests/unit/test_docs.py``).

Every other block is a failure: a block is run, or it says why not. Blocks run in a
scratch directory (:func:`workspace`) that looks like the repository (so
``python examples/helloworld.py`` works) but whose ``docs/`` is empty, so nothing a
block writes lands in the tree.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

RUNNABLE = ("python", "sh", "json")
ON_STACK = "run: local stack"
_MARKER = re.compile(r"^<!--\s*((?:not )?run)\s*:\s*(.*?)\s*-->$")
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^`\s]*)")
# What a scratch directory leaves out of the repository's top level.
_NOT_IN_WORKSPACE = {"docs", "tasks", "cdk.out", "build", "node_modules"}

UNIT, STACK, NOT_RUN, GENERATED, UNEXPLAINED = (
    "unit",
    "local stack",
    "not run",
    "generated",
    "unexplained",
)


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # the opening fence's, 1-based
    lang: str
    text: str
    marker: tuple[str, str] | None  # ("run" | "not run", the rest of the comment)

    @property
    def id(self) -> str:
        return f"{_shown(self.path)}:{self.line}"

    @property
    def how(self) -> str:
        """How the tests check the block: UNIT, STACK, NOT_RUN, GENERATED or UNEXPLAINED."""
        if self.path.parent == DOCS and self.path.name in _generated():
            return GENERATED
        if self.marker is None:
            return UNIT if self.lang in RUNNABLE else UNEXPLAINED
        kind, rest = self.marker
        if kind == "not run":
            return NOT_RUN if rest else UNEXPLAINED
        if f"run: {rest}" == ON_STACK and self.lang in ("python", "sh"):
            return STACK
        return UNEXPLAINED

    @property
    def starts_stack(self) -> bool:
        return self.lang == "sh" and "impetus local up" in self.text

    @property
    def stops_stack(self) -> bool:
        return self.lang == "sh" and "impetus local down" in self.text


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _generated() -> tuple[str, ...]:
    from docs.generate import OUTPUTS

    return tuple(OUTPUTS)


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


@dataclass(frozen=True)
class Parsed:
    blocks: list[Block]
    stray_markers: list[int]  # lines of markers that no block follows
    unclosed: int | None  # line of a fence that never closes


def parse(path: Path, text: str | None = None) -> Parsed:
    """The fenced blocks of one Markdown file (``text``: its content, default read)."""
    lines = (path.read_text(encoding="utf-8") if text is None else text).split("\n")
    blocks: list[Block] = []
    stray: list[int] = []
    pending: tuple[int, tuple[str, str]] | None = None  # a marker waiting for its block
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        marker = _MARKER.match(stripped)
        fence = _FENCE.match(line)
        if marker:
            if pending:
                stray.append(pending[0])
            pending = (i + 1, (marker.group(1), marker.group(2)))
        elif fence:
            indent, chars, lang = fence.groups()
            body: list[str] = []
            j = i + 1
            closing = re.compile(rf"^\s*{chars[0]}{{{len(chars)},}}\s*$")
            while j < len(lines) and not closing.match(lines[j]):
                body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
                j += 1
            if j == len(lines):
                return Parsed(blocks, stray, i + 1)
            text_ = "\n".join(body) + "\n"
            blocks.append(Block(path, i + 1, lang.lower(), text_, pending[1] if pending else None))
            pending = None
            i = j
        elif stripped and pending:
            stray.append(pending[0])
            pending = None
        i += 1
    if pending:
        stray.append(pending[0])
    return Parsed(blocks, stray, None)


def all_blocks() -> list[Block]:
    return [block for path in markdown_files() for block in parse(path).blocks]


# --- running blocks ---------------------------------------------------------------------------
def workspace(directory: Path) -> Path:
    """A scratch directory that looks like the repository: its top-level entries as
    symlinks, except an empty ``docs/`` and nothing of what runs leave behind."""
    directory.mkdir(parents=True, exist_ok=True)
    for entry in ROOT.iterdir():
        if entry.name.startswith(".") or entry.name in _NOT_IN_WORKSPACE:
            continue
        link = directory / entry.name
        if not link.exists():
            link.symlink_to(entry)
    (directory / "docs").mkdir(exist_ok=True)
    return directory


def environment(home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) as a user's shell would have it
    after ``. .venv/bin/activate``, with ``IMPETUS_HOME`` at ``home`` and no settings that
    would point a client elsewhere."""
    env = dict(os.environ if base is None else base)
    for name in ("IMPETUS_API_URL", "IMPETUS_AUTHKEY", "IMPETUS_TABLE_PREFIX", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    env["IMPETUS_HOME"] = str(home)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("PYTHONPATH", None)  # a script sees the installed packages, as a user's does
    return env


def run(block: Block, cwd: Path, env: Mapping[str, str], timeout: float = 120) -> str:
    """Run a python or sh block; its output, or AssertionError with what went wrong."""
    if block.lang == "python":
        script = cwd / f"block_{block.path.stem}_{block.line}.py"
        script.write_text(block.text, encoding="utf-8")
        argv = [sys.executable, str(script)]
    elif block.lang == "sh":
        argv = ["bash", "-e", "-o", "pipefail", "-c", block.text]
    else:
        raise ValueError(f"{block.id}: cannot run a {block.lang!r} block")
    done = subprocess.run(
        argv, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{block.id} exited {done.returncode}:\n{block.text}\n{output}"
    return output


def check_json(block: Block) -> Any:
    """Parse a json block; node-class JSON must also be a valid node class (list)."""
    value = json.loads(block.text)
    from infra import node_classes

    if isinstance(value, list) and value and all(_node_class(v) for v in value):
        node_classes.parse(value)
    elif _node_class(value):
        node_classes.NodeClass.from_dict(value)
    return value


def _node_class(value: Any) -> bool:
    return isinstance(value, dict) and "instanceTypes" in value


# --- links ------------------------------------------------------------------------------------
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_INLINE_CODE = re.compile(r"`+[^`]*`+")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text.replace("`", ""))
    return text.replace(" ", "-")


def _prose(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of the lines outside fenced blocks."""
    inside = {
        n
        for block in parse(path).blocks
        for n in range(block.line, block.line + block.text.count("\n") + 2)
    }
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if number not in inside:
            yield number, line


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, line in _prose(path):
        if re.match(r"^#{1,6} ", line):
            base = slug(line.lstrip("#"))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> Iterator[tuple[int, str]]:
    """(line, target) of the relative links of a Markdown file."""
    for number, line in _prose(path):
        for target in _LINK.findall(_INLINE_CODE.sub("", line)):
            if not re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                yield number, target


def broken_links(path: Path) -> list[str]:
    """The relative links of ``path`` whose file or #anchor does not exist."""
    broken = []
    for number, target in links(path):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        where = f"{_shown(path)}:{number}: {target}"
        if not resolved.exists():
            broken.append(f"{where} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{where} (no such heading)")
    return broken


def main() -> int:
    for block in all_blocks():
        print(f"{block.id:40} {block.lang or '-':8} {block.how}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
