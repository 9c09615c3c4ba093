"""monkeyflow: repeated-sampling experiments (Large Language Monkeys) as a reproducible workflow."""

__version__ = "0.1.0"
