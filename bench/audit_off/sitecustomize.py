"""`python -m bench.audit_cost`'s third variant, for measuring only: a service started with this
directory first on its PYTHONPATH writes no audit record (the middleware, the commands' units of
work and the sealing pass run as always, and find nothing to write or seal). Kept out of the
product's settings on purpose: the audit trail is not something a county may switch off (等保 2.0
安全审计), so no setting of the product offers it."""

from townflow_shared import audit_trail


async def _nothing(*_: object, **__: object) -> None:
    return None


audit_trail.write_records = _nothing  # type: ignore[assignment]
audit_trail.AuditMiddleware._write = _nothing  # type: ignore[assignment,method-assign]
