"""The lifecycle core, written once for the service and for `simulate`.

flows.py: what each event plans and cancels; due.py: what becomes of a due message;
checks.py and refunds.py: the send-time checks and what refunds leave. They read and write
through store.py's `LifecycleStore`: app/orders/store.py on SQL, memory.py in memory.
Nothing here imports a database, web or mail library (`make lint` checks it).
"""
