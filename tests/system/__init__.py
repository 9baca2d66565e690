"""System tests: the public API end to end on real DuckDB, SQLite and OpenDP.

A package (rather than loose modules) so that test file names here never clash with
same-named files in tests/unit/.
"""
