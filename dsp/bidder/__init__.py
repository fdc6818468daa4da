"""The bid path: OpenRTB in, a decision, a BidResponse out."""
