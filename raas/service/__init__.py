"""The reservation service: book robot time; bookings become signed, time-bounded leases.

`create_app(settings)` (raas.service.app) builds the FastAPI application; `raasd serve` runs it.
See docs/service.md.
"""
