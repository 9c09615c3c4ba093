"""Text helpers shared by datasets (reference answers) and verifiers (model answers)."""
