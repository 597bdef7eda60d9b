"""The strategy library on Chroma: the only module that imports chromadb.

Each entry is one Chroma record: the id is the strategy id, the document is ``Strategy.embedding_text()``,
the vector comes from our offline embedder, and the metadata holds the whole ``Strategy`` as JSON
(``json``) plus flat copies for Chroma ``where`` filters: ``status``, ``kind``, ``tasks`` (``|a|b|``) and
one ``task:<name> = True`` flag per task.

Importing this module registers :class:`AgentKDEmbeddingFunction` with Chroma, so a process that has
imported ``agentkd.library`` can reopen a collection with plain ``client.get_collection(name)`` and query
it by text: Chroma rebuilds the function from the config it persisted with the collection.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.errors import NotFoundError
from chromadb.utils.embedding_functions import register_embedding_function

from agentkd.errors import LibraryError, LibraryFormatError
from agentkd.library.curation import Curation
from agentkd.library.embedder import Embedder, TextEmbedder, get_embedder
from agentkd.library.fileio import ID_RULE, SAFE_ID
from agentkd.library.filters import Filter, metadata
from agentkd.library.history import History
from agentkd.library.merge import merge
from agentkd.library.store_client import HTTP_TIMEOUT, client_for, collection_names, failure, guarded
from agentkd.schema import Strategy, now

EF_NAME = "agentkd"
META_EMBEDDER = "agentkd:embedder"
META_DIM = "agentkd:dim"
RESTORE_BATCH = 1000  # records per Chroma call by ids (Chroma and SQLite cap a batch at a few thousand)
OVERFETCH = 4  # unfiltered results fetched per wanted hit before falling back to a `where` query
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9._-]{3,512}")

_Rows = list[tuple[str, Any, float, Any]]  # id, metadata, cosine distance, embedding (or None)
WriteAction = Literal["added", "merged", "updated"]


def _check_ids(strategies: Iterable[Strategy]) -> None:
    """The id rule of strategy files, at every door: an id that cannot be a file name would later make
    every export refuse the whole library."""
    bad = [s.id for s in strategies if not SAFE_ID.fullmatch(s.id)]
    if bad:
        raise LibraryError(f"entries {bad[:5]} have ids that cannot be file names.", hint=f"{ID_RULE}.")


@register_embedding_function
class AgentKDEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma's view of the agentkd embedder; persisted as ``{"name": "agentkd", "config": {"model": ...}}``."""

    def __init__(self, model: str | None = None, embedder: TextEmbedder | None = None) -> None:
        self._embedder = embedder
        self.model = model or (embedder.name if embedder else Embedder.name)

    def _get(self) -> TextEmbedder:
        if self._embedder is None:
            embedder = get_embedder()
            if embedder.name != self.model:
                raise LibraryError(
                    f"this collection was embedded with {self.model!r}, but agentkd now embeds with {embedder.name!r}.",
                    hint="install the agentkd version that created it, or re-add its strategies to a new collection.",
                )
            self._embedder = embedder
        return self._embedder

    def __call__(self, input: Documents) -> Embeddings:
        return list(self._get().embed(list(input)))

    @staticmethod
    def name() -> str:
        return EF_NAME

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine"]

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> AgentKDEmbeddingFunction:
        return AgentKDEmbeddingFunction(model=str(config.get("model") or Embedder.name))


@dataclass(frozen=True)
class Hit:
    """A search result: ``score`` is the cosine similarity in [-1, 1], higher is closer.

    ``vector`` (the entry's unit embedding) is filled only by ``neighbours(..., vectors=True)``.
    """

    strategy: Strategy
    score: float
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)


class Library(Curation):
    """A collection of strategies in Chroma with near-duplicate merging and a change history.

    ``search`` queries Chroma *without* a ``where`` filter for ``k * OVERFETCH`` neighbours and filters
    them in Python on their flat metadata (no JSON parsed for the ones dropped), because a ``where``
    filter made queries ~100x slower at 100k entries (1.7 ms against 180 ms). Only when too few of those
    neighbours pass does it repeat the query with ``where``. Curation (trials, auto-retirement, review)
    lives in ``curation.Curation``. Writes are read-modify-write: use one writer per collection at a time.
    """

    def __init__(self, collection: Any, history: History, embedder: TextEmbedder, *, read_only: bool = False) -> None:
        self._collection = collection
        self._history = history
        self.embedder = embedder
        self.read_only = read_only

    @classmethod
    def open(
        cls,
        location: str,
        collection: str = "default",
        *,
        embedder: TextEmbedder | None = None,
        create: bool = True,
        timeout: float = HTTP_TIMEOUT,
    ) -> Library:
        """Open ``collection`` in a directory or at ``http://host:port``.

        ``create``: make the library and collection when they do not exist (else that is a ``LibraryError``:
        commands that only read pass False, so a mistyped path is an error, not a new empty library).
        ``timeout``: seconds a Chroma server may take to answer one request. A directory we may not write
        opens read-only (from a private copy): it can be read and searched, and writes raise.
        """
        if not _COLLECTION_NAME.fullmatch(collection):
            raise LibraryError(
                f"invalid collection name {collection!r}.",
                hint="use 3 to 512 characters from letters, digits, '.', '_' and '-', e.g. 'gsm-symbolic'.",
            )
        embedder = embedder or get_embedder()
        client, history_path, read_only = client_for(location, create=create, timeout=timeout)
        ef = AgentKDEmbeddingFunction(embedder=embedder)
        try:
            try:
                col = client.get_collection(collection, embedding_function=ef)
            except NotFoundError:
                if not create or read_only:
                    raise LibraryError(
                        f"there is no collection {collection!r} in the library at {location}.",
                        hint=f"its collections: {collection_names(client)}; choose one with --collection.",
                    ) from None
                col = client.get_or_create_collection(
                    collection,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={META_EMBEDDER: embedder.name, META_DIM: embedder.dim},
                    embedding_function=ef,
                )
        except ValueError as e:  # Chroma's way of saying the persisted embedding function differs
            raise LibraryError(
                f"collection {collection!r} at {location} was not created by agentkd ({e}).",
                hint="open another collection name; agentkd stores its strategies in collections it creates.",
            ) from e
        except LibraryError:
            raise
        except Exception as e:
            raise failure(location, e) from e
        cls._check_embedder(col, location, embedder)
        return cls(guarded(col, location, read_only), History(history_path, collection), embedder, read_only=read_only)

    @staticmethod
    def _check_embedder(col: Any, location: str, embedder: TextEmbedder) -> None:
        stored = (col.metadata or {}).get(META_EMBEDDER)
        if stored is None:
            raise LibraryError(
                f"collection {col.name!r} at {location} was not created by agentkd.",
                hint="open another collection name; agentkd keeps strategies in collections it creates.",
            )
        if stored != embedder.name:
            raise LibraryError(
                f"collection {col.name!r} at {location} holds vectors from embedder {stored!r}, but this "
                f"library embeds with {embedder.name!r}; vectors from different models cannot be compared.",
                hint=f"open it with the embedder {stored!r}, use a new collection name, or rebuild: list() "
                "the strategies with the old embedder and add() them to a new collection.",
            )
        space = (col.configuration_json.get("hnsw") or {}).get("space")
        if space not in (None, "cosine"):
            raise LibraryError(
                f"collection {col.name!r} uses the {space!r} distance, not cosine.",
                hint="use a new collection name; agentkd scores by cosine similarity.",
            )

    # -- reading -------------------------------------------------------------------------------------

    @property
    def collection_name(self) -> str:
        return str(self._collection.name)

    def count(self) -> int:
        return int(self._collection.count())

    def get(self, id: str) -> Strategy | None:
        got = self._collection.get(ids=[id], include=["metadatas"])
        return self._parse(got["ids"][0], got["metadatas"][0]) if got["ids"] else None

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        kind: str | None = None,
        task: str | None = None,
        domain: str | None = None,
    ) -> list[Strategy]:
        """Every entry that passes the filters, oldest first."""
        got = self._collection.get(include=["metadatas"])
        keep = Filter.of(status, kind, task, domain).match
        entries = [s for s in (self._parse(i, m) for i, m in zip(got["ids"], got["metadatas"], strict=True)) if keep(s)]
        return sorted(entries, key=lambda s: (s.provenance.created, s.id))

    def vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored embeddings of these entries (missing ids are left out)."""
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(ids), RESTORE_BATCH):
            got = self._collection.get(ids=list(ids[start : start + RESTORE_BATCH]), include=["embeddings"])
            out.update((i, np.asarray(v, dtype=np.float32)) for i, v in zip(got["ids"], got["embeddings"], strict=True))
        return out

    def search(
        self,
        query: str,
        *,
        k: int = 3,
        min_score: float = 0.0,
        status: str | Sequence[str] | None = ("admitted",),
        task: str | None = None,
        kind: str | None = None,
        domain: str | None = None,
    ) -> builtins.list[Hit]:
        """The ``k`` entries closest to ``query`` that pass the filters and score at least ``min_score``."""
        vector = self.embedder.embed([query])[0]
        return self._nearest(vector, k, min_score, Filter.of(status, kind, task, domain))

    def neighbours(
        self, vector: np.ndarray, n: int, *, min_score: float = -1.0, where: Filter | None = None, vectors: bool = False
    ) -> builtins.list[Hit]:
        """The ``n`` entries closest to a unit ``vector`` that pass ``where``; with ``vectors``, their embeddings."""
        return self._nearest(vector, n, min_score, where or Filter(), vectors=vectors)

    def history(self, id: str | None = None) -> builtins.list[dict[str, Any]]:
        """The change log of this collection (or of one entry), oldest first."""
        return self._history.read(id)

    # -- writing -------------------------------------------------------------------------------------

    def add(self, strategy: Strategy, *, dedupe_threshold: float = 0.92) -> tuple[str, WriteAction]:
        """Store ``strategy``; returns the id that holds it now and what happened.

        "updated": an entry with the same id existed and was replaced. "merged": an entry of the same
        kind scored at least ``dedupe_threshold`` against it; the two became one (see ``merge.merge``)
        and the returned id is the one kept. "added": a new entry.
        """
        _check_ids([strategy])
        old = self.get(strategy.id)
        if old is not None:
            self._put(strategy, old, reason="added again with the same id")
            return strategy.id, "updated"
        vector = self.embedder.embed([strategy.embedding_text()])[0]
        near = self._nearest(vector, 1, dedupe_threshold, Filter(kind=strategy.kind))
        if not near:
            self._write(strategy, vector, None)
            self._history.append("added", strategy.id, reason="new entry", after=strategy.status)
            return strategy.id, "added"
        existing, score = near[0].strategy, near[0].score
        kept, dropped = merge(existing, strategy)
        if kept.id != existing.id:
            self._collection.delete(ids=[existing.id])
            self._write(kept, vector, None)
        else:
            self._write(kept, None, existing)
        self._history.append(
            "merged",
            kept.id,
            other=dropped.id,
            score=round(score, 4),
            before=existing.status,
            after=kept.status,
            reason=f"{strategy.id} is a near-duplicate of {existing.id} (cosine {score:.3f}); kept {kept.id}, "
            "(more evidence wins; on a tie the existing entry stays)",
        )
        return kept.id, "merged"

    def update(self, strategy: Strategy, *, reason: str = "") -> None:
        """Replace an existing entry (re-embedding it if its trigger or title changed)."""
        old = self.get(strategy.id)
        if old is None:
            raise LibraryError(
                f"no entry {strategy.id!r} to update in collection {self._collection.name!r}.",
                hint="use add() for new entries.",
            )
        self._put(strategy, old, reason=reason or strategy.status_reason)

    def restore(
        self, strategies: Sequence[Strategy], *, reason: str, vectors: Sequence[np.ndarray] | None = None
    ) -> None:
        """Write entries exactly as given (ids, timestamps, versions kept; no merging), e.g. from reviewed files.

        New entries and entries whose embedded text changed are embedded in one batch (or take the given
        ``vectors``, one per strategy); each write is logged.
        """
        _check_ids(strategies)
        old = {s.id: s for s in self._get_many([s.id for s in strategies])}
        given = dict(zip([s.id for s in strategies], vectors, strict=True)) if vectors is not None else {}
        fresh = [s for s in strategies if s.id not in old or old[s.id].embedding_text() != s.embedding_text()]
        todo = [s for s in fresh if s.id not in given]
        given.update(zip([s.id for s in todo], self.embedder.embed([s.embedding_text() for s in todo]), strict=True))
        for start in range(0, len(fresh), RESTORE_BATCH):
            batch = fresh[start : start + RESTORE_BATCH]
            self._collection.upsert(
                ids=[s.id for s in batch],
                embeddings=np.stack([given[s.id] for s in batch]),
                metadatas=[metadata(s, old.get(s.id)) for s in batch],
                documents=[s.embedding_text() for s in batch],
            )
        changed = {s.id for s in fresh}
        for s in strategies:
            if s.id not in changed:
                self._write(s, None, old[s.id])
            before = old[s.id].status if s.id in old else None
            self._history.append("imported", s.id, reason=reason, before=before, after=s.status)

    def delete(self, id: str, *, reason: str = "") -> bool:
        """Remove an entry; False when there was none."""
        old = self.get(id)
        if old is None:
            return False
        self._collection.delete(ids=[id])
        self._history.append("deleted", id, reason=reason, before=old.status)
        return True

    def record_use(self, ids: Iterable[str], success: bool) -> None:
        """Count one use (and a success if ``success``) for each entry the student was given."""
        updated = [
            s.model_copy(update={"uses": s.uses + 1, "successes": s.successes + int(success)})
            for s in self._get_many(list(dict.fromkeys(ids)))
        ]
        if updated:
            self._collection.update(ids=[s.id for s in updated], metadatas=[metadata(s) for s in updated])

    # -- internals -----------------------------------------------------------------------------------

    def _put(self, new: Strategy, old: Strategy, *, reason: str, action: str = "updated", **extra: Any) -> Strategy:
        if (new.title, new.trigger, new.body, new.tool_hints) != (old.title, old.trigger, old.body, old.tool_hints):
            version = max(new.provenance.version, old.provenance.version + 1)
            new = new.model_copy(update={"provenance": new.provenance.model_copy(update={"version": version})})
        new = new.model_copy(update={"provenance": new.provenance.model_copy(update={"updated": now()})})
        changed_text = new.embedding_text() != old.embedding_text()
        self._write(new, self.embedder.embed([new.embedding_text()])[0] if changed_text else None, old)
        self._history.append(action, new.id, reason=reason, before=old.status, after=new.status, **extra)
        return new

    def _write(self, s: Strategy, vector: np.ndarray | None, old: Strategy | None) -> None:
        meta = metadata(s, old)
        if vector is None:
            self._collection.update(ids=[s.id], metadatas=[meta], documents=[s.embedding_text()])
        else:
            self._collection.upsert(
                ids=[s.id], embeddings=vector[None, :], metadatas=[meta], documents=[s.embedding_text()]
            )

    def _get_many(self, ids: builtins.list[str]) -> builtins.list[Strategy]:
        out = []
        for start in range(0, len(ids), RESTORE_BATCH):  # SQLite caps the variables of one statement
            got = self._collection.get(ids=ids[start : start + RESTORE_BATCH], include=["metadatas"])
            out += [self._parse(i, m) for i, m in zip(got["ids"], got["metadatas"], strict=True)]
        return out

    def _parse(self, id: str, metadata: dict[str, Any] | None) -> Strategy:
        try:
            return Strategy.model_validate_json((metadata or {})["json"])
        except (KeyError, ValueError) as e:
            raise LibraryFormatError(
                f"entry {id!r} in collection {self._collection.name!r} has no valid strategy JSON: {e}",
                hint=f"delete it with Library.delete({id!r}) and add the strategy again.",
            ) from e

    def _query(self, vector: np.ndarray, n: int, where: dict[str, Any] | None, vectors: bool = False) -> _Rows:
        include = ["metadatas", "distances", *(["embeddings"] if vectors else [])]
        got = self._collection.query(query_embeddings=vector[None, :], n_results=n, where=where, include=include)
        embeddings = got["embeddings"][0] if vectors else [None] * len(got["ids"][0])
        return list(zip(got["ids"][0], got["metadatas"][0], got["distances"][0], embeddings, strict=True))

    def _hits(self, rows: _Rows) -> builtins.list[Hit]:
        return [
            Hit(self._parse(i, m), 1.0 - float(d), None if v is None else np.asarray(v, dtype=np.float32))
            for i, m, d, v in rows
        ]

    def _nearest(
        self, vector: np.ndarray, k: int, min_score: float, flt: Filter, *, vectors: bool = False
    ) -> builtins.list[Hit]:
        if k <= 0 or flt.empty:
            return []
        where = flt.where()
        n = k * OVERFETCH if where else k
        # Chroma returns fewer than n when the collection is smaller
        raw = self._query(vector, n, None, *([True] if vectors else []))
        rows = [r for r in raw if 1.0 - r[2] >= min_score and flt.match_metadata(r[1] or {})]
        # Enough hits, or nothing more to find: everything was fetched, or the rest scores below min_score.
        if len(rows) >= k or len(raw) < n or 1.0 - raw[-1][2] < min_score:
            return self._hits(rows[:k])
        again = self._query(vector, k, where, *([True] if vectors else []))
        return self._hits([r for r in again if 1.0 - r[2] >= min_score])
