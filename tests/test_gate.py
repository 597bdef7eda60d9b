"""The pack gate: the rule per category, retiring the entries that cause a worse category, the validation
split, the manifest refusing an ungated or stale pack, and a real gate (SmolLM2 student, Chroma pack)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentkd.cli.main import app
from agentkd.errors import GateFailed, TaskError
from agentkd.eval import EvalResult, ItemRecord, PackManifest, write_measurement
from agentkd.eval.gate import GateReport, judge_gate, retire_blamed, run_gate
from agentkd.eval.packs import entries_digest
from agentkd.library.files import parse_file, render_file
from agentkd.schema import Scenario, Strategy, Verdict, short_id
from agentkd.tasks.base import require_validation
from agentkd.tools import ToolBox
from tests.loopkit import PHRASE, PassPhraseTask

runner = CliRunner()
ARM = "student+library:pack"


def result(pairs: dict[str, list[tuple[bool, bool, list[str]]]]) -> EvalResult:
    """An evaluation with, per category, (right alone, right with the library, entries retrieved) per item."""
    res = EvalResult(task="t", split="validation", n=0, seed=1, student="s", teacher="t", library="", collection="",
                     arms=["student", ARM], baseline="student", scenario_ids=[], started="", command="")
    for cat, items in pairs.items():
        for i, (alone, lib, used) in enumerate(items):
            res.items += [ItemRecord(arm="student", id=f"{cat}{i}", category=cat, correct=alone),
                          ItemRecord(arm=ARM, id=f"{cat}{i}", category=cat, correct=lib, strategies=used)]
            res.n += 1
    return res


def test_a_category_is_worse_when_the_sign_test_says_the_library_hurts_it() -> None:
    res = result({
        "a": [(True, False, ["s-bad", "s-good"])] * 3 + [(True, False, ["s-bad"]), (False, False, ["s-good"])],
        "b": [(True, False, ["s-good"])] * 2 + [(False, True, ["s-good"])],  # lost 2, won 1: p = 1/2
        "c": [(False, True, ["s-good"])] * 4,
    })  # fmt: skip
    report = judge_gate(res, ARM, alpha=0.10)
    by = {c.category: c for c in report.categories}
    assert report.worse == ["a"] and not report.passed
    assert (by["a"].hurt, by["a"].helped, by["a"].p_worse) == (4, 0, pytest.approx(1 / 16))
    assert by["a"].blamed == ["s-bad", "s-good"], "entries retrieved on its lost items, most often first"
    assert by["b"].p_worse == pytest.approx(0.5) and not by["b"].worse and by["b"].blamed == []
    assert by["c"].helped == 4 and not by["c"].worse
    assert judge_gate(res, ARM, alpha=0.05).passed, "4 losses and no wins (p=1/16) pass at 0.05: the level matters"
    assert report.overall is not None and (report.overall.hurt, report.overall.helped) == (6, 5)
    assert not report.overall.worse, "over all items 6 lost and 5 won is no evidence of harm"


def test_losses_spread_over_small_categories_fail_the_library_as_a_whole() -> None:
    """One item lost in each of six categories: no category can fail, the library over all items does; the
    blame falls on the entry that lost more items than it won, not on the one that won its own category."""
    res = result({f"t{i}": [(True, False, ["s-bad"])] for i in range(6)} | {"u": [(False, True, ["s-good"]),
                                                                                (True, False, ["s-good"])]})
    report = judge_gate(res, ARM, alpha=0.10)
    assert not any(c.worse for c in report.categories)
    overall = report.overall
    assert overall is not None and overall.worse and (overall.hurt, overall.helped) == (7, 1)  # p = 9/256
    assert report.worse == ["all items"] and not report.passed
    assert report.blamed() == ["s-bad"]


def pack_with(tmp_path: Path, *entries: Strategy) -> Path:
    pack = tmp_path / "strategies" / "clubs"
    pack.mkdir(parents=True)
    for s in entries:
        (pack / f"{s.id}.md").write_text(render_file(s), encoding="utf-8")
    PackManifest(name="clubs", task="gate", teacher="fake/teacher").save(pack)
    return pack


def entry(sid: str, trigger: str, body: str) -> Strategy:
    return Strategy(id=sid, title=f"Entry {sid}", trigger=trigger, body=body, tasks=["gate"], status="admitted")


def test_the_blamed_entries_are_retired_and_the_manifest_takes_only_a_passed_gate_on_these_files(
    tmp_path: Path,
) -> None:
    pack = pack_with(tmp_path, entry("s-bad", "any question", "Say no."), entry("s-good", "sums", "Add them."))
    report = judge_gate(result({"a": [(True, False, ["s-bad"])] * 4}), ARM, library=str(pack))
    report.digest = entries_digest(pack)
    manifest = pack / "manifest.yaml"
    with pytest.raises(GateFailed, match="worse than the student alone on a"):
        write_measurement(manifest, result({}), report="r.md", command="c", gate=report)
    assert retire_blamed(report, pack=pack) == ["s-bad"]
    bad = parse_file((pack / "s-bad.md").read_text(), "s-bad.md")
    assert bad.status == "retired" and "pack gate" in bad.status_reason and "a (hurt 4, helped 0" in bad.status_reason
    assert parse_file((pack / "s-good.md").read_text(), "s-good.md").status == "admitted"
    stale = GateReport(task="gate", n=4, seed=1, alpha=0.1, library=str(pack), digest=report.digest)
    with pytest.raises(GateFailed, match="other files"):  # passed, but on the files before the retirement
        write_measurement(manifest, result({}), report="r.md", command="c", gate=stale)
    fresh = stale.model_copy(update={"digest": entries_digest(pack)})
    written = write_measurement(manifest, result({}), report="r.md", command="c", gate=fresh)
    assert PackManifest.load(pack).gate == fresh and written.gate is not None


def test_the_validation_split_is_apart_from_train_and_heldout_and_a_task_without_one_is_refused() -> None:
    from agentkd.parts import load_task

    gsm = load_task("gsm_symbolic")
    require_validation(gsm)
    ids = {split: {sc.question for sc in gsm.scenarios(split, 20, seed=1234)} for split in ("train", "validation",
                                                                                                 "heldout")}
    assert not ids["validation"] & ids["train"] and not ids["validation"] & ids["heldout"]
    assert {sc.category for sc in gsm.scenarios("validation", 20, seed=1234)} <= set(gsm.categories("train"))
    with pytest.raises(TaskError, match="passphrase has no validation split"):
        require_validation(PassPhraseTask())


def test_the_gate_command_teaches_and_refuses_a_task_without_a_validation_split(tmp_path: Path) -> None:
    helped = runner.invoke(app, ["library", "gate", "--help"], terminal_width=120)
    assert helped.exit_code == 0
    for words in ("validation split", "sign test", "--alpha", "retired", "--write-manifest"):
        assert words in helped.output
    pack = pack_with(tmp_path, entry("s-x", "any question", "Say no."))
    refused = runner.invoke(app, ["library", "gate", "--task", "tests.loopkit:PassPhraseTask", "--pack", str(pack)])
    assert refused.exit_code != 0 and isinstance(refused.exception, TaskError)  # main() prints it, exit code 1
    assert "no validation split" in str(refused.exception) and "validation_split = True" in str(refused.exception)


class GateTask(PassPhraseTask):
    """Two clubs: the Orchid Club's phrase only an entry can tell; the Lotus Club's phrase is its name, which
    the student says alone ('The pass phrase of the Lotus Club is "Lotus".'); the Orchid phrase is wrong there."""

    name = "gate"
    validation_split = True

    def scenarios(self, split: str, n: int, seed: int) -> list[Scenario]:
        out = []
        for i in range(n):
            club, answer = ("Orchid", PHRASE) if i % 2 == 0 else ("Lotus", "lotus")
            q = f"Visitor #{i} asks: what is the pass phrase of the {club} Club?"
            out.append(Scenario(id=f"g-{split}-{short_id(q, str(seed))}", task=self.name, question=q, answer=answer,
                                category=club.lower()))
        return out

    def check(self, scenario: Scenario, answer: str) -> Verdict:
        said = answer.lower()
        ok = (scenario.answer or "") in said and (scenario.answer == PHRASE or PHRASE not in said)
        return Verdict(correct=ok, score=float(ok), reasons=f"expected {scenario.answer!r}")

    def tools(self) -> ToolBox:
        return ToolBox([])


@pytest.mark.model
def test_a_real_gate_retires_the_entry_that_makes_a_category_worse(
    tmp_path: Path, smollm_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentkd.config import get_settings

    monkeypatch.setenv("AGENTKD_N_THREADS", "1")
    helpful = entry("s-phrase", "Someone asks for the pass phrase of the Orchid Club",
                    f"Reply with exactly these two words: {PHRASE}.")
    pack = pack_with(tmp_path, helpful)  # it helps the Orchid Club and, retrieved for the Lotus Club too, hurts it
    silent = tmp_path / "teacher.json"
    silent.write_text('{"steps": []}')  # the gate never calls the teacher
    settings = get_settings(student=str(smollm_path), teacher=f"script:{silent}", seed=3, n_ctx=2048)
    report = run_gate(settings, task="gate", library=str(pack), n=10, out=tmp_path / "gate", task_source=GateTask(),
                      max_tokens=24)
    by = {c.category: c for c in report.categories}
    assert by["lotus"].alone >= 4, "alone, the student names the club"
    assert by["lotus"].worse and by["lotus"].blamed == ["s-phrase"] and report.worse == ["lotus"]
    assert not by["orchid"].worse and by["orchid"].helped >= 4
    assert report.digest == entries_digest(pack) and Path(report.results).is_file()
    def decoded() -> int:
        return (tmp_path / "gate" / "calls.jsonl").read_text().count('"role": "student"')

    calls = decoded()
    assert calls > 0, "the first gate decoded its items"
    again = run_gate(settings, task="gate", library=str(pack), n=10, out=tmp_path / "gate", task_source=GateTask(),
                     max_tokens=24, resume=True)  # `agentkd eval --resume --write-manifest`: nothing is decoded again
    assert decoded() == calls
    assert [c.model_dump() for c in again.categories] == [c.model_dump() for c in report.categories]
    retire_blamed(report, pack=pack)
    # retired although it helps the Orchid Club: the student does not know an item's club (its category), so
    # the entry cannot be kept out of the Lotus Club alone
    assert report.retired == ["s-phrase"]
    assert parse_file((pack / "s-phrase.md").read_text(), "s-phrase.md").status == "retired"
