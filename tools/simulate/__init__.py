"""`motcua simulate`: counters and officers of many units at work, over the real HTTP APIs.

Who: `--units N` units spread across the provinces (one per province in turn, in an order drawn
from the seed) are the only receiving units; each receives procedures of its own level.

When: `--rate` is the mean number of dossiers per second. Arrivals are a Poisson process
(exponential gaps) whose intensity follows a compressed working day: `DAY_SECONDS` of wall time
stand for 07:00–17:00, with a morning peak around 09:00, a lunch dip and a smaller afternoon peak
around 14:00 (`DAY_PROFILE`, mean 1, so over whole days the rate is `--rate`).

What: each dossier's fate is decided up front by its own generator, seeded by (seed, index), so
dossier i's plan and delays never depend on how the concurrent tasks interleave. Officers of the
competent unit act through the processing API after delays of up to `--pace` seconds (time is
compressed): some transfer the dossier to a unit of the same level in another province
(liên thông), some ask for a supplement, a few ask twice (late at once, by the index rule) and
then issue an apology with a new appointment, fee-bearing procedures get a fee request that the
counter records as paid, most approve, some refuse, some digitize a paper result later; counters
return results and applicants rate.

`--write-import` writes the same kind of traffic (the same shares of each fate), at every unit and
over past working days, as a historical import file.
"""

from tools.simulate.history import write_history
from tools.simulate.live import Outcome, Simulation, now
from tools.simulate.plan import (
    DAY_SECONDS,
    Plan,
    arrivals,
    choose_units,
    dossier_rng,
    expected_arrivals,
    plan_dossier,
)

__all__ = [
    "DAY_SECONDS",
    "Outcome",
    "Plan",
    "Simulation",
    "arrivals",
    "choose_units",
    "dossier_rng",
    "expected_arrivals",
    "now",
    "plan_dossier",
    "write_history",
]
