"""Questions to collect trajectories for: JSONL or CSV with question and answer columns."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Question:
    text: str
    answer: str


def load_questions(path: Path | str, question_col: str = "question",
                   answer_col: str = "answer") -> list[Question]:
    """Read ``.jsonl`` (one object per line) or ``.csv``; errors name file, line, column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: questions file not found")
    rows: list[tuple[int, dict]] = []
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for col in (question_col, answer_col):
                if col not in (reader.fieldnames or []):
                    raise ValueError(f"{path}: column {col!r} is missing (columns: "
                                     f"{', '.join(reader.fieldnames or [])})")
            rows = [(i + 2, r) for i, r in enumerate(reader)]
    elif path.suffix in (".jsonl", ".json"):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {i}: not valid JSON: {e}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}: line {i}: expected an object")
            rows.append((i, obj))
    else:
        raise ValueError(f"{path}: expected a .jsonl or .csv file")
    out = []
    for lineno, r in rows:
        for col in (question_col, answer_col):
            v = r.get(col)
            if v is None or (isinstance(v, str) and not v.strip()):
                raise ValueError(f"{path}: line {lineno}: column {col!r} is missing or empty")
        out.append(Question(str(r[question_col]), str(r[answer_col]).strip()))
    if not out:
        raise ValueError(f"{path}: no questions")
    return out
