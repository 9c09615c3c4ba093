"""Figures: one function per figure, data in, matplotlib Figure out (Agg canvas, no pyplot)."""
