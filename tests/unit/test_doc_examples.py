"""Every code block of the README and docs/ is run, or says why not (docs/blocks.py).

Here: the blocks that need no stack (json parsed, node classes validated; python and sh
run in a scratch copy of the repository with an empty IMPETUS_HOME), every python block
compiles, no block is unexplained, and every relative link resolves. The blocks marked
``<!-- run: local stack -->`` run in tests/e2e/test_doc_examples_e2e.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docs import blocks as docblocks

BLOCKS = docblocks.all_blocks()


def _params(how: str, *langs: str) -> list:
    return [
        pytest.param(b, id=b.id) for b in BLOCKS if b.how == how and (not langs or b.lang in langs)
    ]


def test_every_block_is_run_or_says_why():
    unexplained = [f"{b.id} ({b.lang or 'no language'})" for b in BLOCKS if b.how == "unexplained"]
    assert not unexplained, (
        "blocks neither run nor explained; give them a language the tests run "
        "(python, sh, json), `<!-- run: local stack -->`, or `<!-- not run: REASON -->`: "
        f"{unexplained}"
    )


def test_every_marker_belongs_to_a_block_and_every_fence_closes():
    for path in docblocks.markdown_files():
        parsed = docblocks.parse(path)
        assert not parsed.stray_markers, f"{path}: markers with no block: {parsed.stray_markers}"
        assert parsed.unclosed is None, f"{path}:{parsed.unclosed}: fence never closes"


def test_the_docs_have_blocks_of_every_kind():
    hows = {b.how for b in BLOCKS}
    assert {"unit", "local stack", "not run", "generated"} <= hows
    readme = [b for b in BLOCKS if b.path == docblocks.README]
    assert any(b.starts_stack for b in readme) and any(b.stops_stack for b in readme)


def test_parse_reads_fences_markers_and_indentation():
    text = "\n".join(
        [
            "<!-- not run: needs AWS -->",
            "```sh",
            "npx cdk deploy",
            "```",
            "",
            "- a list item:",
            "",
            "  ```json",
            '  {"a": 1}',
            "  ```",
            "<!-- run: local stack -->",
            "",
            "~~~python",
            "print('```')",
            "~~~",
            "<!-- not run: nothing follows -->",
            "text",
            "````text",
            "```",
            "````",
        ]
    )
    parsed = docblocks.parse(docblocks.DOCS / "example.md", text)
    got = [(b.line, b.lang, b.text, b.how) for b in parsed.blocks]
    assert got == [
        (2, "sh", "npx cdk deploy\n", "not run"),
        (8, "json", '{"a": 1}\n', "unit"),
        (13, "python", "print('```')\n", "local stack"),
        (18, "text", "```\n", "unexplained"),
    ]
    assert parsed.stray_markers == [16] and parsed.unclosed is None
    assert docblocks.parse(docblocks.DOCS / "x.md", "```sh\nls\n").unclosed == 1


def test_a_reason_is_required_and_unknown_markers_do_not_count():
    text = "<!-- not run: -->\n```sh\nls\n```\n<!-- run: somewhere -->\n```sh\nls\n```\n"
    parsed = docblocks.parse(docblocks.DOCS / "example.md", text)
    assert [b.how for b in parsed.blocks] == ["unexplained", "unexplained"]


@pytest.mark.parametrize("block", _params("unit", "json"))
def test_json_block_parses(block):
    docblocks.check_json(block)


def test_node_class_json_is_validated():
    bad = docblocks.Block(
        docblocks.DOCS / "x.md", 1, "json", '{"name": "gpu", "instanceTypes": []}', None
    )
    with pytest.raises(ValueError, match="instanceTypes"):
        docblocks.check_json(bad)


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in BLOCKS if b.lang == "python"])
def test_python_block_compiles(block):
    compile(block.text, block.id, "exec")


@pytest.mark.parametrize("block", _params("unit", "python", "sh"))
def test_block_runs(block, tmp_path: Path):
    cwd = docblocks.workspace(tmp_path / "work")
    env = docblocks.environment(tmp_path / "home")  # no stack here: a block needing one fails
    docblocks.run(block, cwd, env, timeout=120)


def test_workspace_keeps_the_tree_clean(tmp_path: Path):
    cwd = docblocks.workspace(tmp_path / "work")
    assert (cwd / "examples" / "helloworld.py").exists()
    assert (cwd / "docs").is_dir() and not (cwd / "docs").is_symlink()
    assert not list((cwd / "docs").iterdir())


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=str(p.relative_to(docblocks.ROOT))) for p in docblocks.markdown_files()],
)
def test_relative_links_resolve(path):
    assert not docblocks.broken_links(path)


def test_broken_links_are_found(tmp_path: Path):
    assert docblocks.slug(" `impetus local up`") == "impetus-local-up"
    assert docblocks.slug("Network: public subnets, no NAT") == "network-public-subnets-no-nat"
    (tmp_path / "other.md").write_text("# Other\n\n## A `part`: one\n\n## A `part`: one\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md) [ok](other.md#a-part-one-1) [ok](#page) [web](https://x.org)\n"
        "[gone](missing.md) [bad anchor](other.md#nothing) `[code](missing.md)`\n\n"
        "```text\n[in a block](missing.md)\n```\n"
    )
    broken = docblocks.broken_links(page)
    assert [b.split(": ", 1)[1] for b in broken] == [
        "missing.md (no such file)",
        "other.md#nothing (no such heading)",
    ]


def test_every_file_the_architecture_names_exists():
    """The data path is a list of files: each one named must be there (moves break this)."""
    text = (docblocks.DOCS / "architecture.md").read_text()
    roots = ("impetus/", "node_agent/", "lambdas/", "infra/", "bench/", "docs/")
    named = {p for p in re.findall(r"`([\w/.-]+)`", text) if p.startswith(roots)}
    assert len(named) > 20
    repo = docblocks.DOCS.parent
    assert sorted(p for p in named if not (repo / p).exists()) == []
