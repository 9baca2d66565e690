"""Engines: exact computation inside the holder's domain."""

from .base import AggregateRequest, Bounding, Engine, Measure, Ordinals, Source
from .duckdb import DuckDBEngine
from .spark import SparkEngine  # imports pyspark only when first used

__all__ = ["AggregateRequest", "Bounding", "Engine", "Measure", "Ordinals", "Source", "DuckDBEngine",
           "SparkEngine"]
