#!/usr/bin/env python3
"""Checks the rendered rustdoc of watchpost: every relative link resolves.

Walks target/doc/watchpost/**/*.html (or the directory given) and checks that
each relative href into it names an existing file and, with a #fragment, an
element with that id in it (the guides' links between each other and to
their sections included). Links to other crates' pages, rendered sources and
absolute URLs are not checked. Exits 1 listing every broken link.
"""
import html.parser
import os
import sys
from urllib.parse import unquote, urlsplit


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)
            if tag == "a" and name == "href" and value:
                self.hrefs.append(value)


def parse(path, cache):
    if path not in cache:
        page = Page()
        with open(path, encoding="utf-8") as f:
            page.feed(f.read())
        cache[path] = page
    return cache[path]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "target/doc/watchpost"
    if not os.path.isdir(root):
        sys.exit(f"no rendered docs at {root}: run cargo doc first")
    cache, broken, checked = {}, [], 0
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".html"):
                continue
            page_path = os.path.join(folder, name)
            for href in parse(page_path, cache).hrefs:
                url = urlsplit(href)
                if url.scheme or url.netloc or href.startswith("javascript:"):
                    continue
                # a Rust path left as an href: rustdoc copies the docs of another
                # crate's trait methods (tracing's Layer) with their intra-doc
                # links unresolved; our own broken links fail `cargo doc` itself
                if "::" in url.path:
                    continue
                target = page_path if not url.path else os.path.normpath(
                    os.path.join(folder, unquote(url.path)))
                # other crates' pages and rendered sources are not ours to check
                if not target.startswith(os.path.normpath(root) + os.sep) or (
                        os.sep + "src" + os.sep) in target:
                    continue
                checked += 1
                if not os.path.isfile(target):
                    broken.append(f"{page_path}: {href} (no file {target})")
                elif url.fragment and target.endswith(".html"):
                    fragment = url.fragment
                    ids = parse(target, cache).ids
                    if fragment not in ids and unquote(fragment) not in ids:
                        broken.append(f"{page_path}: {href} (no id {fragment!r} in {target})")
    for line in broken:
        print(line)
    print(f"{checked} links checked, {len(broken)} broken")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
