"""`motcua simulate`: counters and officers of many units at work, over the real HTTP APIs.

Who: the one-stop units of today's map (docs/reference-data.md): since 1 July 2025 the 34
provinces' provincial centers and their communes' centers. `--units N` units spread across the
provinces (one per province in turn, in an order drawn from the seed; a province's second unit
is its provincial center) are the only receiving units; each receives the procedures of its
level under the map (a commune center also the former district-level ones). A commune center
receives some dossiers of another commune of its province, whose center then processes them
(Decree 118/2025/NĐ-CP: reception regardless of administrative boundary within the province).

When: `--rate` is the mean number of dossiers per second. Arrivals are a Poisson process
(exponential gaps) whose intensity follows a compressed working day: `DAY_SECONDS` of wall time
stand for 07:00–17:00, with a morning peak around 09:00, a lunch dip and a smaller afternoon peak
around 14:00 (`DAY_PROFILE`, mean 1, so over whole days the rate is `--rate`).

What: each dossier's fate is decided up front by its own generator, seeded by (seed, index), so
dossier i's plan and delays never depend on how the concurrent tasks interleave. Officers of the
competent unit act through the processing API after delays of up to `--pace` seconds (time is
compressed): some transfer the dossier to a unit in force of the same level in another
province (liên thông), some ask for a supplement, a few ask twice (late at once, by the index
rule) and then issue an apology with a new appointment, fee-bearing procedures get a fee request
that the counter records as paid, most approve, some refuse, some digitize a paper result later;
counters return results and applicants rate.

`--write-import` writes the same kind of traffic (the same shares of each fate), at every unit in
force and over past working days, as a historical import file: the last `--days` days, or
`--days` days from `--as-of`, each day at the units of the map in force that day (`--as-of
2024-05-01` writes history on the 63-province map).
"""

from tools.simulate.history import write_history
from tools.simulate.live import Outcome, Simulation, now
from tools.simulate.plan import (
    DAY_SECONDS,
    Network,
    Plan,
    arrivals,
    choose_units,
    dossier_rng,
    expected_arrivals,
    plan_dossier,
)

__all__ = [
    "DAY_SECONDS",
    "Network",
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
