"""Reading components' state back: a projection's value, documents as a read-only mapping."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from ._codec import Codec
from ._errors import ProjectionError, explain
from ._html import documents_html
from .storage import Storage

D = TypeVar("D")


class Documents(Mapping[str, D], Generic[D]):
    """A projection's documents at one moment: read-only, in key order."""

    def __init__(self, name: str, docs: dict[str, D]) -> None:
        self._name = name
        self._docs = docs

    def __getitem__(self, key: str) -> D:
        return self._docs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._docs)

    def __len__(self) -> int:
        return len(self._docs)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k!r}: {v!r}" for k, v in list(self._docs.items())[:5])
        more = f", ... ({len(self._docs)} in all)" if len(self._docs) > 5 else ""
        return f"Documents({self._name!r}, {{{shown}{more}}})"

    def _repr_html_(self) -> str:
        return documents_html(self._name, self._docs)

    def all(self) -> dict[str, D]:
        """The documents as a plain dict (a copy), in key order."""
        return dict(self._docs)


def read_value(storage: Storage, codec: Codec, name: str, initial: Any, cls: Any) -> Any:
    """A component's value as its checkpoint holds it, or `initial` before any event."""
    checkpoint = storage.read_checkpoint(name)
    if checkpoint is None or checkpoint.state is None:
        return initial
    return _decode(codec, name, checkpoint.state, cls)


def read_documents(storage: Storage, codec: Codec, name: str, cls: Any) -> Documents[Any]:
    """Every document of a component, decoded, in key order."""
    rows = storage.all_documents(name)
    return Documents(name, {key: _decode(codec, name, text, cls, key) for key, text in rows})


def _decode(codec: Codec, name: str, text: str, cls: Any, key: str | None = None) -> Any:
    try:
        return codec.decode_state(text, cls)
    except Exception as exc:  # stored state that no longer reads as its type: named
        where = f" document {key!r}" if key is not None else ""
        raise ProjectionError(
            f"component {name!r}{where}: cannot read its stored state as"
            f" {getattr(cls, '__qualname__', cls)}: {explain(exc)}"
        ) from exc
