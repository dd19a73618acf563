"""Word frequencies of a set of documents: map on the nodes, reduce in a stage.

    python examples/wordfreq.py [FILE ...] [--top N]

Without files it counts the built-in documents below. Each document is one job
(``count``: the document's words, lower-cased, with their counts); the ``reduce``
stage adds each batch of counts into the running total as results arrive, so the client
never holds more than one batch of per-document counts. The shutdown prints the most
frequent words and how many documents and words were counted.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

from impetus import Impetus

WORD = re.compile(r"[a-z']+")

DOCUMENTS = {
    "genesis": "The original Impetus forked jobs into a stream and collected them in stages. "
    "Nodes ran the jobs; the stream kept the jobs, the results and a store.",
    "nodes": "A node claims jobs for its workers, runs them, and reports the results. "
    "Nodes grow and shrink with the work waiting in the streams.",
    "dfs": "The DFS decides how many nodes run: fast out when jobs wait, slow in when "
    "nodes are idle, never stopping a node that runs a job.",
    "store": "A stream has a store of keys and values. Jobs read and write the store, "
    "for example to skip the pages a crawler has already seen.",
    "stages": "Stages run in order. A stage receives the results of its jobs in batches "
    "and may fork more jobs into the stages after it.",
    "tasks": "Every collected job is written to a task file, one line per job, so the "
    "results of a stream survive the client that forked the jobs.",
}


def count(text):
    """The map: one document's word counts (runs on a node)."""
    return dict(collections.Counter(WORD.findall(text.lower())))


class WordFreq(Impetus):
    def __init__(self, documents: dict[str, str], top: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        self.documents = documents
        self.top = top
        self.totals: collections.Counter[str] = collections.Counter()
        self.counted = 0

    @Impetus.startup
    def start(self):
        for i, (name, text) in enumerate(self.documents.items()):
            self.fork(count, args=text, job_id=f"doc-{i}-{_slug(name)}")

    @Impetus.process
    def reduce(self, ready, errors):
        for job in ready:
            self.totals.update(job["result"])
            self.counted += 1
        for job in errors:
            print("failed:", job["id"], job["result"]["error"])

    @Impetus.shutdown
    def stop(self, ready, errors, progress):
        print(f"documents: {self.counted}")
        print(f"words: {sum(self.totals.values())} ({len(self.totals)} distinct)")
        for word, n in self.totals.most_common(self.top):
            print(f"{n:6d} {word}")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:150]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="text files (default: built-in)")
    parser.add_argument("--top", type=int, default=10, help="how many words to print")
    args = parser.parse_args()
    documents = {str(p): p.read_text(errors="replace") for p in args.files} or DOCUMENTS
    app = WordFreq(documents, top=args.top)
    print("My Id:", app.id)
    app.run()


if __name__ == "__main__":
    main()
