"""Health, the published ledger digest."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from trustpay.api.deps import PlatformDep
from trustpay.clock import rfc3339

router = APIRouter()


class DigestOut(BaseModel):
    height: int
    root: str
    at: str


@router.get("/healthz", include_in_schema=False)
def healthz(p: PlatformDep) -> JSONResponse:
    try:
        with p.db.transaction(write=False) as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # any database failure means "not healthy"
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/v1/ledger/digest", response_model=DigestOut, tags=["ledger"])
def ledger_digest(p: PlatformDep) -> DigestOut:
    """The current Merkle root of the journal: receipts' proofs verify against it."""
    with p.db.transaction(write=False) as conn:
        d = p.digest.current(conn)
    return DigestOut(height=d.height, root=d.root, at=rfc3339(p.clock.now()))
