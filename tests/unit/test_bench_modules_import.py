"""Every benchmark module imports: `make bench` and the A/B runs in docs/benchmarks.md run them
outside the suite, where a name moved from one module to another was found only by running them
(bench_pipeline imported `pct` from bench_system long after it had moved)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bench

MODULES = sorted(info.name for info in pkgutil.iter_modules(bench.__path__) if not info.name.startswith("_"))


def test_the_benchmarks_are_all_found() -> None:
    assert {"bench_system", "bench_pipeline", "bench_append", "bench_e2e"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_a_benchmark_module_imports(name: str) -> None:
    importlib.import_module(f"bench.{name}")
