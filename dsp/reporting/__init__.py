"""Reporting: CTR and spend from the counters tracking keeps."""
