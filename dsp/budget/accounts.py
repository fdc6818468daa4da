"""One process's money on one campaign for one budget day: its lease and the bids on it.

Everything here is synchronous and O(1) per bid: the bid path reserves without any I/O.
The invariant is ``charged + reserved <= granted`` except for wins settled after their
reservation ended (late, or after a loss notice), which the ledger's budget cap covers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

BidKey = tuple[str, str]  # (auction id, imp id)


@dataclass(slots=True)
class Account:
    campaign_id: str
    day: str
    lease: str
    cap: int  # the most the lease may hold unspent
    daily_micros: int  # the campaign's budgets, as last read
    total_micros: int
    granted: int = 0  # as Redis last answered
    charged: int = 0  # charges settled against this account, as drained
    reserved: int = 0
    spending: bool = True  # False: winding down, no new bids, the lease gives back
    renewed_at: float = float("-inf")  # monotonic time of the last lease order
    renew_every_s: float = 0.0  # the lease is renewed this long after its last order
    reservations: dict[BidKey, tuple[int, float]] = field(default_factory=dict)
    _deadlines: deque[tuple[float, BidKey]] = field(default_factory=deque)

    @property
    def available(self) -> int:
        return self.granted - self.charged - self.reserved

    def reserve(self, key: BidKey, amount: int, deadline: float) -> bool:
        """Set ``amount`` aside for a bid until ``deadline`` (monotonic), if there is enough."""
        if key in self.reservations:
            return True  # the same auction's imp asked again: one win at most, one reservation
        if not self.spending or self.available < amount:
            return False
        self.reserved += amount
        self.reservations[key] = (amount, deadline)
        self._deadlines.append((deadline, key))
        return True

    def release(self, key: BidKey) -> bool:
        """End a reservation without a charge (a loss); False if it had already ended."""
        reservation = self.reservations.pop(key, None)
        if reservation is None:
            return False
        self.reserved -= reservation[0]
        return True

    def settle(self, key: BidKey, amount: int) -> bool:
        """Book a charge for a bid; False when its reservation had already ended (late)."""
        self.charged += amount
        return self.release(key)

    def expire(self, now: float) -> int:
        """End reservations past their deadline (the bids count as lost); how many ended."""
        ended = 0
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, key = deadlines.popleft()
            reservation = self.reservations.get(key)
            if reservation is not None and reservation[1] == deadline:
                self.release(key)
                ended += 1
        return ended
