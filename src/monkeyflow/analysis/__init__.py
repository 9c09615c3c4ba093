"""The paper's analysis: coverage with intervals, scaling fits, family alignment, cost,
precision of selection rules and the budget planner, plus the pass@k summary and its figure.

Each analysis is one module declaring an `Analysis` (`analysis.base`): what it reads, its
settings, `compute(runs, settings) -> {table: DataFrame}` and `draw(tables, settings, order)`.
`analysis.runner.run_analysis` reads the inputs, calls them and writes every file; the workflow
makes one rule per registered analysis (rules/analysis.smk). The math lives in
`monkeyflow.metrics`, the drawing in `monkeyflow.plots`.

A new analysis is one module and one line here (or an entry point in the group
`monkeyflow.analyses` of another package).
"""

from monkeyflow.analysis.base import ANALYSES, Analysis, RunData, Runs, curve_ks

ANALYSES.add("passk", "monkeyflow.analysis.passk:ANALYSIS")
ANALYSES.add("coverage_ci", "monkeyflow.analysis.coverage_ci:ANALYSIS")
ANALYSES.add("scaling_fit", "monkeyflow.analysis.scaling:ANALYSIS")
ANALYSES.add("family_alignment", "monkeyflow.analysis.alignment:ANALYSIS")
ANALYSES.add("cost", "monkeyflow.analysis.cost:ANALYSIS")
ANALYSES.add("precision", "monkeyflow.analysis.precision:ANALYSIS")
ANALYSES.add("plan", "monkeyflow.analysis.plan:ANALYSIS")

__all__ = ["ANALYSES", "Analysis", "RunData", "Runs", "curve_ks", "run_analysis"]


def __getattr__(name: str):
    # The runner imports polars and matplotlib; the workflow imports this package to parse, so
    # the runner is imported only when it is asked for.
    if name == "run_analysis":
        from monkeyflow.analysis.runner import run_analysis

        return run_analysis
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
