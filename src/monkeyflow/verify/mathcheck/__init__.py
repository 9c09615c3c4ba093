"""The MATH answer checker, split by reason to change.

- `normalize`: conservative string canonicalisation and plain-number readings of an answer;
- `backends`: equivalence backends (math-verify, a hand-written sympy one) on (reference, answer);
- `timeouts`: running a backend under a wall-clock timeout (SIGALRM or a worker process);
- `compare`: the decision for one extracted answer (string match, numeric match, multi-part
  answers, then the backend within the sample's time budget).

Answer extraction lives with the other text helpers in `monkeyflow.text.final_answer`, since the
MATH dataset reads its references with the same rule.
"""
