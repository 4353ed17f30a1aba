"""The console's own metrics, on the shared registry beside the HTTP RED metrics every service has."""


from townflow_shared.metrics import counter, histogram

SERVICE_CALLS = counter("townflow_console_service_calls_total",
                        "Calls the console made to a service, by service, method and status",
                        "service", "method", "status")
SERVICE_DURATION = histogram("townflow_console_service_call_duration_seconds",
                             "Time a service took to answer the console", "service", "method",
                             buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
SIGN_INS = counter("townflow_console_sign_ins_total", "Sign-in attempts by outcome (ok, refused, waiting: refused unchecked while the account or address waits)", "outcome")
CSRF_REFUSED = counter("townflow_console_csrf_refused_total",
                       "Form posts refused for a missing or wrong CSRF token")
