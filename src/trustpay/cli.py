"""``trustpay`` command line: serve, worker, migrate, demo, reconcile, settle, ledger verify, sandbox-bank."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from trustpay.settings import get_settings

app = typer.Typer(help="TrustPay payment platform", no_args_is_help=True, add_completion=False)
ledger_app = typer.Typer(help="Ledger tools", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
ops_app = typer.Typer(help="Operator tools", no_args_is_help=True)
app.add_typer(ops_app, name="ops")
receipt_app = typer.Typer(help="Receipts: check one offline", no_args_is_help=True)
app.add_typer(receipt_app, name="receipt")
console = Console()


@app.command()
def migrate() -> None:
    """Bring the database to the current schema."""
    from trustpay.db.migrate import upgrade

    url = get_settings().database_url
    upgrade(url)
    console.print(f"[green]database is at the current schema[/] ({_safe(url)})")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: bool = True,
    processes: int | None = typer.Option(
        None, min=1, max=64, help="HTTP server processes (default: settings serve_processes, 1)"
    ),
) -> None:
    """Serve the API and web pages (and run the job worker in the same process)."""
    import uvicorn

    from trustpay.app import SERVE_JOB_LOCK_ENV, claim_core, create_app, freeze_startup_heap

    settings = get_settings()
    count = processes or settings.serve_processes
    console.print(f"TrustPay listening on http://{host}:{port}" + (f" ({count} processes)" if count > 1 else ""))
    if count == 1:
        claim_core()
        application = create_app(start_worker=workers)
        freeze_startup_heap()
        uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)
        return
    import os
    import tempfile

    if settings.test_clock:
        # Each process keeps its own moved clock; they would disagree on "now".
        console.print("[red]the test clock moves one process's time: serve it with --processes 1[/]")
        raise typer.Exit(2)
    if "TRUSTPAY_SECRET_KEY" not in os.environ:
        # Without one, each process would pick its own random key and refuse
        # the others' cookies and CSRF tokens.
        os.environ["TRUSTPAY_SECRET_KEY"] = settings.secret_key
    with tempfile.TemporaryDirectory(prefix="trustpay-serve-") as run_dir:
        # Whichever process holds this lock runs the job worker (a replacement
        # for a crashed one takes it over); empty = none runs it.
        os.environ[SERVE_JOB_LOCK_ENV] = str(Path(run_dir) / "job-worker.lock") if workers else ""
        uvicorn.run(
            "trustpay.app:create_serving_app",
            factory=True,
            workers=count,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
        )


@app.command()
def worker(
    interval: float | None = typer.Option(None, help="Seconds between polls (default: settings)"),
    once: bool = typer.Option(False, help="Run one tick, print what it did, and exit"),
) -> None:
    """Run the job worker alone: due jobs, retries, expiries, sweepers (until Ctrl-C)."""
    import signal
    import threading

    from trustpay.jobs.worker import Worker
    from trustpay.platform.context import Platform

    platform = Platform.build()
    job_worker = Worker(platform, interval=interval)
    try:
        if once:
            console.print(f"worker tick: {job_worker.tick()} things done")
            return
        stop = threading.Event()
        # SIGTERM (service managers) stops as cleanly as Ctrl-C: after the current tick.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        console.print(f"TrustPay worker running every {job_worker.interval} s (Ctrl-C stops)")
        job_worker.run(stop)
    finally:
        platform.close()


@app.command()
def demo() -> None:
    """Seed demo data (idempotent) and print the demo logins."""
    from trustpay.demo import seed

    seed(console)


@app.command("sandbox-bank")
def sandbox_bank(
    host: str = "127.0.0.1",
    port: int = 8100,
    data: str = typer.Option("", help="The bank's data dir (default: settings bank_sandbox_data_dir)"),
    settle_seconds: float | None = typer.Option(None, help="Seconds before an operation completes"),
) -> None:
    """Run the sandbox bank alone (its own SQLite file, accounts, callbacks and statements)."""
    import uvicorn

    from trustpay.banks.sandbox.app import create_sandbox_app
    from trustpay.banks.sandbox.bank import SandboxBank

    settings = get_settings()
    bank = SandboxBank(
        data or settings.bank_sandbox_data_dir,
        secret=settings.bank_sandbox_secret,
        settle_seconds=settings.bank_sandbox_settle_seconds if settle_seconds is None else settle_seconds,
    )
    bank.start_background()
    console.print(f"Sandbox bank listening on http://{host}:{port} (data in {bank.data_dir})")
    try:
        uvicorn.run(create_sandbox_app(bank), host=host, port=port, log_level="warning", access_log=False)
    finally:
        bank.close()


@app.command("reconcile")
def reconcile_cmd(
    bank: str = typer.Option("sandbox", help="Which bank's statement"),
    date: str = typer.Option(..., "--date", help="Business date (UTC), YYYY-MM-DD"),
) -> None:
    """Reconcile one business date: settle what the bank completed, queue mismatches for ops,
    move confirmed operations out of clearing. Safe to run again."""
    from datetime import date as Date

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from trustpay.banks.reconcile import reconcile
    from trustpay.errors import TrustPayError
    from trustpay.platform.context import Platform

    try:
        business_date = Date.fromisoformat(date)
    except ValueError:
        console.print(f"[red]not a date[/]: {date!r} (use YYYY-MM-DD)")
        sys.exit(2)
    platform = Platform.build()
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=console) as bar:
            task = bar.add_task(f"{bank} {business_date}", total=None)
            summary = reconcile(platform, bank, business_date,
                                progress=lambda done, total: bar.update(task, completed=done, total=total))
    except TrustPayError as exc:
        console.print(f"[red]not reconciled[/]: {exc.message}")
        sys.exit(1)
    finally:
        platform.close()
    console.print(f"[green]reconciled[/] {bank} {business_date} (run {summary.run_id}): {summary.lines} lines, "
                  f"{summary.matched} matched, {summary.settled} settled late, {summary.new_exceptions} new "
                  f"exceptions ({summary.open_exceptions} open), {summary.cleared} moved out of clearing")
    sys.exit(1 if summary.open_exceptions else 0)


@app.command("settle")
def settle_cmd(
    date: str = typer.Option(..., "--date", help="Settlement date (platform timezone), YYYY-MM-DD"),
) -> None:
    """Pay out each merchant's trade money due by this date (T+N) to its settlement card,
    one payout per merchant and currency. Safe to run again: a settled date changes nothing."""
    from datetime import date as Date

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from trustpay.errors import TrustPayError
    from trustpay.merchants.settlement import run
    from trustpay.platform.context import Platform

    try:
        run_date = Date.fromisoformat(date)
    except ValueError:
        console.print(f"[red]not a date[/]: {date!r} (use YYYY-MM-DD)")
        sys.exit(2)
    platform = Platform.build()
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=console) as bar:
            task = bar.add_task(f"settlement {run_date}", total=None)
            summary = run(platform, run_date,
                          progress=lambda done, total: bar.update(task, completed=done, total=total))
    except TrustPayError as exc:
        console.print(f"[red]not settled[/]: {exc.message}")
        sys.exit(1)
    finally:
        platform.close()
    console.print(f"[green]settled[/] {run_date}: {summary.merchants} merchant balance(s) due, {summary.created} "
                  f"payout(s) started ({summary.paid} paid, {summary.failed} failed so far), {summary.no_card} "
                  "merchant(s) without a settlement card")


@ledger_app.command("verify")
def ledger_verify() -> None:
    """Re-check every ledger invariant and the hash chain; exit 1 on any break."""
    from trustpay.db.engine import Database
    from trustpay.ledger.verify import verify

    db = Database(get_settings().database_url)
    with db.transaction(write=False) as conn:
        rep = verify(conn)
    db.dispose()
    if rep.ok:
        console.print(f"[green]ledger OK[/]: {rep.entries_checked} entries, {rep.accounts_checked} "
                      f"accounts, root {rep.root}")
        return
    first = rep.first_bad
    console.print(f"[red]ledger BROKEN[/]: first bad: {first}")
    for p in rep.problems[:20]:
        console.print(f"  - {p}")
    sys.exit(1)


@ops_app.command("create-user")
def ops_create_user(
    email: str = typer.Option(..., help="The operator's e-mail (their login)"),
    password: str = typer.Option(..., help="At least 12 characters with letters and digits"),
    name: str = typer.Option("", help="Display name"),
) -> None:
    """Create a user with the ops role (staff console access)."""
    from trustpay.errors import TrustPayError
    from trustpay.identity.service import create_ops_user
    from trustpay.platform.context import Platform

    platform = Platform.build()
    try:
        user = platform.db.run(lambda conn: create_ops_user(platform, conn, email=email, password=password,
                                                            name=name))
    except TrustPayError as exc:
        console.print(f"[red]not created[/]: {exc.message}")
        sys.exit(1)
    finally:
        platform.close()
    console.print(f"[green]ops user created[/]: {user.id} {user.email}")


@ops_app.command("unfreeze")
def ops_unfreeze(
    email: str = typer.Option(..., help="The frozen user's e-mail"),
    reason: str = typer.Option(..., help="Why (kept in the user's audit log)"),
) -> None:
    """Unfreeze a user's account (lost-phone freeze) after an out-of-band check; audited."""
    from trustpay.errors import TrustPayError
    from trustpay.identity.freeze import ops_unfreeze as unfreeze
    from trustpay.platform.context import Platform

    platform = Platform.build()
    try:
        user = platform.db.run(lambda conn: unfreeze(platform, conn, email=email, reason=reason))
    except TrustPayError as exc:
        console.print(f"[red]not unfrozen[/]: {exc.message}")
        sys.exit(1)
    finally:
        platform.close()
    console.print(f"[green]unfrozen[/]: {user.id} {user.email}")


@receipt_app.command("verify")
def receipt_verify(
    file: Path = typer.Argument(..., help="A receipt saved from GET /v1/transactions/{id}/receipt"),
    digest_url: str = typer.Option("", help="Also compare with a published digest, e.g. "
                                            "https://host/v1/ledger/digest"),
) -> None:
    """Check a receipt offline: entry hash, the line against its entry, the Merkle inclusion proof."""
    import json

    from trustpay.wallet import receipt

    try:
        doc = json.loads(file.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        console.print(f"[red]cannot read receipt[/]: {exc}")
        sys.exit(2)
    if not isinstance(doc, dict):
        console.print("[red]cannot read receipt[/]: not a JSON object")
        sys.exit(2)
    published = None
    if digest_url:
        import httpx

        try:
            published = httpx.get(digest_url, timeout=10.0).raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            console.print(f"[red]cannot fetch the published digest[/]: {exc}")
            sys.exit(2)
    result = receipt.verify(doc, published=published)
    for line in receipt.report_lines(result, doc, lambda ok: "[green]✓[/]" if ok else "[red]✗[/]"):
        console.print(line, highlight=False, markup=True)
    sys.exit(0 if result.ok else 1)


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    app()
