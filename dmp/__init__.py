"""The DMP: device identity, tag taxonomy, profiles, ingest, audiences, real-time tags."""
