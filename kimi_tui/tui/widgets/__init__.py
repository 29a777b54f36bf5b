"""Reusable widgets of the workbench that the stock Textual widgets do not cover."""
