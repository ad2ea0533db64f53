# One command for everything CI checks: `make check` (format, lint, types, tests).
.PHONY: check format lint types test quick bench

check: format lint types test

format:
	ruff format --check .

lint:
	ruff check .

types:
	mypy

test:
	pytest

quick:
	pytest -m "not slow"

bench:
	python -m benchmarks --quick
