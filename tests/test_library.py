"""The strategy library on a real on-disk Chroma store."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from agentkd.errors import LibraryError, LibraryFormatError
from agentkd.library import Library
from agentkd.library.embedder import get_embedder
from agentkd.schema import Effect, Provenance, Strategy

ROOT = Path(__file__).resolve().parents[1]


def entry(id: str, trigger: str, title: str, **fields: object) -> Strategy:
    return Strategy(id=id, trigger=trigger, title=title, body="Write each step down, then check the result.", **fields)  # type: ignore[arg-type]


PERCENT = entry(
    "s-percent",
    "When a word problem asks for a percentage of a total amount",
    "Convert percents to fractions first",
    tasks=["gsm"],
    status="admitted",
)
PERCENT_AGAIN = entry(
    "s-percent2",
    "When a word problem asks for a percentage of the total amount",
    "Convert percents to fractions first",
    tasks=["math"],
    provenance=Provenance(source_scenarios=["q7"]),
)
JSON_TOOL = entry(
    "s-json",
    "When calling a tool whose arguments are JSON objects",
    "Validate the JSON before the call",
    tasks=["tools"],
    status="admitted",
)
DATES = entry(
    "g-dates",
    "When a question counts days across several months",
    "Count the days month by month",
    tasks=["gsm"],
    kind="guidance",
)


@pytest.fixture
def lib(tmp_path: Path) -> Library:
    library = Library.open(str(tmp_path / "lib"), "test-lib")
    for s in (PERCENT, JSON_TOOL, DATES):
        assert library.add(s) == (s.id, "added")
    return library


def ids(hits: list) -> list[str]:
    return [h.strategy.id for h in hits]


def test_search_ranks_by_meaning_and_returns_whole_strategies(lib: Library) -> None:
    hits = lib.search("what is 15 percent of the total price?", k=3, min_score=-1.0)
    assert ids(hits) == ["s-percent", "s-json"]  # default: admitted entries only
    assert hits[0].strategy == lib.get("s-percent")
    assert hits[0].strategy.body == PERCENT.body
    assert 0.3 < hits[0].score <= 1.0 and hits[0].score > hits[1].score
    assert ids(lib.search("what is 15 percent of the total price?", k=1)) == ["s-percent"]
    assert ids(lib.search("what is 15 percent of the total price?")) == ["s-percent"]  # s-json scores < 0
    assert lib.search("what is 15 percent of the total price?", min_score=0.99) == []


def test_search_filters_by_status_task_and_kind(lib: Library) -> None:
    query = "how many days from March 3 to May 9?"
    assert ids(lib.search(query, status=None, k=1)) == ["g-dates"]
    assert ids(lib.search(query, status="candidate")) == ["g-dates"]
    assert ids(lib.search(query, status=None, task="tools")) == ["s-json"]
    assert ids(lib.search(query, status=None, kind="guidance")) == ["g-dates"]
    assert lib.search(query, status=None, task="nothing-here") == []
    assert [s.id for s in lib.list(task="gsm")] == ["g-dates", "s-percent"]  # oldest first, then by id
    assert [s.id for s in lib.list(status="admitted", kind="strategy")] == ["s-json", "s-percent"]
    assert lib.count() == 3


def test_filtered_search_falls_back_to_a_where_query(lib: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    # 12 admitted near neighbours crowd out the one candidate from the unfiltered over-fetch.
    for i in range(12):
        lib.add(
            entry(
                f"s-p{i}",
                f"Percentage problem variant {i}: {['discount', 'tax', 'tip', 'interest'][i % 4]}",
                f"Percent rule {i}",
                status="admitted",
            ),
            dedupe_threshold=1.01,
        )
    lib.add(entry("s-far", "When a poem must rhyme", "Pick rhymes first", status="candidate"))
    wheres: list[object] = []
    query = lib._query

    def spy(vector: np.ndarray, n: int, where: dict | None, *more: bool) -> list:
        wheres.append(where)
        return query(vector, n, where, *more)

    monkeypatch.setattr(lib, "_query", spy)
    hits = lib.search("percent of the price", k=1, status="candidate", kind="strategy", min_score=-1.0)
    assert ids(hits) == ["s-far"]
    assert wheres == [None, {"$and": [{"status": {"$in": ["candidate"]}}, {"kind": "strategy"}]}]
    wheres.clear()
    assert len(lib.search("percent of the price", k=2)) == 2
    assert wheres == [None]  # enough admitted hits among the over-fetched: no `where` query


def test_near_duplicate_is_merged_into_the_better_evidenced_entry(lib: Library) -> None:
    assert lib.add(PERCENT_AGAIN) == ("s-percent", "merged")
    assert lib.count() == 3 and lib.get("s-percent2") is None
    kept = lib.get("s-percent")
    assert kept is not None
    assert kept.provenance.source_scenarios == ["q7"] and kept.tasks == ["gsm", "math"]
    assert kept.provenance.version == 2 and kept.status == "admitted"
    assert ids(lib.search("percent of a total", status=None, task="math")) == ["s-percent"]

    measured = PERCENT_AGAIN.model_copy(update={"id": "s-measured", "effect": Effect(trials=10, wins_with=8)})
    assert lib.add(measured) == ("s-measured", "merged")
    assert lib.get("s-percent") is None
    best = lib.get("s-measured")
    assert best is not None and best.provenance.version == 3 and set(best.tasks) == {"gsm", "math"}
    assert lib.count() == 3


def test_same_id_is_updated_and_stale_task_flags_are_dropped(lib: Library) -> None:
    moved = DATES.model_copy(update={"tasks": ["calendar"], "body": "List each month, then add the days."})
    assert lib.add(moved) == ("g-dates", "updated")
    got = lib.get("g-dates")
    assert got is not None and got.body == moved.body and got.provenance.version == 2
    assert "g-dates" not in ids(lib.search("days between two dates", status=None, task="gsm", min_score=-1.0))
    assert ids(lib.search("days between two dates", status=None, task="calendar")) == ["g-dates"]
    # The `where` fallback must not see the old task either.
    assert [s.id for s in lib.list(task="gsm")] == ["s-percent"]
    with pytest.raises(LibraryError, match="use add"):
        lib.update(entry("s-nope", "When nothing exists yet", "Nothing here"))


def test_record_use_counts_uses_and_successes(lib: Library) -> None:
    lib.record_use(["s-percent", "s-json", "s-percent", "s-gone"], success=True)
    lib.record_use(["s-percent"], success=False)
    percent, tool = lib.get("s-percent"), lib.get("s-json")
    assert percent is not None and (percent.uses, percent.successes) == (2, 1)
    assert tool is not None and (tool.uses, tool.successes) == (1, 1)
    assert ids(lib.search("percent of the total", k=1)) == ["s-percent"]  # vector untouched


def test_history_records_every_change(lib: Library, tmp_path: Path) -> None:
    lib.add(PERCENT_AGAIN)
    lib.set_status("g-dates", "admitted", "won 7 of 10 paired trials")
    assert lib.delete("s-json", reason="superseded") and not lib.delete("s-json")
    lines = [json.loads(line) for line in (tmp_path / "lib" / "history.jsonl").read_text().splitlines()]
    assert [r["action"] for r in lines] == ["added", "added", "added", "merged", "status", "deleted"]
    status = lines[4]
    assert (status["id"], status["before"], status["after"]) == ("g-dates", "candidate", "admitted")
    assert status["reason"] == "won 7 of 10 paired trials" and status["collection"] == "test-lib"
    assert {r["action"] for r in lib.history("s-percent2")} == {"merged"}
    assert [r["action"] for r in lib.history("s-json")] == ["added", "deleted"]
    assert Library.open(str(tmp_path / "lib"), "other-lib").history() == []


def test_a_new_process_reopens_and_searches_without_passing_the_function(lib: Library, tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import agentkd.library, chromadb
        from agentkd.library import Library
        path = {str(tmp_path / "lib")!r}
        print(Library.open(path, "test-lib").search("percent of the total", k=1)[0].strategy.id)
        col = chromadb.PersistentClient(path).get_collection("test-lib")  # no embedding_function
        print(col.query(query_texts=["percent of the total"], n_results=1)["ids"][0][0])
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["s-percent", "s-percent"]


class OtherEmbedder:
    name = "some-other-model"
    dim = 384

    def embed(self, texts: list[str]) -> np.ndarray:
        return get_embedder().embed(texts)


def test_a_collection_from_another_embedder_is_refused(tmp_path: Path) -> None:
    Library.open(str(tmp_path), "made-elsewhere", embedder=OtherEmbedder())
    with pytest.raises(LibraryError) as info:
        Library.open(str(tmp_path), "made-elsewhere")
    message = str(info.value)
    assert "some-other-model" in message and "agentkd-minilm-l6-int8" in message and "new collection" in message


@pytest.mark.parametrize("name", ["ab", "has space", "slash/name", "x" * 513])
def test_invalid_collection_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(LibraryError, match="3 to 512 characters"):
        Library.open(str(tmp_path), name)


def test_unreachable_server_says_how_to_start_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTKD_HOME", str(tmp_path))
    with pytest.raises(LibraryError, match="chroma run"):
        Library.open("http://127.0.0.1:9", "default")


def test_corrupt_entry_names_itself(lib: Library) -> None:
    lib._collection.update(ids=["s-json"], metadatas=[{"json": "{not json"}])
    with pytest.raises(LibraryFormatError, match="s-json"):
        lib.get("s-json")


@pytest.mark.server
def test_a_chroma_server_library_keeps_its_history_under_agentkd_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chroma = shutil.which("chroma")
    if chroma is None:
        pytest.skip("the `chroma` command is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [chroma, "run", "--path", str(tmp_path / "server"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        monkeypatch.setenv("AGENTKD_HOME", str(tmp_path / "home"))
        deadline = time.monotonic() + 30
        while True:
            try:
                lib = Library.open(f"http://127.0.0.1:{port}", "remote-lib")
                break
            except LibraryError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert lib.add(PERCENT) == ("s-percent", "added")
        assert lib.add(PERCENT_AGAIN) == ("s-percent", "merged")
        assert ids(lib.search("percent of the total")) == ["s-percent"]
        history = tmp_path / "home" / "libraries" / f"127.0.0.1_{port}" / "history.jsonl"
        assert [json.loads(line)["action"] for line in history.read_text().splitlines()] == ["added", "merged"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_an_empty_library_finds_nothing(tmp_path: Path) -> None:
    lib = Library.open(str(tmp_path), "empty-lib")
    assert lib.count() == 0 and lib.list() == [] and lib.history() == []
    assert lib.search("anything") == [] and lib.search("anything", status=None, task="x") == []
