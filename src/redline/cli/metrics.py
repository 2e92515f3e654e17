"""`redline metrics NS`: the ``<ns>:metrics:*`` hashes of a namespace, as a table."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from redline.cli.common import fail, redis_option, server_for
from redline.connection import connect_sync
from redline.errors import RedlineError
from redline.runtime.metrics import FIELDS, HISTOGRAM, Value, read_all_sync

__all__ = ["metrics_command", "metrics_table"]


COLUMNS = ("name", "count", "avg", "max", "sum", *HISTOGRAM, "values")


def metrics_table(ns: str, metrics: dict[str, dict[str, Value]]) -> Table:
    """One row per metric: count, mean, max, sum, the histogram of tenths of the timeout, and
    the values a service set (``attempt=0 lastError=…``); columns no metric fills are left out
    (a counter has no durations), so the table fits a terminal."""
    rows = [_row(name, found) for name, found in metrics.items()]
    shown = [i for i, column in enumerate(COLUMNS) if i < 2 or any(row[i] for row in rows)]
    timed = any(COLUMNS[i] in ("avg", "max", "sum", *HISTOGRAM) for i in shown)
    note = "durations in ms; histo30: within 30% of the timeout" if timed else None
    table = Table(title=f"metrics of {ns}", caption=note)
    for i in shown:
        table.add_column(
            COLUMNS[i], justify="left" if COLUMNS[i] in ("name", "values") else "right"
        )
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return table


def _row(name: str, found: dict[str, Value]) -> list[str]:
    values = {key: value for key, value in found.items() if isinstance(value, int)}
    count = values.get("count", 0)
    mean = f"{values['sum'] / count:.1f}" if count and "sum" in values else ""
    cells = [str(values[f]) if f in values else "" for f in ("max", "sum", *HISTOGRAM)]
    notes = " ".join(f"{k}={v}" for k, v in sorted(found.items()) if k not in FIELDS)
    return [name, str(count), mean, *cells, notes]


@click.command("metrics")
@click.argument("namespace")
@redis_option
def metrics_command(namespace: str, redis_url: str | None) -> None:
    """Print the metrics of NAMESPACE (e.g. demo:mpush) as a table."""
    with server_for(redis_url) as url:
        try:
            found = read_all_sync(connect_sync(url), namespace)
        except RedlineError as exc:
            fail(str(exc))
            return
    if not found:
        click.echo(f"no metrics under {namespace}:metrics:* (is the namespace right?)")
        return
    Console().print(metrics_table(namespace, found))
