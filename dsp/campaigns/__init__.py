"""Campaigns: the advertiser's model, its storage, and the index the bidder compiles from it."""
