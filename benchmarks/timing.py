"""Wall-clock timing shared by the benchmarks: segany's own (`segany.evaluation.timing`)."""

from segany.evaluation.timing import time_calls

__all__ = ["time_calls"]
