"""`aftersale simulate`: replay past webhook bodies offline and list what would be sent.

replay.simulate() is the pure core, over state (the database's rows, in memory), intake and
outbox (what the service and the dispatcher do around the planner); bodies reads
ORDERS.jsonl, report prints, command ties them together for the CLI. Nothing is imported
here, so the CLI's options module stays cheap to load.
"""
