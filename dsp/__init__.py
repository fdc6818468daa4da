"""The DSP: bidder, tracking, advertiser API and reporting."""
