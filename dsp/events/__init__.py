"""The event log: bid, win, loss, impression and click events, their archive and counts."""
