"""The explorer's prompt: contract, beta rules, and the history of earlier rounds.

Only search-set results ever enter a prompt. The held-out guard (:func:`guard`) checks the
text the project writes (baselines, results, traces), not candidate code or the messages
a candidate's code produced: a controller that merely names a benchmark is fine. The
guard never stops a run; it blanks what it finds and says so.
"""

from __future__ import annotations

import json
import re
import sys

from autotts_gym.protocol import Split

from .codecheck import ALLOWED_IMPORTS
from .rounds import Round

CONTRACT = """\
You design test-time scaling controllers for a reasoning LLM. Per problem, up to 128
cached reasoning branches can be opened, in a fixed random order; each generates its
trajectory in intervals of 500 tokens, and after each interval its current answer can be
read. Your controller decides how many branches to open, how deep to take each, which to
stop, when to stop and what to answer. It is scored on accuracy and on tokens spent.

## Contract
Write one Python module that defines `make_controller(beta: float)`, returning an object
with `solve(session) -> str | None`. The session:
- `session.open()` -> `(answer, branch_id, finished)` or None when no branch is left:
  opens the next branch and generates one interval (500 tokens), revealing its answer.
- `session.advance(branch_id)` -> `(answer, finished)`: one more interval on that branch
  (the last interval costs the rest of the trajectory; a finished branch costs nothing).
- `session.read()` -> final answer or None: a whole fresh branch at its full cost.
- `session.prune(branch_id)`; `session.probe(branch_id)` (re-read the current answer).
- `session.tokens`, `session.beta`, `session.n_opened`, `session.branches_left`,
  `session.depth(b)`, `session.is_finished(b)`, `session.latest_answer(b)`.
Answers are strings; intermediate answers may be "ERR". `autotts_gym.voting` offers
`majority(list)`, `vote(list) -> (winner, confidence)`, `beta_confidence(a, b)`.
Allowed imports: {imports}. The code runs in a jail: no file, network or\nprocess access.

## The beta rule
beta in [0, 1] is the only knob. Derive every internal hyperparameter deterministically
from beta. Accuracy and cost must both rise with beta: beta = 0 is the cheapest sensible
behaviour, beta = 1 spends up to about the cost of 64-way self-consistency.

## Scoring
Per beta: accuracy and mean tokens on the search set; the objective is
`accuracy - gamma(beta) * tokens / 1e6` with gamma falling from 2.0 (beta 0) to 0.05
(beta 1). Reference: 64-way self-consistency (SC@64) costs about 1M tokens per problem.
"""

REPLY_FORMAT = """\
## Your reply
Briefly say what you change and why (a few sentences), then give the complete module in
one ```python code block.
"""


def guard(text: str, split: Split, where: str = "prompt") -> str:
    """``text`` (written by the project) with every held-out benchmark name blanked."""
    for name in split.held_out:
        if name and name in text:
            print(f"warning: the held-out benchmark {name} appeared in the {where}; "
                  "blanked", file=sys.stderr)
            text = re.sub(re.escape(name), "[held-out]", text)
    return text


def describe_round(r: Round, split: Split) -> str:
    head = f"### Round {r.index}: {r.kind.value}"
    if not r.ok:
        return f"{head}\n{r.message[:400]}\n"
    res = r.files.get("results.json", {})
    rows = "\n".join(
        f"- beta {b['beta']:g}: accuracy {b['accuracy_pct']:.1f}%, tokens "
        f"{b['mean_tokens']:,.0f} ({100 * b.get('tokens_vs_sc64', 0):.0f}% of SC@64), "
        f"objective {b['objective']:.3f}" for b in res.get("per_beta", []))
    traces = r.files.get("traces.jsonl", "").strip().splitlines()[:2]
    trace_text = "\n".join(_compact_trace(json.loads(t)) for t in traces)
    ours = guard(f"Search-set results:\n{rows}\n"
                 + (f"Wrong answers (last session calls):\n{trace_text}\n"
                    if trace_text else ""), split, f"results of round {r.index}")
    return (f"{head} (score {r.score:.3f})\n```python\n{(r.code or '').strip()}\n```\n"
            + ours)


def _compact_trace(t: dict) -> str:
    calls = ", ".join(f"{c['call']}({c['branch']})->{c['answer']}" for c in t["last_calls"])
    return (f"- problem {t['problem']} seed {t['seed']} beta {t['beta']:g}: answered "
            f"{t['answer']!r} after {t['tokens']:,.0f} tokens; last calls: {calls}")


def build_prompt(history: list[Round], split: Split, baseline: str = "",
                 max_rounds: int = 4) -> str:
    """The prompt of the next round: the two best and the latest earlier rounds."""
    ok = sorted((r for r in history if r.ok), key=lambda r: (-(r.score or 0.0), r.index))
    best = ok[:2]
    latest = [r for r in history[-max_rounds:] if r not in best]
    shown = best + latest[-(max_rounds - len(best)):] if max_rounds > len(best) else best
    parts = [CONTRACT.format(imports=", ".join(ALLOWED_IMPORTS))]
    if baseline:
        parts.append(guard("## Baselines on the search set\n" + baseline, split, "baselines"))
    if shown:
        parts.append("## Earlier rounds (best first, then the latest)\n"
                     + "\n".join(describe_round(r, split) for r in shown))
    else:
        parts.append("## Earlier rounds\nNone yet: propose a first controller.")
    parts.append(REPLY_FORMAT)
    return "\n".join(parts)
