"""Helpers for the web tests: read a page's HTML with the standard library's parser."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser


@dataclass
class Element:
    """One start tag: its name, its attributes and the text directly inside it."""

    tag: str
    attrs: dict[str, str | None]
    text: str = ""


class Page(HTMLParser):
    """A parsed page: every element in document order, and the title's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Keep the element, and collect its text until it ends (unless it is void)."""
        element = Element(tag, dict(attrs))
        self.elements.append(element)
        if tag not in {"meta", "link", "input", "br", "img", "path"}:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        """Stop collecting text for the element that ends, and any left open inside it."""
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        """Add text to every element it is inside."""
        for element in self._open:
            element.text += data

    def all(self, tag: str) -> list[Element]:
        """Return every element with this tag."""
        return [element for element in self.elements if element.tag == tag]

    @property
    def title(self) -> str:
        """The page's title, with its white space collapsed."""
        return " ".join(self.all("title")[0].text.split())


def parse(html: str) -> Page:
    """Return the parsed page."""
    page = Page()
    page.feed(html)
    page.close()
    return page
