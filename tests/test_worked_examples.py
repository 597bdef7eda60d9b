"""Worked examples: the entry kind, its file (the program is the body), and voting over whole answers."""

from __future__ import annotations

from agentkd.library.files import parse_file, render_file
from agentkd.schema import Provenance, Strategy, WorkedExample
from agentkd.student.voting import answer_key, vote_answers


def example() -> Strategy:
    worked = WorkedExample(question="Tom has 3 boxes of 12 eggs and breaks 5. How many are left?",
                           program="boxes = 3\neggs = boxes * 12 - 5\nprint(eggs)", output="31", answer="31",
                           solver="local/qwen2.5-coder-1.5b", verification="ground truth 31: expected 31, got 31",
                           category="template-007")
    return Strategy.from_example(worked, task="gsm_symbolic", provenance=Provenance(teacher="local/qwen2.5-coder-1.5b"))


def test_an_example_file_shows_the_program_as_its_body_and_round_trips() -> None:
    entry = example()
    text = render_file(entry)
    front, body = text.split("---\n")[1], text.split("---\n", 2)[2]
    assert "program:" not in front and "print(eggs)" in body  # one place to read and edit the solution
    assert "verification: 'ground truth 31" in front and "category: template-007" in front
    back = parse_file(text, f"{entry.id}.md")
    assert back == entry and render_file(back) == text
    edited = parse_file(text.replace("print(eggs)", "print(int(eggs))"), f"{entry.id}.md")
    assert edited.worked is not None and edited.worked.program.endswith("print(int(eggs))")


def test_an_example_renders_as_text_for_a_student_without_a_code_tool() -> None:
    text = example().render()
    assert "Problem: Tom has 3 boxes" in text and "print(eggs)" in text and "Answer: 31" in text


def test_votes_count_final_answers_not_their_wording() -> None:
    assert answer_key("The total cost is $36.00.\nAnswer: 36.00") == "36"
    assert answer_key("Answer: 1,200") == "1200" and answer_key("so 7.5 apples") == "7.5"
    assert answer_key("") is None and answer_key("Answer: blue.") == "blue"
    # the majority wins; empty answers do not vote; a tie goes to the first (greedy) answer
    assert vote_answers(["Answer: 5", "Answer: 7", "answer: 7.0", ""]) == (1, {"5": 1, "7": 2})
    assert vote_answers(["Answer: 5", "Answer: 7"])[0] == 0
    assert vote_answers(["", "Answer: 9"])[0] == 1
    assert vote_answers(["", ""]) == (0, {})
