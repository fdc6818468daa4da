"""The ADX simulator: synthetic supply, auctions, win notices, impressions and clicks."""
