"""The AsyncAPI documents (docs/asyncapi/): generated from the services, valid, the contract's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from faststream.kafka import TestKafkaBroker
from pydantic import BaseModel, TypeAdapter

from shared.asyncapi import DOSSIER_EVENT
from shared.consumer import subscribe_batches
from shared.contract import DossierEvent, StatusEvent, Topics
from shared.kafka import make_broker

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "asyncapi"
NAMES = ("motcua", "intake", "processing", "metrics")
FASTSTREAM_DOCS_GEN = (sys.executable, "-m", "faststream", "docs", "gen")
PARSER = Path(__file__).resolve().parent / "asyncapi_parser"
PARSER_DIR = Path(
    os.environ.get("MOTCUA_ASYNCAPI_PARSER_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "motcua/asyncapi-parser"
)

TOPICS = Topics()
DOSSIER, STATUS, DEAD = TOPICS.all()
# What each service writes and reads: the ACLs its Kafka user needs, and no more.
ACCESS = {
    "intake": {(DOSSIER, "send"), (STATUS, "receive")},
    "processing": {(DOSSIER, "receive"), (STATUS, "send"), (DEAD, "send")},
    "metrics": {(STATUS, "receive"), (DEAD, "send")},
}


def event_types(union: Any) -> set[str]:
    """The `type` of every event model of a discriminated union of the contract."""
    (members, *_) = typing.get_args(union)
    models: tuple[type[BaseModel], ...] = typing.get_args(members)
    return {str(m.model_fields["type"].default) for m in models}


def parse(*files: Path) -> list[dict[str, Any]]:
    """The official parser's verdict on each file (tests/ops/asyncapi_parser/validate.cjs)."""
    modules = PARSER_DIR / "node_modules"
    assert (modules / "@asyncapi/parser").is_dir(), (
        f"the AsyncAPI parser is not installed in {PARSER_DIR}: "
        "run tests/ops/asyncapi_parser/install.sh (bootstrap does)"
    )
    done = subprocess.run(
        ["node", str(PARSER / "validate.cjs"), *map(str, files)],
        env={**os.environ, "NODE_PATH": str(modules)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def problems(result: dict[str, Any]) -> list[dict[str, str]]:
    # Information and hints (e.g. "AsyncAPI 3.1.0 exists") are advice, not defects.
    return [d for d in result["diagnostics"] if d["severity"] in ("error", "warning")]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The documents as the command in docs/events.md writes them today."""
    out = tmp_path_factory.mktemp("asyncapi")
    texts = {}
    for name in NAMES:
        target = out / f"{name}.yaml"
        done = subprocess.run(
            [*FASTSTREAM_DOCS_GEN, f"tools.asyncapi:{name}", "--yaml", "--out", str(target)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        # FastStream warns (and keeps one) when two endpoints claim a channel or a schema name.
        assert "Warning" not in done.stderr, done.stderr
        texts[name] = target.read_text(encoding="utf-8")
    return texts


BROKEN_OPERATION = "processing.dossier-events.receive"


def broken_documents(into: Path) -> list[Path]:
    """The whole contract's document, broken three ways a hand edit could break it."""
    document = yaml.safe_load((DOCS / "motcua.yaml").read_text(encoding="utf-8"))

    wrong_action = json.loads(json.dumps(document))
    wrong_action["operations"][BROKEN_OPERATION]["action"] = "subscribe"  # AsyncAPI 2's verb
    dangling = json.loads(json.dumps(document))
    del dangling["components"]["messages"][f"{BROKEN_OPERATION}:SubscribeMessage"]
    untitled = json.loads(json.dumps(document))
    del untitled["info"]["title"]

    files = []
    for name, broken in (("action", wrong_action), ("dangling", dangling), ("info", untitled)):
        path = into / f"broken-{name}.yaml"
        path.write_text(yaml.safe_dump(broken, sort_keys=False), encoding="utf-8")
        files.append(path)
    return files


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The parser's verdicts on the committed documents and the broken ones (one run: the
    parser takes seconds to start)."""
    broken = broken_documents(tmp_path_factory.mktemp("broken"))
    results = parse(*(DOCS / f"{n}.yaml" for n in NAMES), *broken)
    return {Path(r["file"]).stem: r for r in results}


@pytest.mark.parametrize("name", NAMES)
def test_committed_document_is_what_the_services_declare(
    generated: dict[str, str], name: str
) -> None:
    committed = (DOCS / f"{name}.yaml").read_text(encoding="utf-8")
    assert committed == generated[name], (
        f"docs/asyncapi/{name}.yaml is stale: regenerate it with the command in docs/events.md"
    )


@pytest.mark.parametrize("name", NAMES)
def test_the_official_parser_accepts_the_document(
    parsed: dict[str, dict[str, Any]], name: str
) -> None:
    result = parsed[name]
    assert result["valid"], result["diagnostics"]
    assert problems(result) == []
    assert result["document"]["asyncapi"] == "3.0.0"


def test_every_topic_of_the_contract_is_a_channel(parsed: dict[str, dict[str, Any]]) -> None:
    channels = parsed["motcua"]["document"]["channels"]
    assert {c["address"] for c in channels} == set(TOPICS.all())


@pytest.mark.parametrize("service", sorted(ACCESS))
def test_each_service_document_says_what_it_writes_and_reads(
    parsed: dict[str, dict[str, Any]], service: str
) -> None:
    operations = parsed[service]["document"]["operations"]
    assert {(address, o["action"]) for o in operations for address in o["channels"]} == (
        ACCESS[service]
    )
    # The whole contract's document holds the same operations under the service's name.
    whole = parsed["motcua"]["document"]["operations"]
    mine = [o for o in whole if o["id"].startswith(f"{service}.")]
    assert {(a, o["action"]) for o in mine for a in o["channels"]} == ACCESS[service]


def test_payloads_are_the_contracts_events(parsed: dict[str, dict[str, Any]]) -> None:
    expected = {
        DOSSIER: ("DossierEvent", event_types(DossierEvent)),
        STATUS: ("StatusEvent", event_types(StatusEvent)),
    }
    assert expected[STATUS][1] == {"DossierStatusChanged", "DossierOverdue"}
    for channel in parsed["motcua"]["document"]["channels"]:
        (message,) = channel["messages"]
        if channel["address"] == DEAD:
            assert message["title"] == "DeadLetter"
            continue
        title, types = expected[channel["address"]]
        assert message["title"] == title, channel["id"]
        assert message["discriminator"] == "type", channel["id"]
        assert set(message["types"]) == types, channel["id"]


def test_event_schemas_are_the_models_schemas() -> None:
    """Every event and payload schema in the document is pydantic's schema of the contract's
    model, field for field: the document cannot drift from shared/contract.py."""
    components = yaml.safe_load((DOCS / "motcua.yaml").read_text(encoding="utf-8"))["components"]
    adapters: tuple[TypeAdapter[Any], ...] = (TypeAdapter(DossierEvent), TypeAdapter(StatusEvent))
    for adapter in adapters:
        definitions = adapter.json_schema()["$defs"]
        for name, schema in definitions.items():
            moved = json.loads(json.dumps(schema).replace("#/$defs/", "#/components/schemas/"))
            assert components["schemas"][name] == moved, name


def test_the_parser_rejects_a_broken_document(parsed: dict[str, dict[str, Any]]) -> None:
    # Each refused where it is broken, not for some other reason.
    where = {
        "broken-action": f"operations/{BROKEN_OPERATION}/action",
        "broken-dangling": f"operations/{BROKEN_OPERATION}/messages/0/$ref",
        "broken-info": "info",
    }
    for name, path in where.items():
        result = parsed[name]
        assert not result["valid"], name
        errors = [d["path"] for d in result["diagnostics"] if d["severity"] == "error"]
        assert path in errors, (name, result["diagnostics"])


async def test_a_documented_subscriber_still_hands_raw_records_to_its_handler() -> None:
    """Declaring the message schema must not validate: a malformed record reaches the handler,
    which dead-letters it, exactly as without the declaration."""

    async def deliver(**documentation: Any) -> list[bytes | None]:
        broker = make_broker("127.0.0.1:9092", "motcua-test")
        seen: list[bytes | None] = []

        async def handler(records: Any) -> None:
            # The in-memory test broker nests its batch one list deeper than aiokafka does.
            while isinstance(records, list) and records and isinstance(records[0], list):
                records = records[0]
            seen.extend(r.value for r in records)

        subscribe_batches(broker, DOSSIER, "motcua-test", handler, **documentation)
        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish(b"not json {", DOSSIER, key=b"k")
            await test_broker.publish(b'{"type": "NoSuchEvent"}', DOSSIER, key=b"k")
        return seen

    plain = await deliver()
    documented = await deliver(message=DOSSIER_EVENT, title="t", description="d")
    assert documented == plain == [b"not json {", b'{"type": "NoSuchEvent"}']
