#!/usr/bin/env python3
"""STAND-IN for the Lean REPL (leanprover-community/repl) in tests: NOT Lean. It speaks the
REPL's JSON protocol exactly (requests ended by a blank line; `{"cmd", "env"?}` in;
`{"env", "messages"?, "sorries"?}` or `{"message"}` out, pretty-printed over several lines and
ended by a blank line; an unparsable request ends the process, as in REPL/Main.lean) and answers
with the message shapes the real REPL gives (see its test/*.expected.out), but it "elaborates"
by a few fixed rules instead of Lean:

- a command without `env` holding `import` lines is a header: a new environment (with
  STAND_IN_LEAN_HEADER_FAIL=1 it fails like a missing Mathlib);
- `#eval Lean.versionString` answers STAND_IN_LEAN_VERSION (default 4.15.0);
- `theorem NAME ... := by` followed by tactic lines: each line's first word must be a known
  tactic (else "unknown tactic"); `linarith` always fails; `trivial` proves only `True`; `sorry`
  (or `stop`, Lean's `repeat sorry`) gives the sorry warning and a `sorries` entry; a theorem whose name contains `false` cannot be
  proved (the validation's false statements); a failed theorem depends on `sorryAx`, as in Lean;
- `#print axioms NAME` reports propext, Classical.choice, Quot.sound (plus sorryAx, or
  Lean.ofReduceBool after the stand-in tactic `stand_in_axiom`);
- the stand-in tactics `stand_in_hang` (never answers), `stand_in_crash` (aborts),
  `stand_in_crash_once` (aborts the first time, in folder STAND_IN_LEAN_STATE), `stand_in_memory`
  (holds 600 MB and waits) and `stand_in_garbage` (answers with no JSON) make the faults a pool
  must survive.

Every request is logged as one JSON line (pid, kind, env, theorem) to STAND_IN_LEAN_LOG if set,
so tests can count how often each process saw a header. STAND_IN_LEAN_ACCEPT_ALL=1 makes it
accept every proof (a broken checker, for the validation's own test).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sys
import time

KNOWN_TACTICS = {
    "norm_num", "simp", "simp_all", "ring", "ring_nf", "nlinarith", "omega", "decide", "rfl",
    "positivity", "field_simp", "norm_cast", "push_cast", "aesop", "tauto", "simp_rw", "rw",
    "have", "intro", "intros", "constructor", "exact", "apply", "subst", "interval_cases", "use",
    "refine", "obtain", "rcases", "unfold", "induction", "cases", "all_goals", "any_goals",
    "first", "try", "repeat", "exact_mod_cast", "gcongr", "linarith", "trivial", "sorry",
    "set_option", "open", "nlinarith!", "norm_num1", "stand_in_axiom", "stand_in_crash_once",
}  # fmt: skip
STANDARD_AXIOMS = ["propext", "Classical.choice", "Quot.sound"]


def pos(line: int, column: int) -> dict:
    return {"line": line, "column": column}


def message(severity: str, line: int, column: int, end: tuple[int, int] | None, data: str) -> dict:
    return {
        "severity": severity,
        "pos": pos(line, column),
        "endPos": pos(*end) if end else None,
        "data": data,
    }


def strip_comments(text: str) -> str:
    text = re.sub(r"/-.*?-/", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    return re.sub(r"--[^\n]*", "", text)


class Session:
    """The environments of one REPL process and the rules that answer commands."""

    def __init__(self, log=None) -> None:
        self.envs: dict[int, str] = {}
        self.log = log
        self.version = os.environ.get("STAND_IN_LEAN_VERSION", "4.15.0")
        self.accept_all = os.environ.get("STAND_IN_LEAN_ACCEPT_ALL") == "1"

    def record(self, kind: str, **fields) -> None:
        if self.log is not None:
            self.log.write(json.dumps({"pid": os.getpid(), "kind": kind, **fields}) + "\n")
            self.log.flush()

    def new_env(self, kind: str) -> int:
        env = len(self.envs)
        self.envs[env] = kind
        return env

    def answer(self, request: dict) -> dict:
        cmd = request.get("cmd")
        if not isinstance(cmd, str):
            return {"message": "Could not parse as a valid JSON command:\nno field 'cmd'"}
        env = request.get("env")
        if env is None:
            self.record("header", theorem=None)
            if os.environ.get("STAND_IN_LEAN_HEADER_DELAY"):
                time.sleep(float(os.environ["STAND_IN_LEAN_HEADER_DELAY"]))
            if os.environ.get("STAND_IN_LEAN_HEADER_FAIL") == "1":
                return {
                    "messages": [
                        message(
                            "error", 1, 0, (1, 14),
                            "unknown module prefix 'Mathlib'\n\nNo directory 'Mathlib' or file "
                            "'Mathlib.olean' in the search path entries:\n/opt/lean/lib/lean",
                        )
                    ],
                    "env": self.new_env("header"),
                }  # fmt: skip
            return {"env": self.new_env("header")}
        if env not in self.envs:
            return {"message": "Unknown environment."}
        lines = cmd.split("\n")
        if "#eval Lean.versionString" in lines and "theorem" not in cmd:
            self.record("eval", env=env)
            line = lines.index("#eval Lean.versionString") + 1
            return {
                "messages": [message("info", line, 0, (line, 5), json.dumps(self.version))],
                "env": self.new_env("eval"),
            }
        return self.elaborate(cmd, env)

    def elaborate(self, cmd: str, env: int) -> dict:
        lines = strip_comments(cmd).split("\n")
        theorem = re.search(r"theorem\s+(\S+)", cmd)
        name = theorem.group(1) if theorem else None
        self.record(
            "proof", env=env, theorem=name, digest=hashlib.sha256(cmd.encode()).hexdigest()[:12]
        )
        messages: list[dict] = []
        sorries: list[dict] = []
        axioms = list(STANDARD_AXIOMS)
        by_line = next((i for i, line in enumerate(lines) if re.search(r":=\s*by\s*$", line)), None)
        print_line = next(
            (i for i, line in enumerate(lines) if line.startswith("#print axioms")), None
        )
        if name is None or by_line is None:
            messages.append(message("error", 1, 0, None, "unexpected token; expected command"))
        else:
            head = "\n".join(lines[: by_line + 1])
            statement = re.sub(r":=\s*by\s*$", "", head)
            conclusion = statement.rsplit(":", 1)[-1].strip() if ":" in statement else ""
            end = print_line if print_line is not None else len(lines)
            failed = False
            tactics = 0
            for number in range(by_line + 1, end):
                text = lines[number].strip().lstrip("·").strip()
                if not text:
                    continue
                word = text.split()[0].rstrip(";")
                column = len(lines[number]) - len(lines[number].lstrip())
                self.fault(text)
                tactics += 1
                if word in ("sorry", "stop") or " sorry" in f" {text}":  # `stop` = `repeat sorry`
                    col = column
                    sorries.append(
                        {
                            "proofState": len(sorries),
                            "pos": pos(number + 1, col),
                            "goal": f"⊢ {conclusion}",
                            "endPos": pos(number + 1, col + 5),
                        }
                    )
                    continue
                if word == "stand_in_axiom":
                    axioms.append("Lean.ofReduceBool")
                    continue
                if self.accept_all:
                    continue
                if word not in KNOWN_TACTICS:
                    messages.append(message("error", number + 1, column, None, "unknown tactic"))
                    failed = True
                    break
                if word == "linarith":
                    messages.append(
                        message(
                            "error",
                            number + 1,
                            column,
                            (number + 1, column + 8),
                            "linarith failed to find a contradiction\ncase a\na✝ : ¬("
                            + conclusion
                            + ")\n⊢ False failed",
                        )
                    )
                    failed = True
                    break
                if word == "trivial" and conclusion != "True":
                    messages.append(
                        message(
                            "error",
                            number + 1,
                            column,
                            (number + 1, column + 7),
                            "unsolved goals\n⊢ " + conclusion,
                        )
                    )
                    failed = True
                    break
                if "false" in name:
                    messages.append(
                        message(
                            "error",
                            number + 1,
                            column,
                            (number + 1, column + len(word)),
                            f"{word} failed to prove the goal\n⊢ {conclusion}",
                        )
                    )
                    failed = True
                    break
            if not tactics:
                messages.append(
                    message(
                        "error",
                        by_line + 1,
                        len(lines[by_line]),
                        None,
                        "unexpected end of input; expected '{'",
                    )
                )
                failed = True
            if failed:
                axioms.append("sorryAx")
            elif sorries:
                messages.append(
                    message("warning", 1, 8, (1, 8 + len(name)), "declaration uses 'sorry'")
                )
                axioms.append("sorryAx")
        if print_line is not None:
            target = lines[print_line].split()[-1]
            if name is not None and target == name:
                listed = sorted(set(axioms), key=axioms.index)
                messages.append(
                    message(
                        "info",
                        print_line + 1,
                        0,
                        (print_line + 1, 6),
                        f"'{name}' depends on axioms: [{', '.join(listed)}]",
                    )
                )
            else:
                messages.append(
                    message(
                        "error",
                        print_line + 1,
                        14,
                        (print_line + 1, 14 + len(target)),
                        f"unknown constant '{target}'",
                    )
                )
        out: dict = {}
        if sorries:
            out["sorries"] = sorries
        if messages:
            out["messages"] = messages
        out["env"] = self.new_env("proof")
        return out

    def fault(self, text: str) -> None:
        """The stand-in tactics that make the process misbehave."""
        if "stand_in_hang" in text:
            while True:
                time.sleep(3600)
        if "stand_in_crash_once" in text:
            state = os.environ.get("STAND_IN_LEAN_STATE")
            marker = (
                os.path.join(state, hashlib.sha256(text.encode()).hexdigest()[:16])
                if state
                else None
            )
            if marker and not os.path.exists(marker):
                open(marker, "w").close()
                crash()
            return
        if "stand_in_crash" in text:
            crash()
        if "stand_in_memory" in text:
            hog = b"x" * (600 << 20)  # written pages: counted as anonymous RSS
            time.sleep(60)
            del hog
        if "stand_in_garbage" in text:
            sys.stdout.write("this is not JSON\n\n")
            sys.stdout.flush()
            time.sleep(60)


def crash() -> None:
    sys.stderr.write("Stack overflow detected. Aborting.\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGABRT)
    time.sleep(5)
    os._exit(134)


def read_request(stdin) -> str | None:
    """Lines up to a blank line (REPL/Main.lean `getLines`); None at the end of input."""
    lines = []
    while True:
        line = stdin.readline()
        if not line:
            return "".join(lines) if lines else None
        if not line.strip():
            if lines:
                return "".join(lines)
            continue
        lines.append(line)


def main() -> int:
    log_path = os.environ.get("STAND_IN_LEAN_LOG")
    log = open(log_path, "a", encoding="utf-8") if log_path else None
    session = Session(log)
    stdin = open(sys.stdin.fileno(), encoding="utf-8", closefd=False)
    while True:
        query = read_request(stdin)
        if query is None:
            return 0
        if query.startswith("#") or query.startswith("--"):
            continue
        try:
            request = json.loads(query)
        except json.JSONDecodeError as exc:
            error = json.dumps({"message": f"Could not parse JSON:\n{exc}"})
            sys.stderr.write(f"uncaught exception: {error}\n")
            return 1
        answer = session.answer(request)
        sys.stdout.write(json.dumps(answer, ensure_ascii=False, indent=1) + "\n\n")
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
