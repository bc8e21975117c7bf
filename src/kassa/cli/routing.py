"""`kassa routing` (a merchant's routing configurations: show, create from a file, activate,
backtest) and `kassa psp status` (each PSP account's breaker and success rate, read from a
running API's /metrics: that state lives in the API processes, not in the database)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from kassa.cli.database import database
from kassa.cli.process import run_async
from kassa.config import Settings

routing_app = typer.Typer(no_args_is_help=True,
                          help="A merchant's routing configurations (README: Routing).")
psp_app = typer.Typer(no_args_is_help=True, help="PSP accounts as the API processes see them.")

MERCHANT = typer.Option(..., "--merchant", help="the merchant's id (acct_…)")


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _fail(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(body, dict):
        raise _fail(f"{path}: a JSON object with rules and default_route is expected")
    return body


async def _with_kassa(settings: Settings, dsn: str, action: Any) -> Any:
    from kassa import bootstrap
    from kassa.domain.errors import KassaError

    kassa, close = await bootstrap.build(settings, dsn, pool_size=2)
    try:
        return await action(kassa)
    except KassaError as exc:
        where = f" ({exc.param})" if exc.param else ""
        raise _fail(f"refused: {exc.message}{where}") from None
    finally:
        await close()


@routing_app.command("show")
def routing_show(merchant: str = MERCHANT,
                 all_versions: bool = typer.Option(False, "--all", help="every version")
                 ) -> None:
    """Print the merchant's active configuration as JSON (exit 1 when none is active), or
    with --all every version, newest first."""
    settings = Settings()

    async def show(kassa: Any) -> Any:
        from kassa.db import routing_configs as routing_configs_db
        from kassa.representations.routing_configs import routing_config

        if all_versions:
            rows, _ = await routing_configs_db.list_configs(
                kassa.pool, merchant_id=merchant, limit=100, starting_after=None,
                ending_before=None)
            return [routing_config(r) for r in rows]
        row = await routing_configs_db.get_active(kassa.pool, merchant)
        return None if row is None else routing_config(row)

    with database(settings) as dsn:
        shown = run_async(_with_kassa(settings, dsn, show))
    if shown is None:
        raise _fail(f"{merchant} has no active routing configuration: payments go to "
                    f"{settings.default_psp}")
    typer.echo(json.dumps(shown, indent=2))


@routing_app.command("create")
def routing_create(file: Annotated[Path, typer.Argument(
                       help="JSON: {name?, rules, default_route}")],
                   merchant: str = MERCHANT) -> None:
    """Create a new (inactive) version from FILE; prints it. Activate it with
    `kassa routing activate`."""
    settings = Settings()
    body = _read_config(file)

    async def create(kassa: Any) -> Any:
        from kassa.services import routing_configs

        return await routing_configs.create(kassa, merchant_id=merchant, name=body.get("name"),
                                            rules=body.get("rules"),
                                            default_route=body.get("default_route"))

    with database(settings) as dsn:
        typer.echo(json.dumps(run_async(_with_kassa(settings, dsn, create)), indent=2))


@routing_app.command("activate")
def routing_activate(config_id: str = typer.Argument(..., help="rcfg_…"),
                     merchant: str = MERCHANT) -> None:
    """Route the merchant's new payments by this version (each API process within
    KASSA_ROUTING_CACHE_SECONDS)."""
    settings = Settings()

    async def activate(kassa: Any) -> Any:
        from kassa.services import routing_configs

        return await routing_configs.activate(kassa, merchant_id=merchant, config_id=config_id)

    with database(settings) as dsn:
        typer.echo(json.dumps(run_async(_with_kassa(settings, dsn, activate)), indent=2))


def _since(value: str) -> int:
    if value.isdigit():
        return int(value)
    try:
        return int(datetime.fromisoformat(value).timestamp())
    except ValueError:
        raise typer.BadParameter("unix seconds or an ISO 8601 date/time") from None


@routing_app.command("backtest")
def routing_backtest(config: Annotated[Path, typer.Option("--config",
                                                          help="candidate JSON file")],
                     since: str = typer.Option(..., "--since",
                                               help="unix seconds or ISO 8601 (2026-12-01)"),
                     merchant: str = MERCHANT,
                     limit: int = typer.Option(200_000, min=1, help="attempts read at most")
                     ) -> None:
    """Replay the merchant's recorded authorisations since --since against a candidate
    configuration: the split per PSP account and the success rate it implies (from the
    rates measured in the same records). Nothing is changed."""
    settings = Settings()
    body = _read_config(config)
    start = _since(since)

    async def run(kassa: Any) -> Any:
        from kassa.db import routing_configs as routing_configs_db
        from kassa.domain import routing_backtest as bt
        from kassa.domain.money import Money
        from kassa.domain.routing import PaymentFacts, parse_policy
        from kassa.services.routing_configs import check_accounts

        policy = parse_policy(rules=body.get("rules"), default_route=body.get("default_route"))
        await check_accounts(kassa, kassa.pool, merchant_id=merchant, policy=policy)
        rows = await routing_configs_db.recorded_authorizations(kassa.pool, merchant_id=merchant,
                                                  since=start, limit=limit)
        records = []
        for r in rows:
            outcome = bt.outcome_of(r["status"], r["error"])
            if outcome is None:
                continue
            card = r["card"] or {}
            records.append(bt.RecordedAuthorization(
                payment=PaymentFacts(payment_id=r["payment_intent_id"],
                                     amount=Money(r["amount"], r["currency"]),
                                     capture_method=r["capture_method"],
                                     metadata=r["metadata"] or {},
                                     card_brand=card.get("brand"),
                                     card_country=card.get("country")),
                psp=r["psp"], outcome=outcome))
        report = bt.backtest(policy, records,
                             exploration_percent=settings.routing_exploration_percent)
        return {"merchant": merchant, "since": start, **report.as_dict()}

    with database(settings) as dsn:
        typer.echo(json.dumps(run_async(_with_kassa(settings, dsn, run)), indent=2))


_SAMPLE = re.compile(r'^(kassa_psp_[a-z_]+)\{([^}]*)\} (\S+)$')


def parse_status(text: str) -> dict[str, dict[str, Any]]:
    """Per PSP account, from /metrics: breaker state and window, success rate."""
    states = {0: "closed", 1: "half_open", 2: "open"}
    out: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m is None:
            continue
        name, raw_labels, value = m.groups()
        labels = dict(re.findall(r'(\w+)="([^"]*)"', raw_labels))
        psp = labels.get("psp")
        if psp is None:
            continue
        entry = out.setdefault(psp, {})
        number = float(value)
        if name == "kassa_psp_breaker_state":
            entry["breaker"] = states.get(int(number), str(number))
        elif name == "kassa_psp_breaker_opened":
            entry["breaker_opened"] = int(number)
        elif name == "kassa_psp_breaker_window_calls":
            entry[f"window_{labels.get('kind')}"] = int(number)
        elif name == "kassa_psp_authorization_success_ratio":
            entry["authorization_success_rate"] = round(number, 4)
        elif name == "kassa_psp_authorization_window":
            entry[f"authorizations_{labels.get('outcome')}"] = int(number)
    return out


@psp_app.command("status")
def psp_status(api_url: str = typer.Option(None, help="a running API (default: KASSA_HOST "
                                                      "and KASSA_PORT)"),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Each PSP account's circuit breaker and authorisation success rate, as one API
    process sees them (state is per process; ask each replica). KASSA_METRICS_TOKEN is
    sent when set."""
    import httpx

    settings = Settings()
    url = (api_url or f"http://{settings.host}:{settings.port}").rstrip("/") + "/metrics"
    token = settings.metrics_bearer()
    try:
        r = httpx.get(url, timeout=5.0,
                      headers={"Authorization": f"Bearer {token}"} if token else None)
    except httpx.HTTPError as exc:
        raise _fail(f"{url}: {type(exc).__name__} — is the API running?") from None
    if r.status_code != 200:
        raise _fail(f"{url}: HTTP {r.status_code} {r.text[:200]}")
    status = parse_status(r.text)
    if as_json:
        typer.echo(json.dumps(status))
        return
    if not status:
        typer.echo("no PSP calls seen by this process yet")
    for psp, s in sorted(status.items()):
        rate = s.get("authorization_success_rate")
        typer.echo(f"{psp}  breaker={s.get('breaker', 'closed')}"
                   f"  window={s.get('window_failures', 0)}/{s.get('window_calls', 0)} failed"
                   f"  opened={s.get('breaker_opened', 0)}"
                   f"  auth_success={'-' if rate is None else f'{rate:.1%}'}"
                   f"  (approved={s.get('authorizations_approved', 0)}"
                   f" declined={s.get('authorizations_declined', 0)}"
                   f" failed={s.get('authorizations_failed', 0)})")

