"""`/api/v1/rules`: the rules this process runs with, and a reload on demand.

Apart from app/rules because it is an edge (a router, the missing-rules job and queue):
app/rules is imported by the runtime every router imports, so it must import no router.
"""
