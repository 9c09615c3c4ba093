"""Lean proof text without Lean: extraction from completions, the screen that refuses commands and
metaprograms, the command that is checked, and verdicts from REPL answers in the real
protocol's shapes (leanprover-community/repl test/*.expected.out)."""

from __future__ import annotations

import pytest

from monkeyflow.verify.lean.proof import (
    ProtocolError,
    build_command,
    extract_proof,
    judge_response,
    mask,
    screen_proof,
)

STATEMENT = "theorem mathd_algebra_10 (x : ℝ) (h₀ : 2 * x = 4) : x = 2 := by\n"
NAME = "mathd_algebra_10"
HEADER = "import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 0\n\nopen BigOperators Real Nat Topology Rat\n\n"


def extract(text: str, stop=("Write a lean4",)):
    return extract_proof(text, STATEMENT, NAME, stop)


# -- extraction ------------------------------------------------------------------------------
def test_a_continuation_is_cut_at_the_fence_and_stop_string():
    got = extract("  linarith [h₀]\n```\n\nWrite a lean4 proof to ...")
    assert (got.proof, got.method) == ("\n  linarith [h₀]\n", "continuation")
    assert extract("  nlinarith\n\ntheorem other : True := by trivial").proof == "\n  nlinarith\n\n"
    # a comment may talk about theorems and hold fences: it is not cut there
    got = extract("  /- by the theorem of ``` -/\n  linarith\n```")
    assert got.proof == "\n  /- by the theorem of ``` -/\n  linarith\n"


def test_a_restated_theorem_gives_the_text_after_its_by():
    chat = f"Here is the proof:\n```lean4\nimport Mathlib\nopen Real\n\n{STATEMENT}  linarith\n```\nDone."
    got = extract(chat)
    assert (got.proof, got.method, got.note) == ("\n  linarith\n", "restated", "")
    same_line = extract(
        "theorem mathd_algebra_10 (x : ℝ)\n    (h₀ : 2 * x = 4) : x = 2 := by linarith"
    )
    assert (same_line.proof, same_line.method) == (" linarith", "restated")
    term = extract(
        "```lean4\ntheorem mathd_algebra_10 (x : ℝ) (h₀ : 2 * x = 4) : x = 2 :=\n  by_contra_foo h₀\n```"
    )
    assert term.proof == "\n  exact (by_contra_foo h₀)\n"


def test_a_restated_different_statement_is_marked_and_only_its_proof_is_kept():
    weaker = extract(
        "```lean4\ntheorem mathd_algebra_10 (x : ℝ) (h₀ : x = 2) : x = 2 := by\n  exact h₀\n```"
    )
    assert (weaker.proof, weaker.method) == ("\n  exact h₀\n", "restated_changed")
    assert "the given one is checked" in weaker.note
    renamed = extract("theorem easy : True := by\n  trivial")
    assert renamed.method == "restated_changed" and renamed.proof == "\n  trivial"
    command = build_command(HEADER, STATEMENT, weaker.proof, NAME)
    assert command.text.startswith(STATEMENT.rstrip("\n") + "\n  exact h₀")  # the given statement


def test_no_proof_is_found_in_empty_or_comment_only_text():
    assert extract("").proof is None
    assert extract("   -- nothing here\n```").proof is None
    assert extract(f"```lean4\n{STATEMENT}```").proof is None


def test_mask_hides_comments_strings_and_quoted_names_only():
    text = "simp -- sorry\n/- a /- nested -/ sorry -/ \"sorry\" «sorry» h' 'x' done"
    masked = mask(text)
    assert len(masked) == len(text) and "sorry" not in masked
    assert masked.startswith("simp ") and masked.endswith("h'     done")


# -- screening ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "proof, reason",
    [
        ("  sorry", "uses `sorry`"),
        ("  admit", "uses `admit`"),
        ("  exact sorryAx _ false", "sorryAx"),
        ("  linarith\n\naxiom cheat : False", "`axiom`"),
        ("  linarith\n\ntheorem mathd_algebra_10' : True := trivial", "`theorem`"),
        ("  exact foo\n\ndef foo := 1", "`def`"),
        ("  decide\n\nexample : True := trivial", "`example`"),
        ("  norm_num\n#exit", "`#exit`"),
        ('  norm_num\n#eval IO.println "{}"', "`#eval`"),
        ("  norm_num\n#print axioms mathd_algebra_10", "`#print`"),
        ("  native_decide", "`native_decide`"),
        ("  exact Lean.ofReduceBool _ _ rfl", "ofReduceBool"),
        ("  run_tac Lean.Elab.admitGoal", "`run_tac`"),
        ("  exact (by_elab pure default)", "`by_elab`"),
        ('  norm_num\nmacro "cheat" : tactic => `(tactic| sorry)', "`macro`"),
        ("  norm_num\nmacro_rules | `(tactic| linarith) => `(tactic| sorry)", "`macro_rules`"),
        ('  norm_num\nelab "x" : tactic => pure ()', "`elab`"),
        ('  norm_num\nlocal notation "two" => 3', "`local`"),
        ('  norm_num\nnotation "two" => 3', "`notation`"),
        ("  norm_num\nend\nnamespace X", "`end`"),
        ("  norm_num\nattribute [simp] foo", "`attribute`"),
        ("  norm_num\n@[implemented_by foo] opaque bar : Nat", "`implemented_by`"),
        ("  norm_num\ninstance : Fact False := ⟨sorry⟩", "`instance`"),
        ("  norm_num\nunsafe def x := 1", "`unsafe`"),
        ("  exact unsafeCast ()", "unsafeCast"),
        ("  set_option debug.skipKernelTC true in\n  linarith", "debug.skipKernelTC"),
        ("  norm_num\nset_option pp.all true in\n#check 1", "`#check`"),
        ("  exact (IO.Process.exit 0)", "IO."),
        ("  have := 1\n  decreasing_by sorry", "uses `sorry`"),
        ("  norm_num\nimport Mathlib", "`import`"),
        ('  have : String := s!"{(by_elab pure default : String)}"\n  norm_num', "`by_elab`"),
        ('  have h : "sorry".length = 5 := rfl\n  linarith', "uses `sorry`"),  # strings are read
    ],
)
def test_commands_metaprograms_and_cheats_are_refused(proof, reason):
    refused = screen_proof(proof)
    assert refused is not None and reason in refused


@pytest.mark.parametrize(
    "proof",
    [
        "  nlinarith [sq_nonneg (x - 2), h₀]",
        "  -- by the theorem of sorry, admit nothing\n  linarith",
        "  /- an axiom? no: `sorry` only in a comment -/\n  norm_num [Finset.sum_range_succ]",
        "  open Real in\n  simp [Real.sqrt_eq_iff]",
        "  set_option maxRecDepth 10000 in\n  decide",
        "  set_option maxHeartbeats 400000 in\n  norm_num",
        "  apply Nat.le_of_lt_succ\n  exact Nat.lt_succ_self _",
        "  infer_instance",
        "  simp only [Finset.card_range, Nat.Prime]\n  <;> omega",
        "  exact?",
        "  rcases h₀ with ⟨a, rfl⟩\n  · simp\n  · ring_nf",
    ],
)
def test_ordinary_tactic_proofs_pass_the_screen(proof):
    assert screen_proof(proof) is None


# -- the command -----------------------------------------------------------------------------
def test_the_command_is_the_given_statement_the_proof_and_the_axioms_check():
    command = build_command(HEADER, STATEMENT, "\n  linarith\n", NAME)
    assert command.text == f"{STATEMENT}  linarith\n\n#print axioms {NAME}\n"
    lines = command.text.split("\n")
    own = next(i for i, line in enumerate(lines) if line.startswith("#print")) + 1
    full = (HEADER + command.text).split("\n")
    whole = next(i for i, line in enumerate(full) if line.startswith("#print")) + 1
    assert own in command.axioms_lines and whole in command.axioms_lines
    assert command.full_text == HEADER + command.text
    with pytest.raises(ValueError, match="does not end with"):
        build_command(HEADER, "theorem t : True := trivial\n", "", "t")


# -- verdicts from REPL answers --------------------------------------------------------------
COMMAND = build_command(HEADER, STATEMENT, "\n  linarith\n", NAME)
AXIOMS_LINE = min(COMMAND.axioms_lines)


def axioms_message(text: str, line: int = AXIOMS_LINE) -> dict:
    return {
        "severity": "info",
        "pos": {"line": line, "column": 0},
        "endPos": {"line": line, "column": 6},
        "data": text,
    }


OK = axioms_message(f"'{NAME}' depends on axioms: [propext, Classical.choice, Quot.sound]")


def test_a_clean_answer_is_correct():
    assert judge_response({"env": 3, "messages": [OK]}, COMMAND).status == "correct"
    free = axioms_message(f"'{NAME}' does not depend on any axioms")
    check = judge_response({"env": 3, "messages": [free]}, COMMAND)
    assert check.status == "correct" and "axioms: none" in check.detail
    lint = {
        "severity": "warning",
        "pos": {"line": 2, "column": 2},
        "endPos": None,
        "data": "unused variable `h₀`",
    }
    assert judge_response({"env": 3, "messages": [lint, OK]}, COMMAND).status == "correct"


def test_errors_sorries_and_extra_axioms_are_incorrect():
    error = {
        "severity": "error",
        "pos": {"line": 2, "column": 2},
        "endPos": {"line": 2, "column": 10},
        "data": "linarith failed to find a contradiction",
    }
    check = judge_response({"env": 3, "messages": [error, OK]}, COMMAND)
    assert check.status == "incorrect" and "linarith failed" in check.detail
    warning = {
        "severity": "warning",
        "pos": {"line": 1, "column": 8},
        "endPos": {"line": 1, "column": 24},
        "data": "declaration uses 'sorry'",
    }
    assert "sorry" in judge_response({"env": 3, "messages": [warning, OK]}, COMMAND).detail
    sorries = [
        {
            "proofState": 0,
            "pos": {"line": 2, "column": 2},
            "goal": "⊢ x = 2",
            "endPos": {"line": 2, "column": 7},
        }
    ]
    assert (
        judge_response({"env": 3, "sorries": sorries, "messages": [OK]}, COMMAND).status
        == "incorrect"
    )
    hidden = axioms_message(f"'{NAME}' depends on axioms: [propext, sorryAx]")
    assert "sorryAx" in judge_response({"env": 3, "messages": [hidden]}, COMMAND).detail
    native = axioms_message(f"'{NAME}' depends on axioms: [propext, Lean.ofReduceBool]")
    check = judge_response({"env": 3, "messages": [native]}, COMMAND)
    assert check.status == "incorrect" and "Lean.ofReduceBool" in check.detail
    own = axioms_message(f"'{NAME}' depends on axioms: [propext, cheat]")
    assert "cheat" in judge_response({"env": 3, "messages": [own]}, COMMAND).detail


def test_an_axioms_answer_from_elsewhere_does_not_count():
    # the proof cannot print its own report: only the one at our line is read
    early = axioms_message(f"'{NAME}' does not depend on any axioms", line=2)
    check = judge_response({"env": 3, "messages": [early]}, COMMAND)
    assert check.status == "incorrect" and "gave no answer" in check.detail
    other = axioms_message("'other' does not depend on any axioms")
    assert judge_response({"env": 3, "messages": [other]}, COMMAND).status == "incorrect"
    assert judge_response({"env": 3}, COMMAND).status == "incorrect"


def test_answers_that_are_not_the_repl_protocol_are_infrastructure_failures():
    with pytest.raises(ProtocolError, match="Unknown environment"):
        judge_response({"message": "Unknown environment."}, COMMAND)
    with pytest.raises(ProtocolError, match="unrecognised"):
        judge_response({"env": 1, "messages": [axioms_message(f"'{NAME}' uses: propext")]}, COMMAND)
    with pytest.raises(ProtocolError):
        judge_response(["not", "an", "object"], COMMAND)
    with pytest.raises(ProtocolError):
        judge_response({"env": 1, "messages": "oops"}, COMMAND)
