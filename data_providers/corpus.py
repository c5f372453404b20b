"""Text corpora that ship with Python itself, so a dataset can be prepared with no download at all."""
from __future__ import annotations

from collections.abc import Iterator


def pydoc_documents() -> Iterator[tuple[str, str]]:
    """The stdlib's `pydoc_data.topics` help texts (~80 documents, ~460 kB), in sorted key order."""
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield f"pydoc:{key}", topics[key]


CORPORA = {"pydoc": pydoc_documents}


def corpus_documents(name: str) -> Iterator[tuple[str, str]]:
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; available: {', '.join(sorted(CORPORA))}")
    return CORPORA[name]()
