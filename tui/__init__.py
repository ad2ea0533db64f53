"""The Textual terminal UI of mvcdb, installed as the subpackage mvcdb.tui (`mvcdb tui`)."""
