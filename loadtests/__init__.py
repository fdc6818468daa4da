"""Load tests: locust scenarios against the bidder and the runner that seeds and drives them."""
