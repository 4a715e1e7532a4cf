"""Dock panels: the controls for each stage (layers, box editor, and those later issues add)."""
