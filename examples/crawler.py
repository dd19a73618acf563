"""A multi-stage crawler of a small site that this example serves itself on 127.0.0.1.

    python examples/crawler.py [--pages N]

Pipeline (node jobs in CAPS, stages of the client in lower case):

    startup: FETCH(home)
    crawl:   a FETCH result -> PARSE it; a PARSE result -> FETCH every link it found,
             and WORDS for the page; repeats until the frontier is empty
    index:   WORDS results -> site-wide word counts (the reduce)

Deduplication is the store's job: every FETCH first does
``impetus.context.store.add("seen:<url>")``, a conditional write that exactly one job
per URL wins, so however many pages link to a URL, it is downloaded once. Politeness is
the stream's ``frequency`` property: each worker pauses that long between jobs, and
``mpps`` bounds the workers per node. The site counts the requests it serves, so the
report can show that every page was fetched exactly once.
"""

from __future__ import annotations

import argparse
import collections
import html.parser
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from impetus import Impetus, context

POLITE_FREQUENCY = 0.05  # seconds each worker waits between two jobs
WORKERS_PER_NODE = 2
WORDS = [
    "river", "stone", "lantern", "orchard", "meadow", "harbor", "quill", "ember", "thistle",
    "cobalt", "willow", "granite", "saffron", "beacon", "juniper", "falcon", "cedar",
]  # fmt: skip


# --- the site --------------------------------------------------------------------------
def make_site(pages: int, seed: int = 7) -> dict[str, str]:
    """path -> HTML: page i links to a few others (many duplicates, some cycles), one
    broken link, one link off the site, one mailto."""
    rng = random.Random(seed)
    site = {}
    for i in range(pages):
        targets = {(i + 1) % pages, (i * 7 + 3) % pages, rng.randrange(pages), 0}
        links = [f'<a href="/page{t}.html">page {t}</a>' for t in sorted(targets)]
        if i == 3:
            links.append('<a href="/missing.html">a page that is gone</a>')
        if i == 5:
            links += [
                '<a href="https://example.com/">elsewhere</a>',
                '<a href="mailto:x@y">mail</a>',
            ]
        text = " ".join(rng.choice(WORDS) for _ in range(40))
        site[f"/page{i}.html"] = (
            f"<html><head><title>Page {i}</title></head><body><p>{text}</p>"
            f"{' '.join(links)}</body></html>"
        )
    return site


class Site:
    """The site on 127.0.0.1 (a free port), counting requests per path."""

    def __init__(self, pages: int) -> None:
        self.pages = make_site(pages)
        self.hits: collections.Counter[str] = collections.Counter()
        self.times: list[float] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits[self.path] += 1
                site.times.append(time.monotonic())
                body = site.pages.get(self.path)
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write((body or "<h1>not found</h1>").encode())

            def log_message(self, *args: object) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- node jobs (they run on nodes; they travel by value) -------------------------------
class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links += [v for k, v in attrs if k == "href" and v]
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def fetch(url):
    """Download a page once per stream: the store decides who fetches it."""
    if not context.store.add(f"seen:{url}", context.job_id):
        return {"url": url, "duplicate": True}
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status, body = response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status, body = exc.code, ""
    context.store.put(f"status:{url}", status)
    return {"url": url, "status": status, "html": body if status == 200 else ""}


def parse(page):
    """Links of a page on the same site (absolute, without fragments), and its title."""
    parser = _Links()
    parser.feed(page["html"])
    base = urllib.parse.urlsplit(page["url"])
    links = set()
    for href in parser.links:
        absolute = urllib.parse.urldefrag(urllib.parse.urljoin(page["url"], href))[0]
        parts = urllib.parse.urlsplit(absolute)
        if parts.scheme in ("http", "https") and parts.netloc == base.netloc:
            links.add(absolute)
    return {"url": page["url"], "title": parser.title.strip(), "links": sorted(links)}


def words(page):
    text = re.sub(r"<[^>]+>", " ", page["html"])
    return dict(collections.Counter(w.lower() for w in re.findall(r"[A-Za-z]{3,}", text)))


# --- the client --------------------------------------------------------------------------
class Crawler(Impetus):
    def __init__(self, start_url: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.start_url = start_url
        self.titles: dict[str, str] = {}
        self.broken: list[str] = []
        self.duplicates = 0
        self.word_counts: collections.Counter[str] = collections.Counter()

    @Impetus.startup
    def start(self):
        self.fork(fetch, args=self.start_url)

    @Impetus.process
    def crawl(self, ready, errors):
        for job in ready:
            result = job["result"]
            if job["name"] == "fetch":
                if result.get("duplicate"):
                    self.duplicates += 1
                elif result["status"] == 200:
                    self.fork(parse, args=result, callback=self.crawl)
                    self.fork(words, args=result, callback=self.index)
                else:
                    self.broken.append(f"{result['url']} ({result['status']})")
            else:  # parse: fetch more (duplicates are fine: the store skips them)
                self.titles[result["url"]] = result["title"]
                for link in result["links"]:
                    self.fork(fetch, args=link, callback=self.crawl)
        for job in errors:
            print("failed:", job["name"], job["args"], job["result"]["error"])

    @Impetus.process
    def index(self, ready, errors):
        for job in ready:
            self.word_counts.update(job["result"])

    @Impetus.shutdown
    def stop(self, ready, errors, progress):
        print(f"pages: {len(self.titles)}")
        print(f"broken: {len(self.broken)} {' '.join(sorted(self.broken))}")
        print(f"duplicate links skipped by the store: {self.duplicates}")
        fetched = [k for k in self.store if k.startswith("status:")]
        print(f"urls in the store: {len(fetched)}")
        top = ", ".join(f"{w} {n}" for w, n in self.word_counts.most_common(5))
        print(f"top words: {top}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=25, help="pages of the generated site")
    args = parser.parse_args()
    site = Site(args.pages)
    try:
        home = site.url + "page0.html"
        app = Crawler(home, frequency=POLITE_FREQUENCY, mpps=WORKERS_PER_NODE)
        print("My Id:", app.id)
        print("crawling", home)
        app.run()
    finally:
        site.close()
    served = sum(site.hits.values())
    most = max(site.hits.values(), default=0)
    print(f"requests served: {served} for {len(site.hits)} paths (at most {most} per path)")


if __name__ == "__main__":
    main()
