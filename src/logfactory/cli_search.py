"""``logfactory search``, ``top`` and ``histogram``: the log store from a terminal.

They ask a node's search API (``/api/v1/search`` and ``/api/v1/aggregate``) as the credential
commands do (:mod:`logfactory.cli_api`: ``--url``/``$LOGFACTORY_URL``, ``--token``/
``$LOGFACTORY_TOKEN``, else the local node's admin token), so the same command searches a
remote node; a viewer's token is enough. How they print is :mod:`logfactory.cli_search_render`.

Output: a table when stdout is a terminal, JSON lines when it is not (``--format`` chooses).
``--since 1h`` means the last hour (``-1h`` too); other bounds are what the API takes
(``-15m``, ``now``, RFC 3339, a date). A bad query is shown back with a caret under the column
the node named, exit status 2 like any usage error; a store that cannot answer (503) is one
``the store is not available: ...`` line, exit 1.

``search --follow`` polls about once a second for matches newer than the newest it has shown
(less a margin of :data:`FOLLOW_SLACK_S`, for records stored late), forgets ids that fall
out of that window, and prints what it has not shown yet, oldest first. Ctrl-C ends it with
status 0. A poll pages newest first and stops at a page with nothing new, so a quiet second
costs one small request; the price is that a record stored late is caught only while fewer
than :data:`_FOLLOW_PAGE` matches newer than it were already shown.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import wraps
from typing import IO, Any

import click
from rich.console import Console

from logfactory.cli_api import Api, ApiRefusal, api_options, clean
from logfactory.cli_search_render import (
    CSV_COLUMNS,
    Widths,
    caret_lines,
    csv_lines,
    footer,
    header_line,
    histogram_lines,
    hit_line,
    json_line,
    parse_moment,
    render,
    top_lines,
)

__all__ = ["FOLLOW_SLACK_S", "histogram", "search", "top"]

#: how far before the newest hit shown ``--follow`` keeps asking (records stored late)
FOLLOW_SLACK_S = 60.0
#: how often ``--follow`` asks
FOLLOW_EVERY_S = 1.0
_PAGE = 1000  # hits per request at most: the API's default maximum (store.max_results)
_FOLLOW_PAGE = 200  # hits per request of a --follow poll
_FOLLOW_PAGES = 100  # pages per poll at most: a burst beyond is shown at the next poll
_RATE_RETRIES = 10  # 429s waited out in a row before the node's message is the answer
_RATE_WAIT_S = 10.0  # the longest Retry-After waited out
_AGO = re.compile(r"\d+(\.\d+)?(ms|s|m|h|d|w)")
_FORMATS = click.Choice(["table", "json", "csv"])


def _bound(text: str | None) -> str | None:
    """``1h`` is the last hour: a bare duration is taken as a time ago (``-1h``)."""
    if text is None:
        return None
    text = text.strip()
    return f"-{text}" if _AGO.fullmatch(text) else text


def _format(chosen: str | None, out: IO[str]) -> str:
    if chosen is not None:
        return chosen
    return "table" if out.isatty() else "json"


def _console() -> Console:
    # rich decides colour: none when stdout is not a terminal, or NO_COLOR is set
    return Console(highlight=False, soft_wrap=False)


class _BadQuery(click.ClickException):
    """The node refused a query (400): shown back with a caret under its column; exit 2."""

    exit_code = 2

    def __init__(self, query: str, column: int | None, message: str) -> None:
        super().__init__(message)
        self.query = query
        self.column = column

    def show(self, file: IO[Any] | None = None) -> None:
        for line in caret_lines(self.query, self.column, self.message):
            click.echo(line, err=True)


def _ask(api: Api, path: str, query_text: str, params: dict[str, Any]) -> Any:
    """One request; a refused query and an unavailable store become their own messages. The
    node's query limit (429) is waited out as it says, a few times: a long --limit pages
    faster than a credential's query rate."""
    for _ in range(_RATE_RETRIES):
        try:
            return _ask_once(api, path, query_text, params)
        except ApiRefusal as exc:
            if exc.status != 429 or exc.retry_after is None or exc.retry_after > _RATE_WAIT_S:
                raise
            time.sleep(max(exc.retry_after, 0.1))  # what the node asked for, not a guess
    return _ask_once(api, path, query_text, params)


def _ask_once(api: Api, path: str, query_text: str, params: dict[str, Any]) -> Any:
    try:
        return api.call("GET", path, query={"q": query_text, **params})
    except ApiRefusal as exc:
        answer = exc.answer if isinstance(exc.answer, dict) else {}
        message = str(answer.get("error", exc.message))
        if exc.status == 400:
            column = answer.get("column")
            raise _BadQuery(
                query_text, column if isinstance(column, int) else None, message
            ) from None
        if exc.status == 503:
            raise click.ClickException(f"the store is not available: {clean(message)}") from None
        raise


def _pages(api: Api, query_text: str, params: dict[str, Any], limit: int) -> Iterator[Any]:
    """The search's answers, page by page through the cursors, until ``limit`` hits."""
    wanted, cursor = limit, None
    while wanted > 0:
        page = _ask(
            api,
            "/api/v1/search",
            query_text,
            {**params, "limit": min(wanted, _PAGE), "cursor": cursor},
        )
        yield page
        wanted -= len(page["hits"])
        cursor = page.get("next")
        if not cursor or not page["hits"]:
            return


class _Printer:
    """Prints hits as the chosen format asks, with one header at most."""

    def __init__(self, form: str, fields: tuple[str, ...] | None, console: Console) -> None:
        self.form = form
        self.console = console
        self.columns = ("id", *fields) if fields else CSV_COLUMNS
        self.widths: Widths | None = None  # a table's, fitted to its first hits
        self.started = False

    def hits(self, hits: list[dict[str, Any]]) -> None:
        if self.form == "json":
            for hit in hits:
                click.echo(json_line(hit))
        elif self.form == "csv":
            click.echo(csv_lines(hits, self.columns, not self.started), nl=False)
        else:
            if self.widths is None:
                self.widths = Widths.fit(hits, self.console.width)
            header = [] if self.started else [header_line(self.widths)]
            render(self.console, [*header, *(hit_line(h, self.widths) for h in hits)])
        sys.stdout.flush()
        self.started = True


def _until_the_reader_leaves(command: Callable[..., None]) -> Callable[..., None]:
    """A reader that hangs up (``| head``, ``less`` quit) ends the command quietly, status 0,
    rather than with a BrokenPipeError traceback."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except BrokenPipeError:
            # what is still buffered for stdout goes nowhere at exit, instead of failing again
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    return run


def _fields(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    return tuple(name.strip() for name in text.split(",") if name.strip()) or None


@click.command(short_help="Search the log store: newest first, or --follow.")
@click.argument("query", default="")
@click.option("--since", default=None, help="from: 1h (the last hour), -15m, RFC 3339, a date")
@click.option("--until", default=None, help="to: like --since (default: now)")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True, help="hits")
@click.option("--fields", default=None, help="only these columns, e.g. host,message,fields.user")
@click.option("--format", "form", type=_FORMATS, default=None,
              help="table (default on a terminal), json lines (when piped), csv")  # fmt: skip
@click.option("--follow", is_flag=True, help="then print new matches as they are stored")
@api_options
@_until_the_reader_leaves
def search(
    api: Api,
    query: str,
    since: str | None,
    until: str | None,
    limit: int,
    fields: str | None,
    form: str | None,
    follow: bool,
) -> None:
    """Search the stored logs and events with QUERY (all of them when it is empty): words,
    "a phrase", prefix*, field:value, field:>=10, AND/OR/NOT, parentheses (see
    docs/search.md). Newest first, up to --limit; a table on a terminal with times in the
    local time zone, JSON lines when piped. With --follow: the last matches oldest first,
    then new ones as they are stored, until Ctrl-C.

    \b
    Examples:
      logfactory search 'sshd AND "failed password"' --since 1h
      logfactory search 'host:cn01 AND severity:error' --limit 500 --format csv > errors.csv
      logfactory search 'kind:event AND type:ALERT' --follow
    """
    if follow and until is not None:
        raise click.UsageError("--follow shows what is stored from now on: it takes no --until")
    chosen = _fields(fields)
    printer = _Printer(_format(form, sys.stdout), chosen, _console())
    params: dict[str, Any] = {"since": _bound(since), "until": _bound(until)}
    if chosen:
        params["fields"] = ",".join(chosen)
    if follow:
        _follow(api, query, params, limit, printer)
        return
    shown, took_ms, last = 0, 0.0, None
    for page in _pages(api, query, params, limit):
        hits = page["hits"][: limit - shown]
        printer.hits(hits)
        shown += len(hits)
        took_ms += float(page.get("took_ms", 0.0))
        last = page
    if printer.form == "table" and last is not None:
        click.echo(footer(shown, last, took_ms / 1000), err=not sys.stdout.isatty())


def _follow(api: Api, query: str, params: dict[str, Any], limit: int, printer: _Printer) -> None:
    """The last ``limit`` matches, then the new ones, oldest first, until Ctrl-C."""
    printer.widths = Widths(total=printer.console.width)  # hits to come: no fitting to them
    seen: dict[str, float] = {}  # id -> time (s since the epoch) of what was shown
    try:
        first = [h for page in _pages(api, query, params, limit) for h in page["hits"]]
        _show_new(first[:limit], seen, printer)
        while True:
            time.sleep(FOLLOW_EVERY_S)  # the poll's pace, not a synchronisation
            newest = max(seen.values(), default=time.time())
            start = newest - FOLLOW_SLACK_S
            _show_new(
                _unseen(api, query, {**params, "since": _rfc3339(start)}, seen), seen, printer
            )
            for ident in [i for i, t in seen.items() if t < start - FOLLOW_SLACK_S]:
                del seen[ident]  # out of every window that can still be asked for
    except KeyboardInterrupt:
        return


def _unseen(
    api: Api, query: str, window: dict[str, Any], seen: dict[str, float]
) -> list[dict[str, Any]]:
    """The window's hits not shown yet, newest first. Pages stop at one with nothing new: what
    lies beyond it was seen at an earlier poll, so a quiet second costs one small page."""
    out: list[dict[str, Any]] = []
    cursor = None
    for _ in range(_FOLLOW_PAGES):
        page = _ask(
            api, "/api/v1/search", query, {**window, "limit": _FOLLOW_PAGE, "cursor": cursor}
        )
        new = [h for h in page["hits"] if str(h["id"]) not in seen]
        out += new
        cursor = page.get("next")
        if not new or not cursor:
            return out
    click.echo(
        f"more than {len(out):,} new matches within a second: older ones were skipped; "
        "narrow the query to follow it",
        err=True,
    )
    return out


def _rfc3339(seconds: float) -> str:
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch(hit: dict[str, Any]) -> float:
    moment = parse_moment(hit.get("time"))
    return moment.timestamp() if moment is not None else 0.0


def _show_new(hits: list[dict[str, Any]], seen: dict[str, float], printer: _Printer) -> None:
    """Print the hits not shown yet, oldest first, and remember them."""
    new = {str(h["id"]): h for h in hits if str(h["id"]) not in seen}
    ordered = sorted(new.values(), key=lambda h: (_epoch(h), str(h["id"])))
    if ordered:
        printer.hits(ordered)
    for ident, hit in new.items():
        seen[ident] = _epoch(hit)


def _aggregate(api: Api, query: str, since: str | None, until: str | None, **params: Any) -> Any:
    window = {"since": _bound(since), "until": _bound(until)}
    return _ask(api, "/api/v1/aggregate", query, {**window, **params})


def _print_rows(answer: Any, form: str, lines: Callable[[Any, int], list[Any]], what: str) -> None:
    if form == "json":
        for bucket in answer["buckets"]:
            click.echo(json_line(bucket))
        return
    console = _console()
    render(console, lines(answer, console.width))
    took = float(answer.get("took_ms", 0.0)) / 1000
    cut = "; the query timed out: the counts may be low" if answer.get("timed_out") else ""
    click.echo(f"{what} ({took:.3f} s){cut}", err=not sys.stdout.isatty())


@click.command(short_help="The most frequent values of a field among the matches.")
@click.argument("field")
@click.argument("query", default="")
@click.option("--since", default=None, help="from: 24h (the last day), -7d, RFC 3339, a date")
@click.option("--until", default=None, help="to: like --since (default: now)")
@click.option("--size", type=click.IntRange(1, 10_000), default=10, show_default=True,
              help="how many values")  # fmt: skip
@click.option("--format", "form", type=click.Choice(["table", "json"]), default=None,
              help="table (default on a terminal), json lines (default when piped)")  # fmt: skip
@api_options
@_until_the_reader_leaves
def top(
    api: Api,
    field: str,
    query: str,
    since: str | None,
    until: str | None,
    size: int,
    form: str | None,
) -> None:
    """The SIZE most frequent values of FIELD (a column such as host, severity, type, pattern,
    or a decoded field: fields.user) among the records QUERY matches: value, count, share of
    the matches, a bar. JSON lines ({"key", "count"}) when piped.

    \b
    Examples:
      logfactory top host --since 24h
      logfactory top fields.user 'sshd AND "failed password"' --since 7d --size 20
      logfactory top type kind:event
    """
    answer = _aggregate(api, query, since, until, op="top", field=field, size=size)
    shown = len(answer["buckets"])
    _print_rows(answer, _format(form, sys.stdout), top_lines, f"top {shown} values of {field}")


@click.command(short_help="Counts of the matches over time, a bar per interval.")
@click.argument("query", default="")
@click.option("--since", default=None, help="from: 24h (default: the last day), -7d, RFC 3339")
@click.option("--until", default=None, help="to: like --since (default: now)")
@click.option(
    "--interval",
    default=None,
    help="bucket width, e.g. 5m (default: a round one, at most 120 bars)",
)
@click.option("--format", "form", type=click.Choice(["table", "json"]), default=None,
              help="bars (default on a terminal), json lines (default when piped)")  # fmt: skip
@api_options
@_until_the_reader_leaves
def histogram(
    api: Api,
    query: str,
    since: str | None,
    until: str | None,
    interval: str | None,
    form: str | None,
) -> None:
    """How many records QUERY matches per interval between --since (default: 24 hours ago)
    and --until: one bar per bucket, labelled with its start in the local time zone, scaled
    to the terminal's width. JSON lines ({"key", "count"}) when piped.

    \b
    Examples:
      logfactory histogram severity:error
      logfactory histogram 'host:cn01' --since 7d --interval 1h
    """
    answer = _aggregate(api, query, since or "24h", until, op="histogram", interval=interval)
    total = sum(int(b["count"]) for b in answer["buckets"])
    width = _interval_text(answer.get("interval"))
    what = f"{total:,} matches in {len(answer['buckets'])} buckets" + (
        f" of {width}" if width else ""
    )
    _print_rows(answer, _format(form, sys.stdout), histogram_lines, what)


def _interval_text(value: object) -> str:
    """The API's bucket width (nanoseconds, or text as given) for a person: ``5m``, ``1h``."""
    if isinstance(value, str):
        return clean(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return ""
    span = timedelta(microseconds=value / 1000)
    for unit, seconds in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        if span.total_seconds() >= seconds and span.total_seconds() % seconds == 0:
            return f"{int(span.total_seconds() // seconds)}{unit}"
    return f"{value / 1e6:g}ms"
