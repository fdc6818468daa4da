"""Budgets that are never overspent, and the pacing that spreads them over the day.

Money moves in three places, each bounded by the one above it:

1. Redis holds, per campaign, what was charged (total and per day in the advertiser's zone)
   and the *leases*: slices of the budget granted to bidder processes. A Lua script grants a
   lease only what ``budget - charged - unspent parts of the other live leases`` allows, and
   never more than ``budget_lease_bp`` of the daily budget unspent at once (``leases.py``).
2. Each process keeps an *account* per campaign on its lease (``accounts.py``). A bid
   reserves its highest cost (CPM / 1000) from it synchronously: no Redis call on the bid
   path. A reservation ends when its win is charged, when a loss notice comes, or after
   ``notice_timeout_s`` (then the bid counts as lost).
3. The win (or billing) notice charges the lease named in its signed link, once, in the
   tracking ledger's Lua script, and queues the settlement for the owning process, which
   drains it on its next refresh (``keeper.py``).

A lease is renewed by its process's refresher; when the process dies the lease lapses after
``budget_lease_ttl_s`` and its unspent part is the budget's again. The ledger caps a charge at
what the budget has left, so even a win arriving after its lease lapsed cannot overspend: the
excess is recorded as overdelivery, not charged.

``pacing.py`` holds the even-pacing controller, ``simulation.py`` a simulated day to tune and
test it with, ``pacing_cli.py`` the ``dsp pacing-sim`` command.
"""
