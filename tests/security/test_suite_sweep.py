"""After the whole suite, no national ID or tax number rests anywhere in clear (issue 14).

Runs last (tests/conftest.py orders it so). The suite typed thousands of IDs into submissions,
imports, free-text reasons, malformed requests and raw records; this reads every place they could
have landed: every record of every topic of the session's broker, every row of every table of
every database of its PostgreSQL (and of the tests' own servers, swept before they stopped), every
service's log and the database server's log, every /metrics page a service served before it
stopped, every answer and error body the services gave, and what the command line printed. See
tests/pii_sweep.py for what counts as "in clear".
"""

from __future__ import annotations

import pytest

from tests.conftest import Platform
from tests.pii_sweep import LEDGER, masked, sweep_files, sweep_servers

pytestmark = [pytest.mark.integration, pytest.mark.sweep]


async def test_after_the_suite_no_national_id_or_tax_number_is_anywhere_in_clear(
    platform: Platform,
) -> None:
    if not LEDGER.seen.get("tests"):
        pytest.skip("the sweep reads what the other tests left: run it with them")
    await sweep_servers(platform.kafka.bootstrap, platform.postgres.dsn)
    sweep_files(
        {
            **LEDGER.logs,
            platform.postgres.data_dir / "postgres.log": "log of PostgreSQL",
            platform.kafka.data_dir / "logs" / "server.log": "log of Kafka",
        }
    )
    swept = ", ".join(f"{n} {kind}" for kind, n in sorted(LEDGER.seen.items()))
    print(f"swept after {swept}; {len(LEDGER.known)} distinct ID-like numbers typed")

    # The sweep looked where the services write, whenever services ran.
    if LEDGER.seen.get("log files"):
        for kind in ("topic records", "table rows", "/metrics pages", "answers"):
            assert LEDGER.seen.get(kind), f"the sweep read no {kind}"
    found = {where: sorted(map(masked, numbers)) for where, numbers in LEDGER.findings.items()}
    assert found == {}, f"{len(found)} places hold IDs in clear (first digits shown)"
