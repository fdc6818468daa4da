"""Infrastructure shared by the DSP, the DMP and the exchange simulator: Redis, keys, settings."""
