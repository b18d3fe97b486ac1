"""The receipt intake writes directly is the Receipt model's own JSON, byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.intake.api import Receipt, receipt_json
from services.intake.store import StoredDossier
from shared.contract import DossierStatus

instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)


@given(
    dossier=st.builds(
        StoredDossier,
        id=st.uuids(),
        code=st.text(min_size=1),
        receiving_unit=st.text(min_size=1),
        competent_unit=st.text(min_size=1),
        procedure_code=st.text(min_size=1),
        channel=st.sampled_from(["in_person", "online", "postal"]),
        received_at=instants,
        appointment_at=st.none() | instants,
        status=st.sampled_from([int(s) for s in DossierStatus]),
        rated=st.booleans(),
        refusal_reason=st.none() | st.text(),
        request_hash=st.none() | st.text(),
    )
)
def test_the_written_receipt_is_the_models_json(dossier: StoredDossier) -> None:
    assert receipt_json(dossier) == Receipt.of(dossier).model_dump_json().encode()
