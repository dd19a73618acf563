"""The examples, run as a user runs them, on the local stack."""

from __future__ import annotations

import collections
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _example(name: str):
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", ROOT / "examples" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(local_stack, tmp_path, *argv: str) -> str:
    run = subprocess.run(
        [sys.executable, *argv],
        cwd=tmp_path,
        env=local_stack["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr + run.stdout
    return run.stdout


def test_crawler_fetches_every_page_once(local_stack, tmp_path):
    out = _run(local_stack, tmp_path, str(ROOT / "examples" / "crawler.py"), "--pages", "20")
    assert "pages: 20\n" in out
    assert re.search(r"^broken: 1 http://127\.0\.0\.1:\d+/missing\.html \(404\)$", out, re.M)
    # 20 pages and the missing one, each requested exactly once: the store deduplicated
    assert "urls in the store: 21\n" in out
    assert "requests served: 21 for 21 paths (at most 1 per path)" in out
    skipped = int(re.search(r"duplicate links skipped by the store: (\d+)", out).group(1))
    assert skipped > 0  # pages link to each other: many fetch jobs found the url taken

    crawler = _example("crawler")
    expected = collections.Counter()
    for html in crawler.make_site(20).values():
        expected.update(crawler.words({"html": html}))
    top = re.search(r"^top words: (.*)$", out, re.M).group(1)
    for item in top.split(", "):
        word, n = item.rsplit(" ", 1)
        assert expected[word] == int(n), word
    assert int(top.split(", ")[0].rsplit(" ", 1)[1]) == expected.most_common(1)[0][1]


def _printed_counts(out: str) -> dict[str, int]:
    return {m.group(2): int(m.group(1)) for m in re.finditer(r"^\s+(\d+) (\S+)$", out, re.M)}


def test_wordfreq_on_the_builtin_documents(local_stack, tmp_path):
    out = _run(local_stack, tmp_path, str(ROOT / "examples" / "wordfreq.py"), "--top", "5")
    wordfreq = _example("wordfreq")
    expected = collections.Counter()
    for text in wordfreq.DOCUMENTS.values():
        expected.update(wordfreq.count(text))
    assert f"documents: {len(wordfreq.DOCUMENTS)}\n" in out
    assert f"words: {sum(expected.values())} ({len(expected)} distinct)\n" in out
    printed = _printed_counts(out)
    assert len(printed) == 5
    assert all(expected[w] == n for w, n in printed.items())
    assert sorted(printed.values(), reverse=True) == [n for _, n in expected.most_common(5)]


def test_wordfreq_on_files(local_stack, tmp_path):
    (tmp_path / "a.txt").write_text("Apple banana apple\n")
    (tmp_path / "b.txt").write_text("banana APPLE cherry")
    out = _run(local_stack, tmp_path, str(ROOT / "examples" / "wordfreq.py"), "a.txt", "b.txt")
    assert "documents: 2\n" in out and "words: 6 (3 distinct)\n" in out
    assert _printed_counts(out) == {"apple": 3, "banana": 2, "cherry": 1}
