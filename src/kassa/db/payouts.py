"""Named SQL for payouts, their schedule periods, merchants' payout settings and bank
account destinations (migration money_out_payouts); the locking each statement relies on
is spelled out. Ledger postings, balance transactions and events of a payout go through the
unit of work's operations like every other money event's."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from kassa.db.pagination import fetch_page
from kassa.db.pool import Conn
from kassa.domain.bank_accounts import BankAccount, MaskedBankAccount
from kassa.domain.errors import ConcurrentModification
from kassa.domain.lists import Bounds
from kassa.domain.money import Money
from kassa.domain.payout_schedules import Interval, PayoutSchedule
from kassa.domain.payouts import FailureCode, Payout, PayoutStatus

PAYOUT_COLUMNS = ("id, merchant_id, amount, currency, status, automatic, period_key,"
                  " description, statement_descriptor, metadata, destination, failure_code,"
                  " balance_transaction, failure_balance_transaction, trace_id, arrival_date,"
                  " created, version")


def payout_of(row: asyncpg.Record) -> Payout:
    return Payout(
        id=row["id"], merchant_id=row["merchant_id"],
        amount=Money(row["amount"], row["currency"]), status=PayoutStatus(row["status"]),
        created=row["created"], arrival_date=row["arrival_date"], automatic=row["automatic"],
        description=row["description"], statement_descriptor=row["statement_descriptor"],
        metadata=dict(row["metadata"] or {}), destination=row["destination"],
        failure_code=FailureCode(row["failure_code"]) if row["failure_code"] else None,
        balance_transaction=row["balance_transaction"],
        failure_balance_transaction=row["failure_balance_transaction"],
        period_key=row["period_key"], trace_id=row["trace_id"], version=row["version"])


async def lock_payout_balance(conn: asyncpg.Connection, *, merchant_id: str,
                              currency: str) -> None:
    """Serialise payouts of one merchant and currency until the transaction ends, so the
    available balance read next cannot be paid out twice by two racing payouts. Payments
    never take this lock: the hot path is not slowed by payouts."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                       f"payout:{merchant_id}:{currency}")


async def insert_payout(conn: asyncpg.Connection, p: Payout, *,
                        next_check_in_s: float | None = 0.0) -> None:
    """``next_check_in_s``: when the payouts worker first takes it (None: never)."""
    await conn.execute(
        "INSERT INTO payouts (id, merchant_id, amount, currency, status, automatic,"
        " period_key, description, statement_descriptor, metadata, destination,"
        " balance_transaction, arrival_date, created, next_check_at, version)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
        " now() + make_interval(secs => $15::float8), $16)",
        p.id, p.merchant_id, p.amount.minor, p.amount.currency, p.status.value, p.automatic,
        p.period_key, p.description, p.statement_descriptor, dict(p.metadata), p.destination,
        p.balance_transaction, p.arrival_date, p.created, next_check_in_s, p.version)


async def update_payout(conn: asyncpg.Connection, p: Payout, *,
                        next_check_in_s: float | None) -> None:
    """Compare-and-swap: ``p`` is the payout after a move, its version one past the row's.
    ``next_check_in_s`` None: the worker has nothing left to do with it."""
    done = await conn.execute(
        "UPDATE payouts SET status = $3, failure_code = $4, failure_balance_transaction = $5,"
        " trace_id = $6, arrival_date = $7, version = $2, tries = 0,"
        " next_check_at = now() + make_interval(secs => $8::float8)"
        " WHERE id = $1 AND version = $2 - 1",
        p.id, p.version, p.status.value, p.failure_code.value if p.failure_code else None,
        p.failure_balance_transaction, p.trace_id, p.arrival_date, next_check_in_s)
    if done != "UPDATE 1":
        raise ConcurrentModification(f"payout {p.id} was modified concurrently; retry.")


async def get_payout(conn: Conn, *, merchant_id: str, payout_id: str,
                     for_update: bool = False) -> Payout | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {PAYOUT_COLUMNS} FROM payouts"
                              f" WHERE id = $1 AND merchant_id = $2{lock}",
                              payout_id, merchant_id)
    return None if row is None else payout_of(row)


async def claim_due_payouts(conn: asyncpg.Connection, *, limit: int,
                            lease_s: float) -> list[Payout]:
    """Payouts whose worker step is due, locked for this transaction (``SKIP LOCKED``: any
    number of workers take disjoint batches) and leased for ``lease_s`` so a worker that
    dies mid-step leaves them to the next one after the lease."""
    rows = await conn.fetch(
        "WITH due AS (SELECT id FROM payouts WHERE next_check_at <= now()"
        " ORDER BY next_check_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " UPDATE payouts p SET next_check_at = now() + make_interval(secs => $2::float8),"
        " tries = p.tries + 1 FROM due WHERE p.id = due.id RETURNING "
        + ", ".join(f"p.{c.strip()}" for c in PAYOUT_COLUMNS.split(",")),
        limit, lease_s)
    return [payout_of(r) for r in rows]


async def postpone_payout(conn: Conn, *, payout_id: str, version: int, first_s: float,
                          cap_s: float, stop: bool = False) -> None:
    """Look again later (the rail had no news, or could not be reached): ``first_s``
    doubled per unanswered look since the last change, at most ``cap_s``; ``stop``: never
    again. A payout that moved meanwhile (another version) is left as its mover set it."""
    await conn.execute(
        "UPDATE payouts SET next_check_at = CASE WHEN $5 THEN NULL ELSE now() + make_interval("
        "secs => least($4::float8, $3::float8 * 2 ^ least(tries, 20))) END"
        " WHERE id = $1 AND version = $2", payout_id, version, first_s, cap_s, stop)


async def hold_for_review(conn: Conn, *, payout_id: str, version: int, reason: str) -> bool:
    """Stop the worker on a payout the rail disagrees about (services/payout_rail.py); its
    status, and so its money, stay as they are until an operator resolves it."""
    done = await conn.execute(
        "UPDATE payouts SET review_reason = $3, review_resolution = NULL, next_check_at = NULL"
        " WHERE id = $1 AND version = $2", payout_id, version, reason)
    return bool(done == "UPDATE 1")


async def held_for_review(conn: Conn) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT id, merchant_id, amount, currency, status, review_reason"
                            " FROM payouts WHERE review_reason IS NOT NULL ORDER BY seq")


async def resolve_review(conn: Conn, *, payout_id: str, resolution: str) -> bool:
    """The operator's word (who and why); the worker takes the payout up again at once and
    follows the rail, whose record the operator had corrected or confirmed."""
    done = await conn.execute(
        "UPDATE payouts SET review_resolution = $2, review_reason = NULL,"
        " next_check_at = now() WHERE id = $1 AND review_reason IS NOT NULL",
        payout_id, resolution)
    return bool(done == "UPDATE 1")


# ---------------------------------------------------------------- schedule periods


async def claim_period(conn: asyncpg.Connection, *, merchant_id: str, currency: str,
                       period_key: str, created: int) -> bool:
    """Record that this period's automatic payout is being made; False when another
    scheduler (or an earlier run) already did: the unique key decides, not timing."""
    status = await conn.execute(
        "INSERT INTO payout_periods (merchant_id, currency, period_key, created)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        merchant_id, currency, period_key, created)
    return bool(status == "INSERT 0 1")


async def set_period_payout(conn: asyncpg.Connection, *, merchant_id: str, currency: str,
                            period_key: str, payout_id: str) -> None:
    await conn.execute("UPDATE payout_periods SET payout = $4 WHERE merchant_id = $1"
                       " AND currency = $2 AND period_key = $3",
                       merchant_id, currency, period_key, payout_id)


async def carried(conn: asyncpg.Connection, *, merchant_id: str, currency: str) -> Money:
    """What earlier periods itemised but did not pay (domain/payout_amounts.py); read under
    the payout lock (lock_payout_balance), like the balance it is paid from."""
    value = await conn.fetchval("SELECT carried FROM payout_carries WHERE merchant_id = $1"
                                " AND currency = $2", merchant_id, currency)
    return Money(int(value or 0), currency)


async def record_period_amounts(conn: asyncpg.Connection, *, merchant_id: str, currency: str,
                                period_key: str, itemized: int, carried_in: int,
                                carried: int) -> None:
    """The period's sums (kept on its row, for audit) and the carry the next period reads."""
    await conn.execute(
        "UPDATE payout_periods SET itemized = $4, carried_in = $5, carried = $6"
        " WHERE merchant_id = $1 AND currency = $2 AND period_key = $3",
        merchant_id, currency, period_key, itemized, carried_in, carried)
    await conn.execute(
        "INSERT INTO payout_carries (merchant_id, currency, carried) VALUES ($1, $2, $3)"
        " ON CONFLICT (merchant_id, currency) DO UPDATE SET carried = EXCLUDED.carried",
        merchant_id, currency, carried)


# ---------------------------------------------------------------- settings and destinations


@dataclass(frozen=True, slots=True)
class PayoutSettings:
    merchant_id: str
    schedule: PayoutSchedule
    scheduled_through: int | None  # unix time the scheduler has made every period up to


async def get_settings(conn: Conn, *, merchant_id: str,
                       for_update: bool = False) -> PayoutSettings:
    """A merchant without a row has Stripe's defaults (daily, 2 days' delay).
    ``for_update``: the row is made (with the defaults) if missing and locked, so two
    updates of the schedule apply one after the other."""
    if for_update:
        await conn.execute("INSERT INTO payout_settings (merchant_id) VALUES ($1)"
                           " ON CONFLICT DO NOTHING", merchant_id)
    row = await conn.fetchrow(
        "SELECT interval, weekly_anchor, monthly_anchor, delay_days, scheduled_through"
        " FROM payout_settings WHERE merchant_id = $1" + (" FOR UPDATE" if for_update else ""),
        merchant_id)
    if row is None:
        return PayoutSettings(merchant_id, PayoutSchedule(), None)
    return PayoutSettings(merchant_id, PayoutSchedule(
        interval=Interval(row["interval"]), delay_days=row["delay_days"],
        weekly_anchor=row["weekly_anchor"], monthly_anchor=row["monthly_anchor"]),
                          row["scheduled_through"])


async def put_schedule(conn: Conn, *, merchant_id: str, schedule: PayoutSchedule) -> None:
    await conn.execute(
        "INSERT INTO payout_settings (merchant_id, interval, weekly_anchor, monthly_anchor,"
        " delay_days) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (merchant_id) DO UPDATE SET"
        " interval = EXCLUDED.interval, weekly_anchor = EXCLUDED.weekly_anchor,"
        " monthly_anchor = EXCLUDED.monthly_anchor, delay_days = EXCLUDED.delay_days",
        merchant_id, schedule.interval.value, schedule.weekly_anchor, schedule.monthly_anchor,
        schedule.delay_days)


async def advance_watermark(conn: asyncpg.Connection, *, merchant_id: str,
                            through: int) -> None:
    """Only forward: a slower scheduler finishing late never moves it back."""
    await conn.execute(
        "INSERT INTO payout_settings (merchant_id, scheduled_through) VALUES ($1, $2)"
        " ON CONFLICT (merchant_id) DO UPDATE SET scheduled_through ="
        " greatest(payout_settings.scheduled_through, EXCLUDED.scheduled_through)",
        merchant_id, through)


async def insert_destination(conn: asyncpg.Connection, *, destination_id: str,
                             merchant_id: str, account: BankAccount, sealed_number: bytes,
                             created: int, metadata: dict[str, str] | None = None) -> None:
    """The new account becomes the default for its currency (the previous one stays). Its
    full number is stored only sealed (payouts/payout_numbers.py), its last 4 in clear."""
    await conn.execute("UPDATE payout_destinations SET default_for_currency = false"
                       " WHERE merchant_id = $1 AND currency = $2 AND default_for_currency",
                       merchant_id, account.currency)
    await conn.execute(
        "INSERT INTO payout_destinations (id, merchant_id, currency, country,"
        " account_holder_name, routing_number, account_type, last4, account_sealed,"
        " metadata, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        destination_id, merchant_id, account.currency, account.country,
        account.account_holder_name, account.routing_number, account.account_type,
        account.last4, sealed_number, metadata or {}, created)


_MASKED_COLUMNS = "id, account_holder_name, country, currency, routing_number, account_type, last4"


def _destination(row: asyncpg.Record) -> tuple[str, MaskedBankAccount]:
    return row["id"], MaskedBankAccount(
        account_holder_name=row["account_holder_name"], country=row["country"],
        currency=row["currency"], last4=row["last4"], routing_number=row["routing_number"],
        account_type=row["account_type"])


async def default_destination(conn: Conn, *, merchant_id: str,
                              currency: str) -> tuple[str, MaskedBankAccount] | None:
    row = await conn.fetchrow(
        f"SELECT {_MASKED_COLUMNS} FROM payout_destinations WHERE merchant_id = $1"
        " AND currency = $2 AND default_for_currency", merchant_id, currency)
    return None if row is None else _destination(row)


@dataclass(frozen=True, slots=True)
class SealedDestination:
    """A destination as the payouts worker reads it: its number still sealed."""

    id: str
    merchant_id: str
    account: MaskedBankAccount
    sealed_number: bytes


async def get_destination(conn: Conn, *, destination_id: str) -> SealedDestination | None:
    """Unscoped: for the payouts worker acting on a payout it already holds."""
    row = await conn.fetchrow(
        f"SELECT {_MASKED_COLUMNS}, merchant_id, account_sealed FROM payout_destinations"
        " WHERE id = $1", destination_id)
    if row is None:
        return None
    return SealedDestination(row["id"], row["merchant_id"], _destination(row)[1],
                             bytes(row["account_sealed"]))


async def list_payouts(conn: Conn, *, merchant_id: str, limit: int, starting_after: str | None,
                       ending_before: str | None, created: Bounds | None,
                       arrival_date: Bounds | None, status: str | None
                       ) -> tuple[list[Payout], bool]:
    """Newest first, cursor-paginated by id like Stripe's lists; returns (page, has_more)."""
    rows, more = await fetch_page(
        conn, select=f"SELECT {PAYOUT_COLUMNS} FROM payouts", table="payouts",
        merchant_id=merchant_id, limit=limit, starting_after=starting_after,
        ending_before=ending_before,
        filters=[] if status is None else [("status = {}", status)],
        bounds=[("created", created), ("arrival_date", arrival_date)])
    return [payout_of(r) for r in rows], more


async def list_destinations(conn: Conn, *, merchant_id: str
                            ) -> list[tuple[str, MaskedBankAccount, bool, dict[str, str]]]:
    """Newest first: (id, account, default_for_currency, metadata)."""
    rows = await conn.fetch(
        f"SELECT {_MASKED_COLUMNS}, default_for_currency, metadata FROM payout_destinations"
        " WHERE merchant_id = $1 ORDER BY seq DESC LIMIT 100", merchant_id)
    return [(*_destination(r), r["default_for_currency"], dict(r["metadata"] or {}))
            for r in rows]


# ---------------------------------------------------------------- automatic payouts


@dataclass(frozen=True, slots=True)
class ScheduledAccount:
    """A merchant's default bank account in one currency, with the schedule it is paid on."""

    merchant_id: str
    currency: str
    destination: str
    settings: PayoutSettings


async def scheduled_accounts(conn: Conn) -> list[ScheduledAccount]:
    """Every default bank account of a merchant whose schedule is automatic (no settings
    row: Stripe's default, daily)."""
    rows = await conn.fetch(
        "SELECT d.merchant_id, d.currency, d.id, s.interval, s.weekly_anchor,"
        " s.monthly_anchor, s.delay_days, s.scheduled_through FROM payout_destinations d"
        " LEFT JOIN payout_settings s ON s.merchant_id = d.merchant_id"
        " WHERE d.default_for_currency AND coalesce(s.interval, 'daily') <> 'manual'"
        " ORDER BY d.merchant_id, d.currency")
    out = []
    for r in rows:
        schedule = PayoutSchedule() if r["interval"] is None else PayoutSchedule(
            interval=Interval(r["interval"]), delay_days=r["delay_days"],
            weekly_anchor=r["weekly_anchor"], monthly_anchor=r["monthly_anchor"])
        out.append(ScheduledAccount(r["merchant_id"], r["currency"], r["id"], PayoutSettings(
            r["merchant_id"], schedule, r["scheduled_through"])))
    return out


async def unpaid_balance_transactions(conn: asyncpg.Connection, *, merchant_id: str,
                                      currency: str, cutoff: int) -> list[asyncpg.Record]:
    """Available balance transactions no payout contains yet, available by ``cutoff``;
    locked, so two payouts can never contain the same one. An automatic payout's own
    debit is not among them (it is what pays the others out); a manual payout's is, as are
    failed payouts' returns, so the contents always sum to what the balance gained."""
    return await conn.fetch(
        "SELECT b.id, b.net FROM balance_transactions b WHERE b.merchant_id = $1"
        " AND b.currency = $2 AND b.status = 'available' AND b.payout IS NULL"
        " AND b.available_on <= $3 AND NOT (b.type = 'payout' AND EXISTS ("
        " SELECT 1 FROM payouts p WHERE p.id = b.source AND p.automatic))"
        " ORDER BY b.seq FOR UPDATE OF b", merchant_id, currency, cutoff)


async def attach_balance_transactions(conn: asyncpg.Connection, *, payout_id: str,
                                      ids: list[str]) -> None:
    """What the payout contains (GET /v1/balance_transactions?payout=…)."""
    await conn.execute("UPDATE balance_transactions SET payout = $1 WHERE id = ANY($2::text[])"
                       " AND payout IS NULL", payout_id, ids)
