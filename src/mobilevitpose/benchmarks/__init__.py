"""Benchmarks that write their measurements to reports/, never timed tests."""
