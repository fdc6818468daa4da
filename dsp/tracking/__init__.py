"""Tracking: signed links, win notices, impression pixels, clicks, and the money they move."""
