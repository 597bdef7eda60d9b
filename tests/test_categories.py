"""A task limited to some of its categories: the build's job and its held-out measurement draw only those."""

from __future__ import annotations

import pytest

from agentkd.errors import TaskError
from agentkd.parts import load_task
from agentkd.tasks.base import pick_categories
from tests.loopkit import PassPhraseTask


def test_a_number_picks_that_many_train_templates_reproducibly_and_a_list_names_them() -> None:
    task = load_task("gsm_symbolic")
    four = pick_categories(task, "4", seed=1234)
    assert len(four) == 4 and set(four) <= set(task.categories("train")) and four == sorted(four)
    assert pick_categories(task, "4", seed=1234) == four and pick_categories(task, "4", seed=7) != four
    assert not set(four) & set(task.categories("heldout-unseen")), "held-back templates never reach a build"
    assert pick_categories(task, f"{four[1]}, {four[0]}", seed=0) == [four[1], four[0]]


@pytest.mark.parametrize("spec, says", [("0", "cannot pick"), ("999", "cannot pick"),
                                        ("template-999", "not a train category"), (",", "not a train category")])
def test_a_category_the_task_does_not_have_is_a_clear_error(spec: str, says: str) -> None:
    with pytest.raises(TaskError, match=says) as info:
        pick_categories(load_task("gsm_symbolic"), spec, seed=1)
    assert info.value.hint


def test_unseen_templates_cannot_be_chosen_by_name() -> None:
    task = load_task("gsm_symbolic")
    with pytest.raises(TaskError, match="not a train category"):
        pick_categories(task, task.categories("heldout-unseen")[0], seed=1)


def test_every_split_of_a_limited_task_draws_only_its_categories() -> None:
    task = load_task("gsm_symbolic")
    chosen = pick_categories(task, "3", seed=5)
    job = task.restrict(chosen)
    assert job.name == task.name, "entries built on the job are entries of the task"
    assert job.categories("train") == sorted(chosen) and job.categories("heldout-unseen") == []
    for split in ("train", "heldout", "validation"):
        items = job.scenarios(split, 24, seed=1234)  # type: ignore[arg-type]
        assert len(items) == 24 and {s.category for s in items} == set(chosen), split
    assert job.scenarios("heldout-unseen", 5, seed=1) == []
    assert task.categories("train") != job.categories("train"), "the original task is unchanged"
    full = task.scenarios("heldout", 20, seed=1234)
    assert len({s.category for s in full}) > 3


def test_a_task_without_categories_says_so() -> None:
    with pytest.raises(TaskError, match="cannot be limited"):
        PassPhraseTask().restrict(["orchid"])
    with pytest.raises(TaskError, match="no categories"):
        pick_categories(PassPhraseTask(), "orchid", seed=0)


def test_a_build_loads_the_job_its_settings_name() -> None:
    from agentkd.config import get_settings
    from agentkd.distill.build import load_scoped

    task, chosen = load_scoped("gsm_symbolic", get_settings(categories="2", seed=99))
    assert len(chosen) == 2 and task.categories("train") == sorted(chosen)
    assert load_scoped("gsm_symbolic", get_settings(categories=",".join(chosen)))[1] == chosen, "a resume reloads it"
    whole, none = load_scoped("gsm_symbolic", get_settings(categories=""))
    assert none == [] and len(whole.categories("train")) > 2
