"""SFT hygiene: near-duplicates go, template siblings stay distinct, and the split keeps groups whole."""

from __future__ import annotations

from agentkd.sft.hygiene import dedupe_text, group_key, near_duplicates, validation_groups

PROBLEM = ("Janet buys {n} boxes of pens. Each box holds 12 pens and costs {p} dollars. She gives away a third of "
           "the pens and sells the rest at 2 dollars each. How much money does she make after paying for the "
           "boxes? Let me compute it with python: pens = {n} * 12; kept = pens - pens // 3; "
           "print(kept * 2 - {n} * {p})")


def test_exact_and_near_repeats_are_duplicates_but_template_siblings_are_not() -> None:
    base = PROBLEM.format(n=5, p=7)
    texts = [
        base,
        "  " + base.upper() + "  ",  # the same after normalization
        base.replace("Let me compute it", "I will compute it"),  # one phrase differs
        PROBLEM.format(n=9, p=4),  # a sibling from the same template: other numbers, other answer
    ]
    normalized = [" ".join(t.lower().split()) for t in texts]
    dupes = near_duplicates(normalized, threshold=0.85)
    assert dupes[1] == (0, 1.0)
    assert dupes[2][0] == 0 and 0.85 <= dupes[2][1] < 1.0
    assert 3 not in dupes


def test_dedupe_text_ignores_the_system_prompt_and_call_ids() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "python", "arguments": '{"code": "print(2)"}'}}
    convo = [{"role": "system", "content": "with strategies"}, {"role": "user", "content": "Q"},
             {"role": "assistant", "content": None, "tool_calls": [call]},
             {"role": "tool", "tool_call_id": "call_1", "content": "2"}, {"role": "assistant", "content": "Answer: 2"}]
    other = [{**m, "content": "no strategies"} if m["role"] == "system" else m for m in convo]
    other[2] = {**other[2], "tool_calls": [{**call, "id": "call_9"}]}
    assert dedupe_text(convo) == dedupe_text(other)
    assert "print(2)" in dedupe_text(convo)


def test_split_is_deterministic_keeps_groups_whole_and_is_never_empty() -> None:
    groups = [f"gsm_symbolic/template-{i % 7:03d}" for i in range(40)]
    val = validation_groups(groups, 0.2, seed=1)
    assert val == validation_groups(list(reversed(groups)), 0.2, seed=1)  # order of items does not matter
    assert len(val) == 2  # ceil(0.2 * 7 groups)
    assert len({frozenset(validation_groups(groups, 0.2, seed=s)) for s in range(10)}) > 1  # the seed decides
    assert len(validation_groups(["a", "b"], 0.01, seed=1)) == 1  # at least one group...
    assert validation_groups(["a", "b"], 0.99, seed=1) != {"a", "b"}  # ...and never all of them
    assert validation_groups(["only"], 0.5, seed=1) == set()


def test_group_key_falls_back_to_the_scenario_when_the_category_says_nothing() -> None:
    assert group_key("template-003", "sc-1", "gsm_symbolic", "category") == "gsm_symbolic/template-003"
    assert group_key("gsm_symbolic", "sc-1", "gsm_symbolic", "category") == "sc-1"
    assert group_key("default", "sc-1", "chain_sum", "category") == "sc-1"
    assert group_key("template-003", "sc-1", "gsm_symbolic", "scenario") == "sc-1"
