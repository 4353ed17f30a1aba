"""The console's own metrics, on the shared registry beside the HTTP RED metrics every service has."""

from prometheus_client import Counter, Histogram

from townflow_shared.metrics import REGISTRY

SERVICE_CALLS = Counter(
    "townflow_console_service_calls_total", "Calls the console made to a service, by service, method and status",
    ["service", "method", "status"], registry=REGISTRY,
)
SERVICE_DURATION = Histogram(
    "townflow_console_service_call_duration_seconds", "Time a service took to answer the console",
    ["service", "method"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SIGN_INS = Counter(
    "townflow_console_sign_ins_total", "Sign-in attempts by outcome (ok, refused)",
    ["outcome"], registry=REGISTRY,
)
CSRF_REFUSED = Counter(
    "townflow_console_csrf_refused_total", "Form posts refused for a missing or wrong CSRF token",
    registry=REGISTRY,
)
