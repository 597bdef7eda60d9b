"""A synthetic but varied strategy library (250 entries) and held-out queries worded differently from it."""

from __future__ import annotations

import random

from agentkd.schema import Strategy

DOMAINS = [
    ("a grocery bill with discounts", "shopping", "my supermarket receipt has coupons"),
    ("compound interest on a savings account", "finance", "how much will my deposit earn with yearly interest"),
    ("train timetables across time zones", "travel", "my train leaves Berlin and arrives in Moscow"),
    ("mixing paint colours in ratios", "art", "I blend red and white pigment"),
    ("a recipe scaled for more guests", "cooking", "doubling the ingredients of a cake"),
    ("JSON arguments of a weather API tool", "tools", "calling the forecast function with a city"),
    ("SQL queries over an orders table", "databases", "select customers who ordered twice"),
    ("a chess endgame with two rooks", "games", "checkmating with rooks against a lone king"),
    ("the speed of a falling object", "physics", "a stone dropped from a bridge"),
    ("dosage of medicine by body weight", "medicine", "mg per kilogram for a child"),
    ("a flight booking with a refund policy", "airline", "cancel my ticket and get the money back"),
    ("sorting a list of student grades", "programming", "order the exam scores in python"),
    ("the area of an irregular garden plot", "geometry", "my backyard lawn has an odd shape"),
    ("probability of drawing two aces", "probability", "chance of two aces from a deck of cards"),
    ("fuel consumption on a road trip", "driving", "litres of petrol for a long drive"),
    ("a monthly budget split between roommates", "household", "sharing rent and bills in a flat"),
    ("tax on a freelance invoice", "accounting", "VAT for my consulting bill"),
    ("a retail customer returning a damaged item", "retail", "the shop must take back a broken blender"),
    ("calendar days between two dates", "calendar", "how many days from March to June"),
    ("unit conversion between miles and kilometres", "units", "convert distance from miles to km"),
    ("a regex that validates email addresses", "text", "pattern matching an e-mail address"),
    ("workers sharing a job at different rates", "work-rate", "two painters finish a house together"),
    ("the average speed of a round trip", "motion", "going there fast and back slowly"),
    ("a logic puzzle about knights and knaves", "logic", "one always lies and one tells the truth"),
    ("a population growing by a fixed percentage", "growth", "the town grows every year by a rate"),
]
ASPECTS = [
    ("the question hides a unit change", "Convert units before computing", "watch out, the units differ"),
    ("several steps depend on each other", "Plan the chain of steps", "it takes many dependent steps"),
    ("the answer must be rounded", "Round only at the end", "what rounding should the final number get"),
    ("a tool call is needed to get data", "Fetch data with the tool first", "which tool should I call for the data"),
    ("the numbers are given as percentages", "Turn percents into fractions", "the values are in percent"),
    ("an edge case like zero or empty input appears", "Check the edge cases", "what if the input is empty or zero"),
    ("the problem asks for a comparison of options", "Tabulate the options", "which option is the better deal"),
    ("the wording contains a trap or distractor", "Ignore the distractor", "there is irrelevant information given"),
    ("a result must be verified", "Verify by substituting back", "how do I double check my answer"),
    ("time or order of events matters", "Lay out a timeline", "what happens first and what comes after"),
]


def corpus(seed: int = 7) -> list[Strategy]:
    """250 entries: every domain crossed with every aspect; tasks and statuses spread across them."""
    rng = random.Random(seed)
    out = []
    for d, (domain, tag, _) in enumerate(DOMAINS):
        for a, (aspect, title, _) in enumerate(ASPECTS):
            out.append(
                Strategy(
                    id=f"s-{d:02d}-{a:02d}",
                    kind="guidance" if a % 4 == 3 else "strategy",
                    title=f"{title} ({tag})",
                    trigger=f"When working on {domain} and {aspect}",
                    body=f"For {domain}: {title.lower()}. Write each step down, then check it.",
                    tasks=[tag, "mixed" if rng.random() < 0.5 else "other"],
                    domains=[tag],
                    status="admitted",
                )
            )
    return out


def queries(n: int = 60, seed: int = 11) -> list[tuple[str, str]]:
    """Held-out questions, each with the id of the entry it was written for."""
    rng = random.Random(seed)
    pairs = rng.sample([(d, a) for d in range(len(DOMAINS)) for a in range(len(ASPECTS))], n)
    return [(f"{DOMAINS[d][2]} - {ASPECTS[a][2]}?", f"s-{d:02d}-{a:02d}") for d, a in pairs]
