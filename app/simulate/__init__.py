"""`aftersale simulate`: replay past webhook bodies offline and list what would be sent.

The decisions are the service's own (app/lifecycle, on its memory store); what is simulate's
is here: replay.py the clock (events and due messages in time order, the worker's jobs),
recommend.py the recommendations from a catalog file, report.py the table and JSON Lines,
command.py and options.py the CLI. Nothing is imported here, so the CLI's options module
stays cheap to load.
"""
