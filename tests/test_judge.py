"""The leak check on teacher-written entries: general advice passes, this problem's answer or values do not."""

from __future__ import annotations

from agentkd.distill.grading import leaks_answer
from agentkd.schema import Scenario, StrategyDraft
from agentkd.tasks.bfcl import BfclTask


def draft(body: str, trigger: str = "A word problem about totals") -> StrategyDraft:
    return StrategyDraft(kind="strategy", title="Totals", trigger=trigger, body=body, tool_hints=[])


GSM = Scenario(id="g1", task="gsm_symbolic", question="Ann buys 12 pens at 35 cents each. What does she pay?",
               answer="420")


def test_numbers_the_answer_and_copied_problem_numbers_are_leaks() -> None:
    assert "the answer 420" in str(leaks_answer(draft("Multiply them to get 420 in all."), GSM))
    assert "copies numbers" in str(leaks_answer(draft("Multiply 12 by 35 to get the total."), GSM))
    assert leaks_answer(draft("1. Find the unit price. 2. Multiply it by the count."), GSM) is None


def test_a_function_calls_argument_values_copied_from_the_request_are_leaks() -> None:
    """Found in a BFCL build: the local teacher wrote the expected call into the entry; numbers alone missed it."""
    sc = BfclTask("multiple").scenario("multiple_94")  # hotel_room_pricing_get(hotelName='Hilton New York', ...)
    leaky = draft("Call hotel_room_pricing_get('Hilton New York', 'suite with queen size bed', 3).")
    reason = leaks_answer(leaky, sc)
    assert reason is not None and "'hilton new york'" in reason
    general = draft("Pick the function whose description matches the request; copy the hotel name, room type "
                    "and number of nights from the request into its arguments.", trigger="Pricing a hotel stay")
    assert leaks_answer(general, sc) is None


def test_a_value_every_scenario_shares_is_not_a_leak() -> None:
    """A phrase that is not in the problem (the test kit's pass phrase, a unit convention) can be the lesson."""
    sc = Scenario(id="p1", task="passphrase", question="What is the pass phrase of the Orchid Club?",
                  answer="blue lantern")
    assert leaks_answer(draft("Reply with exactly these two words: blue lantern."), sc) is None
    copied = Scenario(id="p2", task="qa", question="Which city is called the Big Apple, New York or Boston?",
                      answer="New York")
    assert leaks_answer(draft("Answer New York when asked about the Big Apple."), copied) is not None
