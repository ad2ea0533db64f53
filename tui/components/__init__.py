"""Widgets and screens of the mvcdb TUI, one a module."""
