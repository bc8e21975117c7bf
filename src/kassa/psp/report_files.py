"""Downloading a PSP's settlement report file into a local file, streamed (a day may be
millions of rows): the one place the report sources (simulator, Stripe, Adyen) turn an HTTP
answer into a file or a ReportUnavailable."""

from __future__ import annotations

from pathlib import Path

import httpx

from kassa.psp.base import ReportUnavailable

NOT_PUBLISHED = (404, 409, 425)  # no report for that day yet: try again later


async def download(client: httpx.AsyncClient, request: httpx.Request, into: Path, *,
                   what: str) -> None:
    """Stream ``request``'s answer into ``into`` (a partial file is removed)."""
    try:
        answer = await client.send(request, stream=True)
        try:
            if answer.status_code != 200:
                await answer.aread()
                late = " (not published yet)" if answer.status_code in NOT_PUBLISHED else ""
                raise ReportUnavailable(f"{what}: HTTP {answer.status_code}{late}: "
                                        f"{answer.text[:200]}")
            with into.open("wb") as f:
                async for chunk in answer.aiter_bytes():
                    f.write(chunk)
        finally:
            await answer.aclose()
    except httpx.HTTPError as exc:
        _discard(into)
        raise ReportUnavailable(f"{what}: {type(exc).__name__}: {exc}") from None
    except BaseException:
        _discard(into)
        raise


def _discard(path: Path) -> None:  # a local file's removal: microseconds, no thread needed
    path.unlink(missing_ok=True)
