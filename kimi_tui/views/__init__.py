"""What the panels show, computed without a terminal.

The TUI's panels keep only widgets, keys and messages; the rows and numbers they display are
built here, so they can be tested (and reused by scripts) without textual. Nothing here imports
textual or kimi_tui.tui (.importlinter), and nothing heavy at import time: the TUI imports these
modules on its first frame.
"""
