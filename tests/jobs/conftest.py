from tests.outbox.conftest import dispatcher

__all__ = ["dispatcher"]
