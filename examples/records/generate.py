"""Writes the demo data set: short notes about people, each answered with one JSON record.

The skill is a fixed answer format a pretrained model does not have: whatever the wording of the note, the answer
is exactly ``{"name": ..., "age": ..., "city": ..., "job": ...}``. Deterministic; run from the repository root:
``python examples/records/generate.py`` (rewrites train.jsonl and eval.jsonl beside this file). The held-out rows
use names that never occur in training.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

TRAIN_NAMES = [
    "Maria", "Tomás", "Aisha", "Kenji", "Olga", "Pedro", "Fatima", "Lars", "Chen", "Amara", "Diego", "Ingrid",
    "Ravi", "Sofia", "Mehmet", "Hana", "Lucas", "Zainab", "Erik", "Paula", "Yusuf", "Mei", "Jonas", "Lucia",
    "Kwame", "Elena", "Arjun", "Nina", "Omar", "Clara", "Hugo", "Leila", "Mateo", "Greta", "Tariq", "Rosa",
]
EVAL_NAMES = ["Beatriz", "Samuel", "Noor", "Viktor", "Alma", "Idris", "Freya", "Marco"]
CITIES = [
    "Lisbon", "Porto", "Madrid", "Lyon", "Oslo", "Kyoto", "Nairobi", "Lima", "Cairo", "Dublin", "Krakow",
    "Seoul", "Quito", "Accra", "Hanoi", "Tunis", "Bergen", "Graz", "Bologna", "Cusco", "Adelaide", "Tallinn",
]
JOBS = [
    "nurse", "baker", "teacher", "pilot", "carpenter", "chemist", "librarian", "plumber", "architect", "farmer",
    "translator", "dentist", "electrician", "journalist", "firefighter", "gardener", "engineer", "tailor",
    "photographer", "lawyer",
]
NOTES = [
    "{name} is {age}, lives in {city} and works as a {job}.",
    "Meet {name}: a {age}-year-old {job} from {city}.",
    "{name}, {age}, {job}, based in {city}.",
    "Our new {job} is {name} ({age}), who just moved here from {city}.",
    "In {city}, {name} has worked as a {job} for years and turned {age} this spring.",
    "{name} ({age}) - {job} - {city}",
    "Note to self: call {name} in {city} tomorrow. {age} years old, {job}.",
    "Yesterday I met {name}, a {job} from {city}. {name} is {age}.",
]


def row(rng: random.Random, names: list[str]) -> dict:
    person = {"name": rng.choice(names), "age": rng.randint(19, 78), "city": rng.choice(CITIES),
              "job": rng.choice(JOBS)}
    note = rng.choice(NOTES).format(**person)
    return {"prompt": note, "completion": json.dumps(person, ensure_ascii=False)}


def main() -> None:
    rng = random.Random(2026)
    here = Path(__file__).parent
    for name, names, count in (("train.jsonl", TRAIN_NAMES, 240), ("eval.jsonl", EVAL_NAMES, 24)):
        rows = [row(rng, names) for _ in range(count)]
        (here / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
