"""The platform's jobs. Add a module here (and import it below), or keep jobs in your own package and
list it in `JOB_MODULES`. Every `@job` is enqueueable by its function name through `POST /v1/jobs`."""

from jobs import emails, maintenance, orders, reports

__all__ = ["emails", "maintenance", "orders", "reports"]
