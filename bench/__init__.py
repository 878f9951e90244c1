"""Benchmarks: each prints its measurement beside a floor measured in the same run."""
