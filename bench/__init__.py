"""Benchmarks of the platform: ``python -m bench`` (``make bench``).

Each group starts what it measures (an embedded Redis, a bidder process, servers of
reference) on loopback, stops it again, and reports figures by name; the run ends with a
table and ``bench-results.json`` at the repository root, one flat object name -> number.
"""
