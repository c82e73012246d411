"""``sidecar webhooks sign|verify`` as a script would use them, checked against stripe and standardwebhooks."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import standardwebhooks
import stripe
from click.testing import CliRunner

from sidecar.app import open_stores, store_options
from sidecar.cli import main
from sidecar.domain.signatures import new_secret
from sidecar.settings import Settings
from sidecar.webhook_models import Delivery, DeliveryAttempt, DeliveryStatus
from tests.redis_fixtures import free_port

BODY = b'{"event":{"op":"UPDATE"},"id":"7a1c"}'
SECRET, OTHER = new_secret(), new_secret()


def run(*args: str, body: bytes = BODY) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["webhooks", *args], input=body)
    return result.exit_code, result.stdout, result.stderr


def test_sign_prints_a_header_stripe_verifies() -> None:
    code, out, _ = run("sign", "--secret", SECRET)
    assert code == 0
    name, value = out.strip().split(": ", 1)
    assert name == "Stateset-Signature"
    assert stripe.WebhookSignature.verify_header(BODY, value, SECRET, tolerance=300)


def test_sign_with_two_secrets_and_a_fixed_timestamp() -> None:
    code, out, _ = run("sign", "--secret", SECRET, "--secret", OTHER, "--timestamp", "1767225600", "--json")
    assert code == 0
    header = json.loads(out)["Stateset-Signature"]
    assert header.startswith("t=1767225600,v1=")
    assert header.count("v1=") == 2


def test_sign_standard_headers_verify_with_standardwebhooks(tmp_path: Path) -> None:
    secret_file = tmp_path / "secrets"
    secret_file.write_text(f"{SECRET}\n\n")
    code, out, _ = run("sign", "--format", "standard", "--secret-file", str(secret_file), "--id", "msg_42", "--json")
    assert code == 0
    headers = json.loads(out)
    assert headers["webhook-id"] == "msg_42"
    assert standardwebhooks.Webhook(SECRET).verify(BODY, headers)["id"] == "7a1c"


def test_verify_accepts_stripes_header_bare_or_named() -> None:
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET)
    assert run("verify", "--secret", OTHER, "--secret", SECRET, "--header", header)[0] == 0
    code, out, _ = run("verify", "--secret", SECRET, "--header", f"Stateset-Signature: {header}", "--json")
    assert code == 0
    assert json.loads(out)["valid"] is True


def test_verify_standardwebhooks_signature() -> None:
    moment = datetime.now(UTC)
    now = int(moment.timestamp())
    signature = standardwebhooks.Webhook(SECRET).sign("msg_1", moment, BODY)
    args = ["--header", "webhook-id: msg_1", "--header", f"webhook-timestamp: {now}"]
    code, out, _ = run(
        "verify", "--format", "standard", "--secret", SECRET, *args, "--header", f"webhook-signature: {signature}"
    )
    assert code == 0, out


@pytest.mark.parametrize(
    ("args", "body", "reason"),
    [
        ([], BODY, "missing_header"),
        (["--header", "t=1,v1"], BODY, "malformed_header"),
        (["--header", "t=100,v1=" + "0" * 64], BODY, "timestamp_outside_tolerance"),
        (["--header", "t={now},v1=abcd"], BODY, "no_matching_signature"),
        (["--header", "{signed}"], BODY + b"\n", "no_matching_signature"),
    ],
)
def test_verify_exits_1_with_the_reason(args: list[str], body: bytes, reason: str) -> None:
    signed = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET)
    args = [a.format(now=int(time.time()), signed=signed) for a in args]
    code, _, err = run("verify", "--secret", SECRET, *args, body=body)
    assert code == 1
    assert reason in err
    assert SECRET not in err
    code, out, _ = run("verify", "--secret", SECRET, *args, "--json", body=body)
    assert code == 1
    assert json.loads(out)["reason"] == reason


def test_verify_as_of_a_given_time_with_a_tolerance() -> None:
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET, timestamp=1000)
    assert run("verify", "--secret", SECRET, "--header", header, "--now", "1300")[0] == 0
    assert run("verify", "--secret", SECRET, "--header", header, "--now", "1301")[0] == 1
    assert run("verify", "--secret", SECRET, "--header", header, "--now", "1301", "--tolerance", "600")[0] == 0


def test_the_tolerance_defaults_to_the_setting() -> None:
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET, timestamp=1000)
    args = ["verify", "--secret", SECRET, "--header", header, "--now", "1500"]
    assert run(*args)[0] == 1
    result = CliRunner().invoke(main, ["webhooks", *args], input=BODY, env={"SIDECAR_WEBHOOK__TOLERANCE_S": "600"})
    assert result.exit_code == 0, result.output


def verify_in_redis(redis_url: str, *args: str, body: bytes = BODY) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        ["webhooks", "verify", "--refuse-replays", "--json", *args],
        input=body,
        env={"SIDECAR_REDIS_URL": redis_url},
    )
    return result.exit_code, result.stdout


def test_refuse_replays_remembers_in_redis_across_runs(redis_url: str) -> None:
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET)
    assert verify_in_redis(redis_url, "--secret", SECRET, "--header", header)[0] == 0
    code, out = verify_in_redis(redis_url, "--secret", SECRET, "--header", header)
    assert code == 1
    assert json.loads(out)["reason"] == "replayed"
    # another body at the same second is another delivery
    other = b'{"id":"other"}'
    header = stripe.WebhookSignature.generate_signature_header(other.decode(), SECRET)
    assert verify_in_redis(redis_url, "--secret", SECRET, "--header", header, body=other)[0] == 0


def test_refuse_replays_takes_a_standard_retry(redis_url: str) -> None:
    now = int(time.time())
    for stamp in (now - 60, now):
        signature = standardwebhooks.Webhook(SECRET).sign("msg_r", datetime.fromtimestamp(stamp, UTC), BODY)
        args = ["--header", "webhook-id: msg_r", "--header", f"webhook-timestamp: {stamp}"]
        code, out = verify_in_redis(
            redis_url, "--format", "standard", "--secret", SECRET, *args, "--header", f"webhook-signature: {signature}"
        )
        assert code == 0, out


def test_refuse_replays_needs_redis() -> None:
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET)
    code, _, err = run("verify", "--refuse-replays", "--secret", SECRET, "--header", header)
    assert code == 2
    assert "SIDECAR_REDIS_URL" in err


def test_refuse_replays_fails_closed_when_redis_is_down() -> None:
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET)
    code, out = verify_in_redis(f"redis://127.0.0.1:{free_port()}/0", "--secret", SECRET, "--header", header)
    assert code == 1
    assert json.loads(out)["reason"] == "replay_guard_unavailable"


def test_usage_errors_exit_2() -> None:
    assert run("sign")[0] == 2
    assert run("sign", "--secret", "whsec_***", "--format", "standard")[0] == 2
    assert run("verify", "--secret", SECRET, "--format", "standard", "--header", "no colon")[0] == 2


@pytest.mark.parametrize("command", ["sign", "verify"])
def test_help(command: str) -> None:
    code, out, _ = run(command, "--help")
    assert code == 0
    assert "--format" in out
    assert "--secret" in out


# --- endpoints ------------------------------------------------------------------------------


def cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["webhooks", "endpoints", *args], env={"SIDECAR_DATA_DIR": str(tmp_path)})
    return result.exit_code, result.stdout + result.stderr


def test_endpoints_create_list_roll_delete(tmp_path: Path) -> None:
    code, out = cli(
        tmp_path, "create", "--url", "https://example.com/h", "--event", "orders_insert", "--event", "public.orders"
    )
    assert code == 0, out
    assert "whsec_" in out
    assert "will not be shown again" in out
    code, out = cli(tmp_path, "list", "--json")
    assert code == 0
    [endpoint] = json.loads(out)["data"]
    assert endpoint["events"] == ["orders_insert", "public.orders"]
    assert "whsec_" not in out
    code, out = cli(tmp_path, "roll", endpoint["id"], "--expires-in", "60", "--json")
    assert code == 0
    rolled = json.loads(out)
    assert rolled["secret"].startswith("whsec_")
    assert len(rolled["secrets"]) == 2
    code, out = cli(tmp_path, "delete", endpoint["id"])
    assert code == 0
    assert f"deleted {endpoint['id']}" in out
    assert cli(tmp_path, "list")[1].strip() == "no webhook endpoints"
    code, out = cli(tmp_path, "delete", endpoint["id"])
    assert code == 1
    assert "no webhook endpoint" in out


def test_endpoints_create_in_an_org_or_every_org(tmp_path: Path) -> None:
    made = {}
    for name, args in {"default": [], "org": ["--org", "org_x"], "every": ["--all-orgs"]}.items():
        code, out = cli(tmp_path, "create", "--url", "https://example.com/h", *args, "--json")
        assert code == 0, out
        made[name] = json.loads(out)
    assert made["default"]["org_id"] == "org_default"  # SIDECAR_DEFAULT_ORG_ID
    assert made["org"]["org_id"] == "org_x"
    assert (made["every"]["org_id"], made["every"]["all_orgs"]) == (None, True)
    code, out = cli(tmp_path, "create", "--url", "https://example.com/h", "--org", "o", "--all-orgs")
    assert code == 1
    assert "not both" in out


def test_endpoints_create_refuses_a_bad_url(tmp_path: Path) -> None:
    code, out = cli(tmp_path, "create", "--url", "ftp://example.com")
    assert code == 1
    assert "http or https" in out


def test_endpoints_show_and_update(tmp_path: Path) -> None:
    code, out = cli(tmp_path, "create", "--url", "https://example.com/h", "--json")
    created = json.loads(out)
    code, out = cli(tmp_path, "show", created["id"])
    assert code == 0, out
    assert "https://example.com/h" in out
    assert created["secret"] not in out
    code, out = cli(
        tmp_path,
        "update",
        created["id"],
        "--url",
        "https://example.com/new",
        "--event",
        "public.orders",
        "--format",
        "standard",
        "--disable",
        "--json",
    )
    assert code == 0, out
    updated = json.loads(out)
    assert (updated["url"], updated["events"], updated["format"], updated["enabled"]) == (
        "https://example.com/new",
        ["public.orders"],
        "standard",
        False,
    )
    code, out = cli(tmp_path, "update", created["id"], "--enable", "--description", "ERP", "--json")
    assert (json.loads(out)["enabled"], json.loads(out)["description"], json.loads(out)["url"]) == (
        True,
        "ERP",
        "https://example.com/new",
    )
    code, out = cli(tmp_path, "show", created["id"], "--json")
    assert json.loads(out)["format"] == "standard"


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["update", "{id}"], 2, "nothing to change"),
        (["update", "{id}", "--url", "http://169.254.169.254/"], 1, "ALLOW_PRIVATE_URLS"),
        (["update", "{id}", "--event", "drop table"], 1, "events"),
        (["update", "we_nope", "--enable"], 1, "no webhook endpoint"),
        (["show", "we_nope"], 1, "no webhook endpoint"),
        (["deliveries", "we_nope"], 1, "no webhook endpoint"),
    ],
)
def test_endpoints_show_update_deliveries_refuse_clearly(tmp_path: Path, args: list[str], code: int, text: str) -> None:
    created = json.loads(cli(tmp_path, "create", "--url", "https://example.com/h", "--json")[1])
    got, out = cli(tmp_path, *[a.format(id=created["id"]) for a in args])
    assert got == code, out
    assert text in out
    assert "Traceback" not in out


def test_endpoints_deliveries_lists_the_log(tmp_path: Path) -> None:
    created = json.loads(cli(tmp_path, "create", "--url", "https://example.com/h", "--json")[1])
    assert cli(tmp_path, "deliveries", created["id"])[1].strip() == "no deliveries"
    at = datetime(2026, 1, 1, tzinfo=UTC)

    async def record() -> None:
        async with open_stores(**store_options(Settings(data_dir=tmp_path))) as stores:
            delivery = Delivery("del_1", created["id"], "evt_1", "orders_insert", "public.orders", "INSERT", b"{}", at)
            await stores.deliveries.enqueue([delivery])
            attempt = DeliveryAttempt("del_1", 1, at, 503, "http_503", 12)
            await stores.deliveries.record_attempt(
                attempt, status=DeliveryStatus.PENDING, next_attempt_at=at + timedelta(seconds=5)
            )

    asyncio.run(record())
    code, out = cli(tmp_path, "deliveries", created["id"], "--json")
    assert code == 0, out
    [delivery] = json.loads(out)["data"]
    assert (delivery["id"], delivery["status"], delivery["attempts"]) == ("del_1", "pending", 1)
    assert [(a["status_code"], a["error"]) for a in delivery["log"]] == [(503, "http_503")]
    code, out = cli(tmp_path, "deliveries", created["id"])
    assert code == 0
    assert "del_1" in out
    assert "pending" in out


@pytest.mark.parametrize("command", ["create", "list", "show", "update", "roll", "delete", "deliveries"])
def test_endpoints_help(tmp_path: Path, command: str) -> None:
    code, out = cli(tmp_path, command, "--help")
    assert code == 0
    assert "--json" in out
